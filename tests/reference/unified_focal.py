"""Reference Unified Focal loss (symmetric and asymmetric), any number of classes.

source: Yeung, Sala, Schoenlieb, Rundo, "Unified Focal loss: Generalising Dice and cross entropy-based losses
to handle class imbalanced medical image segmentation", CMIG 95 (2022), arXiv:2102.04525, eqs. (14)-(21), and
the authors' binary code (mlyg/unified-focal-loss, loss_functions.py) for the averaging conventions. Class 0 is
the background, classes >= 1 the rare ones. With p clamped to [eps, 1 - eps], per sample:

    mTI_c = (TP_c + eps) / (TP_c + delta FN_c + (1 - delta) FP_c + eps)
    L_mFTL = mean_c f_c(1 - mTI_c);  symmetric f_c(x) = x^(1-gamma);  asymmetric f_0(x) = x, f_c(x) = x^(1-gamma)
    L_mF = (1/N) sum_n sum_c w_c m_c(p) (-g log p);  w_0 = 1 - delta, w_c = delta;
           symmetric m_c(p) = (1-p)^gamma;  asymmetric m_0(p) = (1-p)^gamma, m_c = 1
    L = weight * L_mF + (1 - weight) * L_mFTL

Ignored voxels (valid = 0) are in no sum and not in N.
"""

from __future__ import annotations

import math

import numpy as np

from ._common import flat_bcn, flat_valid


def unified_focal(p, g, *, weight=0.5, delta=0.6, gamma=0.5, asymmetric=False, eps=1e-7, valid=None):
    """(B,) per-sample Unified Focal loss of probabilities p and one-hot g, both (B, C, *S)."""
    P, G = flat_bcn(p), flat_bcn(g)
    B, C, N = P.shape
    V = flat_valid(valid, B, N)
    out = np.zeros(B)
    for b in range(B):
        ftl = []
        focal = 0.0
        for c in range(C):
            tp = fn = fp = 0.0
            for n in range(N):
                if not V[b, n]:
                    continue
                q = min(max(P[b, c, n], eps), 1.0 - eps)
                tp += G[b, c, n] * q
                fn += G[b, c, n] * (1.0 - q)
                fp += (1.0 - G[b, c, n]) * q
                w = 1.0 - delta if c == 0 else delta
                mod = (1.0 - q) ** gamma if (c == 0 or not asymmetric) else 1.0
                focal += w * mod * (-G[b, c, n] * math.log(q))
            mti = (tp + eps) / (tp + delta * fn + (1.0 - delta) * fp + eps)
            ftl.append((1.0 - mti) if (asymmetric and c == 0) else (1.0 - mti) ** (1.0 - gamma))
        out[b] = weight * focal / V[b].sum() + (1.0 - weight) * sum(ftl) / C
    return out
