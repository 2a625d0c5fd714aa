"""Blob loss: instance-imbalance-aware Dice (thin shell over :mod:`medloss.functional.blob`)."""
from __future__ import annotations

from collections.abc import Callable

import torch

from medloss.errors import InvalidOptionError, check_number
from medloss.functional.blob import blob_loss
from medloss.losses._base import RegionLoss


class BlobLoss(RegionLoss):
    """Blob loss (Kofler et al., IPMI 2023): global Dice plus the Dice of each reference lesion on its own, so every
    lesion counts once whatever its size::

        Dice term  D[b, c]   = 1 - (2 TP + smooth_nr) / (PRED + TARGET + smooth_dr)                (global)
        blob term  D_k       = the same on component k of class c, with channel c of the prediction zeroed at
                               the other components of class c (the paper's masking):
                               1 - (2 P_k + smooth_nr) / (FP_c + P_k + |k| + smooth_dr),  P_k = sum_{n in k} p_c
        B[b, c] = mean of D_k over the components k of class c in sample b
        L = main_weight mean_{b,c} D[b, c] + blob_weight mean_{(b,c) with components} B[b, c]

    Entries without a component (lesion-free samples, background) are left out of the blob mean, as the authors'
    code skips samples without blobs; with no component in the batch the blob term is 0.

    Components: a connected-component map (ids 1..K per sample, components of one class only) computed once per
    sample in the data loader (:class:`medloss.transforms.ConnectedComponentsd`), passed as
    ``forward(..., components=...)`` or packed as the extra last channel of ``target``. Without it the loss labels
    the targets with ``cc3d`` on the CPU every step and warns once.

    Cost: one pass over the voxels for the global tables plus one scatter-add of p over the component map (O(N),
    independent of the number of lesions K) and O(K) arithmetic; memory O(B K) besides the activation. The authors'
    loop evaluates the criterion on a masked copy of the volume per lesion, O(K N) time (nnU-Net#1532).

    Shapes:
        input: (B, C, H, W[, D]) logits (with an activation flag) or probabilities.
        target: (B, 1, ...) label map with ``to_onehot_y``, else (B, C, ...) one-hot (hard labels: components need
            them); one more channel carries a packed component map.
        output: scalar; for ``reduction="none"`` the (B, C') table main_weight D + blob_weight B (B = 0 where there
            is no component, so its mean is not the "mean" value, which averages B over the entries that have one).

    Args:
        main_weight, blob_weight: alpha and beta of the paper's L = alpha L_global + beta L_blob (2 and 1, the
            weighting of the paper's experiments).
        smooth_nr, smooth_dr: Dice smoothing (1e-5, MONAI's DiceLoss default, which the authors' code uses).
        connectivity: of the fallback's components (26 in 3-D, 8 in 2-D by default).
        include_background, to_onehot_y, sigmoid, softmax, other_act, ignore_index, reduction, check_input: as
            :class:`~medloss.losses.DiceLoss`; ignored voxels belong to no component and count in no sum.

    No ``batch`` option: the loss is per sample by definition, so it has no batch pooling to all-reduce under DDP.

    References:
        Kofler et al., "blob loss: instance imbalance aware loss functions for semantic segmentation", IPMI 2023,
        arXiv:2205.08209.
    """

    def __init__(
        self,
        main_weight: float = 2.0,
        blob_weight: float = 1.0,
        include_background: bool = True,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        other_act: Callable[[torch.Tensor], torch.Tensor] | None = None,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        connectivity: int | None = None,
        ignore_index: int | None = None,
        reduction: str = "mean",
        check_input: bool = True,
    ) -> None:
        super().__init__(include_background=include_background, to_onehot_y=to_onehot_y, sigmoid=sigmoid,
                         softmax=softmax, other_act=other_act, reduction=reduction, smooth_nr=smooth_nr,
                         smooth_dr=smooth_dr, ignore_index=ignore_index, check_input=check_input)
        self.main_weight = check_number("main_weight", main_weight, low=0)
        self.blob_weight = check_number("blob_weight", blob_weight, low=0)
        if connectivity is not None and connectivity not in (4, 6, 8, 18, 26):
            raise InvalidOptionError(f"`connectivity` must be 4 or 8 (2-D), 6, 18 or 26 (3-D), got {connectivity!r}.")
        self.connectivity = connectivity

    def forward(
        self, input: torch.Tensor, target: torch.Tensor, components: torch.Tensor | None = None
    ) -> torch.Tensor:
        return blob_loss(
            input, target, components=components, main_weight=self.main_weight, blob_weight=self.blob_weight,
            smooth_nr=self.smooth_nr, smooth_dr=self.smooth_dr, connectivity=self.connectivity,
            **self.activation_kwargs(),
        )
