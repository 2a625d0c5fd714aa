"""The functional core of medloss: the source of truth the loss modules call.

* :mod:`~medloss.functional.prepare` — the one preamble (validation, activation, label maps, ignore masks, fp32).
* :mod:`~medloss.functional.stats` — :func:`region_stats`, the only voxel-summing code for region losses.
* :mod:`~medloss.functional.region` — region formulas on the statistics and the functional region losses.
* :mod:`~medloss.functional.voxel` — cross-entropy and BCE terms; :mod:`~medloss.functional.focal` — the focal loss.
* :mod:`~medloss.functional.reduce` — the single reduction.
"""
from medloss.functional.focal import focal_loss
from medloss.functional.lovasz import lovasz_hinge_loss, lovasz_softmax_loss
from medloss.functional.region import (
    dice_from_stats,
    dice_loss,
    focal_tversky_from_stats,
    generalized_dice_from_stats,
    generalized_dice_loss,
    overlap_index,
    tversky_from_stats,
    tversky_loss,
)
from medloss.functional.stats import RegionStats, region_stats
from medloss.functional.voxel import bce_with_logits_loss, cross_entropy_loss
from medloss.functional.weights import RunningClassCounts, class_counts, class_weights

__all__ = [
    "RegionStats",
    "RunningClassCounts",
    "bce_with_logits_loss",
    "class_counts",
    "class_weights",
    "cross_entropy_loss",
    "dice_from_stats",
    "dice_loss",
    "focal_loss",
    "focal_tversky_from_stats",
    "generalized_dice_from_stats",
    "generalized_dice_loss",
    "lovasz_hinge_loss",
    "lovasz_softmax_loss",
    "overlap_index",
    "region_stats",
    "tversky_from_stats",
    "tversky_loss",
]
