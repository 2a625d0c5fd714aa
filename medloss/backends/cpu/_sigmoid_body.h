/* Sigmoid statistics of medloss.backends.cpu._kernels, included once per floating type by _kernels.c with
 *   REAL  the logits type,   SFX  the name suffix,   EXP/LOG  exp and log for REAL.
 * Logits X (B, C, N); the target g is either dense (B, C, N) (J->dense, type J->ycode: float32/float64; binary, or
 * in [0, 1] with J->soft) or a label map (B, N) whose one-hot is the target (C = 1: the map itself, values {0, 1}).
 * With p = sigmoid(x), sp(z) = log(1 + e^z) (so -log p = sp(-x), -log(1 - p) = sp(x)), per sample and class:
 *   TP_c = sum v p g,  PRED_c = sum v p^e,  TARGET_c = sum v g^e,  VOXELS = sum v,
 *   BCE:    VPOS_c = sum v g sp(-x)                 VNEG_c = sum v (1 - g) sp(x)
 *   focal:  VPOS_c = sum v g (1 - p)^gamma sp(-x)   VNEG_c = sum v (1 - g) p^gamma sp(x)      (binary g)
 * and backward dL/dx = v [p (1 - p) (a g + e k p^(e-1)) + u+ g d+ + u- (1 - g) d-] with k = dL/dPRED, a = dL/dTP,
 * u+- = dL/dVPOS, dL/dVNEG and d+- the derivatives of the summands:
 *   BCE:    d+ = p - 1,                               d- = p
 *   focal:  d+ = -(1 - p)^gamma (gamma p sp(-x) + 1 - p),   d- = p^gamma (gamma (1 - p) sp(x) + p). */

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)

/* Target of class c for one block into g. Returns 0, 1 for a fractional value without J->soft (ST_SOFT), or 2 for
 * a value outside [0, 1] or NaN (ST_LABEL); ignored voxels (any channel == ignore_index) are skipped. */
static ML_INLINE int FN(sig_target)(const job_t *J, int64_t b, int64_t c, int64_t n0, int len, const int32_t *lab,
                                    REAL *g) {
    const int32_t cc = (int32_t)c;
    if (!J->dense) {
        const int32_t hot = J->C == 1 ? 1 : cc;
#pragma omp simd
        for (int j = 0; j < len; ++j) g[j] = lab[j] == hot ? (REAL)1 : (REAL)0;
        return 0;
    }
    const int64_t off = (b * J->C + c) * J->N + n0;
    const int has_ignore = J->has_ignore;
    int32_t range = 0, frac = 0; /* counts, so that the loops vectorise (no early exit, no mixed-width flags) */
    if (J->ycode == LAB_F32) {
        const float *t = (const float *)J->y + off, ign = has_ignore ? (float)J->ignore : NAN;
#pragma omp simd reduction(+ : range, frac)
        for (int j = 0; j < len; ++j) {
            const float v = t[j];
            const int skip = v == ign;
            range += (!skip & !((v >= 0.0f) & (v <= 1.0f))) ? 1 : 0;
            frac += (!skip & (v != 0.0f) & (v != 1.0f)) ? 1 : 0;
            g[j] = skip ? (REAL)0 : (REAL)v;
        }
    } else {
        const double *t = (const double *)J->y + off, ign = has_ignore ? (double)J->ignore : NAN;
#pragma omp simd reduction(+ : range, frac)
        for (int j = 0; j < len; ++j) {
            const double v = t[j];
            const int skip = v == ign;
            range += (!skip & !((v >= 0.0) & (v <= 1.0))) ? 1 : 0;
            frac += (!skip & (v != 0.0) & (v != 1.0)) ? 1 : 0;
            g[j] = skip ? (REAL)0 : (REAL)v;
        }
    }
    return range ? 2 : (frac && !J->soft) ? 1 : 0;
}

/* Validity of one block: label map -> lab >= 0; dense -> no channel equals ignore_index. */
static ML_INLINE void FN(sig_valid)(const job_t *J, int64_t b, int64_t n0, int len, const int32_t *lab, REAL *v) {
    if (!J->dense) {
#pragma omp simd
        for (int j = 0; j < len; ++j) v[j] = lab[j] >= 0 ? (REAL)1 : (REAL)0;
        return;
    }
#pragma omp simd
    for (int j = 0; j < len; ++j) v[j] = 1;
    if (!J->has_ignore) return;
    for (int64_t c = 0; c < J->C; ++c) {
        const int64_t off = (b * J->C + c) * J->N + n0;
        if (J->ycode == LAB_F32) {
            const float *t = (const float *)J->y + off, ign = (float)J->ignore;
#pragma omp simd
            for (int j = 0; j < len; ++j) v[j] = t[j] == ign ? (REAL)0 : v[j];
        } else {
            const double *t = (const double *)J->y + off, ign = (double)J->ignore;
#pragma omp simd
            for (int j = 0; j < len; ++j) v[j] = t[j] == ign ? (REAL)0 : v[j];
        }
    }
}

/* sigmoid(x), 1 - sigmoid(x) and log(1 + e^-|x|) without cancellation; sp(x) = max(x, 0) + l, sp(-x) = max(-x, 0) + l.
 * log1p(e) = log u - ((u - 1) - e) / u with u = 1 + e. */
#define SIG_PARTS(x)                                                                                \
    const REAL ax = x < 0 ? -x : x, ee = EXP(-ax), uu = 1 + ee, dd = 1 / uu;                        \
    const REAL p = x >= 0 ? dd : ee * dd, q = x >= 0 ? ee * dd : dd;                                \
    const REAL lg = LOG(uu) - ((uu - 1) - ee) / uu;                                                 \
    const REAL sp_pos = (x < 0 ? -x : (REAL)0) + lg, sp_neg = (x > 0 ? x : (REAL)0) + lg;

/* (1 - p)^gamma and p^gamma as exp(-gamma sp(x)) and exp(-gamma sp(-x)); squares for gamma = 2. */
#define FOCAL_POWERS                                                                                \
    const REAL qg = g2 ? q * q : EXP(-gamma * sp_neg), pg = g2 ? p * p : EXP(-gamma * sp_pos);

/* One class row of one block; `vt` (voxel term) and `g2` (gamma = 2) are literal constants at every call site, so
 * each variant compiles without the work the others need. */
static ML_INLINE int FN(sig_row)(job_t *J, int64_t b, int64_t c, int64_t n0, int len, const REAL *g, const REAL *v,
                                 const int vt, const int g2) {
    const int64_t C = J->C, N = J->N, B = J->B;
    const REAL *xc = (const REAL *)J->x + (b * C + c) * N + n0;
    const REAL e_sq = J->squared ? (REAL)1 : (REAL)0, gamma = (REAL)J->gamma;
    const int bce = vt == VT_CE, focal = vt == VT_FOCAL;
    if (J->backward) {
        const double *cf = J->coef + b * C + c;
        const REAL kc = (REAL)cf[0] * (1 + e_sq), ac = (REAL)cf[B * C];
        const REAL up = (REAL)cf[2 * B * C], un = (REAL)cf[3 * B * C];
        REAL *gc = (REAL *)J->grad + (b * C + c) * N + n0;
#pragma omp simd
        for (int j = 0; j < len; ++j) {
            const REAL x = xc[j], gj = g[j];
            SIG_PARTS(x)
            FOCAL_POWERS
            const REAL dpos = bce ? p - 1 : focal ? -qg * (gamma * p * sp_pos + q) : (REAL)0;
            const REAL dneg = bce ? p : focal ? pg * (gamma * q * sp_neg + p) : (REAL)0;
            const REAL region = p * q * (ac * gj + kc * (e_sq * p + (1 - e_sq)));
            gc[j] = v[j] * (region + (vt ? up * gj * dpos + un * (1 - gj) * dneg : (REAL)0));
        }
        return ST_OK;
    }
    REAL tpa = 0, pra = 0, tga = 0, vpa = 0, vna = 0;
    int64_t nf = 0;
#pragma omp simd reduction(+ : tpa, pra, tga, vpa, vna, nf)
    for (int j = 0; j < len; ++j) {
        const REAL x = xc[j], dx = x - x, vj = v[j], gj = g[j];
        SIG_PARTS(x)
        FOCAL_POWERS
        nf += dx != dx;
        tpa += vj * p * gj;
        pra += vj * p * (e_sq * p + (1 - e_sq));
        tga += vj * gj * (e_sq * gj + (1 - e_sq));
        vpa += vt ? vj * gj * (focal ? qg * sp_pos : sp_pos) : (REAL)0;
        vna += vt ? vj * (1 - gj) * (focal ? pg * sp_neg : sp_neg) : (REAL)0;
    }
    if (nf) return ST_NONFINITE;
    double *tp = J->acc, *pred = tp + B * C, *tgt = pred + B * C, *vpos = tgt + B * C, *vneg = vpos + B * C;
    tp[b * C + c] += (double)tpa;
    pred[b * C + c] += (double)pra;
    tgt[b * C + c] += (double)tga;
    vpos[b * C + c] += (double)vpa;
    vneg[b * C + c] += (double)vna;
    return ST_OK;
}

ML_CLONES static void FN(sigmoid_range)(job_t *J) {
    const int64_t C = J->C, N = J->N;
    REAL *g = (REAL *)J->scratch, *v = g + BLK;
    int32_t *lab = (int32_t *)(v + BLK);
    const int variant = J->vterm == VT_FOCAL ? (J->gamma_kind == 2 ? 3 : 2) : J->vterm == VT_CE ? 1 : 0;
    for (int64_t blk = J->blk_begin; blk < J->blk_end; ++blk) {
        const int64_t b = blk / J->nblk, n0 = (blk % J->nblk) * BLK;
        const int len = (int)(N - n0 < BLK ? N - n0 : BLK);
        if (!J->dense && load_labels(J, b, n0, len, lab)) { J->status = ST_LABEL; return; }
        FN(sig_valid)(J, b, n0, len, lab, v);
        if (!J->backward) {
            REAL nv = 0;
#pragma omp simd reduction(+ : nv)
            for (int j = 0; j < len; ++j) nv += v[j];
            J->cnt[b * C] += (int64_t)nv;
        }
        for (int64_t c = 0; c < C; ++c) {
            const int bad = FN(sig_target)(J, b, c, n0, len, lab, g);
            if (bad == 1 || (bad == 2 && J->check)) { J->status = bad == 1 ? ST_SOFT : ST_LABEL; return; }
            int st;
            switch (variant) {
            case 0: st = FN(sig_row)(J, b, c, n0, len, g, v, VT_NONE, 0); break;
            case 1: st = FN(sig_row)(J, b, c, n0, len, g, v, VT_CE, 0); break;
            case 2: st = FN(sig_row)(J, b, c, n0, len, g, v, VT_FOCAL, 0); break;
            default: st = FN(sig_row)(J, b, c, n0, len, g, v, VT_FOCAL, 1); break;
            }
            if (st != ST_OK) { J->status = st; return; }
        }
    }
}

#undef SIG_PARTS
#undef FOCAL_POWERS
#undef FN
#undef CAT
#undef CAT_
