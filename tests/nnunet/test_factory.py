"""make_trainer and the named trainers: nnU-Net's conventions reach the loss, bad requests fail early and clearly."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

pytest.importorskip("nnunetv2")

from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.utilities.find_class_by_name import recursive_find_python_class

from medloss.errors import InvalidOptionError
from medloss.losses import BCELoss, CrossEntropyLoss, TverskyLoss
from medloss.nnunet import EXT_MODULE, trainer_folder
from medloss.nnunet.adapter import REGION_IGNORE
from medloss.nnunet.factory import Rebalance, deep_supervision_weights, make_trainer, spec_of
from medloss.nnunet.trainers import TRAINERS, nnUNetTrainerMedlossDiceTopK10, nnUNetTrainerMedlossTverskyCE
from tests.nnunet import _nnunet_helpers as helpers

nnUNetTrainerTestTversky = make_trainer("tversky", name="nnUNetTrainerTestTversky", alpha=0.2, beta=0.8)


def test_made_trainer_lives_where_it_is_assigned_and_keeps_its_options():
    assert nnUNetTrainerTestTversky.__name__ == nnUNetTrainerTestTversky.__qualname__ == "nnUNetTrainerTestTversky"
    assert nnUNetTrainerTestTversky.__module__ == __name__
    spec = spec_of(nnUNetTrainerTestTversky)
    assert (spec.loss, dict(spec.options), spec.region_loss) == ("TverskyLoss", {"alpha": 0.2, "beta": 0.8}, None)


@pytest.mark.parametrize("ignore", [False, True])
def test_conventions_from_plans_and_dataset_reach_the_loss(ignore, tmp_path, monkeypatch):
    trainer = helpers.trainer(nnUNetTrainerMedlossTverskyCE, tmp_path, monkeypatch, batch_dice=True, ignore=ignore,
                              regions=False)
    loss = trainer._build_loss()
    assert isinstance(loss, DeepSupervisionWrapper)
    np.testing.assert_allclose(loss.weight_factors, [2 / 3, 1 / 3, 0.0])
    tversky = loss.loss.loss.terms[0]
    assert (tversky.alpha, tversky.beta) == (0.3, 0.7)
    outputs, targets = helpers.batch(regions=False, ignore=ignore)
    ignore_index = 3 if ignore else -100
    expected = TverskyLoss(softmax=True, to_onehot_y=True, include_background=False, batch=True, alpha=0.3, beta=0.7,
                           ignore_index=3 if ignore else None)(outputs[0], targets[0])
    expected = expected + CrossEntropyLoss(ignore_index=ignore_index)(outputs[0], targets[0])
    torch.testing.assert_close(loss.loss(outputs[0], targets[0]), expected, rtol=0, atol=1e-12)


def test_region_dataset_uses_sigmoid_form_without_the_ignore_channel(tmp_path, monkeypatch):
    trainer = helpers.trainer(nnUNetTrainerMedlossTverskyCE, tmp_path, monkeypatch, batch_dice=False, ignore=True,
                              regions=True, deep_supervision=False)
    loss = trainer._build_loss()
    outputs, targets = helpers.batch(regions=True, ignore=True)
    regions = targets[0][:, :-1].masked_fill(targets[0][:, -1:] != 0, REGION_IGNORE)
    expected = TverskyLoss(sigmoid=True, include_background=True, alpha=0.3, beta=0.7,
                           ignore_index=REGION_IGNORE)(outputs[0], regions)
    expected = expected + BCELoss(ignore_index=REGION_IGNORE)(outputs[0], regions)
    torch.testing.assert_close(loss(outputs[0], targets[0]), expected, rtol=0, atol=1e-12)


def test_trainer_without_region_form_refuses_a_region_dataset(tmp_path, monkeypatch):
    trainer = helpers.trainer(nnUNetTrainerMedlossDiceTopK10, tmp_path, monkeypatch, batch_dice=False, ignore=False,
                              regions=True)
    with pytest.raises(InvalidOptionError, match="no region-based .* pass `region_loss=`"):
        trainer._build_loss()


def test_ddp_keeps_the_lowest_scale_with_a_tiny_weight_as_nnunet():
    np.testing.assert_allclose(deep_supervision_weights(3, ddp_without_compile=True),
                               np.array([1, 0.5, 1e-6]) / 1.500001)


@pytest.mark.parametrize("call, message", [
    (lambda: make_trainer("DiceLoss", name="T", alpah=0.3), "unknown option.*alpah.*takes"),
    (lambda: make_trainer("NoSuchLoss", name="T"), "unknown loss 'NoSuchLoss'"),
    (lambda: make_trainer("BoundaryLoss", name="T", region_loss="BoundaryLoss"),
     "`region_loss`='BoundaryLoss'.*signed_distance map is computed from a label map"),
    (lambda: make_trainer("BoundaryLoss", name="T", rebalance=Rebalance("BlobLoss")),
     "rebalanced region loss must take \\(input, target\\) only; BlobLoss needs a components map"),
    (lambda: make_trainer("BoundaryLoss", name="T", rebalance=Rebalance(alpha_step=-0.01)),
     "`alpha_step` of Rebalance must be a finite number >= 0"),
    (lambda: make_trainer("BoundaryLoss", name="T", rebalance=Rebalance(region_floor=2.0)),
     "`region_floor` of Rebalance must be at most 1"),
    (lambda: make_trainer("BoundaryLoss", name="T", rebalance=Rebalance(options={"lamda_ce": 1.0})),
     "`rebalance options` of DiceCELoss: unknown option"),
    (lambda: make_trainer("DiceLoss", name="T", region_loss="DiceLoss", rebalance=Rebalance()),
     "`rebalance` schedules label-map .* leave `region_loss` out"),
    (lambda: make_trainer("DiceLoss", name="T", region_loss="BlobLoss"),
     "`region_loss`='BlobLoss'.*components map is computed from a label map"),
    (lambda: make_trainer("DiceLoss", name="T", ce=-1), "`ce` must be a weight >= 0"),
    (lambda: make_trainer("DiceLoss", name="my trainer"), "`name` must be a Python identifier"),
    (lambda: make_trainer("DiceCELoss", name="nnUNetTrainerMedlossDiceCE"),
     "prefix 'nnUNetTrainerMedloss' is reserved .* e.g. 'nnUNetTrainerDiceCE'"),
    (lambda: make_trainer("TverskyLoss", name="T", alpha=-1.0), "alpha"),
    (lambda: make_trainer("ExpLogLoss", name="T", region_loss="ExpLogLoss"),
     "ExpLogLoss with these options cannot train on nnU-Net's region-based .*one channel"),
    (lambda: make_trainer("DiceLoss", name="T", region_loss="DiceLoss", region_options={"softmx": True}),
     "`region_options` of DiceLoss: unknown option"),
])
def test_bad_requests_fail_when_the_trainer_is_made(call, message):
    with pytest.raises(InvalidOptionError, match=message):
        call()


def test_nnunet_finds_every_named_trainer_in_the_ext_folder():
    """The lookup nnU-Net does for -tr NAME in an nnUNet_extTrainer folder (training and prediction)."""
    folder = trainer_folder()
    assert os.path.isfile(os.path.join(folder, EXT_MODULE + ".py"))
    for name, cls in TRAINERS.items():
        found = recursive_find_python_class(folder, name, None, base_folder=folder,
                                            cleanup_imports_from_base_folder=True)
        assert found is cls


@pytest.mark.parametrize("regions", [False, True], ids=["labels", "regions"])
@pytest.mark.parametrize("name", list(TRAINERS))
def test_every_named_trainer_trains_nothing_on_ignored_voxels(name, regions, tmp_path, monkeypatch):
    """Finite loss and gradients on every scale, and no gradient where the dataset's ignore label is."""
    trainer = helpers.trainer(TRAINERS[name], tmp_path, monkeypatch, batch_dice=True, ignore=True, regions=regions)
    if regions and spec_of(TRAINERS[name]).region_loss is None:
        with pytest.raises(InvalidOptionError, match="no region-based"):
            trainer._build_loss()
        return
    loss = trainer._build_loss()
    outputs, targets = helpers.batch(regions=regions, ignore=True)
    if spec_of(TRAINERS[name]).map_kind is None:
        value = loss(outputs, targets)
    else:  # the map from the batch, as the trainer's steps pass it
        packed = helpers.with_maps(TRAINERS[name], targets, ignore=True)
        value = loss(outputs, *helpers.split(TRAINERS[name], packed))
    grads = torch.autograd.grad(value, outputs[:2])
    assert torch.isfinite(value)
    for grad, target in zip(grads, targets[:2], strict=True):  # the two scales differentiated above
        ignored = (target[:, -1:] != 0) if regions else (target == 3)
        assert torch.isfinite(grad).all()
        assert grad.abs().amax() > 0
        assert grad.masked_select(ignored.expand_as(grad)).abs().max() == 0
