"""Neighbour-aware calibration loss (a thin shell over :mod:`medloss.functional.calibration`)."""
from __future__ import annotations

import torch

from medloss.errors import InvalidOptionError, check_choice, check_number
from medloss.functional import prepare
from medloss.functional.calibration import DISTANCE_TYPES, KERNEL_OPS, nacl_loss
from medloss.losses._base import MedlossLoss, check_ignore_index


class NACLLoss(MedlossLoss):
    """Neighbour-aware calibration loss (Murugesan et al., MICCAI 2023); a drop-in for ``monai.losses.NACLLoss``.

    Cross-entropy plus a linear penalty that pulls each logit towards the proportion of its class among the
    neighbouring voxels of the reference, which keeps the network's confidence in line with the local label mix
    (better calibrated at boundaries)::

        loss = CE(x, y) + alpha * mean |K * onehot(y) - x|      (distance_type="l1"; "l2" squares it)

    K is a ``kernel_size``^dim box mean (``kernel_ops="mean"``) or a Gaussian of ``sigma`` voxels truncated at
    4 sigma (``"gaussian"``), with zero padding (:mod:`medloss.functional.calibration`).

    Shapes:
        input: (B, C, *S) logits with C = ``classes`` and ``dim`` spatial axes.
        target: (B, *S) or (B, 1, *S) label map.
        output: scalar (MONAI's NACLLoss has no ``reduction``).

    Args:
        classes: number of classes C (input channels).
        dim: spatial dimensions, 2 or 3.
        kernel_size: edge of the box kernel (``kernel_ops="mean"``).
        kernel_ops: "mean" | "gaussian".
        distance_type: "l1" | "l2".
        alpha: weight of the penalty (0.1).
        sigma: Gaussian width in voxels (``kernel_ops="gaussian"``).
        ignore_index: label value left out of the cross-entropy and of the penalty (torch's -100, as MONAI's
            ``nn.CrossEntropyLoss``; medloss extra for the penalty).
        check_input: validate values (finite logits, labels in range); default True.

    Differences from MONAI 1.6.1: labels are checked and a channel count other than ``classes`` or a spatial rank
    other than ``dim`` is a typed error (MONAI fails inside ``one_hot`` or the convolution).

    References:
        Murugesan et al., "Trust your neighbours: Penalty-based constraints for model calibration", MICCAI 2023,
        arXiv:2303.06268.
        Murugesan et al., "Neighbor-Aware Calibration of Segmentation Networks with Penalty-Based Constraints",
        arXiv:2401.14487.

    Example:
        >>> import torch
        >>> loss = NACLLoss(classes=3, dim=3)
        >>> loss(torch.randn(2, 3, 8, 8, 8), torch.randint(0, 3, (2, 8, 8, 8))).shape
        torch.Size([])
    """

    def __init__(
        self,
        classes: int,
        dim: int,
        kernel_size: int = 3,
        kernel_ops: str = "mean",
        distance_type: str = "l1",
        alpha: float = 0.1,
        sigma: float = 1.0,
        ignore_index: int | None = -100,
        check_input: bool = True,
    ) -> None:
        super().__init__(reduction="mean", check_input=check_input)
        self.classes = int(check_number("classes", classes, low=2, integer=True))
        self.dim = int(check_number("dim", dim, low=2, high=3, integer=True))
        self.kernel_size = int(check_number("kernel_size", kernel_size, low=1, integer=True))
        self.kernel_ops = check_choice("kernel_ops", kernel_ops, KERNEL_OPS)
        self.distance_type = check_choice("distance_type", distance_type, DISTANCE_TYPES)
        self.alpha = check_number("alpha", alpha, low=0)
        self.sigma = check_number("sigma", sigma, low=0, low_open=True)
        self.ignore_index = check_ignore_index(ignore_index)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        prepare.check_input_tensor(input)
        if input.ndim != self.dim + 2:
            raise InvalidOptionError(
                f"`input` has {input.ndim - 2} spatial dimensions but the loss was built with `dim`={self.dim}."
            )
        return nacl_loss(
            input, target, classes=self.classes, kernel_ops=self.kernel_ops, kernel_size=self.kernel_size,
            sigma=self.sigma, distance_type=self.distance_type, alpha=self.alpha, ignore_index=self.ignore_index,
            check_input=self.check_input,
        )
