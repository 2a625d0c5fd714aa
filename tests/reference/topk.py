"""Reference top-k cross-entropy.

source: Wu, Shen, van den Hengel, "Bridging category-level and instance-level semantic image segmentation",
arXiv:1605.06885 (online bootstrapping: the loss of the K hardest pixels), as nnU-Net's TopK10 (Isensee et al.,
Nature Methods 2021; Ma et al., "Loss odyssey", MedIA 2021): with l_n = -log softmax(x_n)[y_n] per voxel,

    L = (1/K) * sum of the K largest l_n,   K = max(1, floor(n * k / 100)),

over the n voxels whose label is not the ignore label, pooled over the batch (``batch=True``) or per sample
and then averaged. Each voxel's cross-entropy is a Python loop over its logits; the K largest come from a full
sort of the list.
"""

from __future__ import annotations

import numpy as np

from ._common import flat_bcn, log_softmax_vector, to_numpy


def _voxel_losses(logits, labels, ignore_index):
    X = flat_bcn(logits)
    Y = to_numpy(labels).reshape(X.shape[0], -1)
    rows = []
    for b in range(X.shape[0]):
        row = []
        for n in range(X.shape[2]):
            y = int(Y[b, n])
            if ignore_index is not None and y == ignore_index:
                continue
            row.append(-log_softmax_vector([float(v) for v in X[b, :, n]])[y])
        rows.append(row)
    return rows


def _topk_mean(values, k):
    if not values:
        return 0.0
    count = max(1, int(len(values) * k / 100))
    return float(np.mean(sorted(values, reverse=True)[:count]))


def topk_ce(logits, labels, *, k=10.0, ignore_index=None, batch=True):
    """Scalar (batch=True) or (B,) per-sample top-k cross-entropy means."""
    rows = _voxel_losses(logits, labels, ignore_index)
    if batch:
        return _topk_mean([v for row in rows for v in row], k)
    return np.array([_topk_mean(row, k) for row in rows])
