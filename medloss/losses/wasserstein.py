"""Generalized Wasserstein Dice loss (a thin shell over :mod:`medloss.functional.wasserstein`)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from medloss.errors import check_choice
from medloss.functional.region import check_region_options
from medloss.functional.wasserstein import (
    WEIGHTING_MODES,
    distance_matrix,
    generalized_wasserstein_dice_loss,
    wasserstein_options,
)
from medloss.losses._base import MedlossLoss, check_ignore_index

if TYPE_CHECKING:
    import numpy as np


class GeneralizedWassersteinDiceLoss(MedlossLoss):
    """Generalized Wasserstein Dice loss (Fidon et al., BrainLes 2017); a drop-in for
    ``monai.losses.GeneralizedWassersteinDiceLoss``.

    Each voxel's error is the Wasserstein distance between its softmax distribution and its label under the class
    distance matrix M (scaled to a maximum of 1), WE_i = sum_c M[y_i, c] p_ic, so confusing two similar classes
    (e.g. edema and necrosis in BraTS) costs less than confusing tumour with background. Per sample b::

        TP = sum_i a_{y_i} (1 - WE_i)      a = (0, 1, ..., 1) ("default", the paper) or 1 / (n_k + 1) ("GDL")
        loss[b] = 1 - (2 TP + smooth_nr) / (2 TP + sum_i WE_i + smooth_dr)               ("default")
        loss[b] = 1 - (2 TP + smooth_nr) / (sum_i a_{y_i} (2 - WE_i) + smooth_dr)        ("GDL")

    computed from two (B, C) tables of the table operator, the per-class sums of WE_i and the class counts, in one
    pass without a one-hot tensor on every engine (:mod:`medloss.functional.wasserstein`). Class 0 is the
    background in the "default" weighting.

    Shapes:
        input: (B, C, *S) logits (softmax is always applied, as in MONAI).
        target: (B, 1, *S) or (B, *S) label map with values in [0, C).
        output: scalar; (B,) for ``reduction="none"`` ((1,) with ``batch=True``).

    Args:
        dist_matrix: C x C distances between classes (numpy array, tensor or nested list), >= 0, not all 0.
        weighting_mode: "default" | "GDL".
        reduction: "mean" | "sum" | "none".
        smooth_nr, smooth_dr: additive smoothing of numerator and denominator.
        batch: pool the tables over the (DDP-global) batch before the ratio (medloss extra).
        ignore_index: label value whose voxels are left out of every sum (medloss extra).
        check_input: validate values (finite logits, labels in range); default True.

    Differences from MONAI 1.6.1: labels are checked (MONAI truncates float labels with ``.long()`` and fails with
    an index error on out-of-range ones); an all-zero or negative ``dist_matrix`` is refused (MONAI divides by 0).

    References:
        Fidon et al., "Generalised Wasserstein Dice Score for Imbalanced Multi-class Segmentation using Holistic
        Convolutional Networks", BrainLes 2017, arXiv:1707.00478.
        Tilborghs et al., arXiv:2007.15546 (the "GDL" weighting).

    Example:
        >>> import numpy as np, torch
        >>> m = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.5], [1.0, 0.5, 0.0]])
        >>> loss = GeneralizedWassersteinDiceLoss(dist_matrix=m)
        >>> loss(torch.randn(2, 3, 8, 8, 8), torch.randint(0, 3, (2, 1, 8, 8, 8))).shape
        torch.Size([])
    """

    dist_matrix: torch.Tensor

    def __init__(
        self,
        dist_matrix: np.ndarray | torch.Tensor | Sequence[Sequence[float]],
        weighting_mode: str = "default",
        reduction: str = "mean",
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        ignore_index: int | None = None,
        check_input: bool = True,
    ) -> None:
        super().__init__(reduction=reduction, check_input=check_input)
        check_region_options(smooth_nr=smooth_nr, smooth_dr=smooth_dr)
        self.register_buffer("dist_matrix", distance_matrix(dist_matrix))
        self.weighting_mode = check_choice("weighting_mode", weighting_mode, WEIGHTING_MODES)
        self.smooth_nr = float(smooth_nr)
        self.smooth_dr = float(smooth_dr)
        self.batch = bool(batch)
        self.ignore_index = check_ignore_index(ignore_index)
        self._tables = wasserstein_options(self.dist_matrix, ignore_index=self.ignore_index,
                                           check_input=self.check_input)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        # a loaded `dist_matrix` replaces the buffer's values: the operator's options must carry the same matrix
        self._tables = wasserstein_options(self.dist_matrix, ignore_index=self.ignore_index,
                                           check_input=self.check_input)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return generalized_wasserstein_dice_loss(
            input, target, self.dist_matrix, weighting_mode=self.weighting_mode, reduction=self.reduction,
            smooth_nr=self.smooth_nr, smooth_dr=self.smooth_dr, batch=self.batch, ignore_index=self.ignore_index,
            check_input=self.check_input, options=self._tables,
        )
