"""`medloss score` does not score labels as background without a word: a preset's regions that leave labels of
a case out are an error (--allow-uncovered-labels: one warning line), given labels/regions that do, or that no case
holds, one warning line each; the JSON summary lists them."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from medloss.cli import main
from medloss.io import write_volume


@pytest.fixture()
def folders(tmp_path):
    """Three BraTS 2021-style cases (enhancing tumour = 4, not 2023's 3)."""
    for side in ("pred", "ref"):
        (tmp_path / side).mkdir()
    for i in range(3):
        ref = np.zeros((14, 14, 8), np.uint8)
        ref[2:12, 2:12, 1:7] = 2
        ref[4:10, 4:10, 2:6] = 4
        ref[6:8, 6:8, 3:5] = 1
        pred = ref.copy()
        pred[2, 2:12, 1:7] = 0
        write_volume(tmp_path / "ref" / f"c{i}.nii.gz", ref)
        write_volume(tmp_path / "pred" / f"c{i}.nii.gz", pred)
    return tmp_path


def _run(tmp, *args):
    out = tmp / "o.json"
    res = CliRunner().invoke(main, ["score", str(tmp / "pred"), str(tmp / "ref"), "-q", "--json", str(out),
                                    *map(str, args)])
    return res, (json.loads(out.read_text()) if out.exists() else None)


def _warnings(res):
    return [line for line in res.stderr.splitlines() if line.startswith("medloss score: warning:")]


def test_brats21_labels_under_brats23_preset_are_an_error(folders):
    res, doc = _run(folders, "--lesion-preset", "brats23")  # was ET Dice 1.0 "both empty", exit 0
    assert res.exit_code == 1 and doc is None
    errors = [line for line in res.stderr.splitlines() if "no scored label or region" in line]
    assert len(errors) == 3 and "relabel 4 -> 3" in errors[0] and "--allow-uncovered-labels" in errors[0]


def test_allowed_uncovered_labels_are_one_warning_and_in_the_json(folders):
    res, doc = _run(folders, "--lesion-preset", "brats23", "--allow-uncovered-labels")
    assert res.exit_code == 0, res.output
    lines = _warnings(res)
    assert len(lines) == 2, res.stderr
    assert "label(s) [4] are in no scored label or region in 3 of 3 case(s)" in lines[0]
    assert "region ET: absent from the reference and the prediction of every case" in lines[1]
    assert doc["summary"]["unscored_labels"] == {"c0": [4], "c1": [4], "c2": [4]}
    assert doc["summary"]["absent_everywhere"] == ["ET"]
    assert all(row["unscored_labels"] == [4] for row in doc["rows"])
    assert "unscored_labels" not in doc["summary"]["per_label"]["WT"]["metrics"]


@pytest.mark.parametrize("args,absent", [(["--labels", "9"], "label 9"), (["--region", "WT=99"], "region WT")])
def test_a_label_no_case_holds_is_named(folders, args, absent):
    res, doc = _run(folders, *args)  # was a perfect 1.0 without a word
    assert res.exit_code == 0, res.output
    lines = _warnings(res)
    assert len(lines) == 2 and f"{absent}: absent from the reference and the prediction of every case" in lines[1]
    assert doc["summary"]["absent_everywhere"] == [9 if absent == "label 9" else "WT"]
    assert [row["dice"] for row in doc["rows"]] == [1.0, 1.0, 1.0]  # the number stays, now with its warning


def test_default_labels_and_covering_regions_are_quiet(folders):
    for args in ([], ["--region", "WT=1,2,4", "--region", "ET=4", "--labels", "1"]):
        res, doc = _run(folders, *args)
        assert res.exit_code == 0 and not _warnings(res), res.stderr
        assert doc["summary"]["unscored_labels"] == {} and doc["summary"]["absent_everywhere"] == []
