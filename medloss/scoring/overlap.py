"""Voxel-overlap metrics of hard label masks, and the bounding-box helpers every scorer shares.

For a reference mask R and a predicted mask P of one label (voxel counts, |.| = number of voxels)::

    TP = |R ∩ P|      FP = |P \\ R|      FN = |R \\ P|
    Dice      = 2 TP / (|R| + |P|)           IoU    = TP / |R ∪ P|
    precision = TP / |P|                    recall = TP / |R|
    volume_ml = |.| * prod(spacing_mm) / 1000            vol_diff_ml = vol_pred_ml - vol_ref_ml

These equal MONAI's ``DiceMetric`` / ``MeanIoU`` / ``ConfusionMatrixMetric`` whenever the ratio is defined. A 0/0
ratio (an empty mask) is *not* decided here: :func:`overlap_metrics` returns NaN for it and the caller applies the
empty-mask policy (:mod:`medloss.scoring.api`).
"""
from __future__ import annotations

import math

import numpy as np


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, ...] | None:
    """Slices of the smallest box holding every ``True`` voxel, grown by ``margin`` (clipped to the array).

    Returns ``None`` for an empty mask. The first axis is projected on the full array, the other two only inside
    the first axis' extent, which keeps this at about one pass over the data.
    """
    if mask.ndim != 3:
        return _bounding_box_nd(mask, margin)
    a0 = np.flatnonzero(mask.any(axis=(1, 2)))
    if a0.size == 0:
        return None
    sub = mask[a0[0]: a0[-1] + 1]
    a1 = np.flatnonzero(sub.any(axis=(0, 2)))
    a2 = np.flatnonzero(sub.any(axis=(0, 1)))
    return tuple(
        slice(max(int(ix[0]) - margin, 0), min(int(ix[-1]) + margin + 1, n))
        for ix, n in zip((a0, a1, a2), mask.shape, strict=True)
    )


def _bounding_box_nd(mask: np.ndarray, margin: int) -> tuple[slice, ...] | None:
    out = []
    for ax in range(mask.ndim):
        idx = np.flatnonzero(mask.any(axis=tuple(i for i in range(mask.ndim) if i != ax)))
        if idx.size == 0:
            return None
        out.append(slice(max(int(idx[0]) - margin, 0), min(int(idx[-1]) + margin + 1, mask.shape[ax])))
    return tuple(out)


def union_slices(a: tuple[slice, ...] | None, b: tuple[slice, ...] | None) -> tuple[slice, ...] | None:
    """Smallest box holding two boxes (either may be ``None``)."""
    if a is None:
        return b
    if b is None:
        return a
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b, strict=True))


def confusion_counts(ref: np.ndarray, pred: np.ndarray) -> tuple[int, int, int]:
    """``(|R|, |P|, |R ∩ P|)`` of two boolean masks of the same shape."""
    n_ref = int(np.count_nonzero(ref))
    n_pred = int(np.count_nonzero(pred))
    if n_ref == 0 or n_pred == 0:
        return n_ref, n_pred, 0
    return n_ref, n_pred, int(np.count_nonzero(ref & pred))


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else math.nan


def overlap_metrics(n_ref: int, n_pred: int, n_tp: int, voxel_volume_mm3: float) -> dict[str, float]:
    """Dice, IoU, precision, recall and volumes (ml) from voxel counts; 0/0 gives NaN (see module docstring)."""
    vol_ref = n_ref * voxel_volume_mm3 / 1000.0
    vol_pred = n_pred * voxel_volume_mm3 / 1000.0
    return {
        "dice": _ratio(2 * n_tp, n_ref + n_pred),
        "iou": _ratio(n_tp, n_ref + n_pred - n_tp),
        "precision": _ratio(n_tp, n_pred),
        "recall": _ratio(n_tp, n_ref),
        "vol_ref_ml": vol_ref,
        "vol_pred_ml": vol_pred,
        "vol_diff_ml": vol_pred - vol_ref,
        "abs_vol_diff_ml": abs(vol_pred - vol_ref),
    }
