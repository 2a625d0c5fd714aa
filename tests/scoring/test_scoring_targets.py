"""Label lists and row names of `score_arrays`: comma-separated integers only, one name per row."""
from __future__ import annotations

import numpy as np
import pytest

from medloss.errors import InvalidOptionError
from medloss.scoring import check_target_names, parse_label_list, parse_region, score_arrays


def test_label_lists_are_comma_separated_integers():
    assert parse_label_list("1, 2 ,3") == (1, 2, 3) and parse_label_list("12 ") == (12,)
    assert parse_region(" WT = 1, 2,3") == ("WT", (1, 2, 3))
    for bad in ("1 2", "1,,2", "", "1,x", "-1", "1.0"):
        with pytest.raises(InvalidOptionError, match="comma-separated"):
            parse_label_list(bad)
    with pytest.raises(InvalidOptionError, match="NAME=L1,L2"):
        parse_region("WT=1 2")


def test_row_names_are_unique():
    check_target_names([1, 2], [("WT", (1, 2))])
    with pytest.raises(InvalidOptionError, match=r"\['1'\] names more than one"):
        check_target_names([1], [("1", (2,))])
    ref = np.zeros((4, 4, 4), np.uint8)
    ref[1:3, 1:3, 1:3] = 2
    with pytest.raises(InvalidOptionError, match="names more than one"):
        score_arrays(ref, ref, (1, 1, 1), labels=[2], regions={"2": [2]})
    with pytest.raises(InvalidOptionError, match=r"\['2'\] names more than one"):
        score_arrays(ref, ref, (1, 1, 1), labels=[2, 2])
