"""Agreement with the official lesion-wise evaluators, to 1e-6 on every count and score, on the fixed BraTS-labelled
cases of ``_lesion_cases.py`` (multi-label, anisotropic spacing, merged / split / near-miss lesions, empty masks).

* recorded numbers (``data/official_lesion_numbers.json``, written by ``benchmarks/official_runners.py``, whose
  docstring has the commands): the BraTS 2023 code (rachitsaluja/BraTS-2023-Metrics, not on PyPI), brats-evaluation
  and panoptica. These tests always run.
* live runs: panoptica / brats-evaluation when installed (``pip install .[official]``), the BraTS 2023 code when
  ``BRATS23_METRICS_DIR`` points at a checkout whose code runs under the installed packages (it needs pandas < 1.5).
"""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
from _lesion_cases import CASES, load

from medloss.scoring import lesion_config, score_arrays

HERE = Path(__file__).resolve().parent
RECORDED = json.loads((HERE / "data" / "official_lesion_numbers.json").read_text(encoding="utf-8"))
BRATS23_KEYS = {"Num_TP": "lesions_detected", "Num_FP": "lesions_fp", "Num_FN": "lesions_missed", "Legacy_Dice": "dice",
                "Legacy_HD95": "hd95", "LesionWise_Score_Dice": "lesion_dice", "LesionWise_Score_HD95": "lesion_hd95"}
BRATS25_KEYS = {"tp": "lesions_detected", "fp": "lesions_fp", "fn": "lesions_missed", "rq": "rq",
                "sq_dsc": "sq_dice", "sq_hd95": "sq_hd95", "sq_nsd": "sq_nsd", "global_bin_dsc": "dice",
                "global_bin_hd95": "global_hd95", "global_bin_nsd": "global_nsd"}
PANOPTICA_KEYS = {"tp": "lesions_detected", "fp": "lesions_fp", "fn": "lesions_missed", "rq": "rq", "sq": "sq",
                  "pq": "pq", "sq_dsc": "sq_dice", "pq_dsc": "pq_dice"}
PANOPTICA_REGIONS = {"wt": (1, 2, 3), "tc": (1, 3), "et": (3,), "rc": (4,)}


def _runners():
    spec = importlib.util.spec_from_file_location("official_runners", HERE.parents[1] / "benchmarks" /
                                                  "official_runners.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _same(got, want, penalty=None):
    """Equal to 1e-6; the official 'inf' (no matched pair) is the preset's finite penalty; None is NaN."""
    if want is None:
        return got is not None and math.isnan(got)
    if want == "inf":
        return got == penalty
    return got is not None and abs(float(got) - float(want)) <= 1e-6 * max(1.0, abs(float(want)))


def _check(rows, want_by_region, keys, penalty=None, lower=False):
    by_label = {(r["label"].lower() if lower else r["label"]): r for r in rows}
    assert set(by_label) == set(want_by_region), (sorted(by_label), sorted(want_by_region))
    bad = [(region, ours, by_label[region][ours], want[theirs])
           for region, want in want_by_region.items() for theirs, ours in keys.items()
           if not _same(by_label[region][ours], want[theirs], penalty)]
    assert not bad, bad


@pytest.mark.parametrize("challenge,preset", [("BraTS-GLI", "brats23"), ("BraTS-MEN", "brats23-men"),
                                              ("BraTS-MET", "brats23-met")])
@pytest.mark.parametrize("case", list(CASES))
def test_brats23_preset_equals_official_code(case, challenge, preset):
    pred, ref, spacing = load(case)
    rows = score_arrays(pred, ref, spacing, lesions=preset)  # the preset alone: regions, surfels, 374 mm
    assert [r["label"] for r in rows] == ["WT", "TC", "ET"]
    _check(rows, RECORDED["brats23"][case][challenge], BRATS23_KEYS)


def _check_brats25(pred, ref, spacing, want, preset="brats25"):
    """brats-evaluation reads NIfTI files with SimpleITK and pairs the (z, y, x) array with the (x, y, z) spacing
    (panoptica 2.1.7 ``SITKImageChecker``), so on anisotropic volumes its distances are those of the reversed
    spacing. Counts and overlaps do not depend on it; HD95 and NSD are checked against that spacing there."""
    rows = score_arrays(pred, ref, spacing, lesions=preset)
    if len(set(spacing)) == 1:
        _check(rows, want, BRATS25_KEYS, penalty=373.0, lower=True)
    else:
        distances = {"sq_hd95": "sq_hd95", "sq_nsd": "sq_nsd"}  # the global ones are in voxel units anyway
        _check(rows, want, {k: v for k, v in BRATS25_KEYS.items() if k not in distances}, penalty=373.0, lower=True)
        swapped = score_arrays(pred, ref, spacing[::-1], lesions=preset)
        _check(swapped, want, distances, penalty=373.0, lower=True)
    for r in rows:  # RQ is the detection F1 of the chosen rule
        assert r["rq"] == r["lesion_f1"] or (math.isnan(r["rq"]) and math.isnan(r["lesion_f1"]))


@pytest.mark.parametrize("preset", ["brats25", "brats25-mets", "brats25-ped"])
@pytest.mark.parametrize("case", list(CASES))
def test_brats25_preset_equals_brats_evaluation(case, preset):
    _check_brats25(*load(case), RECORDED[preset][case], preset)


@pytest.mark.parametrize("case", list(CASES))
def test_iou_matching_equals_panoptica(case):
    pred, ref, spacing = load(case)
    rows = score_arrays(pred, ref, spacing, regions=PANOPTICA_REGIONS, empty="nan",
                        lesions=lesion_config(True, matching="iou", threshold=0.5))
    _check(rows, RECORDED["panoptica_iou05"][case], PANOPTICA_KEYS)


def test_merged_case_counts_differ_between_rules():
    """The same prediction: any-overlap finds all 7 merged ET lesions, IoU >= 0.5 pairs find none."""
    pred, ref, spacing = load("merged")
    et = {"ET": (3,)}
    over = score_arrays(pred, ref, spacing, regions=et, lesions=True)[0]
    iou = score_arrays(pred, ref, spacing, regions=et, lesions=lesion_config(True, matching="iou"))[0]
    assert (over["lesions_detected"], over["lesions_fp"], over["lesions_missed"]) == (7, 0, 0)
    assert (iou["lesions_detected"], iou["lesions_fp"], iou["lesions_missed"]) == (0, 2, 7)
    assert over["lesion_f1"] == 1.0 and iou["lesion_f1"] == iou["pq"] == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_live_panoptica_and_brats_evaluation(case, tmp_path):
    pytest.importorskip("panoptica")
    pytest.importorskip("brats_evaluation")
    run = _runners()
    pred, ref, spacing = load(case)
    want = run.run_panoptica(pred, ref, spacing, {k.upper(): v for k, v in PANOPTICA_REGIONS.items()})
    rows = score_arrays(pred, ref, spacing, regions=PANOPTICA_REGIONS, empty="nan",
                        lesions=lesion_config(True, matching="iou"))
    _check(rows, want, PANOPTICA_KEYS)
    p = run.write_nifti(tmp_path / "p.nii.gz", pred, spacing)
    r = run.write_nifti(tmp_path / "r.nii.gz", ref, spacing)
    _check_brats25(pred, ref, spacing, run.run_brats25(p, r))


def test_live_brats23_official_code(tmp_path):
    run = _runners()
    try:
        module = run.brats23_module()
        if module is None:
            pytest.skip("set BRATS23_METRICS_DIR to a rachitsaluja/BraTS-2023-Metrics checkout")
        pred, ref, spacing = load("glioma")
        p = run.write_nifti(tmp_path / "p.nii.gz", pred, spacing)
        r = run.write_nifti(tmp_path / "r.nii.gz", ref, spacing)
        want = run.run_brats23(module, p, r)
    except (ValueError, AttributeError) as exc:  # pandas >= 1.5: its DataFrame.replace on the lesion table fails
        pytest.skip(f"the official code does not run with these packages ({type(exc).__name__}: {exc})")
    _check(score_arrays(pred, ref, spacing, lesions="brats23"), want, BRATS23_KEYS)


def test_recorded_numbers_cover_every_case():
    for tool in ("brats23", "brats25", "brats25-mets", "brats25-ped", "panoptica_iou05"):
        assert set(RECORDED[tool]) == set(CASES), tool
    assert RECORDED["versions"]["record-brats23"]["BraTS-2023-Metrics"].startswith("43c9052")


def test_region_rows_equal_masks_built_outside():
    """A region row is the label-1 row of the union mask built by hand (every metric, lesion columns included)."""
    pred, ref, spacing = load("glioma")
    rows = score_arrays(pred, ref, spacing, regions=["TC=1,3"], lesions="brats23", surface="voxel")
    by_hand = score_arrays(np.isin(pred, (1, 3)).astype(np.uint8), np.isin(ref, (1, 3)).astype(np.uint8), spacing,
                           labels=[1], lesions="brats23", surface="voxel")
    assert rows[0]["label"] == "TC"
    assert {k: v for k, v in rows[0].items() if k != "label"} == {k: v for k, v in by_hand[0].items() if k != "label"}


@pytest.mark.slow
def test_live_panoptica_on_a_real_merged_prediction(real_masks):
    """A real MS case (37 lesions) predicted two voxels too wide: the lesions merge into 32 blobs. Overlap matching
    finds all 37, IoU >= 0.5 matching none; panoptica agrees with the latter (docs/scoring-lesions.md's example)."""
    from scipy import ndimage as ndi

    pytest.importorskip("panoptica")
    ref, spacing = real_masks("openms_patient07_flair")
    pred = ndi.binary_dilation(ref, iterations=2)
    over = score_arrays(pred.astype(np.uint8), ref.astype(np.uint8), spacing, lesions=True)[0]
    assert (over["lesions_ref"], over["lesions_pred"], over["lesions_detected"], over["lesions_fp"]) == (37, 32, 37, 0)
    rows = score_arrays(pred.astype(np.uint8), ref.astype(np.uint8), spacing, regions={"les": (1,)}, empty="nan",
                        lesions=lesion_config(True, matching="iou"))
    want = _runners().run_panoptica(pred.astype(np.uint8), ref.astype(np.uint8), spacing, {"les": (1,)})
    _check(rows, want, PANOPTICA_KEYS)
    assert (rows[0]["lesions_detected"], rows[0]["lesions_fp"], rows[0]["lesions_missed"]) == (0, 32, 37)
