"""Euclidean distance maps of masks, on CPU, for the distance-based losses and their data transform.

For a binary mask M on a grid with voxel spacing s (physical units), let

    D_out(q) = distance from q to the nearest voxel of M          (0 on M)
    D_in(q)  = distance from q to the nearest voxel outside M      (0 outside M)

Two maps are used:

* the **signed distance map** phi = D_out - D_in: positive outside the mask, negative inside (Kervadec et al.'s
  phi_G, MIDL 2019 / MedIA 2021, with the distance measured between voxel centres);
* the **distance field** |phi| = D_out + D_in, MONAI's ``HausdorffDTLoss.distance_field``.

Both are 0 everywhere for an empty or full mask (no boundary, so no distance; MONAI's and the authors' rule).
Computed by the ``edt`` package (one multi-label pass gives D_out + D_in) in float32, as MONAI's field.

Target maps belong in the data loader (:class:`medloss.transforms.SignedDistanceMapd`, computed once per sample);
:func:`split_distance_target` lets a loss find them stacked after the target channels, and
:func:`maps_or_compute` computes them (with a one-time warning about the cost) when they are absent.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import edt
import numpy as np
import torch

from medloss.errors import InputRangeError, InvalidOptionError, OptionTypeError, ShapeMismatchError

_WARNED: set[str] = set()


def check_spacing(spacing: object, ndim: int) -> tuple[float, ...] | None:
    """None, a positive number or one positive number per spatial axis (``ndim`` of them)."""
    if spacing is None:
        return None
    # any iterable of numbers; a non-iterable raises the TypeError handled below
    values: Any = (spacing,) * ndim if isinstance(spacing, (int, float)) and not isinstance(spacing, bool) else spacing
    try:
        values = tuple(float(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise OptionTypeError(f"`spacing` must be a number or a sequence of numbers, got {spacing!r}.") from exc
    if len(values) != ndim or not all(v > 0 and np.isfinite(v) for v in values):
        raise InvalidOptionError(
            f"`spacing` must hold {ndim} finite values > 0 (one per spatial axis), got {spacing!r}."
        )
    return values


def mask_field(mask: np.ndarray, spacing: Sequence[float] | None = None) -> np.ndarray:
    """D_out + D_in of a boolean mask (1-3 spatial axes) as float32; zeros for an empty or full mask."""
    if mask.ndim > 3:
        raise ShapeMismatchError(f"distance maps support 1 to 3 spatial axes, got a mask of shape {mask.shape}.")
    count = int(mask.sum())
    if count == 0 or count == mask.size:
        return np.zeros(mask.shape, dtype=np.float32)
    # two labels (1 outside, 2 inside): edt gives every voxel its distance to the nearest voxel of the other label
    labels = np.ascontiguousarray(mask, dtype=np.uint8) + 1
    aniso = tuple(spacing) if spacing is not None else (1.0,) * mask.ndim
    field = edt.edt(labels, anisotropy=aniso if mask.ndim > 1 else aniso[0], black_border=False, parallel=1)
    return np.asarray(field, dtype=np.float32)


def signed_distance(mask: np.ndarray, spacing: Sequence[float] | None = None) -> np.ndarray:
    """phi = D_out - D_in of a boolean mask (negative inside), float32; zeros for an empty or full mask."""
    field = mask_field(mask, spacing)
    return np.where(mask, -field, field).astype(np.float32, copy=False)


def distance_maps(masks: torch.Tensor, spacing: Sequence[float] | None = None, *, signed: bool) -> torch.Tensor:
    """Per-channel maps of a (B, C, *S) stack of masks (values > 0.5 are in), float32 on the masks' device.

    ``signed=True`` gives phi, ``signed=False`` the field |phi| (see the module docstring). Runs on CPU.
    """
    host = (masks.detach().reshape(-1, *masks.shape[2:]) > 0.5).cpu().numpy()
    fn = signed_distance if signed else mask_field
    out = np.stack([fn(m, spacing) for m in host]) if len(host) else np.zeros(host.shape, np.float32)
    return torch.from_numpy(out).reshape(masks.shape).to(masks.device)


def split_distance_target(
    target: torch.Tensor, input: torch.Tensor, *, to_onehot_y: bool, distance: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(target, maps or None): maps given by keyword, or stacked after the target's channels by the transform.

    The target has t = 1 channel (a label map, ``to_onehot_y=True`` or one input channel) or t = C channels
    (one-hot); (B, t + C, *S) means the last C channels are the signed distance maps, one per input channel.
    """
    num_classes = input.shape[1]
    if distance is not None:
        if not isinstance(distance, torch.Tensor):
            raise OptionTypeError(f"`distance` must be a torch.Tensor, got {type(distance).__name__}.")
        if tuple(distance.shape) != tuple(input.shape):
            raise ShapeMismatchError(
                f"`distance` has shape {tuple(distance.shape)} but `input` has {tuple(input.shape)}: give one "
                "signed distance map per input channel (medloss.transforms.SignedDistanceMapd)."
            )
        return target, distance
    if not isinstance(target, torch.Tensor) or target.ndim != input.ndim:
        return target, None
    label_channels = 1 if (to_onehot_y or num_classes == 1) else num_classes
    if target.shape[1] == label_channels + num_classes:
        return target[:, :label_channels], target[:, label_channels:]
    return target, None


def check_maps(maps: torch.Tensor) -> None:
    """Given signed distance maps must be finite (a NaN or inf map makes the loss NaN or inf at that step)."""
    lo, hi = torch.aminmax(maps.detach())
    if not (torch.isfinite(lo) and torch.isfinite(hi)):
        raise InputRangeError(
            f"`distance` (the signed distance maps, given by keyword or stacked after the target's channels) holds "
            f"NaN or infinite values (min {float(lo)}, max {float(hi)}); compute them with "
            "medloss.transforms.SignedDistanceMapd, which gives finite maps (0 for an empty or full class)."
        )


def maps_or_compute(
    maps: torch.Tensor | None, onehot: torch.Tensor, spacing: Sequence[float] | None, *, owner: str
) -> torch.Tensor:
    """The given signed maps, or phi of the (B, C, *S) reference computed here, with a one-time warning."""
    if maps is not None:
        return maps
    if owner not in _WARNED:
        _WARNED.add(owner)
        warnings.warn(
            f"{owner}: no precomputed signed distance maps, computing them on the CPU at every call (one distance "
            "transform per sample and class). Add medloss.transforms.SignedDistanceMapd to the training transforms "
            "(computed once per sample, cacheable) to remove this cost.",
            stacklevel=6,  # the caller of the loss module
        )
    return distance_maps(onehot, spacing, signed=True)
