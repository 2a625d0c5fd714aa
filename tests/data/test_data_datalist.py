"""prepare_data / load_datalist: synthetic default, real MSD-style datalists, and clear typed errors on bad input."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medloss.data import check_case, load_datalist, prepare_data
from medloss.errors import InvalidOptionError, LabelValueError, ShapeMismatchError, VolumeReadError

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"


def _write(path: Path, array: np.ndarray) -> str:
    nib.save(nib.Nifti1Image(array, np.eye(4)), str(path))
    return path.name


@pytest.fixture
def real_like(tmp_path):
    """Three small NIfTI cases and a datalist without a validation key."""
    rng = np.random.default_rng(0)
    cases = []
    for i in range(3):
        label = np.zeros((12, 10, 8), np.uint8)
        label[3:6, 3:6, 2:5] = 1
        cases.append({"image": _write(tmp_path / f"img{i}.nii.gz", rng.random((12, 10, 8)).astype(np.float32)),
                      "label": _write(tmp_path / f"lab{i}.nii.gz", label)})
    (tmp_path / "list.json").write_text(json.dumps({"training": cases, "testing": ["img0.nii.gz"]}))
    return tmp_path


def test_synthetic_default(tmp_path):
    data = prepare_data(None, tmp_path / "syn", num_samples=4, size=32, seed=1)
    assert len(data["training"]) == 3 and len(data["validation"]) == 1
    assert Path(data["training"][0]["image"]).is_absolute() and Path(data["training"][0]["label"]).is_file()


def test_synthetic_mode_never_writes_into_a_folder_of_other_data(real_like):
    with pytest.raises(InvalidOptionError, match="pass `--datalist`|Pass `--datalist`"):
        prepare_data(None, real_like, num_samples=4, size=32)
    assert not (real_like / "imagesTr").exists()


def test_real_like_datalist_split_and_testing(real_like):
    data = prepare_data("list.json", real_like, num_classes=2)  # relative datalist found in dataset_dir
    assert [Path(d["image"]).name for d in data["training"]] == ["img0.nii.gz", "img1.nii.gz"]
    assert [Path(d["image"]).name for d in data["validation"]] == ["img2.nii.gz"]
    assert data["testing"] == [{"image": str(real_like / "img0.nii.gz")}]


def test_missing_dataset_dir(real_like):
    with pytest.raises(InvalidOptionError, match="dataset_dir.*does not exist"):
        prepare_data(str(real_like / "list.json"), real_like / "nope")


def test_missing_datalist(real_like):
    with pytest.raises(InvalidOptionError, match="missing.json"):
        prepare_data("missing.json", real_like)


def test_missing_entry_names_the_file(real_like):
    content = json.loads((real_like / "list.json").read_text(encoding="utf-8"))
    content["training"][1]["label"] = "gone.nii.gz"
    (real_like / "list.json").write_text(json.dumps(content))
    with pytest.raises(VolumeReadError, match="gone.nii.gz"):
        prepare_data("list.json", real_like)


def test_label_shape_mismatch_names_both_files(real_like):
    _write(real_like / "lab1.nii.gz", np.zeros((12, 10, 9), np.uint8))
    with pytest.raises(ShapeMismatchError, match=r"lab1\.nii\.gz.*\(12, 10, 9\).*img1\.nii\.gz"):
        prepare_data("list.json", real_like)


def test_label_value_out_of_range(real_like):
    bad = np.zeros((12, 10, 8), np.uint8)
    bad[0, 0, 0] = 3
    _write(real_like / "lab2.nii.gz", bad)
    with pytest.raises(LabelValueError, match=r"lab2\.nii\.gz.*\[3\].*0\.\.1"):
        prepare_data("list.json", real_like, num_classes=2)
    prepare_data("list.json", real_like, num_classes=4)  # fine once the classes cover it


def test_unreadable_file(real_like):
    (real_like / "img0.nii.gz").write_bytes(b"not a volume")
    with pytest.raises(VolumeReadError, match="img0.nii.gz"):
        prepare_data("list.json", real_like)


def test_bad_datalist_content(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"validation": []}))
    with pytest.raises(InvalidOptionError, match="training"):
        load_datalist(tmp_path / "a.json")
    (tmp_path / "b.json").write_text("{not json")
    with pytest.raises(InvalidOptionError, match="not valid JSON"):
        load_datalist(tmp_path / "b.json")


@pytest.mark.skipif(not REAL.is_dir(), reason="shared real data not present")
def test_real_nrrd_and_nifti_cases_pass_the_checks():
    for name, ext in (("pyradiomics_breast1", "nrrd"), ("mirp_sts003_pet", "nii.gz")):
        check_case({"image": str(REAL / f"{name}_image.{ext}"), "label": str(REAL / f"{name}_label.{ext}")}, 2)
