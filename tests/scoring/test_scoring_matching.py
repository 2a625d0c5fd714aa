"""One-to-one lesion matching and PQ/SQ/RQ against plainly written references: per-lesion full-volume masks, every
pair's IoU/Dice by direct counting, and the best matching by enumerating all matchings (small tables)."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from _scoring_realdata import perturb
from scipy import ndimage as ndi

from medloss.scoring import LesionConfig, lesion_config, lesion_scores
from medloss.scoring.matching import match_one_to_one

STRUCT26 = ndi.generate_binary_structure(3, 3)


def _all_matchings(pairs):
    """Every set of pairwise-disjoint pairs (brute force)."""
    for n in range(len(pairs), -1, -1):
        for combo in itertools.combinations(pairs, n):
            ks = [p[0] for p in combo]
            js = [p[1] for p in combo]
            if len(set(ks)) == n and len(set(js)) == n:
                yield combo


def reference(ref, pred, metric, threshold):
    """Per-lesion loops; the matching maximises sum(score + 1e-6) (panoptica's cost) by enumeration, or takes the
    unique candidates when the threshold makes them unique."""
    lr, nr = ndi.label(ref, STRUCT26)
    lp, npred = ndi.label(pred, STRUCT26)
    scores = {}
    for k in range(1, nr + 1):
        a = lr == k
        for j in range(1, npred + 1):
            b = lp == j
            inter = np.count_nonzero(a & b)
            if inter:
                s = inter / np.count_nonzero(a | b) if metric == "iou" else 2 * inter / (a.sum() + b.sum())
                iou = inter / np.count_nonzero(a | b)
                dice = 2 * inter / (a.sum() + b.sum())
                if s >= threshold:
                    scores[(k, j)] = (s, iou, dice)
    if threshold >= (0.5 if metric == "iou" else 2 / 3):  # IoU >= 0.5: the candidates are disjoint already
        best = list(scores)
        assert len({p[0] for p in best}) == len({p[1] for p in best}) == len(best)
    else:
        best = max(_all_matchings(list(scores)), key=lambda m: (sum(scores[p][0] + 1e-6 for p in m)))
    tp = len(best)
    fp, fn = npred - tp, nr - tp
    out = {"lesions_detected": tp, "lesions_fp": fp, "lesions_missed": fn,
           "rq": tp / (tp + 0.5 * fp + 0.5 * fn) if nr + npred else 1.0}
    out["sq"] = float(np.mean([scores[p][1] for p in best])) if tp else 0.0
    out["sq_dice"] = float(np.mean([scores[p][2] for p in best])) if tp else 0.0
    out["pq"], out["pq_dice"] = out["sq"] * out["rq"], out["sq_dice"] * out["rq"]
    return out


def _close(got, want):
    bad = {k: (got[k], v) for k, v in want.items() if not math.isclose(got[k], v, rel_tol=1e-12, abs_tol=1e-12)}
    assert not bad, bad


def _blobs(kind):
    """Small cases where the matching matters: merged, split, chained overlaps."""
    ref = np.zeros((12, 30, 12), bool)
    pred = np.zeros_like(ref)
    if kind == "merged":
        for i in range(4):
            ref[3:7, 2 + 6 * i:6 + 6 * i, 3:7] = True
        pred[3:7, 1:14, 3:7] = True
        pred[3:7, 14:25, 3:7] = True
    elif kind == "split":
        ref[3:7, 2:28, 3:7] = True
        for lo, hi in ((2, 8), (9, 16), (17, 28)):
            pred[3:7, lo:hi, 3:7] = True
    else:  # chain: each prediction straddles two lesions, so a greedy pick can block a better total
        for lo, hi in ((1, 7), (9, 13), (15, 25)):
            ref[3:7, lo:hi, 3:7] = True
        for lo, hi in ((2, 11), (12, 20), (21, 29)):
            pred[3:7, lo:hi, 3:7] = True
    return ref, pred


@pytest.mark.parametrize("kind", ["merged", "split", "chain"])
@pytest.mark.parametrize("metric,threshold", [("iou", 0.5), ("iou", 0.1), ("dice", 1e-6), ("dice", 0.7)])
def test_matching_equals_reference(kind, metric, threshold):
    ref, pred = _blobs(kind)
    got = lesion_scores(ref, pred, (1.0, 1.3, 2.0), LesionConfig(matching=metric, threshold=threshold))
    _close(got, reference(ref, pred, metric, threshold))


@pytest.mark.parametrize("kind,metric", [("shift", "iou"), ("add", "iou"), ("erode", "dice")])
def test_real_masks_iou_and_dice(real_masks, kind, metric):
    ref, spacing = real_masks("openms_patient07_flair")
    pred = perturb(ref, kind)
    threshold = 0.5 if metric == "iou" else 0.7
    got = lesion_scores(ref, pred, spacing, LesionConfig(matching=metric, threshold=threshold))
    _close(got, reference(ref, pred, metric, threshold))
    assert got["rq"] == got["lesion_f1"]
    assert got["lesions_detected"] + got["lesions_missed"] == got["lesions_ref"]


def test_bipartite_beats_greedy_on_a_chain():
    """Scores k1-j1 0.9, k1-j2 0.8, k2-j1 0.8: greedy takes k1-j1 (total 0.9), the assignment k1-j2 + k2-j1 (1.6)."""
    k = np.array([1, 1, 2])
    j = np.array([1, 2, 1])
    s = np.array([0.9, 0.8, 0.8])
    assert sorted(match_one_to_one(k, j, s, 0.1, unique=False).tolist()) == [1, 2]
    assert match_one_to_one(k, j, s, 0.1, unique=True).tolist() == [0]


def test_threshold_is_inclusive_and_ties_go_to_the_lower_prediction_id():
    """IoU exactly 0.5 matches (panoptica's >=); one prediction = the union of two equal lesions is a tie."""
    ref = np.zeros((4, 12, 4), bool)
    ref[1:3, 1:3, 1:3] = True
    ref[1:3, 3:5, 1:3] = False
    pred = np.zeros_like(ref)
    pred[1:3, 1:5, 1:3] = True  # IoU 0.5 with lesion 1
    out = lesion_scores(ref, pred, (1, 1, 1), LesionConfig(matching="iou"), instances=True)
    assert (out["lesions_detected"], out["sq"]) == (1, 0.5)
    k = np.array([1, 2])
    j = np.array([1, 1])
    assert match_one_to_one(k, j, np.array([0.5, 0.5]), 0.5, unique=True).tolist() == [0]


def test_instances_rows():
    ref, pred = _blobs("split")
    out = lesion_scores(ref, pred, (1, 1, 1), LesionConfig(matching="iou", threshold=0.2, hd95=True), instances=True)
    rows = out["instances"]
    refs = [r for r in rows if r["side"] == "ref"]
    preds = [r for r in rows if r["side"] == "pred"]
    assert len(refs) == 1 and len(preds) == 3
    partner = refs[0]["partners"]
    assert len(partner) == 1 and preds[partner[0] - 1]["partners"] == [1]
    assert refs[0]["iou"] == preds[partner[0] - 1]["iou"] == out["sq"]
    assert refs[0]["hd95"] == preds[partner[0] - 1]["hd95"] == out["sq_hd95"]
    assert sum(r["voxels"] for r in preds) == int(pred.sum())
    over = lesion_scores(ref, pred, (1, 1, 1), LesionConfig(), instances=True)["instances"]
    assert [r["partners"] for r in over if r["side"] == "ref"] == [[1, 2, 3]]


def test_both_empty_and_no_tp_policies():
    z = np.zeros((5, 5, 5), bool)
    cfg = LesionConfig(matching="iou", hd95=True, hd95_surface="voxel", hd95_rule="pooled", penalty_mm=373.0)
    assert lesion_scores(z, z, (1, 1, 1), cfg)["pq"] == 1.0
    assert math.isnan(lesion_scores(z, z, (1, 1, 1), cfg, empty="nan")["sq"])
    a = z.copy()
    a[1, 1, 1] = True
    out = lesion_scores(a, z, (1, 1, 1), cfg, empty="nan")  # a lesion, nothing predicted (panoptica: 0, 0, inf)
    assert (out["rq"], out["sq"], out["pq"], out["sq_hd95"]) == (0.0, 0.0, 0.0, 373.0)


def test_config_errors():
    from medloss.errors import InvalidOptionError

    with pytest.raises(InvalidOptionError, match="threshold"):
        LesionConfig(threshold=0.5)  # the overlap rule has no threshold
    with pytest.raises(InvalidOptionError, match="threshold"):
        LesionConfig(matching="iou", threshold=1.5)
    with pytest.raises(InvalidOptionError, match="Did you mean 'dice'"):
        LesionConfig(matching="dise")
    with pytest.raises(InvalidOptionError, match="pooled"):
        LesionConfig(hd95_rule="pooled")
    with pytest.raises(InvalidOptionError, match="one-to-one"):
        LesionConfig(lesion_nsd=True)
    assert lesion_config("brats25", matching="iou").match_threshold == 0.5  # the preset's 1e-6 was for Dice
