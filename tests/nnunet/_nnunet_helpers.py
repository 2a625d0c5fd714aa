"""Real nnU-Net trainer objects on minimal plans, so tests call the trainers' own ``_build_loss``."""
from __future__ import annotations

import numpy as np
import torch

#: 4 encoder stages -> 3 deep-supervision outputs at full, 1/2 and 1/4 resolution
STRIDES = [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]]


def dataset_json(*, regions: bool, ignore: bool) -> dict:
    """Two foreground classes (label training) or two nested regions (region-based), optionally an ignore label."""
    labels = {"background": 0, "whole": [1, 2], "core": 2} if regions else {"background": 0, "a": 1, "b": 2}
    if ignore:
        labels["ignore"] = 3
    out = {"labels": labels, "channel_names": {"0": "CT"}, "numTraining": 2, "file_ending": ".nii.gz"}
    if regions:
        out["regions_class_order"] = [1, 2]
    return out


def plans(*, batch_dice: bool) -> dict:
    return {
        "dataset_name": "Dataset999_Medloss", "plans_name": "nnUNetPlans", "continue_training": False,
        "configurations": {"3d_fullres": {
            "data_identifier": "nnUNetPlans_3d_fullres", "batch_dice": batch_dice, "batch_size": 2,
            "patch_size": [16, 16, 16],
            "architecture": {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                             "arch_kwargs": {"strides": STRIDES}, "_kw_requires_import": []},
        }},
    }


def trainer(cls: type, tmp_path, monkeypatch, *, batch_dice: bool, ignore: bool, regions: bool,
            deep_supervision: bool = True):
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    instance = cls(plans=plans(batch_dice=batch_dice), configuration="3d_fullres", fold=0,
                   dataset_json=dataset_json(regions=regions, ignore=ignore), device=torch.device("cpu"))
    instance.enable_deep_supervision = deep_supervision
    return instance


def augmented_scales(cls: type, tmp_path, monkeypatch, segmentation: torch.Tensor) -> list[torch.Tensor]:
    """The segmentation scales the training transforms of trainer ``cls`` (batch Dice, ignore label 3, 16^3 patch)
    give for one (1, 24, 24, 24) sample, with torch and numpy seeded."""
    instance = trainer(cls, tmp_path, monkeypatch, batch_dice=True, ignore=True, regions=False)
    rotation, _, _, mirror = instance.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
    pipeline = instance.get_training_transforms([16, 16, 16], rotation, instance._get_deep_supervision_scales(),
                                                mirror, False, ignore_label=3)
    torch.manual_seed(0)
    np.random.seed(0)
    return pipeline(image=torch.rand(1, 24, 24, 24), segmentation=segmentation)["segmentation"]


def batch(*, regions: bool, ignore: bool, seed: int = 0, shape=(16, 16, 16)):
    """float64 logits and nnU-Net-layout int16 targets at the 3 deep-supervision scales (as nnU-Net's loader)."""
    gen = torch.Generator().manual_seed(seed)
    outputs, targets = [], []
    for level in range(3):
        size = [s // 2**level for s in shape]
        channels = 2 if regions else 3
        outputs.append(torch.randn(2, channels, *size, generator=gen, dtype=torch.float64, requires_grad=True))
        labels = torch.randint(0, 3, (2, 1, *size), generator=gen)
        ignored = (torch.rand(2, 1, *size, generator=gen) < 0.25 if ignore
                   else torch.zeros(2, 1, *size, dtype=torch.bool))
        if regions:
            masks = [(labels >= 1), (labels == 2)] + ([ignored] if ignore else [])
            targets.append(torch.cat(masks, 1).to(torch.int16))
        else:
            targets.append(torch.where(ignored, 3, labels).to(torch.int16))
    return outputs, targets


def with_maps(trainer_cls: type, targets: list[torch.Tensor], *, ignore: bool) -> list[torch.Tensor]:
    """``targets`` with each scale's map packed as its last channel, by the trainer's own map transform (as
    nnU-Net's loader batches it); the targets unchanged for a trainer without a map."""
    from medloss.nnunet.factory import map_transform

    spec = trainer_cls.spec
    if spec.map_kind is None:
        return targets
    transform = map_transform(spec, ignore_label=3 if ignore else None, num_classes=3)
    return [torch.stack([transform(segmentation=sample)["segmentation"] for sample in scale]) for scale in targets]


def split(trainer_cls: type, packed: list[torch.Tensor]) -> tuple:
    """(targets, maps) of a batch packed by :func:`with_maps`, as the trainer's steps split it."""
    from medloss.nnunet.factory import map_transform
    from medloss.nnunet.maps import split_maps

    return split_maps(packed, map_transform(trainer_cls.spec, ignore_label=None, num_classes=3).channels)
