"""Topology-aware region losses: soft clDice (Shit et al., CVPR 2021) and Skeleton Recall (Kirchhoff et al.,
ECCV 2024). The math, defaults and differences from MONAI are documented on the module classes
(:class:`medloss.losses.SoftclDiceLoss`, :class:`~medloss.losses.SoftDiceclDiceLoss`,
:class:`~medloss.losses.SkeletonRecallLoss`); this module is their implementation.

Both are ratios of per-class tables, computed by the statistics core (:func:`medloss.functional.stats._dense_stats`)
on skeleton-weighted volumes:

    Tprec_c = (sum_n S(p)_c g_c + s_nr) / (sum_n S(p)_c + s_dr)       TP / PRED of the tables of (S(p), g)
    Tsens_c = (sum_n p_c S(g)_c + s_nr) / (sum_n S(g)_c + s_dr)       TP / TARGET of the tables of (p, S(g))
    Recall_c = (sum_n p_c K_c + s) / (sum_n K_c + s)                  TP / TARGET of the tables of (p, K)

with S the soft skeleton (iterated min/max pooling, :func:`soft_skeleton`) and K the tubed reference skeleton
from the data loader (:func:`medloss.functional.maps.reference_skeleton`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from medloss.errors import InvalidOptionError, ShapeMismatchError
from medloss.functional import maps, prepare
from medloss.functional import reduce as _reduce
from medloss.functional.compound import dice_ce_loss
from medloss.functional.region import dice_from_stats
from medloss.functional.stats import RegionStats, _dense_stats, finish_stats


def _pool(x: torch.Tensor):
    if x.ndim == 5:
        return F.max_pool3d
    if x.ndim == 4:
        return F.max_pool2d
    raise ShapeMismatchError(
        f"the soft skeleton needs 2-D or 3-D volumes, (B, C, H, W) or (B, C, H, W, D); got {tuple(x.shape)}."
    )


def soft_erode(x: torch.Tensor) -> torch.Tensor:
    """Soft erosion: the minimum over the face-connected cross (three 3-voxel lines, one per axis).

    Outside the volume counts as +inf (max pooling pads with -inf), so the border does not erode.
    """
    pool, nd = _pool(x), x.ndim - 2
    out = None
    for axis in range(nd):
        kernel = tuple(3 if a == axis else 1 for a in range(nd))
        padding = tuple(1 if a == axis else 0 for a in range(nd))
        line = -pool(-x, kernel, 1, padding)
        out = line if out is None else torch.minimum(out, line)
    assert out is not None  # inputs have at least one spatial axis
    return out


def soft_dilate(x: torch.Tensor) -> torch.Tensor:
    """Soft dilation: the maximum over the full 3x3(x3) neighbourhood."""
    return _pool(x)(x, 3, 1, 1)


def soft_skeleton(x: torch.Tensor, iter_: int) -> torch.Tensor:
    """Soft skeleton of probabilities (B, C, *S) (Shit et al., CVPR 2021, Algorithm 1)::

        x_0 = x,  x_{k+1} = erode(x_k),  delta_k = relu(x_k - dilate(x_{k+1}))      (x_k minus its opening)
        skel = delta_0;  for k = 1..iter_:  skel = skel + relu(delta_k - skel * delta_k)

    Each erosion is computed once and reused as the next opening's erosion (iter_ + 1 erosions; MONAI and the
    authors' code compute 2 iter_ + 1 for the same values).
    """
    eroded = soft_erode(x)
    skel = F.relu(x - soft_dilate(eroded))
    for _ in range(iter_):
        x = eroded
        eroded = soft_erode(x)
        delta = F.relu(x - soft_dilate(eroded))
        skel = skel + F.relu(delta - skel * delta)
    return skel


def spatial_inputs(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    include_background: bool,
    to_onehot_y: bool,
    activation: str | None,
    other_act,
    ignore_index: int | None,
    check_input: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The preamble of the morphological losses: (p, g, valid) as (B, C', *S), (B, C', *S), (B, 1, *S) or None.

    Ignored voxels are set to 0 in p and g (they act as background for the morphology, so what the network predicts
    there changes nothing) and are left out of every sum through ``valid``.
    """
    prepare.check_input_tensor(input)
    _pool(input)
    if check_input and (activation is not None or other_act is not None):
        prepare.check_finite(input)
    g, valid = prepare.dense_target(
        target, input, to_onehot_y=to_onehot_y, ignore_index=ignore_index, soft_label=True, check_input=check_input
    )
    p = prepare.activate(input, activation=activation, other_act=other_act, check_input=check_input)
    shape = (input.shape[0], -1, *input.shape[2:])
    g = g.reshape(shape)
    if valid is not None:
        valid = valid.reshape(input.shape[0], 1, *input.shape[2:])
        p, g = p * valid, g * valid  # a label-map target marks ignored voxels as class 0 until masked here
    if not include_background:
        if input.shape[1] == 1:
            prepare.warn_single_channel("include_background=False")
        else:
            p, g = p[:, 1:], g[:, 1:]
    return p, g, valid


def skeleton_onehot(
    skeleton: torch.Tensor, num_channels: int, *, include_background: bool, dtype: torch.dtype, check: bool
) -> torch.Tensor:
    """A (B, 1, *S) skeleton label map (class ids, 0 off the skeleton) as (B, C', *S) per-channel indicators.

    One input channel means binary (class 1 is channel 0); otherwise channel c marks the voxels of class c,
    and channel 0 (background) is all zero (the background has no skeleton). Values are class indices in
    [0, max(C, 2)), checked with ``check`` (float maps are rounded, as component maps).
    """
    skeleton = maps.integer_map(
        skeleton, "skeleton", upper=max(num_channels, 2), check=check,
        fix="expected the class of each skeleton voxel, 0 off the skeleton (medloss.transforms.ReferenceSkeletond)",
    )
    if num_channels == 1:
        return (skeleton > 0).to(dtype)
    classes = torch.arange(int(not include_background), num_channels, device=skeleton.device)
    onehot = skeleton == classes.view(1, -1, *([1] * (skeleton.ndim - 2)))
    if include_background:
        onehot[:, 0] = False
    return onehot.to(dtype)


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], x.shape[1], -1)


def _tables(a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor | None, batch: bool) -> RegionStats:
    """RegionStats of (a, b): TP = sum a b, PRED = sum a, TARGET = sum b over valid voxels, per sample or pooled."""
    flat_valid = None if valid is None else _flat(valid)
    tp, pred, tgt = _dense_stats(_flat(a), _flat(b), flat_valid, squared=False, soft_label=False)
    voxels = torch.ones_like(tp[:, :1])  # unused by these formulas; kept for the RegionStats shape contract
    return finish_stats(RegionStats(tp, pred, tgt, voxels), include_background=True, batch=batch)


def cldice_terms(
    p: torch.Tensor,
    g: torch.Tensor,
    valid: torch.Tensor | None,
    *,
    iter_: int,
    smooth_nr: float,
    smooth_dr: float,
    smooth: float,
    batch: bool,
    skeleton: torch.Tensor | None = None,
    dice: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(1 - clDice, 1 - Dice or None) per (sample, class), or (1, C') with ``batch``.

    ``skeleton``: a (B, C', *S) reference skeleton to use for S(g) instead of the soft skeleton of g.
    """
    skel_p = soft_skeleton(p, iter_)
    with torch.no_grad():  # the target carries no gradient; its skeleton is not part of the graph
        skel_g = soft_skeleton(g, iter_) if skeleton is None else skeleton * (1.0 if valid is None else valid)
    prec = _tables(skel_p, g, valid, batch)
    sens = _tables(p, skel_g, valid, batch)
    tprec = (prec.tp + smooth_nr) / (prec.pred + smooth_dr)
    tsens = (sens.tp + smooth_nr) / (sens.target + smooth_dr)
    cl = 1.0 - 2.0 * tprec * tsens / (tprec + tsens + smooth)
    if not dice:
        return cl, None
    return cl, dice_from_stats(_tables(p, g, valid, batch), jaccard=False, smooth_nr=smooth_nr, smooth_dr=smooth_dr)


def soft_cldice_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    skeleton: torch.Tensor | None = None,
    iter_: int = 3,
    alpha: float | None = None,
    smooth_nr: float = 1.0,
    smooth_dr: float = 1.0,
    smooth: float = 1e-4,
    include_background: bool = True,
    to_onehot_y: bool = False,
    sigmoid: bool = False,
    softmax: bool = False,
    other_act=None,
    batch: bool = False,
    ignore_index: int | None = None,
    reduction: str = "mean",
    check_input: bool = True,
) -> torch.Tensor:
    """Soft clDice, or (1 - alpha) Dice + alpha clDice when ``alpha`` is given. See
    :class:`medloss.losses.SoftclDiceLoss` and :class:`medloss.losses.SoftDiceclDiceLoss`."""
    target, skeleton = maps.split_packed_target(target, input, skeleton, to_onehot_y=to_onehot_y, name="skeleton")
    p, g, valid = spatial_inputs(
        input, target, include_background=include_background, to_onehot_y=to_onehot_y,
        activation=prepare.activation_of(sigmoid=sigmoid, softmax=softmax), other_act=other_act,
        ignore_index=ignore_index, check_input=check_input,
    )
    if skeleton is not None:
        skeleton = skeleton_onehot(skeleton, input.shape[1], include_background=include_background, dtype=p.dtype,
                                   check=check_input)
    cl, dice = cldice_terms(
        p, g, valid, iter_=iter_, smooth_nr=smooth_nr, smooth_dr=smooth_dr, smooth=smooth, batch=batch,
        skeleton=skeleton, dice=alpha is not None,
    )
    loss = cl if alpha is None or dice is None else (1.0 - alpha) * dice + alpha * cl
    return _reduce.reduce_table(loss, reduction).to(input.dtype)


def skeleton_recall_term(
    p: torch.Tensor, skeleton: torch.Tensor, valid: torch.Tensor | None, *, smooth: float, batch: bool
) -> torch.Tensor:
    """1 - soft recall of the reference skeleton per (sample, class), or (1, C') with ``batch``."""
    sens = _tables(p, skeleton, valid, batch)
    return 1.0 - (sens.tp + smooth) / (sens.target + smooth).clamp_min(1e-8)


def check_recall_reduction(reduction: str, lambda_dice: float, lambda_ce: float) -> None:
    """"none" is the (B, C') recall table; with a Dice or CE term the compound has no common unreduced shape."""
    if reduction == "none" and (lambda_dice or lambda_ce):
        raise InvalidOptionError(
            "`reduction='none'` is defined for the skeleton-recall term alone: set lambda_dice=0 and "
            "lambda_ce=0, or use 'mean'/'sum'."
        )


def skeleton_recall_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    skeleton: torch.Tensor | None = None,
    weight_srec: float = 1.0,
    lambda_dice: float = 1.0,
    lambda_ce: float = 1.0,
    tube: bool = True,
    smooth: float = 1e-5,
    to_onehot_y: bool = False,
    sigmoid: bool = False,
    softmax: bool = False,
    batch: bool = False,
    ignore_index: int | None = None,
    reduction: str = "mean",
    check_input: bool = True,
) -> torch.Tensor:
    """lambda_ce CE + lambda_dice Dice + weight_srec (1 - skeleton recall). See
    :class:`medloss.losses.SkeletonRecallLoss`."""
    check_recall_reduction(reduction, lambda_dice, lambda_ce)
    target, skeleton = maps.split_packed_target(target, input, skeleton, to_onehot_y=to_onehot_y, name="skeleton")
    include_background = input.shape[1] == 1  # one sigmoid channel is the foreground; else class 0 is dropped
    p, _, valid = spatial_inputs(
        input, target, include_background=include_background, to_onehot_y=to_onehot_y,
        activation=prepare.activation_of(sigmoid=sigmoid, softmax=softmax), other_act=None,
        ignore_index=ignore_index, check_input=check_input,
    )
    if skeleton is None:
        maps.warn_once(
            "SkeletonRecallLoss.skeleton",
            "SkeletonRecallLoss was not handed the reference skeleton, so it skeletonises every target on the CPU at "
            "every step (skimage, seconds per 3-D volume). Compute it once per sample in the data loader with "
            "medloss.transforms.ReferenceSkeletond and pack it into the label (see its docstring).",
        )
        labels = maps.label_map_of(target, input, to_onehot_y=to_onehot_y)
        skeleton = maps.batch_map(labels, maps.reference_skeleton, tube=tube, ignore_index=ignore_index)
    skel = skeleton_onehot(skeleton, input.shape[1], include_background=include_background, dtype=p.dtype,
                           check=check_input)
    srec = skeleton_recall_term(p, skel, valid, smooth=smooth, batch=batch)
    if reduction == "none":
        return srec.to(input.dtype)
    loss = weight_srec * _reduce.reduce_table(srec, reduction)
    if lambda_dice or lambda_ce:
        dice_options = dict(
            include_background=include_background, to_onehot_y=to_onehot_y, sigmoid=sigmoid, softmax=softmax,
            other_act=None, squared_pred=False, jaccard=False, smooth_nr=smooth, smooth_dr=smooth, batch=batch,
        )
        loss = loss + dice_ce_loss(
            input, target, lambda_dice=lambda_dice, lambda_ce=lambda_ce, ignore_index=ignore_index,
            reduction=reduction, dice_options=dice_options, check_input=check_input,
        )
    return loss.to(input.dtype)
