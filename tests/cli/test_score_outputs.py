"""`medloss score` never destroys data: outputs that are inputs or each other are refused before scoring, an
unwritable output is one line naming the path, and an unreadable folder entry is one per-case error."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from medloss.cli.score import score
from medloss.io import write_volume


def _vol(path):
    a = np.zeros((8, 8, 6), np.uint8)
    a[2:5, 2:5, 1:4] = 1
    path.parent.mkdir(exist_ok=True)
    return str(write_volume(path, a))


def _run(*args):
    return CliRunner().invoke(score, [str(a) for a in args])


def _one_error_line(res, *words):
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("medloss score: error:"), res.stderr
    assert "Traceback" not in res.output + res.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.mark.parametrize("flag", ["--csv", "--json", "--plot"])
@pytest.mark.parametrize("which", ["pred", "ref"])
def test_output_that_is_an_input_is_refused_before_scoring(tmp_path, flag, which):
    p, r = _vol(tmp_path / "p.nii.gz"), _vol(tmp_path / "r.nii.gz")
    target = p if which == "pred" else r
    with open(target, "rb") as f:
        before = f.read()
    res = _run(p, r, flag, target, "-q")
    assert res.exit_code == 2
    _one_error_line(res, flag, "overwrite", target)
    with open(target, "rb") as f:
        assert f.read() == before


def test_output_through_a_symlink_or_a_case_of_an_input_folder_is_refused(tmp_path):
    p = _vol(tmp_path / "p" / "c1.nii.gz")
    _vol(tmp_path / "r" / "c1.nii.gz")
    os.symlink(p, tmp_path / "link.json")
    res = _run(p, tmp_path / "r" / "c1.nii.gz", "--json", tmp_path / "link.json", "-q")
    assert res.exit_code == 2
    _one_error_line(res, "--json", "overwrite")
    res = _run(tmp_path / "p", tmp_path / "r", "--csv", tmp_path / "p" / "c2.nii.gz", "-q")
    assert res.exit_code == 2
    _one_error_line(res, "--csv", "case of the input folder")
    assert not (tmp_path / "p" / "c2.nii.gz").exists()


def test_two_outputs_on_one_file_are_refused(tmp_path):
    p, r = _vol(tmp_path / "p.nii.gz"), _vol(tmp_path / "r.nii.gz")
    res = _run(p, r, "--csv", tmp_path / "out", "--json", tmp_path / "out", "-q")
    assert res.exit_code == 2
    _one_error_line(res, "--csv", "--json", "same file")
    assert not (tmp_path / "out").exists()


def test_output_in_a_missing_folder_is_one_line(tmp_path):
    p, r = _vol(tmp_path / "p.nii.gz"), _vol(tmp_path / "r.nii.gz")
    res = _run(p, r, "--csv", tmp_path / "nope" / "s.csv", "-q")
    assert res.exit_code == 2
    _one_error_line(res, "--csv", str(tmp_path / "nope"))


def test_unwritable_output_is_one_line_naming_the_path(tmp_path, monkeypatch):
    # root ignores file modes, so the failing write is simulated where every writer gets its temporary file
    import tempfile

    p, r = _vol(tmp_path / "p.nii.gz"), _vol(tmp_path / "r.nii.gz")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    res = _run(p, r, "--json", tmp_path / "s.json", "-q")
    assert res.exit_code == 1
    _one_error_line(res, str(tmp_path / "s.json"), "Permission denied")
    assert not (tmp_path / "s.json").exists()


def test_symlink_loops_in_a_folder_are_per_case_errors(tmp_path):
    for side in ("p", "r"):
        for case in ("c1", "c2"):
            _vol(tmp_path / side / f"{case}.nii.gz")
    os.symlink("loop.nii.gz", tmp_path / "p" / "loop.nii.gz")  # points at itself
    os.symlink("b", tmp_path / "p" / "a")
    os.symlink("a", tmp_path / "p" / "b")
    res = _run(tmp_path / "p", tmp_path / "r", "--json", tmp_path / "s.json", "-q")
    assert res.exit_code == 1 and "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert sum("symbolic links" in line for line in lines) == 3, res.stderr
    doc = json.loads((tmp_path / "s.json").read_text())
    assert sorted({row["case"] for row in doc["rows"]}) == ["c1", "c2"]
    assert sorted(e["case"] for e in doc["errors"]) == ["a", "b", "loop"]


def test_bad_labels_name_the_option(tmp_path):
    p, r = _vol(tmp_path / "p.nii.gz"), _vol(tmp_path / "r.nii.gz")
    res = _run(p, r, "--labels", "a,b")
    assert res.exit_code == 2 and "'--labels'" in res.output
