"""A MONAI dictionary transform that adds the reference's signed distance maps, once per sample, in the loader.

:class:`~medloss.losses.BoundaryLoss` and :class:`~medloss.losses.HausdorffDTLoss` need, for every class, the signed
distance map phi of the reference (:mod:`medloss.functional.distance`). Computing it in the data pipeline moves
the distance transforms off the training step (and off the GPU), lets loader workers run them in parallel, and
lets ``CacheDataset``/``PersistentDataset`` keep them: the transform is deterministic.

In a bundle's training transforms, after the spatial transforms that resample (nearest-neighbour resampling of a
distance map is not a distance map; crops and flips are fine)::

    {"_target_": "medloss.transforms.SignedDistanceMapd", "keys": "label", "num_classes": 2}

Distances are in voxels by default, the unit of the losses' own fields (``spacing=None``, MONAI's convention);
with ``spacing="pixdim"`` (or numbers) they are in mm, and the loss needs the same ``spacing``.

By default the C maps are stacked after the label's channel, so the trainer passes them to the loss unchanged
inside ``label`` ((1 + C, *S)) and the losses split them off; ``output_key`` stores them under another key
instead (then pass them as ``loss(input, target, distance=...)``).
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from medloss.errors import InvalidOptionError, LabelValueError, OptionTypeError, ShapeMismatchError
from medloss.functional.distance import check_spacing, signed_distance

__all__ = ["SignedDistanceMapd", "signed_distance_maps"]


def signed_distance_maps(label: Any, num_classes: int, spacing: Sequence[float] | float | None = None,
                         ignore_index: int | None = None) -> torch.Tensor:
    """(C, *S) float32 signed distance maps of a (1, *S) label map or a (C, *S) one-hot label.

    Args:
        label: the label, channel first (tensor, MetaTensor or array).
        num_classes: C; 1 means one foreground channel (label > 0), the layout of ``sigmoid=True`` losses with one
            input channel.
        spacing: None measures in voxels, as the losses do by default (and MONAI's HausdorffDTLoss); ``"pixdim"``
            reads a MetaTensor's ``pixdim`` (give the loss the same ``spacing``: its prediction field is computed at
            every step with the loss's own).
        ignore_index: voxels with this label belong to no class (as in the losses, which compute missing maps the
            same way).

    Returns:
        (C, *S) float32 maps, negative inside each class, positive outside.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InvalidOptionError(f"`num_classes` must be an int >= 1, got {num_classes!r}.")
    if not isinstance(label, (torch.Tensor, np.ndarray)):
        raise OptionTypeError(f"the label must be a tensor or array of shape (1, *S), got {type(label).__name__}.")
    ndim = label.ndim - 1
    if isinstance(spacing, str):
        if spacing != "pixdim":
            raise InvalidOptionError(
                f"`spacing` must be None, a number, one number per axis or 'pixdim', got {spacing!r}."
            )
        if not isinstance(label, MetaTensor) or len(label.pixdim) < ndim:
            raise OptionTypeError(
                "`spacing='pixdim'` reads the voxel spacing of a MetaTensor label (LoadImaged gives one), got "
                f"{type(label).__name__}{'' if not isinstance(label, MetaTensor) else ' without geometry'}; pass "
                "the spacing as numbers instead."
            )
        spacing = tuple(float(v) for v in label.pixdim[:ndim])
    spacing = check_spacing(spacing, ndim)
    values = torch.as_tensor(label).detach().cpu()
    if ndim < 1 or ndim > 3:
        raise ShapeMismatchError(
            f"the label must have shape (1, *S) with 1 to 3 spatial axes, got {tuple(values.shape)}.")
    if values.shape[0] == num_classes and num_classes > 1:
        masks = values.numpy() > 0.5  # one-hot
    elif values.shape[0] == 1:
        flat = values[0].numpy()
        ignored = np.zeros(flat.shape, bool) if ignore_index is None else flat == ignore_index  # in no class
        if num_classes == 1:
            masks = ((flat > 0) & ~ignored)[None]
        else:
            bad = ~ignored & ((flat < 0) | (flat >= num_classes) | (flat != np.round(flat)))
            if bad.any():
                raise LabelValueError(
                    f"the label holds values {np.unique(flat[bad])[:5].tolist()} outside 0..{num_classes - 1}: "
                    "check `num_classes` (or set `ignore_index`)."
                )
            masks = (flat[None] == np.arange(num_classes).reshape(-1, *([1] * ndim))) & ~ignored
    else:
        raise ShapeMismatchError(
            f"the label has {values.shape[0]} channels (shape {tuple(values.shape)}): expected channel-first "
            f"(1, *S) (a label map) or (num_classes={num_classes}, *S) (one-hot); add a channel axis to a "
            "channel-less label first (EnsureChannelFirstd, e.g. channel_dim='no_channel')."
        )
    return torch.from_numpy(np.stack([signed_distance(m, spacing) for m in masks]))


class SignedDistanceMapd(MapTransform):
    """Add the signed distance maps phi (C, *S) of the label(s) at ``keys`` (see the module docstring).

    Args:
        keys: label keys.
        num_classes: number of classes C (the loss's input channels; 1 for a one-channel sigmoid output).
        spacing: voxel spacing (a number or one per axis); None (default) measures in voxels, as the losses'
            default ``spacing`` and MONAI's HausdorffDTLoss; ``"pixdim"`` reads the label's ``pixdim``
            (MetaTensor). The loss computes its prediction field with its own ``spacing``: give both the same.
        ignore_index: label value of voxels that belong to no class (the loss's ``ignore_index``).
        output_key: None stacks the maps after the label's channels (float32 result, metadata kept); a string
            (may contain ``{key}``) stores them under that key and leaves the label untouched.
        allow_missing_keys: as MONAI's MapTransform.
    """

    def __init__(self, keys: KeysCollection, num_classes: int, spacing=None, ignore_index: int | None = None,
                 output_key: str | None = None, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise InvalidOptionError(f"`num_classes` must be an int >= 1, got {num_classes!r}.")
        self.num_classes = num_classes
        if isinstance(spacing, str) and spacing != "pixdim":
            raise InvalidOptionError(
                f"`spacing` must be None, a number, one number per axis or 'pixdim', got {spacing!r}."
            )
        if spacing is not None and not isinstance(spacing, str):  # the values now; their count per label
            scalar = isinstance(spacing, (int, float)) and not isinstance(spacing, bool)
            check_spacing(spacing, 1 if scalar or not hasattr(spacing, "__len__") else len(spacing))
        self.spacing = spacing
        self.ignore_index = ignore_index
        self.output_key = output_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            label = d[key]
            maps = signed_distance_maps(label, self.num_classes, self.spacing, self.ignore_index)
            if self.output_key is not None:
                d[self.output_key.format(key=key)] = maps
                continue
            base = label if isinstance(label, torch.Tensor) else torch.as_tensor(label)
            d[key] = torch.cat([base.to(torch.float32), maps.to(base.device)], dim=0)
        return d
