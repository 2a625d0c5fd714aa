"""Per-label metric declarations: boundary IoU against a plain loop, the empty-mask values and columns derived from
the declarations, and the table in docs/scoring.md generated from them."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from medloss.scoring import columns, score_arrays
from medloss.scoring.metrics import PER_LABEL_METRICS, boundary_width, metrics_table, resolve_metrics

ROOT = Path(__file__).resolve().parents[2]


def _band_loop(mask: np.ndarray, d: int) -> np.ndarray:
    """Cheng et al.'s boundary region, one voxel at a time: a voxel of the mask is in it when a voxel within
    chessboard distance d is outside the mask or outside the volume."""
    out = np.zeros_like(mask)
    for idx in zip(*np.nonzero(mask), strict=True):
        lo = [i - d for i in idx]
        hi = [i + d + 1 for i in idx]
        if any(v < 0 for v in lo) or any(h > n for h, n in zip(hi, mask.shape, strict=True)):
            out[idx] = True
            continue
        out[idx] = not mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].all()
    return out


def _boundary_iou_loop(ref: np.ndarray, pred: np.ndarray) -> float:
    d = max(1, round(0.02 * math.sqrt(sum(n * n for n in ref.shape))))
    br, bp = _band_loop(ref, d), _band_loop(pred, d)
    return (br & bp).sum() / (br | bp).sum()


@pytest.mark.parametrize("seed", range(4))
def test_boundary_iou_equals_a_plain_loop(seed):
    rng = np.random.default_rng(seed)
    shape = (16, 20, 80) if seed % 2 else (12, 12, 12)  # d = 1 and d = 2 (2 % of the diagonal)
    grid = np.indices(shape)
    ref = np.zeros(shape, np.uint8)
    for _ in range(3):
        centre, radius = rng.uniform(0, shape), rng.uniform(2, 5)  # balls may touch the volume border
        ref[((grid - centre[:, None, None, None]) ** 2).sum(0) < radius ** 2] = 1
    pred = np.roll(ref, rng.integers(1, 3), axis=seed % 3)
    pred[rng.random(shape) < 0.01] = 1
    row = score_arrays(pred, ref, (1.0, 1.0, 1.0), labels=[1], metrics=["overlap", "boundary_iou"])[0]
    assert row["boundary_iou"] == pytest.approx(_boundary_iou_loop(ref == 1, pred == 1), abs=1e-12)
    assert boundary_width(shape) == (2 if seed % 2 else 1)


def test_boundary_iou_of_a_solid_block_differs_from_iou():
    ref = np.zeros((20, 20, 20), np.uint8)
    ref[2:18, 2:18, 2:18] = 1
    pred = np.zeros_like(ref)
    pred[3:18, 2:18, 2:18] = 1
    row = score_arrays(pred, ref, (1, 1, 1), labels=[1], metrics="overlap,boundary_iou")[0]
    assert row["iou"] == pytest.approx(15 / 16)
    assert row["boundary_iou"] == pytest.approx(_boundary_iou_loop(ref == 1, pred == 1))
    assert row["boundary_iou"] < row["iou"]


@pytest.mark.parametrize(("pred_on", "policy", "want"), [
    (False, "worst", 1.0), (False, "nan", math.nan), (True, "worst", 0.0), (True, "nan", 0.0)])
def test_boundary_iou_empty_mask_values_come_from_its_declaration(pred_on, policy, want):
    ref = np.zeros((8, 8, 8), np.uint8)
    pred = ref.copy()
    pred[2:4, 2:4, 2:4] = 1 if pred_on else 0
    row = score_arrays(pred, ref, (1, 1, 1), labels=[1], empty=policy, metrics="overlap,distance,boundary_iou")[0]
    assert row["boundary_iou"] == want or (math.isnan(want) and math.isnan(row["boundary_iou"]))
    if pred_on and policy == "nan":  # the declared 0/0 of precision and recall: the empty side
        assert row["precision"] == 0.0 and math.isnan(row["recall"]) and math.isnan(row["hd95"])


def test_columns_come_from_the_declarations_in_order():
    cols = columns(metrics=list(resolve_metrics(None)) + ["boundary_iou"])
    declared = [c.name for s in PER_LABEL_METRICS for c in s.columns]
    assert set(declared) <= set(cols)
    assert cols[:12] == ["case", "label", "dice", "iou", "precision", "recall", "vol_ref_ml", "vol_pred_ml", "hd",
                         "hd95", "assd", "nsd"]
    assert cols[12] == "boundary_iou" and "boundary_iou" not in columns()
    assert resolve_metrics(["boundary_iou", "overlap"]) == ("overlap", "boundary_iou")


def test_docs_metric_table_is_the_generated_one():
    text = (ROOT / "docs" / "scoring.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- metrics-table -->\n(.*?)<!-- /metrics-table -->", text, re.S)
    assert block is not None, "docs/scoring.md lacks the generated per-label metric table"
    assert block.group(1) == metrics_table(), "regenerate it: python -c 'from medloss.scoring.metrics import " \
                                              "metrics_table; print(metrics_table())'"
