"""read_volume / write_volume: geometry conventions across readers, formats, DICOM series, errors."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from medloss.errors import GeometryMismatchError, LabelValueError, VolumeReadError
from medloss.io import Volume, as_label_array, check_geometry, geometry_mismatch, read_volume, write_volume
from medloss.io.readers import _from_sitk

REAL = Path(os.environ.get("MEDLOSS_REAL_DATA", Path(__file__).resolve().parents[2].parent / "shared/data/real"))


def _rotation():
    c, s = np.cos(0.3), np.sin(0.3)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]) @ np.diag([1.0, -1.0, 1.0])


def _volume(shape=(7, 9, 5)):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 4, shape).astype(np.uint8)
    return Volume(arr, (0.7, 1.1, 2.5), (10.0, -20.0, 30.5), _rotation())


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"])
def test_roundtrip_keeps_array_and_geometry(tmp_path, suffix):
    v = _volume()
    path = write_volume(tmp_path / f"v{suffix}", v.array, v)
    w = read_volume(path)
    assert np.array_equal(np.asarray(w.array), v.array) and w.array.dtype == np.uint8
    assert geometry_mismatch(v, w, 1e-5) == ""
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_nibabel_and_simpleitk_agree_on_the_same_nifti(tmp_path):
    """Same file through both readers: same [i, j, k] array, spacing, LPS origin and direction."""
    import SimpleITK as sitk

    v = _volume()
    path = write_volume(tmp_path / "v.nii.gz", v.array, v)
    a = read_volume(path)  # nibabel
    b = _from_sitk(sitk.ReadImage(str(path)), str(path))
    assert np.array_equal(np.asarray(a.array), np.asarray(b.array))
    assert geometry_mismatch(a, b, 1e-5) == "", geometry_mismatch(a, b, 1e-5)


def test_spacing_in_array_axis_order_real_files():
    nrrd = REAL / "pyradiomics_brain1_label.nrrd"
    nii = REAL / "mirp_sts001_ct_label.nii.gz"
    if not nrrd.exists():
        pytest.skip("real data not found")
    a = read_volume(nrrd)
    assert a.shape == (256, 256, 25) and a.spacing == pytest.approx((0.78125, 0.78125, 6.5), abs=1e-4)
    assert np.asarray(a.array).sum() == 4137
    b = read_volume(nii)
    assert b.shape == (198, 202, 59) and b.spacing == pytest.approx((0.9766, 0.9766, 3.27), abs=1e-3)
    assert b.array.dtype == np.uint8  # read through dataobj, no float64 copy


def test_dicom_series_folder(tmp_path):
    import SimpleITK as sitk

    arr = np.zeros((6, 5, 4), np.int16)
    arr[1:4, 1:3, 1:3] = 1
    spacing = (0.8, 0.9, 2.0)
    series = tmp_path / "dicom"
    series.mkdir()
    uid = "1.2.826.0.1.3680043.2.1125.1.123456"
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()  # keep our series UID so that GDCM sees one series
    for k in range(arr.shape[2]):
        sl = sitk.GetImageFromArray(np.ascontiguousarray(arr[:, :, k].T))
        sl.SetSpacing(spacing[:2])
        for tag, val in {"0020|000e": uid, "0020|0013": str(k + 1), "0008|0060": "OT",
                         "0020|0032": f"0\\0\\{k * spacing[2]}", "0020|0037": "1\\0\\0\\0\\1\\0",
                         "0018|0050": str(spacing[2]), "0028|0030": f"{spacing[1]}\\{spacing[0]}",
                         "0008|0018": f"{uid}.{k + 1}", "0020|000d": uid + ".9"}.items():
            sl.SetMetaData(tag, val)
        writer.SetFileName(str(series / f"s{k:03d}.dcm"))
        writer.Execute(sl)
    v = read_volume(series)
    assert np.array_equal(np.asarray(v.array), arr)
    assert v.spacing == pytest.approx(spacing)


def test_errors_name_the_file(tmp_path):
    with pytest.raises(VolumeReadError, match="nope.nii.gz: no such file"):
        read_volume(tmp_path / "nope.nii.gz")
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not a volume")
    with pytest.raises(VolumeReadError, match="bad.nii.gz: cannot read"):
        read_volume(bad)
    txt = tmp_path / "x.txt"
    txt.write_text("hi")
    with pytest.raises(VolumeReadError, match="unsupported format"):
        read_volume(txt)
    with pytest.raises(VolumeReadError, match="no DICOM series"):
        read_volume(tmp_path)


def test_as_label_array():
    assert as_label_array(np.array([[[0.0, 1.0, 2.0]]], np.float32)).dtype == np.uint8
    with pytest.raises(LabelValueError, match="non-integer"):
        as_label_array(np.array([[[0.2, 1.0]]]), "p.nii.gz")
    with pytest.raises(LabelValueError, match="NaN"):
        as_label_array(np.array([[[np.nan]]]))
    with pytest.raises(LabelValueError, match="negative"):
        as_label_array(np.array([[[-1, 1]]], np.int16))
    assert as_label_array(np.array([[[-1, 1]]], np.int16), ignore_index=-1).dtype == np.int16


def test_geometry_checks():
    v = _volume()
    w = Volume(v.array, v.spacing, v.origin, v.direction, "p.nii.gz")
    check_geometry(w, v)
    for change, word in [({"array": v.array[:-1]}, "shape"), ({"spacing": (0.7, 1.1, 2.6)}, "spacing"),
                         ({"origin": (10.0, -20.0, 31.0)}, "origin"), ({"direction": np.eye(3)}, "direction")]:
        bad = Volume(**{**w.__dict__, **change})
        with pytest.raises(GeometryMismatchError, match=f"p.nii.gz: .*{word}"):
            check_geometry(bad, v)
    near = Volume(**{**w.__dict__, "origin": (10.0004, -20.0, 30.5)})
    check_geometry(near, v, tolerance=1e-3)
    with pytest.raises(GeometryMismatchError):
        check_geometry(near, v, tolerance=1e-4)


def test_4d_singleton_is_squeezed(tmp_path):
    import nibabel as nib

    arr = np.zeros((4, 5, 6, 1), np.uint8)
    nib.save(nib.Nifti1Image(arr, np.eye(4)), tmp_path / "v.nii.gz")
    assert read_volume(tmp_path / "v.nii.gz").shape == (4, 5, 6)
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6, 2), np.uint8), np.eye(4)), tmp_path / "w.nii.gz")
    with pytest.raises(VolumeReadError, match="3-D"):
        read_volume(tmp_path / "w.nii.gz")
