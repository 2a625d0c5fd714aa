"""Voxel-wise losses: cross-entropy, binary cross-entropy with logits, focal (sigmoid and softmax).

The math, defaults and papers are documented on the module classes (:class:`medloss.losses.CrossEntropyLoss`,
:class:`medloss.losses.BCELoss`, :class:`medloss.losses.FocalLoss`). Computation runs in float32 (float64 for
float64 input); the result is returned in the input's dtype.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from medloss.errors import InvalidOptionError, LabelValueError, ShapeMismatchError
from medloss.functional import prepare


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
) -> torch.Tensor:
    """Cross-entropy with torch's semantics on (B, C, *S) logits. See :class:`medloss.losses.CrossEntropyLoss`."""
    prepare.check_input_tensor(input)
    num_classes = input.shape[1]
    if num_classes < 2:
        raise ShapeMismatchError(
            f"`input` has 1 channel: cross-entropy needs one logit per class (C >= 2). For a binary problem with "
            "one output channel use BCELoss; if `input` is an argmax'd label map, pass the network logits instead."
        )
    if check_input:
        prepare.check_finite(input)
    x = input.to(prepare.compute_dtype(input))
    w = None if weight is None else weight.to(x)
    if w is not None and w.ndim == 1 and w.numel() != num_classes:
        raise ShapeMismatchError(f"`weight` has {w.numel()} values but `input` has {num_classes} classes.")
    if not isinstance(target, torch.Tensor):
        prepare.label_map(target, input)  # raises the typed error
    if _soft_target(target, input):
        if check_input:
            lo, hi = torch.aminmax(target.detach())
            if float(lo) < 0 or float(hi) > 1:
                raise LabelValueError(
                    f"`target` probabilities must lie in [0, 1], got min {float(lo):.4g}, max {float(hi):.4g}."
                )
        loss = F.cross_entropy(x, target.to(x), weight=w, reduction=reduction, label_smoothing=label_smoothing)
        return loss.to(input.dtype)
    labels = prepare.label_map(target, input)
    if check_input:
        prepare.check_labels(labels, num_classes, ignore_index)
    labels = labels[:, 0].long()
    ignore = -100 if ignore_index is None else int(ignore_index)
    loss = F.cross_entropy(
        x, labels, weight=w, ignore_index=ignore, reduction=reduction, label_smoothing=label_smoothing
    )
    return loss.to(input.dtype)


def bce_with_logits_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    pos_weight: torch.Tensor | None = None,
    ignore_index: float | None = None,
    reduction: str = "mean",
    check_input: bool = True,
) -> torch.Tensor:
    """Binary cross-entropy on logits with an ignore mask. See :class:`medloss.losses.BCELoss`."""
    prepare.check_input_tensor(input)
    if isinstance(target, torch.Tensor) and target.ndim == input.ndim - 1 and input.shape[1] == 1:
        target = target.unsqueeze(1)
    if not isinstance(target, torch.Tensor) or tuple(target.shape) != tuple(input.shape):
        shape = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__
        raise ShapeMismatchError(
            f"`target` has shape {shape} but `input` has {tuple(input.shape)}: BCE needs one target value per "
            "logit (a multi-class label map must be one-hot encoded, or use CrossEntropyLoss)."
        )
    x = input.to(prepare.compute_dtype(input))
    t = target.to(x)
    valid = None
    if ignore_index is not None:
        ignored = target == ignore_index
        if bool(ignored.any()):
            valid = (~ignored).to(x)
            t = t.masked_fill(ignored, 0.0)
    if check_input:
        prepare.check_finite(input)
        lo, hi = torch.aminmax(t.detach())
        if float(lo) < 0 or float(hi) > 1:
            raise LabelValueError(
                f"`target` values must lie in [0, 1], got min {float(lo):.4g}, max {float(hi):.4g}; "
                "set `ignore_index` for unlabelled voxels."
            )
    pw = None if pos_weight is None else pos_weight.to(x).reshape(-1, *([1] * (input.ndim - 2)))
    loss = F.binary_cross_entropy_with_logits(x, t, weight=valid, pos_weight=pw, reduction="none")
    if reduction == "mean":
        count = valid.sum() if valid is not None else torch.tensor(float(loss.numel()), dtype=x.dtype)
        loss = loss.sum() / count.clamp_min(1.0)
    elif reduction == "sum":
        loss = loss.sum()
    return loss.to(input.dtype)


def _alpha_factor(alpha, t: torch.Tensor, *, softmax: bool) -> torch.Tensor | None:
    """MONAI's alpha convention: scalar -> alpha on positives / (1 - alpha) elsewhere (sigmoid) or on class 0
    (softmax); a sequence -> one alpha per class, applied to positives."""
    if alpha is None:
        return None
    a = torch.as_tensor(alpha, dtype=t.dtype, device=t.device)
    num_classes = t.shape[1]
    if a.ndim == 0:
        if softmax:
            return torch.cat([1 - a.view(1), a.view(1).expand(num_classes - 1)]).view(1, -1, 1)
        return t * a + (1 - t) * (1 - a)
    if a.numel() != num_classes:
        raise ShapeMismatchError(f"`alpha` has {a.numel()} values but `input` has {num_classes} classes.")
    a = a.view(1, -1, 1)
    return a if softmax else torch.where(t == 1, a, torch.ones_like(a))


def focal_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    include_background: bool = True,
    to_onehot_y: bool = False,
    gamma: float = 2.0,
    alpha: float | torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
    use_softmax: bool = False,
    ignore_index: int | None = None,
    check_input: bool = True,
) -> torch.Tensor:
    """Sigmoid or softmax focal loss on logits. See :class:`medloss.losses.FocalLoss`."""
    prepare.check_input_tensor(input)
    if use_softmax and input.shape[1] == 1:
        raise InvalidOptionError("`use_softmax=True` needs C >= 2 channels; use the sigmoid focal loss for C = 1.")
    if check_input:
        prepare.check_finite(input)
    t, valid = prepare.dense_target(
        target, input, to_onehot_y=to_onehot_y, ignore_index=ignore_index, soft_label=True, check_input=check_input
    )
    x = prepare.flatten(input.to(t.dtype))
    if use_softmax:
        log_p = torch.log_softmax(x, dim=1)
        loss = -(1 - log_p.exp()).pow(gamma) * log_p * t
    else:
        bce = x - x * t - F.logsigmoid(x)  # = BCE with logits, stable
        loss = (F.logsigmoid(-x * (2 * t - 1)) * gamma).exp() * bce
    factor = _alpha_factor(alpha, t, softmax=use_softmax)
    if factor is not None:
        loss = loss * factor
    if not include_background:
        if input.shape[1] == 1:
            prepare.warn_single_channel("include_background=False")
        else:
            loss = loss[:, 1:]
    if weight is not None:
        w = weight.to(loss)
        if w.ndim == 1 and w.numel() != loss.shape[1]:
            raise ShapeMismatchError(
                f"`weight` has {w.numel()} values but the loss has {loss.shape[1]} classes; "
                "with include_background=False the weights must not include class 0."
            )
        loss = loss * (w.view(1, -1, 1) if w.ndim == 1 else w)
    if valid is not None:
        loss = loss * valid
    return _reduce_voxels(loss, valid, reduction, input).to(input.dtype)


def _reduce_voxels(loss: torch.Tensor, valid: torch.Tensor | None, reduction: str, input: torch.Tensor):
    """(B, C, N) element losses -> MONAI's focal reductions, with ignored voxels in no denominator.

    mean: sum / (C * valid voxels); sum: per (b, c) the mean over valid voxels, summed (MONAI's "sum");
    none: (B, C, *S) element losses (0 at ignored voxels).
    """
    if reduction == "none":
        return loss.reshape(loss.shape[0], loss.shape[1], *input.shape[2:])
    count = loss.shape[2] if valid is None else valid.sum(dim=2, keepdim=True).clamp_min(1.0)
    if reduction == "sum":
        return (loss.sum(dim=2, keepdim=True) / count).sum()
    if valid is None:
        return loss.mean()
    return loss.sum() / (valid.sum() * loss.shape[1]).clamp_min(1.0)
