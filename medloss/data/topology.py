"""MONAI transforms that compute, once per sample in the data loader, the reference maps of the topology and
instance losses: the (tubed) skeleton for :class:`~medloss.losses.SkeletonRecallLoss` and
:class:`~medloss.losses.SoftclDiceLoss`, and the connected components for :class:`~medloss.losses.BlobLoss`.

They are deterministic, so a ``CacheDataset`` caches their output when they come before the first random transform;
add the new key to the random spatial transforms' ``keys`` (flips, crops; nearest interpolation for resampling), and
pack it into the label last with MONAI's ``ConcatItemsd``, since a MONAI trainer calls ``loss(pred, label)``: the
loss reads a target with one extra last channel as [label, map]. Computing the map after the random crops instead
(as Skeleton Recall's data loader does) is exact at the patch border but repeats the work every epoch.

In a bundle's ``train`` section (the training metric then sees the label without the map: drop it in
``train#postprocessing`` first)::

    "deterministic_transforms":
        "$@preprocessing_common + [medloss.transforms.ReferenceSkeletond(keys='label', tube=False)]",
    "random_transforms": [... every spatial transform with "keys": ["image", "label", "label_skeleton"] ...,
        {"_target_": "ConcatItemsd", "keys": ["label", "label_skeleton"], "name": "label"}],
    "loss": {"_target_": "medloss.losses.SoftDiceclDiceLoss", "softmax": true, "to_onehot_y": true,
             "include_background": false},
    postprocessing, first: {"_target_": "Lambdad", "keys": "label", "func": "$lambda x: x[:1]"}
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from medloss.errors import ShapeMismatchError
from medloss.functional.maps import component_map, reference_skeleton

__all__ = ["ConnectedComponentsd", "ReferenceSkeletond"]


def _channels(label: Any, key: Hashable) -> tuple[np.ndarray, Any]:
    """The (1, *S) integer numpy array of a channel-first label map, and its original for the output's type.

    One rule with :class:`~medloss.transforms.SignedDistanceMapd`: MONAI's channel-first layout, so a (H, W, D)
    array without a channel axis is refused (read channel-first it would be H slices of 2-D labels)."""
    arr = label.detach().cpu().numpy() if isinstance(label, torch.Tensor) else np.asarray(label)
    if arr.ndim not in (3, 4) or arr.shape[0] != 1:
        raise ShapeMismatchError(
            f"`{key}` must be a channel-first 2-D or 3-D label map (1, H, W[, D]) with one channel of class "
            f"indices, got shape {arr.shape}: add a channel axis to a channel-less label first (place the "
            "transform after EnsureChannelFirstd, e.g. channel_dim='no_channel'); argmax a one-hot label to one "
            "channel (AsDiscreted(argmax=True))."
        )
    if arr.dtype.kind == "f":
        arr = np.rint(arr)
    return arr.astype(np.int64), label


def _like(out: np.ndarray, label: Any) -> Any:
    """The map with the label's container: a tensor (MetaTensor keeps its affine/metadata) or a numpy array."""
    if isinstance(label, torch.Tensor):
        result = torch.as_tensor(out, device=label.device)
        from monai.data import MetaTensor

        if isinstance(label, MetaTensor):
            return MetaTensor(result, meta=dict(label.meta))  # the meta dict holds the affine
        return result
    return out


class _MapTransform(MapTransform):
    """Apply a per-channel map function ``self._map`` to each key; store the result under a new key."""

    _map: Callable[[np.ndarray], np.ndarray]

    def __init__(self, keys: KeysCollection, suffix: str, output_key: str | None, allow_missing_keys: bool) -> None:
        super().__init__(keys, allow_missing_keys)
        self.suffix = suffix
        self.output_key = output_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            arr, label = _channels(d[key], key)
            out = np.stack([self._map(channel) for channel in arr])
            d[self.output_key or f"{key}_{self.suffix}"] = _like(out, label)
        return d


class ReferenceSkeletond(_MapTransform):
    """Add the reference skeleton of ``data[key]`` under ``f"{key}_skeleton"`` (or ``output_key``).

    Per channel of a channel-first label map, :func:`medloss.functional.maps.reference_skeleton`: the skeleton of
    the foreground (``skimage.morphology.skeletonize``), with ``tube=True`` dilated twice with the face-connected
    cross as Skeleton Recall's loader does, each voxel holding its class (int16). Use ``tube=True`` for
    :class:`~medloss.losses.SkeletonRecallLoss` and ``tube=False`` for :class:`~medloss.losses.SoftclDiceLoss`.
    Voxels equal to ``ignore_index`` count as background. Cost: about a second per 128^3 volume on one core.

    Args:
        keys: label keys (channel-first label maps).
        tube: dilate the skeleton into Skeleton Recall's tube.
        ignore_index: label value counted as background.
        output_key: where to store the map (default ``f"{key}_skeleton"``).
        allow_missing_keys: as MONAI's ``MapTransform``.
    """

    def __init__(
        self,
        keys: KeysCollection,
        tube: bool = True,
        ignore_index: int | None = None,
        output_key: str | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, "skeleton", output_key, allow_missing_keys)
        self.tube = bool(tube)
        self.ignore_index = ignore_index

    def _map(self, arr: np.ndarray) -> np.ndarray:
        return reference_skeleton(arr, tube=self.tube, ignore_index=self.ignore_index)


class ConnectedComponentsd(_MapTransform):
    """Add the connected components of ``data[key]`` under ``f"{key}_components"`` (or ``output_key``).

    Per channel, :func:`medloss.functional.maps.component_map` (``cc3d``): ids 1..K, each component of one class,
    26-connected in 3-D by default. Voxels equal to ``ignore_index`` belong to no component. For
    :class:`~medloss.losses.BlobLoss`.

    Args:
        keys: label keys (channel-first label maps).
        connectivity: 6, 18 or 26 in 3-D (4 or 8 in 2-D); default the largest.
        ignore_index: label value of voxels outside every component.
        output_key: where to store the map (default ``f"{key}_components"``).
        allow_missing_keys: as MONAI's ``MapTransform``.
    """

    def __init__(
        self,
        keys: KeysCollection,
        connectivity: int | None = None,
        ignore_index: int | None = None,
        output_key: str | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, "components", output_key, allow_missing_keys)
        self.connectivity = connectivity
        self.ignore_index = ignore_index

    def _map(self, arr: np.ndarray) -> np.ndarray:
        return component_map(arr, connectivity=self.connectivity, ignore_index=self.ignore_index)
