"""The seam: softmax tables of logits against a label map, from one ``torch.library`` operator.

Every softmax loss with a label-map target (region losses, cross-entropy, softmax focal, the compounds) is a
formula on four (B, C) tables (math in :mod:`medloss.backends.eager.softmax`)::

    TP_c = sum_n v p_c [y = c]    PRED_c = sum_n v p_c^e    TARGET_c = sum_n v [y = c]    VOX_c = sum_n v phi(log p_y) [y = c]

They come from the custom operator ``medloss::softmax_tables`` (and ``medloss::softmax_tables_backward``, its
registered analytic gradient). The operator has one implementation per engine, picked once per call by
:func:`medloss.backends.softmax_engine`: ``native`` (the C kernel, CPU), ``triton`` (CUDA) and ``eager``
(plain torch, anything else). It has a fake (shape-only) implementation, so ``torch.compile`` sees one opaque node
whatever the engine, and the options travel as one frozen, validated :class:`TableOptions`.

Adding a voxel term: its formula and slope in ``backends/eager/softmax.py`` (eager), one case in ``backends/cpu/_kernels.c`` and one in
``backends/triton/_kernels.py``, and its name in :data:`medloss.functional.options.VOXEL_TERMS`.
"""
from typing import Optional

import torch

from medloss.backends import ENGINES
from medloss.functional import prepare
from medloss.functional.options import TableOptions

__all__ = ["TableOptions", "softmax_tables", "ENGINES"]


def _options(ignore_index, squared, voxel_term, gamma, lo, hi, region, check) -> TableOptions:
    return TableOptions(ignore_index, squared, voxel_term, gamma, (lo, hi), region, check)


@torch.library.custom_op("medloss::softmax_tables", mutates_args=())
def _tables_op(logits: torch.Tensor, labels: torch.Tensor, engine: str, ignore_index: Optional[int], squared: bool,
               voxel_term: Optional[str], gamma: float, lo: float, hi: float, region: bool,
               check: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    options = _options(ignore_index, squared, voxel_term, gamma, lo, hi, region, check)
    tp, pred, target, vox = ENGINES[engine].forward(logits, labels, options)
    return tp.clone(), pred.clone(), target.clone(), vox.clone()  # outputs of a custom op may not alias


@_tables_op.register_fake
def _(logits, labels, engine, ignore_index, squared, voxel_term, gamma, lo, hi, region, check):
    shape = logits.shape[:2]
    dtype = prepare.compute_dtype(logits)
    return tuple(logits.new_empty(shape, dtype=dtype) for _ in range(4))


@torch.library.custom_op("medloss::softmax_tables_backward", mutates_args=())
def _tables_backward_op(logits: torch.Tensor, labels: torch.Tensor, grad_tp: torch.Tensor, grad_pred: torch.Tensor,
                        grad_vox: torch.Tensor, engine: str, ignore_index: Optional[int], squared: bool,
                        voxel_term: Optional[str], gamma: float, lo: float, hi: float, region: bool) -> torch.Tensor:
    options = _options(ignore_index, squared, voxel_term, gamma, lo, hi, region, False)
    return ENGINES[engine].backward(logits, labels, options, grad_tp, grad_pred, grad_vox)


@_tables_backward_op.register_fake
def _(logits, labels, grad_tp, grad_pred, grad_vox, engine, ignore_index, squared, voxel_term, gamma, lo, hi, region):
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


def _setup_context(ctx, inputs, output):
    logits, labels, *rest = inputs
    ctx.save_for_backward(logits, labels)
    ctx.rest = rest[:-1]  # engine and options, without `check` (backward never checks)


def _backward(ctx, grad_tp, grad_pred, _grad_target, grad_vox):
    logits, labels = ctx.saved_tensors
    grad = _tables_backward_op(logits, labels, grad_tp, grad_pred, grad_vox, *ctx.rest)
    return (grad,) + (None,) * 10


_tables_op.register_autograd(_backward, setup_context=_setup_context)


def softmax_tables(logits: torch.Tensor, labels: torch.Tensor, engine: str, options: TableOptions):
    """(TP, PRED, TARGET, VOX), each (B, C) in the compute dtype, of (B, C, N) logits against a (B, 1, N) label map
    (any integer dtype, or float holding integers), computed by ``engine``; differentiable in the logits through the
    registered analytic backward (TARGET is returned detached)."""
    lo, hi = options.log_clamp
    tp, pred, target, vox = _tables_op(logits, labels, engine, options.ignore_index, options.squared,
                                       options.voxel_term, float(options.gamma), float(lo), float(hi),
                                       options.region, options.check)
    return tp, pred, target.detach(), vox
