"""Reference distance losses: signed distance maps by brute force, boundary loss, Hausdorff DT loss.

sources:
  * Boundary loss: Kervadec, Bouchtiba, Desrosiers, Granger, Dolz, Ben Ayed, "Boundary loss for highly
    unbalanced segmentation", MIDL 2019 / MedIA 2021 (arXiv:1812.07032), eq. (5)-(6):
        L_B = sum_{q in Omega} phi_G(q) s_theta(q),   phi_G(q) = -D_G(q) inside G, +D_G(q) outside,
    here averaged over the voxels (the authors' ``SurfaceLoss`` takes the mean), per sample and class.
  * Hausdorff DT loss: Karimi & Salcudean, "Reducing the Hausdorff Distance in Medical Image Segmentation with
    Convolutional Neural Networks", IEEE TMI 2020 (arXiv:1904.10030), eq. (8):
        L_DT = (1/|Omega|) sum_q (p - q_ref)^2 (d_p^alpha + d_ref^alpha),
    d the distance transform of the (thresholded at 0.5) prediction / reference boundary.

Ignored voxels (valid = 0) belong to no class: the one-hot reference is 0 there and so is the thresholded
prediction, so their values cannot change the distances of the others.

Distances are computed by brute force: for every voxel, the minimum Euclidean distance (with spacing) to any
voxel on the other side of the mask (D_out for voxels outside, D_in for voxels inside); 0 everywhere for an empty
or full mask. No distance-transform library is used. Keep volumes tiny (O(N^2)).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from ._common import flat_bcn, flat_valid


def brute_signed_distance(mask, spacing=None) -> np.ndarray:
    """phi = D_out - D_in of a boolean mask (any number of axes), by exhaustive search."""
    m = np.asarray(mask, dtype=bool)
    spacing = (1.0,) * m.ndim if spacing is None else tuple(spacing)
    out = np.zeros(m.shape, dtype=np.float64)
    if not m.any() or m.all():
        return out
    coords = list(itertools.product(*[range(s) for s in m.shape]))
    for q in coords:
        best = math.inf
        for r in coords:
            if m[r] != m[q]:
                d = math.sqrt(sum(((a - b) * s) ** 2 for a, b, s in zip(q, r, spacing, strict=True)))
                best = min(best, d)
        out[q] = -best if m[q] else best
    return out


def boundary(p, g, *, phi=None, valid=None, spacing=None) -> np.ndarray:
    """(B, C) mean over the valid voxels of p * phi (phi brute-forced from g unless given)."""
    P, G = flat_bcn(p), np.asarray(g, dtype=np.float64)
    B, C, N = P.shape
    V = flat_valid(valid, B, N)
    out = np.zeros((B, C))
    for b in range(B):
        for c in range(C):
            ph = (brute_signed_distance(G[b, c] > 0.5, spacing) if phi is None else np.asarray(phi)[b, c]).reshape(-1)
            num = sum(V[b, n] * P[b, c, n] * ph[n] for n in range(N))
            out[b, c] = num / max(V[b].sum(), 1.0)
    return out


def hausdorff_dt(p, g, *, alpha=2.0, valid=None, spacing=None, batch=False) -> np.ndarray:
    """(B, C), or (C,) pooled over the batch: mean over the valid voxels of (p - g)^2 (d_p^a + d_g^a)."""
    Pm, Gm = np.asarray(p, dtype=np.float64), np.asarray(g, dtype=np.float64)
    B, C = Pm.shape[:2]
    N = int(np.prod(Pm.shape[2:]))
    V = flat_valid(valid, B, N)
    num, den = np.zeros((B, C)), np.zeros((B, C))
    for b in range(B):
        for c in range(C):
            inside = (Pm[b, c] > 0.5) & (V[b].reshape(Pm.shape[2:]) > 0)  # ignored voxels: in no class
            dp = np.abs(brute_signed_distance(inside, spacing)).reshape(-1)
            dg = np.abs(brute_signed_distance(Gm[b, c] > 0.5, spacing)).reshape(-1)
            pv, gv = Pm[b, c].reshape(-1), Gm[b, c].reshape(-1)
            num[b, c] = sum(V[b, n] * (pv[n] - gv[n]) ** 2 * (dp[n] ** alpha + dg[n] ** alpha) for n in range(N))
            den[b, c] = V[b].sum()
    if batch:
        return num.sum(0) / np.maximum(den.sum(0), 1.0)
    return num / np.maximum(den, 1.0)
