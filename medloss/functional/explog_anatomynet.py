"""Paper losses: the Exponential Logarithmic loss (Wong et al. 2018) and the AnatomyNet loss (Zhu et al. 2019),
a region formula on :func:`region_stats` plus a voxel term of the labelled class.

The math, defaults and papers are documented on the module classes (:class:`medloss.losses.ExpLogLoss`,
:class:`medloss.losses.AnatomyNetLoss`). Voxel terms on the labelled class are summed per (sample, class) with the
same label-indexed sums as the statistics, so no one-hot tensor is built for label-map targets.
"""
from __future__ import annotations

import math

import torch

from medloss.backends.op import labelled_sums, voxel_value
from medloss.errors import InputRangeError, InvalidOptionError, ShapeMismatchError
from medloss.functional import prepare
from medloss.functional import reduce as _reduce
from medloss.functional.region import dice_from_stats, overlap_index
from medloss.functional.stats import (
    RegionStats,
    distributed_sum,
    finish_stats,
    label_map_tables,
    region_stats,
    tables_path,
)


def _per_class_voxel_sums(term: torch.Tensor, labels: torch.Tensor, valid, num_classes: int) -> torch.Tensor:
    """sum_n v term_n [y_n = c] -> (B, C): a voxel term of the labelled class, summed per class."""
    if valid is not None:
        term = term * valid
    return labelled_sums(term, labels, num_classes, term.dtype)


def _labelled_log_prob(input, target, *, to_onehot_y: bool, ignore_index, softmax: bool, sigmoid: bool):
    """(labels (B, 1, N), valid, log p_y (B, 1, N)) for the voxel term of a paper loss; values were checked by the
    region term's preamble already."""
    labels, valid = prepare.target_labels(
        target, input, to_onehot_y=to_onehot_y, ignore_index=ignore_index, check_input=False
    )
    return labels, valid, prepare.label_log_prob(input, labels, softmax=softmax, sigmoid=sigmoid, check_input=False)


def _sample_rows(x: torch.Tensor, batch: bool) -> torch.Tensor:
    """Per-sample rows, or one row pooled over the (global, under DDP) batch."""
    return distributed_sum(x.sum(dim=0, keepdim=True)) if batch else x


def class_frequency_weights(frequencies: torch.Tensor) -> torch.Tensor:
    """Wong et al.'s label weights w_l = ((sum_k f_k) / f_l)^0.5; labels with f_l = 0 get weight 0 (they never
    occur as a voxel's label, so the weight is never used)."""
    f = frequencies.to(torch.float64)
    w = torch.where(f > 0, (f.sum(dim=-1, keepdim=True) / f.clamp_min(1e-300)).sqrt(), torch.zeros_like(f))
    return w


def explog_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    w_dice: float = 0.8,
    w_cross: float = 0.2,
    gamma_dice: float = 0.3,
    gamma_cross: float = 0.3,
    class_frequencies: torch.Tensor | None = None,
    include_background: bool = True,
    to_onehot_y: bool = False,
    softmax: bool = False,
    sigmoid: bool = False,
    ignore_index: int | None = None,
    smooth_nr: float = 1.0,
    smooth_dr: float = 1.0,
    batch: bool = False,
    clamp: float = 1e-5,
    reduction: str = "mean",
    running_counts: torch.Tensor | None = None,
    training: bool = False,
    check_input: bool = True,
) -> torch.Tensor:
    """Exponential Logarithmic loss (Wong et al. 2018), (B,) per sample. See :class:`medloss.losses.ExpLogLoss`.

    ``running_counts`` (C,) float64: label counts accumulated over batches; when given, they replace
    ``class_frequencies``, and with ``training=True`` this batch's counts are added to them in place first.
    """
    prepare.check_input_tensor(input)
    num_classes = max(input.shape[1], 2)  # one channel (sigmoid logits or probabilities): binary, labels 0 and 1
    log_clamp = (math.log(clamp), math.log1p(-clamp))
    activation = prepare.activation_of(sigmoid=sigmoid, softmax=softmax)
    if tables_path(activation, label_map=to_onehot_y, channels=input.shape[1]) == "softmax":  # one pass, both terms
        full, per_class = label_map_tables(input, target, ignore_index=ignore_index, voxel_term="explog",
                                           gamma=gamma_cross, log_clamp=log_clamp, check_input=check_input)
        stats = finish_stats(full, include_background=include_background, batch=batch)
        counts = full.target  # voxels per label (B, C)
    else:
        stats = region_stats(
            input, target, include_background=include_background, to_onehot_y=to_onehot_y, sigmoid=sigmoid,
            softmax=softmax, batch=batch, ignore_index=ignore_index, check_input=check_input,
        )
        labels, valid, log_p = _labelled_log_prob(input, target, to_onehot_y=to_onehot_y,
                                                  ignore_index=ignore_index, softmax=softmax, sigmoid=sigmoid)
        cross = voxel_value(log_p, "explog", gamma_cross, log_clamp)
        per_class = _per_class_voxel_sums(cross, labels, valid, num_classes)  # (B, C)
        counts = labelled_sums(valid, labels, num_classes, per_class.dtype)  # voxels per label (B, C)
    dice = 1.0 - dice_from_stats(stats, jaccard=False, smooth_nr=smooth_nr, smooth_dr=smooth_dr)
    dice_term = (-torch.log(dice.clamp(clamp, 1.0 - clamp))).pow(gamma_dice).mean(dim=1)
    if running_counts is not None:  # cumulative label counts, updated in place in training (like batch norm)
        # counts of the global batch under DDP, so that every rank keeps the same buffer and the same weights
        batch_counts = distributed_sum(counts.detach().sum(dim=0, keepdim=True)).reshape(-1).to(running_counts)
        if training:
            running_counts += batch_counts
        seen = running_counts if bool(running_counts.sum() > 0) else batch_counts
        freqs = seen.clamp_min(1e-12).reshape(1, -1)  # a label never seen has no voxel in this batch either
    elif class_frequencies is None:
        freqs = distributed_sum(counts.sum(dim=0, keepdim=True))  # label frequencies of this (global) batch
    else:
        freqs = torch.as_tensor(class_frequencies, device=per_class.device).reshape(1, -1)
        if freqs.shape[1] != num_classes:
            raise ShapeMismatchError(
                f"`class_frequencies` has {freqs.shape[1]} values but the labels have {num_classes} classes "
                "(background included)."
            )
    weights = class_frequency_weights(freqs).to(per_class.dtype)
    cross_term = _sample_rows((per_class * weights).sum(dim=1), batch) / _sample_rows(
        counts.sum(dim=1), batch
    ).clamp_min(1.0)
    loss = w_dice * dice_term + w_cross * cross_term
    return _reduce.reduce_table(loss, reduction).to(input.dtype)


def anatomynet_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: float = 0.5,
    beta: float = 0.5,
    gamma: float = 2.0,
    lambda_focal: float = 0.1,
    class_weights: torch.Tensor | None = None,
    class_mask: torch.Tensor | None = None,
    include_background: bool = True,
    to_onehot_y: bool = False,
    softmax: bool = False,
    ignore_index: int | None = None,
    smooth_nr: float = 0.0,
    smooth_dr: float = 1e-5,
    p_min: float = 1e-6,
    reduction: str = "sum",
    check_input: bool = True,
) -> torch.Tensor:
    """AnatomyNet Dice + focal (Zhu et al. 2019), (1, C') per class. See :class:`medloss.losses.AnatomyNetLoss`."""
    prepare.check_input_tensor(input)
    num_classes = input.shape[1]
    if num_classes < 2:
        raise ShapeMismatchError(
            "`input` has 1 channel: AnatomyNetLoss scores mutually exclusive classes (one channel per class, "
            "background included, C >= 2); for a binary problem give two channels (background, foreground)."
        )
    batch_size = input.shape[0]
    # checked here, where the advice can name this loss's one activation (the shared checks also offer sigmoid)
    if softmax and num_classes == 1:
        raise InvalidOptionError(
            "`softmax=True` with a single input channel gives probability 1 everywhere: AnatomyNetLoss needs one "
            "channel per class, background included (C >= 2)."
        )
    if not softmax and check_input:
        lo, hi = prepare.check_finite(input)
        if lo < 0.0 or hi > 1.0:
            raise InputRangeError(
                f"`input` has values outside [0, 1] (min {lo:.4g}, max {hi:.4g}) but `softmax=False`: these look "
                "like logits. Pass `softmax=True`, or give probabilities."
            )
    activation = prepare.activation_of(softmax=softmax)
    fused = tables_path(activation, label_map=to_onehot_y, channels=num_classes) == "softmax"
    if fused:  # one pass for the Dice tables and the focal sums
        stats, focal_sums = label_map_tables(input, target, ignore_index=ignore_index, voxel_term="focal",
                                             gamma=gamma, log_clamp=(math.log(p_min), math.inf),
                                             check_input=check_input)
    else:
        stats = region_stats(
            input, target, to_onehot_y=to_onehot_y, softmax=softmax, ignore_index=ignore_index,
            check_input=check_input,
        )
    mask = _class_mask(class_mask, batch_size, num_classes, stats.tp, include_background)
    masked = RegionStats(*(t * mask for t in stats[:3]), stats.voxels)
    pooled = RegionStats(*(distributed_sum(t.sum(dim=0, keepdim=True)) for t in masked))
    # paper: TP / (TP + alpha FN + beta FP); overlap_index takes (a on FP, b on FN)
    index = overlap_index(pooled, k=1.0, a=beta, b=alpha, smooth_nr=smooth_nr, smooth_dr=smooth_dr)
    available = (distributed_sum(mask.sum(dim=0, keepdim=True)) > 0).to(index.dtype)
    dice_term = available * (1.0 - index)

    if not fused:
        labels, valid, log_p = _labelled_log_prob(input, target, to_onehot_y=to_onehot_y,
                                                  ignore_index=ignore_index, softmax=softmax, sigmoid=False)
        focal = voxel_value(log_p, "focal", gamma, (math.log(p_min), math.inf))
        focal_sums = _per_class_voxel_sums(focal, labels, valid, num_classes)
    per_class = distributed_sum((focal_sums * mask).sum(0, keepdim=True))
    focal_term = per_class / pooled.voxels.sum().clamp_min(1.0)

    loss = dice_term + lambda_focal * focal_term  # (1, C)
    if not include_background:
        loss = loss[:, 1:]
    if class_weights is not None:  # one weight per scored class
        loss = _reduce.apply_class_weight(loss, class_weights, arg="class_weights")
    return _reduce.reduce_table(loss, reduction).to(input.dtype)


def _class_mask(class_mask, batch_size: int, num_classes: int, like: torch.Tensor, include_background: bool):
    """(B, C) availability mask in the tables' dtype: 1 = class annotated in that scan. Like every per-class
    argument it counts the scored classes: without background it may have C - 1 columns (class 0 then counts)."""
    if class_mask is None:
        return torch.ones(batch_size, num_classes, dtype=like.dtype, device=like.device)
    m = torch.as_tensor(class_mask, device=like.device).to(like.dtype)
    if m.ndim == 1:
        m = m.unsqueeze(0).expand(batch_size, -1)
    if not include_background and m.ndim == 2 and m.shape[1] == num_classes - 1:
        m = torch.cat([torch.ones_like(m[:, :1]), m], dim=1)
    kept = num_classes if include_background else num_classes - 1
    if tuple(m.shape) != (batch_size, num_classes):
        raise ShapeMismatchError(
            f"`class_mask` must have shape (B, C') = ({batch_size}, {kept}) (one column per scored class) or "
            f"(C',), got {tuple(m.shape)}."
        )
    if bool(((m != 0) & (m != 1)).any()):
        raise ShapeMismatchError("`class_mask` must hold 0 (class not annotated) or 1 (annotated) values.")
    return m
