"""Reference maps for the map-based losses, computed in nnU-Net's data pipeline (needs ``batchgeneratorsv2``).

Skeleton Recall needs the tubed skeleton of the label, blob loss its connected components, the boundary and
Hausdorff-DT losses the signed distance map of every class they score. Computing them in the loss would run
skeletonisation, component labelling or distance transforms in the training loop at every step; computing them in
the loader (background workers) keeps them off the critical path, as Skeleton Recall's own trainer does.

:class:`LabelMapTransform` goes last in the trainer's training and validation transforms, after nnU-Net's
``DownsampleSegForDSTransform``, and computes the map from the (augmented, cropped) label of every
deep-supervision scale on its own: a map downsampled from the full-resolution one would not match the downsampled
label (a thin structure's skeleton can fall between the kept voxels, a small component can vanish or split).
nnU-Net's data loader keeps only the transforms' ``image`` and ``segmentation`` (and batches the segmentation in
the dtype the transforms give it), so the map travels as extra last channels of each scale's segmentation; the
trainer's ``train_step``/``validation_step`` split them off again (:func:`split_maps`) and hand them to the loss.

Skeleton and component maps are integers: the segmentation becomes int32 (component ids can exceed int16). Signed
distance maps are float: the segmentation becomes float32, the label in it stays exact (integers up to 2^24 are
exact in float32; nnU-Net's labels are int16) and :func:`split_maps` gives it back as int16, nnU-Net's dtype. They
are one map per network output channel (the loss's ``distance`` shape), computed for the classes the loss scores
(the others, e.g. the background under ``include_background=False``, stay 0 and cost nothing), each
:func:`~medloss.functional.distance.signed_distance` of ``label == c``: the ignore label is in no class, so it is
outside every class's mask, which is what BoundaryLoss and HausdorffDTLoss compute from a label with
``ignore_index`` (and those voxels count in neither loss's mean). Distances are in voxels of each scale's patch,
or in the loss's ``spacing`` when it has one (as the loss, given that scale's label, would compute them).
"""
from __future__ import annotations

import numpy as np
import torch
from batchgeneratorsv2.transforms.base.basic_transform import SegOnlyTransform

from medloss.errors import InvalidOptionError, ShapeMismatchError
from medloss.functional.distance import check_spacing, signed_distance
from medloss.functional.maps import component_map, reference_skeleton

#: the map each map-based loss takes, by registered name
MAP_KINDS = {"SkeletonRecallLoss": "skeleton", "BlobLoss": "components", "BoundaryLoss": "signed_distance",
             "HausdorffDTLoss": "signed_distance", "LogHausdorffDTLoss": "signed_distance"}
#: the forward keyword each kind of map is passed to its loss as
MAP_KEYWORDS = {"skeleton": "skeleton", "components": "components", "signed_distance": "distance"}


class LabelMapTransform(SegOnlyTransform):
    """Append the ``kind`` map(s) of the label (channel 0) as the last channel(s) of every scale's segmentation.

    Args:
        kind: "skeleton" (:func:`~medloss.functional.maps.reference_skeleton`), "components"
            (:func:`~medloss.functional.maps.component_map`) or "signed_distance"
            (:func:`~medloss.functional.distance.signed_distance` per class, see the module docstring).
        ignore_label: nnU-Net's ignore label; its voxels count as background in the map.
        tube, connectivity: as the map functions (from the loss's own options).
        num_classes: "signed_distance" only: the number of maps (the network's output channels).
        classes: "signed_distance" only: the classes whose maps are computed (the others stay 0).
        spacing: "signed_distance" only: the loss's ``spacing`` (None: voxels).

    The output is int32 (label channel(s) first, one map last) or, for "signed_distance", float32 (label
    channel(s) first, ``num_classes`` maps last).
    """

    def __init__(self, kind: str, *, ignore_label: int | None, tube: bool = True, connectivity: int | None = None,
                 num_classes: int = 0, classes: tuple[int, ...] = (), spacing: object = None) -> None:
        super().__init__()
        self.kind = kind
        self.ignore_label = ignore_label
        self.tube = bool(tube)
        self.connectivity = connectivity
        self.num_classes = int(num_classes)
        self.classes = tuple(int(c) for c in classes)
        self.spacing = spacing
        if kind not in MAP_KEYWORDS:
            raise InvalidOptionError(f"`kind` must be one of {sorted(MAP_KEYWORDS)}, got {kind!r}.")
        if kind == "signed_distance" and not (self.num_classes >= 1 and
                                              all(0 <= c < self.num_classes for c in self.classes)):
            raise InvalidOptionError(f"signed distance maps need `num_classes` >= 1 (the network's output "
                                     f"channels) and `classes` within it, got {num_classes!r} and {classes!r}.")

    @property
    def channels(self) -> int:
        """The number of map channels appended to each scale."""
        return self.num_classes if self.kind == "signed_distance" else 1

    def map_of(self, labels: np.ndarray) -> np.ndarray:
        """The map(s) of one label map (*S), by medloss's own map functions: (*S), or (num_classes, *S)."""
        if self.kind == "skeleton":
            return reference_skeleton(labels, tube=self.tube, ignore_index=self.ignore_label)
        if self.kind == "components":
            return component_map(labels, connectivity=self.connectivity, ignore_index=self.ignore_label)
        spacing = check_spacing(self.spacing, labels.ndim)
        maps = np.zeros((self.num_classes, *labels.shape), dtype=np.float32)
        for c in self.classes:
            maps[c] = signed_distance(labels == c, spacing)
        return maps

    def _one_scale(self, segmentation: torch.Tensor) -> torch.Tensor:
        if segmentation.ndim not in (3, 4):
            raise ShapeMismatchError(f"the segmentation must be (C, *S) with 2 or 3 spatial axes, got shape "
                                     f"{tuple(segmentation.shape)}.")
        labels = segmentation[0].numpy()
        if self.kind == "signed_distance":
            return torch.cat([segmentation.to(torch.float32), torch.from_numpy(self.map_of(labels))], 0)
        values = torch.from_numpy(self.map_of(labels).astype(np.int32))
        return torch.cat([segmentation.to(torch.int32), values[None]], 0)

    def _apply_to_segmentation(self, segmentation, **params):
        if isinstance(segmentation, (list, tuple)):  # one tensor per deep-supervision scale
            return [self._one_scale(scale) for scale in segmentation]
        return self._one_scale(segmentation)


def split_maps(target: torch.Tensor | list[torch.Tensor], channels: int = 1) -> tuple:
    """(target, maps) from a batch target whose scales carry ``channels`` map channels last
    (:class:`LabelMapTransform`).

    ``target`` is one (B, K + channels, *S) tensor or a list of them (deep supervision). Integer maps come back as
    (B, 1, *S) int64 after the target as it was; float (signed distance) maps as (B, channels, *S) float32 after
    the target as int16, nnU-Net's label dtype (exact: the transform stored integers in float32).
    """
    if isinstance(target, (list, tuple)):
        pairs = [split_maps(scale, channels) for scale in target]
        return [t for t, _ in pairs], [m for _, m in pairs]
    if target.ndim < 3 or target.shape[1] < channels + 1:
        raise ShapeMismatchError(
            f"the batch target has shape {tuple(target.shape)}: no map channel after the label ({channels} expected). "
            "A map-based medloss trainer needs its LabelMapTransform last in get_training_transforms and "
            "get_validation_transforms; an override of those must keep it (call super()).")
    label, maps = target[:, :-channels], target[:, -channels:]
    if target.is_floating_point():
        return label.to(torch.int16), maps
    return label, maps.long()


__all__ = ["MAP_KEYWORDS", "MAP_KINDS", "LabelMapTransform", "split_maps"]
