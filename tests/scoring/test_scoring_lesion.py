"""Lesion-wise scores against per-lesion reference loops written from the definitions (autoPET / ISLES style loops,
and the BraTS 2023 lesion-wise procedure with per-lesion dilation and DeepMind HD95), on real multi-lesion masks."""
from __future__ import annotations

import math

import numpy as np
import pytest
from _scoring_realdata import perturb
from scipy import ndimage as ndi

from medloss.scoring import LESION_PRESETS, LesionConfig, lesion_scores, score_arrays

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
STRUCT = {6: ndi.generate_binary_structure(3, 1), 18: ndi.generate_binary_structure(3, 2),
          26: ndi.generate_binary_structure(3, 3)}


def loop_reference(ref, pred, spacing, connectivity):
    """One full-volume mask per component (the slow way)."""
    voxel_ml = float(np.prod(spacing)) / 1000
    lr, nr = ndi.label(ref, STRUCT[connectivity])
    lp, npred = ndi.label(pred, STRUCT[connectivity])
    tp = fn = fp = 0
    fp_vox = fn_vox = 0
    dices = []
    for k in range(1, nr + 1):
        comp = lr == k
        hit = np.unique(lp[comp & pred])
        hit = hit[hit > 0]
        if hit.size:
            tp += 1
            union = np.isin(lp, hit)
            dices.append(2 * np.count_nonzero(comp & union) / (comp.sum() + union.sum()))
        else:
            fn += 1
            fn_vox += int(comp.sum())
            dices.append(0.0)
    for j in range(1, npred + 1):
        comp = lp == j
        if not (comp & ref).any():
            fp += 1
            fp_vox += int(comp.sum())
    f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 1.0
    ldice = sum(dices) / (nr + fp) if nr + fp else 1.0
    return {"lesions_ref": nr, "lesions_pred": npred, "lesions_detected": tp, "lesions_missed": fn,
            "lesions_fp": fp, "lesion_f1": f1, "lesion_dice": ldice, "fp_volume_ml": fp_vox * voxel_ml,
            "fn_volume_ml": fn_vox * voxel_ml}


def brats_reference(ref, pred, spacing, dil, thresh, penalty=374.0):
    """BraTS 2023 lesion-wise Dice/HD95 and counts, following the challenge's published procedure."""
    sdm = pytest.importorskip("surface_distance")
    st = ndi.generate_binary_structure(3, 2)
    lr, _ = ndi.label(ref, STRUCT[26])
    lp, _ = ndi.label(pred, STRUCT[26])
    ld, nd = ndi.label(ndi.binary_dilation(ref, st, iterations=dil), STRUCT[26])
    merged = np.zeros_like(lr)
    for comp in range(1, nd + 1):  # reference lesions within one dilated blob become one lesion
        merged[(ld == comp) & (lr > 0)] = comp
    vox = float(np.prod(spacing))
    tps, kept_d, kept_h, n_tp, n_fn = [], [], [], 0, 0
    for comp in range(1, nd + 1):
        g = merged == comp
        grown = ndi.binary_dilation(g, st, iterations=dil)
        hit = np.unique(lp[grown])
        hit = hit[hit > 0]
        tps.extend(hit.tolist())
        q = np.isin(lp, hit)
        dice = 2 * np.count_nonzero(g & q) / (g.sum() + q.sum())
        if hit.size:
            hd = sdm.compute_robust_hausdorff(sdm.compute_surface_distances(g, q, list(spacing)), 95)
        else:
            hd = penalty
        if g.sum() * vox > thresh:
            kept_d.append(dice)
            kept_h.append(hd)
            n_tp += bool(hit.size)
            n_fn += not hit.size
    n_fp = len(set(np.unique(lp[lp > 0]).tolist()) - set(tps))
    den = len(kept_d) + n_fp
    return {"lesions_ref": len(kept_d), "lesions_detected": n_tp, "lesions_missed": n_fn, "lesions_fp": n_fp,
            "lesion_dice": sum(kept_d) / den if den else 1.0,
            "lesion_hd95": (sum(kept_h) + penalty * n_fp) / den if den else 0.0}


def _compare(got, want):
    for key, val in want.items():
        assert math.isclose(got[key], val, rel_tol=1e-9, abs_tol=1e-9), (key, got[key], val)


@pytest.mark.parametrize("connectivity", [6, 18, 26])
@pytest.mark.parametrize("kind", ["shift", "erode", "remove", "add"])
def test_detection_matches_loop(real_masks, connectivity, kind):
    ref, spacing = real_masks("openms_patient07_flair")  # 37 lesions (26-conn), 49 (6-conn)
    pred = perturb(ref, kind)
    got = lesion_scores(ref, pred, spacing, LesionConfig(connectivity=connectivity))
    _compare(got, loop_reference(ref, pred, spacing, connectivity))


@pytest.mark.parametrize("case", ["openms_patient07_flair", "openms_patient26_flair"])
@pytest.mark.parametrize("dil,thresh", [(3, 50.0), (1, 2.0)])
def test_brats23_matches_challenge_procedure(real_masks, case, dil, thresh):
    ref, spacing = real_masks(case)
    pred = perturb(ref, "add") & ~perturb(ref, "remove") | (perturb(ref, "shift") & perturb(ref, "remove"))
    cfg = LesionConfig(connectivity=26, dilation=dil, exclude_volume_mm3=thresh, hd95=True, preset="brats23")
    got = lesion_scores(ref, pred, spacing, cfg)
    _compare(got, brats_reference(ref, pred, spacing, dil, thresh))


def test_presets():
    assert LESION_PRESETS["autopet"].connectivity == 18
    assert LESION_PRESETS["isles"].connectivity == 26
    b = LESION_PRESETS["brats23"]
    assert (b.connectivity, b.dilation, b.exclude_volume_mm3, b.hd95, b.penalty_mm) == (26, 3, 50.0, True, 374.0)


def test_connectivity_changes_counts():
    ref = np.zeros((8, 8, 8), bool)
    ref[2, 2, 2] = ref[3, 3, 3] = True  # corner-touching voxels: 1 lesion at 26, 2 at 6 and 18
    counts = {c: lesion_scores(ref, ref, (1, 1, 1), LesionConfig(connectivity=c))["lesions_ref"] for c in (6, 18, 26)}
    assert counts == {6: 2, 18: 2, 26: 1}


@pytest.mark.parametrize("empty,expected", [("worst", 1.0), ("nan", None)])
def test_both_empty_lesion_policy(empty, expected):
    z = np.zeros((5, 5, 5), bool)
    out = lesion_scores(z, z, (1, 1, 1), LESION_PRESETS["brats23"], empty=empty)
    assert out["lesions_ref"] == out["lesions_fp"] == 0
    if expected is None:
        assert math.isnan(out["lesion_f1"]) and math.isnan(out["lesion_dice"]) and math.isnan(out["lesion_hd95"])
    else:
        assert out["lesion_f1"] == out["lesion_dice"] == 1.0 and out["lesion_hd95"] == 0.0


def test_missed_and_fp_only():
    ref = np.zeros((10, 10, 10), bool)
    pred = np.zeros_like(ref)
    ref[1:3, 1:3, 1:3] = True
    pred[6:9, 6:9, 6:9] = True
    out = lesion_scores(ref, pred, (1.0, 1.0, 2.0), LesionConfig(hd95=True, penalty_mm=100.0))
    assert (out["lesions_detected"], out["lesions_missed"], out["lesions_fp"]) == (0, 1, 1)
    assert out["lesion_f1"] == 0.0 and out["lesion_dice"] == 0.0 and out["lesion_hd95"] == 100.0
    assert math.isclose(out["fn_volume_ml"], 8 * 2 / 1000) and math.isclose(out["fp_volume_ml"], 27 * 2 / 1000)


def test_score_arrays_lesion_columns(real_masks):
    ref, spacing = real_masks("openms_patient26_flair")
    pred = perturb(ref, "add").astype(np.uint8)
    row = score_arrays(pred, ref.astype(np.uint8), spacing, lesions="autopet")[0]
    for key in ("lesions_ref", "lesions_detected", "lesions_fp", "lesion_f1", "fp_volume_ml", "fn_volume_ml"):
        assert key in row
    _compare(row, {k: v for k, v in loop_reference(ref, pred > 0, spacing, 18).items()})
