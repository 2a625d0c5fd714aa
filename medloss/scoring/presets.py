"""Lesion-wise scoring options and the challenge presets that reproduce official evaluators.

A :class:`LesionConfig` holds the lesion rules (connectivity, reference dilation, small-lesion filter, matching
rule, lesion HD95 convention and penalty) and, for challenge presets, the scoring defaults the challenge uses
(regions, whole-volume surface convention, one-empty-mask distance). Every field can be overridden
(``lesion_config("brats23", dilation=1)``, or the CLI flags); explicit arguments of
:func:`medloss.scoring.score_arrays` (``labels``/``regions``, ``surface``, ``worst_distance``) win over the preset's.

================  =====  ====  ========  ========================  ===================  ===========================
preset            conn.  dil.  min mm³   matching                  lesion HD95          reproduces
================  =====  ====  ========  ========================  ===================  ===========================
``default``       26     0     0         overlap                   —                    —
``autopet``       18     0     0         overlap                   —                    autoPET ``val_script.py``
``isles``         26     0     0         overlap                   —                    ISLES'22 ``eval_utils.py``
``brats23``       26     3     50        overlap (dilated ref)     surfel, max, 374 mm  BraTS 2023 GLI (SSA, PED:
                                                                                        the same parameters)
``brats23-men``   26     1     50        as brats23                as brats23           BraTS 2023 MEN
``brats23-met``   26     1     2         as brats23                as brats23           BraTS 2023 MET
``brats25``       26     0     0         Dice >= 1e-6, one-to-one  voxel, pooled, mean  brats-evaluation ``gli``
                                         (bipartite)               of matched, 373 mm;  (panoptica), global
                                                                   panoptica NSD        HD95/NSD columns too
``brats25-mets``  as brats25                                                            ``mets`` config
``brats25-ped``   as brats25                                                            ``ped`` config
================  =====  ====  ========  ========================  ===================  ===========================

Scoring defaults: ``brats23*`` surfel distances, 374 mm for a one-empty-mask HD95, ``worst`` empty policy;
``brats25*`` voxel distances, 373 mm, ``nan`` empty policy (panoptica reports NaN for a region empty on both sides).

Regions (scored as the union of their labels): ``brats23*`` WT = {1, 2, 3}, TC = {1, 3}, ET = {3} (BraTS 2023
labels, rachitsaluja/BraTS-2023-Metrics ``get_TissueWiseSeg``); ``brats25`` snfh = {2}, et = {3}, netc = {1},
rc = {4}, tc = {1, 3}, wt = {1, 2, 3}; ``brats25-mets`` et, rc, tc, wt as brats25; ``brats25-ped`` et = {1},
netc = {2}, cc = {3}, ed = {4}, tc = {1, 2, 3}, wt = {1, 2, 3, 4} (the ``config_*.yaml`` of brats-evaluation 0.0.10).
For BraTS 2025 MEN (one region ``gtv``) use ``--lesion-preset brats25 --region gtv=1``-style overrides.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

from medloss.errors import InvalidOptionError, check_choice

CONNECTIVITIES = (6, 18, 26)
MATCHING_RULES = ("overlap", "iou", "dice")
HD95_RULES = ("max", "pooled")


@dataclass(frozen=True)
class LesionConfig:
    """Lesion-wise scoring options (see :mod:`medloss.scoring.lesion` for the definitions).

    Args:
        connectivity: of the connected components, 6, 18 or 26 (3-D).
        dilation: iterations of the reference lesions' dilation before matching (BraTS 2023).
        exclude_volume_mm3: reference lesions of this volume or less are left out of the counts.
        hd95: add ``lesion_hd95`` (and ``sq_hd95`` under one-to-one rules).
        penalty_mm: the HD95 of a missed lesion or a false-positive component.
        preset: the preset's name, written in the recipe.
        matching: ``"overlap"`` (a predicted component matches every reference lesion whose match region it
            touches: many-to-many), ``"iou"`` or ``"dice"`` (one-to-one pairs whose IoU / Dice is
            ``>= threshold``, default 0.5).
        threshold: of the one-to-one rules.
        hd95_surface: surface convention of the per-lesion HD95, ``"voxel"`` or ``"surfel"``.
        hd95_rule: ``"max"`` of the two directed percentiles, or the ``"pooled"`` percentile of both directions,
            as panoptica.
        lesion_nsd: add ``sq_nsd``, the mean over matched pairs of panoptica's NSD (the mean of the two directed
            fractions of surface within min(spacing) mm; GaNDLF's formula, not the DeepMind surface Dice).
        panoptica_global: add ``global_hd95`` and ``global_nsd``, brats-evaluation's whole-region HD95 (pooled
            percentile, voxel surfaces) and NSD (at 0.5), in voxel units as panoptica 2.1.7 computes them, with
            its no-shared-voxel edge case (worst distance, NSD 0).
        regions: the preset's ``(name, labels)`` regions.
        surface, worst_distance, empty: scoring defaults of a challenge preset (empty / ``None`` = the caller's).
    """

    connectivity: int = 26
    dilation: int = 0
    exclude_volume_mm3: float = 0.0
    hd95: bool = False
    penalty_mm: float = 374.0
    preset: str = "default"
    matching: str = "overlap"
    threshold: float | None = None
    hd95_surface: str = "surfel"
    hd95_rule: str = "max"
    lesion_nsd: bool = False
    panoptica_global: bool = False
    regions: tuple[tuple[str, tuple[int, ...]], ...] = field(default=())
    surface: str | None = None
    worst_distance: float | None = None
    empty: str | None = None

    def __post_init__(self) -> None:
        if self.connectivity not in CONNECTIVITIES:
            raise InvalidOptionError(f"`connectivity` must be one of {list(CONNECTIVITIES)}, "
                                     f"got {self.connectivity!r}.")
        if not isinstance(self.dilation, int) or self.dilation < 0:
            raise InvalidOptionError(f"`dilation` must be an integer >= 0, got {self.dilation!r}.")
        if not (self.exclude_volume_mm3 >= 0):
            raise InvalidOptionError(f"`exclude_volume_mm3` must be >= 0, got {self.exclude_volume_mm3!r}.")
        check_choice("matching", self.matching, MATCHING_RULES)
        check_choice("hd95_surface", self.hd95_surface, ("voxel", "surfel"))
        if self.empty is not None:
            check_choice("empty", self.empty, ("worst", "nan"))
        check_choice("hd95_rule", self.hd95_rule, HD95_RULES)
        if self.hd95_rule == "pooled" and self.hd95_surface != "voxel":
            raise InvalidOptionError("`hd95_rule='pooled'` needs `hd95_surface='voxel'` (surfels carry weights).")
        if self.threshold is not None:
            if self.matching == "overlap":
                raise InvalidOptionError("`threshold` applies to the 'iou' and 'dice' matching rules only; "
                                         "choose one of them or leave the threshold out.")
            if not (isinstance(self.threshold, (int, float)) and 0 < self.threshold <= 1):
                raise InvalidOptionError(f"`threshold` must be a number in (0, 1], got {self.threshold!r}.")
        if self.lesion_nsd and not self.one_to_one:
            raise InvalidOptionError("`lesion_nsd` is a mean over one-to-one pairs; choose matching 'iou' or 'dice'.")
        if not (self.penalty_mm >= 0) or math.isinf(self.penalty_mm):
            raise InvalidOptionError(f"`penalty_mm` must be a finite number >= 0, got {self.penalty_mm!r}.")

    @property
    def match_threshold(self) -> float:
        """The IoU / Dice a pair needs (``>=``) under a one-to-one rule."""
        return 0.5 if self.threshold is None else float(self.threshold)

    @property
    def one_to_one(self) -> bool:
        return self.matching != "overlap"


BRATS23_REGIONS = (("WT", (1, 2, 3)), ("TC", (1, 3)), ("ET", (3,)))
_BRATS23: dict[str, Any] = dict(connectivity=26, dilation=3, exclude_volume_mm3=50.0, hd95=True, penalty_mm=374.0,
                regions=BRATS23_REGIONS, surface="surfel", worst_distance=374.0)
_BRATS25: dict[str, Any] = dict(connectivity=26, matching="dice", threshold=1e-6, hd95=True, hd95_surface="voxel",
                hd95_rule="pooled",
                lesion_nsd=True, panoptica_global=True, penalty_mm=373.0, surface="voxel", worst_distance=373.0,
                empty="nan")
_TC_WT = (("tc", (1, 3)), ("wt", (1, 2, 3)))

LESION_PRESETS = {
    "default": LesionConfig(),
    "autopet": LesionConfig(connectivity=18, preset="autopet"),
    "isles": LesionConfig(connectivity=26, preset="isles"),
    "brats23": LesionConfig(preset="brats23", **_BRATS23),
    "brats23-ssa": LesionConfig(preset="brats23-ssa", **_BRATS23),
    "brats23-ped": LesionConfig(preset="brats23-ped", **_BRATS23),
    "brats23-men": LesionConfig(preset="brats23-men", **{**_BRATS23, "dilation": 1}),
    "brats23-met": LesionConfig(preset="brats23-met", **{**_BRATS23, "dilation": 1, "exclude_volume_mm3": 2.0}),
    "brats25": LesionConfig(preset="brats25", regions=(("snfh", (2,)), ("et", (3,)), ("netc", (1,)), ("rc", (4,)))
                            + _TC_WT, **_BRATS25),
    "brats25-mets": LesionConfig(preset="brats25-mets", regions=(("et", (3,)), ("rc", (4,))) + _TC_WT, **_BRATS25),
    "brats25-ped": LesionConfig(preset="brats25-ped", regions=(("et", (1,)), ("netc", (2,)), ("cc", (3,)),
                                                               ("ed", (4,)), ("tc", (1, 2, 3)), ("wt", (1, 2, 3, 4))),
                                **_BRATS25),
}


def lesion_config(spec: bool | str | LesionConfig | None, **overrides: Any) -> LesionConfig | None:
    """Turn ``True`` / a preset name / a :class:`LesionConfig` (plus non-None overrides) into a config.

    Choosing a one-to-one ``matching`` without a ``threshold`` resets the preset's threshold to the 0.5 default.

    Args:
        spec: ``False``/``None`` (no lesion scoring), ``True`` (the default preset), a preset name
            (:data:`LESION_PRESETS`) or a config.
        **overrides: fields of :class:`LesionConfig` to replace (``None`` values are ignored).

    Returns:
        The config, or ``None`` without lesion scoring.
    """
    if spec is None or spec is False:
        return None
    if spec is True:
        cfg = LESION_PRESETS["default"]
    elif isinstance(spec, str):
        cfg = LESION_PRESETS[check_choice("lesions", spec, LESION_PRESETS)]
    elif isinstance(spec, LesionConfig):
        cfg = spec
    else:
        raise InvalidOptionError(f"`lesions` must be a bool, a preset name or a LesionConfig, got {spec!r}.")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if "matching" in overrides and "threshold" not in overrides and overrides["matching"] != cfg.matching:
        overrides["threshold"] = None
    return replace(cfg, **overrides) if overrides else cfg


def preset_defaults(cfg: LesionConfig | None, *, surface: str | None = None, worst_distance: str | float | None = None,
                    empty: str | None = None, labels: object = None, regions: object = None) -> tuple:
    """``(surface, worst_distance, empty, regions)``: each argument that is None takes the preset's value, else the
    general default (``"voxel"``, ``"diagonal"``, ``"worst"``, no regions). Preset regions apply only when neither
    labels nor regions are given."""
    get = (lambda name: getattr(cfg, name)) if cfg is not None else (lambda name: None)
    if regions is None and labels is None and get("regions"):
        regions = get("regions")
    return (surface or get("surface") or "voxel",
            worst_distance if worst_distance is not None else
            (get("worst_distance") if get("worst_distance") is not None else "diagonal"),
            empty or get("empty") or "worst", regions)


def parse_label_list(text: str, arg: str = "`labels`") -> tuple[int, ...]:
    """``"1,2, 3"`` -> ``(1, 2, 3)``: comma-separated distinct integers >= 0 (spaces only around the commas).

    ``"1 2"`` is an error, not label 12 or labels 1 and 2: a space-separated list is ambiguous on a shell line.

    Args:
        text: the list.
        arg: the name the messages give the value (e.g. ``"'--labels'"`` for the command line).

    Returns:
        The labels in the given order.
    """
    pieces = [piece.strip() for piece in str(text).split(",")]
    if not all(re.fullmatch(r"[0-9]+", piece) for piece in pieces):
        raise InvalidOptionError(f"{arg} must be comma-separated integers >= 0 such as '1,2,3', got {text!r}.")
    labels = tuple(int(piece) for piece in pieces)
    twice = sorted({v for v in labels if labels.count(v) > 1})
    if twice:
        raise InvalidOptionError(f"{arg} lists label(s) {twice} more than once, got {text!r}; give each once.")
    return labels


def parse_region(spec: str) -> tuple[str, tuple[int, ...]]:
    """``"WT=1,2,3"`` -> ``("WT", (1, 2, 3))`` (labels >= 0, comma-separated, no duplicates).

    Args:
        spec: ``NAME=L1,L2,...``.

    Returns:
        The region's name and labels.
    """
    name, sep, rest = str(spec).partition("=")
    name = name.strip()
    try:
        labels = parse_label_list(rest) if sep and name else ()
    except InvalidOptionError:
        labels = ()
    if not labels:
        raise InvalidOptionError(f"a region must look like NAME=L1,L2,... with distinct labels >= 0 separated by "
                                 f"commas (e.g. WT=1,2,3), got {spec!r}.")
    return name, labels
