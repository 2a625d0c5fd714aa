"""Reference AnatomyNet Dice + Focal loss.

source: Zhu, Huang, Tang, Qian, Du, Fan, Xie, "AnatomyNet: Deep learning for fast and fully
automated whole-volume segmentation of head and neck anatomy", Medical Physics 46(2), 2019
(arXiv:1808.05238); details from the authors' code (``src/AnatomyNet.py``:
``tversky_loss_wmask``, ``focal``) as summarised in loss-anchors §2.2.

    L       = L_Dice + lambda * L_Focal
    L_Dice  = sum_c m_c w_c - sum_c m_c w_c TP_c / (TP_c + alpha FN_c + beta FP_c)
              (alpha = beta = 0.5 -> per-class Dice; with all m_c = w_c = 1 this is the paper's
               C - sum_c TP_c / (TP_c + alpha FN_c + beta FP_c))
              TP/FN/FP are summed over the batch and all (valid) voxels ("batch Dice").
    L_Focal = -(1/N) sum_c sum_n m w_c g_{n,c} (1 - p_{n,c})^gamma log p_{n,c}      gamma = 2
              N = number of (valid) voxels in the batch (B x voxels when nothing is ignored).

  * alpha weighs FN and beta weighs FP (the paper's / Salehi's notation, *not* MONAI's).
  * class availability mask m: shape (C,) or (B, C) 0/1.  With a (B, C) mask the statistics of class
    c are pooled only over the samples with m[b, c] = 1 and the class term is dropped (its m_c w_c is
    not added) if no sample has it; the focal term multiplies each (b, c) by m[b, c].
  * class weights w_c multiply both terms (the authors pass ``flagvec * lossweight`` to both).
  * smoothing: the authors add 1e-5 to the denominator only (``smooth_nr=0, smooth_dr=1e-5``).
  * log p is evaluated at max(p, p_min) with p_min = 1e-6 (authors: ``clamp(p, 1e-6, 1)``).
"""

from __future__ import annotations

import math

import numpy as np

from ._common import flat_bcn, flat_valid, to_numpy


def anatomynet_terms(
    p, g, valid=None, *, alpha: float = 0.5, beta: float = 0.5, gamma: float = 2.0, class_weights=None,
    class_mask=None, smooth_nr: float = 0.0, smooth_dr: float = 1e-5, p_min: float = 1e-6,
):
    """Returns (L_Dice, L_Focal)."""
    P = flat_bcn(p)
    G = flat_bcn(g)
    B, C, N = P.shape
    V = flat_valid(valid, B, N)
    w = [1.0] * C if class_weights is None else [float(v) for v in to_numpy(class_weights).reshape(-1)]
    if class_mask is None:
        M = np.ones((B, C))
    else:
        m = to_numpy(class_mask)
        M = np.broadcast_to(m.reshape(1, C) if m.ndim == 1 else m.reshape(B, C), (B, C))

    l_dice = 0.0
    for c in range(C):
        samples = [b for b in range(B) if M[b, c] != 0]
        if not samples:
            continue
        tp = fn = fp = 0.0
        for b in samples:
            for n in range(N):
                if V[b, n] == 0:
                    continue
                pv, gv = float(P[b, c, n]), float(G[b, c, n])
                tp += pv * gv
                fn += (1.0 - pv) * gv
                fp += pv * (1.0 - gv)
        t = (tp + smooth_nr) / (tp + alpha * fn + beta * fp + smooth_dr)
        l_dice += w[c] - w[c] * t

    n_valid = 0.0
    focal_sum = 0.0
    for b in range(B):
        for n in range(N):
            if V[b, n] == 0:
                continue
            n_valid += 1.0
            for c in range(C):
                gv = float(G[b, c, n])
                if gv == 0.0 or M[b, c] == 0:
                    continue
                pv = float(P[b, c, n])
                focal_sum += -M[b, c] * w[c] * gv * (1.0 - pv) ** gamma * math.log(max(pv, p_min))
    l_focal = focal_sum / n_valid
    return l_dice, l_focal


def anatomynet_loss(p, g, valid=None, *, lambda_focal: float, **kw) -> float:
    l_dice, l_focal = anatomynet_terms(p, g, valid, **kw)
    return l_dice + lambda_focal * l_focal
