"""Shared shells of the loss modules: option validation in ``__init__``, nothing else.

Modules never compute: ``forward`` calls one function of :mod:`medloss.functional` with the stored options.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn.modules.loss import _Loss

from medloss.checks import check_ignore_index  # noqa: F401  (re-exported: the losses' one ignore_index check)
from medloss.functional import reduce
from medloss.functional.region_options import RegionOptions


class MedlossLoss(_Loss):
    """Base of every medloss loss: a ``torch.nn.modules.loss._Loss`` with a validated ``reduction``."""

    def __init__(self, reduction: str = "mean", check_input: bool = True) -> None:
        super().__init__(reduction=reduce.check_reduction(reduction))
        self.check_input = bool(check_input)


class ActivationFlags:
    """MONAI's ``sigmoid`` / ``softmax`` flags, read back (read-only) from the one value a loss holds its activation
    as: ``activation``, ``"softmax"``, ``"sigmoid"`` or None (:func:`medloss.functional.prepare.activation_of`)."""

    activation: str | None
    sigmoid = property(lambda self: self.activation == "sigmoid")
    softmax = property(lambda self: self.activation == "softmax")


class RegionLoss(MedlossLoss):
    """Base of the region losses: their shared options (MONAI's names), validated once into one frozen
    :class:`~medloss.functional.region_options.RegionOptions` that ``forward`` hands whole to the functional layer.
    ``extra`` holds a loss's own region options (e.g. ``squared_pred``, ``jaccard``). Losses without smoothing,
    ``batch`` or ``soft_label`` (clDice, blob, the distance losses, Lovász) leave them at their defaults."""

    def __init__(
        self,
        *,
        include_background: bool,
        to_onehot_y: bool,
        sigmoid: bool,
        softmax: bool,
        other_act: Callable[[torch.Tensor], torch.Tensor] | None,
        reduction: str,
        ignore_index: int | None,
        check_input: bool,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        soft_label: bool | None = None,
        **extra: bool | float | str | None,
    ) -> None:
        super().__init__(reduction=reduction, check_input=check_input)
        self.options = RegionOptions.from_flags(
            include_background=include_background, to_onehot_y=to_onehot_y, sigmoid=sigmoid, softmax=softmax,
            other_act=other_act, smooth_nr=smooth_nr, smooth_dr=smooth_dr, batch=batch, soft_label=soft_label,
            ignore_index=ignore_index, check_input=check_input, **extra,
        )

    def region_options(self) -> dict:
        """The keyword arguments of the functional region losses: the options object and the reduction."""
        return dict(options=self.options, reduction=self.reduction)

    def activation_kwargs(self) -> dict:
        """The options every region-type functional loss takes by MONAI's names (for those that take keywords)."""
        return dict(include_background=self.include_background, to_onehot_y=self.to_onehot_y, sigmoid=self.sigmoid,
                    softmax=self.softmax, other_act=self.other_act, ignore_index=self.ignore_index,
                    reduction=self.reduction, check_input=self.check_input)

    # MONAI's option names, read from the options object (one copy of each value)
    activation = property(lambda self: self.options.activation)
    include_background = property(lambda self: self.options.include_background)
    to_onehot_y = property(lambda self: self.options.to_onehot_y)
    sigmoid = property(lambda self: self.options.activation == "sigmoid")
    softmax = property(lambda self: self.options.activation == "softmax")
    other_act = property(lambda self: self.options.other_act)
    smooth_nr = property(lambda self: self.options.smooth_nr)
    smooth_dr = property(lambda self: self.options.smooth_dr)
    batch = property(lambda self: self.options.batch)
    soft_label = property(lambda self: self.options.soft_label)
    ignore_index = property(lambda self: self.options.ignore_index)
