/* Kernel body of medloss.functional._kernels, included once per floating type by _kernels.c with
 *   REAL  the logits type (float or double),   SFX  the name suffix,   EXP/LOG  exp and log for REAL.
 * Shapes: logits X (B, C, N) contiguous; labels Y (B, N); work is split into blocks of BLK voxels of one sample.
 * The math is in medloss/functional/fused.py's docstring; variable names follow it. */

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

/* Forward over blocks [blk_begin, blk_end): per-thread sums TP, PRED, VOX (double) and TARGET (int64). */
ML_CLONES static void FN(forward_range)(job_t *J) {
    const int64_t C = J->C, N = J->N, B = J->B;
    const REAL *X = (const REAL *)J->x;
    REAL *E = (REAL *)J->scratch;
    REAL *m = E + C * BLK, *s = m + BLK, *inv = s + BLK, *xy = inv + BLK, *ey = xy + BLK, *so = ey + BLK;
    REAL *phi = so + BLK;
    int32_t *lab = (int32_t *)(phi + BLK);
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
        const int gather = J->vterm != VT_NONE; /* the voxel term needs x_y, E_y and sum_{c != y} E_c */
        for (int64_t c = 0; c < C; ++c) {
            const REAL *ec = E + c * BLK, *xc = xb + c * N;
            REAL tpa = 0, pra = 0;
            int32_t tga = 0;
            const int32_t cc = (int32_t)c;
            if (gather) {
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
        if (J->vterm == VT_CE) {
#pragma omp simd
            for (int j = 0; j < len; ++j) {
                const REAL logp = xy[j] - m[j] - LOG(s[j]); /* exact even where p_y underflows */
                phi[j] = lab[j] >= 0 ? -logp : (REAL)0;
            }
        } else if (J->gamma_kind == 2) {
#pragma omp simd
            for (int j = 0; j < len; ++j) {
                const REAL logp = xy[j] - m[j] - LOG(s[j]), q = so[j] * inv[j];
                phi[j] = lab[j] >= 0 ? -logp * q * q : (REAL)0;
            }
        } else {
            const REAL gamma = (REAL)J->gamma;
#pragma omp simd
            for (int j = 0; j < len; ++j) {
                const REAL logp = xy[j] - m[j] - LOG(s[j]);
                const REAL f = -logp * FN(qpow)(so[j] * inv[j], gamma);
                phi[j] = lab[j] >= 0 ? f : (REAL)0;
            }
        }
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
    REAL *ay = so + BLK, *uy = ay + BLK, *tk = uy + BLK, *sn = tk + BLK, *tn = sn + BLK;
    int32_t *lab = (int32_t *)(tn + BLK);
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
            xy[j] = 0; ey[j] = 0; so[j] = 0; ay[j] = 0; uy[j] = 0; tk[j] = 0;
        }
        const int gather = J->vterm != VT_NONE;
        for (int64_t c = 0; c < C; ++c) {
            const REAL *ec = E + c * BLK, *xc = xb + c * N;
            const REAL kc = (REAL)K[c] * (1 + e_sq), ac = (REAL)A[c], uc = (REAL)U[c];
            const int32_t cc = (int32_t)c;
            if (gather) {
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
        const REAL gamma = (REAL)J->gamma, use_u = J->vterm == VT_NONE ? (REAL)0 : (REAL)1;
        /* tn = p phi'(p) at p = p_y: gamma p (1-p)^(gamma-1) log p - (1-p)^gamma (focal), -1 (cross-entropy) */
        if (J->vterm == VT_FOCAL && J->gamma_kind == 2) {
#pragma omp simd
            for (int j = 0; j < len; ++j) {
                const REAL py = ey[j] * inv[j], logp = xy[j] - m[j] - LOG(s[j]), q = so[j] * inv[j];
                tn[j] = 2 * py * q * logp - q * q;
            }
        } else if (J->vterm == VT_FOCAL) {
#pragma omp simd
            for (int j = 0; j < len; ++j) { /* q^(gamma-1) = q^gamma / q; its product with log p -> 0 at q = 0 */
                const REAL py = ey[j] * inv[j], logp = xy[j] - m[j] - LOG(s[j]), q = so[j] * inv[j];
                const REAL qg = FN(qpow)(q, gamma), qd = q > 0 ? q : (REAL)1;
                tn[j] = gamma * py * (q > 0 ? qg / qd : (REAL)0) * logp - qg;
            }
        } else {
#pragma omp simd
            for (int j = 0; j < len; ++j) tn[j] = -1; /* p phi'(p) = -1 for cross-entropy */
        }
#pragma omp simd
        for (int j = 0; j < len; ++j) {
            const REAL py = ey[j] * inv[j], slope = tn[j], a = ay[j], u = uy[j], t = tk[j];
            const REAL valid = lab[j] >= 0 ? (REAL)1 : (REAL)0;
            const REAL sj = valid * (a * py + use_u * u * slope);
            sn[j] = sj;
            tn[j] = valid * t + sj;
        }
        for (int64_t c = 0; c < C; ++c) {
            const REAL *ec = E + c * BLK;
            REAL *gc = gb + c * N;
            const REAL kc = (REAL)K[c] * (1 + e_sq);
            const int32_t cc = (int32_t)c;
#pragma omp simd
            for (int j = 0; j < len; ++j) {
                const REAL p = ec[j] * inv[j], t = tn[j], sj = sn[j];
                const int l = lab[j];
                const REAL f = l >= 0 ? kc * (e_sq * p + (1 - e_sq)) : (REAL)0;
                gc[j] = p * (f - t) + (l == cc ? sj : (REAL)0);
            }
        }
    }
}

#undef FN
#undef CAT
#undef CAT_
