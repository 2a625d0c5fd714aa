"""Voxel-wise losses: cross-entropy and binary cross-entropy with logits; the focal loss is in
:mod:`medloss.functional.focal` (``focal_loss`` and ``voxel_tables_options`` stay importable from here).

The math, defaults and papers are documented on the module classes (:class:`medloss.losses.CrossEntropyLoss`,
:class:`medloss.losses.BCELoss`). Computation runs in float32 (float64 for float64 input); the result is returned
in the input's dtype.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from medloss.backends.options import TableOptions
from medloss.errors import LabelValueError, ShapeMismatchError
from medloss.functional import prepare
from medloss.functional.focal import focal_loss as focal_loss
from medloss.functional.stats import RegionStats, label_map_tables, sigmoid_tables, tables_path
from medloss.functional.stats import voxel_tables_options as voxel_tables_options


def ce_from_tables(stats: RegionStats, vox: torch.Tensor, weight: torch.Tensor | None, reduction: str):
    """Cross-entropy from per-label sums: VOX_c = sum over voxels labelled c of -log p_c, TARGET_c = their count.

    mean = sum_c w_c VOX_c / sum_c w_c TARGET_c (torch's weighted mean), sum = sum_c w_c VOX_c.
    """
    w = torch.ones(vox.shape[1], dtype=vox.dtype, device=vox.device) if weight is None else weight.to(vox)
    total = (vox * w).sum()
    if reduction == "sum":
        return total
    return total / (stats.target * w).sum()


_CE_TARGETS = "for class probabilities pass a float target of the input's shape (B, C, *S)"


def _soft_target(target: torch.Tensor, input: torch.Tensor) -> bool:
    """A float target with the input's shape and C > 1 is a probability target; anything else is a label map."""
    return target.is_floating_point() and tuple(target.shape) == tuple(input.shape) and input.shape[1] > 1


def cross_entropy_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int | None = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    check_input: bool = True,
    options: TableOptions | None = None,
) -> torch.Tensor:
    """Cross-entropy as torch's on (B, C, *S) logits; the arguments of :class:`medloss.losses.CrossEntropyLoss`.

    ``options``: the loss's validated :func:`voxel_tables_options` (built from the keyword arguments when None).

    Returns:
        The loss: a scalar, or (B, *S) for ``reduction="none"``.
    """
    prepare.check_input_tensor(input)
    return cross_entropy(input, target, weight=weight, ignore_index=ignore_index, reduction=reduction,
                         label_smoothing=label_smoothing, check_input=check_input, options=options)


def cross_entropy(input: torch.Tensor, target: torch.Tensor, *, weight: torch.Tensor | None, ignore_index: int | None,
                  reduction: str, label_smoothing: float, check_input: bool,
                  options: TableOptions | None = None) -> torch.Tensor:
    """:func:`cross_entropy_loss` of an input tensor its caller checked (a compound checks it once)."""
    num_classes = input.shape[1]
    if num_classes < 2:
        raise ShapeMismatchError(
            "`input` has 1 channel: cross-entropy needs one logit per class (C >= 2). For a binary problem with "
            "one output channel use BCELoss; if `input` is an argmax'd label map, pass the network logits instead."
        )
    x = input.to(prepare.compute_dtype(input))
    w = None if weight is None else weight.to(x)
    if w is not None and w.ndim == 1 and w.numel() != num_classes:
        raise ShapeMismatchError(f"`weight` has {w.numel()} values but `input` has {num_classes} classes.")
    if not isinstance(target, torch.Tensor) or not _soft_target(target, input):  # here the advice fits CE's options
        prepare.label_map(target, input, channels_fix=_CE_TARGETS)
    path = tables_path("softmax", label_map=not _soft_target(target, input), channels=num_classes)
    if path == "softmax" and reduction != "none" and label_smoothing == 0.0:
        # one-hot-free fused path, a formula on per-label sums (the operator checks the input inside its pass)
        if options is None:
            options = voxel_tables_options("ce", ignore_index=ignore_index, check_input=check_input)
        stats, vox = label_map_tables(input, target, options=options)
        return ce_from_tables(stats, vox, w, reduction).to(input.dtype)
    if check_input:
        prepare.check_finite(input)
    if _soft_target(target, input):
        if check_input:
            lo, hi = torch.aminmax(target.detach())
            if float(lo) < 0 or float(hi) > 1:
                raise LabelValueError(
                    f"`target` probabilities must lie in [0, 1], got min {float(lo):.4g}, max {float(hi):.4g}."
                )
        loss = F.cross_entropy(x, target.to(x), weight=w, reduction=reduction, label_smoothing=label_smoothing)
        return loss.to(input.dtype)
    labels = prepare.label_map(target, input, channels_fix=_CE_TARGETS)
    if check_input:
        prepare.check_labels(labels, num_classes, ignore_index)
    labels = labels[:, 0].long()
    held = prepare.representable_ignore(ignore_index, labels.dtype)
    ignore = -100 if held is None else int(held)
    loss = F.cross_entropy(
        x, labels, weight=w, ignore_index=ignore, reduction=reduction, label_smoothing=label_smoothing
    )
    return loss.to(input.dtype)


def bce_from_tables(stats: RegionStats, vpos: torch.Tensor, vneg: torch.Tensor, *, pos_weight, reduction: str):
    """BCE from the sigmoid kernel's sums: sum_(b,c) pw_c VPOS + VNEG, over C x valid voxels for "mean"."""
    pw = 1.0 if pos_weight is None else pos_weight.to(vpos).reshape(1, -1)
    total = (vpos * pw + vneg).sum()
    if reduction == "sum":
        return total
    return total / (stats.voxels.sum() * vpos.shape[1]).clamp_min(1.0)


def bce_with_logits_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    pos_weight: torch.Tensor | None = None,
    ignore_index: float | None = None,
    reduction: str = "mean",
    check_input: bool = True,
    options: TableOptions | None = None,
) -> torch.Tensor:
    """Binary cross-entropy on logits with an ignore mask; the arguments of :class:`medloss.losses.BCELoss`.

    ``options``: the loss's validated :func:`voxel_tables_options` (built from the keyword arguments when None).

    Returns:
        The loss: a scalar, or (B, C, *S) for ``reduction="none"``.
    """
    prepare.check_input_tensor(input)
    return bce_with_logits(input, target, pos_weight=pos_weight, ignore_index=ignore_index, reduction=reduction,
                           check_input=check_input, options=options)


def bce_with_logits(input: torch.Tensor, target: torch.Tensor, *, pos_weight: torch.Tensor | None,
                    ignore_index: float | None, reduction: str, check_input: bool,
                    options: TableOptions | None = None) -> torch.Tensor:
    """:func:`bce_with_logits_loss` of an input tensor its caller checked (a compound checks it once)."""
    if isinstance(target, torch.Tensor) and target.ndim == input.ndim - 1 and input.shape[1] == 1:
        target = target.unsqueeze(1)
    if not isinstance(target, torch.Tensor) or tuple(target.shape) != tuple(input.shape):
        shape = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__
        raise ShapeMismatchError(
            f"`target` has shape {shape} but `input` has {tuple(input.shape)}: BCE needs one target value per "
            "logit (a multi-class label map must be one-hot encoded, or use CrossEntropyLoss)."
        )
    # one kernel pass (element-wise ignore equals the kernel's voxel-wise one for one channel)
    path = tables_path("sigmoid", label_map=False, channels=input.shape[1])
    if path == "sigmoid" and reduction != "none" and (ignore_index is None or input.shape[1] == 1):
        if options is None:
            options = voxel_tables_options("bce", activation="sigmoid", ignore_index=ignore_index,
                                           check_input=check_input)
        tables = None if options is None else sigmoid_tables(input, target, options=options)
        if tables is not None:
            return bce_from_tables(*tables, pos_weight=pos_weight, reduction=reduction).to(input.dtype)
    x = input.to(prepare.compute_dtype(input))
    t = target.to(x)
    valid = None
    ignore_index = prepare.representable_ignore(ignore_index, target.dtype)
    if ignore_index is not None:
        ignored = target == ignore_index
        if bool(ignored.any()):
            valid = (~ignored).to(x)
            t = t.masked_fill(ignored, 0.0)
    if check_input:
        prepare.check_finite(input)
        prepare.check_bce_target(t)
    pw = None if pos_weight is None else pos_weight.to(x).reshape(-1, *([1] * (input.ndim - 2)))
    loss = F.binary_cross_entropy_with_logits(x, t, weight=valid, pos_weight=pw, reduction="none")
    if reduction == "mean":
        count = valid.sum() if valid is not None else torch.tensor(float(loss.numel()), dtype=x.dtype)
        loss = loss.sum() / count.clamp_min(1.0)
    elif reduction == "sum":
        loss = loss.sum()
    return loss.to(input.dtype)
