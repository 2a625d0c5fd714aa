"""Fused losses of the Triton engine: the loss formula and its gradient computed on the device, one autograd node per
loss call, no torch op of the formula on the host.

A step is three launches: the table kernel (per-program partial tables, :mod:`medloss.backends.triton`), the
finalize kernel of :mod:`medloss.backends.triton._loss_kernels` (one program: it sums the partials in a fixed order,
evaluates the loss and writes the gradient coefficients dL/dPRED, dL/dTP, dL/dVPOS (dL/dVNEG) per (sample, class)
into a small device buffer) and, in backward, the table backward kernel, which reads those coefficients and scales
them by the incoming gradient on the device (no host read). Softmax tables against a label map, or sigmoid tables
against a label map or a dense target. The formulas are medloss's, written once more in Triton; the torch
formulas (:mod:`medloss.functional.region`, :mod:`medloss.functional.voxel`) stay the reference, and the tests hold
this path to them. With E the per-entry loss of the (B', C') table of kept classes (B' = 1 when pooled)::

    Dice:   E = 1 - (2 TP + s_nr) / (PRED + TARGET + s_dr)
    k,a,b:  E = 1 - (k TP + s_nr) / (k TP + a FP + b FN + s_dr)       (Jaccard 2, 2, 2; Tversky 1, alpha, beta)
            focal Tversky: max(E, eps)^(1/gamma)
    GDL:    E_row = 1 - (2 sum_c w_c TP_c + s_nr) / (sum_c w_c (PRED_c + TARGET_c) + s_dr)   (MONAI's weights)
    region term = mean or sum of E;  CE = sum VPOS / sum TARGET (mean) or sum VPOS;
    softmax focal = sum_c' VPOS / (C' sum_b max(VOXELS_b, 1)) (mean) or sum_(b,c') VPOS / max(VOXELS_b, 1) (sum)
    sigmoid BCE = sum (VPOS + VNEG) / max(C sum_b VOXELS_b, 1) (mean) or sum (VPOS + VNEG)
    loss = lambda_region * region term + lambda_voxel * voxel term

:func:`medloss.functional.fused.fused_loss` decides which calls take this path (and builds the :class:`LossSpec`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import torch

from medloss import checks
from medloss.backends import triton as _api
from medloss.backends.options import TableOptions
from medloss.backends.triton import sigmoid as _sigmoid

__all__ = ["LossSpec", "loss"]

_REGION = {None: 0, "dice": 1, "overlap": 2, "gdl": 3}
_W_TYPES = {"square": 0, "simple": 1, "uniform": 2}
_VOXEL = {None: 0, "ce": 1, "focal": 2, "bce": 3}
SCRATCH = 10  # rows per sample of the finalize kernel's buffer: dL/dPRED, dL/dTP, dL/dVPOS, dL/dVNEG, 6 tables


@dataclass(frozen=True)
class LossSpec:
    """Which loss the finalize kernel evaluates (see the module docstring).

    region: None, ``"dice"``, ``"overlap"`` (``overlap`` = (k, a, b)) or ``"gdl"`` (``w_type``, ``empty``);
    focal_gamma: the focal Tversky exponent (None: plain); voxel: None, ``"ce"``, ``"focal"`` (softmax; its gamma is
    in the tables' options) or ``"bce"`` (sigmoid); lam_region, lam_voxel: the terms' weights; mean: mean (else
    sum) reduction.
    """

    region: str | None = None
    overlap: tuple[float, float, float] = (2.0, 1.0, 1.0)
    focal_gamma: float | None = None
    focal_eps: float = 0.0
    w_type: str = "square"
    empty: str = "penalize"
    voxel: str | None = None
    lam_region: float = 1.0
    lam_voxel: float = 1.0
    include_background: bool = True
    batch: bool = False
    mean: bool = True
    smooth_nr: float = 1e-5
    smooth_dr: float = 1e-5


class _Plan(NamedTuple):
    """What a call repeats, worked out once per shape, dtype and options (a step's host time is the point here)."""

    part: tuple  # shape of the partial tables
    scratch: tuple  # shape of the finalize kernel's buffer
    dtype: torch.dtype  # the compute dtype
    table: tuple  # the engine's _plan: (grid, forward grid, scalars, constexprs, (forward, backward) launch options)
    finalize: tuple  # the finalize kernel's scalars (B, C, programs per sample) and parameter tensor
    flags: dict  # the finalize kernel's constexprs
    has: tuple  # which coefficients the backward reads: dL/dPRED, dL/dTP, dL/dVPOS, dL/dVNEG
    options: TableOptions  # the tables' options
    sigmoid: bool  # the sigmoid kernels (else softmax)


@functools.lru_cache(maxsize=256)
def _plan(shape: tuple, dtype: torch.dtype, float_labels: bool, options, spec: LossSpec,
          device: torch.device) -> _Plan:
    sigmoid = options.activation == "sigmoid"
    table = (_sigmoid._plan if sigmoid else _api._plan)(shape, dtype, float_labels, options, device)
    batch, num_classes, _ = shape
    nprog, block_c = table[1][0], table[3]["BLOCK_C"]
    acc = checks.compute_dtype(torch.empty(0, dtype=dtype))
    inv_gamma = 1.0 if spec.focal_gamma is None else 1.0 / spec.focal_gamma
    values = (spec.smooth_nr, spec.smooth_dr, *spec.overlap, spec.focal_eps, inv_gamma, spec.lam_region,
              spec.lam_voxel)  # a tensor in the compute dtype: Triton would round Python floats to float32
    par = _api.params(tuple(float(v) for v in values), acc, device)
    flags = dict(REGION=_REGION[spec.region], W_TYPE=_W_TYPES[spec.w_type], EMPTY_PENALIZE=spec.empty == "penalize",
                 FOCAL=spec.focal_gamma is not None, VOXEL=_VOXEL[spec.voxel], BATCH=spec.batch,
                 FIRST=0 if spec.include_background else 1, MEAN=spec.mean, BLOCK_C=block_c,
                 CHUNK=max(1, min(64, 512 // block_c)), ACC=table[3]["ACC"])
    region = spec.region is not None
    return _Plan((batch, nprog, _api.ROWS, block_c), (batch, SCRATCH, block_c), acc, table,
                 (batch, num_classes, nprog, par), flags, (region, region, spec.voxel is not None, spec.voxel == "bce"),
                 options, sigmoid)


def _forward(logits: torch.Tensor, labels: torch.Tensor, plan: _Plan) -> tuple:
    """Table kernel + finalize kernel: (the loss in the logits' dtype, the (B, SCRATCH, BLOCK_C) buffer of
    coefficients and tables, the status words)."""
    grid, grid_forward, scalars, common, (launch, _) = plan.table
    batch, _, nprog, loss_par = plan.finalize
    part = torch.empty(plan.part, dtype=plan.dtype, device=logits.device)
    status = torch.empty(batch * nprog + 1, dtype=torch.int32, device=logits.device)
    if plan.sigmoid:
        n, num_classes, ncls, ignore, par = scalars
        _api.kernels("sigmoid")._forward_kernel[grid_forward](logits, labels, part, status, n, num_classes, ncls,
                                                              grid[0], nprog, ignore, par, **common, **launch)
    else:
        n, num_classes, ignore, par, matrix = scalars
        _api.kernels()._forward_kernel[grid_forward](logits, labels, part, status, n, num_classes, grid[0], nprog,
                                                     ignore, par, matrix, **common, **launch)
    scratch = torch.empty(plan.scratch, dtype=plan.dtype, device=logits.device)
    value = torch.empty((), dtype=logits.dtype, device=logits.device)
    _api.kernels("loss")._loss_kernel[(1,)](part, status, loss_par, scratch, value, *plan.finalize[:3], **plan.flags)
    return value, scratch, status


def _backward(logits: torch.Tensor, labels: torch.Tensor, plan: _Plan, scratch: torch.Tensor,
              grad_out: torch.Tensor) -> torch.Tensor:
    """dL/dlogits from the finalize kernel's coefficients, times ``grad_out`` (read by the kernel)."""
    grid, _, scalars, common, (_, launch) = plan.table
    has_k, has_a, has_u, has_n = plan.has
    # the buffer is the pointer to its first row (dL/dPRED, or dL/dVPOS for a voxel loss alone); the logits stand
    # in for a coefficient the kernel does not read
    tp = scratch.select(1, 1) if has_a else logits
    vpos = (scratch.select(1, 2) if has_k else scratch) if has_u else logits
    step = scratch.stride(0)
    grad = torch.empty_like(logits)  # contiguous, as the logits
    if plan.sigmoid:
        n, num_classes, ncls, ignore, par = scalars
        vneg = scratch.select(1, 3) if has_n else logits
        _api.kernels("sigmoid")._backward_kernel[grid](
            logits, labels, scratch, tp, vpos, vneg, grad, n, num_classes, ncls, ignore, par, step, 1, step, 1, step,
            1, step, 1, **common, **launch, HAS_K=has_k, HAS_A=has_a, HAS_P=has_u, HAS_N=has_n,
            gout_ptr=grad_out, SCALE=True)
        return grad
    n, num_classes, ignore, par, matrix = scalars
    _api.kernels()._backward_kernel[grid](logits, labels, scratch, tp, vpos, grad, n, num_classes, ignore, par, matrix,
                                          step, 1, step, 1, step, 1, **common, **launch, HAS_K=has_k,
                                          HAS_A=has_a, HAS_U=has_u, gout_ptr=grad_out, SCALE=True)
    return grad


def _raise(status: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, plan: _Plan) -> None:
    """The engine's typed error for flagged input (one host read: CPU tensors only, see ``_api.check``)."""
    if plan.sigmoid:
        _sigmoid._raise_for_status(status, logits, labels, plan.options)
    else:
        _api.raise_for_status(status, logits, labels, plan.options.ignore_index)


class _FusedLoss(torch.autograd.Function):
    """One node per loss call: forward = table + finalize kernels, backward = the table backward kernel."""

    @staticmethod
    def forward(ctx, logits, labels, plan):
        value, scratch, status = _forward(logits, labels, plan)
        options = plan.options
        if options.check:
            _api.check(status, logits, options, lambda: _raise(status, logits, labels, plan))
        ctx.save_for_backward(logits)
        ctx.labels, ctx.scratch, ctx.plan = labels, scratch, plan  # labels: never a gradient, nothing to check
        return value

    @staticmethod
    def backward(ctx, grad_out):
        (logits,) = ctx.saved_tensors
        return _backward(logits, ctx.labels, ctx.plan, ctx.scratch, grad_out), None, None


def loss(logits: torch.Tensor, labels: torch.Tensor, options, spec: LossSpec) -> torch.Tensor:
    """The loss ``spec`` of contiguous (B, C, *S) logits against (B, 1, *S) labels or (sigmoid, ``options.dense``)
    a (B, C, *S) target (inputs whose flat views the Triton engine takes, with ``options`` the tables'
    :class:`~medloss.backends.options.TableOptions`), a 0-dim tensor in the logits' dtype, differentiable in the
    logits. The kernels read the tensors as they are (flat views would add a node to the autograd graph)."""
    batch, num_classes = logits.shape[:2]
    plan = _plan((batch, num_classes, logits.numel() // (batch * num_classes)), logits.dtype,
                 labels.dtype.is_floating_point, options, spec, logits.device)
    return _FusedLoss.apply(logits, labels.contiguous(), plan)
