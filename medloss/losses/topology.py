"""Topology-aware losses for thin and tubular structures: soft clDice and Skeleton Recall
(thin shells over :mod:`medloss.functional.topology`)."""
from __future__ import annotations

from collections.abc import Callable

import torch

from medloss.errors import InvalidOptionError, OptionTypeError, check_number
from medloss.functional import prepare
from medloss.functional.topology import check_recall_reduction, skeleton_recall_loss, soft_cldice_loss
from medloss.losses._base import ActivationFlags, MedlossLoss, RegionLoss, check_ignore_index


def _check_iter(iter_: object) -> int:
    if isinstance(iter_, bool) or not isinstance(iter_, int):
        raise OptionTypeError(f"`iter_` must be an int (soft-skeleton iterations), got {iter_!r}.")
    if iter_ < 0:
        raise InvalidOptionError(f"`iter_` must be >= 0, got {iter_}.")
    return iter_


class SoftclDiceLoss(RegionLoss):
    """Soft clDice loss (Shit et al., CVPR 2021); MONAI's ``SoftclDiceLoss`` arguments and defaults, per class.

    With p the activated input, g the one-hot target, v the validity mask and S the soft skeleton
    (``iter_`` iterations of soft erosion = min over the face-connected cross, soft dilation = max over the 3^d
    cube, see :func:`medloss.functional.topology.soft_skeleton`), per sample b and class c::

        Tprec = (sum_n v S(p) g + smooth_nr) / (sum_n v S(p) + smooth_dr)      topology precision
        Tsens = (sum_n v S(g) p + smooth_nr) / (sum_n v S(g) + smooth_dr)      topology sensitivity
        loss[b, c] = 1 - 2 Tprec Tsens / (Tprec + Tsens + smooth)

    The sums are TP/PRED/TARGET tables of the statistics core on (S(p), g) and (p, S(g)).

    Reference skeleton: by default S(g) is the soft skeleton of the target (as MONAI and the authors). A skeleton
    map computed once per sample in the data loader (:class:`medloss.transforms.ReferenceSkeletond` with
    ``tube=False``) is used instead when passed as ``forward(..., skeleton=...)`` or packed as the extra last channel
    of ``target``; it is exact for structures thicker than ``iter_`` voxels, where the soft skeleton of the target is
    incomplete.

    Shapes:
        input: (B, C, H, W[, D]) logits (with an activation flag) or probabilities.
        target: (B, 1, ...) label map with ``to_onehot_y``, else (B, C, ...) one-hot or soft; one more channel
            carries a packed skeleton map.
        output: scalar; (B, C') for ``reduction="none"`` ((1, C') with ``batch=True``), C' = C - 1 without
            background.

    Args:
        iter_: soft-skeleton iterations (3, MONAI's default; the radius of the thickest structure it skeletonises).
        smooth_nr, smooth_dr: added to the numerators / denominators of Tprec and Tsens (1.0 each, MONAI's).
        smooth: added to the denominator of the harmonic mean (1e-4, MONAI's).
        include_background, to_onehot_y, sigmoid, softmax, other_act, reduction: as :class:`~medloss.losses.DiceLoss`.
        batch: pool the tables over the batch (all ranks under DDP) before the ratios.
        ignore_index: label whose voxels are left out of every sum; they are set to 0 in p and g before the
            skeleton, so what the network predicts there changes nothing.
        check_input: validate values (labels, probabilities in [0, 1], no NaN).

    Differences from MONAI 1.6.1 (docs/monai-differences.md): the ratios are per class and then averaged
    (MONAI pools all channels of a sample into one ratio, so a large class hides a thin one; with one channel,
    e.g. binary vessels, the numbers are identical); ``reduction="none"`` is (B, C') (MONAI: (B,)); sums in
    float32 for fp16/bf16; logits without an activation are an error; ``ignore_index``, ``batch`` and a
    precomputed reference skeleton are added. The soft skeleton computes each erosion once (MONAI twice), with the
    same values.

    References:
        Shit et al., "clDice - a Novel Topology-Preserving Loss Function for Tubular Structure Segmentation",
        CVPR 2021, arXiv:2003.07311.
    """

    def __init__(
        self,
        iter_: int = 3,
        smooth_nr: float = 1.0,
        smooth_dr: float = 1.0,
        smooth: float = 1e-4,
        include_background: bool = True,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        other_act: Callable[[torch.Tensor], torch.Tensor] | None = None,
        reduction: str = "mean",
        batch: bool = False,
        ignore_index: int | None = None,
        check_input: bool = True,
    ) -> None:
        super().__init__(include_background=include_background, to_onehot_y=to_onehot_y, sigmoid=sigmoid,
                         softmax=softmax, other_act=other_act, reduction=reduction, smooth_nr=smooth_nr,
                         smooth_dr=smooth_dr, batch=batch, ignore_index=ignore_index, check_input=check_input)
        self.iter_ = _check_iter(iter_)
        self.smooth = check_number("smooth", smooth, low=0, low_open=True)

    def _options(self) -> dict:
        return dict(iter_=self.iter_, smooth_nr=self.smooth_nr, smooth_dr=self.smooth_dr, smooth=self.smooth,
                    batch=self.batch, **self.activation_kwargs())

    def forward(self, input: torch.Tensor, target: torch.Tensor, skeleton: torch.Tensor | None = None) -> torch.Tensor:
        return soft_cldice_loss(input, target, skeleton=skeleton, **self._options())


class SoftDiceclDiceLoss(SoftclDiceLoss):
    """(1 - alpha) Dice + alpha clDice per (sample, class); MONAI's ``SoftDiceclDiceLoss`` arguments and defaults::

        loss[b, c] = (1 - alpha) (1 - (2 TP + smooth_nr) / (PRED + TARGET + smooth_dr)) + alpha clDice[b, c]

    with clDice as :class:`SoftclDiceLoss` and TP, PRED, TARGET the Dice tables of (p, g) (the same smoothing, as
    MONAI). Same arguments, shapes and differences from MONAI as :class:`SoftclDiceLoss`, plus ``alpha`` in [0, 1]
    (0.5). MONAI's "none" output cannot be formed (its Dice part is (B, C, 1, ...), its clDice part (B,)); ours is
    (B, C').

    Args:
        alpha: the clDice share, in [0, 1] (0.5).

    The other arguments are :class:`SoftclDiceLoss`'s.

    References:
        Shit et al., CVPR 2021, arXiv:2003.07311 (Dice + clDice, Eq. 3).
    """

    def __init__(
        self,
        iter_: int = 3,
        alpha: float = 0.5,
        smooth_nr: float = 1.0,
        smooth_dr: float = 1.0,
        smooth: float = 1e-4,
        include_background: bool = True,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        other_act: Callable[[torch.Tensor], torch.Tensor] | None = None,
        reduction: str = "mean",
        batch: bool = False,
        ignore_index: int | None = None,
        check_input: bool = True,
    ) -> None:
        super().__init__(
            iter_=iter_, smooth_nr=smooth_nr, smooth_dr=smooth_dr, smooth=smooth,
            include_background=include_background, to_onehot_y=to_onehot_y, sigmoid=sigmoid, softmax=softmax,
            other_act=other_act, reduction=reduction, batch=batch, ignore_index=ignore_index, check_input=check_input,
        )
        self.alpha = check_number("alpha", alpha, low=0, high=1)  # the clDice share

    def forward(self, input: torch.Tensor, target: torch.Tensor, skeleton: torch.Tensor | None = None) -> torch.Tensor:
        return soft_cldice_loss(input, target, skeleton=skeleton, alpha=self.alpha, **self._options())


class SkeletonRecallLoss(ActivationFlags, MedlossLoss):
    """Skeleton Recall loss (Kirchhoff et al., ECCV 2024) with the paper's Dice + CE, as nnU-Net's trainer::

        recall[b, c] = (sum_n v p_c K_c + smooth) / (sum_n v K_c + smooth)
        L = lambda_ce CE + lambda_dice Dice + weight_srec mean_{b,c} (1 - recall[b, c])

    K is the **tubed reference skeleton**: the skeleton of the foreground, dilated twice with the face-connected
    cross and restricted to the foreground, each voxel holding its class, computed once per sample in the data
    loader (:class:`medloss.transforms.ReferenceSkeletond`) and passed as ``forward(..., skeleton=...)`` or packed as
    the extra last channel of ``target``. Without it the loss skeletonises the targets on the CPU every step and
    warns once. Dice is the soft Dice without background (``smooth`` in numerator and denominator), CE the
    cross-entropy on the logits (BCE for one channel), both with ``ignore_index``; classes are the foreground ones
    (a single sigmoid channel is the foreground).

    Shapes:
        input: (B, C, H, W[, D]) logits (``softmax``, or ``sigmoid`` with one channel).
        target: (B, 1, ...) label map (``to_onehot_y``) or (B, C, ...) one-hot, plus an optional packed skeleton.
        output: scalar; with ``lambda_dice = lambda_ce = 0`` and ``reduction="none"`` the (B, C') table of
        1 - recall ((1, C') with ``batch``); "none" with a Dice/CE term raises (a compound has no common shape).

    Args:
        weight_srec, lambda_dice, lambda_ce: term weights (1, 1, 1: nnU-Net's ``nnUNetTrainerSkeletonRecall``).
        tube: dilate the skeleton computed in the fallback (the transform has its own ``tube``).
        smooth: 1e-5, as the authors' trainer, for recall and Dice.
        batch: pool the recall and Dice tables over the batch (all ranks under DDP), nnU-Net's batch Dice.
        ignore_index, check_input, to_onehot_y, sigmoid, softmax, reduction: as the other losses.

    Differences from the authors' code: the Dice and recall terms are 1 - ratio where theirs return -ratio (a
    constant lambda_dice + weight_srec apart, same gradients).

    References:
        Kirchhoff, Ulrich, et al., "Skeleton Recall Loss for Connectivity Conserving and Resource Efficient
        Segmentation of Thin Tubular Structures", ECCV 2024, arXiv:2404.03010.
    """

    def __init__(
        self,
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
    ) -> None:
        super().__init__(reduction=reduction, check_input=check_input)
        prepare.check_activation_options(sigmoid, softmax, None)
        self.weight_srec = check_number("weight_srec", weight_srec, low=0)
        self.lambda_dice = check_number("lambda_dice", lambda_dice, low=0)
        self.lambda_ce = check_number("lambda_ce", lambda_ce, low=0)
        check_recall_reduction(self.reduction, self.lambda_dice, self.lambda_ce)
        self.tube = bool(tube)
        self.smooth = check_number("smooth", smooth, low=0)
        self.to_onehot_y = bool(to_onehot_y)
        self.activation = prepare.activation_of(sigmoid=sigmoid, softmax=softmax)
        self.batch = bool(batch)
        self.ignore_index = check_ignore_index(ignore_index)

    def forward(self, input: torch.Tensor, target: torch.Tensor, skeleton: torch.Tensor | None = None) -> torch.Tensor:
        return skeleton_recall_loss(
            input, target, skeleton=skeleton, weight_srec=self.weight_srec, lambda_dice=self.lambda_dice,
            lambda_ce=self.lambda_ce, tube=self.tube, smooth=self.smooth, to_onehot_y=self.to_onehot_y,
            sigmoid=self.sigmoid, softmax=self.softmax, batch=self.batch, ignore_index=self.ignore_index,
            reduction=self.reduction, check_input=self.check_input,
        )
