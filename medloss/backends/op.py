"""The seam: every per-(sample, class) table a loss needs, from one ``torch.library`` operator.

Every fused loss (region losses, cross-entropy, BCE, softmax and sigmoid focal, the compounds) is a formula on six
tables of logits x (B, C, N) against a target, with validity v (0 where a voxel counts nowhere)::

    TP_c = sum_n v p_c g_c    PRED_c = sum_n v p_c^e    TARGET_c = sum_n v g_c^e    VOXELS = sum_n v   (B, 1)
    VPOS_c, VNEG_c: the sums of a voxel term (its positive and negative parts for sigmoid; VNEG = 0 for softmax)

with p = softmax(x) against a label map (one-hot g) or p = sigmoid(x) against a label map or a dense target; the
voxel terms and their exact definitions are in :mod:`medloss.backends.eager.softmax` and
:mod:`medloss.backends.eager.sigmoid`. They come from the custom operator ``medloss::tables`` (and
``medloss::tables_backward``, its registered analytic gradient), which has one implementation per engine, picked
once per call by :func:`medloss.backends.engine_for`: ``cpu`` (the C kernel), ``triton`` (CUDA) and
``eager`` (plain torch, anything else). It has a fake (shape-only) implementation, so ``torch.compile`` sees one
opaque node whatever the engine, and the options travel as one frozen, validated :class:`TableOptions`.

Adding a voxel term: its formula and slope in ``backends/eager/`` (eager), one case in ``backends/cpu/`` and one in
``backends/triton/``, and its name in :data:`medloss.backends.options.VOXEL_TERMS`.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch

from medloss import backends, checks
from medloss.backends.eager.softmax import labelled_sums, voxel_value
from medloss.backends.options import TableOptions

# labelled_sums and voxel_value: the eager engine's per-label sums and softmax voxel terms, which the formulas' dense
# paths (probabilities, soft targets) evaluate with autograd instead of writing the terms again
__all__ = ["TableOptions", "Tables", "labelled_sums", "tables", "voxel_value"]


class Tables(NamedTuple):
    """The operator's outputs: (B, C) tables and (B, 1) VOXELS in the compute dtype (float64 for float64 logits,
    else float32). TARGET and VOXELS carry no gradient."""

    tp: torch.Tensor
    pred: torch.Tensor
    target: torch.Tensor
    voxels: torch.Tensor
    vpos: torch.Tensor
    vneg: torch.Tensor


@functools.lru_cache(maxsize=256)
def _cached_options(activation, dense, soft, ignore_index, squared, voxel_term, gamma, lo, hi, region, check, matrix):
    return TableOptions(ignore_index, squared, voxel_term, gamma, (lo, hi), region, check, activation, dense, soft,
                        matrix)


def _options(activation, dense, soft, ignore_index, squared, voxel_term, gamma, lo, hi, region, check, matrix=None):
    """The validated options a compiled graph's scalars stand for: the same object for the same scalars, so a
    training step validates nothing (a custom operator takes scalars and lists, not the loss's options object).
    ``matrix``: the cost matrix flattened row by row (a ``float[]`` of the schema), or None."""
    rows = None
    if matrix is not None:
        size = math.isqrt(len(matrix))
        rows = tuple(tuple(matrix[r * size : (r + 1) * size]) for r in range(size))
    return _cached_options(activation, dense, soft, ignore_index, squared, voxel_term, gamma, lo, hi, region, check,
                           rows)


def _flat(options: TableOptions) -> list[float] | None:
    """The options' cost matrix as the operator's ``float[]`` argument (row by row), or None."""
    return None if options.matrix is None else [float(v) for row in options.matrix for v in row]


@torch.library.custom_op("medloss::tables", mutates_args=())
def _tables_op(logits: torch.Tensor, target: torch.Tensor, engine: str, activation: str, dense: bool, soft: bool,
               ignore_index: int | None, squared: bool, voxel_term: str | None, gamma: float, lo: float,
               hi: float, region: bool, check: bool, matrix: list[float] | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    options = _options(activation, dense, soft, ignore_index, squared, voxel_term, gamma, lo, hi, region, check,
                       matrix)
    _, out = backends.forward(engine, logits, target, options)
    return tuple(t.clone() for t in out)  # outputs of a custom op may not alias (each is a few hundred bytes)


@_tables_op.register_fake
def _(logits, target, engine, activation, dense, soft, ignore_index, squared, voxel_term, gamma, lo, hi, region,
      check, matrix=None):
    batch, num_classes = logits.shape[:2]
    dtype = checks.compute_dtype(logits)
    shapes = [(batch, num_classes)] * 3 + [(batch, 1)] + [(batch, num_classes)] * 2
    return tuple(logits.new_empty(shape, dtype=dtype) for shape in shapes)


@torch.library.custom_op("medloss::tables_backward", mutates_args=())
def _tables_backward_op(logits: torch.Tensor, target: torch.Tensor, grad_tp: torch.Tensor, grad_pred: torch.Tensor,
                        grad_vpos: torch.Tensor, grad_vneg: torch.Tensor, engine: str, activation: str, dense: bool,
                        soft: bool, ignore_index: int | None, squared: bool, voxel_term: str | None,
                        gamma: float, lo: float, hi: float, region: bool,
                        matrix: list[float] | None = None) -> torch.Tensor:
    options = _options(activation, dense, soft, ignore_index, squared, voxel_term, gamma, lo, hi, region, False,
                       matrix)
    return backends.backward(engine, logits, target, options, grad_tp, grad_pred, grad_vpos, grad_vneg)


@_tables_backward_op.register_fake
def _(logits, target, grad_tp, grad_pred, grad_vpos, grad_vneg, engine, activation, dense, soft, ignore_index,
      squared, voxel_term, gamma, lo, hi, region, matrix=None):
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


def _setup_context(ctx, inputs, output):
    logits, target, *rest = inputs
    ctx.save_for_backward(logits, target)
    ctx.rest = rest[:-2] + rest[-1:]  # engine and options, without `check` (backward never checks)


def _zeros_if_none(grad, like):
    return torch.zeros_like(like) if grad is None else grad


def _backward(ctx, grad_tp, grad_pred, _grad_target, _grad_voxels, grad_vpos, grad_vneg):
    logits, target = ctx.saved_tensors
    grads = [_zeros_if_none(g, logits.new_empty(logits.shape[:2], dtype=checks.compute_dtype(logits)))
             for g in (grad_tp, grad_pred, grad_vpos, grad_vneg)]
    grad = _tables_backward_op(logits, target, *grads, *ctx.rest)
    return (grad,) + (None,) * 14


_tables_op.register_autograd(_backward, setup_context=_setup_context)


class _TablesFunction(torch.autograd.Function):
    """The operator's eager path: the same engine calls as ``medloss::tables`` and its backward, without the
    custom-op dispatch (schema parsing, output alias checks, clones) that a training step would pay on every call.
    The engine's outputs may be views of one packed result; a table that gets no gradient is passed on as None
    (the Triton kernels skip it; the other engines take zeros)."""

    @staticmethod
    def forward(ctx, logits, target, engine, options):
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(logits, target)
        ctx.engine, out = backends.forward(engine, logits, target, options)
        ctx.options = options
        ctx.mark_non_differentiable(out[2], out[3])
        return tuple(out)

    @staticmethod
    def backward(ctx, grad_tp, grad_pred, _grad_target, _grad_voxels, grad_vpos, grad_vneg):
        logits, target = ctx.saved_tensors
        grads = (grad_tp, grad_pred, grad_vpos, grad_vneg)
        if all(g is None for g in grads):
            return None, None, None, None
        if ctx.engine != "triton":
            like = logits.new_empty(logits.shape[:2], dtype=checks.compute_dtype(logits))
            grads = tuple(_zeros_if_none(g, like) for g in grads)
        return backends.backward(ctx.engine, logits, target, ctx.options, *grads), None, None, None


def tables(logits: torch.Tensor, target: torch.Tensor, options: TableOptions, engine: str | None = None) -> Tables:
    """The :class:`Tables` of (B, C, N) logits against ``target`` (a (B, 1, N) label map of any integer dtype, or
    float holding integers; or, for sigmoid with ``options.dense``, a (B, C, N) target), computed by ``engine``
    (default: :func:`medloss.backends.engine_for`); differentiable in the logits through the registered analytic
    backward. Eager calls go through :class:`_TablesFunction`; under ``torch.compile`` the registered operator
    (one opaque node with a fake implementation) is traced instead."""
    if engine is None:
        engine = backends.engine_for(logits, target, options)
    if not torch.compiler.is_compiling():
        return Tables(*_TablesFunction.apply(logits, target, engine, options))
    lo, hi = options.log_clamp
    out = _tables_op(logits, target, engine, options.activation, options.dense, options.soft, options.ignore_index,
                     options.squared, options.voxel_term, float(options.gamma), float(lo), float(hi), options.region,
                     options.check, _flat(options))
    tp, pred, tgt, voxels, vpos, vneg = out
    return Tables(tp, pred, tgt.detach(), voxels.detach(), vpos, vneg)
