"""The single reduction of medloss: ``"mean"``, ``"sum"`` or ``"none"`` over a (B, C) table of per-class losses, and
MONAI's focal reductions over (B, C, N) element losses (:func:`reduce_voxels`)."""
from __future__ import annotations

import torch

from medloss.errors import InvalidOptionError, OptionTypeError, ShapeMismatchError, check_choice

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: object) -> str:
    """Validate a ``reduction`` string (did-you-mean on typos)."""
    return check_choice("reduction", reduction, REDUCTIONS)


def class_weight_tensor(weight: object, *, arg: str = "weight") -> torch.Tensor | None:
    """Turn a scalar / sequence / tensor of non-negative class weights into a 0-d or 1-d float tensor (or None)."""
    if weight is None:
        return None
    try:
        w = torch.as_tensor(weight, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise OptionTypeError(f"`{arg}` must be a number or a sequence of numbers, got {weight!r}.") from exc
    if w.ndim > 1:
        raise InvalidOptionError(f"`{arg}` must be a scalar or a 1-D sequence (one value per class), got {w.ndim}-D.")
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise InvalidOptionError(f"`{arg}` values must be finite and >= 0, got {w.tolist()}.")
    return w


def apply_class_weight(loss: torch.Tensor, weight: torch.Tensor | None, *, arg: str = "weight") -> torch.Tensor:
    """Multiply a (B, C) table by per-class weights (C,) or a scalar."""
    if weight is None:
        return loss
    if weight.ndim == 1 and weight.numel() != loss.shape[1]:
        raise ShapeMismatchError(
            f"`{arg}` has {weight.numel()} values but the loss has {loss.shape[1]} classes; "
            "with include_background=False the weights must not include class 0."
        )
    return loss * weight.to(loss)


def reduce_table(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce a (B, C) table of per-sample, per-class losses: mean or sum over all entries, or return it."""
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def reduce_voxels(loss: torch.Tensor, valid: torch.Tensor | None, reduction: str, input: torch.Tensor
                  ) -> torch.Tensor:
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
