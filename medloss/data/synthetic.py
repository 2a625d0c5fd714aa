"""Seeded synthetic 3-D lesion volumes: the embedded default data set of the medloss bundles and ``medloss demo``.

Each case imitates a brain MR study with white-matter lesions, so that a network has to learn something real:

* a head-shaped ellipsoid with white matter, a grey-matter rim and two CSF ventricles; every tissue has its own
  intensity per channel (channel 0 is FLAIR-like: lesions bright, CSF dark; channel 1 T1-like: lesions dark;
  channel 2 T2-like: lesions and CSF bright), partial-volume edges and a smooth texture;
* several lesions of different sizes (radii drawn log-uniformly, so small lesions are common and large ones rare),
  each a blob of one to three overlapping ellipsoids placed inside the white matter;
* a smooth multiplicative bias field and Rician noise, on an MR-like scale of a few hundred units (so the
  bundles' percentile intensity scaling matters, as it does on real scans).

Everything is a pure function of the seed: the same arguments give the same bytes on every platform.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from medloss.errors import InvalidOptionError
from medloss.io.outputs import atomic_output, atomic_write_text

__all__ = ["LesionCase", "make_lesion_volume", "make_lesion_dataset", "SYNTHETIC_KEY"]

#: key under which a generated datalist.json records the generator arguments (used to reuse an existing set)
SYNTHETIC_KEY = "medloss_synthetic"

# Tissue intensities per channel (fractions of the scanner scale): background, white matter, grey matter, CSF, lesion.
_CONTRASTS = np.array(
    [
        # bg    wm    gm    csf   lesion
        [0.00, 0.50, 0.62, 0.12, 1.00],  # FLAIR-like: lesions hyperintense
        [0.00, 0.80, 0.60, 0.18, 0.40],  # T1-like: lesions hypointense
        [0.00, 0.38, 0.52, 0.95, 0.88],  # T2-like: lesions and CSF bright
    ],
    dtype=np.float64,
)


@dataclass(frozen=True)
class LesionCase:
    """One generated case: ``image`` is ``(C, X, Y, Z)`` float32, ``label`` is ``(X, Y, Z)`` uint8.

    ``lesion_radii`` lists the nominal radius (voxels) and the class of every lesion placed in the volume.
    """

    image: np.ndarray
    label: np.ndarray
    lesion_radii: list[tuple[float, int]]


def _grid(shape: tuple[int, ...]) -> list[np.ndarray]:
    return [np.arange(n, dtype=np.float64).reshape([-1 if i == d else 1 for i in range(3)])
            for d, n in enumerate(shape)]


def _soft_ellipsoid(shape, center, radii, box=None) -> np.ndarray:
    """Partial-volume occupancy (0..1) of an axis-aligned ellipsoid, with a one-voxel-wide linear edge."""
    out = np.zeros(shape, dtype=np.float64)
    if box is None:
        box = tuple(slice(0, n) for n in shape)
    grids = _grid(tuple(s.stop - s.start for s in box))
    radii = np.asarray(radii, dtype=np.float64)
    dist2 = sum(((g + s.start - c) / r) ** 2 for g, s, c, r in zip(grids, box, center, radii, strict=True))
    # signed distance to the surface, in voxels, approximated along the mean radius
    signed = (1.0 - np.sqrt(dist2)) * radii.mean()
    out[box] = np.clip(signed + 0.5, 0.0, 1.0)
    return out


def _smooth_field(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    """Zero-mean, unit-std, spatially smooth random field (Gaussian-filtered white noise at low resolution)."""
    coarse = [max(2, int(round(n / 4))) for n in shape]
    field = ndimage.gaussian_filter(rng.standard_normal(coarse), sigma=sigma / 4.0, mode="wrap")
    field = ndimage.zoom(field, [n / c for n, c in zip(shape, coarse, strict=True)], order=1)
    field = field[tuple(slice(0, n) for n in shape)]
    field = field - field.mean()
    return field / (field.std() + 1e-12)


def _check_options(shape, num_lesions, radius_range, num_channels, num_classes, noise) -> None:
    if len(shape) != 3 or min(shape) < 16:
        raise InvalidOptionError(f"`size` must give three sides of at least 16 voxels, got {tuple(shape)}.")
    lo, hi = num_lesions
    if not 0 <= lo <= hi:
        raise InvalidOptionError(f"`num_lesions` must be (min, max) with 0 <= min <= max, got {num_lesions}.")
    rmin, rmax = radius_range
    if not 1.0 <= rmin <= rmax:
        raise InvalidOptionError(f"`radius_range` must be (min, max) with 1 <= min <= max, got {radius_range}.")
    if not 1 <= num_channels <= _CONTRASTS.shape[0]:
        raise InvalidOptionError(f"`num_channels` must be 1..{_CONTRASTS.shape[0]}, got {num_channels}.")
    if not 2 <= num_classes <= 5:
        raise InvalidOptionError(f"`num_classes` must be 2..5 (background + lesion classes), got {num_classes}.")
    if not 0.0 <= noise <= 0.5:
        raise InvalidOptionError(f"`noise` must be in [0, 0.5] (fraction of the intensity scale), got {noise}.")


def _class_positions(class_contrast: float | Sequence[float], num_classes: int) -> list[float]:
    """Per lesion class, its position between the lesion (0) and white-matter (1) levels; see make_lesion_volume."""
    if isinstance(class_contrast, (int, float, np.integer, np.floating)):
        positions = [(k - 1) * float(class_contrast) for k in range(1, num_classes)]
    else:
        positions = [float(v) for v in class_contrast]
        if len(positions) != num_classes - 1:
            raise InvalidOptionError(
                f"`class_contrast` as a sequence needs one value per lesion class ({num_classes - 1} for "
                f"num_classes={num_classes}), got {len(positions)}: {list(class_contrast)}."
            )
    if not all(0.0 <= v <= 1.7 for v in positions):
        raise InvalidOptionError(
            f"`class_contrast` must put every lesion class at a position in [0, 1.7] between the lesion (0) and "
            f"white-matter (1) levels, got positions {positions} for num_classes={num_classes}."
        )
    return positions


def _class_radius_ranges(class_radius, num_classes: int) -> list[tuple[float, ...]] | None:
    """Per lesion class, its (min, max) radius; ``None`` when every class uses ``radius_range``."""
    if class_radius is None:
        return None
    ranges = [tuple(float(v) for v in r) for r in class_radius]
    if len(ranges) != num_classes - 1 or not all(len(r) == 2 and 1.0 <= r[0] <= r[1] for r in ranges):
        raise InvalidOptionError(
            f"`class_radius` needs one (min, max) radius range with 1 <= min <= max per lesion class "
            f"({num_classes - 1} for num_classes={num_classes}), got {class_radius!r}."
        )
    return ranges


def make_lesion_volume(
    size: int | Sequence[int] = 64,
    *,
    num_lesions: Sequence[int] = (3, 6),
    radius_range: Sequence[float] = (2.0, 8.0),
    num_channels: int = 1,
    num_classes: int = 2,
    noise: float = 0.05,
    scale: float = 600.0,
    class_contrast: float | Sequence[float] = 0.18,
    class_radius: Sequence[Sequence[float]] | None = None,
    seed: int | np.random.Generator = 0,
) -> LesionCase:
    """Generate one synthetic brain-MR-like volume with several lesions of different sizes.

    Args:
        size: volume side (int) or three sides, in voxels (at least 16 each).
        num_lesions: inclusive (min, max) number of lesions per case; a minimum of 0 allows lesion-free cases.
        radius_range: (min, max) nominal lesion radius in voxels; radii are drawn log-uniformly.
        num_channels: image channels (1 to 3: FLAIR-, T1- and T2-like contrasts).
        num_classes: label classes including background; lesions get classes 1..num_classes-1, each class with
            its own contrast (2 gives a binary lesion mask).
        noise: Rician noise level as a fraction of ``scale``.
        scale: intensity scale (the FLAIR lesion level before bias and noise).
        class_contrast: where each lesion class sits between the lesion level (0) and the white-matter level (1),
            in every channel: a number ``c`` puts class ``k`` at ``(k - 1) * c``; a sequence gives one position per
            lesion class (values above 1 go past white matter, e.g. FLAIR-dark lesions). Positions must be in
            ``[0, 1.7]`` (every level stays positive). Larger spacing makes the classes easier to tell apart.
        class_radius: optional ``(min, max)`` radius range per lesion class, replacing ``radius_range`` for that
            class (the same random draw is mapped log-linearly into the class's range, so ``None`` gives exactly
            the cases of earlier versions).
        seed: an int seed or a ``numpy.random.Generator``.

    Returns:
        a :class:`LesionCase` with ``image`` ``(C, X, Y, Z)`` float32 and ``label`` ``(X, Y, Z)`` uint8.
    """
    shape = (size,) * 3 if isinstance(size, (int, np.integer)) else tuple(int(s) for s in size)
    _check_options(shape, num_lesions, radius_range, num_channels, num_classes, noise)
    positions = _class_positions(class_contrast, num_classes)
    class_ranges = _class_radius_ranges(class_radius, num_classes)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    head, wm, csf = _anatomy(shape, rng)
    # fractions per tissue: background, white matter, grey matter, CSF (lesions are painted on top below)
    fractions = [1.0 - head, wm * (1.0 - csf), head - wm, wm * csf]
    lesion_occ, radii_out = _paint_lesions(shape, rng, head=head, wm=wm, csf=csf, num_lesions=num_lesions,
                                           radius_range=radius_range, num_classes=num_classes,
                                           class_ranges=class_ranges)
    label = np.zeros(shape, dtype=np.uint8)
    for cls in range(1, num_classes):  # later classes win where lesions of different classes overlap
        label[(lesion_occ[cls] >= 0.5) & (lesion_occ[cls] >= lesion_occ[1:].max(0))] = cls
    image = _render(shape, rng, fractions, lesion_occ, positions, num_channels=num_channels, noise=noise,
                    scale=scale)
    return LesionCase(image=image, label=label, lesion_radii=radii_out)


def _anatomy(shape: tuple[int, ...], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Soft occupancies of the head, its white matter and the two ventricles (CSF), around a jittered centre."""
    shape_arr = np.asarray(shape, dtype=np.float64)
    center = shape_arr / 2.0 + rng.uniform(-0.03, 0.03, 3) * shape_arr
    head_r = shape_arr * rng.uniform(0.40, 0.46, 3)
    head = _soft_ellipsoid(shape, center, head_r)
    wm = _soft_ellipsoid(shape, center, head_r * rng.uniform(0.72, 0.8))
    csf = np.zeros(shape)
    for side in (-1.0, 1.0):  # two ventricles, left and right of the midline
        offset = np.array([side * head_r[0] * 0.22, 0.0, 0.0])
        csf = np.maximum(csf, _soft_ellipsoid(shape, center + offset, head_r * np.array([0.1, 0.32, 0.22])))
    return head, wm, csf


def _paint_lesions(shape: tuple[int, ...], rng: np.random.Generator, *, head: np.ndarray, wm: np.ndarray,
                   csf: np.ndarray, num_lesions: Sequence[int], radius_range: Sequence[float], num_classes: int,
                   class_ranges: list[tuple[float, ...]] | None) -> tuple[np.ndarray, list[tuple[float, int]]]:
    """Lesion occupancy per class (C, *shape; index 0 unused) and each lesion's (radius, class), lesions centred in
    the inner white matter."""
    shape_arr = np.asarray(shape, dtype=np.float64)
    lesion_occ = np.zeros((num_classes,) + shape)
    radii_out: list[tuple[float, int]] = []
    wm_inner = ndimage.binary_erosion(wm > 0.5, iterations=2) & (csf < 0.05)
    candidates = np.argwhere(wm_inner)
    count = int(rng.integers(num_lesions[0], num_lesions[1] + 1))
    rmin, rmax = radius_range
    first_class = int(rng.integers(0, num_classes - 1))
    for index in range(count):
        log_radius = rng.uniform(np.log(rmin), np.log(rmax))
        cls = 1 + (first_class + index) % (num_classes - 1)  # classes take turns: each appears if count allows
        if class_ranges is not None:  # the same draw, mapped into the class's own range
            share = (log_radius - np.log(rmin)) / (np.log(rmax) - np.log(rmin)) if rmax > rmin else 0.5
            lo, hi = class_ranges[cls - 1]
            log_radius = np.log(lo) + share * (np.log(hi) - np.log(lo))
        radius = float(np.exp(log_radius))
        lesion_center = candidates[rng.integers(len(candidates))].astype(np.float64)
        for _lobe in range(int(rng.integers(1, 4))):  # one to three overlapping ellipsoids make an irregular blob
            lobe_center = lesion_center + rng.normal(0.0, 0.35 * radius, 3)
            lobe_r = radius * rng.uniform(0.7, 1.25, 3)
            lo = np.maximum(np.floor(lobe_center - lobe_r - 2), 0).astype(int)
            hi = np.minimum(np.ceil(lobe_center + lobe_r + 3), shape_arr).astype(int)
            box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
            occ = _soft_ellipsoid(shape, lobe_center, lobe_r, box) * head
            lesion_occ[cls] = np.maximum(lesion_occ[cls], occ)
        radii_out.append((round(radius, 3), cls))
    return lesion_occ, radii_out


def _render(shape: tuple[int, ...], rng: np.random.Generator, fractions: list[np.ndarray], lesion_occ: np.ndarray,
            positions: list[float], *, num_channels: int, noise: float, scale: float) -> np.ndarray:
    """The (C, *shape) float32 image: tissue contrasts with texture, lesion levels per class, a bias field and
    Rician noise."""
    num_classes = lesion_occ.shape[0]
    total_lesion = np.clip(lesion_occ[1:].sum(0), 0.0, 1.0)
    bias = np.exp(0.12 * _smooth_field(rng, shape, sigma=12.0))
    image = np.empty((num_channels,) + shape, dtype=np.float32)
    for ch in range(num_channels):
        tissue = sum(f * c for f, c in zip(fractions, _CONTRASTS[ch, :4], strict=True))
        tissue = tissue * (1.0 + 0.04 * _smooth_field(rng, shape, sigma=3.0))  # tissue texture
        lesion_level = np.zeros(shape)
        for cls in range(1, num_classes):
            # class-specific contrast: class k sits positions[k-1] of the way from lesion level back to WM
            level = _CONTRASTS[ch, 4] + positions[cls - 1] * (_CONTRASTS[ch, 1] - _CONTRASTS[ch, 4])
            lesion_level += lesion_occ[cls] * level
        share = np.where(total_lesion > 0, total_lesion / np.maximum(lesion_occ[1:].sum(0), 1e-12), 0.0)
        signal = tissue * (1.0 - total_lesion) + lesion_level * share
        signal = signal * bias * scale
        sigma = noise * scale
        noisy = np.sqrt((signal + rng.normal(0.0, sigma, shape)) ** 2 + rng.normal(0.0, sigma, shape) ** 2)
        image[ch] = noisy.astype(np.float32)
    return image


@dataclass(frozen=True)
class _DatasetSpec:
    num_samples: int
    num_val: int
    size: list[int]
    num_channels: int
    num_classes: int
    num_lesions: list[int]
    radius_range: list[float]
    noise: float
    spacing: list[float]
    seed: int
    class_contrast: float | list[float] = 0.18
    class_radius: list[list[float]] | None = None


def _save_nifti(array: np.ndarray, spacing, path: Path) -> None:
    import nibabel as nib

    affine = np.diag(list(spacing) + [1.0])
    img = nib.Nifti1Image(array, affine)
    img.header.set_xyzt_units("mm")
    with atomic_output(path, suffix=".nii.gz") as tmp:  # an interrupted run leaves no truncated volume
        nib.save(img, tmp)


def make_lesion_dataset(
    out_dir: str | Path,
    num_samples: int = 16,
    *,
    num_val: int | None = None,
    size: int | Sequence[int] = 64,
    num_channels: int = 1,
    num_classes: int = 2,
    num_lesions: Sequence[int] = (3, 6),
    radius_range: Sequence[float] = (2.0, 8.0),
    noise: float = 0.05,
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    seed: int = 0,
    class_contrast: float | Sequence[float] = 0.18,
    class_radius: Sequence[Sequence[float]] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``num_samples`` synthetic cases as NIfTI plus an MSD-style ``datalist.json``; return the datalist path.

    Layout under ``out_dir``: ``imagesTr/lesion_NNN.nii.gz`` (or ``lesion_NNN_chK.nii.gz`` per channel when
    ``num_channels > 1``), ``labelsTr/lesion_NNN.nii.gz`` and ``datalist.json`` with ``training`` and
    ``validation`` lists of relative paths (the last ``num_val`` cases, default a quarter, at least one, are the
    validation cases). Case ``i`` is generated from seed ``(seed, i)``, so a larger set extends a smaller one.

    The generator arguments (``num_lesions``, ``radius_range``, ``noise``, ``class_contrast``, ``class_radius``,
    ...) are those of :func:`make_lesion_volume`.

    If ``datalist.json`` already records the same arguments and all its files exist, nothing is regenerated
    (unless ``overwrite``), which makes repeated bundle runs cheap.
    """
    if int(num_samples) < 2:
        raise InvalidOptionError(
            f"`num_samples` must be at least 2 (one training and one validation case), got {num_samples}."
        )
    num_samples = int(num_samples)
    num_val = max(1, num_samples // 4) if num_val is None else int(num_val)
    if not 1 <= num_val < num_samples:
        raise InvalidOptionError(f"`num_val` must be in [1, num_samples - 1] = [1, {num_samples - 1}], got {num_val}.")
    shape = [int(size)] * 3 if isinstance(size, (int, np.integer)) else [int(s) for s in size]
    spec = _DatasetSpec(num_samples, num_val, shape, int(num_channels), int(num_classes), [int(v) for v in num_lesions],
                        [float(v) for v in radius_range], float(noise), [float(v) for v in spacing], int(seed),
                        _spec_contrast(class_contrast),
                        None if class_radius is None else [[float(v) for v in r] for r in class_radius])
    out = Path(out_dir)
    datalist_path = out / "datalist.json"
    if not overwrite and _is_current(datalist_path, spec):
        return datalist_path
    (out / "imagesTr").mkdir(parents=True, exist_ok=True)
    (out / "labelsTr").mkdir(parents=True, exist_ok=True)
    items: list[dict[str, Any]] = []
    for i in range(num_samples):
        case = make_lesion_volume(shape, num_lesions=tuple(num_lesions), radius_range=tuple(radius_range),
                                  num_channels=num_channels, num_classes=num_classes, noise=noise,
                                  class_contrast=class_contrast, class_radius=class_radius,
                                  seed=np.random.default_rng([seed, i]))
        name = f"lesion_{i:03d}"
        if num_channels == 1:
            image_path = f"imagesTr/{name}.nii.gz"
            images: str | list[str] = image_path
            _save_nifti(case.image[0], spacing, out / image_path)
        else:
            images = [f"imagesTr/{name}_ch{c}.nii.gz" for c in range(num_channels)]
            for c, rel in enumerate(images):
                _save_nifti(case.image[c], spacing, out / rel)
        label = f"labelsTr/{name}.nii.gz"
        _save_nifti(case.label, spacing, out / label)
        items.append({"image": images, "label": label, "lesions": len(case.lesion_radii)})
    datalist = {
        "description": "medloss synthetic lesion set (medloss.data.make_lesion_dataset)",
        "labels": {"0": "background", **{str(k): f"lesion_{k}" for k in range(1, num_classes)}},
        SYNTHETIC_KEY: asdict(spec),
        "training": items[: num_samples - num_val],
        "validation": items[num_samples - num_val :],
    }
    atomic_write_text(datalist_path, json.dumps(datalist, indent=2) + "\n")  # written last: marks the set complete
    return datalist_path


def _spec_contrast(class_contrast: float | Sequence[float]) -> float | list[float]:
    """``class_contrast`` as it is recorded in (and compared with) a datalist's JSON."""
    if isinstance(class_contrast, (int, float, np.integer, np.floating)):
        return float(class_contrast)
    return [float(v) for v in class_contrast]


def _is_current(datalist_path: Path, spec: _DatasetSpec) -> bool:
    """True if ``datalist_path`` was written by :func:`make_lesion_dataset` with ``spec`` and its files exist."""
    if not datalist_path.is_file():
        return False
    try:
        content = json.loads(datalist_path.read_text())
    except (OSError, ValueError):
        return False
    if content.get(SYNTHETIC_KEY) != asdict(spec):
        return False
    root = datalist_path.parent
    for item in content.get("training", []) + content.get("validation", []):
        files = [item["label"]] + ([item["image"]] if isinstance(item["image"], str) else list(item["image"]))
        if not all((root / f).is_file() for f in files):
            return False
    return True
