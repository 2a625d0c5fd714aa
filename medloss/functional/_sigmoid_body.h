/* Sigmoid region statistics of medloss.functional._kernels, included once per floating type by _kernels.c with
 *   REAL  the logits type,   SFX  the name suffix,   EXP  exp for REAL.
 * Logits X (B, C, N); the target is either dense (B, C, N) binary (J->dense, type J->ycode: float32/float64) or a
 * label map (B, N) whose one-hot is the target (C = 1: the map itself, values {0, 1}). Per sample and class:
 *   TP_c = sum v p_c g_c,  PRED_c = sum v p_c^e,  TARGET_c = sum v g_c^e,  VOXELS = sum v      (p = sigmoid(x))
 * and backward dL/dx_c = v p_c (1 - p_c) (a_c g_c + e k_c p_c^(e-1)) with k = dL/dPRED, a = dL/dTP. */

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)

/* Target of class c for one block into g (REAL 0/1) and, for dense targets, the validity v (0 where any channel
 * equals ignore_index) computed once per block by the caller. Returns non-zero on a dense value not in {0, 1}. */
static ML_INLINE int FN(sig_target)(const job_t *J, int64_t b, int64_t c, int64_t n0, int len, const int32_t *lab,
                                    REAL *g) {
    const int32_t cc = (int32_t)c;
    if (!J->dense) {
        if (J->C == 1) {
#pragma omp simd
            for (int j = 0; j < len; ++j) g[j] = lab[j] == 1 ? (REAL)1 : (REAL)0;
        } else {
#pragma omp simd
            for (int j = 0; j < len; ++j) g[j] = lab[j] == cc ? (REAL)1 : (REAL)0;
        }
        return 0;
    }
    const int64_t off = (b * J->C + c) * J->N + n0;
    int bad = 0;
    if (J->ycode == LAB_F32) {
        const float *t = (const float *)J->y + off;
#pragma omp simd reduction(| : bad)
        for (int j = 0; j < len; ++j) {
            const float v = t[j];
            const int ign = J->has_ignore && v == (float)J->ignore;
            bad |= !ign & (v != 0.0f) & (v != 1.0f);
            g[j] = v == 1.0f ? (REAL)1 : (REAL)0;
        }
    } else {
        const double *t = (const double *)J->y + off;
#pragma omp simd reduction(| : bad)
        for (int j = 0; j < len; ++j) {
            const double v = t[j];
            const int ign = J->has_ignore && v == (double)J->ignore;
            bad |= !ign & (v != 0.0) & (v != 1.0);
            g[j] = v == 1.0 ? (REAL)1 : (REAL)0;
        }
    }
    return bad;
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

ML_CLONES static void FN(sigmoid_range)(job_t *J) {
    const int64_t C = J->C, N = J->N, B = J->B;
    const REAL *X = (const REAL *)J->x;
    REAL *G = (REAL *)J->grad;
    REAL *g = (REAL *)J->scratch, *v = g + BLK;
    int32_t *lab = (int32_t *)(v + BLK);
    const REAL e_sq = J->squared ? (REAL)1 : (REAL)0;
    double *tp = J->acc, *pred = J->acc + B * C, *tgt = J->acc + 2 * B * C;
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
            if (FN(sig_target)(J, b, c, n0, len, lab, g) && J->check) { J->status = ST_LABEL; return; }
            const REAL *xc = X + (b * C + c) * N + n0;
            if (J->backward) {
                const REAL kc = (REAL)J->coef[b * C + c] * (1 + e_sq), ac = (REAL)J->coef[B * C + b * C + c];
                REAL *gc = G + (b * C + c) * N + n0;
#pragma omp simd
                for (int j = 0; j < len; ++j) {
                    const REAL x = xc[j], ax = x < 0 ? -x : x, e = EXP(-ax), d = 1 / (1 + e);
                    const REAL p = x >= 0 ? d : e * d, dp = e * d * d; /* sigma(x), sigma'(x) = p (1 - p) */
                    gc[j] = v[j] * dp * (ac * g[j] + kc * (e_sq * p + (1 - e_sq)));
                }
            } else {
                REAL tpa = 0, pra = 0, tga = 0;
                int64_t nf = 0;
#pragma omp simd reduction(+ : tpa, pra, tga, nf)
                for (int j = 0; j < len; ++j) {
                    const REAL x = xc[j], dx = x - x, ax = x < 0 ? -x : x, e = EXP(-ax), d = 1 / (1 + e);
                    const REAL p = x >= 0 ? d : e * d, vj = v[j], gj = g[j];
                    nf += dx != dx;
                    tpa += vj * p * gj;
                    pra += vj * p * (e_sq * p + (1 - e_sq));
                    tga += vj * gj; /* g in {0, 1}: g^2 = g */
                }
                if (nf) { J->status = ST_NONFINITE; return; }
                tp[b * C + c] += (double)tpa;
                pred[b * C + c] += (double)pra;
                tgt[b * C + c] += (double)tga;
            }
        }
    }
}

#undef FN
#undef CAT
#undef CAT_
