/* Kernel body of medloss.backends.cpu._kernels, included once per floating type by _kernels.c with
 *   REAL  the logits type (float or double),   SFX  the name suffix,   EXP/LOG  exp and log for REAL.
 * Shapes: logits X (B, C, N) contiguous; labels Y (B, N); work is split into blocks of BLK voxels of one sample.
 * The math is in medloss/backends/eager/softmax.py's docstring; variable names follow it. */

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)

/* Softmax of one block: m = max_c x_c, E_c = exp(x_c - m), s = sum_c E_c. Returns the number of non-finite logits
 * (x - x is NaN exactly for +-inf and NaN). */
static ML_INLINE int64_t FN(block_softmax)(const REAL *xb, int64_t C, int64_t N, int len, REAL *E, REAL *m,
                                           REAL *s, const int check) {
    int64_t nf = 0;
#pragma omp simd reduction(+ : nf)
    for (int j = 0; j < len; ++j) {
        REAL v = xb[j];
        REAL d = v - v;
        nf += d != d;
        m[j] = v;
        s[j] = 0;
    }
    for (int64_t c = 1; c < C; ++c) {
        const REAL *xc = xb + c * N;
        if (check) {
#pragma omp simd reduction(+ : nf)
            for (int j = 0; j < len; ++j) {
                REAL v = xc[j];
                REAL d = v - v;
                nf += d != d;
                m[j] = v > m[j] ? v : m[j];
            }
        } else {
#pragma omp simd
            for (int j = 0; j < len; ++j) {
                REAL v = xc[j];
                m[j] = v > m[j] ? v : m[j];
            }
        }
    }
    for (int64_t c = 0; c < C; ++c) {
        const REAL *xc = xb + c * N;
        REAL *ec = E + c * BLK;
#pragma omp simd
        for (int j = 0; j < len; ++j) {
            REAL e = EXP(xc[j] - m[j]);
            ec[j] = e;
            s[j] += e;
        }
    }
    return nf;
}

/* (1 - p)^gamma for q = 1 - p in [0, 1] and gamma != 2 (gamma = 2 is q * q at the call sites): exp(gamma log q),
 * 0 at q = 0 for gamma > 0 and 1 for gamma = 0 (as torch.pow(0, 0)). */
static ML_INLINE REAL FN(qpow)(REAL q, REAL gamma) {
    const REAL qq = q > (REAL)1e-30 ? q : (REAL)1e-30;
    const REAL r = EXP(gamma * LOG(qq));
    return (q > 0 || gamma == 0) ? r : (REAL)0;
}

/* Voxel terms of the labelled class as functions of l = log p_y (q = 1 - p_y, computed without cancellation), with
 * l clamped to [lo, hi] as torch.clamp does (outside the range phi takes the clamped value and the slope is 0):
 * phi and slope = dphi/dl = p phi'(p).  ce: -l.  focal: -(1-p)^gamma l.  explog: (-l)^gamma (Wong et al.). */
typedef struct { REAL lo, hi, qlo, qhi, gamma; } FN(vt_t);

static ML_INLINE REAL FN(vt_clamp)(const FN(vt_t) *V, REAL l) { return l < V->lo ? V->lo : (l > V->hi ? V->hi : l); }
static ML_INLINE REAL FN(vt_inside)(const FN(vt_t) *V, REAL l) { return (l >= V->lo) & (l <= V->hi) ? 1 : 0; }
static ML_INLINE REAL FN(vt_q)(const FN(vt_t) *V, REAL l, REAL q) { return l < V->lo ? V->qlo : (l > V->hi ? V->qhi : q); }

static ML_INLINE REAL FN(phi_ce)(const FN(vt_t) *V, REAL l, REAL q) { (void)q; return -FN(vt_clamp)(V, l); }
static ML_INLINE REAL FN(phi_focal2)(const FN(vt_t) *V, REAL l, REAL q) {
    const REAL qe = FN(vt_q)(V, l, q);
    return -FN(vt_clamp)(V, l) * qe * qe;
}
static ML_INLINE REAL FN(phi_focal)(const FN(vt_t) *V, REAL l, REAL q) {
    return -FN(vt_clamp)(V, l) * FN(qpow)(FN(vt_q)(V, l, q), V->gamma);
}
static ML_INLINE REAL FN(phi_explog)(const FN(vt_t) *V, REAL l, REAL q) {
    (void)q;
    return FN(qpow)(-FN(vt_clamp)(V, l), V->gamma);
}
static ML_INLINE REAL FN(slope_ce)(const FN(vt_t) *V, REAL l, REAL q, REAL p) {
    (void)q; (void)p;
    return -FN(vt_inside)(V, l);
}
static ML_INLINE REAL FN(slope_focal2)(const FN(vt_t) *V, REAL l, REAL q, REAL p) {
    return FN(vt_inside)(V, l) * (2 * p * q * l - q * q);
}
static ML_INLINE REAL FN(slope_focal)(const FN(vt_t) *V, REAL l, REAL q, REAL p) {
    /* q^(gamma-1) = q^gamma / q; its product with log p -> 0 at q = 0 */
    const REAL qg = FN(qpow)(q, V->gamma), qd = q > 0 ? q : (REAL)1;
    return FN(vt_inside)(V, l) * (V->gamma * p * (q > 0 ? qg / qd : (REAL)0) * l - qg);
}
static ML_INLINE REAL FN(slope_explog)(const FN(vt_t) *V, REAL l, REAL q, REAL p) {
    (void)q; (void)p;
    const REAL base = -FN(vt_clamp)(V, l), bd = base > 0 ? base : (REAL)1;
    return base > 0 ? -FN(vt_inside)(V, l) * V->gamma * FN(qpow)(base, V->gamma) / bd : (REAL)0;
}

/* log p_y from d = x_y - max_c x_c, s = sum_c exp(x_c - max) and q = 1 - p_y = sum_{c != y} E_c / s: d - log s
 * (exact where p_y underflows), or log1p(-q) = log u - ((u - 1) + q) / u with u = 1 - q where p_y > 3/4 (accurate
 * to rounding near p_y = 1, where d - log s cancels). */
static ML_INLINE REAL FN(log_py)(REAL d, REAL s, REAL q) {
    const REAL u = 1 - q, near_one = LOG(u) - ((u - 1) + q) / u;
    return q < (REAL)0.25 ? near_one : d - LOG(s);
}

static ML_INLINE FN(vt_t) FN(vt_params)(const job_t *J) {
    FN(vt_t) V = {(REAL)J->vlo, (REAL)J->vhi, (REAL)(-expm1(J->vlo)), (REAL)(-expm1(J->vhi)), (REAL)J->gamma};
    return V;
}

#define PHI_LOOP(fn)                                                                                \
    _Pragma("omp simd")                                                                             \
    for (int j = 0; j < len; ++j) {                                                                 \
        const REAL q = so[j] * inv[j], l = FN(log_py)(xy[j] - m[j], s[j], q);                       \
        const REAL f = fn(&V, l, q);                                                                \
        phi[j] = lab[j] >= 0 ? f : (REAL)0;                                                         \
    }
#define SLOPE_LOOP(fn)                                                                              \
    _Pragma("omp simd")                                                                             \
    for (int j = 0; j < len; ++j) {                                                                 \
        const REAL q = so[j] * inv[j], l = FN(log_py)(xy[j] - m[j], s[j], q);                       \
        tn[j] = fn(&V, l, q, ey[j] * inv[j]);                                                       \
    }

/* Forward over blocks [blk_begin, blk_end): per-thread sums TP, PRED, VOX (double) and TARGET (int64). */
ML_CLONES static void FN(forward_range)(job_t *J) {
    const int64_t C = J->C, N = J->N, B = J->B;
    const REAL *X = (const REAL *)J->x;
    REAL *E = (REAL *)J->scratch;
    REAL *m = E + C * BLK, *s = m + BLK, *inv = s + BLK, *xy = inv + BLK, *ey = xy + BLK, *so = ey + BLK;
    REAL *phi = so + BLK, *we = phi + BLK;
    int32_t *lab = (int32_t *)(we + BLK);
    const double *M = J->matrix;
    double *tp = J->acc, *pred = J->acc + B * C, *vox = J->acc + 2 * B * C;
    for (int64_t blk = J->blk_begin; blk < J->blk_end; ++blk) {
        const int64_t b = blk / J->nblk, n0 = (blk % J->nblk) * BLK;
        const int len = (int)(N - n0 < BLK ? N - n0 : BLK);
        if (load_labels(J, b, n0, len, lab)) { J->status = ST_LABEL; return; }
        const REAL *xb = X + b * C * N + n0;
        if (FN(block_softmax)(xb, C, N, len, E, m, s, 1)) { J->status = ST_NONFINITE; return; }
#pragma omp simd
        for (int j = 0; j < len; ++j) {
            inv[j] = (REAL)1 / s[j];
            xy[j] = 0; ey[j] = 0; so[j] = 0;
        }
        const REAL e_sq = J->squared ? (REAL)1 : (REAL)0;
        const int wass = J->vterm == VT_WASS;
        const int gather = J->vterm != VT_NONE && !wass; /* phi(l) needs x_y, E_y and sum_{c != y} E_c */
        for (int64_t c = 0; c < C; ++c) {
            const REAL *ec = E + c * BLK, *xc = xb + c * N;
            REAL tpa = 0, pra = 0;
            int32_t tga = 0;
            const int32_t cc = (int32_t)c;
            if (wass) { /* WE = sum_c M[y, c] p_c (M's row 0 stands in for an ignored voxel's, whose phi is 0) */
#pragma omp simd reduction(+ : tpa, pra, tga)
                for (int j = 0; j < len; ++j) {
                    const REAL p = ec[j] * inv[j];
                    const int is = lab[j] == cc, valid = lab[j] >= 0;
                    pra += valid ? p * (e_sq * p + (1 - e_sq)) : (REAL)0;
                    tpa += is ? p : (REAL)0;
                    tga += is;
                    we[j] = (c == 0 ? (REAL)0 : we[j]) + (REAL)M[(valid ? lab[j] : 0) * C + c] * p;
                }
            } else if (gather) {
#pragma omp simd reduction(+ : tpa, pra, tga)
                for (int j = 0; j < len; ++j) {
                    const REAL e = ec[j], p = e * inv[j];
                    const int is = lab[j] == cc, valid = lab[j] >= 0;
                    pra += valid ? p * (e_sq * p + (1 - e_sq)) : (REAL)0;
                    tpa += is ? p : (REAL)0;
                    tga += is;
                    xy[j] = is ? xc[j] : xy[j];
                    ey[j] = is ? e : ey[j];
                    so[j] += is ? (REAL)0 : e;
                }
            } else {
#pragma omp simd reduction(+ : tpa, pra, tga)
                for (int j = 0; j < len; ++j) {
                    const REAL p = ec[j] * inv[j];
                    const int is = lab[j] == cc, valid = lab[j] >= 0;
                    pra += valid ? p * (e_sq * p + (1 - e_sq)) : (REAL)0;
                    tpa += is ? p : (REAL)0;
                    tga += is;
                }
            }
            tp[b * C + c] += (double)tpa;
            pred[b * C + c] += (double)pra;
            J->cnt[b * C + c] += tga;
        }
        if (J->vterm == VT_NONE) continue;
        const FN(vt_t) V = FN(vt_params)(J);
        if (wass) {
#pragma omp simd
            for (int j = 0; j < len; ++j) phi[j] = lab[j] >= 0 ? we[j] : (REAL)0;
        }
        else if (J->vterm == VT_CE) { PHI_LOOP(FN(phi_ce)) }
        else if (J->vterm == VT_FOCAL && J->gamma_kind == 2) { PHI_LOOP(FN(phi_focal2)) }
        else if (J->vterm == VT_FOCAL) { PHI_LOOP(FN(phi_focal)) }
        else { PHI_LOOP(FN(phi_explog)) }
        for (int64_t c = 0; c < C; ++c) {
            REAL va = 0;
            const int32_t cc = (int32_t)c;
#pragma omp simd reduction(+ : va)
            for (int j = 0; j < len; ++j) {
                const REAL f = phi[j];
                va += lab[j] == cc ? f : (REAL)0;
            }
            vox[b * C + c] += (double)va;
        }
    }
}

/* Backward over blocks [blk_begin, blk_end): writes dL/dx for every element of those blocks. coef = (3, B, C):
 * k = dL/dPRED, a = dL/dTP, u = dL/dVOX. */
ML_CLONES static void FN(backward_range)(job_t *J) {
    const int64_t C = J->C, N = J->N, B = J->B;
    const REAL *X = (const REAL *)J->x;
    REAL *G = (REAL *)J->grad;
    REAL *E = (REAL *)J->scratch;
    REAL *m = E + C * BLK, *s = m + BLK, *inv = s + BLK, *xy = inv + BLK, *ey = xy + BLK, *so = ey + BLK;
    REAL *ay = so + BLK, *uy = ay + BLK, *tk = uy + BLK, *sn = tk + BLK, *tn = sn + BLK, *we = tn + BLK;
    int32_t *lab = (int32_t *)(we + BLK);
    const double *M = J->matrix;
    const int wass = J->vterm == VT_WASS;
    const REAL e_sq = J->squared ? (REAL)1 : (REAL)0;
    for (int64_t blk = J->blk_begin; blk < J->blk_end; ++blk) {
        const int64_t b = blk / J->nblk, n0 = (blk % J->nblk) * BLK;
        const int len = (int)(N - n0 < BLK ? N - n0 : BLK);
        if (load_labels(J, b, n0, len, lab)) { J->status = ST_LABEL; return; }
        const REAL *xb = X + b * C * N + n0;
        REAL *gb = G + b * C * N + n0;
        FN(block_softmax)(xb, C, N, len, E, m, s, 0); /* checked in forward; autograd forbids in-place edits */
        const double *K = J->coef + b * C, *A = J->coef + B * C + b * C, *U = J->coef + 2 * B * C + b * C;
#pragma omp simd
        for (int j = 0; j < len; ++j) {
            inv[j] = (REAL)1 / s[j];
            xy[j] = 0; ey[j] = 0; so[j] = 0; ay[j] = 0; uy[j] = 0; tk[j] = 0; we[j] = 0;
        }
        const int gather = J->vterm != VT_NONE && !wass;
        for (int64_t c = 0; c < C; ++c) {
            const REAL *ec = E + c * BLK, *xc = xb + c * N;
            const REAL kc = (REAL)K[c] * (1 + e_sq), ac = (REAL)A[c], uc = (REAL)U[c];
            const int32_t cc = (int32_t)c;
            if (wass) {
#pragma omp simd
                for (int j = 0; j < len; ++j) {
                    const REAL e = ec[j], p = e * inv[j];
                    const int is = lab[j] == cc;
                    tk[j] += kc * p * (e_sq * p + (1 - e_sq));
                    ey[j] = is ? e : ey[j];
                    ay[j] = is ? ac : ay[j];
                    uy[j] = is ? uc : uy[j];
                    so[j] += is ? (REAL)0 : e;
                    we[j] += (REAL)M[(lab[j] >= 0 ? lab[j] : 0) * C + c] * p;
                }
            } else if (gather) {
#pragma omp simd
                for (int j = 0; j < len; ++j) {
                    const REAL e = ec[j], p = e * inv[j];
                    const int is = lab[j] == cc;
                    tk[j] += kc * p * (e_sq * p + (1 - e_sq)); /* sum_c e k_c p_c^e */
                    xy[j] = is ? xc[j] : xy[j];
                    ey[j] = is ? e : ey[j];
                    ay[j] = is ? ac : ay[j];
                    uy[j] = is ? uc : uy[j];
                    so[j] += is ? (REAL)0 : e;
                }
            } else {
#pragma omp simd
                for (int j = 0; j < len; ++j) {
                    const REAL e = ec[j], p = e * inv[j];
                    const int is = lab[j] == cc;
                    tk[j] += kc * p * (e_sq * p + (1 - e_sq));
                    ey[j] = is ? e : ey[j];
                    ay[j] = is ? ac : ay[j];
                }
            }
        }
        const REAL use_u = gather ? (REAL)1 : (REAL)0; /* the phi(l) terms' u; the Wasserstein term's is w below */
        const FN(vt_t) V = FN(vt_params)(J);
        if (J->vterm == VT_CE) { SLOPE_LOOP(FN(slope_ce)) }
        else if (J->vterm == VT_FOCAL && J->gamma_kind == 2) { SLOPE_LOOP(FN(slope_focal2)) }
        else if (J->vterm == VT_FOCAL) { SLOPE_LOOP(FN(slope_focal)) }
        else if (J->vterm == VT_EXPLOG) { SLOPE_LOOP(FN(slope_explog)) }
        else {
#pragma omp simd
            for (int j = 0; j < len; ++j) tn[j] = 0;
        }
#pragma omp simd
        for (int j = 0; j < len; ++j) {
            const REAL py = ey[j] * inv[j], slope = tn[j], a = ay[j], u = uy[j], t = tk[j];
            const REAL valid = lab[j] >= 0 ? (REAL)1 : (REAL)0;
            const REAL sj = valid * (a * py + use_u * u * slope);
            const REAL q = gather || wass ? so[j] * inv[j] : 1 - py; /* 1 - p_y, exact when gathered */
            const REAL w = wass ? valid * u : (REAL)0; /* Wasserstein: w M[y, c] joins class c's factor, w WE t */
            sn[j] = sj;
            tn[j] = valid * t + w * we[j];
            so[j] = q;
            uy[j] = w;
        }
        /* Two copies of the class loop: the Wasserstein one adds the cost-matrix gather M[y, c] per voxel, which
           would keep the common loop from vectorising; the two differ only in that term. */
        for (int64_t c = 0; c < C && wass; ++c) {
            const REAL *ec = E + c * BLK;
            REAL *gc = gb + c * N;
            const REAL kc = (REAL)K[c] * (1 + e_sq);
            const int32_t cc = (int32_t)c;
#pragma omp simd
            for (int j = 0; j < len; ++j) {
                const REAL p = ec[j] * inv[j], t = tn[j], sj = sn[j], q = so[j];
                const int l = lab[j];
                const REAL mc = (REAL)M[(l >= 0 ? l : 0) * C + c];
                const REAL f = (l >= 0 ? kc * (e_sq * p + (1 - e_sq)) : (REAL)0) + uy[j] * mc;
                gc[j] = p * (f - t) + (l == cc ? sj * q : -p * sj);
            }
        }
        for (int64_t c = 0; c < C && !wass; ++c) {
            const REAL *ec = E + c * BLK;
            REAL *gc = gb + c * N;
            const REAL kc = (REAL)K[c] * (1 + e_sq);
            const int32_t cc = (int32_t)c;
#pragma omp simd
            for (int j = 0; j < len; ++j) {
                const REAL p = ec[j] * inv[j], t = tn[j], sj = sn[j], q = so[j];
                const int l = lab[j];
                const REAL f = l >= 0 ? kc * (e_sq * p + (1 - e_sq)) : (REAL)0;
                /* p (f - t - s) + [c = y] s, with the labelled class's s (1 - p_y) taken as s q: no cancellation */
                gc[j] = p * (f - t) + (l == cc ? sj * q : -p * sj);
            }
        }
    }
}

#undef PHI_LOOP
#undef SLOPE_LOOP
#undef FN
#undef CAT
#undef CAT_
