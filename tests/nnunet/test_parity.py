"""medloss's nnU-Net trainers against nnU-Net's own losses: value and gradient, float64, with deep supervision.

Each case builds both losses through the trainers' own ``_build_loss`` on the same plans and dataset, so the
deep-supervision weights, batch Dice, ignore label and region handling are the ones nnU-Net would use in training.
"""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("nnunetv2")

from nnunetv2.training.loss.compound_losses import DC_and_topk_loss
from nnunetv2.training.loss.robust_ce_loss import TopKLoss as NnunetTopK
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.training.nnUNetTrainer.variants.loss.nnUNetTrainerTopkLoss import (
    nnUNetTrainerDiceTopK10Loss,
)

from medloss.nnunet.factory import deep_supervision_weights
from medloss.nnunet.trainers import nnUNetTrainerMedlossDiceCE, nnUNetTrainerMedlossDiceTopK10
from tests.nnunet import _nnunet_helpers as helpers

TOL = 1e-6


def _value_and_grads(loss, outputs, targets):
    value = loss(outputs, targets)
    grads = torch.autograd.grad(value, outputs, allow_unused=True)
    return value, grads


def _assert_same(ours, theirs, outputs, targets):
    value, grads = _value_and_grads(ours, outputs, targets)
    ref_value, ref_grads = _value_and_grads(theirs, outputs, targets)
    assert abs(value.item() - float(torch.as_tensor(ref_value).detach())) < TOL
    for grad, ref in zip(grads, ref_grads, strict=True):
        if ref is None:  # nnU-Net's weight 0 on the lowest scale: not evaluated
            assert grad is None
        else:
            torch.testing.assert_close(grad, ref, rtol=0, atol=TOL)
    return value.item()


@pytest.mark.parametrize("regions", [False, True], ids=["labels", "regions"])
@pytest.mark.parametrize("ignore", [False, True], ids=["no-ignore", "ignore"])
@pytest.mark.parametrize("batch_dice", [False, True], ids=["image-dice", "batch-dice"])
def test_dice_ce_trainer_equals_nnunet_default_loss(regions, ignore, batch_dice, tmp_path, monkeypatch):
    """nnU-Net's default trainer uses DC_and_CE_loss (labels) or DC_and_BCE_loss with the ignore channel (regions)."""
    kwargs = {"batch_dice": batch_dice, "ignore": ignore, "regions": regions}
    ours = helpers.trainer(nnUNetTrainerMedlossDiceCE, tmp_path, monkeypatch, **kwargs)._build_loss()
    theirs = helpers.trainer(nnUNetTrainer, tmp_path, monkeypatch, **kwargs)._build_loss()
    outputs, targets = helpers.batch(regions=regions, ignore=ignore)
    value = _assert_same(ours, theirs, outputs, targets)
    assert -1.0 < value < 1.5  # nnU-Net's scale: CE - Dice, not 1 + CE - Dice


@pytest.mark.parametrize("batch_dice", [False, True], ids=["image-dice", "batch-dice"])
def test_dice_topk10_trainer_equals_nnunet_dc_and_topk(batch_dice, tmp_path, monkeypatch):
    kwargs = {"batch_dice": batch_dice, "ignore": False, "regions": False}
    ours = helpers.trainer(nnUNetTrainerMedlossDiceTopK10, tmp_path, monkeypatch, **kwargs)._build_loss()
    theirs = helpers.trainer(nnUNetTrainerDiceTopK10Loss, tmp_path, monkeypatch, **kwargs)._build_loss()
    outputs, targets = helpers.batch(regions=False, ignore=False)
    _assert_same(ours, theirs, outputs, targets)


@pytest.mark.parametrize("batch_dice", [False, True], ids=["image-dice", "batch-dice"])
def test_dice_topk10_with_ignore_label_pools_only_labelled_voxels(batch_dice, tmp_path, monkeypatch):
    """With an ignore label, the Dice term is nnU-Net's masked Dice and the top-k term is nnU-Net's TopKLoss over
    the labelled voxels only (nnU-Net's DC_and_topk_loss keeps ignored voxels in its pool as zeros)."""
    kwargs = {"batch_dice": batch_dice, "ignore": True, "regions": False}
    ours = helpers.trainer(nnUNetTrainerMedlossDiceTopK10, tmp_path, monkeypatch, **kwargs)._build_loss()
    dice_only = DC_and_topk_loss({"batch_dice": batch_dice, "smooth": 1e-5, "do_bg": False, "ddp": False},
                                 {"k": 10}, weight_ce=0, ignore_label=3)
    topk = NnunetTopK(k=10)

    def reference(outputs, targets):
        total = 0.0
        for weight, x, y in zip(deep_supervision_weights(3, ddp_without_compile=False), outputs, targets, strict=True):
            if weight == 0:
                continue
            labelled = (y != 3)[:, 0]
            x_labelled = x.movedim(1, -1)[labelled].T[None]  # (1, C, N): the labelled voxels of the batch
            y_labelled = y[:, 0][labelled][None, None]
            total = total + weight * (dice_only(x, y) + topk(x_labelled, y_labelled))
        return total

    outputs, targets = helpers.batch(regions=False, ignore=True)
    _assert_same(ours, reference, outputs, targets)
    stock = helpers.trainer(nnUNetTrainerDiceTopK10Loss, tmp_path, monkeypatch, **kwargs)._build_loss()
    value, _ = _value_and_grads(ours, outputs, targets)
    assert abs(value.item() - stock(outputs, targets).item()) > 1e-3  # the documented difference is real


@pytest.mark.parametrize("regions", [False, True], ids=["labels", "regions"])
def test_patch_with_every_voxel_ignored_gives_nnunets_value_and_no_nan(regions, tmp_path, monkeypatch):
    """Sparse annotations give patches (or coarse scales) without one labelled voxel; a mean over no voxel is NaN."""
    kwargs = {"batch_dice": True, "ignore": True, "regions": regions}
    ours = helpers.trainer(nnUNetTrainerMedlossDiceCE, tmp_path, monkeypatch, **kwargs)._build_loss()
    theirs = helpers.trainer(nnUNetTrainer, tmp_path, monkeypatch, **kwargs)._build_loss()
    outputs, targets = helpers.batch(regions=regions, ignore=True)
    if regions:
        targets[0][:, -1] = 1
    else:
        targets[0][:] = 3
    value = _assert_same(ours, theirs, outputs, targets)
    assert torch.isfinite(torch.tensor(value))
