"""Focal loss (Lin et al., ICCV 2017), sigmoid and softmax, with MONAI 1.6.1's alpha, weights and reductions.

The math and defaults are documented on :class:`medloss.losses.FocalLoss`. Softmax against a label map and sigmoid
take the table operator's fused pass where the options allow (:func:`softmax_focal_from_tables`,
:func:`sigmoid_focal_from_tables`); everything else is the dense path of :func:`focal`. Computation runs in float32
(float64 for float64 input); the result is returned in the input's dtype.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from medloss.backends.op import voxel_value
from medloss.backends.options import TableOptions
from medloss.errors import InvalidOptionError, ShapeMismatchError
from medloss.functional import prepare
from medloss.functional import reduce as _reduce
from medloss.functional.fused import focal_spec, fused_loss
from medloss.functional.stats import RegionStats, label_map_tables, sigmoid_tables, tables_path, voxel_tables_options


def softmax_focal_from_tables(
    stats: RegionStats, vox: torch.Tensor, *, alpha, weight: torch.Tensor | None, include_background: bool,
    reduction: str,
) -> torch.Tensor:
    """Softmax focal loss (MONAI's reductions) from per-label sums VOX_c of -(1 - p_c)^gamma log p_c.

    Only the labelled channel of a voxel is non-zero, so the element losses of channel c sum to
    alpha_c weight_c VOX_c; "mean" divides by C' times the valid voxels, "sum" is the sum over (b, c) of spatial
    means (MONAI's).
    """
    per_class = vox if include_background else vox[:, 1:]
    a = _kept_alpha(alpha, vox.shape[1], include_background, vox)
    if a is not None:
        per_class = per_class * a
    w = _kept_weight(weight, per_class.shape[1], per_class)
    if w is not None:
        per_class = per_class * w
    count = stats.voxels.clamp_min(1.0)  # (B, 1) valid voxels per sample
    if reduction == "sum":
        return (per_class / count).sum()
    return per_class.sum() / (count.sum() * per_class.shape[1])


def softmax_alpha(alpha, activation: str, include_background: bool):
    """``alpha`` as the focal loss uses it: a scalar alpha with the softmax ``activation`` and
    ``include_background=False`` would weigh every scored class alike (1 - alpha belongs to the dropped class 0), so
    it is ignored with MONAI 1.6.1's warning and value; anything else is returned unchanged."""
    if activation == "softmax" and not include_background and alpha is not None and torch.as_tensor(alpha).ndim == 0:
        warnings.warn("`include_background=False`, scalar `alpha` ignored when using softmax.", stacklevel=3)
        return None
    return alpha


def _kept_alpha(alpha, num_classes: int, include_background: bool, like: torch.Tensor) -> torch.Tensor | None:
    """MONAI's softmax alpha as a vector over the scored classes C': a scalar gives 1 - alpha to class 0 and alpha to
    the others (so alpha to every class once class 0 is dropped); a sequence has one value per scored class."""
    if alpha is None:
        return None
    a = torch.as_tensor(alpha, dtype=like.dtype, device=like.device)
    if a.ndim == 0:
        a = torch.cat([1 - a.view(1), a.view(1).expand(num_classes - 1)])
        return a if include_background else a[1:]
    kept = num_classes if include_background else num_classes - 1
    if a.numel() != kept:
        raise ShapeMismatchError(
            f"`alpha` has {a.numel()} values but the loss scores {kept} classes; with include_background=False "
            "give one value per foreground class (as `weight`)."
        )
    return a


def _kept_weight(weight, num_kept: int, like: torch.Tensor) -> torch.Tensor | None:
    """Class weights (scalar or one per scored class) as a 0-d or (C',) tensor."""
    if weight is None:
        return None
    w = weight.to(like)
    if w.ndim == 1 and w.numel() != num_kept:
        raise ShapeMismatchError(
            f"`weight` has {w.numel()} values but the loss has {num_kept} classes; "
            "with include_background=False the weights must not include class 0."
        )
    return w


def _scored_classes(include_background: bool, *tables: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Drop class 0 from (B, C, ...) tensors unless include_background; one channel is kept (with MONAI's warning)."""
    if include_background:
        return tables
    if tables[0].shape[1] == 1:
        prepare.warn_single_channel("include_background=False")
        return tables
    return tuple(t[:, 1:] for t in tables)


def sigmoid_focal_from_tables(stats: RegionStats, vpos: torch.Tensor, vneg: torch.Tensor, *, alpha, weight,
                              include_background: bool, reduction: str) -> torch.Tensor:
    """Sigmoid focal loss from the kernel's positive/negative sums (binary targets): alpha (scalar) weighs positives
    by alpha and negatives by 1 - alpha, a per-class alpha weighs positives only; then class weights and MONAI's
    reductions ("sum": per (b, c) mean over valid voxels, summed; "mean": over C' x valid voxels)."""
    num_classes = vpos.shape[1]
    keep_all = include_background or num_classes == 1
    vpos, vneg = _scored_classes(include_background, vpos, vneg)
    if alpha is None:
        per = vpos + vneg
    elif torch.as_tensor(alpha).ndim == 0:
        per = alpha * vpos + (1 - alpha) * vneg
    else:
        kept = _kept_alpha(alpha, num_classes, keep_all, vpos)
        assert kept is not None  # alpha is not None in this branch
        per = kept.view(1, -1) * vpos + vneg
    w = _kept_weight(weight, per.shape[1], per)
    if w is not None:
        per = per * (w.view(1, -1) if w.ndim == 1 else w)
    if reduction == "sum":
        return (per / stats.voxels.clamp_min(1.0)).sum()
    return per.sum() / (stats.voxels.sum() * per.shape[1]).clamp_min(1.0)


def tables_take_alpha(alpha, to_onehot_y: bool) -> bool:
    """Whether the sigmoid tables express this alpha: a scalar is alpha VPOS + (1 - alpha) VNEG for any target; a
    per-class alpha weighs voxels whose target is exactly 1 (MONAI), which the tables give for label maps (binary
    targets) but not for fractional dense ones, so a dense target with a per-class alpha takes the plain path."""
    return alpha is None or to_onehot_y or torch.as_tensor(alpha).ndim == 0


def focal_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    include_background: bool = True,
    to_onehot_y: bool = False,
    gamma: float = 2.0,
    alpha: float | torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
    use_softmax: bool = False,
    ignore_index: int | None = None,
    check_input: bool = True,
    options: TableOptions | None = None,
) -> torch.Tensor:
    """Sigmoid or softmax focal loss on logits. See :class:`medloss.losses.FocalLoss`, whose arguments these are.

    (N, C) classification logits (no spatial axis, as MONAI accepts) are scored as (N, C, 1); ``reduction="none"``
    then returns (N, C). ``options``: the loss's :func:`voxel_tables_options` (from the keywords when None).

    Returns:
        The loss: a scalar, or (B, C', *S) for ``reduction="none"``.
    """
    return focal_loss_for(input, target, activation="softmax" if use_softmax else "sigmoid",
                          include_background=include_background, to_onehot_y=to_onehot_y, gamma=gamma, alpha=alpha,
                          weight=weight, reduction=reduction, ignore_index=ignore_index, check_input=check_input,
                          options=options)


def focal_loss_for(input: torch.Tensor, target: torch.Tensor, *, activation: str, include_background: bool,
                   to_onehot_y: bool, gamma: float, alpha, weight: torch.Tensor | None, reduction: str,
                   ignore_index: int | None, check_input: bool, options: TableOptions | None) -> torch.Tensor:
    """:func:`focal_loss` with its activation by name (``"softmax"`` or ``"sigmoid"``), as :class:`FocalLoss` holds
    it."""
    if isinstance(input, torch.Tensor) and input.ndim == 2:
        if not isinstance(target, torch.Tensor) or target.ndim != 2:
            raise ShapeMismatchError(
                f"`input` has classification shape {tuple(input.shape)} (N, C): `target` must be (N, C) one-hot "
                f"(or (N, 1) class indices with to_onehot_y=True), got "
                f"{tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__}."
            )
        loss = focal_loss_for(input.unsqueeze(-1), target.unsqueeze(-1), activation=activation,
                              include_background=include_background, to_onehot_y=to_onehot_y, gamma=gamma,
                              alpha=alpha, weight=weight, reduction=reduction, ignore_index=ignore_index,
                              check_input=check_input, options=options)
        return loss.squeeze(-1) if reduction == "none" else loss
    prepare.check_input_tensor(input)
    return focal(input, target, include_background=include_background, to_onehot_y=to_onehot_y, gamma=gamma,
                 alpha=alpha, weight=weight, reduction=reduction, activation=activation, ignore_index=ignore_index,
                 check_input=check_input, options=options)


def focal(input: torch.Tensor, target: torch.Tensor, *, include_background: bool, to_onehot_y: bool, gamma: float,
          alpha, weight: torch.Tensor | None, reduction: str, activation: str, ignore_index: int | None,
          check_input: bool, options: TableOptions | None = None) -> torch.Tensor:
    """:func:`focal_loss` of a (B, C, *S) input its caller checked (a compound checks it once); ``activation``:
    ``"softmax"`` or ``"sigmoid"``."""
    prepare.warn_onehot_single_channel(input, to_onehot_y)
    alpha = softmax_alpha(alpha, activation, include_background)
    softmax = activation == "softmax"
    if softmax and input.shape[1] == 1:
        raise InvalidOptionError("`use_softmax=True` needs C >= 2 channels; use the sigmoid focal loss for C = 1.")
    path = tables_path(activation, label_map=to_onehot_y, channels=input.shape[1])
    if options is None and path is not None and reduction != "none":
        options = voxel_tables_options("focal", activation=path, ignore_index=ignore_index, gamma=gamma,
                                       to_onehot_y=to_onehot_y, check_input=check_input)
    if path == "softmax" and reduction != "none":  # one-hot-free fused path
        spec = focal_spec(include_background, reduction, weighted=weight is not None, alpha_free=alpha is None)
        if (fused := fused_loss(input, target, options, spec)) is not None:
            return fused
        stats, vox = label_map_tables(input, target, options=options)
        return softmax_focal_from_tables(stats, vox, alpha=alpha, weight=weight,
                                         include_background=include_background, reduction=reduction).to(input.dtype)
    if path == "sigmoid" and reduction != "none" and tables_take_alpha(alpha, to_onehot_y):
        tables = None if options is None else sigmoid_tables(input, target, options=options)
        if tables is not None:
            return sigmoid_focal_from_tables(*tables, alpha=alpha, weight=weight,
                                             include_background=include_background, reduction=reduction
                                             ).to(input.dtype)
    if check_input:
        prepare.check_finite(input)
    t, valid = prepare.dense_target(
        target, input, to_onehot_y=to_onehot_y, ignore_index=ignore_index, soft_label=True, check_input=check_input
    )
    x = prepare.flatten(input.to(t.dtype))
    if softmax:
        loss = voxel_value(torch.log_softmax(x, dim=1), "focal", gamma) * t
    else:
        bce = x - x * t - F.logsigmoid(x)  # = BCE with logits, stable
        loss = (F.logsigmoid(-x * (2 * t - 1)) * gamma).exp() * bce
    num_classes = input.shape[1]
    keep_all = include_background or num_classes == 1
    loss, t = _scored_classes(include_background, loss, t)
    if alpha is not None:
        if not softmax and torch.as_tensor(alpha).ndim == 0:  # alpha on positives, 1 - alpha on negatives
            loss = loss * (t * alpha + (1 - t) * (1 - alpha))
        else:
            kept = _kept_alpha(alpha, num_classes, keep_all, loss)
            assert kept is not None  # alpha is not None in this branch
            a = kept.view(1, -1, 1)
            loss = loss * (a if softmax else torch.where(t == 1, a, torch.ones_like(a)))
    w = _kept_weight(weight, loss.shape[1], loss)
    if w is not None:
        loss = loss * (w.view(1, -1, 1) if w.ndim == 1 else w)
    if valid is not None:
        loss = loss * valid
    return _reduce.reduce_voxels(loss, valid, reduction, input).to(input.dtype)
