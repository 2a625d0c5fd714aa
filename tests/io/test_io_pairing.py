"""Pairing cases of two folders by case id."""
from __future__ import annotations

import numpy as np
import pytest

from medloss.errors import InvalidOptionError, VolumeReadError
from medloss.io import case_id, pair_folders, resolve_inputs, write_volume


def _touch(path):
    write_volume(path, np.zeros((2, 2, 2), np.uint8))


def test_case_id():
    assert case_id("/a/b/case_01.nii.gz") == "case_01"
    assert case_id("case_01_pred.nrrd", "_pred") == "case_01"
    assert case_id("x.MHA") == "x"
    assert case_id("/a/dicom_case/") == "dicom_case"


def test_pair_folders_reports_missing(tmp_path):
    p, r = tmp_path / "p", tmp_path / "r"
    p.mkdir()
    r.mkdir()
    for name in ("a_pred.nii.gz", "b_pred.nrrd", "c_pred.nii.gz"):
        _touch(p / name)
    for name in ("a.nii.gz", "b.nii", "d.mha"):
        _touch(r / name)
    (r / "notes.json").write_text("{}")
    (r / ".hidden.nii.gz").write_text("")
    out = pair_folders(str(p), str(r), pred_suffix="_pred")
    assert [c for c, _, _ in out.pairs] == ["a", "b"]
    assert [c for c, _ in out.missing_reference] == ["c"]
    assert [c for c, _ in out.missing_prediction] == ["d"]


def test_empty_and_duplicate(tmp_path):
    (tmp_path / "e").mkdir()
    with pytest.raises(VolumeReadError, match="no volume files"):
        pair_folders(str(tmp_path / "e"), str(tmp_path / "e"))
    d = tmp_path / "d"
    d.mkdir()
    _touch(d / "a.nii.gz")
    _touch(d / "a.nrrd")
    with pytest.raises(VolumeReadError, match="case id 'a'"):
        pair_folders(str(d), str(d))


def test_resolve_inputs(tmp_path):
    _touch(tmp_path / "x.nii.gz")
    (tmp_path / "f").mkdir()
    _touch(tmp_path / "f" / "x.nii.gz")
    batch, pairing = resolve_inputs(str(tmp_path / "x.nii.gz"), str(tmp_path / "x.nii.gz"))
    assert not batch and pairing.pairs[0][0] == "x"
    assert resolve_inputs(str(tmp_path / "f"), str(tmp_path / "f"))[0]
    with pytest.raises(InvalidOptionError, match="two files or two folders"):
        resolve_inputs(str(tmp_path / "x.nii.gz"), str(tmp_path / "f"))
    with pytest.raises(VolumeReadError, match="no such file"):
        resolve_inputs(str(tmp_path / "missing.nii.gz"), str(tmp_path / "x.nii.gz"))


def test_dicom_subfolder_is_a_case_and_other_folders_are_not(tmp_path):
    from medloss.io import list_cases
    from medloss.io.pairing import is_dicom_folder

    _touch(tmp_path / "a.nii.gz")
    series = tmp_path / "b"
    series.mkdir()
    (series / "IM0001").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 16)  # DICOM preamble + marker
    other = tmp_path / "notes"
    other.mkdir()
    (other / "readme.txt").write_text("hi")
    assert is_dicom_folder(str(series)) and not is_dicom_folder(str(other))
    assert list_cases(str(tmp_path)) == {"a": str(tmp_path / "a.nii.gz"), "b": str(series)}


def test_unreadable_entries_are_per_case_problems(tmp_path, monkeypatch):
    import os

    from medloss.io import list_cases
    from medloss.io.pairing import is_dicom_folder

    _touch(tmp_path / "a.nii.gz")
    os.symlink("loop.nii.gz", tmp_path / "loop.nii.gz")
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "x.dcm").write_bytes(b"")
    real_scandir = os.scandir

    def scandir(path="."):  # root ignores chmod 000: simulate a sub-folder without read permission
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    problems: list = []
    assert list_cases(str(tmp_path), unreadable=problems) == {"a": str(tmp_path / "a.nii.gz")}
    assert [(c, msg.split(":")[0]) for c, _, msg in problems] == [
        ("locked", str(tmp_path / "locked")), ("loop", str(tmp_path / "loop.nii.gz"))]
    assert "Permission denied" in problems[0][2] and "symbolic links" in problems[1][2]
    with pytest.raises(VolumeReadError, match="locked"):  # without a list to collect them: a typed error
        list_cases(str(tmp_path))
    with pytest.raises(VolumeReadError, match="Permission denied"):
        is_dicom_folder(str(tmp_path / "locked"))
    # a symlink loop inside a DICOM series folder is skipped, the series is still one
    series = tmp_path / "series"
    series.mkdir()
    (series / "1.dcm").write_bytes(b"")
    os.symlink("loop", series / "loop")
    assert is_dicom_folder(str(series))
