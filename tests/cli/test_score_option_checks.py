"""`medloss score` refuses option lists it would misread and options the chosen mode would ignore (exit 2, one
line on stderr, nothing written)."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from medloss.cli import main
from medloss.io import write_volume


@pytest.fixture()
def files(tmp_path):
    ref = np.zeros((10, 10, 6), np.uint8)
    ref[2:5, 2:5, 1:4] = 1
    ref[6:9, 6:9, 2:5] = 2
    pred = ref.copy()
    pred[2, 2:5, 1:4] = 0
    return str(write_volume(tmp_path / "p.nii.gz", pred)), str(write_volume(tmp_path / "r.nii.gz", ref))


def _run(*args):
    return CliRunner().invoke(main, ["score", *map(str, args)])


def _refused(res, text, out=None):
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], res.stderr
    assert out is None or not out.exists()


@pytest.mark.parametrize("args,text", [
    (["--region", "WT=1 2"], "NAME=L1,L2"),        # was label 12
    (["--region", "WT=1,2 3"], "NAME=L1,L2"),
    (["--labels", "1 2"], "comma-separated integers"),
    (["--labels", "1,-2"], "comma-separated integers"),
    (["--labels", "1,1"], "more than once"),     # was two identical rows
    (["--region", "1=2", "--labels", "1"], "['1'] names more than one"),  # was one summary key for both
    (["--region", "WT=1,2", "--region", "2=1", "--labels", "2"], "['2'] names more than one"),
])
def test_label_and_region_lists_are_checked(files, tmp_path, args, text):
    out = tmp_path / "o.json"
    _refused(_run(*files, *args, "--json", out, "-q"), text, out)


def test_spaces_around_commas_are_fine(files, tmp_path):
    import json

    out = tmp_path / "o.json"
    res = _run(*files, "--region", "WT=1, 2", "--labels", " 1 , 2", "--json", out, "-q")
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["recipe"]["regions"] == {"WT": [1, 2]} and [r["label"] for r in doc["rows"]] == [1, 2, "WT"]


@pytest.mark.parametrize("args,text", [
    (["--activation", "softmax"], "--activation applies only with --loss"),
    (["--loss-option", "alpha=0.3"], "--loss-option applies only with --loss"),
    (["--loss", "dice", "--lesion-preset", "brats23"], "--lesion-preset applies to metric scoring, not to --loss"),
    (["--loss", "dice", "--labels", "1", "--workers", "2"], "--labels, --workers apply to metric scoring"),
    (["--loss", "dice", "--ignore-index", "255"], "--loss-option ignore_index=N"),
    (["--instances-csv", "inst.csv"], "add --lesions"),  # was a header-only file
])
def test_options_the_mode_would_ignore_are_refused(files, tmp_path, args, text):
    out = tmp_path / "o.json"
    args = [tmp_path / a if a == "inst.csv" else a for a in args]
    _refused(_run(*files, *args, "--json", out, "-q"), text, out)
    assert not (tmp_path / "inst.csv").exists()


def test_instances_csv_with_lesion_scoring_still_works(files, tmp_path):
    inst = tmp_path / "inst.csv"
    res = _run(*files, "--lesions", "--instances-csv", inst, "-q")
    assert res.exit_code == 0, res.output
    assert len(inst.read_text().strip().splitlines()) > 1
