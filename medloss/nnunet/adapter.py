"""One deep-supervision scale's loss in nnU-Net's conventions (needs torch only, not nnU-Net).

nnU-Net hands a trainer's loss, at every scale, the network's logits (B, C, *S) and a target that is either

* a label map (B, 1, *S) of int16 class indices, possibly holding ``label_manager.ignore_label``; or
* for region-based training, (B, R, *S) region masks in {0, 1}, followed, when the dataset has an ignore label,
  by one more channel that is 1 where the voxel is ignored (nnU-Net's ``DC_and_BCE_loss`` layout).

:class:`NnunetLoss` turns the region layout into medloss's (the ignore channel removed, ignored voxels marked with
:data:`REGION_IGNORE` in every region channel, as medloss's losses mark them), returns a zero loss with a zero
gradient for a patch in which every voxel is ignored (sparse annotations give such patches; a mean over no voxel
would be NaN), and subtracts a constant so that values compare with nnU-Net's logs (nnU-Net's Dice term is -Dice,
medloss's 1 - Dice: the gradients are the same). A map-based loss (``map_key``) gets the scale's map, which the
trainer takes from the batch (:mod:`medloss.nnunet.maps`), as its forward keyword.
"""
from __future__ import annotations

import torch
from torch import nn

from medloss.errors import InvalidOptionError

#: the target value that marks an ignored voxel in region (sigmoid) targets handed to medloss's losses
REGION_IGNORE = -1


class NnunetLoss(nn.Module):
    """``loss(input, target) - offset`` with nnU-Net's targets converted to medloss's (see the module docstring).

    Args:
        loss: a medloss loss (or :class:`WeightedSum`, :class:`RebalancedSum`) taking (input, target).
        ignore_label: nnU-Net's ignore label (``label_manager.ignore_label``), None without one.
        regions: region-based training (``label_manager.has_regions``): the target is (B, R[+1], *S) masks.
        offset: subtracted from the loss (the Dice weight for trainers that reproduce nnU-Net's values); a
            :class:`RebalancedSum` subtracts its region term's weighted offset itself (its ``offset``).
        map_key: the forward keyword of the map ``loss`` needs ("skeleton", "components", "distance"); None for
            none. The map is then required: a loss that computed it itself would do it at every step.
    """

    def __init__(self, loss: nn.Module, *, ignore_label: int | None, regions: bool, offset: float = 0.0,
                 map_key: str | None = None) -> None:
        super().__init__()
        self.loss = loss
        self.ignore_label = ignore_label
        self.regions = bool(regions)
        self.offset = float(offset)
        self.map_key = map_key

    def forward(self, input: torch.Tensor, target: torch.Tensor, reference_map: torch.Tensor | None = None
                ) -> torch.Tensor:
        maps = {}
        if self.map_key is not None:
            if reference_map is None:
                raise InvalidOptionError(
                    f"this loss needs the {self.map_key} map of the batch as its third argument; medloss's "
                    "map-based nnU-Net trainers take it from the batch (medloss.nnunet.maps.LabelMapTransform).")
            maps[self.map_key] = reference_map
        elif reference_map is not None:
            raise InvalidOptionError("a map was passed to a loss that takes none; pass (input, target) only.")
        if self.regions:
            # region masks in the logits' dtype: medloss's fused sigmoid path takes floating targets, an int16 one
            # goes the eager way (8x the time, 7x the memory of BCEDiceLoss at 2x14x96^3 on CPU)
            target = target.to(input.dtype)
        if self.ignore_label is not None:
            if self.regions:
                ignored = target[:, -1:] != 0
                target = target[:, :-1].masked_fill(ignored, REGION_IGNORE)
                supervised = not bool(ignored.all())
            else:
                supervised = bool((target != self.ignore_label).any())
            if not supervised:  # nothing to learn from this patch: no NaN, no gradient, nnU-Net's value
                return input.sum() * 0.0 - self.offset - float(getattr(self.loss, "offset", 0.0))
        return self.loss(input, target, **maps) - self.offset


class WeightedSum(nn.Module):
    """``sum_i weight_i * loss_i(input, target)``: a medloss loss plus a (B)CE term, e.g. Tversky + CE; a map
    (keyword) goes to the first term, the medloss loss, only."""

    def __init__(self, terms: list[tuple[float, nn.Module]]) -> None:
        super().__init__()
        self.weights = [float(w) for w, _ in terms]
        self.terms = nn.ModuleList([loss for _, loss in terms])

    def forward(self, input: torch.Tensor, target: torch.Tensor, **maps: torch.Tensor) -> torch.Tensor:
        return sum(w * (loss(input, target, **maps) if i == 0 else loss(input, target))
                   for i, (w, loss) in enumerate(zip(self.weights, self.terms, strict=True)) if w != 0.0)


class RebalancedSum(nn.Module):
    """``w_R(e) * (region(input, target) - region_offset) + alpha(e) * loss(input, target, **maps)``.

    Kervadec et al.'s schedule for adding the boundary loss to a region loss: the boundary term starts small, as
    its value (the distance-weighted probabilities) says little while the prediction is far from the reference,
    and gains weight every epoch. At epoch e (0-based, set by :meth:`set_epoch`)::

        alpha(e) = alpha_start + alpha_step * e
        w_R(e)   = max(region_floor, 1 - alpha_step * e)

    With the defaults (0.01, 0.01, 0.1) this is the "rebalance" schedule of the authors' released code (their
    ``StealWeight`` scheduler: initial weights 1 and 0.01, 0.01 moved from the region term to the boundary term
    after each epoch, the region weight never below 0.1). Note that nnU-Net's 1000 epochs take alpha to 10.

    References:
        Kervadec, Bouchtiba, Desrosiers, Granger, Dolz, Ben Ayed, "Boundary loss for highly unbalanced
        segmentation", MIDL 2019 / Medical Image Analysis 67 (2021), arXiv:1812.07032.
    """

    def __init__(self, region: nn.Module, loss: nn.Module, *, region_offset: float = 0.0, alpha_start: float = 0.01,
                 alpha_step: float = 0.01, region_floor: float = 0.1) -> None:
        super().__init__()
        self.region = region
        self.loss = loss
        self.region_offset = float(region_offset)
        self.alpha_start = float(alpha_start)
        self.alpha_step = float(alpha_step)
        self.region_floor = float(region_floor)
        self.set_epoch(0)

    def weights(self, epoch: int) -> tuple[float, float]:
        """(w_R, alpha) at ``epoch``."""
        return max(self.region_floor, 1.0 - self.alpha_step * epoch), self.alpha_start + self.alpha_step * epoch

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s weights (nnU-Net's trainer calls it at every epoch start, resumed runs included)."""
        self.epoch = int(epoch)
        self.region_weight, self.alpha = self.weights(self.epoch)
        #: the constant subtracted from the sum (what a patch without supervised voxels gives, negated)
        self.offset = self.region_weight * self.region_offset

    def forward(self, input: torch.Tensor, target: torch.Tensor, **maps: torch.Tensor) -> torch.Tensor:
        region = self.region(input, target) - self.region_offset
        return self.region_weight * region + self.alpha * self.loss(input, target, **maps)
