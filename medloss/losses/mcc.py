"""Matthews correlation coefficient loss (a thin shell over :mod:`medloss.functional.region`)."""
from __future__ import annotations

from collections.abc import Callable

import torch

from medloss.functional.region import mcc_loss
from medloss.losses._base import RegionLoss


class MCCLoss(RegionLoss):
    """Matthews correlation coefficient loss (Abhishek & Hamarneh, ISBI 2021); a drop-in for
    ``monai.losses.MCCLoss``.

    Unlike Dice and Tversky, MCC uses all four entries of the soft confusion matrix, so the true negatives (the
    dominant background) enter the score. Per sample b and class c (per class with ``batch=True``), with TP, FP,
    FN as in :class:`DiceLoss` and TN = sum_n v (1 - p)(1 - g) = VOXELS - PRED - TARGET + TP::

        loss[b, c] = 1 - (TP TN - FP FN + smooth_nr) / sqrt((TP + FP)(TP + FN)(TN + FP)(TN + FN) + smooth_dr)

    and 0 where FP = FN = 0 (a perfect prediction, whose MCC the smoothing would otherwise pull towards 0).
    The tables come from the same operator as Dice's, so ``softmax=True, to_onehot_y=True`` runs without a one-hot
    tensor, and ``ignore_index`` leaves voxels out of all four entries.

    Shapes:
        input, target: as :class:`DiceLoss`.
        output: scalar; (B, C') for ``reduction="none"``, (C',) with ``batch=True`` (MONAI's shapes).

    Args:
        smooth_nr, smooth_dr: additive smoothing of numerator (default 0) and of the product under the root
            (default 1e-5), MONAI's defaults.
        ignore_index: label value whose voxels are left out of every entry (medloss extra).
        check_input: validate values (labels in range, probabilities in [0, 1], no NaN); default True.

    Other arguments as :class:`DiceLoss`.

    Differences from MONAI 1.6.1: as :class:`DiceLoss` (an error for logits without activation and for
    ``softmax`` on one channel; sums in float32 for half-precision input).

    References:
        Abhishek & Hamarneh, "Matthews Correlation Coefficient Loss for Deep Convolutional Networks: Application to
        Skin Lesion Segmentation", IEEE ISBI 2021, arXiv:2010.13454.
        Matthews, "Comparison of the predicted and observed secondary structure of T4 phage lysozyme",
        Biochim. Biophys. Acta 1975.

    Example:
        >>> import torch
        >>> loss = MCCLoss(softmax=True, to_onehot_y=True)
        >>> loss(torch.randn(2, 3, 8, 8, 8), torch.randint(0, 3, (2, 1, 8, 8, 8))).shape
        torch.Size([])
    """

    def __init__(
        self,
        include_background: bool = True,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        other_act: Callable[[torch.Tensor], torch.Tensor] | None = None,
        reduction: str = "mean",
        smooth_nr: float = 0.0,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        ignore_index: int | None = None,
        check_input: bool = True,
    ) -> None:
        super().__init__(
            include_background=include_background, to_onehot_y=to_onehot_y, sigmoid=sigmoid, softmax=softmax,
            other_act=other_act, reduction=reduction, smooth_nr=smooth_nr, smooth_dr=smooth_dr, batch=batch,
            soft_label=None, ignore_index=ignore_index, check_input=check_input,
        )

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return mcc_loss(input, target, **self.region_options())
