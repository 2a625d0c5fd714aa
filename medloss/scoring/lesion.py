"""Lesion-wise (connected-component) detection scores of one label, without per-lesion full-volume loops.

Definitions (R = reference mask, P = predicted mask of one label; components with ``connectivity`` 6, 18 or 26):

* reference lesions: the components of R. With ``dilation = n > 0`` (BraTS 2023) R is dilated n times with the
  18-neighbourhood; reference components inside one dilated component are *merged* into one lesion, and the
  lesion's *match region* is that dilated component. Otherwise the match region is the lesion itself.
* a predicted component *matches* a reference lesion when it has a voxel in the lesion's match region.
  A reference lesion is *detected* when at least one predicted component matches it, *missed* otherwise. A
  predicted component that matches no lesion is a *false positive* (FP).
* reference lesions of volume <= ``exclude_volume_mm3`` are left out of the counts, F1 and lesion Dice (BraTS); the
  predicted components that match only them are not false positives either.
* ``lesion_f1`` = 2·TP / (2·TP + FP + FN) with TP = detected and FN = missed lesions (ISLES: tp / (tp + (fp+fn)/2)).
* ``lesion_dice`` = (Σ_lesions Dice(lesion, union of its matched components)) / (n_lesions + n_FP): a missed lesion
  and every FP component count as Dice 0 (BraTS 2023 lesion-wise Dice).
* ``fp_volume_ml`` = volume of the FP components; ``fn_volume_ml`` = volume of the missed lesions (autoPET).
* ``lesion_hd95`` (only when ``hd95=True``): per detected lesion the surfel (DeepMind) HD95 between the lesion and its
  matched components; a missed lesion and every FP component score ``penalty_mm`` (BraTS: 374); averaged over
  n_lesions + n_FP.
* no lesion and no FP component: F1 and lesion Dice are 1 and lesion HD95 0 (BraTS, ISLES ``empty_value=1``), or NaN
  under the ``nan`` empty policy.

Presets (``LESION_PRESETS``): ``default`` (26-connectivity, any overlap), ``autopet`` (18-connectivity),
``isles`` (26-connectivity), ``brats23`` (26-connectivity, dilation 3, lesions <= 50 mm³ excluded, lesion HD95 with
374 mm penalty; BraTS-GLI/SSA/PED parameters; MEN and MET use dilation 1 and MET a 2 mm³ threshold: override them).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from medloss.errors import InvalidOptionError, check_choice
from medloss.scoring.overlap import bounding_box, union_slices

CONNECTIVITIES = (6, 18, 26)


@dataclass(frozen=True)
class LesionConfig:
    """Lesion-wise scoring options (see the module docstring)."""

    connectivity: int = 26
    dilation: int = 0
    exclude_volume_mm3: float = 0.0
    hd95: bool = False
    penalty_mm: float = 374.0
    preset: str = "default"

    def __post_init__(self) -> None:
        if self.connectivity not in CONNECTIVITIES:
            raise InvalidOptionError(f"`connectivity` must be one of {list(CONNECTIVITIES)}, got {self.connectivity!r}.")
        if not isinstance(self.dilation, int) or self.dilation < 0:
            raise InvalidOptionError(f"`dilation` must be an integer >= 0, got {self.dilation!r}.")
        if not (self.exclude_volume_mm3 >= 0):
            raise InvalidOptionError(f"`exclude_volume_mm3` must be >= 0, got {self.exclude_volume_mm3!r}.")


LESION_PRESETS = {
    "default": LesionConfig(),
    "autopet": LesionConfig(connectivity=18, preset="autopet"),
    "isles": LesionConfig(connectivity=26, preset="isles"),
    "brats23": LesionConfig(connectivity=26, dilation=3, exclude_volume_mm3=50.0, hd95=True, penalty_mm=374.0,
                            preset="brats23"),
}


def lesion_config(spec: bool | str | LesionConfig | None, **overrides) -> LesionConfig | None:
    """Turn ``True`` / a preset name / a :class:`LesionConfig` (plus non-None overrides) into a config."""
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
    return replace(cfg, **overrides) if overrides else cfg


def _components(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, int]:
    import cc3d

    labels, n = cc3d.connected_components(mask, connectivity=connectivity, return_N=True)
    return labels, int(n)


def _pairs(a_at: np.ndarray, b_at: np.ndarray, nb: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique (a, b) label pairs with a, b > 0 among co-located label values, and their voxel counts."""
    keep = (a_at > 0) & (b_at > 0)
    keys, counts = np.unique(a_at[keep].astype(np.int64) * (nb + 1) + b_at[keep], return_counts=True)
    return keys // (nb + 1), keys % (nb + 1), counts


def lesion_scores(ref: np.ndarray, pred: np.ndarray, spacing, config: LesionConfig | None = None,
                  empty: str = "worst", workers: int = -1, box: tuple[slice, ...] | None = None) -> dict[str, float]:
    """Lesion-wise scores of two boolean masks (columns ``lesions_*``, ``lesion_*``, ``fp/fn_volume_ml``).

    ``box``: the union bounding box, if the caller has it (used only without dilation).
    """
    cfg = config or LESION_PRESETS["default"]
    voxel_ml = float(np.prod(spacing)) / 1000.0
    if box is None or cfg.dilation:
        box = union_slices(bounding_box(ref, cfg.dilation), bounding_box(pred, cfg.dilation))
    if box is None:
        return _finish(0, 0, 0, 0, 0, 0.0, 0.0, [], [], cfg, empty)
    r = np.ascontiguousarray(ref[box])
    p = np.ascontiguousarray(pred[box])
    lr, _ = _components(r, cfg.connectivity)
    lp, n_pred = _components(p, cfg.connectivity)
    if cfg.dilation:
        from scipy import ndimage as ndi

        grown = np.zeros_like(r)
        rbox = bounding_box(r, cfg.dilation)  # the dilation cannot reach beyond this box: dilate inside it only
        if rbox is not None:
            grown[rbox] = ndi.binary_dilation(r[rbox], structure=ndi.generate_binary_structure(3, 2),
                                              iterations=cfg.dilation)
        match_lab, n_ref = _components(grown, cfg.connectivity)
        ref_lab = np.where(r, match_lab, 0)  # reference voxels carry the id of their merged lesion
    else:
        match_lab = ref_lab = lr
        n_ref = int(lr.max()) if lr.size else 0
    fr, fpv = np.flatnonzero(r), np.flatnonzero(p)
    ref_at_r = np.take(ref_lab, fr)
    pred_at_p = np.take(lp, fpv)
    ref_size = np.bincount(ref_at_r, minlength=n_ref + 1)
    pred_size = np.bincount(pred_at_p, minlength=n_pred + 1)
    mk, mj, _ = _pairs(np.take(match_lab, fpv), pred_at_p, n_pred)  # matches (lesion k, component j)
    ik, ij, icount = _pairs(np.take(ref_lab, fpv), pred_at_p, n_pred)  # voxel overlaps of lesion k and component j
    inter_lookup = dict(zip(zip(ik.tolist(), ij.tolist()), icount.tolist()))
    inter_m = np.array([inter_lookup.get((k, j), 0) for k, j in zip(mk.tolist(), mj.tolist())], dtype=np.float64)
    matched_pred = np.bincount(mk, weights=pred_size[mj].astype(np.float64), minlength=n_ref + 1)
    matched_inter = np.bincount(mk, weights=inter_m, minlength=n_ref + 1)
    detected = np.bincount(mk, minlength=n_ref + 1) > 0
    kept = ref_size * (voxel_ml * 1000.0) > cfg.exclude_volume_mm3
    kept[0] = False
    pred_matched = np.zeros(n_pred + 1, bool)
    pred_matched[mj] = True
    fp_ids = np.flatnonzero(~pred_matched[1:]) + 1
    dice_k = 2.0 * matched_inter / np.maximum(ref_size + matched_pred, 1)
    lesion_ids = np.flatnonzero(kept)
    hd_list: list[float] = []
    if cfg.hd95:
        hd_list = _lesion_hd95(ref_lab, lp, lesion_ids, detected, mk, mj, spacing, cfg.penalty_mm, workers)
    tp = int(np.count_nonzero(detected & kept))
    fn = int(np.count_nonzero(~detected & kept))
    return _finish(int(kept.sum()), tp, fn, len(fp_ids), n_pred,
                   float(pred_size[fp_ids].sum()) * voxel_ml, float(ref_size[kept & ~detected].sum()) * voxel_ml,
                   dice_k[lesion_ids].tolist(), hd_list, cfg, empty)


def _lesion_hd95(ref_lab, lp, lesion_ids, detected, mk, mj, spacing, penalty, workers) -> list[float]:
    from scipy import ndimage as ndi

    from medloss.scoring.surface import distance_metrics, surface_distances

    ref_boxes = ndi.find_objects(ref_lab)
    pred_boxes = ndi.find_objects(lp)
    out = []
    for k in lesion_ids.tolist():
        if not detected[k]:
            out.append(float(penalty))
            continue
        js = mj[mk == k]
        box = ref_boxes[k - 1]
        for j in js.tolist():
            box = union_slices(box, pred_boxes[j - 1])
        g = ref_lab[box] == k
        q = np.isin(lp[box], js)
        sd = surface_distances(g, q, spacing, "surfel", box=tuple(slice(0, s) for s in g.shape), workers=workers)
        out.append(distance_metrics(sd, 1.0)["hd95"])
    return out


def _finish(n_ref, tp, fn, n_fp, n_pred, fp_ml, fn_ml, dices, hds, cfg: LesionConfig, empty: str) -> dict:
    undefined = math.nan if empty == "nan" else None
    denom = n_ref + n_fp
    f1_den = 2 * tp + n_fp + fn
    out = {
        "lesions_ref": n_ref,
        "lesions_pred": n_pred,
        "lesions_detected": tp,
        "lesions_missed": fn,
        "lesions_fp": n_fp,
        "lesion_f1": 2.0 * tp / f1_den if f1_den else (undefined if undefined is not None else 1.0),
        "lesion_dice": float(np.sum(dices)) / denom if denom else (undefined if undefined is not None else 1.0),
        "fp_volume_ml": fp_ml,
        "fn_volume_ml": fn_ml,
        "lesion_count_diff": abs(n_pred - (tp + fn)),
    }
    if cfg.hd95:
        out["lesion_hd95"] = ((float(np.sum(hds)) + cfg.penalty_mm * n_fp) / denom if denom
                              else (undefined if undefined is not None else 0.0))
    return out
