"""Compounds: a region formula on :func:`region_stats` plus a voxel term (Dice + CE, Dice + focal, GDL + focal,
BCE + Dice); the paper losses (ExpLog, AnatomyNet) are in :mod:`medloss.functional.explog_anatomynet`.

The math, defaults and papers are documented on the module classes (:class:`medloss.losses.DiceCELoss`, ...).
For label-map targets both terms come from one pass over the tables (no one-hot tensor).
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch

from medloss.backends.options import TableOptions
from medloss.errors import InvalidOptionError, ShapeMismatchError, check_choice
from medloss.functional import prepare
from medloss.functional import reduce as _reduce
from medloss.functional.focal import (
    focal,
    sigmoid_focal_from_tables,
    softmax_alpha,
    softmax_focal_from_tables,
    tables_take_alpha,
)
from medloss.functional.fused import fused_loss, region_spec
from medloss.functional.region import (
    apply_dice_weight,
    dice_from_stats,
    generalized_dice_from_stats,
)
from medloss.functional.region_options import RegionOptions
from medloss.functional.stats import (
    RegionStats,
    finish_stats,
    label_map_tables,
    sigmoid_tables,
    stats_for,
    tables_path,
)
from medloss.functional.voxel import bce_from_tables, bce_with_logits, ce_from_tables, cross_entropy

COMPOUND_REDUCTIONS = ("mean", "sum")


def _get(options: RegionOptions | dict, key: str, default=None):
    """A region option of a compound by name, from its options object or (Dice + focal) its dict."""
    return options.get(key, default) if isinstance(options, dict) else getattr(options, key, default)


def _path(input: torch.Tensor, options: RegionOptions | dict) -> str | None:
    """The table operator's pass for a compound's region options (:func:`tables_path`)."""
    activation = (options.activation if isinstance(options, RegionOptions) else
                  prepare.activation_of(sigmoid=options.get("sigmoid", False), softmax=options.get("softmax", False)))
    return tables_path(activation, label_map=_get(options, "to_onehot_y", False), channels=input.shape[1])


def compound_options(dice_options: RegionOptions | dict, *, ignore_index, check_input: bool,
                     voxel_terms: dict, gamma: float = 0.0) -> RegionOptions:
    """A compound's Dice options: the loss's validated object, or (a direct call) built from the dict of region
    options and validated here; ``voxel_terms``: activation -> the voxel term the fused pass sums with them (exponent
    ``gamma``)."""
    if isinstance(dice_options, RegionOptions):
        return dice_options
    activation = prepare.activation_of(sigmoid=dice_options.get("sigmoid", False),
                                       softmax=dice_options.get("softmax", False))
    return RegionOptions.from_flags(**dice_options, ignore_index=ignore_index, check_input=check_input,
                                    voxel_term=voxel_terms.get(activation), gamma=gamma)


def _dice_on_tables(stats: RegionStats, options: RegionOptions | dict, weight, reduction: str) -> torch.Tensor:
    """The Dice term of a compound from the all-class tables of the fused pass."""
    return dice_term(finish_stats(stats, include_background=_get(options, "include_background"),
                                   batch=_get(options, "batch")), options, weight, reduction)


def dice_term(kept: RegionStats, options: RegionOptions | dict, weight, reduction: str) -> torch.Tensor:
    """The reduced Dice term from the tables of the scored classes."""
    loss = dice_from_stats(kept, jaccard=_get(options, "jaccard", False), smooth_nr=_get(options, "smooth_nr"),
                           smooth_dr=_get(options, "smooth_dr"))
    return _reduce.reduce_table(apply_dice_weight(loss, weight), reduction)


def dense_dice_term(input: torch.Tensor, target: torch.Tensor, options: RegionOptions, weight,
                    reduction: str) -> torch.Tensor:
    """The reduced Dice term of a compound computed on its own (not fused with the voxel term)."""
    return dice_term(stats_for(input, target, options), options, weight, reduction)


def weighted_sum(input: torch.Tensor, terms: Sequence[tuple[float, Callable[[], torch.Tensor]]]) -> torch.Tensor:
    """A compound's terms computed apart: the sum of ``lam * term()`` in order, in the compute dtype, over the terms
    whose weight ``lam`` is not 0 (a term weighted 0 is not computed, so it neither costs nor checks anything)."""
    total = input.new_zeros((), dtype=prepare.compute_dtype(input))
    for lam, term in terms:
        if lam:
            total = total + lam * term()
    return total


def _finish(stats: RegionStats, options: RegionOptions) -> RegionStats:
    """The scored classes' tables from the all-class tables of a fused pass."""
    return finish_stats(stats, include_background=options.include_background, batch=options.batch)


def _region_term(kept: RegionStats, *, options: RegionOptions, generalized: bool, weight: torch.Tensor | None,
                 w_type: str, empty: str, reduction: str) -> torch.Tensor:
    """The reduced Dice (``weight``) or Generalized Dice (``w_type``, ``empty``) term of DiceFocal."""
    if not generalized:
        return dice_term(kept, options, weight, reduction)
    return _reduce.reduce_table(generalized_dice_from_stats(
        kept, w_type=w_type, empty=empty, smooth_nr=options.smooth_nr, smooth_dr=options.smooth_dr), reduction)


def check_compound_reduction(reduction: str, name: str, *, elementwise: bool = False) -> str:
    """"mean"/"sum" for a compound; "none" too when ``elementwise`` (Dice + focal: the (B, C') region table is
    broadcast over the focal term's (B, C', *S) elements, as MONAI's DiceFocalLoss). DiceCE has no unreduced form
    (its CE term has no channel axis), as in MONAI."""
    if reduction == "none" and not elementwise:
        raise InvalidOptionError(
            f"`reduction='none'` is not defined for {name}: its region term is per class (B, C) and its voxel term "
            "per voxel without a class axis. Use 'mean' or 'sum', or the component losses for unreduced values."
        )
    return check_choice("reduction", reduction, COMPOUND_REDUCTIONS + (("none",) if elementwise else ()))


def dice_ce_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    lambda_dice: float = 1.0,
    lambda_ce: float = 1.0,
    weight: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    ignore_index: int | None = None,
    reduction: str = "mean",
    dice_options: RegionOptions | dict,
    check_input: bool = True,
    ce_options: TableOptions | None = None,
    bce_options: TableOptions | None = None,
) -> torch.Tensor:
    """lambda_dice Dice + lambda_ce CE (BCE with logits for one channel). See :class:`medloss.losses.DiceCELoss`.
    ``dice_options``: the Dice term's region options (a dict; or a loss's validated :class:`RegionOptions`, which
    then also holds ``ignore_index`` and ``check_input``); ``ce_options``, ``bce_options``: the loss's
    :func:`voxel_tables_options` of the CE (BCE) term when it is computed alone (built per call when None)."""
    prepare.check_input_tensor(input)
    opts = compound_options(dice_options, ignore_index=ignore_index, check_input=check_input,
                            voxel_terms={"softmax": "ce"})
    ignore_index, check_input = opts.ignore_index, opts.check_input
    # the CE weight covers every class; Dice scores class 0 only with include_background (MONAI's convention)
    # (a scalar weight weighs every class alike)
    keep_all = weight is None or weight.ndim == 0 or opts.include_background
    dice_weight = weight if keep_all or weight is None else weight[1:]
    if _path(input, opts) == "softmax" and label_smoothing == 0.0 and lambda_dice and lambda_ce:
        spec = region_spec("dice", opts, reduction, weighted=weight is not None, lam_region=lambda_dice,
                           lam_voxel=lambda_ce)
        if (fused := fused_loss(input, target, opts.compound_tables, spec)) is not None:
            return fused
        stats, vox = label_map_tables(input, target, options=opts.compound_tables)
        dice = _dice_on_tables(stats, opts, dice_weight, reduction)
        ce = ce_from_tables(stats, vox, weight, reduction)
        return (lambda_dice * dice + lambda_ce * ce).to(input.dtype)

    def ce_alone() -> torch.Tensor:
        if input.shape[1] == 1:
            return bce_with_logits(
                input, target.to(input.dtype) if not target.is_floating_point() else target, pos_weight=weight,
                ignore_index=ignore_index, reduction=reduction, check_input=check_input, options=bce_options,
            )
        if not opts.to_onehot_y and target.shape[1] == input.shape[1]:
            ce_target = target.to(prepare.compute_dtype(input))  # one-hot / soft target: probabilities
        else:
            ce_target = target
        return cross_entropy(
            input, ce_target, weight=weight, ignore_index=ignore_index, reduction=reduction,
            label_smoothing=label_smoothing, check_input=check_input, options=ce_options,
        )

    return weighted_sum(input, [
        (lambda_dice, lambda: dense_dice_term(input, target, opts, dice_weight, reduction)), (lambda_ce, ce_alone),
    ]).to(input.dtype)


def dice_focal_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    lambda_dice: float = 1.0,
    lambda_focal: float = 1.0,
    generalized: bool = False,
    region_options: RegionOptions | dict,
    focal_options: dict,
    dice_weight: torch.Tensor | None = None,
    w_type: str = "square",
    empty: str = "penalize",
    reduction: str = "mean",
    ignore_index: int | None = None,
    check_input: bool = True,
) -> torch.Tensor:
    """lambda_dice (Generalized) Dice + lambda_focal focal. See :class:`medloss.losses.DiceFocalLoss`.

    ``region_options``: a loss's validated :class:`RegionOptions` (which then also holds ``ignore_index`` and
    ``check_input``, and the fused pass's focal term), or a dict of region options validated here;
    ``focal_options``: the focal term's keyword arguments of :func:`focal` (its activation by name);
    ``dice_weight`` weighs the Dice term, ``w_type`` and ``empty`` the Generalized Dice term.
    ``reduction="none"``: the region term's (B, C') table (GDL: (B, 1)) broadcast over the focal term's
    (B, C', *S) elements, MONAI's shape.
    """
    prepare.check_input_tensor(input)
    opts = compound_options(region_options, ignore_index=ignore_index, check_input=check_input,
                            voxel_terms={"softmax": "focal", "sigmoid": "focal"}, gamma=focal_options["gamma"])
    ignore_index, check_input = opts.ignore_index, opts.check_input
    focal_options = dict(focal_options, alpha=softmax_alpha(focal_options["alpha"], focal_options["activation"],
                                                            focal_options["include_background"]))
    region = functools.partial(_region_term, options=opts, generalized=generalized, weight=dice_weight,
                               w_type=w_type, empty=empty, reduction=reduction)
    both = lambda_dice and lambda_focal and reduction != "none"
    fused = _fused_focal(input, target, opts, focal_options, reduction) if both else None
    if fused is not None:  # one pass over the tables for both terms
        stats, focal_value = fused
        return (lambda_dice * region(_finish(stats, opts)) + lambda_focal * focal_value).to(input.dtype)

    def region_alone() -> torch.Tensor:
        region_value = region(stats_for(input, target, opts)).to(input.dtype)
        if reduction == "none":  # (B, C') -> (B, C', 1, ..., 1), broadcast over the voxels
            region_value = region_value.reshape(*region_value.shape, *([1] * (input.ndim - 2)))
        return region_value

    total = weighted_sum(input, [
        (lambda_dice, region_alone),
        (lambda_focal, lambda: focal(input, target, ignore_index=ignore_index, reduction=reduction,
                                     check_input=check_input, **focal_options)),
    ])
    if reduction == "none":  # the elementwise shape also when one lambda is 0
        total = total.expand(*total.shape[:2], *input.shape[2:])
    return total.to(input.dtype)


def _fused_focal(input: torch.Tensor, target: torch.Tensor, opts: RegionOptions, focal_options: dict,
                 reduction: str) -> tuple[RegionStats, torch.Tensor] | None:
    """The all-class tables and the focal term from one pass, where the operator takes the focal term's activation
    (and, for sigmoid, its alpha); None: the terms are computed apart."""
    path, activation = _path(input, opts), focal_options["activation"]
    kept = dict(alpha=focal_options["alpha"], weight=focal_options["weight"],
                include_background=focal_options["include_background"], reduction=reduction)
    if path == "softmax" and activation == "softmax":
        stats, vox = label_map_tables(input, target, options=opts.compound_tables)
        return stats, softmax_focal_from_tables(stats, vox, **kept)
    if path == "sigmoid" and activation == "sigmoid" and tables_take_alpha(focal_options["alpha"], opts.to_onehot_y):
        prepare.warn_onehot_single_channel(input, opts.to_onehot_y)
        tables = sigmoid_tables(input, target, options=opts.compound_tables)
        if tables is not None:  # binary targets
            stats, vpos, vneg = tables
            return stats, sigmoid_focal_from_tables(stats, vpos, vneg, **kept)
    return None


def bce_dice_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    lambda_dice: float = 1.0,
    lambda_bce: float = 1.0,
    pos_weight: torch.Tensor | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
    dice_options: RegionOptions | dict,
    check_input: bool = True,
    bce_options: TableOptions | None = None,
) -> torch.Tensor:
    """lambda_bce BCE + lambda_dice sigmoid Dice. See :class:`medloss.losses.BCEDiceLoss`; ``dice_options`` and
    ``bce_options`` as :func:`dice_ce_loss`'s."""
    prepare.check_input_tensor(input)
    opts = compound_options(dice_options, ignore_index=ignore_index, check_input=check_input,
                            voxel_terms={"sigmoid": "bce"})
    ignore_index, check_input = opts.ignore_index, opts.check_input
    if not isinstance(target, torch.Tensor) or tuple(target.shape) != tuple(input.shape):
        raise ShapeMismatchError(
            f"`target` has shape {tuple(getattr(target, 'shape', ()))} but `input` has {tuple(input.shape)}: "
            "BCEDiceLoss takes one binary target channel per input channel (a region or class), so give the target "
            "the input's shape; one-hot encode a label map first (e.g. MONAI's AsDiscreted(to_onehot=C))."
        )
    tables = None
    if (_path(input, opts) == "sigmoid" and lambda_dice and lambda_bce
            and (ignore_index is None or input.shape[1] == 1) and reduction != "none"):
        spec = region_spec("dice", opts, reduction, weighted=pos_weight is not None, lam_region=lambda_dice,
                           lam_voxel=lambda_bce, voxel="bce")
        if (fused := fused_loss(input, target, opts.compound_tables, spec)) is not None:
            return fused
        tables = sigmoid_tables(input, target, options=opts.compound_tables)
    if tables is not None:  # one kernel pass for both terms (binary targets; BCE's element-wise ignore = voxel-wise)
        stats, vpos, vneg = tables
        dice = _dice_on_tables(stats, opts, None, reduction)
        bce = bce_from_tables(stats, vpos, vneg, pos_weight=pos_weight, reduction=reduction)
        return (lambda_dice * dice + lambda_bce * bce).to(input.dtype)
    # BCE first: its target checks word the errors for this loss (a sum of two terms, order-free)
    return weighted_sum(input, [
        (lambda_bce, lambda: bce_with_logits(input, target, pos_weight=pos_weight, ignore_index=ignore_index,
                                             reduction=reduction, check_input=check_input, options=bce_options)),
        (lambda_dice, lambda: dense_dice_term(input, target, opts, None, reduction)),
    ]).to(input.dtype)
