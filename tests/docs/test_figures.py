"""The data behind the site's figures (docs/hooks/figures.py): the benchmark log parses, and the lesion picture's
cases give the counts its captions and the scoring page describe."""
from __future__ import annotations

import importlib.util
from pathlib import Path

FIGURES = Path(__file__).resolve().parents[2] / "docs" / "hooks" / "figures.py"
_spec = importlib.util.spec_from_file_location("docs_figures", FIGURES)
assert _spec is not None and _spec.loader is not None
figures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(figures)


def test_benchmark_log_rows():
    rows = figures.benchmark_ratios()
    assert len(rows) == 18  # 6 losses x 3 shapes
    assert rows[0] == ("dice 2x2x96", 0.40, 0.34)
    assert all(0 < t < 1 and 0 < m < 1 for _, t, m in rows)


def test_merged_and_split_lesion_counts():
    cases = figures.lesion_cases()
    merged, split = cases["merged"], cases["split"]
    assert figures.lesion_counts(*merged, "overlap") == {"lesions_ref": 2, "lesions_detected": 2, "lesions_fp": 0,
                                                         "lesion_f1": 1.0}
    assert figures.lesion_counts(*merged, "iou") == {"lesions_ref": 2, "lesions_detected": 0, "lesions_fp": 1,
                                                     "lesion_f1": 0.0}
    assert figures.lesion_counts(*split, "overlap")["lesions_detected"] == 1
    assert figures.lesion_counts(*split, "iou") == {"lesions_ref": 1, "lesions_detected": 0, "lesions_fp": 2,
                                                    "lesion_f1": 0.0}
