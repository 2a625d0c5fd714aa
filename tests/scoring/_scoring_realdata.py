"""Helpers of the scoring tests: the real lesion masks of ``../shared/data/real`` (cropped around the lesion
with a margin, so references run fast) and synthetic perturbations of them."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

REAL_DIR = Path(os.environ.get("MEDLOSS_REAL_DATA", Path(__file__).resolve().parents[2].parent / "shared/data/real"))
CASES = ["pyradiomics_brain1", "pyradiomics_brain2", "pyradiomics_breast1", "openms_patient07_flair",
         "openms_patient26_flair", "mirp_sts001_ct", "mirp_sts002_mrt1", "mirp_sts003_pet"]
MARGIN = 6


def label_path(case: str) -> Path:
    ext = ".nrrd" if case.startswith("pyradiomics") else ".nii.gz"
    return REAL_DIR / f"{case}_label{ext}"


def load_case(case: str):
    from medloss.io import read_volume

    path = label_path(case)
    if not path.exists():
        pytest.skip(f"real data not found at {REAL_DIR} (set MEDLOSS_REAL_DATA)")
    vol = read_volume(path)
    mask = np.asarray(vol.array) > 0
    idx = np.argwhere(mask)
    lo, hi = idx.min(0), idx.max(0) + 1
    crop = np.zeros(tuple(hi - lo + 2 * MARGIN), bool)  # zero margin around the lesion, like the real background
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    crop[tuple(slice(MARGIN, MARGIN + b - a) for a, b in zip(lo, hi, strict=True))] = mask[box]
    return crop, tuple(vol.spacing)


def perturb(mask: np.ndarray, kind: str, seed: int = 0) -> np.ndarray:
    """Synthetic predictions: shift, erode, dilate, one component removed, components added."""
    rng = np.random.default_rng(seed)
    if kind == "shift":
        return np.roll(mask, (2, -1, 1), axis=(0, 1, 2))
    if kind == "erode":
        out = ndi.binary_erosion(mask)
        return out if out.any() else mask.copy()
    if kind == "dilate":
        return ndi.binary_dilation(mask, iterations=2)
    if kind == "remove":
        lab, n = ndi.label(mask)
        if n < 2:
            out = mask.copy()
            out[: out.shape[0] // 2] = False  # one lesion only: cut half of it away
            return out if out.any() else mask.copy()
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        return mask & (lab != int(np.argmax(sizes)))
    if kind == "add":
        out = mask.copy()
        s = out.shape
        out[1:4, 1:3, 1:3] = True  # a blob in a corner, away from the lesion
        for _ in range(5):  # speckles
            p = [int(rng.integers(0, n)) for n in s]
            out[p[0], p[1], p[2]] = True
        return out
    raise ValueError(kind)


PERTURBATIONS = ["shift", "erode", "dilate", "remove", "add"]
