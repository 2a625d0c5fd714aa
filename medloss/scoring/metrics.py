"""Per-label metrics, each declared once: its name, columns, empty-mask values, convention notes and computation.

The CSV/JSON columns (:func:`medloss.scoring.columns`), the empty-mask values of :func:`~medloss.scoring.score_arrays`
and the documentation table (:func:`metrics_table`, docs/scoring.md, "Per-label metrics") are all derived from
:data:`PER_LABEL_METRICS`. Adding a metric is one :class:`MetricSpec` appended to it (docs/scoring.md:
"Per-label metrics and adding one").

Empty-mask values are given per column for the ``worst`` policy: ``both`` when reference and prediction are empty
(``None``: the column is computed in every situation, e.g. volumes), ``one`` when exactly one is empty
(:data:`WORST` = the run's worst distance). Under the ``nan`` policy both-empty is NaN, and one-empty is NaN where the
column's ratio is 0/0 (``undefined_if``: ``"ref"`` / ``"pred"``, the empty side) and the ``one`` value otherwise.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from medloss.errors import InvalidOptionError, check_choice

if TYPE_CHECKING:
    from medloss.scoring.surface import SurfaceDistances

WORST = "worst_distance"


@dataclass(frozen=True)
class Column:
    """One output column of a metric, with its empty-mask values (module docstring)."""

    name: str
    both: float | None
    one: float | str | None = None
    undefined_if: tuple[str, ...] = ()
    secondary: bool = False  # placed after every metric's main columns (CSV order)


class LabelMasks:
    """What a metric's ``compute`` reads for one label or region of one case: the boolean masks (full and cropped
    to the union bounding box ``box``), the voxel counts, the spacing and the scoring options. Surface distances
    are computed once, on first use."""

    def __init__(self, r: np.ndarray, p: np.ndarray, box: tuple[slice, ...] | None, spacing: tuple[float, ...], *,
                 surface: str, tolerance: float, percentile: float, workers: int) -> None:
        from medloss.scoring.overlap import confusion_counts

        self.r, self.p, self.box = r, p, box
        self.rc: np.ndarray = r[box] if box is not None else r
        self.pc: np.ndarray = p[box] if box is not None else p
        self.n_ref, self.n_pred, self.n_tp = confusion_counts(self.rc, self.pc)
        self.spacing = spacing
        self.voxel_mm3 = float(np.prod(spacing))
        self.surface, self.tolerance, self.percentile, self.workers = surface, tolerance, percentile, workers

    @cached_property
    def surface_distances(self) -> SurfaceDistances | None:
        from medloss.scoring.surface import surface_distances

        return surface_distances(self.r, self.p, self.spacing, self.surface, box=self.box, workers=self.workers)


@dataclass(frozen=True)
class MetricSpec:
    """A per-label metric: ``compute(masks)`` returns ``{column: value}`` for every column, and is called only when
    both masks are non-empty unless a column's ``both`` is ``None`` (then always).

    Args:
        name: the metric's name (``--metrics``).
        columns: its :class:`Column` declarations (name, both-empty and one-empty values).
        compute: the function of the label's masks.
        notes: the convention note of the documentation table.
        default: computed when no metrics are chosen.
    """

    name: str
    columns: tuple[Column, ...]
    compute: Callable[[LabelMasks], dict[str, float]]
    notes: str
    default: bool = True


def _overlap(m: LabelMasks) -> dict[str, float]:
    from medloss.scoring.overlap import overlap_metrics

    out = overlap_metrics(m.n_ref, m.n_pred, m.n_tp, m.voxel_mm3)
    return {k: out[k] for k in ("dice", "iou", "precision", "recall")}


def _volume(m: LabelMasks) -> dict[str, float]:
    from medloss.scoring.overlap import overlap_metrics

    out = overlap_metrics(m.n_ref, m.n_pred, m.n_tp, m.voxel_mm3)
    return {k: out[k] for k in ("vol_ref_ml", "vol_pred_ml", "vol_diff_ml", "abs_vol_diff_ml")}


def _distance(m: LabelMasks) -> dict[str, float]:
    from medloss.scoring.surface import distance_metrics

    sd = m.surface_distances
    assert sd is not None  # computed only when both masks are non-empty
    return distance_metrics(sd, m.tolerance, m.percentile)


def boundary_width(shape: tuple[int, ...]) -> int:
    """Boundary IoU's band width ``d`` in voxels: 2 % of the volume's diagonal in voxels, rounded, at least 1
    (Cheng et al. 2021 use 2 % of the image diagonal)."""
    return max(1, round(0.02 * math.sqrt(sum(n * n for n in shape))))


def inner_band(mask: np.ndarray, d: int) -> np.ndarray:
    """Voxels of ``mask`` within ``d`` voxels (chessboard distance) of a voxel outside it; outside the array counts
    as outside the mask. Equals ``mask`` minus its erosion by a (2d+1)-cube."""
    from scipy.ndimage import minimum_filter

    eroded = minimum_filter(mask.view(np.uint8), size=2 * d + 1, mode="constant", cval=0).astype(bool)
    return mask & ~eroded


def _boundary_iou(m: LabelMasks) -> dict[str, float]:
    # on the masks cropped to their union box: outside it is background, as outside the volume is, so the
    # constant-0 border of the filter gives the erosion of the full volume
    d = boundary_width(m.r.shape)
    br, bp = inner_band(m.rc, d), inner_band(m.pc, d)
    union = int(np.count_nonzero(br | bp))
    return {"boundary_iou": int(np.count_nonzero(br & bp)) / union}


PER_LABEL_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("overlap", (Column("dice", 1.0, 0.0), Column("iou", 1.0, 0.0),
                           Column("precision", 1.0, 0.0, ("pred",)), Column("recall", 1.0, 0.0, ("ref",))),
               _overlap, "Dice = 2 TP / (#R + #P), IoU = TP / #(R ∪ P), precision = TP / #P, recall = TP / #R (voxel "
               "counts; equal MONAI's DiceMetric / MeanIoU / ConfusionMatrixMetric where defined)"),
    MetricSpec("volume", (Column("vol_ref_ml", None), Column("vol_pred_ml", None),
                          Column("vol_diff_ml", None, secondary=True), Column("abs_vol_diff_ml", None, secondary=True)),
               _volume, "voxel count × prod(spacing) / 1000; diff = pred − ref"),
    MetricSpec("distance", (Column("hd", 0.0, WORST, ("ref", "pred")), Column("hd95", 0.0, WORST, ("ref", "pred")),
                            Column("assd", 0.0, WORST, ("ref", "pred")), Column("nsd", 1.0, 0.0),
                            Column("asd_ref_to_pred", 0.0, WORST, ("ref", "pred"), secondary=True),
                            Column("asd_pred_to_ref", 0.0, WORST, ("ref", "pred"), secondary=True)),
               _distance, "exact surface distances in mm under the run's surface convention (voxel or surfel): "
               "HD, HD95 (max of the directed percentiles), ASSD, NSD at the tolerance, directed mean distances"),
    MetricSpec("boundary_iou", (Column("boundary_iou", 1.0, 0.0),), _boundary_iou,
               "Boundary IoU (Cheng et al. 2021): IoU of the inner boundary bands of width d = 2 % of the volume "
               "diagonal in voxels (at least 1; chessboard distance, outside the volume is background)",
               default=False),
)
METRIC_NAMES = tuple(spec.name for spec in PER_LABEL_METRICS)
DEFAULT_METRICS = tuple(spec.name for spec in PER_LABEL_METRICS if spec.default)


def resolve_metrics(metrics: str | Iterable[str] | None) -> tuple[str, ...]:
    """The metric names to compute, in declaration order: ``None`` -> the defaults; a comma-separated string or a
    sequence of names otherwise."""
    if metrics is None:
        return DEFAULT_METRICS
    names = [v.strip() for v in metrics.split(",")] if isinstance(metrics, str) else list(metrics)
    if not names:
        raise InvalidOptionError(f"`metrics` needs at least one of {list(METRIC_NAMES)}.")
    for name in names:
        check_choice("metrics", name, METRIC_NAMES)
    return tuple(n for n in METRIC_NAMES if n in names)


def specs(metrics: str | Iterable[str] | None = None) -> list[MetricSpec]:
    chosen = resolve_metrics(metrics)
    return [s for s in PER_LABEL_METRICS if s.name in chosen]


def metric_columns(metrics: str | Iterable[str] | None = None) -> tuple[list[str], list[str]]:
    """``(main, secondary)`` column names of the chosen metrics, in CSV order."""
    cols = [c for s in specs(metrics) for c in s.columns]
    return [c.name for c in cols if not c.secondary], [c.name for c in cols if c.secondary]


def empty_values(spec: MetricSpec, n_ref: int, n_pred: int, policy: str, worst: float) -> dict[str, float]:
    """The values of ``spec``'s columns when a mask is empty (the columns with an empty rule only)."""
    empty_side = "ref" if n_ref == 0 else "pred"
    out = {}
    for col in spec.columns:
        if col.both is None:
            continue
        if n_ref == 0 and n_pred == 0:
            value: float | str | None = math.nan if policy == "nan" else col.both
        elif policy == "nan" and empty_side in col.undefined_if:
            value = math.nan
        else:
            value = col.one
        out[col.name] = worst if value == WORST else float(value)  # type: ignore[arg-type]
    return out


def _cell(v: float | str | None, nan: bool = False) -> str:
    if v is None:
        return "computed"
    if v == WORST:
        return "NaN" if nan else "worst distance"
    return f"{float(v):g}"


def metrics_table() -> str:
    """The Markdown table of every per-label metric (docs/scoring.md, "Per-label metrics"), from the declarations."""
    lines = ["| metric | columns | both empty (`worst`; `nan`: NaN) | one empty (`worst`) | one empty (`nan`) "
             "| default | definition |",
             "|---|---|---|---|---|---|---|"]
    for s in PER_LABEL_METRICS:
        cols = ", ".join(f"`{c.name}`" for c in s.columns)
        both = "; ".join(f"{c.name} {_cell(c.both)}" for c in s.columns if c.both is not None) or "computed"
        one = "; ".join(f"{c.name} {_cell(c.one)}" for c in s.columns if c.both is not None) or "computed"
        nan = "; ".join(f"{c.name} " + ("NaN if " + "/".join(f"{w} empty" for w in c.undefined_if) + " else "
                                        if c.undefined_if and c.one != WORST else "")
                        + ("NaN" if c.one == WORST else _cell(c.one)) for c in s.columns if c.both is not None)
        lines.append(f"| `{s.name}` | {cols} | {both} | {one} | {nan or 'computed'} | "
                     f"{'yes' if s.default else 'no'} | {s.notes} |")
    return "\n".join(lines) + "\n"
