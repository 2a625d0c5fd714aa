"""Per-class region statistics: the only code in medloss that sums region terms over voxels.

For probabilities p (B, C, N), targets g (B, C, N) and a validity mask v (B, 1, N) (0 at ignored voxels):

    TP_c   = sum_n v p_c g_c                         (soft_label: sum_n v min(p_c, g_c))
    PRED_c = sum_n v p_c^e        TARGET_c = sum_n v g_c^e        (e = 2 with squared_pred, else 1)
    FP_c   = PRED_c - TP_c        FN_c     = TARGET_c - TP_c
    VOXELS = sum_n v                                 (the number of voxels that count)

per sample and class, or pooled over the batch (``batch=True``, shape (1, C)). Every region loss (Dice, Jaccard,
Tversky, Focal-Tversky, Generalized Dice, ...) is a small formula on these tables (:mod:`medloss.functional.region`),
so squared denominators, ignore masks, soft labels and batch pooling work for all of them at once.

Two paths compute the same tables:

* the **table operator** (:mod:`medloss.backends.op`) for softmax against a label map
  (``softmax=True, to_onehot_y=True``) and sigmoid against a label map or a dense target: one pass that never builds
  a one-hot tensor, on the engine :func:`medloss.backends.engine_for` picks (C kernel, Triton, eager torch), with an
  analytic backward; forward + backward hold about the gradient's memory;
* the **dense path** (other activations, probabilities, ``soft_label=True``, targets that need a gradient) is written
  with plain tensor ops.

Sums accumulate in float32 (float64 for float64 input) whatever the input dtype.
"""
from __future__ import annotations

import math
from typing import NamedTuple, cast

import torch

from medloss.backends.op import TableOptions, tables
from medloss.functional import prepare
from medloss.functional.region_options import RegionOptions


class RegionStats(NamedTuple):
    """Per-class statistics, each (B, C), or (1, C) when pooled over the batch; ``voxels`` is (B, 1) / (1, 1).

    Args:
        tp: sum of p g (true positives).
        pred: sum of p (or p^2 with ``squared_pred``).
        target: sum of g (or g^2).
        voxels: the number of valid voxels.
    """

    tp: torch.Tensor
    pred: torch.Tensor
    target: torch.Tensor
    voxels: torch.Tensor

    @property
    def fp(self) -> torch.Tensor:
        return self.pred - self.tp

    @property
    def fn(self) -> torch.Tensor:
        return self.target - self.tp

    def drop_background(self) -> RegionStats:
        """The same tables without class 0."""
        return RegionStats(self.tp[:, 1:], self.pred[:, 1:], self.target[:, 1:], self.voxels)


def _voxel_count(valid: torch.Tensor | None, tp: torch.Tensor, num_voxels: int) -> torch.Tensor:
    """(B, 1) number of voxels that count, in the dtype of the tables."""
    if valid is not None:
        return valid.sum(dim=2).to(tp.dtype)
    return torch.full((tp.shape[0], 1), float(num_voxels), dtype=tp.dtype, device=tp.device)


def _dense_stats(
    p: torch.Tensor, g: torch.Tensor, valid: torch.Tensor | None, *, squared: bool, soft_label: bool | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Plain tensor-op statistics for probabilities and dense targets, both (B, C, N)."""
    if valid is not None:
        p, g = p * valid, g * valid
    # 0.5 (p + g - |p - g|) = min(p, g): MONAI's soft-label TP
    tp = 0.5 * (p + g - (p - g).abs()).sum(dim=2) if soft_label and not squared else (p * g).sum(dim=2)
    if squared:
        return tp, p.square().sum(dim=2), g.square().sum(dim=2)
    return tp, p.sum(dim=2), g.sum(dim=2)


def tables_path(
    activation: str | None, *, label_map: bool, channels: int, soft_label: bool | None = None
) -> str | None:
    """Which pass of the table operator a loss's terms take, if any: ``"softmax"`` (softmax logits against a label
    map, C >= 2), ``"sigmoid"`` (sigmoid logits; the operator may still refuse a target it cannot read, see
    :func:`sigmoid_tables`), or None (the dense path: probabilities, ``other_act``, soft labels). The one predicate
    of the fused path: every loss asks it, then adds only the conditions of its own formula (e.g. a reduction)."""
    if soft_label:
        return None
    if activation == "softmax":
        return "softmax" if label_map and channels > 1 else None
    return "sigmoid" if activation == "sigmoid" else None


def voxel_tables_options(voxel_term: str, *, activation: str = "softmax", ignore_index: float | None = None,
                         gamma: float = 0.0, to_onehot_y: bool = False, check_input: bool = True
                         ) -> TableOptions | None:
    """The table operator's options of a voxel loss's fused pass, built once by the loss module (per call by a direct
    functional call). Sigmoid tables take a label map with ``to_onehot_y``, else one (fractional) target per logit;
    None where they cannot hold ``ignore_index`` (not an integer): the plain path serves it."""
    if activation == "softmax":  # a label value: a non-integer gets TableOptions' typed error
        return TableOptions(ignore_index=cast("int | None", ignore_index), voxel_term=voxel_term,
                            gamma=float(gamma), region=False, check=check_input)
    if ignore_index is not None and not float(ignore_index).is_integer():
        return None
    return TableOptions(ignore_index=None if ignore_index is None else int(ignore_index), voxel_term=voxel_term,
                        gamma=float(gamma), check=check_input, activation="sigmoid", dense=not to_onehot_y, soft=True)


def region_stats(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    include_background: bool = True,
    to_onehot_y: bool = False,
    sigmoid: bool = False,
    softmax: bool = False,
    other_act: prepare.Activation | None = None,
    squared_pred: bool = False,
    soft_label: bool | None = None,
    batch: bool = False,
    ignore_index: int | None = None,
    check_input: bool = True,
    options: RegionOptions | None = None,
) -> RegionStats:
    """Compute :class:`RegionStats` of ``input`` against ``target`` (see the module docstring for the math).

    Args:
        input: (B, C, *S) logits (with an activation flag) or probabilities.
        target: (B, 1, *S) / (B, *S) label map with ``to_onehot_y=True``, else (B, C, *S) one-hot or soft.
        include_background: keep class 0 (dropped after the activation, so softmax is over all classes).
        ignore_index: voxels whose label equals it are left out of every sum.
        batch: pool over the batch axis (tables become (1, C)).
        check_input: validate values (labels in range, probabilities in [0, 1], no NaN); shapes are always checked.
        options: a loss's validated :class:`RegionOptions`, used instead of the keyword arguments above.

    Returns:
        RegionStats with (B, C') or (1, C') tables in float32 (float64 for float64 input).
    """
    if options is None:
        options = RegionOptions.from_flags(
            include_background=include_background, to_onehot_y=to_onehot_y, sigmoid=sigmoid, softmax=softmax,
            other_act=other_act, squared_pred=squared_pred, soft_label=soft_label, batch=batch,
            ignore_index=ignore_index, check_input=check_input,
        )
    prepare.check_input_tensor(input)
    return stats_for(input, target, options)


def stats_for(input: torch.Tensor, target: torch.Tensor, options: RegionOptions) -> RegionStats:
    """:func:`region_stats` of an input tensor its caller checked, with validated options."""
    prepare.warn_onehot_single_channel(input, options.to_onehot_y)
    path = tables_path(options.activation, label_map=options.to_onehot_y, channels=input.shape[1],
                       soft_label=options.soft_label)
    if path == "softmax":
        stats, _ = label_map_tables(input, target, options=options.tables)
    # the sigmoid tables: label maps, and dense targets (binary when checked; unchecked ones are used as given)
    elif path == "sigmoid" and (found := sigmoid_tables(input, target, options=options.tables)) is not None:
        stats = found[0]
    else:
        check = options.check_input
        if check and (options.activation or options.other_act is not None):
            prepare.check_finite(input)
        g, valid = prepare.dense_target(
            target, input, to_onehot_y=options.to_onehot_y, ignore_index=options.ignore_index,
            soft_label=options.soft_label, check_input=check,
        )
        p = prepare.flatten(prepare.activate(input, activation=options.activation, other_act=options.other_act,
                                             check_input=check))
        tp, pred, tgt = _dense_stats(p, g, valid, squared=options.squared_pred, soft_label=options.soft_label)
        stats = RegionStats(tp, pred, tgt, _voxel_count(valid, tp, p.shape[2]))
    return finish_stats(stats, include_background=options.include_background, batch=options.batch)


def finish_stats(stats: RegionStats, *, include_background: bool, batch: bool) -> RegionStats:
    """Drop class 0 (after the activation) and/or pool over the (global, under DDP) batch."""
    if not include_background:
        if stats.tp.shape[1] == 1:
            prepare.warn_single_channel("include_background=False")
        else:
            stats = stats.drop_background()
    if batch:
        stats = RegionStats(*(distributed_sum(t.sum(dim=0, keepdim=True)) for t in stats))
    return stats


def _flat_labels(target: torch.Tensor, input: torch.Tensor) -> torch.Tensor:
    """The (B, 1, N) view of a label map, in its own dtype (the kernels read any integer or float labels)."""
    labels = prepare.label_map(target, input)
    return labels.reshape(labels.shape[0], 1, -1)


def _held(options: TableOptions, labels: torch.Tensor, num_classes: int) -> TableOptions:
    """The options for these labels: without ``ignore_index`` when the labels' dtype cannot hold it (no label equals
    it); checked labels then get the eager check here, whose error explains the dtype (the kernels only report a bad
    label); under torch.compile that check is left to the operator (same error, shorter message), so it breaks no
    graph."""
    if options.ignore_index is None or prepare.representable_ignore(options.ignore_index, labels.dtype) is not None:
        return options
    if options.check and not options.dense and not torch.compiler.is_compiling():
        prepare.check_labels(labels, max(num_classes, 2), options.ignore_index,
                             range_fix=prepare.channels_fix(num_classes))
    return options.without_ignore()


def label_map_tables(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    ignore_index: int | None = None,
    squared_pred: bool = False,
    voxel_term: str | None = None,
    gamma: float = 0.0,
    log_clamp: tuple[float, float] = (-math.inf, math.inf),
    region: bool = True,
    check_input: bool = True,
    options: TableOptions | None = None,
) -> tuple[RegionStats, torch.Tensor]:
    """Softmax statistics of (B, C, *S) logits (a tensor the caller checked) against a label map, plus the
    per-label sums of a voxel term.

    ``voxel_term`` is None, "ce", "focal" or "explog" (exponent ``gamma``), evaluated at log p_y clamped to
    ``log_clamp``; ``options``: the loss's validated operator options, used instead of those keyword arguments.
    Returns (RegionStats with all C classes, per sample; VOX (B, C)) — see :mod:`medloss.backends.eager.softmax`;
    with ``region=False`` TP and PRED may be zeros (a voxel loss alone).
    """
    if options is None:
        options = TableOptions(ignore_index=ignore_index, squared=squared_pred, voxel_term=voxel_term,
                               gamma=float(gamma), log_clamp=log_clamp, region=region, check=check_input)
    labels = _flat_labels(target, input)
    out = tables(prepare.flatten(input), labels, _held(options, labels, input.shape[1]))
    return RegionStats(out.tp, out.pred, out.target, out.voxels), out.vpos


def sigmoid_tables(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    to_onehot_y: bool = False,
    ignore_index: float | None = None,
    voxel_term: str | None = None,
    gamma: float = 0.0,
    soft: bool = False,
    squared_pred: bool = False,
    check_input: bool = True,
    options: TableOptions | None = None,
) -> tuple[RegionStats, torch.Tensor, torch.Tensor] | None:
    """Sigmoid region tables (all C classes, per sample) and the positive/negative sums (VPOS, VNEG) of a voxel
    term ("bce", "focal" or None) from the table operator (:mod:`medloss.backends.op`; the math is in
    :mod:`medloss.backends.eager.sigmoid`), or None for inputs it does not take: a non-integer ``ignore_index``, a
    dense target of another shape or one that needs a gradient (the caller's plain code handles those, and words
    their errors). ``soft``: fractional dense targets are meant (else, when checked, they raise). ``options``: the
    loss's validated operator options, used instead of the keyword arguments (``dense`` is ``not to_onehot_y``).
    """
    if options is None:
        if ignore_index is not None and not float(ignore_index).is_integer():
            return None
        options = TableOptions(ignore_index=None if ignore_index is None else int(ignore_index),
                               squared=squared_pred, voxel_term=voxel_term, gamma=float(gamma), check=check_input,
                               activation="sigmoid", dense=not to_onehot_y, soft=soft)
    if not isinstance(target, torch.Tensor) or target.device != input.device:
        return None
    if not options.dense:
        target = _flat_labels(target, input)
    elif tuple(target.shape) == tuple(input.shape) and not target.requires_grad:
        target = prepare.flatten(target)
    else:
        return None
    out = tables(prepare.flatten(input), target, _held(options, target, input.shape[1]))
    return RegionStats(out.tp, out.pred, out.target, out.voxels), out.vpos, out.vneg


def distributed_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a batch-pooled table over the ranks of an initialised ``torch.distributed`` process group, with gradient.

    A no-op without a process group (or with one rank). The backward of the all-reduce sums the gradients of every
    rank's copy of the loss, so each rank's logits receive world_size x dL/dlogits; DDP's gradient averaging then
    gives the parameters exactly the gradient of the loss on the concatenated global batch (as nnU-Net's
    all-gather Dice). Every region loss with ``batch=True`` goes through here.
    """
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(t)
