"""Distance-weighted losses: the boundary loss and the distance-transform Hausdorff loss.

The math, defaults and papers are documented on :class:`medloss.losses.BoundaryLoss` and
:class:`medloss.losses.HausdorffDTLoss`. Both are per (sample, class) means over the voxels that count of a voxel
term p * phi or (p - g)^2 (d_p^alpha + d_g^alpha); the reference's maps come precomputed from the data loader
(:class:`medloss.transforms.SignedDistanceMapd`) or are computed here once per call.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from medloss.functional import prepare
from medloss.functional import reduce as _reduce
from medloss.functional.distance import (
    check_maps,
    check_spacing,
    distance_maps,
    maps_or_compute,
    split_distance_target,
)
from medloss.functional.stats import distributed_sum


def _prepared(input, target, distance, *, include_background, to_onehot_y, activation, other_act, ignore_index,
              check_input):
    """(p, g, maps or None, valid) of the scored classes, (B, C', N) each (maps (B, C', *S)); valid (B, 1, N)."""
    prepare.check_input_tensor(input)
    target, maps = split_distance_target(target, input, to_onehot_y=to_onehot_y, distance=distance)
    if check_input and maps is not None:
        check_maps(maps)
    if check_input and (activation is not None or other_act is not None):
        prepare.check_finite(input)
    g, valid = prepare.dense_target(target, input, to_onehot_y=to_onehot_y, ignore_index=ignore_index,
                                    soft_label=None, check_input=check_input)
    p = prepare.flatten(prepare.activate(input, activation=activation, other_act=other_act, check_input=check_input))
    if not include_background:
        if input.shape[1] == 1:
            prepare.warn_single_channel("include_background=False")
        else:
            p, g = p[:, 1:], g[:, 1:]
            maps = None if maps is None else maps[:, 1:]
    return p, g, maps, valid


def _in_no_class(x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Masks for the distance maps: ignored voxels belong to no class (nor to the prediction)."""
    return x if valid is None else x * valid


def _voxel_mean(term: torch.Tensor, valid: torch.Tensor | None, *, batch: bool) -> torch.Tensor:
    """(B, C, N) voxel terms -> (B, C) means over the voxels that count, or (1, C) pooled over the global batch."""
    if valid is not None:
        term = term * valid
    total = term.sum(dim=2)
    count = (torch.full_like(total[:, :1], term.shape[2]) if valid is None else valid.sum(dim=2))
    if batch:
        total = distributed_sum(total.sum(dim=0, keepdim=True))
        count = distributed_sum(count.sum(dim=0, keepdim=True))
    return total / count.clamp_min(1.0)


def boundary_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    distance: torch.Tensor | None = None,
    *,
    include_background: bool = True,
    to_onehot_y: bool = False,
    sigmoid: bool = False,
    softmax: bool = False,
    other_act: prepare.Activation | None = None,
    ignore_index: int | None = None,
    spacing: Sequence[float] | None = None,
    reduction: str = "mean",
    check_input: bool = True,
) -> torch.Tensor:
    """Boundary loss mean(p_c phi_c), (B, C') before reduction. See :class:`medloss.losses.BoundaryLoss`."""
    p, g, maps, valid = _prepared(input, target, distance, include_background=include_background,
                                  to_onehot_y=to_onehot_y,
                                  activation=prepare.activation_of(sigmoid=sigmoid, softmax=softmax),
                                  other_act=other_act, ignore_index=ignore_index, check_input=check_input)
    spacing = check_spacing(spacing, input.ndim - 2)
    phi = maps_or_compute(maps, _in_no_class(g, valid).reshape(*g.shape[:2], *input.shape[2:]), spacing,
                          owner="BoundaryLoss")
    loss = _voxel_mean(p * prepare.flatten(phi.to(p)), valid, batch=False)
    return _reduce.reduce_table(loss, reduction).to(input.dtype)


def hausdorff_dt_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    distance: torch.Tensor | None = None,
    *,
    alpha: float = 2.0,
    include_background: bool = False,
    to_onehot_y: bool = False,
    sigmoid: bool = False,
    softmax: bool = False,
    other_act: prepare.Activation | None = None,
    batch: bool = False,
    ignore_index: int | None = None,
    spacing: Sequence[float] | None = None,
    reduction: str = "mean",
    check_input: bool = True,
) -> torch.Tensor:
    """Hausdorff distance-transform loss, (B, C') or (1, C') before reduction. See
    :class:`medloss.losses.HausdorffDTLoss`."""
    p, g, maps, valid = _prepared(input, target, distance, include_background=include_background,
                                  to_onehot_y=to_onehot_y,
                                  activation=prepare.activation_of(sigmoid=sigmoid, softmax=softmax),
                                  other_act=other_act, ignore_index=ignore_index, check_input=check_input)
    shape, spacing = (*g.shape[:2], *input.shape[2:]), check_spacing(spacing, input.ndim - 2)
    d_g = maps_or_compute(maps, _in_no_class(g, valid).reshape(shape), spacing, owner="HausdorffDTLoss").abs()
    # the prediction's field, at every step; ignored voxels are in no class for both fields, so their values
    # change nothing
    d_p = distance_maps(_in_no_class(p.detach(), valid).reshape(shape), spacing, signed=False)
    weight = prepare.flatten(d_p.to(p).pow_(alpha).add_(d_g.to(p).pow(alpha)))
    loss = _voxel_mean((p - g).square().mul_(weight), valid, batch=batch)
    return _reduce.reduce_table(loss, reduction).to(input.dtype)
