"""Map-based trainers: the maps come from nnU-Net's data pipeline at every scale and reach the loss unchanged."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("nnunetv2")

from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform
from torch import nn

from medloss.errors import InvalidOptionError, ShapeMismatchError
from medloss.functional.maps import component_map, reference_skeleton
from medloss.losses import BlobLoss, SkeletonRecallLoss
from medloss.nnunet.adapter import NnunetLoss
from medloss.nnunet.maps import LabelMapTransform, split_maps
from medloss.nnunet.trainers import TRAINERS, nnUNetTrainerMedlossBlob, nnUNetTrainerMedlossSkeletonRecall
from tests.nnunet import _nnunet_helpers as helpers

#: each map trainer, its map function and the medloss loss it must equal (nnU-Net's conventions, ignore label 3)
CASES = {
    "skeleton": (nnUNetTrainerMedlossSkeletonRecall, lambda lab: reference_skeleton(lab, tube=True, ignore_index=3),
                 lambda: SkeletonRecallLoss(softmax=True, to_onehot_y=True, batch=True, ignore_index=3)),
    "components": (nnUNetTrainerMedlossBlob, lambda lab: component_map(lab, ignore_index=3),
                   lambda: BlobLoss(softmax=True, to_onehot_y=True, include_background=False, ignore_index=3)),
}


def _sample_label(shape=(24, 24, 24)) -> torch.Tensor:
    """(1, *S) int16: a tube (class 1) and two separate blobs (class 2), an ignored slab (3), -1 outside the image."""
    label = np.zeros(shape, dtype=np.int16)
    label[4:20, 10:13, 10:13] = 1
    label[3:7, 3:7, 16:20] = 2
    label[16:21, 16:21, 3:8] = 2
    label[:, :, 22:] = 3
    label[0, :, :] = -1  # nnU-Net's padding value, removed by its RemoveLabelTansform
    return torch.from_numpy(label)[None]


@pytest.mark.parametrize("kind", list(CASES))
def test_validation_pipeline_maps_equal_medloss_map_functions_at_every_scale(kind, tmp_path, monkeypatch):
    trainer_cls, map_fn, _ = CASES[kind]
    trainer = helpers.trainer(trainer_cls, tmp_path, monkeypatch, batch_dice=True, ignore=True, regions=False)
    scales = trainer._get_deep_supervision_scales()
    pipeline = trainer.get_validation_transforms(scales, ignore_label=3)
    out = pipeline(segmentation=_sample_label())["segmentation"]
    label = _sample_label().clamp_min(0)
    expected = DownsampleSegForDSTransform(scales)(segmentation=label)["segmentation"]
    assert len(out) == len(expected) == 3
    for got, want in zip(out, expected, strict=True):
        assert got.shape == (2, *want.shape[1:])
        torch.testing.assert_close(got[:1], want.to(torch.int32))
        np.testing.assert_array_equal(got[1].numpy(), map_fn(want[0].numpy()))
    assert out[0][1].unique().numel() > 2  # the sample has something to map


@pytest.mark.parametrize("kind", list(CASES))
def test_training_pipeline_maps_the_augmented_label_of_each_scale(kind, tmp_path, monkeypatch):
    trainer_cls, map_fn, _ = CASES[kind]
    out = helpers.augmented_scales(trainer_cls, tmp_path, monkeypatch, _sample_label())
    assert [tuple(scale.shape) for scale in out] == [(2, 16, 16, 16), (2, 8, 8, 8), (2, 4, 4, 4)]
    for scale in out:
        np.testing.assert_array_equal(scale[1].numpy(), map_fn(scale[0].numpy()))


class _FixedOutputs(nn.Module):
    """A stand-in network: returns the given deep-supervision outputs (plus a parameter for the optimizer)."""

    def __init__(self, outputs: list[torch.Tensor]) -> None:
        super().__init__()
        self.outputs = [o.detach() for o in outputs]
        self.shift = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, data: torch.Tensor) -> list[torch.Tensor]:
        return [o + self.shift for o in self.outputs]


def _trainer_with_network(trainer_cls, outputs, tmp_path, monkeypatch):
    trainer = helpers.trainer(trainer_cls, tmp_path, monkeypatch, batch_dice=True, ignore=True, regions=False)
    trainer.loss = trainer._build_loss()
    trainer.network = _FixedOutputs(outputs)
    trainer.optimizer = torch.optim.SGD(trainer.network.parameters(), lr=0.0)
    return trainer


@pytest.mark.parametrize("kind", list(CASES))
def test_train_and_validation_steps_give_the_loss_the_batch_maps(kind, tmp_path, monkeypatch):
    trainer_cls, map_fn, medloss_loss = CASES[kind]
    outputs, targets = helpers.batch(regions=False, ignore=True, seed=1)
    trainer = _trainer_with_network(trainer_cls, outputs, tmp_path, monkeypatch)
    weights = [2 / 3, 1 / 3]  # nnU-Net's for 3 scales; the last, 0, is skipped
    loss = medloss_loss()
    maps = [torch.from_numpy(np.stack([map_fn(sample[0].numpy()) for sample in t]))[:, None] for t in targets]
    expected = sum(w * loss(o.detach(), t, **{kind: m})
                   for w, o, t, m in zip(weights, outputs[:2], targets[:2], maps[:2], strict=True))
    batch = {"data": torch.zeros(2, 1, 16, 16, 16), "target": helpers.with_maps(trainer_cls, targets, ignore=True)}
    train = trainer.train_step(dict(batch))
    assert float(train["loss"]) == pytest.approx(float(expected), rel=1e-12)
    assert trainer.loss.__class__.__name__ == "DeepSupervisionWrapper"  # the step's binding is undone

    val = trainer.validation_step(dict(batch))
    assert float(val["loss"]) == pytest.approx(float(expected), rel=1e-12)
    # the online Dice counts the label only, not the map channel
    predicted, label = outputs[0].argmax(1), targets[0][:, 0].long()
    kept = label != 3
    for c, tp in zip((1, 2), val["tp_hard"], strict=True):
        assert tp == int(((predicted == c) & (label == c) & kept).sum())


def test_a_batch_without_maps_is_a_clear_error(tmp_path, monkeypatch):
    outputs, targets = helpers.batch(regions=False, ignore=True)
    trainer = _trainer_with_network(nnUNetTrainerMedlossBlob, outputs, tmp_path, monkeypatch)
    with pytest.raises(ShapeMismatchError, match="no map channel .* LabelMapTransform last"):
        trainer.train_step({"data": torch.zeros(2, 1, 16, 16, 16), "target": targets})
    with pytest.raises(InvalidOptionError, match="needs the components map"):
        trainer.loss.loss(outputs[0], targets[0])


def test_loss_without_a_map_refuses_one():
    loss = NnunetLoss(nn.Identity(), ignore_label=None, regions=False)
    with pytest.raises(InvalidOptionError, match="takes none"):
        loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4))


def test_transform_refuses_an_unknown_kind():
    kinds = "\\['components', 'signed_distance', 'skeleton'\\]"
    with pytest.raises(InvalidOptionError, match=f"`kind` must be one of {kinds}"):
        LabelMapTransform("distance", ignore_label=None)


def test_split_maps_returns_label_and_map_per_scale():
    packed = [torch.arange(2 * 2 * 8).reshape(2, 2, 2, 2, 2).to(torch.int32)]
    (target,), (label_map,) = split_maps(packed)
    assert torch.equal(target, packed[0][:, :1]) and torch.equal(label_map, packed[0][:, 1:].long())


def test_map_trainers_are_listed():
    assert {"nnUNetTrainerMedlossSkeletonRecall", "nnUNetTrainerMedlossBlob"} <= set(TRAINERS)
