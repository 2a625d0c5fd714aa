"""The seam: softmax tables of logits against a label map, from one ``torch.library`` operator.

Every softmax loss with a label-map target (region losses, cross-entropy, softmax focal, the compounds) is a
formula on four (B, C) tables (math in :mod:`medloss.functional.fused`)::

    TP_c = sum_n v p_c [y = c]    PRED_c = sum_n v p_c^e    TARGET_c = sum_n v [y = c]    VOX_c = sum_n v phi(log p_y) [y = c]

They come from the custom operator ``medloss::softmax_tables`` (and ``medloss::softmax_tables_backward``, its
registered analytic gradient). The operator has one implementation per engine, picked once per call by
:func:`medloss.functional.backend.softmax_engine`: ``native`` (the C kernel, CPU), ``triton`` (CUDA) and ``eager``
(plain torch, anything else). It has a fake (shape-only) implementation, so ``torch.compile`` sees one opaque node
whatever the engine, and the options travel as one frozen, validated :class:`TableOptions`.

Adding a voxel term: its formula and slope in ``fused.py`` (eager), one case in ``_kernels.c`` and one in
``_triton_kernels.py``, and its name in :data:`VOXEL_TERMS`.
"""
import dataclasses
import math
from dataclasses import dataclass
from typing import Optional

import torch

from medloss.errors import InvalidOptionError
from medloss.functional import fused, native, prepare, triton_tables
from medloss.functional.fused import VOXEL_TERMS

__all__ = ["TableOptions", "softmax_tables", "ENGINES"]


@dataclass(frozen=True)
class TableOptions:
    """What the tables are of: validated once, shared by every engine.

    ignore_index: label value whose voxels count nowhere (``None``: every voxel counts).
    squared: PRED sums p^2 (V-Net denominators) instead of p.
    voxel_term: ``None``, ``"ce"``, ``"focal"`` or ``"explog"``; ``gamma`` its exponent.
    log_clamp: (lo, hi) clamp of log p_y inside the voxel term (its slope is 0 where it clips).
    region: whether TP and PRED are needed (``False`` for a voxel loss alone; engines may then skip them).
    check: validate logits (finite) and labels (in [0, C) or ``ignore_index``) and raise typed errors; without it
        no engine reads a tensor back to the host (the C kernel still checks, for free, inside its pass).
    """

    ignore_index: int | None = None
    squared: bool = False
    voxel_term: str | None = None
    gamma: float = 0.0
    log_clamp: tuple[float, float] = (-math.inf, math.inf)
    region: bool = True
    check: bool = True

    def __post_init__(self) -> None:
        if self.voxel_term not in VOXEL_TERMS:
            raise InvalidOptionError(f"`voxel_term` must be one of {list(VOXEL_TERMS)}, got {self.voxel_term!r}.")
        if not (isinstance(self.gamma, (int, float)) and math.isfinite(self.gamma) and self.gamma >= 0):
            raise InvalidOptionError(f"`gamma` must be a finite number >= 0, got {self.gamma!r}.")
        lo, hi = self.log_clamp
        if not lo <= hi or lo > 0:
            raise InvalidOptionError(f"`log_clamp` must be (lo, hi) with lo <= hi and lo <= 0, got {self.log_clamp!r}.")
        if self.ignore_index is not None and not isinstance(self.ignore_index, int):
            raise InvalidOptionError(f"`ignore_index` must be an integer or None, got {self.ignore_index!r}.")


def _eager_labels(logits, labels, options: TableOptions):
    """(labels (B, 1, N) int64 with uncounted voxels at 0, valid (B, 1, N) or None) for the eager engine."""
    num_classes = logits.shape[1]
    if options.check:
        prepare.check_finite(logits)
        prepare.check_labels(labels, num_classes, options.ignore_index)
        counted = None if options.ignore_index is None else labels != options.ignore_index
    else:  # like the kernels: labels outside [0, C) count nowhere (no host read to find out whether there are any)
        counted = (labels >= 0) & (labels < num_classes)
        if options.ignore_index is not None:
            counted &= labels != options.ignore_index
    if counted is None:
        return labels.long(), None
    return labels.masked_fill(~counted, 0).long(), counted.to(prepare.compute_dtype(logits))


class _Eager:
    """The ``eager`` engine: plain torch (:mod:`medloss.functional.fused`)."""

    @staticmethod
    def forward(logits, labels, options: TableOptions):
        labels, valid = _eager_labels(logits, labels, options)
        return fused.forward_tables(logits, labels, valid, options.squared, options.voxel_term, options.gamma,
                                    options.log_clamp, options.region)

    @staticmethod
    def backward(logits, labels, options: TableOptions, grad_tp, grad_pred, grad_vox):
        labels, valid = _eager_labels(logits, labels, dataclasses.replace(options, check=False))
        return fused.backward_grad(logits, labels, valid, options.squared, options.voxel_term, options.gamma,
                                   options.log_clamp, options.region, grad_tp, grad_pred, grad_vox)


#: engine name -> its module (or namespace) with forward(logits, labels, options) and
#: backward(logits, labels, options, grad_tp, grad_pred, grad_vox)
ENGINES = {"native": native, "triton": triton_tables, "eager": _Eager}


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
