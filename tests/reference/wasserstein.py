"""Reference generalised Wasserstein Dice loss, written from the paper with explicit per-voxel loops.

sources:
  * Fidon et al., "Generalised Wasserstein Dice Score for Imbalanced Multi-class Segmentation using Holistic
    Convolutional Networks", BrainLes 2017 (arXiv:1707.00478), Eq. 6-9: the Wasserstein error of voxel i under
    the class distance matrix M is WE_i = sum_c M[y_i, c] p_ic; with weights a_l (a_background = 0, else 1)
        TP = sum_i a_{y_i} (1 - WE_i),   loss = 1 - 2 TP / (2 TP + sum_i WE_i)
  * Tilborghs et al. (arXiv:2007.15546, appendix), the "GDL" weighting: a_l = 1 / (n_l + 1) with n_l the voxel
    count of class l, and denominator sum_i a_{y_i} (2 - WE_i).
M is scaled to a maximum of 1. Smoothing s_nr, s_dr are added to numerator and denominator. Voxels with valid = 0
are skipped.
"""
from __future__ import annotations

import numpy as np

from ._common import flat_bcn, to_numpy


def gwdl_loss(p, labels, dist, valid=None, *, weighting_mode="default", smooth_nr=1e-5, smooth_dr=1e-5,
              batch=False):
    """(B,) losses (or (1,) with ``batch``) for probabilities p (B, C, *S) and labels (B, *S)."""
    P = flat_bcn(p)
    B, C, N = P.shape
    Y = to_numpy(labels).reshape(B, N).astype(np.int64)
    V = np.ones((B, N)) if valid is None else to_numpy(valid).reshape(B, N)
    M = to_numpy(dist)
    M = M / M.max()
    rows = [list(range(B))] if batch else [[b] for b in range(B)]
    out = []
    for members in rows:
        counts = np.zeros(C)
        for b in members:
            for n in range(N):
                if V[b, n]:
                    counts[Y[b, n]] += 1
        alpha = 1.0 / (counts + 1.0) if weighting_mode == "GDL" else np.array([0.0] + [1.0] * (C - 1))
        tp = err = denom = 0.0
        for b in members:
            for n in range(N):
                if not V[b, n]:
                    continue
                y = Y[b, n]
                we = sum(M[y, c] * P[b, c, n] for c in range(C))
                tp += alpha[y] * (1.0 - we)
                err += we
                denom += alpha[y] * (2.0 - we)
        if weighting_mode != "GDL":
            denom = 2.0 * tp + err
        out.append(1.0 - (2.0 * tp + smooth_nr) / (denom + smooth_dr))
    return np.array(out)
