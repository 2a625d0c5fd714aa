"""Reference maps for the map-based losses, computed in nnU-Net's data pipeline (needs ``batchgeneratorsv2``).

Skeleton Recall needs the tubed skeleton of the label, blob loss its connected components. Computing them in the
loss would run skeletonisation or component labelling in the training loop at every step; computing them in the
loader (background workers) keeps them off the critical path, as Skeleton Recall's own trainer does.

:class:`LabelMapTransform` goes last in the trainer's training and validation transforms, after nnU-Net's
``DownsampleSegForDSTransform``, and computes the map from the (augmented, cropped) label of every
deep-supervision scale on its own: a map downsampled from the full-resolution one would not match the downsampled
label (a thin structure's skeleton can fall between the kept voxels, a small component can vanish or split).
nnU-Net's data loader keeps only the transforms' ``image`` and ``segmentation``, so the map travels as one extra
last channel of each scale's segmentation; the trainer's ``train_step``/``validation_step`` split it off again
(:func:`split_maps`) and hand it to the loss.
"""
from __future__ import annotations

import numpy as np
import torch
from batchgeneratorsv2.transforms.base.basic_transform import SegOnlyTransform

from medloss.errors import InvalidOptionError, ShapeMismatchError
from medloss.functional.maps import component_map, reference_skeleton

#: the map each map-based loss takes, by registered name: the forward keyword it is passed as
MAP_KINDS = {"SkeletonRecallLoss": "skeleton", "BlobLoss": "components"}


class LabelMapTransform(SegOnlyTransform):
    """Append the ``kind`` map of the label (channel 0) as the last channel of every scale's segmentation.

    Args:
        kind: "skeleton" (:func:`~medloss.functional.maps.reference_skeleton`) or "components"
            (:func:`~medloss.functional.maps.component_map`).
        ignore_label: nnU-Net's ignore label; its voxels count as background in the map.
        tube, connectivity: as the map functions (from the loss's own options).

    The output is int32 (component ids can exceed int16): label channel(s) first, the map last.
    """

    def __init__(self, kind: str, *, ignore_label: int | None, tube: bool = True,
                 connectivity: int | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.ignore_label = ignore_label
        self.tube = bool(tube)
        self.connectivity = connectivity
        if kind not in MAP_KINDS.values():
            raise InvalidOptionError(f"`kind` must be one of {sorted(set(MAP_KINDS.values()))}, got {kind!r}.")

    def map_of(self, labels: np.ndarray) -> np.ndarray:
        """The map of one label map (*S), by medloss's own map function."""
        if self.kind == "skeleton":
            return reference_skeleton(labels, tube=self.tube, ignore_index=self.ignore_label)
        return component_map(labels, connectivity=self.connectivity, ignore_index=self.ignore_label)

    def _one_scale(self, segmentation: torch.Tensor) -> torch.Tensor:
        if segmentation.ndim not in (3, 4):
            raise ShapeMismatchError(f"the segmentation must be (C, *S) with 2 or 3 spatial axes, got shape "
                                     f"{tuple(segmentation.shape)}.")
        labels = segmentation[0].numpy()
        values = torch.from_numpy(self.map_of(labels).astype(np.int32))
        return torch.cat([segmentation.to(torch.int32), values[None]], 0)

    def _apply_to_segmentation(self, segmentation, **params):
        if isinstance(segmentation, (list, tuple)):  # one tensor per deep-supervision scale
            return [self._one_scale(scale) for scale in segmentation]
        return self._one_scale(segmentation)


def split_maps(target: torch.Tensor | list[torch.Tensor]) -> tuple:
    """(target, maps) from a batch target whose scales carry a map as their last channel (:class:`LabelMapTransform`).

    ``target`` is one (B, K + 1, *S) tensor or a list of them (deep supervision); the maps are (B, 1, *S) int64.
    """
    if isinstance(target, (list, tuple)):
        pairs = [split_maps(scale) for scale in target]
        return [t for t, _ in pairs], [m for _, m in pairs]
    if target.ndim < 3 or target.shape[1] < 2:
        raise ShapeMismatchError(
            f"the batch target has shape {tuple(target.shape)}: no map channel after the label. A map-based medloss "
            "trainer needs its LabelMapTransform last in get_training_transforms and get_validation_transforms; "
            "an override of those must keep it (call super()).")
    return target[:, :-1], target[:, -1:].long()


__all__ = ["MAP_KINDS", "LabelMapTransform", "split_maps"]
