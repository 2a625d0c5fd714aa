"""Distance-map losses: boundary loss and the distance-transform Hausdorff loss (shells over
:mod:`medloss.functional.boundary`)."""
from __future__ import annotations

from collections.abc import Callable, Sequence, Sized

import torch

from medloss.errors import check_number
from medloss.functional.boundary import boundary_loss, hausdorff_dt_loss
from medloss.functional.distance import check_spacing
from medloss.losses._base import RegionLoss


class _DistanceLoss(RegionLoss):
    """Options shared by the distance-map losses."""

    def __init__(self, *, include_background: bool, to_onehot_y: bool, sigmoid: bool, softmax: bool,
                 other_act: Callable[[torch.Tensor], torch.Tensor] | None, ignore_index: int | None,
                 spacing: float | Sequence[float] | None, reduction: str, check_input: bool,
                 batch: bool = False) -> None:
        super().__init__(include_background=include_background, to_onehot_y=to_onehot_y, sigmoid=sigmoid,
                         softmax=softmax, other_act=other_act, ignore_index=ignore_index, reduction=reduction,
                         check_input=check_input, batch=batch)
        scalar = isinstance(spacing, (int, float)) and not isinstance(spacing, bool)
        checked = check_spacing(spacing, 1 if scalar or not isinstance(spacing, Sized) else len(spacing))
        self.spacing: float | Sequence[float] | None = checked
        self.spacing = spacing if scalar else self.spacing  # a number is expanded to the input's axes per call

    def distance_kwargs(self) -> dict:
        return dict(spacing=self.spacing, **self.activation_kwargs())


class BoundaryLoss(_DistanceLoss):
    """Boundary loss (Kervadec et al.): the predicted probabilities weighted by the reference's signed distance::

        L_{b,c} = (1 / |Omega_b|) sum_{q in Omega_b} p_{b,c}(q) phi_{b,c}(q)

    phi = D_out - D_in is the signed distance map of class c in the reference (negative inside, positive outside,
    in units of ``spacing``; 0 for a class absent from, or filling, the sample) and Omega_b the voxels that count
    (all but ``ignore_index``). The loss is minimal when p covers exactly the reference: it integrates the distance
    to the reference boundary over the region between the two boundaries. Usually added to a region loss (the
    paper: GDL + a * boundary, a rising during training), as it is negative and unbounded below by design.

    The maps come from the data loader (:class:`medloss.transforms.SignedDistanceMapd`, computed once per sample),
    either stacked after the target channels (what the transform does by default, so a bundle's trainer passes
    them unchanged) or as the ``distance`` keyword, (B, C, *S) one map per input channel. Without them the loss
    computes them from the target at every call (CPU distance transforms) and warns once.

    The authors' code shifts the inside distances by one (phi_authors = phi + g, the inner boundary layer at 0);
    this class uses phi as defined in the paper. Given the same map, the values equal their ``SurfaceLoss``
    (``tests/reference/data/boundary_authors.json``).

    Shapes:
        input: (B, C, *S) logits (with ``softmax``/``sigmoid``/``other_act``) or probabilities.
        target: (B, 1, *S) label map (``to_onehot_y=True``) or (B, C, *S) one-hot, optionally followed by C map
            channels; distance: (B, C, *S) or None.
        output: scalar; (B, C') for ``reduction="none"`` (C' = C - 1 without background).

    Args:
        include_background: score class 0 too (the authors score the foreground classes only: set False).
        spacing: voxel spacing for maps computed here (match the transform's).
        ignore_index: label value whose voxels count in no mean.

    References:
        Kervadec, Bouchtiba, Desrosiers, Granger, Dolz, Ben Ayed, "Boundary loss for highly unbalanced
        segmentation", MIDL 2019 / Medical Image Analysis 67 (2021), arXiv:1812.07032.
    """

    def __init__(
        self,
        include_background: bool = True,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        other_act: Callable[[torch.Tensor], torch.Tensor] | None = None,
        reduction: str = "mean",
        ignore_index: int | None = None,
        spacing: float | Sequence[float] | None = None,
        check_input: bool = True,
    ) -> None:
        super().__init__(include_background=include_background, to_onehot_y=to_onehot_y, sigmoid=sigmoid,
                         softmax=softmax, other_act=other_act, ignore_index=ignore_index, spacing=spacing,
                         reduction=reduction, check_input=check_input)

    def forward(self, input: torch.Tensor, target: torch.Tensor, distance: torch.Tensor | None = None) -> torch.Tensor:
        return boundary_loss(input, target, distance, **self.distance_kwargs())


class HausdorffDTLoss(_DistanceLoss):
    """Hausdorff distance loss by distance transforms (Karimi & Salcudean, "HD-DT"); MONAI's name and defaults::

        L_{b,c} = (1 / |Omega_b|) sum_q (p_{b,c}(q) - g_{b,c}(q))^2 (d_p(q)^alpha + d_g(q)^alpha)

    d_g = |phi| is the reference's distance field (distance to the other side of its boundary, 0 for an empty or
    full class), d_p the same field of the thresholded prediction p > 0.5, recomputed at every call without
    gradient. With ``batch=True`` the sums and voxel counts are pooled over the (global, under DDP) batch.

    Same numbers and gradients as ``monai.losses.HausdorffDTLoss`` (tests/losses/test_distance_losses.py), and:
    d_g comes precomputed from the loader (:class:`medloss.transforms.SignedDistanceMapd`, stacked after the target
    channels or as ``distance``) instead of being recomputed every step; the fields use the ``edt`` package on the
    CPU (multi-label, one pass per map); ``spacing`` gives physical distances; ``ignore_index``; and
    ``reduction="none"`` returns (B, C') (MONAI: (B, C', 1, ..., 1)).

    Shapes: as :class:`BoundaryLoss`; output scalar, (B, C') or (1, C') with ``batch=True`` for "none".

    Args:
        alpha: exponent of the distances (default 2, the paper's).
        include_background: default False, as MONAI.

    References:
        Karimi, Salcudean, "Reducing the Hausdorff distance in medical image segmentation with convolutional
        neural networks", IEEE TMI 39(2):499-513, 2020, arXiv:1904.10030.
    """

    def __init__(
        self,
        alpha: float = 2.0,
        include_background: bool = False,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        other_act: Callable[[torch.Tensor], torch.Tensor] | None = None,
        reduction: str = "mean",
        batch: bool = False,
        ignore_index: int | None = None,
        spacing: float | Sequence[float] | None = None,
        check_input: bool = True,
    ) -> None:
        super().__init__(include_background=include_background, to_onehot_y=to_onehot_y, sigmoid=sigmoid,
                         softmax=softmax, other_act=other_act, ignore_index=ignore_index, spacing=spacing,
                         reduction=reduction, check_input=check_input, batch=batch)
        self.alpha = check_number("alpha", alpha, low=0, low_open=True)

    def forward(self, input: torch.Tensor, target: torch.Tensor, distance: torch.Tensor | None = None) -> torch.Tensor:
        return hausdorff_dt_loss(input, target, distance, alpha=self.alpha, batch=self.batch,
                                 **self.distance_kwargs())


class LogHausdorffDTLoss(HausdorffDTLoss):
    """log(1 + :class:`HausdorffDTLoss`), applied after the reduction (element-wise for ``reduction="none"``); a
    drop-in for ``monai.losses.LogHausdorffDTLoss``, with the same arguments, shapes and precomputed ``distance``.

    The logarithm compresses large distance losses early in training while keeping the gradient direction
    (d/dL log(1 + L) = 1 / (1 + L)).

    References:
        Karimi & Salcudean, "Reducing the Hausdorff Distance in Medical Image Segmentation with Convolutional
        Neural Networks", IEEE TMI 2020, arXiv:1904.10030.
    """

    def forward(self, input: torch.Tensor, target: torch.Tensor, distance: torch.Tensor | None = None) -> torch.Tensor:
        return torch.log1p(super().forward(input, target, distance))
