"""One-to-one lesion matching from the overlap table, and panoptic quality (Kirillov et al., "Panoptic
Segmentation", CVPR 2019).

Input: the overlap table of reference lesions k and predicted components j that share at least one voxel
(``k``, ``j``, ``inter`` = shared voxels) and the component sizes. The pair scores are

    IoU(k, j) = inter / (|k| + |j| - inter)        Dice(k, j) = 2 inter / (|k| + |j|)

A pair is a *candidate* when its score is ``>= threshold``. Candidates are matched one-to-one:

* IoU threshold >= 0.5 (Dice >= 2/3): a lesion can have at most one candidate with IoU > 0.5 (and vice versa), so
  the matching is unique; it is taken greedily by decreasing score (ties: predicted id, then reference id), which
  is panoptica's ``NaiveThresholdMatching`` and decides the one exact-0.5 tie the same way.
* lower thresholds: maximum-weight bipartite matching (``scipy.optimize.linear_sum_assignment``) on the cost
  1 - score for candidates and 1 + 1e-6 otherwise, keeping pairs of cost < 1 (panoptica's
  ``MaxBipartiteMatching``, which the BraTS 2025 evaluator runs with Dice >= 1e-6).

Panoptic quality from the matched pairs (TP), unmatched predictions (FP) and unmatched references (FN):

    RQ = TP / (TP + FP/2 + FN/2)   (the detection F1)     SQ = mean IoU of the TP pairs     PQ = SQ x RQ

and the Dice variants ``sq_dice`` (mean Dice of the TP pairs) and ``pq_dice`` = ``sq_dice`` x RQ.
"""
from __future__ import annotations

import numpy as np

_NO_MATCH_COST = 1.0 + 1e-6


def pair_scores(k: np.ndarray, j: np.ndarray, inter: np.ndarray, ref_size: np.ndarray, pred_size: np.ndarray,
                metric: str) -> np.ndarray:
    """IoU or Dice of each overlapping (k, j) pair (float64)."""
    inter = inter.astype(np.float64)
    a = ref_size[k].astype(np.float64)
    b = pred_size[j].astype(np.float64)
    return inter / (a + b - inter) if metric == "iou" else 2.0 * inter / (a + b)


def is_unique(metric: str, threshold: float) -> bool:
    """Whether candidates at this threshold can never compete (IoU >= 0.5, i.e. Dice >= 2/3)."""
    return threshold >= (0.5 if metric == "iou" else 2.0 / 3.0)


def match_one_to_one(k: np.ndarray, j: np.ndarray, score: np.ndarray, threshold: float,
                     unique: bool) -> np.ndarray:
    """Indices into (k, j, score) of the matched pairs (see the module docstring)."""
    cand = np.flatnonzero(score >= threshold)
    if cand.size == 0:
        return cand
    if unique:
        order = cand[np.lexsort((k[cand], j[cand], -score[cand]))]
        used_k: set[int] = set()
        used_j: set[int] = set()
        keep = []
        for i in order.tolist():
            kk, jj = int(k[i]), int(j[i])
            if kk in used_k or jj in used_j:
                continue
            used_k.add(kk)
            used_j.add(jj)
            keep.append(i)
        return np.asarray(sorted(keep), dtype=np.int64)
    from scipy.optimize import linear_sum_assignment

    rows, ri = np.unique(k[cand], return_inverse=True)
    cols, ci = np.unique(j[cand], return_inverse=True)
    cost = np.full((rows.size, cols.size), _NO_MATCH_COST)
    cost[ri, ci] = 1.0 - score[cand]
    where = np.full((rows.size, cols.size), -1, dtype=np.int64)
    where[ri, ci] = cand
    r, c = linear_sum_assignment(cost)
    ok = cost[r, c] < 1.0
    return np.sort(where[r[ok], c[ok]])


def panoptic_quality(tp: int, fp: int, fn: int, ious: np.ndarray, dices: np.ndarray,
                     undefined: float | None) -> dict[str, float]:
    """``pq``, ``sq``, ``rq``, ``sq_dice``, ``pq_dice``.

    No instance at all: 1 (``undefined`` None, the ``worst`` policy: nothing to find, nothing found wrongly) or
    NaN (panoptica). Instances but no TP: all 0 (SQ, a mean over no pair, gets its worst value, as in panoptica).
    """
    if tp + fp + fn == 0:
        v = 1.0 if undefined is None else undefined
        return dict.fromkeys(("pq", "sq", "rq", "sq_dice", "pq_dice"), v)
    rq = tp / (tp + 0.5 * fp + 0.5 * fn)
    if tp == 0:  # nothing matched: SQ (a mean over no pair) is given its worst value, as panoptica does
        return dict.fromkeys(("pq", "sq", "rq", "sq_dice", "pq_dice"), 0.0)
    sq, sq_d = float(np.mean(ious)), float(np.mean(dices))
    return {"pq": sq * rq, "sq": sq, "rq": rq, "sq_dice": sq_d, "pq_dice": sq_d * rq}
