"""`medloss score --loss NAME PROB REF`: loss values on saved volumes equal the library's, errors are one line."""
from __future__ import annotations

import json
import warnings

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from click.testing import CliRunner

import medloss.losses as L
from medloss.cli import main

AFFINE = np.diag([1.5, 1.0, 2.0, 1.0])


@pytest.fixture()
def case(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (8, 7, 6)).astype(np.uint8)
    logits = rng.normal(size=(8, 7, 6, 3)).astype(np.float32)  # channels last, as saved by MONAI / nnU-Net
    nib.save(nib.Nifti1Image(logits, AFFINE), tmp_path / "case1_prob.nii.gz")
    nib.save(nib.Nifti1Image(labels, AFFINE), tmp_path / "case1.nii.gz")
    x = torch.from_numpy(np.moveaxis(logits, -1, 0).copy())[None]
    y = torch.from_numpy(labels.astype(np.int64))[None, None]
    return tmp_path, x, y


def _run(args):
    return CliRunner().invoke(main, ["score", *map(str, args)])


def test_per_class_loss_values_equal_the_library(case):
    tmp, x, y = case
    out = tmp / "loss.json"
    res = _run([tmp / "case1_prob.nii.gz", tmp / "case1.nii.gz", "--loss", "tversky", "--activation", "softmax",
                "--loss-option", "alpha=0.3", "--loss-option", "beta=0.7", "--json", out, "-q"])
    assert res.exit_code == 0, res.output
    rows = json.loads(out.read_text())["rows"]
    expected = L.TverskyLoss(softmax=True, to_onehot_y=True, alpha=0.3, beta=0.7, reduction="none")(x, y)[0]
    assert [r["label"] for r in rows] == [0, 1, 2]
    np.testing.assert_allclose([r["value"] for r in rows], expected.double().numpy(), rtol=1e-6)


def test_compound_loss_gives_one_value_per_case(case):
    tmp, x, y = case
    out = tmp / "loss.csv"
    res = _run([tmp / "case1_prob.nii.gz", tmp / "case1.nii.gz", "--loss", "DiceCELoss", "--activation", "softmax",
                "--csv", out, "-q"])
    assert res.exit_code == 0, res.output
    lines = out.read_text().strip().splitlines()
    assert lines[0].split(",")[:4] == ["case", "label", "loss", "value"]
    value = float(lines[1].split(",")[3])
    expected = float(L.DiceCELoss(softmax=True, to_onehot_y=True)(x, y))
    assert value == pytest.approx(expected, rel=1e-6)


def test_vector_nrrd_probabilities(case):
    tmp, x, y = case
    probs = torch.softmax(x, 1)[0].numpy()  # (C, X, Y, Z)
    img = sitk.GetImageFromArray(np.ascontiguousarray(probs.transpose(3, 2, 1, 0)), isVector=True)
    img.SetSpacing((1.5, 1.0, 2.0))
    img.SetDirection((-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0))  # the NIfTI RAS affine above, in LPS
    sitk.WriteImage(img, str(tmp / "probs.nrrd"))
    out = tmp / "loss.json"
    res = _run([tmp / "probs.nrrd", tmp / "case1.nii.gz", "--loss", "dice", "--json", out, "-q"])
    assert res.exit_code == 0, res.output
    rows = json.loads(out.read_text())["rows"]
    expected = L.DiceLoss(softmax=True, to_onehot_y=True, reduction="none")(x, y)[0]
    np.testing.assert_allclose([r["value"] for r in rows], expected.double().numpy(), rtol=1e-5)


@pytest.mark.parametrize("args,pattern", [
    (["--loss", "nope"], "unknown loss 'nope'"),
    (["--loss", "dice"], "--activation softmax"),  # logits given as probabilities
    (["--loss", "dice", "--loss-option", "alhpa=1"], "no option"),
])
def test_errors_are_one_line_and_write_nothing(case, args, pattern):
    tmp, _, _ = case
    out = tmp / "never.json"
    res = _run([tmp / "case1_prob.nii.gz", tmp / "case1.nii.gz", *args, "--json", out])
    assert res.exit_code != 0
    assert pattern in res.output
    assert not out.exists()


def test_geometry_mismatch_is_reported(case):
    tmp, _, _ = case
    labels = np.zeros((8, 7, 6), np.uint8)
    nib.save(nib.Nifti1Image(labels, np.diag([1.0, 1.0, 1.0, 1.0])), tmp / "other.nii.gz")
    res = _run([tmp / "case1_prob.nii.gz", tmp / "other.nii.gz", "--loss", "dice", "--activation", "softmax"])
    assert res.exit_code == 1 and "geometry" in res.output


def test_probabilities_with_a_logit_loss_give_the_loss_of_the_probabilities(case):
    tmp, x, y = case
    probs = torch.softmax(x, 1)
    nib.save(nib.Nifti1Image(np.moveaxis(probs[0].numpy(), 0, -1), AFFINE), tmp / "p.nii.gz")
    want = float(torch.nn.functional.nll_loss(torch.log(probs), y[:, 0].long()))  # CE of the probabilities
    out = tmp / "ce.json"
    res = _run([tmp / "p.nii.gz", tmp / "case1.nii.gz", "--loss", "CrossEntropyLoss", "--json", out, "-q"])
    assert res.exit_code == 0, res.output
    row = json.loads(out.read_text())["rows"][0]
    assert row["value"] == pytest.approx(want, rel=1e-5) and row["logits"] == "log(p)"
    # the same number from the logits with --activation softmax (was an OptionTypeError about `softmax`)
    out = tmp / "ce2.json"
    res = _run([tmp / "case1_prob.nii.gz", tmp / "case1.nii.gz", "--loss", "CrossEntropyLoss", "--activation",
                "softmax", "--json", out, "-q"])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["rows"][0]["value"] == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("name,cls,first", [("BoundaryLoss", L.BoundaryLoss, 0),
                                            ("HausdorffDTLoss", L.HausdorffDTLoss, 1)])
def test_distance_losses_are_reported_per_class(case, name, cls, first):
    tmp, x, y = case
    out = tmp / "d.json"
    res = _run([tmp / "case1_prob.nii.gz", tmp / "case1.nii.gz", "--loss", name, "--activation", "softmax",
                "--json", out, "-q"])
    assert res.exit_code == 0, res.output
    rows = json.loads(out.read_text())["rows"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = cls(softmax=True, to_onehot_y=True, reduction="none")(x, y)[0]
    assert [r["label"] for r in rows] == list(range(first, 3))  # was one row labelled "all"
    np.testing.assert_allclose([r["value"] for r in rows], expected.double().numpy(), rtol=1e-5)
    assert sum("warning:" in line for line in res.stderr.splitlines()) <= 1  # the loss's warning, on one line


def test_one_channel_volume_is_called_one_channel(case):
    tmp, x, y = case
    nib.save(nib.Nifti1Image(torch.sigmoid(x[0, 1]).numpy(), AFFINE), tmp / "fg.nii.gz")
    for loss in ("dice", "FocalLoss"):
        res = _run([tmp / "fg.nii.gz", tmp / "case1.nii.gz", "--loss", loss])
        assert res.exit_code == 1
        assert "the input has 1 channel" in res.stderr and "2 channels" not in res.stderr, res.stderr
