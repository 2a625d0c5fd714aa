"""Dice + boundary and the Hausdorff-DT trainers: signed distance maps from nnU-Net's pipeline, the epoch schedule."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("nnunetv2")

from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform

from medloss.errors import InvalidOptionError
from medloss.functional.distance import signed_distance
from medloss.losses import BoundaryLoss, DiceCELoss, HausdorffDTLoss
from medloss.nnunet.adapter import RebalancedSum
from medloss.nnunet.maps import LabelMapTransform, split_maps
from medloss.nnunet.trainers import (
    nnUNetTrainerMedlossDiceBoundary,
    nnUNetTrainerMedlossHausdorffDT,
    nnUNetTrainerMedlossLogHausdorffDT,
)
from tests.nnunet import _nnunet_helpers as helpers
from tests.nnunet.test_maps import _FixedOutputs, _sample_label


def _expected_maps(label: np.ndarray) -> np.ndarray:
    """medloss's signed distance of each foreground class (nnU-Net's include_background=False), background 0."""
    return np.stack([np.zeros(label.shape, np.float32), signed_distance(label == 1), signed_distance(label == 2)])


def test_validation_pipeline_gives_exact_labels_and_the_maps_of_each_scale(tmp_path, monkeypatch):
    trainer = helpers.trainer(nnUNetTrainerMedlossDiceBoundary, tmp_path, monkeypatch, batch_dice=True, ignore=True,
                              regions=False)
    scales = trainer._get_deep_supervision_scales()
    out = trainer.get_validation_transforms(scales, ignore_label=3)(segmentation=_sample_label())["segmentation"]
    expected = DownsampleSegForDSTransform(scales)(segmentation=_sample_label().clamp_min(0))["segmentation"]
    assert len(out) == len(expected) == 3
    for got, want in zip(out, expected, strict=True):
        assert got.dtype == torch.float32 and got.shape == (4, *want.shape[1:])
        (label,), (maps,) = split_maps([got[None]], 3)
        assert label.dtype == torch.int16 and torch.equal(label[0], want)  # the ignore label 3 included
        np.testing.assert_array_equal(maps[0].numpy(), _expected_maps(want[0].numpy()))
    assert out[0][2].min() < 0 < out[0][2].max()  # class 1 is present: a map with an inside and an outside


def test_training_pipeline_maps_the_augmented_label_of_each_scale(tmp_path, monkeypatch):
    out = helpers.augmented_scales(nnUNetTrainerMedlossDiceBoundary, tmp_path, monkeypatch, _sample_label())
    assert [tuple(scale.shape) for scale in out] == [(4, 16, 16, 16), (4, 8, 8, 8), (4, 4, 4, 4)]
    for scale in out:
        label = scale[0].numpy()
        assert np.array_equal(label, np.round(label)) and set(np.unique(label)) <= {0, 1, 2, 3}
        np.testing.assert_array_equal(scale[1:].numpy(), _expected_maps(label.astype(np.int16)))


def test_the_maps_are_what_the_losses_compute_from_the_label_with_its_ignore_label():
    """Ignored voxels are outside every class's mask: the given maps change neither loss's value."""
    label = _sample_label()[None, :, 2:22, 2:22, 2:22].clamp_min(0)
    transform = LabelMapTransform("signed_distance", ignore_label=3, num_classes=3, classes=(1, 2))
    _, maps = split_maps(transform(segmentation=label[0])["segmentation"][None], 3)
    logits = torch.randn(1, 3, 20, 20, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for loss in (BoundaryLoss(softmax=True, to_onehot_y=True, include_background=False, ignore_index=3),
                 HausdorffDTLoss(softmax=True, to_onehot_y=True, ignore_index=3)):
        with warnings.catch_warnings():  # the loss warns (once per process) that it computes the maps itself
            warnings.simplefilter("ignore", UserWarning)
            computed = loss(logits, label)
        torch.testing.assert_close(loss(logits, label, distance=maps), computed, rtol=1e-12, atol=0)


def _trainer_at_epoch(trainer_cls, outputs, epoch, tmp_path, monkeypatch):
    trainer = helpers.trainer(trainer_cls, tmp_path, monkeypatch, batch_dice=True, ignore=True, regions=False)
    trainer.loss = trainer._build_loss()
    trainer.network = _FixedOutputs(outputs)
    trainer.optimizer = torch.optim.SGD(trainer.network.parameters(), lr=0.0)
    trainer.current_epoch = epoch
    trainer.on_epoch_start()
    return trainer


def _dice_boundary(region_weight: float, alpha: float):
    dice_ce = DiceCELoss(softmax=True, to_onehot_y=True, include_background=False, batch=True, ignore_index=3)
    boundary = BoundaryLoss(softmax=True, to_onehot_y=True, include_background=False, ignore_index=3)
    # nnU-Net's DC_and_CE_loss is medloss's DiceCELoss - 1 (the trainer logs nnU-Net's values)
    return lambda o, t, m: region_weight * (dice_ce(o, t) - 1.0) + alpha * boundary(o, t, distance=m)


@pytest.mark.parametrize("trainer_cls, epoch, medloss_loss", [
    (nnUNetTrainerMedlossDiceBoundary, 5, _dice_boundary(0.95, 0.06)),
    (nnUNetTrainerMedlossHausdorffDT, 0,
     lambda o, t, m: HausdorffDTLoss(softmax=True, to_onehot_y=True, batch=True, ignore_index=3)(o, t, distance=m)),
    (nnUNetTrainerMedlossLogHausdorffDT, 0, lambda o, t, m: torch.log1p(
        HausdorffDTLoss(softmax=True, to_onehot_y=True, batch=True, ignore_index=3)(o, t, distance=m))),
], ids=["dice_boundary", "hausdorff_dt", "log_hausdorff_dt"])
def test_train_and_validation_steps_give_the_medloss_loss_with_the_batch_maps(trainer_cls, epoch, medloss_loss,
                                                                              tmp_path, monkeypatch):
    outputs, targets = helpers.batch(regions=False, ignore=True, seed=1)
    trainer = _trainer_at_epoch(trainer_cls, outputs, epoch, tmp_path, monkeypatch)
    packed = helpers.with_maps(trainer_cls, targets, ignore=True)
    assert all(scale.dtype == torch.float32 for scale in packed)
    _, maps = split_maps(packed, 3)
    for target, scale_maps in zip(targets, maps, strict=True):
        expected = np.stack([_expected_maps(sample[0].numpy()) for sample in target])
        np.testing.assert_array_equal(scale_maps.numpy(), expected)
    weights = [2 / 3, 1 / 3]  # nnU-Net's for 3 scales; the last, 0, is skipped
    expected = sum(w * medloss_loss(o.detach(), t, m)
                   for w, o, t, m in zip(weights, outputs[:2], targets[:2], maps[:2], strict=True))
    batch = {"data": torch.zeros(2, 1, 16, 16, 16), "target": packed}
    assert float(trainer.train_step(dict(batch))["loss"]) == pytest.approx(float(expected), rel=1e-12)
    val = trainer.validation_step(dict(batch))
    assert float(val["loss"]) == pytest.approx(float(expected), rel=1e-12)
    predicted, label = outputs[0].argmax(1), targets[0][:, 0].long()  # the online Dice sees the int label only
    for c, tp in zip((1, 2), val["tp_hard"], strict=True):
        assert tp == int(((predicted == c) & (label == c) & (label != 3)).sum())


@pytest.mark.parametrize("epoch, region_weight, alpha", [(0, 1.0, 0.01), (1, 0.99, 0.02), (5, 0.95, 0.06),
                                                         (89, 0.11, 0.9), (95, 0.1, 0.96), (999, 0.1, 10.0)])
def test_the_schedule_is_set_at_every_epoch_start(epoch, region_weight, alpha, tmp_path, monkeypatch):
    outputs, _ = helpers.batch(regions=False, ignore=True)
    trainer = _trainer_at_epoch(nnUNetTrainerMedlossDiceBoundary, outputs, epoch, tmp_path, monkeypatch)
    scheduled = [m for m in trainer.loss.modules() if isinstance(m, RebalancedSum)]
    assert len(scheduled) == 1 and scheduled[0].epoch == epoch
    assert scheduled[0].region_weight == pytest.approx(region_weight, abs=1e-12)
    assert scheduled[0].alpha == pytest.approx(alpha, abs=1e-12)
    with open(trainer.log_file, encoding="utf-8") as log:
        assert f"loss weights: {region_weight:g} x region + {alpha:g} x BoundaryLoss" in log.read()


def test_region_datasets_are_refused_naming_the_label_map(tmp_path, monkeypatch):
    trainer = helpers.trainer(nnUNetTrainerMedlossDiceBoundary, tmp_path, monkeypatch, batch_dice=True,
                              ignore=False, regions=True)
    with pytest.raises(InvalidOptionError, match="takes a signed_distance map, which .* computes from a label map, "
                                                 "and the dataset uses \\(overlapping\\) regions"):
        trainer._build_loss()


def test_signed_distance_transform_needs_the_number_of_classes():
    with pytest.raises(InvalidOptionError, match="need `num_classes` >= 1 .* and `classes` within it"):
        LabelMapTransform("signed_distance", ignore_label=None, num_classes=2, classes=(1, 2))


def test_make_trainer_with_another_region_loss_and_schedule(tmp_path, monkeypatch):
    from medloss.losses import GeneralizedDiceLoss
    from medloss.nnunet.factory import Rebalance, make_trainer

    trainer_cls = make_trainer("BoundaryLoss", name="nnUNetTrainerGDLBoundary",
                               rebalance=Rebalance("GeneralizedDiceLoss", alpha_start=0.1, alpha_step=0.05,
                                                   region_floor=0.5))
    outputs, targets = helpers.batch(regions=False, ignore=True, seed=2)
    trainer = _trainer_at_epoch(trainer_cls, outputs, 3, tmp_path, monkeypatch)  # weights 0.85 and 0.25
    _, maps = split_maps(helpers.with_maps(trainer_cls, targets, ignore=True), 3)
    gdl = GeneralizedDiceLoss(softmax=True, to_onehot_y=True, include_background=False, batch=True, ignore_index=3)
    boundary = BoundaryLoss(softmax=True, to_onehot_y=True, include_background=False, ignore_index=3)
    expected = 0.85 * gdl(outputs[0], targets[0]) + 0.25 * boundary(outputs[0], targets[0], distance=maps[0])
    torch.testing.assert_close(trainer.loss.loss(outputs[0], targets[0], maps[0]), expected, rtol=1e-12, atol=0)


def test_a_patch_of_ignored_voxels_gives_the_scheduled_nnunet_value_without_gradient(tmp_path, monkeypatch):
    outputs, targets = helpers.batch(regions=False, ignore=True)
    trainer = _trainer_at_epoch(nnUNetTrainerMedlossDiceBoundary, outputs, 5, tmp_path, monkeypatch)
    ignored = torch.full_like(targets[0], 3)
    packed = helpers.with_maps(nnUNetTrainerMedlossDiceBoundary, [ignored], ignore=True)
    (target,), (maps,) = split_maps(packed, 3)
    value = trainer.loss.loss(outputs[0], target, maps)
    assert float(value) == -0.95  # nnU-Net's DC_and_CE_loss gives -1 there (Dice of nothing 1, no CE), x 0.95
    assert torch.autograd.grad(value, outputs[0])[0].abs().max() == 0
