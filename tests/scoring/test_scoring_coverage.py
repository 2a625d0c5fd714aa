"""Labels that no scored label or region covers are named (warning or error), never silently scored as background."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from medloss.errors import InvalidOptionError, LabelValueError
from medloss.scoring import UncoveredLabelWarning, coverage_summary, score_arrays


def _brats21():
    """BraTS 2021 labels: 1 necrosis, 2 oedema, 4 enhancing tumour (BraTS 2023 calls it 3)."""
    ref = np.zeros((14, 14, 8), np.uint8)
    ref[2:12, 2:12, 1:7] = 2
    ref[4:10, 4:10, 2:6] = 4
    ref[6:8, 6:8, 3:5] = 1
    return ref


def test_preset_regions_that_leave_labels_out_warn_with_the_labels():
    ref = _brats21()
    with pytest.warns(UncoveredLabelWarning, match=r"label\(s\) \[4\] of the reference and prediction") as rec:
        rows = score_arrays(ref, ref, (1, 1, 1), lesions="brats23", case="c1")
    assert rec[0].message.labels == [4] and "relabel 4 -> 3" in str(rec[0].message)
    by = {r["label"]: r for r in rows}
    assert by["ET"]["empty"] == "both" and by["WT"]["n_ref"] < np.count_nonzero(ref)  # what the warning is about


def test_error_policy_raises_and_names_the_option():
    with pytest.raises(LabelValueError, match="--allow-uncovered-labels"):
        score_arrays(_brats21(), _brats21(), (1, 1, 1), lesions="brats23", uncovered="error")
    with pytest.raises(InvalidOptionError, match="uncovered"):
        score_arrays(_brats21(), _brats21(), (1, 1, 1), labels=[1], uncovered="ignore")


def test_given_labels_and_regions_are_checked_too():
    ref = _brats21()
    pred = ref.copy()
    pred[0, 0, 0] = 7  # a label only the prediction has
    with pytest.warns(UncoveredLabelWarning, match=r"\[7\] of the prediction"):
        score_arrays(pred, ref, (1, 1, 1), labels=[1, 2, 4])
    with pytest.warns(UncoveredLabelWarning, match=r"\[1, 2, 4\]"):
        rows = score_arrays(ref, ref, (1, 1, 1), regions={"WT": [99]})
    assert rows[0]["dice"] == 1.0 and rows[0]["empty"] == "both"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        score_arrays(ref, ref, (1, 1, 1))  # default labels: every label found is scored
        score_arrays(ref, ref, (1, 1, 1), regions={"WT": [1, 2, 4]}, ignore_index=None)


def test_coverage_summary_names_labels_absent_from_every_case():
    rows = [{"case": "a", "label": 9, "empty": "both"}, {"case": "b", "label": 9, "empty": "both"},
            {"case": "a", "label": "WT", "empty": "none", "unscored_labels": [4]},
            {"case": "b", "label": "WT", "empty": "both"}]
    assert coverage_summary(rows) == {"unscored_labels": {"a": [4]}, "absent_everywhere": [9]}
