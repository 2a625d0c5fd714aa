"""One scoring configuration, resolved once from a lesion preset plus overrides, shared by every case of a run.

:func:`scoring_config` checks the options and applies the preset's defaults (regions, surface convention, worst
distance, empty policy); the :class:`ScoringConfig` it returns is frozen and picklable, so it travels unchanged to
process-pool and Dask workers, and its :meth:`~ScoringConfig.fingerprint` identifies the options a part file was
written with (``--resume`` refuses a part file of other options).
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from medloss.errors import InvalidOptionError, check_choice
from medloss.scoring.api import EMPTY_POLICIES, check_target_names, columns, resolve_regions, worst_distance_mm
from medloss.scoring.lesion import LesionConfig, lesion_config
from medloss.scoring.metrics import DEFAULT_METRICS, resolve_metrics
from medloss.scoring.presets import parse_label_list, preset_defaults
from medloss.scoring.surface import SURFACE_CONVENTIONS


@dataclass(frozen=True)
class LesionOverrides:
    """Overrides of a lesion preset's rules (``None`` = the preset's); any set one turns lesion scoring on.

    Args:
        connectivity: 6, 18 or 26 (3-D).
        dilation: of the reference lesions before matching, in voxels.
        min_volume_mm3: lesions of this volume or less are left out.
        matching: ``"overlap"``, ``"iou"`` or ``"dice"``.
        threshold: of the one-to-one rules.
    """

    connectivity: int | None = None
    dilation: int | None = None
    min_volume_mm3: float | None = None
    matching: str | None = None
    threshold: float | None = None

    def given(self) -> bool:
        return any(v is not None for v in (self.connectivity, self.dilation, self.min_volume_mm3, self.matching,
                                           self.threshold))


@dataclass(frozen=True)
class ScoringConfig:
    """Every option of a scoring run, resolved (build it with :func:`scoring_config`).

    Args:
        labels: the labels to score, or ``None`` for each case's foreground labels (then a label found in some
            case but absent from both volumes of another gets that case's both-empty row, so every case has the
            same labels).
        regions: ``(name, labels)`` unions scored as one row each.
        surface, tolerance, percentile, empty, worst_distance, ignore_index: as
            :func:`~medloss.scoring.score_arrays`.
        lesions: the lesion rules, or ``None`` without lesion scoring.
        metrics: the per-label metrics (:mod:`medloss.scoring.metrics`).
        uncovered: the coverage policy (``"error"`` or ``"warn"``, :mod:`medloss.scoring.coverage`).
        geometry_tolerance: how far (mm) the two volumes' geometry may differ.
        kd_workers: KD-tree threads per case (-1 = all cores; 1 when cases run in parallel).
    """

    labels: tuple[int, ...] | None = None
    regions: tuple[tuple[str, tuple[int, ...]], ...] | None = None
    surface: str = "voxel"
    tolerance: float = 1.0
    percentile: float = 95.0
    empty: str = "worst"
    worst_distance: float | str = "diagonal"
    lesions: LesionConfig | None = None
    ignore_index: int | None = None
    metrics: tuple[str, ...] = DEFAULT_METRICS
    uncovered: str = "warn"
    geometry_tolerance: float = 1e-3
    kd_workers: int = -1

    @property
    def fill_absent_labels(self) -> bool:
        return self.labels is None and self.regions is None

    def columns(self) -> list[str]:
        return columns(self.lesions if self.lesions is not None else False, metrics=self.metrics)

    def fingerprint(self) -> str:
        """A digest of every option that changes a row (not ``kd_workers``)."""
        text = repr({k: v for k, v in self.__dict__.items() if k != "kd_workers"})
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def recipe(self, spacing: dict | None = None) -> dict:
        from medloss.scoring.report import recipe

        out = recipe(surface=self.surface, tolerance=self.tolerance, percentile=self.percentile, empty=self.empty,
                     worst_distance=self.worst_distance, labels=self.labels, ignore_index=self.ignore_index,
                     lesion_cfg=self.lesions, geometry_tolerance=self.geometry_tolerance, spacing=spacing,
                     regions=self.regions)
        out["metrics"] = list(self.metrics)
        return out


def _labels(labels: str | Iterable[int] | None) -> tuple[int, ...] | None:
    if labels is None:
        return None
    if isinstance(labels, str):
        return parse_label_list(labels)
    try:
        out = tuple(int(v) for v in labels)
    except (TypeError, ValueError):
        raise InvalidOptionError(f"`labels` must be integers >= 0 such as [1, 2] or '1,2', got {labels!r}.") from None
    if any(v < 0 for v in out) or len(set(out)) != len(out):
        raise InvalidOptionError(f"`labels` must be distinct integers >= 0, got {labels!r}.")
    return out


def _number(name: str, value: float | str, low: float, high: float = math.inf) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidOptionError(f"`{name}` must be a number, got {value!r}.") from None
    if not (low <= v <= high) or math.isinf(v):
        raise InvalidOptionError(f"`{name}` must be a finite number in [{low:g}, {high:g}], got {value!r}.")
    return v


def scoring_config(preset: str | None = None, *, lesions: bool = False, lesion: LesionOverrides | None = None,
                   labels: str | Iterable[int] | None = None,
                   regions: Mapping[str, Iterable[int]] | Iterable[str | tuple[str, Iterable[int]]] | None = None,
                   surface: str | None = None, tolerance: float = 1.0, percentile: float = 95.0,
                   empty: str | None = None, worst_distance: str | float | None = None, ignore_index: int | None = None,
                   metrics: str | Iterable[str] | None = None, allow_uncovered_labels: bool = False,
                   geometry_tolerance: float = 1e-3, kd_workers: int = -1) -> ScoringConfig:
    """Resolve a :class:`ScoringConfig` once for a run.

    Args:
        preset: a lesion preset name (:data:`LESION_PRESETS`); implies lesion scoring.
        lesions: turn on the default lesion rules.
        lesion: overrides of the preset's lesion rules.
        labels, regions, surface, tolerance, percentile, empty, worst_distance, ignore_index, metrics: as
            :func:`~medloss.scoring.score_arrays` (``None`` = the preset's default); ``labels`` may be ``"1,2"``.
        allow_uncovered_labels: score a case whose labels a preset's regions do not cover (with a warning).
        geometry_tolerance: how far (mm) the two volumes' geometry may differ.
        kd_workers: threads of the KD-tree queries (-1: all).

    Returns:
        The frozen, picklable config.
    """
    lesion = lesion or LesionOverrides()
    spec: bool | str = preset if preset else bool(lesions or lesion.given())
    cfg = lesion_config(spec, connectivity=int(lesion.connectivity) if lesion.connectivity else None,
                        dilation=lesion.dilation, exclude_volume_mm3=lesion.min_volume_mm3,
                        matching=lesion.matching, threshold=lesion.threshold)
    label_list = _labels(labels)
    surface, worst, empty, region_spec = preset_defaults(cfg, surface=surface, worst_distance=worst_distance,
                                                         empty=empty, labels=label_list, regions=regions or None)
    check_choice("surface", surface, SURFACE_CONVENTIONS)
    check_choice("empty", empty, EMPTY_POLICIES)
    worst_distance_mm((1, 1, 1), (1, 1, 1), worst)
    from_preset = bool(region_spec) and label_list is None and region_spec is getattr(cfg, "regions", None)
    region_list = tuple(resolve_regions(region_spec)) if region_spec else None
    check_target_names(label_list or [], region_list or [])
    if ignore_index is not None and (ignore_index in (label_list or ())
                                     or any(ignore_index in labs for _, labs in region_list or ())):
        raise InvalidOptionError(f"label {ignore_index} is the `ignore_index`; it cannot also be scored.")
    return ScoringConfig(labels=label_list, regions=region_list, surface=surface,
                         tolerance=_number("tolerance", tolerance, 0.0), percentile=_number("percentile", percentile,
                                                                                            0.0, 100.0),
                         empty=empty, worst_distance=worst, lesions=cfg, ignore_index=ignore_index,
                         metrics=resolve_metrics(metrics),
                         uncovered="error" if from_preset and not allow_uncovered_labels else "warn",
                         geometry_tolerance=_number("geometry_tolerance", geometry_tolerance, 0.0),
                         kd_workers=int(kd_workers))
