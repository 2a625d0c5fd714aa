"""Tversky and Focal-Tversky losses (thin shells over :mod:`medloss.functional.region`)."""
from __future__ import annotations

from collections.abc import Callable

import torch

from medloss.errors import check_number
from medloss.functional.region import FOCAL_TVERSKY_EPS, tversky_loss
from medloss.losses._base import RegionLoss


class TverskyLoss(RegionLoss):
    """Tversky loss; a drop-in for ``monai.losses.TverskyLoss``.

    Per sample b and class c (per class when ``batch=True``), computed **per class, then averaged** (summing FP and
    FN over all classes first would make sum FP = sum FN and erase the asymmetry)::

        TI[b, c]   = (TP + smooth_nr) / (TP + alpha FP + beta FN + smooth_dr)
        loss[b, c] = 1 - TI[b, c]

    with TP = sum v p g, FP = sum v p (1 - g), FN = sum v (1 - p) g (see :class:`~medloss.losses.DiceLoss`).
    alpha = beta = 0.5 is Dice, alpha = beta = 1 Jaccard; beta > alpha favours recall (small lesions).

    Shapes:
        input, target: as :class:`~medloss.losses.DiceLoss`.
        output: scalar; (B, C') for ``reduction="none"`` ((1, C') with ``batch=True``).

    Args:
        alpha: weight of false positives (default 0.5).
        beta: weight of false negatives (default 0.5). Salehi et al. report alpha = 0.3, beta = 0.7 for lesions.

    Other arguments as :class:`~medloss.losses.DiceLoss` (no ``squared_pred``/``weight``, as MONAI).

    References:
        Salehi, Erdogmus, Gholipour, "Tversky loss function for image segmentation using 3D fully convolutional
        deep networks", MLMI 2017, arXiv:1706.05721.
    """

    def __init__(
        self,
        include_background: bool = True,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        other_act: Callable[[torch.Tensor], torch.Tensor] | None = None,
        alpha: float = 0.5,
        beta: float = 0.5,
        reduction: str = "mean",
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        soft_label: bool = False,
        ignore_index: int | None = None,
        check_input: bool = True,
    ) -> None:
        super().__init__(
            include_background=include_background, to_onehot_y=to_onehot_y, sigmoid=sigmoid, softmax=softmax,
            other_act=other_act, reduction=reduction, smooth_nr=smooth_nr, smooth_dr=smooth_dr, batch=batch,
            soft_label=soft_label, ignore_index=ignore_index, check_input=check_input,
        )
        self.alpha = check_number("alpha", alpha, low=0)
        self.beta = check_number("beta", beta, low=0)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return tversky_loss(input, target, alpha=self.alpha, beta=self.beta, **self.region_options())


class FocalTverskyLoss(TverskyLoss):
    """Focal Tversky loss (Abraham & Khan, ISBI 2019), the exponent applied **per class** before the mean::

        loss[b, c] = (1 - TI[b, c]) ^ (1 / gamma)

    with TI the Tversky index of :class:`TverskyLoss`. Defaults are the paper's: gamma = 4/3 (exponent 0.75) and
    0.7 on false negatives, 0.3 on false positives — in MONAI's naming ``alpha=0.3`` (FP), ``beta=0.7`` (FN).
    For gamma > 1 the exponent is below 1 and its derivative is infinite at a perfect class (TI = 1); the base is
    clamped to at least 1e-7 (:data:`medloss.functional.region.FOCAL_TVERSKY_EPS`), so the gradient magnitude is
    bounded by (1/gamma) * 1e-7^(1/gamma - 1) times that of the Tversky loss, and is 0 once 1 - TI < 1e-7.

    Shapes, other arguments: as :class:`TverskyLoss`.

    Args:
        gamma: focal parameter; the exponent is 1/gamma (paper's range 1..3, best 4/3).

    References:
        Abraham & Khan, "A novel focal Tversky loss function with improved attention U-Net for lesion
        segmentation", ISBI 2019, arXiv:1810.07842.
    """

    def __init__(
        self,
        include_background: bool = True,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        other_act: Callable[[torch.Tensor], torch.Tensor] | None = None,
        alpha: float = 0.3,
        beta: float = 0.7,
        gamma: float = 4.0 / 3.0,
        reduction: str = "mean",
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        soft_label: bool = False,
        ignore_index: int | None = None,
        check_input: bool = True,
    ) -> None:
        super().__init__(
            include_background=include_background, to_onehot_y=to_onehot_y, sigmoid=sigmoid, softmax=softmax,
            other_act=other_act, alpha=alpha, beta=beta, reduction=reduction, smooth_nr=smooth_nr,
            smooth_dr=smooth_dr, batch=batch, soft_label=soft_label, ignore_index=ignore_index,
            check_input=check_input,
        )
        self.gamma = check_number("gamma", gamma, low=0, low_open=True)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return tversky_loss(
            input, target, alpha=self.alpha, beta=self.beta, gamma=self.gamma, **self.region_options()
        )


__all__ = ["FOCAL_TVERSKY_EPS", "FocalTverskyLoss", "TverskyLoss"]
