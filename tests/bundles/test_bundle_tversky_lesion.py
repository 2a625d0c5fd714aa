"""The tversky_lesion bundle: what is specific to it (the Focal-Tversky loss, real NRRD/NIfTI data).

Layout, metadata, config IDs, train/evaluate/infer, resume, bad input and DDP are checked for every bundle in
``bundle_cases.py``.
"""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from bundle_testing import BUNDLES_DIR, config, run, workflow

NAME = "tversky_lesion"
REAL = BUNDLES_DIR.parents[1] / "shared" / "data" / "real"


def test_focal_tversky_loss_weighs_false_negatives():
    from monai.bundle import ConfigParser

    train = config(NAME, "train.json")
    assert train["loss"]["_target_"] == "medloss.losses.FocalTverskyLoss"
    assert train["loss"]["beta"] > train["loss"]["alpha"]  # false negatives weigh more
    assert train["num_classes"] == 2
    loss = ConfigParser(train).get_parsed_content("loss")
    logits, label = torch.randn(2, 2, 8, 8, 8, requires_grad=True), torch.randint(0, 2, (2, 1, 8, 8, 8))
    loss(logits, label).backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.slow
@pytest.mark.skipif(not REAL.is_dir(), reason="shared real data not present")
def test_real_nrrd_and_nifti_cases_through_a_datalist(tmp_path):
    cases = [("pyradiomics_breast1", "nrrd"), ("mirp_sts003_pet", "nii.gz"), ("mirp_sts002_mrt1", "nii.gz")]
    entries = [{"image": f"{n}_image.{e}", "label": f"{n}_label.{e}"} for n, e in cases]
    datalist = tmp_path / "real.json"
    datalist.write_text(json.dumps({"training": entries[1:], "validation": entries[:1]}))
    common = {"datalist": str(datalist), "dataset_dir": str(REAL), "roi_size": [32, 32, 16]}
    run(workflow(NAME, ["train.json"], "train", tmp_path, epochs=1, **common))
    run(workflow(NAME, ["inference.json"], "infer", tmp_path, **common))
    pred = nib.load(str(tmp_path / "out" / "predictions" / "pyradiomics_breast1_image_seg.nii.gz"))
    image = sitk.ReadImage(str(REAL / "pyradiomics_breast1_image.nrrd"))
    assert pred.shape == image.GetSize()
    spacing = np.sqrt((pred.affine[:3, :3] ** 2).sum(0))
    np.testing.assert_allclose(spacing, image.GetSpacing(), rtol=1e-5)
    lps_origin = pred.affine[:3, 3] * np.array([-1, -1, 1])  # NIfTI is RAS, ITK is LPS
    np.testing.assert_allclose(lps_origin, image.GetOrigin(), atol=1e-4)
