"""Reference neighbour-aware calibration loss (NACL), written from the paper with explicit neighbourhood loops.

source: Murugesan et al., "Trust your neighbours: Penalty-based constraints for model calibration", MICCAI 2023
(arXiv:2303.06268), Eq. 5-7: cross-entropy plus alpha times the distance between the logits l and the soft class
proportions of the neighbourhood, tau = K * onehot(y):

    loss = mean_i -log softmax(l_i)[y_i] + alpha * mean_{c,i} |tau_c(i) - l_c(i)|   (l1; l2: squared)

K is a box mean over a k^d window (offsets -(k-1)//2 .. k//2 on each axis, voxels outside the volume count as 0)
or a separable Gaussian whose taps are the integral of the density over each unit cell, truncated at 4 sigma.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from ._common import log_softmax_vector, to_numpy


def _taps(kernel_ops, kernel_size, sigma):
    """[(offset, weight)] per axis."""
    if kernel_ops == "mean":
        return [(o, 1.0 / kernel_size) for o in range(-((kernel_size - 1) // 2), kernel_size // 2 + 1)]
    tail = int(max(sigma * 4.0, 0.5) + 0.5)
    t = 1.0 / (math.sqrt(2.0) * sigma)
    return [(o, max(0.5 * (math.erf(t * (o + 0.5)) - math.erf(t * (o - 0.5))), 0.0)) for o in range(-tail, tail + 1)]


def nacl_loss(logits, labels, *, kernel_ops="mean", kernel_size=3, sigma=1.0, distance_type="l1", alpha=0.1):
    X = to_numpy(logits)
    Y = to_numpy(labels).astype(np.int64)
    B, C = X.shape[:2]
    spatial = X.shape[2:]
    taps = _taps(kernel_ops, kernel_size, sigma)
    ce, gap, count = 0.0, 0.0, 0
    for b in range(B):
        for idx in itertools.product(*(range(s) for s in spatial)):
            ce -= log_softmax_vector([X[(b, c) + idx] for c in range(C)])[Y[(b,) + idx]]
            count += 1
            for c in range(C):
                tau = 0.0
                for combo in itertools.product(taps, repeat=len(spatial)):
                    where = tuple(i + o for i, (o, _) in zip(idx, combo, strict=True))
                    if all(0 <= w < s for w, s in zip(where, spatial, strict=True)) and Y[(b,) + where] == c:
                        tau += math.prod(w for _, w in combo)
                d = tau - X[(b, c) + idx]
                gap += abs(d) if distance_type == "l1" else d * d
    return ce / count + alpha * gap / (count * C)
