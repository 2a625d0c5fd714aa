"""Neighbour-aware calibration (NACL): cross-entropy plus a penalty tying the logits to the local class mix.

    loss = CE(x, y) + alpha * mean_{b,c,i} |s_c(i) - x_c(i)|        ("l1"; "l2" squares the difference)

with s = K * onehot(y) the one-hot target smoothed by a spatial kernel K (a k^d box filter divided by k^d, or
a Gaussian with MONAI's erf-integrated taps), zero-padded to the same size. Voxels whose label equals
``ignore_index`` have no class (a zero one-hot) and are left out of both means.

References:
    Murugesan et al., "Trust your neighbours: Penalty-based constraints for model calibration", MICCAI 2023,
    arXiv:2303.06268.
    Murugesan et al., "Neighbor-Aware Calibration of Segmentation Networks with Penalty-Based Constraints",
    arXiv:2401.14487.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from medloss.errors import ShapeMismatchError
from medloss.functional import prepare
from medloss.functional.voxel import cross_entropy_loss

KERNEL_OPS = ("mean", "gaussian")
DISTANCE_TYPES = ("l1", "l2")
#: the Gaussian taps extend to this many sigmas on each side (MONAI's GaussianFilter default)
GAUSSIAN_TRUNCATED = 4.0


def gaussian_taps(sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """1-D Gaussian taps as the integral of the density over each unit cell, [i - 1/2, i + 1/2] (not normalised)."""
    tail = int(max(sigma * GAUSSIAN_TRUNCATED, 0.5) + 0.5)
    x = torch.arange(-tail, tail + 1, dtype=dtype, device=device)
    t = 1.0 / (math.sqrt(2.0) * sigma)
    return (0.5 * (torch.erf(t * (x + 0.5)) - torch.erf(t * (x - 0.5)))).clamp_min(0.0)


def smooth_channels(x: torch.Tensor, *, kernel_ops: str, kernel_size: int, sigma: float) -> torch.Tensor:
    """Each channel of (B, C, *S) filtered by the box mean or the Gaussian, with zero padding to the same size."""
    dims = x.ndim - 2
    conv = (F.conv2d, F.conv3d)[dims - 2]
    channels = x.shape[1]
    if kernel_ops == "mean":
        box = torch.full((channels, 1) + (kernel_size,) * dims, kernel_size ** -dims, dtype=x.dtype, device=x.device)
        return conv(x, box, groups=channels, padding="same")
    taps = gaussian_taps(sigma, x.dtype, x.device)
    for axis in range(dims):
        shape = [1] * dims
        shape[axis] = taps.numel()
        padding = [0] * dims
        padding[axis] = (taps.numel() - 1) // 2
        x = conv(x, taps.reshape(1, 1, *shape).expand(channels, 1, *shape), groups=channels, padding=tuple(padding))
    return x


def nacl_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    classes: int,
    kernel_ops: str = "mean",
    kernel_size: int = 3,
    sigma: float = 1.0,
    distance_type: str = "l1",
    alpha: float = 0.1,
    ignore_index: int | None = -100,
    check_input: bool = True,
) -> torch.Tensor:
    """NACL (scalar). See :class:`medloss.losses.NACLLoss`."""
    prepare.check_input_tensor(input)
    if input.shape[1] != classes:
        raise ShapeMismatchError(
            f"`input` has {input.shape[1]} channels but the loss was built with `classes`={classes}."
        )
    prepare.label_map(target, input, channels_fix=prepare.LABEL_MAP_ONLY)
    ce = cross_entropy_loss(input, target, ignore_index=ignore_index, check_input=check_input)
    # the cross-entropy above checked the labels (inside the table operator's pass): no second pass here
    labels, valid = prepare.labels_and_mask(target, input, ignore_index=ignore_index, check_input=False)
    x = input.to(prepare.compute_dtype(input))
    onehot = torch.zeros_like(x).scatter_(1, labels.reshape(x.shape[0], 1, *x.shape[2:]), 1.0)
    if valid is not None:
        onehot = onehot * valid.reshape(x.shape[0], 1, *x.shape[2:])
    smooth = smooth_channels(onehot, kernel_ops=kernel_ops, kernel_size=kernel_size, sigma=sigma)
    gap = (smooth - x).abs() if distance_type == "l1" else (smooth - x).square()
    if valid is None:
        penalty = gap.mean()
    else:
        per_voxel = gap.sum(dim=1).reshape(x.shape[0], -1)
        penalty = (per_voxel * valid[:, 0]).sum() / (valid.sum() * x.shape[1]).clamp_min(1.0)
    return (ce.to(x.dtype) + alpha * penalty).to(input.dtype)
