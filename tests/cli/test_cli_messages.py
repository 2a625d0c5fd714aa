"""The CLI's error lines: suggestions that rank the likely name first, and no irrelevant details."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from medloss.cli import main
from medloss.errors import did_you_mean
from medloss.io import write_volume


@pytest.mark.parametrize("typed,meant", [("Dicee", "DiceLoss"), ("DiceFocl", "DiceFocalLoss"),
                                         ("Jacard", "JaccardLoss"), ("FocalTversk", "FocalTverskyLoss"),
                                         ("tverksy", "TverskyLoss")])
def test_losses_show_suggests_the_closest_name(typed, meant):
    result = CliRunner().invoke(main, ["losses", "show", typed])
    assert result.exit_code == 2 and f"Did you mean '{meant}'?" in result.stderr


def test_did_you_mean_stays_quiet_for_far_names():
    assert did_you_mean("alfa", ["alpha", "beta"]) == " Did you mean 'alpha'?"
    assert did_you_mean("xyz", ["alpha", "beta"]) == "" and did_you_mean("Lovasz", ["DiceLoss"]) == ""


def _vol(path, shape=(8, 8, 6), spacing=(1.0, 1.0, 1.0)):
    a = np.zeros(shape, np.uint8)
    a[2:5, 2:5, 1:4] = 1
    return str(write_volume(path, a, spacing=spacing))


def test_loss_option_typo_gets_a_suggestion(tmp_path):
    prob = np.zeros((8, 8, 6, 2), np.float32)
    prob[..., 0] = 1.0
    import nibabel as nib

    nib.save(nib.Nifti1Image(prob, np.eye(4)), str(tmp_path / "prob.nii.gz"))
    ref = _vol(tmp_path / "ref.nii.gz")
    result = CliRunner().invoke(main, ["score", "--loss", "FocalTverskyLoss", "--loss-option", "alfa=0.3",
                                       str(tmp_path / "prob.nii.gz"), ref])
    assert result.exit_code == 1 and "Did you mean 'alpha'?" in result.stderr


def test_shape_mismatch_does_not_quote_the_spacing_tolerance(tmp_path):
    p, r = _vol(tmp_path / "p.nii.gz", shape=(8, 8, 5)), _vol(tmp_path / "r.nii.gz")
    result = CliRunner().invoke(main, ["score", p, r, "-q"])
    assert result.exit_code == 1 and "shape (8, 8, 5) vs (8, 8, 6)" in result.stderr
    assert "tolerance" not in result.stderr
    p = _vol(tmp_path / "p2.nii.gz", spacing=(1.0, 1.0, 1.5))
    result = CliRunner().invoke(main, ["score", p, r, "-q"])
    assert "spacing" in result.stderr and "(tolerance 0.001;" in result.stderr  # where it does apply
