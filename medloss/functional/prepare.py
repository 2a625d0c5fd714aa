"""The one preamble shared by every loss: validation, activation, label maps, ignore masks, fp32 upcast.

Every loss in medloss goes through the functions here before any statistic is summed, so a bad input gets the
same typed, explanatory error whichever loss it reaches (see :mod:`medloss.errors`).

Conventions (MONAI's):
    input:  (B, C, *S) logits (with ``sigmoid``/``softmax``/``other_act``) or probabilities.
    target: (B, 1, *S) or (B, *S) label map (``to_onehot_y=True``), or (B, C, *S) one-hot / soft target.

Inside medloss everything is flattened to (B, C, N) with N = prod(S). Arithmetic runs in float32 (float64 when the
input is float64), whatever the input dtype, so fp16/bf16 inputs outside autocast neither overflow (float16 ends at
65504) nor lose the sums (a half-precision sum over a volume stops growing once one voxel is below its rounding step).
"""
from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

from medloss.checks import (  # noqa: F401  (the shared checks, re-exported: the losses call them from here)
    channels_fix,
    check_bce_target,
    check_dense_values,
    check_finite,
    check_ignore_index,
    check_input_tensor,
    check_labels,
    compute_dtype,
    representable_ignore,
)
from medloss.errors import InputRangeError, InvalidOptionError, LabelValueError, OptionTypeError, ShapeMismatchError

Activation = Callable[[torch.Tensor], torch.Tensor]


def check_activation_options(sigmoid: bool, softmax: bool, other_act: Activation | None) -> None:
    """At most one of ``sigmoid``, ``softmax``, ``other_act`` may be set (checked in every ``__init__``)."""
    if int(bool(sigmoid)) + int(bool(softmax)) + int(other_act is not None) > 1:
        raise InvalidOptionError(
            "`sigmoid`, `softmax` and `other_act` are mutually exclusive: set only one "
            f"(got sigmoid={sigmoid}, softmax={softmax}, other_act={other_act!r})."
        )
    if other_act is not None and not callable(other_act):
        raise OptionTypeError(f"`other_act` must be callable (e.g. torch.tanh), got {type(other_act).__name__}.")


def activation_of(*, sigmoid: bool = False, softmax: bool = False) -> str | None:
    """The activation flags as the one name the package passes on: ``"softmax"``, ``"sigmoid"`` or None."""
    return "softmax" if softmax else "sigmoid" if sigmoid else None


def activate(
    input: torch.Tensor,
    *,
    activation: str | None = None,
    other_act: Activation | None = None,
    check_input: bool = True,
) -> torch.Tensor:
    """Return probabilities (B, C, N) in the compute dtype, by ``activation`` (``"softmax"``, ``"sigmoid"``; None:
    ``other_act``, or probabilities as given, checked in [0, 1])."""
    x = input.to(compute_dtype(input))
    if activation == "softmax":
        if x.shape[1] == 1:
            raise InvalidOptionError(
                "`softmax=True` with a single input channel gives probability 1 everywhere; "
                "use `sigmoid=True` for binary segmentation with one channel."
            )
        return torch.softmax(x, dim=1)
    if activation == "sigmoid":
        return torch.sigmoid(x)
    if other_act is not None:
        return other_act(x)
    if check_input:
        lo, hi = check_finite(input)
        if lo < 0.0 or hi > 1.0:
            raise InputRangeError(
                f"`input` has values outside [0, 1] (min {lo:.4g}, max {hi:.4g}) but no activation is set: "
                "these look like logits. Pass `softmax=True` (mutually exclusive classes) or `sigmoid=True` "
                "(independent channels), or give probabilities."
            )
    return x


def flatten(x: torch.Tensor) -> torch.Tensor:
    """(B, C, *S) -> (B, C, N) (a view when possible)."""
    return x.reshape(x.shape[0], x.shape[1], -1)


LABEL_MAP_ONLY = ("this loss takes class indices: pass the label map "
                  "(e.g. `target.argmax(1, keepdim=True)` of a one-hot)")


def label_map(
    target: torch.Tensor,
    input: torch.Tensor,
    *,
    arg: str = "target",
    channels_fix: str = "if the target is already one-hot, set `to_onehot_y=False`",
) -> torch.Tensor:
    """Return ``target`` as a (B, 1, *S) label map, accepting (B, 1, *S) or (B, *S) as MONAI and torch pass it.

    ``channels_fix`` ends the message for a target with several channels (losses without ``to_onehot_y`` give
    their own)."""
    if not isinstance(target, torch.Tensor):
        raise OptionTypeError(f"`{arg}` must be a torch.Tensor, got {type(target).__name__}.")
    spatial = tuple(input.shape[2:])
    if target.ndim == input.ndim - 1 and tuple(target.shape[1:]) == spatial and target.shape[0] == input.shape[0]:
        target = target.unsqueeze(1)
    if target.ndim != input.ndim or target.shape[0] != input.shape[0] or tuple(target.shape[2:]) != spatial:
        raise ShapeMismatchError(
            f"`{arg}` of shape {tuple(target.shape)} does not match `input` of shape {tuple(input.shape)}: "
            f"expected a label map (B, 1, *S) or (B, *S) with B={input.shape[0]} and S={spatial}."
        )
    if target.shape[1] != 1:
        raise ShapeMismatchError(
            f"`{arg}` has {target.shape[1]} channels but a (B, 1, *S) label map is expected here; {channels_fix}."
        )
    return target


def labels_and_mask(
    target: torch.Tensor, input: torch.Tensor, *, ignore_index: int | None, check_input: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Label map -> (labels (B, 1, N) int64 with ignored voxels set to 0, valid (B, 1, N) or None).

    ``valid`` is 1 where the voxel counts and 0 where ``target == ignore_index``; it is in the compute dtype.
    """
    target = label_map(target, input)
    num_classes = input.shape[1]
    if check_input:
        check_labels(target, max(num_classes, 2), ignore_index, range_fix=channels_fix(num_classes))
    labels = target.reshape(target.shape[0], 1, -1)
    valid = None
    ignore_index = representable_ignore(ignore_index, labels.dtype)
    if ignore_index is not None:
        ignored = labels == ignore_index
        if bool(ignored.any()):
            valid = (~ignored).to(compute_dtype(input))
            labels = labels.masked_fill(ignored, 0)
    if labels.dtype != torch.int64:
        labels = labels.long()
    return labels, valid


def dense_target(
    target: torch.Tensor,
    input: torch.Tensor,
    *,
    to_onehot_y: bool,
    ignore_index: int | None,
    soft_label: bool | None,
    check_input: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Return (target (B, C, N) float one-hot/soft, valid (B, 1, N) or None) in the compute dtype.

    ``soft_label`` None: the loss has no ``soft_label`` option and takes hard targets (the error then says so,
    instead of advising an option the caller cannot set)."""
    num_classes = input.shape[1]
    dtype = compute_dtype(input)
    if to_onehot_y:
        labels, valid = labels_and_mask(target, input, ignore_index=ignore_index, check_input=check_input)
        if num_classes == 1:  # a single foreground channel: the {0, 1} label map is its own one-hot
            return labels.to(dtype), valid
        onehot = torch.zeros(labels.shape[0], num_classes, labels.shape[2], dtype=dtype, device=labels.device)
        return onehot.scatter_(1, labels, 1.0), valid
    if not isinstance(target, torch.Tensor):
        raise OptionTypeError(f"`target` must be a torch.Tensor, got {type(target).__name__}.")
    if tuple(target.shape) != tuple(input.shape):
        hint = (
            "; for a (B, 1, ...) label map pass `to_onehot_y=True`"
            if target.ndim == input.ndim and target.shape[1] == 1 and num_classes > 1
            else ""
        )
        raise ShapeMismatchError(
            f"`target` has shape {tuple(target.shape)} but `input` has {tuple(input.shape)}: a one-hot target "
            f"needs {num_classes} channels{hint}."
        )
    t = flatten(target)
    valid = None
    ignore_index = representable_ignore(ignore_index, t.dtype)
    if ignore_index is not None:
        ignored = (t == ignore_index).any(dim=1, keepdim=True)
        if bool(ignored.any()):
            valid = (~ignored).to(dtype)
            t = t.masked_fill(ignored, 0)
    if check_input:
        check_dense_values(t, soft_label, dtype)
    return t.to(dtype), valid


def warn_single_channel(option: str) -> None:
    """MONAI's warning (same text) for an option that has no effect on a one-channel input."""
    warnings.warn(f"single channel prediction, `{option}` ignored.", stacklevel=3)


def warn_onehot_single_channel(input: torch.Tensor, to_onehot_y: bool) -> None:
    """``to_onehot_y=True`` with one input channel: the {0, 1} label map is used as the target, with MONAI's warning."""
    if to_onehot_y and input.shape[1] == 1:
        warn_single_channel("to_onehot_y=True")


def target_labels(
    target: torch.Tensor,
    input: torch.Tensor,
    *,
    to_onehot_y: bool,
    ignore_index: int | None,
    check_input: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Class indices (B, 1, N) and validity mask for losses with a voxel term on the labelled class.

    A label map (``to_onehot_y=True``) is used as is; a hard one-hot (B, C, *S) target is turned into indices
    (argmax). Soft targets have no single label per voxel and raise :class:`LabelValueError`.
    """
    if to_onehot_y or input.shape[1] == 1:
        return labels_and_mask(target, input, ignore_index=ignore_index, check_input=check_input)
    onehot, valid = dense_target(
        target, input, to_onehot_y=False, ignore_index=ignore_index, soft_label=None, check_input=check_input
    )
    if check_input:
        sums = onehot.sum(dim=1, keepdim=True)
        bad = sums != 1 if valid is None else (sums != 1) & (valid > 0)
        if bool(bad.any()):
            raise LabelValueError(
                "`target` must be one-hot (exactly one channel = 1 per voxel) for this loss; pass a (B, 1, *S) "
                "label map with `to_onehot_y=True`."
            )
    return onehot.argmax(dim=1, keepdim=True), valid


def label_log_prob(
    input: torch.Tensor, labels: torch.Tensor, *, softmax: bool, sigmoid: bool, check_input: bool
) -> torch.Tensor:
    """log p_y (B, 1, N) of the labelled class, in the compute dtype.

    softmax: log_softmax over channels; sigmoid (one channel, binary): log sigmoid(+-x); neither: log of the given
    probabilities (checked to lie in [0, 1]); one channel of them is the foreground's (binary: p for label 1,
    1 - p for label 0, as the sigmoid case).
    """
    x = flatten(input.to(compute_dtype(input)))
    if softmax:
        return torch.log_softmax(x, dim=1).gather(1, labels)
    if sigmoid:
        if x.shape[1] != 1:
            raise InvalidOptionError(
                "`sigmoid=True` here supports one channel (binary: class 1 = foreground); for C > 1 mutually "
                "exclusive classes use `softmax=True`."
            )
        sign = labels.to(x.dtype).mul(2).sub(1)
        return torch.nn.functional.logsigmoid(sign * x)
    p = flatten(activate(input, check_input=check_input))
    if p.shape[1] == 1:
        p = torch.cat([1.0 - p, p], dim=1)
    return torch.log(p.gather(1, labels))
