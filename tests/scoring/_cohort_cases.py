"""Small synthetic cohorts on disk for the cohort-scoring tests (tiny NIfTI pairs with labels 1-3)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def write_cohort(root: Path, n: int, size: int = 16, seed: int = 0, labels=(1, 2, 3)) -> tuple[Path, Path]:
    """``n`` cases ``c000...`` under ``root/p`` and ``root/r``: a few balls per label, the prediction shifted by
    one voxel with speckles; every fifth case lacks label 2 in both volumes, every seventh has an empty
    prediction, so the empty-mask and absent-label paths are exercised."""
    import nibabel as nib

    pred_dir, ref_dir = root / "p", root / "r"
    pred_dir.mkdir(parents=True, exist_ok=True)
    ref_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    grid = np.indices((size,) * 3, dtype=np.float32)
    for c in range(n):
        ref = np.zeros((size,) * 3, np.uint8)
        for label in labels:
            if label == 2 and c % 5 == 0:
                continue
            centre, radius = rng.uniform(3, size - 3, 3), rng.uniform(1.5, max(2.0, size / 5))
            ref[((grid - centre[:, None, None, None].astype(np.float32)) ** 2).sum(0) < radius ** 2] = label
        pred = np.roll(ref, 1, axis=c % 3)
        pred[rng.random(ref.shape) < 0.003] = 1
        if c % 7 == 3:
            pred[:] = 0
        affine = np.diag([1.0, 1.0 + 0.1 * (c % 2), 2.0, 1.0])
        nib.save(nib.Nifti1Image(ref, affine), ref_dir / f"c{c:03d}.nii.gz")
        nib.save(nib.Nifti1Image(pred, affine), pred_dir / f"c{c:03d}.nii.gz")
    return pred_dir, ref_dir


def same(a, b) -> bool:
    """Equality of rows/summaries where NaN equals NaN."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b
