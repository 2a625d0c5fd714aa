"""Reference Matthews correlation coefficient loss, written from the paper with explicit loops.

source: Abhishek & Hamarneh, "Matthews Correlation Coefficient Loss for Deep Convolutional Networks: Application
to Skin Lesion Segmentation", ISBI 2021 (arXiv:2010.13454), Eq. 3-5: the soft confusion matrix

    TP = sum_n p g    TN = sum_n (1-p)(1-g)    FP = sum_n p (1-g)    FN = sum_n (1-p) g

over the valid voxels, MCC = (TP TN - FP FN + s_nr) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN) + s_dr), loss = 1 - MCC,
and 0 for a perfect prediction (FP = FN = 0). Batch pooling adds the sums over b before the ratio.
"""
from __future__ import annotations

import math

import numpy as np

from ._common import flat_bcn, flat_valid


def mcc_loss(p, g, valid=None, *, smooth_nr: float = 0.0, smooth_dr: float = 1e-5, batch: bool = False):
    """(B, C) losses, or (C,) with ``batch``."""
    P, G = flat_bcn(p), flat_bcn(g)
    B, C, N = P.shape
    V = flat_valid(valid, B, N)
    sums = np.zeros((B, C, 4))
    for b in range(B):
        for c in range(C):
            for n in range(N):
                v, x, y = V[b, n], P[b, c, n], G[b, c, n]
                sums[b, c] += v * np.array([x * y, (1 - x) * (1 - y), x * (1 - y), (1 - x) * y])
    if batch:
        sums = sums.sum(axis=0, keepdims=True)
    out = np.zeros(sums.shape[:2])
    for b in range(sums.shape[0]):
        for c in range(C):
            tp, tn, fp, fn = sums[b, c]
            if fp == 0 and fn == 0:
                continue
            root = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn) + smooth_dr)
            out[b, c] = 1.0 - (tp * tn - fp * fn + smooth_nr) / root
    return out[0] if batch else out
