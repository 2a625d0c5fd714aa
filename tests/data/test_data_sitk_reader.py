"""SimpleITKReader: NRRD through MONAI's LoadImaged with the geometry nibabel would report, and its errors."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from monai.transforms import EnsureChannelFirstd, LoadImaged

from medloss.data import SimpleITKReader
from medloss.errors import GeometryMismatchError, VolumeReadError


def _nrrd(path: Path, array_zyx: np.ndarray, spacing=(0.8, 0.7, 2.5), origin=(10.0, -20.0, 5.0),
          direction=(1, 0, 0, 0, -1, 0, 0, 0, 1)) -> str:
    img = sitk.GetImageFromArray(array_zyx)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection(direction)
    sitk.WriteImage(img, str(path))
    return str(path)


def test_nrrd_array_order_and_affine_match_nibabel(tmp_path):
    array = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)  # (z, y, x)
    nrrd = _nrrd(tmp_path / "a.nrrd", array)
    sitk.WriteImage(sitk.ReadImage(nrrd), str(tmp_path / "a.nii.gz"))  # SimpleITK's own NIfTI conversion
    ref = nib.load(str(tmp_path / "a.nii.gz"))
    out = LoadImaged("image", reader=SimpleITKReader(), image_only=True)({"image": nrrd})["image"]
    assert tuple(out.shape) == (6, 5, 4) == ref.shape
    np.testing.assert_array_equal(out.numpy(), np.asarray(ref.dataobj))
    np.testing.assert_allclose(out.affine.numpy(), ref.affine, atol=1e-5)
    assert EnsureChannelFirstd("image")({"image": out})["image"].shape == (1, 6, 5, 4)


def test_nifti_is_left_to_nibabel_and_channels_stack(tmp_path):
    reader = SimpleITKReader()
    assert reader.verify_suffix("x.NRRD") and reader.verify_suffix(["a.mha", "b.mhd"])
    assert not reader.verify_suffix("x.nii.gz") and not reader.verify_suffix(["a.nrrd", "b.nii"])
    a = _nrrd(tmp_path / "c0.nrrd", np.zeros((4, 5, 6), np.float32))
    b = _nrrd(tmp_path / "c1.nrrd", np.ones((4, 5, 6), np.float32))
    out = LoadImaged("image", reader=reader, image_only=True)({"image": [a, b]})["image"]
    assert out.shape == (2, 6, 5, 4) and float(out[1].mean()) == 1.0


def test_channel_geometry_mismatch(tmp_path):
    a = _nrrd(tmp_path / "c0.nrrd", np.zeros((4, 5, 6), np.float32))
    b = _nrrd(tmp_path / "c1.nrrd", np.zeros((4, 5, 7), np.float32))
    with pytest.raises(GeometryMismatchError, match="c1.nrrd"):
        reader = SimpleITKReader()
        reader.get_data(reader.read([a, b]))


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(VolumeReadError, match="missing.nrrd"):
        SimpleITKReader().read(tmp_path / "missing.nrrd")
    (tmp_path / "broken.nrrd").write_text("NRRD0004\ngarbage\n")
    with pytest.raises(VolumeReadError, match="broken.nrrd"):
        SimpleITKReader().read(tmp_path / "broken.nrrd")


def test_the_old_module_path_warns_and_gives_the_same_reader():
    """``medloss.data.transforms`` (the module's old name) works for one release, with a DeprecationWarning naming
    the new path, also for a bundle config's ``_target_``."""
    import importlib

    from monai.bundle import ConfigParser

    old = importlib.import_module("medloss.data.transforms")
    with pytest.warns(DeprecationWarning, match=r"use medloss\.data\.sitk_reader\.SimpleITKReader"):
        assert old.SimpleITKReader is SimpleITKReader
    config = {"reader": {"_target_": "medloss.data.transforms.SimpleITKReader"}}
    with pytest.warns(DeprecationWarning, match="medloss.data.transforms.SimpleITKReader is deprecated"):
        assert isinstance(ConfigParser(config).get_parsed_content("reader"), SimpleITKReader)
    with pytest.raises(AttributeError, match="no attribute 'ClassCountsd'"):
        old.ClassCountsd  # noqa: B018  (the transforms were never here)
