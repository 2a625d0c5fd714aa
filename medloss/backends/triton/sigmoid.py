"""The sigmoid side of the ``triton`` engine: region tables, BCE and sigmoid focal sums against a label map or a
dense target (the math is in :mod:`medloss.backends.eager.sigmoid`; the kernels in ``_sigmoid_kernels.py``).

Forward reads logits and target once (per-block partial tables, no float atomics, summed by the finalize kernel);
backward reads them again and writes the gradient in the logits' dtype. Logits fp16/bf16/fp32/fp64 (half precision
read natively, float32 sums; float64 computed in float64); label maps of any integer dtype or float holding
integers; dense targets of any float dtype. With ``options.check`` bad input raises the eager engine's typed error
(on CUDA at a later call, without a host sync: :mod:`medloss.backends.triton.status`); without it nothing is read
back (fractional and out-of-range dense values are used as given, invalid labels count nowhere).
"""
from __future__ import annotations

import functools

import torch

from medloss import checks
from medloss.backends import triton as api

__all__ = ["takes", "forward", "backward"]

_VOXEL = {None: 0, "bce": 1, "focal": 2}
_DENSE = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def takes(logits: torch.Tensor, target: torch.Tensor, options) -> bool:
    """Whether the kernels take these inputs (the device and logits conditions are the softmax side's)."""
    if not api.device_ok(logits, target):
        return False
    if options.dense:
        return target.dtype in _DENSE and tuple(target.shape) == tuple(logits.shape)
    return target.dtype in api.LABELS and target.dim() == 3 and target.shape[1] == 1


@functools.lru_cache(maxsize=256)
def _plan(shape: tuple, dtype: torch.dtype, target_float: bool, options, device: torch.device) -> tuple:
    """(grid, scalar arguments, constexpr arguments) of a launch, once per shape and options (see the softmax
    side's ``_plan``)."""
    batch, num_classes, n = shape
    block_n, block_c = api.blocks(num_classes, options, dtype)
    acc = api.kernels("sigmoid").tl.float64 if dtype == torch.float64 else api.kernels("sigmoid").tl.float32
    grid = (-(-n // block_n), batch)
    grid_forward = (api.forward_programs(grid[0], batch), batch)
    common = dict(DENSE=bool(options.dense), HAS_IGNORE=options.ignore_index is not None,
                  FLOAT_LABELS=target_float and not options.dense, SQUARED=bool(options.squared),
                  VOXEL=_VOXEL[options.voxel_term], BLOCK_N=block_n, BLOCK_C=block_c, ACC=acc)
    ignore = int(options.ignore_index) if options.ignore_index is not None else 0
    par = api.params((float(options.gamma),), torch.float64 if dtype == torch.float64 else torch.float32, device)
    launch = (api.launch_options(num_classes, options, dtype, True),
              api.launch_options(num_classes, options, dtype, False))
    return grid, grid_forward, (n, num_classes, max(num_classes, 2), ignore, par), common, launch


def _launch(backward: bool, logits, target, options, out, status=None) -> None:
    grid, grid_forward, (n, num_classes, ncls, ignore, par), common, (fwd, bwd) = _plan(
        tuple(logits.shape), logits.dtype, target.dtype.is_floating_point, options, logits.device)
    k = api.kernels("sigmoid")
    if backward:
        grads, grad = out
        ptrs, strides, has = api.coefficient_args(logits, grads)
        k._backward_kernel[grid](logits, target, *ptrs, grad, n, num_classes, ncls, ignore, par, *strides, **common,
                                 **bwd, HAS_K=has[0], HAS_A=has[1], HAS_P=has[2], HAS_N=has[3])
    else:
        k._forward_kernel[grid_forward](logits, target, out, status, n, num_classes, ncls, grid[0], grid_forward[0],
                                        ignore, par, **common, **fwd)


def _raise_for_status(status: torch.Tensor, logits, target, options) -> None:
    """One host read of the flags; the eager engine's checks word the error."""
    flags = int(status[-1])
    if flags & api.STATUS_NONFINITE:
        checks.check_finite(logits)
    if flags & api.STATUS_LABEL or (flags & api.STATUS_SOFT and not options.soft):
        from medloss.backends import eager

        eager.check_target(logits, target, options)
        raise RuntimeError(f"medloss Triton sigmoid kernel flagged invalid input (status {flags}) that the eager "
                           "checks accept (please report this).")


def forward(logits, target, options):
    """Engine entry: (TP, PRED, TARGET, VOXELS (B, 1), VPOS, VNEG) in the compute dtype, views of one packed result."""
    target = target.contiguous()
    out, status = api.packed_tables(logits, options, lambda part, st: _launch(False, logits, target, options, part, st))
    if options.check:
        api.check(status, logits, options, lambda: _raise_for_status(status, logits, target, options))
    return api.unpack(out)


def backward(logits, target, options, grad_tp, grad_pred, grad_vpos, grad_vneg):
    """Engine entry: dL/dlogits (logits' dtype) from the (B, C) gradients of TP, PRED, VPOS and VNEG (None: none)."""
    grad = torch.empty_like(logits, memory_format=torch.contiguous_format)
    _launch(True, logits, target.contiguous(), options, ((grad_pred, grad_tp, grad_vpos, grad_vneg), grad))
    return grad
