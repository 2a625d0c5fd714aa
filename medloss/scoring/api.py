"""``score_arrays``: every per-label metric of one case, the Python API under ``medloss score``.

Empty-mask policy (``empty=``), applied per label after ``ignore_index`` voxels are removed:

======================  =========================================  ==========================================
situation               ``worst`` (default)                        ``nan``
======================  =========================================  ==========================================
reference and           dice = iou = precision = recall = nsd = 1,  every metric NaN (reported, and counted in
prediction empty        hd = hd95 = assd = 0 (BraTS/ISLES)          the summary's ``n_nan``; never silently 0)
reference empty,        dice = iou = precision = recall = nsd = 0,  dice = iou = precision = nsd = 0,
prediction not          hd = hd95 = assd = ``worst_distance``       recall and distances NaN
prediction empty,       dice = iou = precision = recall = nsd = 0,  dice = iou = recall = nsd = 0,
reference not           hd = hd95 = assd = ``worst_distance``       precision and distances NaN
======================  =========================================  ==========================================

``worst_distance`` is ``"diagonal"`` (the diagonal of the whole volume in mm, the largest distance two voxels of it
can have) or a number of mm (BraTS uses 374). The ``empty`` column says which mask was empty (``none``, ``ref``,
``pred``, ``both``). MONAI, by comparison, returns NaN for these cases and drops them from its mean
(MONAI#9095), and seg-metrics returns HD95 0 for a missed lesion.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from medloss.errors import InvalidOptionError, LabelValueError, OptionTypeError, ShapeMismatchError, check_choice
from medloss.scoring.coverage import COVERAGE_POLICIES, check_coverage
from medloss.scoring.lesion import LesionConfig, lesion_columns, lesion_config, lesion_scores
from medloss.scoring.metrics import LabelMasks, empty_values, metric_columns, specs
from medloss.scoring.overlap import bounding_box
from medloss.scoring.presets import parse_region, preset_defaults
from medloss.scoring.surface import SURFACE_CONVENTIONS, distance_metrics, mean_directed_nsd, surface_distances

EMPTY_POLICIES = ("worst", "nan")
_BOOKKEEPING = ["n_ref", "n_pred", "n_tp", "empty", "surface", "tolerance_mm", "spacing_mm"]
BASE_COLUMNS = ["case", "label"] + metric_columns()[0]
EXTRA_COLUMNS = metric_columns()[1] + _BOOKKEEPING


def columns(lesions: bool | LesionConfig = False, lesion_hd95: bool = False,
            metrics: Iterable[str] | None = None) -> list[str]:
    """Column order of the CSV (and of the JSON row keys).

    Args:
        lesions: ``True`` for the ``overlap``-rule lesion columns, a :class:`LesionConfig` for its columns.
        lesion_hd95: with ``lesions=True``, add ``lesion_hd95``.
        metrics: the per-label metrics (:mod:`medloss.scoring.metrics`); default the default metrics.

    Returns:
        The per-label metrics' columns, then the lesion-wise ones.
    """
    main, secondary = metric_columns(metrics)
    cols = ["case", "label"] + main + secondary + _BOOKKEEPING
    if isinstance(lesions, LesionConfig):
        cols += lesion_columns(lesions)
    elif lesions:
        cols += lesion_columns(LesionConfig(hd95=lesion_hd95))
    return cols


def resolve_regions(
    regions: Mapping[str, Iterable[int]] | Iterable[str | tuple[str, Iterable[int]]],
) -> list[tuple[str, tuple[int, ...]]]:
    """``{"WT": [1, 2, 3]}``, ``[("WT", (1, 2, 3))]`` or ``["WT=1,2,3"]`` -> ``[("WT", (1, 2, 3)), ...]``.

    Args:
        regions: a mapping, ``(name, labels)`` pairs or ``"NAME=L1,L2"`` strings.

    Returns:
        ``(name, labels)`` pairs in the given order.
    """
    items = regions.items() if isinstance(regions, dict) else regions
    out = []
    for item in items:
        if isinstance(item, str):
            name, labs = parse_region(item)
        else:
            try:
                name, raw = item
                labs = tuple(int(v) for v in raw)
            except (TypeError, ValueError):
                raise OptionTypeError(f"`regions` entries must be (name, labels) or 'NAME=L1,L2', got {item!r}.") \
                    from None
            name, labs = parse_region(f"{name}={','.join(map(str, labs))}")
        out.append((name, labs))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise InvalidOptionError(f"region names must be distinct, got {names}.")
    return out


def check_target_names(labels: Iterable[int], regions: Iterable[tuple[str, tuple[int, ...]]]) -> None:
    """Each scored label and region is one row named by its ``label``: a label listed twice, or a region named
    like a label (``--region 1=2 --labels 1``), would give two rows one name and merge them in the summary.

    Args:
        labels: the scored labels.
        regions: the scored regions, ``(name, labels)`` pairs.

    Raises:
        InvalidOptionError: a repeated label, or a region named like a label or another region.
    """
    names = [str(v) for v in labels] + [str(name) for name, _ in regions]
    twice = sorted({n for n in names if names.count(n) > 1}, key=lambda n: (len(n), n))
    if twice:
        raise InvalidOptionError(f"every scored label and region needs its own name, but {twice} names more than one "
                                 f"(labels {[int(v) for v in labels]}, regions {[name for name, _ in regions]}); "
                                 "rename the region or drop the repeated label.")


def worst_distance_mm(shape: Sequence[int], spacing: Sequence[float],
                      worst_distance: str | float = "diagonal") -> float:
    """The distance given to HD/HD95/ASSD when exactly one mask is empty (see the module docstring).

    Args:
        shape: the volume's shape.
        spacing: voxel size in mm, in the axis order of ``shape``.
        worst_distance: ``"diagonal"`` (the volume's diagonal in mm) or a number of mm.

    Returns:
        The distance in mm.
    """
    if worst_distance == "diagonal":
        return float(math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing, strict=True))))
    try:
        value = float(worst_distance)
    except (TypeError, ValueError):
        raise InvalidOptionError(
            f"`worst_distance` must be 'diagonal' or a number of mm, got {worst_distance!r}.") from None
    if not (value >= 0) or math.isinf(value):
        raise InvalidOptionError(f"`worst_distance` must be a finite number >= 0, got {worst_distance!r}.")
    return value


def _panoptica_global(r: np.ndarray, p: np.ndarray, box: tuple[slice, ...] | None, n_tp: int, empty: str,
                      worst: float, workers: int) -> dict[str, float]:
    """brats-evaluation's whole-region ``global_hd95`` (pooled percentile of voxel-surface distances) and
    ``global_nsd`` (:func:`~medloss.scoring.surface.mean_directed_nsd` at 0.5). panoptica 2.1.7 computes these
    without the spacing, so both are in voxel units (the same as mm on 1 mm BraTS volumes). Masks sharing no voxel
    are its edge case: HD95 = the worst distance (it writes inf, its leaderboard parser 373) and NSD 0; both empty:
    NaN, or 0 and 1 under the ``worst`` policy."""
    if not n_tp:
        if r.any() or p.any():
            return {"global_hd95": worst, "global_nsd": 0.0}
        return ({"global_hd95": math.nan, "global_nsd": math.nan} if empty == "nan"
                else {"global_hd95": 0.0, "global_nsd": 1.0})
    sd = surface_distances(r, p, (1.0, 1.0, 1.0), "voxel", box=box, workers=workers)
    assert sd is not None  # both masks hold a true-positive voxel
    return {"global_hd95": distance_metrics(sd, pooled=True)["hd95"], "global_nsd": mean_directed_nsd(sd, 0.5)}


def _check_arrays(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float],
                  ignore_index: int | None = None) -> tuple[float, ...]:
    for name, a in (("pred", pred), ("ref", ref)):
        if not isinstance(a, np.ndarray):
            raise OptionTypeError(f"`{name}` must be a NumPy array, got {type(a).__name__}.")
        if not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
            raise LabelValueError(f"`{name}` must hold integer labels, got dtype {a.dtype}.")
        if a.size and np.issubdtype(a.dtype, np.signedinteger):
            lo = int(a.min())
            if lo < 0 and not (lo == ignore_index and int(np.where(a == ignore_index, 0, a).min()) >= 0):
                raise LabelValueError(f"`{name}` holds negative label {lo}; labels must be >= 0 (or equal to "
                                      "`ignore_index`).")
    if pred.shape != ref.shape:
        raise ShapeMismatchError(f"`pred` shape {pred.shape} differs from `ref` shape {ref.shape}.")
    if pred.ndim != 3:
        raise ShapeMismatchError(f"score_arrays expects 3-D arrays, got shape {pred.shape}.")
    try:
        sp = tuple(float(s) for s in spacing)
    except TypeError:
        raise OptionTypeError(f"`spacing` must be a sequence of 3 numbers (mm), got {spacing!r}.") from None
    if len(sp) != 3 or not all(s > 0 and math.isfinite(s) for s in sp):
        raise InvalidOptionError(f"`spacing` must be 3 positive finite numbers (mm, in the arrays' axis order), "
                                 f"got {spacing!r}.")
    return sp


def labels_in(a: np.ndarray, ignore_index: int | None = None) -> set[int]:
    """The foreground labels (> 0, not ``ignore_index``) of one integer volume.

    Args:
        a: an integer label volume.
        ignore_index: a label that is left out.

    Returns:
        The set of labels.
    """
    if a.size == 0:
        return set()
    lo, hi = int(a.min()), int(a.max())
    if hi - max(lo, 1) < 32:  # few candidates: one cheap comparison each instead of a sort of the volume
        found = {v for v in range(max(lo, 1), hi + 1) if np.any(a == v)}
    else:
        found = {int(v) for v in np.unique(a)}
    return {v for v in found if v > 0 and v != ignore_index}


def default_labels(pred: np.ndarray, ref: np.ndarray, ignore_index: int | None = None) -> list[int]:
    """Foreground labels (> 0, not ``ignore_index``) present in the reference or the prediction.

    Including the prediction's labels means a label predicted where the reference has none is scored as a false
    positive (Dice 0) instead of being dropped.

    Args:
        pred, ref: integer label volumes.
        ignore_index: a label that is never scored.

    Returns:
        The labels, sorted.
    """
    return sorted(labels_in(ref, ignore_index) | labels_in(pred, ignore_index))


def score_arrays(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], *, labels: Iterable[int] | None = None,
                 regions: Mapping[str, Iterable[int]] | Iterable[str | tuple[str, Iterable[int]]] | None = None,
                 surface: str | None = None, tolerance: float = 1.0, lesions: bool | str | LesionConfig = False,
                 ignore_index: int | None = None, empty: str | None = None, worst_distance: str | float | None = None,
                 percentile: float = 95.0, case: str = "", workers: int = -1, connectivity: int | None = None,
                 instances: bool = False, uncovered: str | None = None,
                 metrics: Iterable[str] | None = None) -> list[dict]:
    """Score an integer prediction against an integer reference, one dict per label and per region.

    Args:
        pred, ref: integer (or bool) label arrays of the same 3-D shape; labels >= 0 (or ``ignore_index``).
        spacing: voxel size in mm, in the arrays' axis order.
        labels: labels to score; default :func:`default_labels` (label 1 if both volumes are empty), or none
            when regions are given (explicitly or by the lesion preset).
        regions: unions of labels scored as one mask, ``{"WT": [1, 2, 3], ...}`` or ``["WT=1,2,3", ...]``; the
            row's ``label`` is the region name. Default: the lesion preset's (BraTS WT/TC/ET), if any.
        surface: ``"voxel"`` (MONAI convention) or ``"surfel"`` (DeepMind), see :mod:`medloss.scoring.surface`;
            default the lesion preset's, else ``"voxel"``.
        tolerance: NSD tolerance in mm.
        lesions: ``False``, ``True`` (default preset), a preset name (:mod:`medloss.scoring.presets`) or a
            :class:`~medloss.scoring.presets.LesionConfig`; adds the lesion-wise columns.
        ignore_index: reference value whose voxels are removed from both volumes before scoring (never scored).
        empty: empty-mask policy, ``"worst"`` or ``"nan"`` (module docstring; default the lesion preset's, else
            ``"worst"``); worst_distance: its distance (default the lesion preset's, else ``"diagonal"``).
        percentile: percentile of the robust Hausdorff distance reported as ``hd95``.
        case: value of the ``case`` column. workers: KD-tree threads (-1 = all cores).
        connectivity: overrides the lesion preset's connectivity (6, 18 or 26).
        instances: add the per-lesion / per-component rows under each row's ``"instances"`` key.
        uncovered: what to do when ``pred`` or ``ref`` holds labels that no scored label or region covers (they
            would be scored as background; :mod:`medloss.scoring.coverage`): ``"error"`` (raise
            :class:`~medloss.errors.LabelValueError`) or ``"warn"`` (default:
            :class:`~medloss.scoring.UncoveredLabelWarning`, whose ``labels`` lists them). ``medloss score`` makes
            it an error for a lesion preset's regions (``--allow-uncovered-labels`` to warn).
        metrics: names of the per-label metrics to compute (:data:`medloss.scoring.metrics.PER_LABEL_METRICS`,
            e.g. ``["overlap", "volume", "distance", "boundary_iou"]``); default the default ones.

    Returns:
        ``[{column: value}, ...]`` with the columns of :func:`columns` (plus ``instances`` if asked).
    """
    sp = _check_arrays(pred, ref, spacing, ignore_index)
    cfg = lesion_config(lesions, connectivity=connectivity)
    explicit = labels is not None or regions is not None
    surface, worst_distance, empty, regions = preset_defaults(cfg, surface=surface, worst_distance=worst_distance,
                                                              empty=empty, labels=labels, regions=regions)
    _check_options(surface=surface, empty=empty, uncovered=uncovered, tolerance=tolerance)
    worst = worst_distance_mm(ref.shape, sp, worst_distance)
    from_preset = not explicit and regions is not None  # preset_defaults gave the lesion preset's regions
    labels, regions = _targets(pred, ref, labels, regions, ignore_index)
    if explicit or from_preset:  # default labels are every label found: nothing to check
        check_coverage(labels_in(pred, ignore_index), labels_in(ref, ignore_index), labels, regions,
                       policy=uncovered or "warn", case=case, preset=cfg.preset if cfg is not None else None)
    valid = (ref != ignore_index) if ignore_index is not None and np.any(ref == ignore_index) else None
    chosen = specs(metrics)
    cols = columns(cfg if cfg is not None else False, metrics=metrics)
    rows = []
    for lab, values in [(lab, (lab,)) for lab in labels] + regions:
        r = ref == values[0] if len(values) == 1 else np.isin(ref, values)
        p = pred == values[0] if len(values) == 1 else np.isin(pred, values)
        if valid is not None:
            p &= valid
        row = _score_masks(r, p, {"case": case, "label": lab}, sp=sp, surface=surface, tolerance=float(tolerance),
                           percentile=percentile, workers=workers, chosen=chosen, empty=empty, worst=worst, cfg=cfg,
                           instances=instances)
        out = {c: row.get(c) for c in cols}
        if instances and cfg is not None:
            out["instances"] = row["instances"]
        rows.append(out)
    return rows


def _check_options(*, surface: str, empty: str, uncovered: str | None, tolerance: float) -> None:
    """Refuse an unknown surface convention, empty or coverage policy, or a tolerance that is not a number >= 0."""
    check_choice("surface", surface, SURFACE_CONVENTIONS)
    check_choice("empty", empty, EMPTY_POLICIES)
    if uncovered is not None:
        check_choice("uncovered", uncovered, COVERAGE_POLICIES)
    if not (isinstance(tolerance, (int, float)) and tolerance >= 0 and math.isfinite(tolerance)):
        raise InvalidOptionError(f"`tolerance` must be a finite number of mm >= 0, got {tolerance!r}.")


def _targets(pred: np.ndarray, ref: np.ndarray, labels: Iterable[int] | None, regions: Any,
             ignore_index: int | None) -> tuple[list[int], list[tuple[str, tuple[int, ...]]]]:
    """The labels and the resolved regions to score, checked (>= 0, distinct names, not the ``ignore_index``)."""
    regions = resolve_regions(regions) if regions is not None else []
    if labels is None:
        labels = [] if regions else (default_labels(pred, ref, ignore_index) or [1])
    labels = [int(v) for v in labels]
    if any(v < 0 for v in labels):
        raise InvalidOptionError(f"`labels` must be >= 0, got {labels}.")
    check_target_names(labels, regions)
    if ignore_index is not None and (ignore_index in labels or any(ignore_index in labs for _, labs in regions)):
        raise InvalidOptionError(f"label {ignore_index} is the `ignore_index`; it cannot also be scored.")
    return labels, regions


def _score_masks(r: np.ndarray, p: np.ndarray, row: dict[str, Any], *, sp: tuple[float, ...], surface: str,
                 tolerance: float, percentile: float, workers: int, chosen: list, empty: str, worst: float,
                 cfg: LesionConfig | None, instances: bool) -> dict[str, Any]:
    """``row`` completed with the metrics of one reference / prediction mask pair (empty-mask values by the
    ``empty`` policy), the bookkeeping columns and, with ``cfg``, the lesion-wise ones."""
    box = bounding_box(r | p)
    masks = LabelMasks(r, p, box, sp, surface=surface, tolerance=tolerance, percentile=percentile, workers=workers)
    n_ref, n_pred, n_tp = masks.n_ref, masks.n_pred, masks.n_tp
    for spec in chosen:
        if n_ref and n_pred or any(c.both is None for c in spec.columns):
            row.update(spec.compute(masks))
        if not (n_ref and n_pred):
            row.update(empty_values(spec, n_ref, n_pred, empty, worst))
    row["empty"] = "none" if n_ref and n_pred else "both" if not (n_ref or n_pred) else \
        ("ref" if not n_ref else "pred")
    row.update({"n_ref": n_ref, "n_pred": n_pred, "n_tp": n_tp, "surface": surface,
                "tolerance_mm": tolerance, "spacing_mm": "x".join(f"{s:.6g}" for s in sp)})
    if cfg is not None:
        row.update(lesion_scores(r, p, sp, cfg, empty=empty, workers=workers, box=box, instances=instances))
        if cfg.panoptica_global:
            row.update(_panoptica_global(r, p, box, n_tp, empty, worst, workers))
    return row
