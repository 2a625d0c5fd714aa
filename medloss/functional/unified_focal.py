"""The Unified Focal loss (Yeung et al.): a modified focal term plus a modified focal Tversky term, symmetric or
asymmetric, for any number of classes (class 0 = background).

The math, defaults and references are documented on :class:`medloss.losses.UnifiedFocalLoss`. The Tversky
index is :func:`~medloss.functional.region.overlap_index` on the (B, C) tables of the clamped probabilities.
"""
from __future__ import annotations

import torch

from medloss.errors import ShapeMismatchError, check_number
from medloss.functional import prepare
from medloss.functional import reduce as _reduce
from medloss.functional.region import FOCAL_TVERSKY_EPS, overlap_index
from medloss.functional.stats import RegionStats, _dense_stats


def check_unit_interval(name: str, value: object, *, upper_open: bool = False) -> float:
    return check_number(name, value, low=0, high=1, high_open=upper_open)


def _probabilities_and_target(input, target, *, to_onehot_y, activation, ignore_index, check_input):
    """(p, g, valid): (B, C2, N) with C2 = max(C, 2) (one channel is expanded to [1 - p, p]), valid (B, 1, N)."""
    if check_input and activation is not None:
        prepare.check_finite(input)
    p = prepare.flatten(prepare.activate(input, activation=activation, check_input=check_input))
    if input.shape[1] > 1:
        g, valid = prepare.dense_target(target, input, to_onehot_y=to_onehot_y, ignore_index=ignore_index,
                                        soft_label=True, check_input=check_input)
        return p, g, valid
    # one channel = the foreground probability of a binary problem; a (B, 1, *S) target is its {0, 1} mask
    g, valid = prepare.dense_target(target, input, to_onehot_y=True, ignore_index=ignore_index, soft_label=True,
                                    check_input=check_input)
    return torch.cat([1 - p, p], dim=1), torch.cat([1 - g, g], dim=1), valid


def unified_focal_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: float = 0.5,
    delta: float = 0.7,
    gamma: float = 0.5,
    asymmetric: bool = True,
    to_onehot_y: bool = False,
    sigmoid: bool = False,
    softmax: bool = False,
    num_classes: int | None = None,
    ignore_index: int | None = None,
    epsilon: float = 1e-7,
    reduction: str = "mean",
    check_input: bool = True,
) -> torch.Tensor:
    """(Asymmetric) Unified Focal loss, (B,) per sample before reduction. See
    :class:`medloss.losses.UnifiedFocalLoss`."""
    prepare.check_input_tensor(input)
    classes = max(input.shape[1], 2)
    if num_classes is not None and num_classes != classes:
        raise ShapeMismatchError(
            f"`num_classes={num_classes}` but `input` has {input.shape[1]} channel(s), i.e. {classes} classes; "
            "leave `num_classes=None` to take it from the input."
        )
    p, g, valid = _probabilities_and_target(input, target, to_onehot_y=to_onehot_y,
                                            activation=prepare.activation_of(sigmoid=sigmoid, softmax=softmax),
                                            ignore_index=ignore_index, check_input=check_input)
    p = p.clamp(epsilon, 1.0 - epsilon)
    tp, pred, tgt = _dense_stats(p, g, valid, squared=False, soft_label=False)
    count = torch.full_like(tp[:, :1], p.shape[2]) if valid is None else valid.sum(dim=2)
    stats = RegionStats(tp, pred, tgt, count)
    # Tversky index with delta on false negatives and 1 - delta on false positives (the paper's mTI)
    one_minus_ti = 1.0 - overlap_index(stats, k=1.0, a=1.0 - delta, b=delta, smooth_nr=epsilon, smooth_dr=epsilon)
    enhanced = one_minus_ti.clamp_min(FOCAL_TVERSKY_EPS).pow(1.0 - gamma)
    if asymmetric:  # the background keeps the plain Tversky loss
        enhanced = torch.cat([one_minus_ti[:, :1], enhanced[:, 1:]], dim=1)
    tversky_term = enhanced.mean(dim=1)
    # focal term: -w_c m_c(p) g_c log p_c, w = 1 - delta (background), delta (others); m = (1 - p)^gamma, except
    # on the foreground classes of the asymmetric variant (m = 1: no suppression of the rare classes)
    class_weight = torch.full((1, classes, 1), delta, dtype=p.dtype, device=p.device)
    class_weight[:, 0] = 1.0 - delta
    ce = -g * torch.log(p) * class_weight
    modulated = (1.0 - p).pow(gamma) * ce
    if asymmetric:
        modulated = torch.cat([modulated[:, :1], ce[:, 1:]], dim=1)
    per_voxel = modulated.sum(dim=1, keepdim=True)
    if valid is not None:
        per_voxel = per_voxel * valid
    focal_term = per_voxel.sum(dim=2)[:, 0] / count[:, 0].clamp_min(1.0)
    loss = weight * focal_term + (1.0 - weight) * tversky_term
    return _reduce.reduce_table(loss, reduction).to(input.dtype)
