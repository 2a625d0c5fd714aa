"""Shared shells of the loss modules: option validation in ``__init__``, nothing else.

Modules never compute: ``forward`` calls one function of :mod:`medloss.functional` with the stored options.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn.modules.loss import _Loss

from medloss.errors import InvalidOptionError, OptionTypeError
from medloss.functional import prepare, reduce
from medloss.functional.region import check_region_options


def check_ignore_index(ignore_index: object) -> int | None:
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


class MedlossLoss(_Loss):
    """Base of every medloss loss: a ``torch.nn.modules.loss._Loss`` with a validated ``reduction``."""

    def __init__(self, reduction: str = "mean", check_input: bool = True) -> None:
        super().__init__(reduction=reduce.check_reduction(reduction))
        self.check_input = bool(check_input)


class RegionLoss(MedlossLoss):
    """Base of the region losses: validates and stores the options shared with :func:`region_stats`."""

    def __init__(
        self,
        *,
        include_background: bool,
        to_onehot_y: bool,
        sigmoid: bool,
        softmax: bool,
        other_act: Callable[[torch.Tensor], torch.Tensor] | None,
        reduction: str,
        smooth_nr: float,
        smooth_dr: float,
        batch: bool,
        soft_label: bool | None,
        ignore_index: int | None,
        check_input: bool,
    ) -> None:
        super().__init__(reduction=reduction, check_input=check_input)
        prepare.check_activation_options(sigmoid, softmax, other_act)
        check_region_options(smooth_nr=smooth_nr, smooth_dr=smooth_dr)
        self.include_background = bool(include_background)
        self.to_onehot_y = bool(to_onehot_y)
        self.sigmoid = bool(sigmoid)
        self.softmax = bool(softmax)
        self.other_act = other_act
        self.smooth_nr = float(smooth_nr)
        self.smooth_dr = float(smooth_dr)
        self.batch = bool(batch)
        self.soft_label = None if soft_label is None else bool(soft_label)  # None: the loss has no such option
        self.ignore_index = check_ignore_index(ignore_index)

    def region_options(self) -> dict:
        """The keyword arguments of :func:`medloss.functional.region_stats`, plus reduction and smoothing."""
        return dict(
            include_background=self.include_background, to_onehot_y=self.to_onehot_y, sigmoid=self.sigmoid,
            softmax=self.softmax, other_act=self.other_act, batch=self.batch, soft_label=self.soft_label,
            ignore_index=self.ignore_index, check_input=self.check_input, reduction=self.reduction,
            smooth_nr=self.smooth_nr, smooth_dr=self.smooth_dr,
        )
