"""The input checks every layer shares: the engines (:mod:`medloss.backends`) word their errors with them, and the
functional layer's preamble (:mod:`medloss.functional.prepare`) runs them before anything is summed.

This module sits just above :mod:`medloss.errors` and imports nothing else of medloss, so the engines and the
formulas both use it without importing each other. Arithmetic runs in float32 (float64 for float64 input)
whatever the input dtype (:func:`compute_dtype`), so fp16/bf16 inputs neither overflow nor lose the sums.
"""
from __future__ import annotations

from typing import TypeVar

import torch

from medloss.errors import InputRangeError, InvalidOptionError, LabelValueError, OptionTypeError, ShapeMismatchError


def check_ignore_index(ignore_index: object) -> int | None:
    """``ignore_index`` as an int (or None); a bool, a non-integer or a value no int64 label can hold is refused."""
    if ignore_index is None:
        return None
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise OptionTypeError(f"`ignore_index` must be an int or None, got {ignore_index!r}.")
    if not -(2**63) <= ignore_index < 2**63:
        raise InvalidOptionError(
            f"`ignore_index`={ignore_index} does not fit in int64, so no label can hold it; use a label value such "
            "as 255 or -100."
        )
    return ignore_index


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 for float64 inputs, float32 for everything else (fp16, bf16, fp32)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32

def check_input_tensor(input: object, *, arg: str = "input") -> torch.Tensor:
    """Check that ``input`` is a floating (B, C, *S) tensor; raise a typed error naming ``arg`` otherwise."""
    if not isinstance(input, torch.Tensor):
        raise OptionTypeError(f"`{arg}` must be a torch.Tensor of shape (B, C, *spatial), got {type(input).__name__}.")
    if not input.is_floating_point():
        raise OptionTypeError(
            f"`{arg}` must be floating point (network logits or probabilities), got dtype {input.dtype}. "
            "Integer inputs usually mean argmax'd predictions were passed; pass the network output instead."
        )
    if input.ndim < 3:
        raise ShapeMismatchError(
            f"`{arg}` must have shape (B, C, *spatial) with at least one spatial axis, got {tuple(input.shape)}."
        )
    if input.device.type == "meta":
        raise OptionTypeError(
            f"`{arg}` is on the meta device: it has a shape but no values, so no loss can be computed; move the "
            "model and data to a real device (e.g. `model.to_empty(device='cpu')` and load the weights) first."
        )
    if input.numel() == 0:  # a mean over no voxel is undefined: refuse rather than return NaN or a silent 0
        raise ShapeMismatchError(
            f"`{arg}` of shape {tuple(input.shape)} has no elements (an empty batch or a zero-size axis): there is "
            "nothing to compute a loss over; skip empty batches before the loss."
        )
    return input

_INT64 = torch.iinfo(torch.int64)
_Ignore = TypeVar("_Ignore", int, float)

def representable_ignore(ignore_index: _Ignore | None, dtype: torch.dtype) -> _Ignore | None:
    """``ignore_index`` if labels of ``dtype`` can hold it exactly, else None: no label can equal it, so nothing is
    ignored (comparing would wrap it, e.g. -100 to 156 for uint8, and ignore a real label value)."""
    if ignore_index is None:
        return None
    if not _INT64.min <= ignore_index <= _INT64.max:
        return None
    if dtype.is_floating_point:
        return ignore_index if float(torch.tensor(ignore_index, dtype=dtype)) == ignore_index else None
    if dtype == torch.bool:
        return ignore_index if ignore_index in (0, 1) else None
    info = torch.iinfo(dtype)
    return ignore_index if info.min <= ignore_index <= info.max else None

def _unheld_hint(labels: torch.Tensor, ignore_index) -> str:
    """The advice for labels whose dtype cannot hold ``ignore_index`` (so a wrapped value was not ignored)."""
    if ignore_index is None or representable_ignore(ignore_index, labels.dtype) is not None:
        return ""
    return (
        f"; note: {labels.dtype} labels cannot hold ignore_index={ignore_index}, so no voxel is ignored: store the "
        "labels in a dtype that holds it (e.g. int64) or use an ignore value the dtype holds (e.g. 255 for uint8)"
    )

def check_finite(x: torch.Tensor, *, arg: str = "input") -> tuple[float, float]:
    """Return (min, max) of ``x``; raise :class:`InputRangeError` if it holds NaN or inf (one pass, no temporary)."""
    lo, hi = torch.aminmax(x.detach())
    lo_f, hi_f = float(lo), float(hi)
    if not (torch.isfinite(lo) and torch.isfinite(hi)):
        raise InputRangeError(
            f"`{arg}` contains NaN or infinite values (min {lo_f}, max {hi_f}); check the network output "
            "(e.g. a diverged training or fp16 overflow)."
        )
    return lo_f, hi_f

def check_labels(
    labels: torch.Tensor,
    num_classes: int | None,
    ignore_index: int | None,
    *,
    arg: str = "target",
    what: str = "labels must be class indices",
    non_integer_fix: str | None = "round them, or give a one-hot/soft target with one channel per class",
    range_fix: str = "the input has {num_classes} channels: check the number of output channels, or set "
    "`ignore_index` for unlabelled voxels",
    noun: str = "label values",
) -> None:
    """Labels (or any integer map: component ids, skeleton classes) must be finite integers in [0, num_classes)
    (>= 0 when ``num_classes`` is None) except where they equal ``ignore_index``.

    The messages name ``arg`` and say ``what`` the values must be; the ``*_fix`` texts end them (``range_fix`` may
    use ``{num_classes}``), so callers with another meaning of the values keep the same checks with their own
    advice.
    """
    if labels.numel() == 0:
        return
    lo, hi = torch.aminmax(labels.detach())
    if not (torch.isfinite(lo.double()) and torch.isfinite(hi.double())):
        raise LabelValueError(f"`{arg}` contains NaN or infinite values; {what}.")
    if labels.is_floating_point():
        fractional = labels != torch.round(labels)
        if bool(fractional.any()):
            example = float(labels[fractional].flatten()[0])
            fix = "" if non_integer_fix is None else f" ({non_integer_fix})"
            raise LabelValueError(f"`{arg}` holds non-integer value {example}: {what}{fix}.")
    if float(lo) >= 0 and (num_classes is None or float(hi) < num_classes):
        return
    outside = labels < 0 if num_classes is None else (labels < 0) | (labels >= num_classes)
    held = representable_ignore(ignore_index, labels.dtype)
    if held is not None:
        outside &= labels != held
    if bool(outside.any()):
        values = torch.unique(labels[outside])[:5].tolist()
        hint = "" if ignore_index is None else f" (ignore_index={ignore_index})"
        span = "below 0" if num_classes is None else f"outside [0, {num_classes})"
        raise LabelValueError(
            f"`{arg}` holds {noun} {values} {span}{hint}: "
            + range_fix.format(num_classes=num_classes) + _unheld_hint(labels, ignore_index) + "."
        )


def channels_fix(num_channels: int) -> str:
    """The end of a label-range error for ``num_channels`` input channels (one channel: the foreground of a binary
    problem, whose labels are 0 and 1)."""
    if num_channels == 1:
        return ("the input has 1 channel, the foreground of a binary problem (labels 0 and 1): give one channel per "
                "class, or set `ignore_index` for unlabelled voxels")
    return (f"the input has {num_channels} channels: check the number of output channels, or set `ignore_index` for "
            "unlabelled voxels")

def check_bce_target(t: torch.Tensor) -> None:
    """BCE targets (ignored voxels already zeroed) must lie in [0, 1]."""
    lo, hi = torch.aminmax(t.detach())
    if not (float(lo) >= 0 and float(hi) <= 1):
        raise LabelValueError(
            f"`target` values must lie in [0, 1], got min {float(lo):.4g}, max {float(hi):.4g}; "
            "set `ignore_index` for unlabelled voxels."
        )


def check_dense_values(t: torch.Tensor, soft_label: bool | None, dtype: torch.dtype) -> None:
    """A one-hot or soft target (ignored voxels already zeroed) must lie in [0, 1], and hold only 0 and 1 unless
    ``soft_label``. ``soft_label`` None: the loss has no such option (the error then does not advise it)."""
    lo, hi = torch.aminmax(t.detach().to(dtype))
    if not (torch.isfinite(lo) and torch.isfinite(hi)) or float(lo) < 0 or float(hi) > 1:
        raise LabelValueError(
            f"`target` one-hot/soft values must lie in [0, 1], got min {float(lo):.4g}, max {float(hi):.4g}; "
            "for a label map pass `to_onehot_y=True`."
        )
    if not soft_label and bool(((t != 0) & (t != 1)).any()):
        raise LabelValueError(
            "`target` holds fractional values but `soft_label=False`; set `soft_label=True` for soft targets."
            if soft_label is False else
            "`target` holds fractional values but this loss takes hard targets (0 or 1 in every channel): "
            "threshold or argmax a soft target first."
        )
