"""Lesion-wise (connected-component) detection scores of one label or region, from one overlap table.

Definitions (R = reference mask, P = predicted mask; components with ``connectivity`` 6, 18 or 26):

* reference lesions: the components of R. With ``dilation = n > 0`` (BraTS 2023) R is dilated n times with the
  18-neighbourhood; reference components inside one dilated component are *merged* into one lesion, and the
  lesion's *match region* is that dilated component. Otherwise the match region is the lesion itself.
* the overlap table: for every (lesion k, component j) sharing voxels, the shared voxel count; sizes by bincount.
  Everything below is computed from it (and the match-region table), never with per-lesion full-volume masks.
* matching rule ``overlap`` (autoPET, ISLES, BraTS 2023): component j *matches* lesion k when it has a voxel in
  k's match region, many-to-many. ``iou`` / ``dice`` (panoptica, BraTS 2025): one-to-one pairs whose IoU / Dice
  is >= the threshold (:mod:`medloss.scoring.matching`).
* a lesion with a match is *detected* (TP), otherwise *missed* (FN); a component that matches no lesion is a
  *false positive* (FP). The rules count differently: a prediction two voxels too wide that merges the 37 lesions of
  a real MS case into 32 blobs has 37 detected lesions, 0 FP and F1 1 under ``overlap``, but 0 TP, 32 FP, 37 FN
  under ``iou`` at 0.5 (as panoptica): each blob is much larger than any lesion it covers.
* reference lesions of volume <= ``exclude_volume_mm3`` are left out of the counts, F1, lesion Dice and PQ (BraTS
  2023); the predicted components matched only to them are not false positives either.
* ``lesion_f1`` = 2·TP / (2·TP + FP + FN) (ISLES: tp / (tp + (fp+fn)/2); panoptica's RQ).
* ``lesion_dice`` = (Σ_lesions Dice(lesion, its matched components)) / (n_lesions + n_FP): a missed lesion and
  every FP component count as Dice 0 (BraTS 2023 lesion-wise Dice).
* ``fp_volume_ml`` = volume of the FP components; ``fn_volume_ml`` = volume of the missed lesions (autoPET).
* ``lesion_hd95`` (only when ``hd95=True``): per detected lesion the HD95 between the lesion and its matched
  components (``hd95_surface``, ``hd95_rule``); a missed lesion and every FP component score ``penalty_mm``
  (BraTS: 374); averaged over n_lesions + n_FP.
* one-to-one rules add ``pq``, ``sq``, ``rq``, ``sq_dice``, ``pq_dice`` (:func:`~medloss.scoring.matching.
  panoptic_quality`) and, with ``hd95``, ``sq_hd95`` = mean HD95 of the TP pairs (BraTS 2025 lesion-wise HD95;
  ``penalty_mm`` when there is no TP but some instance, where brats-evaluation writes inf); with ``lesion_nsd``,
  ``sq_nsd`` = mean over the TP pairs of panoptica's NSD (mean of the two directed fractions of surface within
  min(spacing) mm; 0 without TP, as panoptica).
* no lesion and no FP component: F1, lesion Dice, PQ/SQ/RQ are 1 and lesion HD95 0 (BraTS 2023, ISLES
  ``empty_value=1``), or NaN under the ``nan`` empty policy (panoptica).

``instances=True`` adds per-instance rows: every reference lesion (``side="ref"``) and predicted component
(``side="pred"``) with its id, voxels, volume, matched partner ids, IoU and Dice against them, HD95 (reference
lesions and one-to-one pairs), and whether it is excluded by the volume filter.

Presets and options: :mod:`medloss.scoring.presets`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from medloss.scoring.matching import is_unique, match_one_to_one, pair_scores, panoptic_quality
from medloss.scoring.overlap import bounding_box, union_slices
from medloss.scoring.presets import LESION_PRESETS, LesionConfig, lesion_config

__all__ = ["LESION_COLUMNS", "LESION_PRESETS", "LesionConfig", "lesion_config", "lesion_columns",
           "lesion_scores"]

BASE = ["lesions_ref", "lesions_detected", "lesions_fp", "lesion_f1", "fp_volume_ml", "fn_volume_ml",
        "lesions_pred", "lesions_missed", "lesion_dice", "lesion_count_diff"]
PQ = ["pq", "sq", "rq", "sq_dice", "pq_dice"]
# every lesion column any config can produce
LESION_COLUMNS = BASE + ["lesion_hd95"] + PQ + ["sq_hd95", "sq_nsd", "global_hd95", "global_nsd"]


def lesion_columns(cfg: LesionConfig) -> list[str]:
    """The lesion-wise columns a config produces, in order.

    Args:
        cfg: the lesion config.

    Returns:
        The column names.
    """
    cols = list(BASE) + (["lesion_hd95"] if cfg.hd95 else [])
    if cfg.one_to_one:
        cols += PQ + (["sq_hd95"] if cfg.hd95 else []) + (["sq_nsd"] if cfg.lesion_nsd else [])
    return cols + (["global_hd95", "global_nsd"] if cfg.panoptica_global else [])


def _components(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, int]:
    import cc3d

    # cc3d's stubs type connectivity as a Literal of the values that callers check for
    labels, n = cc3d.connected_components(mask, connectivity=connectivity, return_N=True)  # type: ignore[call-overload]
    return labels, int(n)


def _pairs(a_at: np.ndarray, b_at: np.ndarray, nb: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique (a, b) label pairs with a, b > 0 among co-located label values, and their voxel counts."""
    keep = (a_at > 0) & (b_at > 0)
    keys, counts = np.unique(a_at[keep].astype(np.int64) * (nb + 1) + b_at[keep], return_counts=True)
    return keys // (nb + 1), keys % (nb + 1), counts


def lesion_scores(ref: np.ndarray, pred: np.ndarray, spacing: Sequence[float], config: LesionConfig | None = None,
                  empty: str = "worst", workers: int = -1, box: tuple[slice, ...] | None = None,
                  instances: bool = False) -> dict:
    """Lesion-wise scores of two boolean masks (module docstring).

    Args:
        ref, pred: boolean masks of the same shape.
        spacing: voxel size in mm, in the arrays' axis order.
        config: the lesion rules (default: the ``default`` preset).
        empty: the empty-mask policy, ``"worst"`` or ``"nan"``.
        workers: threads of the KD-tree queries (-1: all).
        box: the union bounding box, if the caller has it (used only without dilation).
        instances: add the per-instance rows under the key ``"instances"``.

    Returns:
        ``{column: value}`` for the columns of :func:`lesion_columns` (and ``"instances"``).
    """
    cfg = config or LESION_PRESETS["default"]
    voxel_ml = float(np.prod(spacing)) / 1000.0
    if box is None or cfg.dilation:
        box = union_slices(bounding_box(ref, cfg.dilation), bounding_box(pred, cfg.dilation))
    if box is None:
        return _finish(_Tally(), cfg, empty, instances)
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
    fpv = np.flatnonzero(p)
    pred_at_p = np.take(lp, fpv)
    ref_size = np.bincount(np.take(ref_lab, np.flatnonzero(r)), minlength=n_ref + 1)
    pred_size = np.bincount(pred_at_p, minlength=n_pred + 1)
    ik, ij, icount = _pairs(np.take(ref_lab, fpv), pred_at_p, n_pred)  # the overlap table
    if cfg.one_to_one:
        score = pair_scores(ik, ij, icount, ref_size, pred_size, cfg.matching)
        sel = match_one_to_one(ik, ij, score, cfg.match_threshold, is_unique(cfg.matching, cfg.match_threshold))
        mk, mj, inter_m = ik[sel], ij[sel], icount[sel].astype(np.float64)
    else:
        mk, mj, _ = _pairs(np.take(match_lab, fpv), pred_at_p, n_pred)  # (lesion k, component j) matches
        lookup = dict(zip(zip(ik.tolist(), ij.tolist(), strict=True), icount.tolist(), strict=True))
        inter_m = np.array([lookup.get((k, j), 0) for k, j in zip(mk.tolist(), mj.tolist(), strict=True)],
                           dtype=np.float64)
    t = _Tally(n_ref, n_pred, ref_size, pred_size, mk, mj, inter_m, voxel_ml, cfg.exclude_volume_mm3)
    if cfg.hd95 or cfg.lesion_nsd:
        t.hd, t.nsd = _lesion_distances(ref_lab, lp, t, spacing, cfg, workers)
    return _finish(t, cfg, empty, instances)


class _Tally:
    """Per-lesion and per-component tables of one case (all arrays indexed by id, entry 0 unused)."""

    def __init__(self, n_ref: int = 0, n_pred: int = 0, ref_size: np.ndarray | None = None,
                 pred_size: np.ndarray | None = None, mk: np.ndarray | None = None, mj: np.ndarray | None = None,
                 inter_m: np.ndarray | None = None, voxel_ml: float = 0.0, exclude_mm3: float = 0.0) -> None:
        e = np.zeros(0, np.int64)
        self.n_ref, self.n_pred, self.voxel_ml = n_ref, n_pred, voxel_ml
        self.ref_size = np.zeros(1, np.int64) if ref_size is None else ref_size
        self.pred_size = np.zeros(1, np.int64) if pred_size is None else pred_size
        self.mk: np.ndarray = e if mk is None else mk
        self.mj: np.ndarray = e if mk is None or mj is None else mj
        self.inter_m = np.zeros(0) if inter_m is None else inter_m
        self.matched_pred = np.bincount(self.mk, weights=self.pred_size[self.mj].astype(np.float64),
                                        minlength=n_ref + 1)
        self.matched_inter = np.bincount(self.mk, weights=self.inter_m, minlength=n_ref + 1)
        self.detected = np.bincount(self.mk, minlength=n_ref + 1) > 0
        self.kept = self.ref_size * (voxel_ml * 1000.0) > exclude_mm3
        self.kept[0] = False
        self.pred_matched = np.zeros(n_pred + 1, bool)
        self.pred_matched[self.mj] = True
        self.fp_ids = np.flatnonzero(~self.pred_matched[1:]) + 1
        denom = np.maximum(self.ref_size + self.matched_pred, 1)
        self.dice_k = 2.0 * self.matched_inter / denom
        self.iou_k = self.matched_inter / np.maximum(self.ref_size + self.matched_pred - self.matched_inter, 1)
        self.hd: np.ndarray | None = None  # per lesion id (NaN = not computed)
        self.nsd: np.ndarray | None = None


def _lesion_distances(ref_lab: np.ndarray, lp: np.ndarray, t: _Tally, spacing: Sequence[float], cfg: LesionConfig,
                      workers: int) -> tuple[np.ndarray, np.ndarray]:
    """Per lesion id: HD95 against its matched components (``penalty_mm`` if missed) and panoptica's NSD."""
    from scipy import ndimage as ndi

    from medloss.scoring.surface import distance_metrics, mean_directed_nsd, surface_distances

    ref_boxes = ndi.find_objects(ref_lab)
    pred_boxes = ndi.find_objects(lp)
    hd = np.full(t.n_ref + 1, np.nan)
    hd[~t.detected] = cfg.penalty_mm
    nsd = np.full(t.n_ref + 1, np.nan)
    for k in np.flatnonzero(t.detected & t.kept).tolist():
        js = t.mj[t.mk == k]
        box = ref_boxes[k - 1]
        for j in js.tolist():
            box = union_slices(box, pred_boxes[j - 1])
        g = ref_lab[box] == k
        q = np.isin(lp[box], js)
        sd = surface_distances(g, q, spacing, cfg.hd95_surface, box=tuple(slice(0, s) for s in g.shape),
                               workers=workers)
        assert sd is not None  # a detected lesion and its matched components are non-empty
        hd[k] = distance_metrics(sd, 1.0, pooled=cfg.hd95_rule == "pooled")["hd95"]
        if cfg.lesion_nsd:
            nsd[k] = mean_directed_nsd(sd, min(float(v) for v in spacing))
    return hd, nsd


def _finish(t: _Tally, cfg: LesionConfig, empty: str, instances: bool) -> dict:
    undefined = math.nan if empty == "nan" else None
    ids = np.flatnonzero(t.kept)
    tp = int(np.count_nonzero(t.detected & t.kept))
    fn = int(np.count_nonzero(~t.detected & t.kept))
    n_fp = int(t.fp_ids.size)
    denom = ids.size + n_fp
    f1_den = 2 * tp + n_fp + fn
    out: dict[str, Any] = {
        "lesions_ref": int(ids.size),
        "lesions_pred": t.n_pred,
        "lesions_detected": tp,
        "lesions_missed": fn,
        "lesions_fp": n_fp,
        "lesion_f1": 2.0 * tp / f1_den if f1_den else (undefined if undefined is not None else 1.0),
        "lesion_dice": float(np.sum(t.dice_k[ids])) / denom if denom else (undefined if undefined is not None
                                                                            else 1.0),
        "fp_volume_ml": float(t.pred_size[t.fp_ids].sum()) * t.voxel_ml,
        "fn_volume_ml": float(t.ref_size[t.kept & ~t.detected].sum()) * t.voxel_ml,
        "lesion_count_diff": abs(t.n_pred - (tp + fn)),
    }
    hd = t.hd if t.hd is not None else np.full(t.n_ref + 1, np.nan)
    if cfg.hd95:
        out["lesion_hd95"] = ((float(np.sum(hd[ids])) + cfg.penalty_mm * n_fp) / denom if denom
                              else (undefined if undefined is not None else 0.0))
    if cfg.one_to_one:
        tp_ids = np.flatnonzero(t.detected & t.kept)
        out.update(panoptic_quality(tp, n_fp, fn, t.iou_k[tp_ids], t.dice_k[tp_ids], undefined))
        if cfg.hd95:
            out["sq_hd95"] = (float(np.mean(hd[tp_ids])) if tp else cfg.penalty_mm if denom
                              else (undefined if undefined is not None else 0.0))
        if cfg.lesion_nsd:
            nsd = t.nsd if t.nsd is not None else np.full(t.n_ref + 1, np.nan)  # None: no lesion to measure
            out["sq_nsd"] = (float(np.mean(nsd[tp_ids])) if tp else 0.0 if denom
                             else (undefined if undefined is not None else 1.0))
    if instances:
        out["instances"] = _instance_rows(t, hd, cfg)
    return out


def _instance_rows(t: _Tally, hd: np.ndarray, cfg: LesionConfig) -> list[dict]:
    """One row per reference lesion and per predicted component (module docstring)."""
    partners_of_ref: dict[int, list[int]] = {}
    partners_of_pred: dict[int, list[int]] = {}
    for k, j in zip(t.mk.tolist(), t.mj.tolist(), strict=True):
        partners_of_ref.setdefault(k, []).append(j)
        partners_of_pred.setdefault(j, []).append(k)
    rows = []
    for k in range(1, t.n_ref + 1):
        d = hd[k] if t.detected[k] and cfg.hd95 else None
        rows.append({"side": "ref", "id": k, "voxels": int(t.ref_size[k]),
                     "volume_ml": float(t.ref_size[k]) * t.voxel_ml, "partners": partners_of_ref.get(k, []),
                     "iou": float(t.iou_k[k]), "dice": float(t.dice_k[k]),
                     "hd95": None if d is None or math.isnan(d) else float(d), "excluded": not bool(t.kept[k])})
    # a component against the union of the lesions it matches: its overlap with them over both sizes
    inter_p = np.bincount(t.mj, weights=t.inter_m, minlength=t.n_pred + 1)
    ref_p = np.bincount(t.mj, weights=t.ref_size[t.mk].astype(np.float64), minlength=t.n_pred + 1)
    lesion_of = dict(zip(t.mj.tolist(), t.mk.tolist(), strict=True)) if cfg.one_to_one else {}
    for j in range(1, t.n_pred + 1):
        size = float(t.pred_size[j])
        k = lesion_of.get(j)
        d = hd[k] if k is not None and cfg.hd95 and t.kept[k] else None
        rows.append({"side": "pred", "id": j, "voxels": int(size), "volume_ml": size * t.voxel_ml,
                     "partners": partners_of_pred.get(j, []),
                     "iou": float(inter_p[j] / max(size + ref_p[j] - inter_p[j], 1.0)),
                     "dice": float(2.0 * inter_p[j] / max(size + ref_p[j], 1.0)),
                     "hd95": None if d is None or math.isnan(d) else float(d), "excluded": False})
    return rows
