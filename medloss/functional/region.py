"""Region-loss formulas on :class:`~medloss.functional.stats.RegionStats`, and the functional region losses.

The math of each loss, its defaults and its paper are documented on the module class (e.g.
:class:`medloss.losses.DiceLoss`); the functions here are the implementation that the classes call.
"""
from __future__ import annotations

import torch

from medloss.errors import check_choice
from medloss.functional import prepare
from medloss.functional import reduce as _reduce
from medloss.functional.fused import fused_loss, region_spec
from medloss.functional.prepare import Activation
from medloss.functional.region_options import RegionOptions, check_region_options  # noqa: F401  (re-exported)
from medloss.functional.stats import RegionStats, region_stats, stats_for

W_TYPES = ("square", "simple", "uniform")
EMPTY_POLICIES = ("penalize", "monai")
# Lower bound on 1 - TI before a fractional power: keeps d/dx x^(1/gamma) finite at a perfect class.
FOCAL_TVERSKY_EPS = 1e-7


def overlap_index(
    stats: RegionStats, *, k: float, a: float, b: float, smooth_nr: float, smooth_dr: float
) -> torch.Tensor:
    """(k TP + s_nr) / (k TP + a FP + b FN + s_dr), per table entry.

    Dice is k=2, a=b=1; MONAI's Jaccard k=2, a=b=2; Tversky k=1, a=alpha (FP), b=beta (FN).

    Args:
        stats: the tables of :func:`region_stats`.
        k, a, b: weights of TP, FP and FN.
        smooth_nr, smooth_dr: additive smoothing of numerator and denominator (s_nr, s_dr).

    Returns:
        (B, C) indices in [0, 1], (1, C) for batch-pooled tables.
    """
    return (k * stats.tp + smooth_nr) / (k * stats.tp + a * stats.fp + b * stats.fn + smooth_dr)


def dice_from_stats(stats: RegionStats, *, jaccard: bool, smooth_nr: float, smooth_dr: float) -> torch.Tensor:
    """1 - Dice (or 1 - Jaccard) per table entry.

    Args:
        stats: the tables of :func:`region_stats`.
        jaccard: MONAI's Jaccard form, 1 - (2 TP + s_nr) / (2 (PRED + TARGET - TP) + s_dr).
        smooth_nr, smooth_dr: additive smoothing of numerator and denominator.

    Returns:
        (B, C) losses, (1, C) for batch-pooled tables.
    """
    if jaccard:
        return 1.0 - overlap_index(stats, k=2.0, a=2.0, b=2.0, smooth_nr=smooth_nr, smooth_dr=smooth_dr)
    # Dice is overlap_index(k=2, a=b=1); 2TP + FP + FN = PRED + TARGET exactly, which avoids PRED - TP cancellation
    return 1.0 - (2.0 * stats.tp + smooth_nr) / (stats.pred + stats.target + smooth_dr)


def tversky_from_stats(
    stats: RegionStats, *, alpha: float, beta: float, smooth_nr: float, smooth_dr: float
) -> torch.Tensor:
    """1 - Tversky index per table entry (alpha weighs false positives, beta false negatives).

    Args:
        stats: the tables of :func:`region_stats`.
        alpha, beta: weights of false positives and false negatives.
        smooth_nr, smooth_dr: additive smoothing of numerator and denominator.

    Returns:
        (B, C) losses, (1, C) for batch-pooled tables.
    """
    return 1.0 - overlap_index(stats, k=1.0, a=alpha, b=beta, smooth_nr=smooth_nr, smooth_dr=smooth_dr)


def focal_tversky_from_stats(
    stats: RegionStats, *, alpha: float, beta: float, gamma: float, smooth_nr: float, smooth_dr: float
) -> torch.Tensor:
    """(1 - Tversky index)^(1/gamma) per table entry, the exponent taken per class (Abraham & Khan 2019).

    Args:
        stats: the tables of :func:`region_stats`.
        alpha, beta: weights of false positives and false negatives.
        gamma: the focal parameter (the exponent is 1/gamma).
        smooth_nr, smooth_dr: additive smoothing of numerator and denominator.

    Returns:
        (B, C) losses, (1, C) for batch-pooled tables.
    """
    loss = tversky_from_stats(stats, alpha=alpha, beta=beta, smooth_nr=smooth_nr, smooth_dr=smooth_dr)
    return loss.clamp_min(FOCAL_TVERSKY_EPS).pow(1.0 / gamma)


def gdl_weights(target_sum: torch.Tensor, *, w_type: str) -> torch.Tensor:
    """Generalized Dice class weights from per-class target volumes (B, C), without gradient.

    w_c = 1/G_c^2 ("square"), 1/G_c ("simple") or 1 ("uniform"). A class absent from the target (G_c = 0) gets the
    largest weight of the present classes in its row (MONAI's rule); a row with no class present gets all zeros.
    """
    g = target_sum.detach().to(torch.float64)
    if w_type == "square":
        w = torch.reciprocal(g * g)
    elif w_type == "simple":
        w = torch.reciprocal(g)
    else:
        w = torch.ones_like(g)
    absent = torch.isinf(w)
    w = w.masked_fill(absent, 0.0)
    w = w + absent * w.max(dim=1, keepdim=True).values
    return w.to(target_sum.dtype)


def generalized_dice_from_stats(
    stats: RegionStats, *, w_type: str, empty: str, smooth_nr: float, smooth_dr: float
) -> torch.Tensor:
    """1 - GDL per row (sample, or the pooled batch): (B, 1).

    A row whose target holds none of the classes has no Dice. ``empty="monai"`` keeps MONAI's value there (all
    weights 0: loss 0, gradient 0); ``empty="penalize"`` uses the soft false-positive rate
    sum_c PRED_c / (C * VOXELS), the mean predicted probability of the classes, which is 0 only without false
    positives and whose gradient does not vanish (a Dice ratio with tiny smoothing saturates at 1 there).

    Args:
        stats: the tables of :func:`region_stats`.
        w_type: class weights, "square" (1 / TARGET_c^2) | "simple" (1 / TARGET_c) | "uniform".
        empty: "penalize" | "monai", the value of a row without any scored class.
        smooth_nr, smooth_dr: additive smoothing of numerator and denominator.

    Returns:
        (B, 1) losses, (1, 1) for batch-pooled tables.
    """
    w = gdl_weights(stats.target, w_type=w_type)
    numer = 2.0 * (w * stats.tp).sum(dim=1, keepdim=True) + smooth_nr
    denom = (w * (stats.pred + stats.target)).sum(dim=1, keepdim=True) + smooth_dr
    loss = 1.0 - numer / denom
    if empty == "penalize":
        empty_rows = (stats.target.detach() == 0).all(dim=1, keepdim=True)
        fp_rate = stats.pred.sum(dim=1, keepdim=True) / (stats.pred.shape[1] * stats.voxels.clamp_min(1.0))
        loss = torch.where(empty_rows, fp_rate, loss)
    return loss


def mcc_from_stats(stats: RegionStats, *, smooth_nr: float, smooth_dr: float) -> torch.Tensor:
    """1 - Matthews correlation coefficient per table entry, from the soft confusion matrix of the tables.

    TN = VOXELS - PRED - TARGET + TP = sum_n v (1 - p)(1 - g); an entry with FP = FN = 0 (a perfect prediction,
    where the product under the root may vanish) is 0, as in MONAI.
    """
    tp, fp, fn = stats.tp, stats.fp, stats.fn
    tn = stats.voxels - stats.pred - stats.target + tp
    numer = tp * tn - fp * fn + smooth_nr
    denom = torch.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn) + smooth_dr)
    loss = 1.0 - numer / denom
    return torch.where((fp == 0) & (fn == 0), torch.zeros_like(loss), loss)


def region_options(options: RegionOptions | None, **kwargs) -> RegionOptions:
    """A loss's validated options, or (a functional loss called directly) the options its keyword arguments give,
    built and validated here."""
    return RegionOptions.from_flags(**kwargs) if options is None else options


_REGION_KEYS = ("include_background", "to_onehot_y", "sigmoid", "softmax", "other_act", "soft_label", "batch",
                "ignore_index", "check_input")


def _options(opts: dict, **smoothing: float) -> RegionOptions:
    """The options of a functional loss whose region options come as ``**options`` (or ``options=``)."""
    return region_options(opts.get("options"), **smoothing, **{k: opts[k] for k in _REGION_KEYS if k in opts})


def dice_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    include_background: bool = True,
    to_onehot_y: bool = False,
    sigmoid: bool = False,
    softmax: bool = False,
    other_act: Activation | None = None,
    squared_pred: bool = False,
    jaccard: bool = False,
    reduction: str = "mean",
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    batch: bool = False,
    weight: torch.Tensor | None = None,
    soft_label: bool | None = None,
    ignore_index: int | None = None,
    check_input: bool = True,
    options: RegionOptions | None = None,
) -> torch.Tensor:
    """Dice / Jaccard loss. See :class:`medloss.losses.DiceLoss`, whose arguments the others are.

    Args:
        input: (B, C, *S) logits (with an activation flag) or probabilities.
        target: (B, 1, *S) / (B, *S) label map with ``to_onehot_y=True``, else (B, C, *S) one-hot or soft.
        options: a loss's validated options, used instead of the region keyword arguments (everything but
            ``reduction`` and ``weight``).

    Returns:
        The loss: a scalar, or (B, C') for ``reduction="none"`` ((1, C') with ``batch``).
    """
    options = region_options(
        options, include_background=include_background, to_onehot_y=to_onehot_y, sigmoid=sigmoid, softmax=softmax,
        other_act=other_act, squared_pred=squared_pred, jaccard=jaccard, smooth_nr=smooth_nr, smooth_dr=smooth_dr,
        soft_label=soft_label, batch=batch, ignore_index=ignore_index, check_input=check_input,
    )
    prepare.check_input_tensor(input)
    spec = region_spec("dice", options, reduction, weighted=weight is not None)
    if (fused := fused_loss(input, target, options.tables, spec)) is not None:
        return fused
    stats = stats_for(input, target, options)
    loss = dice_from_stats(stats, jaccard=options.jaccard, smooth_nr=options.smooth_nr, smooth_dr=options.smooth_dr)
    return _reduce.reduce_table(apply_dice_weight(loss, weight), reduction).to(input.dtype)


def apply_dice_weight(loss: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Multiply a (B, C') Dice table by the class weights, except with one scored class (C' = 1), where the weight
    is ignored: class weights rebalance classes, and MONAI 1.6.1's DiceLoss ignores them there (so DiceCE/DiceFocal
    with one sigmoid channel weight only their voxel term, as MONAI's)."""
    if weight is None or loss.shape[1] == 1:
        return loss
    return _reduce.apply_class_weight(loss, weight)


def tversky_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: float = 0.5,
    beta: float = 0.5,
    gamma: float | None = None,
    reduction: str = "mean",
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    **options,
) -> torch.Tensor:
    """Tversky loss, or Focal-Tversky when ``gamma`` is given. See :class:`medloss.losses.TverskyLoss` and
    :class:`medloss.losses.FocalTverskyLoss`.

    Args:
        input: (B, C, *S) logits (with an activation flag) or probabilities.
        target: (B, 1, *S) / (B, *S) label map with ``to_onehot_y=True``, else (B, C, *S) one-hot or soft.
        alpha, beta, gamma, reduction, smooth_nr, smooth_dr: as :class:`medloss.losses.FocalTverskyLoss`
            (``gamma=None``: the Tversky loss).
        **options: the shared region options of :func:`region_stats` (or ``options=``, a loss's validated
            :class:`RegionOptions`).

    Returns:
        The loss: a scalar, or (B, C') for ``reduction="none"`` ((1, C') with ``batch``).
    """
    opts = _options(options, smooth_nr=smooth_nr, smooth_dr=smooth_dr)
    prepare.check_input_tensor(input)
    spec = region_spec("tversky", opts, reduction, alpha=alpha, beta=beta, gamma=gamma, eps=FOCAL_TVERSKY_EPS)
    if (fused := fused_loss(input, target, opts.tables, spec)) is not None:
        return fused
    stats = stats_for(input, target, opts)
    smooth = dict(smooth_nr=opts.smooth_nr, smooth_dr=opts.smooth_dr)
    if gamma is None:
        loss = tversky_from_stats(stats, alpha=alpha, beta=beta, **smooth)
    else:
        loss = focal_tversky_from_stats(stats, alpha=alpha, beta=beta, gamma=gamma, **smooth)
    return _reduce.reduce_table(loss, reduction).to(input.dtype)


def generalized_dice_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    w_type: str = "square",
    empty: str = "penalize",
    reduction: str = "mean",
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    **options,
) -> torch.Tensor:
    """Generalized Dice loss, (B, 1) before reduction. See :class:`medloss.losses.GeneralizedDiceLoss`.

    Args:
        input: (B, C, *S) logits (with an activation flag) or probabilities.
        target: (B, 1, *S) / (B, *S) label map with ``to_onehot_y=True``, else (B, C, *S) one-hot or soft.
        w_type, empty, reduction, smooth_nr, smooth_dr: as :class:`medloss.losses.GeneralizedDiceLoss`.
        **options: the shared region options of :func:`region_stats` (or ``options=``, a loss's validated
            :class:`RegionOptions`).

    Returns:
        The loss: a scalar, or (B, 1) for ``reduction="none"`` ((1, 1) with ``batch``).
    """
    opts = _options(options, smooth_nr=smooth_nr, smooth_dr=smooth_dr)
    if options.get("options") is None:  # a direct call (a loss checked these in its constructor)
        check_choice("w_type", w_type, W_TYPES)
        check_choice("empty", empty, EMPTY_POLICIES)
    prepare.check_input_tensor(input)
    spec = region_spec("gdl", opts, reduction, w_type=w_type, empty=empty)
    if (fused := fused_loss(input, target, opts.tables, spec)) is not None:
        return fused
    stats = stats_for(input, target, opts)
    loss = generalized_dice_from_stats(stats, w_type=w_type, empty=empty, smooth_nr=opts.smooth_nr,
                                       smooth_dr=opts.smooth_dr)
    return _reduce.reduce_table(loss, reduction).to(input.dtype)


def mcc_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    reduction: str = "mean",
    smooth_nr: float = 0.0,
    smooth_dr: float = 1e-5,
    **options,
) -> torch.Tensor:
    """Matthews correlation coefficient loss, (B, C') before reduction ((C',) with ``batch``, MONAI's shape).
    See :class:`medloss.losses.MCCLoss`."""
    opts = _options(options, smooth_nr=smooth_nr, smooth_dr=smooth_dr)
    loss = mcc_from_stats(region_stats(input, target, options=opts), smooth_nr=opts.smooth_nr,
                          smooth_dr=opts.smooth_dr)
    if opts.batch and reduction == "none":
        loss = loss[0]
    return _reduce.reduce_table(loss, reduction).to(input.dtype)
