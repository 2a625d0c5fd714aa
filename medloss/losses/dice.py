"""Dice, Jaccard and Generalized Dice losses (thin shells over :mod:`medloss.functional.region`)."""
from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch

from medloss.errors import InputRangeError, ShapeMismatchError, check_choice
from medloss.functional import prepare
from medloss.functional import reduce as _reduce
from medloss.functional.region import EMPTY_POLICIES, W_TYPES, dice_loss, generalized_dice_loss
from medloss.functional.region_options import RegionOptions
from medloss.losses._base import RegionLoss


class DiceLoss(RegionLoss):
    """Soft Dice loss for 2-D/3-D multi-class segmentation; a drop-in for ``monai.losses.DiceLoss``.

    Per sample b and class c (per class only when ``batch=True``), with p the activated input, g the one-hot
    target and v the validity mask (0 at ``ignore_index`` voxels)::

        TP = sum_n v p g        PRED = sum_n v p^e        TARGET = sum_n v g^e      (e = 2 if squared_pred else 1)
        loss[b, c] = 1 - (2 TP + smooth_nr) / (PRED + TARGET + smooth_dr)                       (Dice)
        loss[b, c] = 1 - (2 TP + smooth_nr) / (2 (PRED + TARGET - TP) + smooth_dr)             (jaccard=True)

    then multiplied by ``weight[c]`` and reduced. With ``soft_label=True``, TP = sum_n v min(p, g) (the
    soft-label form of Wang & Blaschko, "Dice semimetric losses", MICCAI 2023, as in MONAI).

    Shapes:
        input: (B, C, *S) logits (with ``sigmoid``/``softmax``/``other_act``) or probabilities in [0, 1].
        target: (B, 1, *S) or (B, *S) label map if ``to_onehot_y``, else (B, C, *S) one-hot (or soft).
        output: scalar; (B, C') for ``reduction="none"`` ((1, C') with ``batch=True``), C' = C - 1 without
        background. (MONAI returns (B, C, 1, 1, 1) there; squeeze-compatible.)

    Args:
        include_background: keep channel 0. The activation is applied first, so softmax is over all classes.
        to_onehot_y: one-hot encode a label-map target. With ``softmax`` this runs without building a one-hot
            tensor (:mod:`medloss.functional.stats`).
        sigmoid, softmax, other_act: activation of ``input`` (mutually exclusive). With none of them the input
            must be probabilities: values outside [0, 1] raise :class:`~medloss.errors.InputRangeError`
            (MONAI silently returns a negative loss on logits).
        squared_pred: V-Net denominator sum p^2 + sum g^2 (Milletari et al., 3DV 2016).
        jaccard: Jaccard (IoU) loss instead of Dice, in MONAI's form.
        reduction: "mean" | "sum" | "none".
        smooth_nr, smooth_dr: additive smoothing of numerator and denominator (default 1e-5 each).
        batch: pool the statistics over the batch before the ratio (batch Dice, as nnU-Net).
        weight: per-class weights (scalar or C' values) multiplying the per-class losses; ignored when one class
            is scored (C' = 1), as MONAI: class weights rebalance classes.
        soft_label: targets hold probabilities, not 0/1 values.
        ignore_index: label value whose voxels are left out of every sum (and so of every denominator).
        check_input: validate values (labels in range, probabilities in [0, 1], no NaN); default True.

    Differences from MONAI 1.6.1 (tests check ours): sums in float32 for fp16/bf16 input (MONAI returns 1.0 with
    zero gradient on fp16 64^3 volumes); a clear error instead of a negative loss for logits without activation;
    ``softmax`` with one channel is an error instead of a warning; ``reduction="none"`` is (B, C).

    References:
        Milletari, Navab, Ahmadi, "V-Net", 3DV 2016, arXiv:1606.04797.
        Sudre et al., "Generalised Dice overlap as a deep learning loss function ...", DLMIA 2017, arXiv:1707.03237.

    Example:
        >>> import torch
        >>> loss = DiceLoss(softmax=True, to_onehot_y=True)
        >>> logits = torch.randn(2, 3, 8, 8, 8, requires_grad=True)
        >>> labels = torch.randint(0, 3, (2, 1, 8, 8, 8))
        >>> loss(logits, labels).shape
        torch.Size([])
    """

    class_weight: torch.Tensor | None

    def __init__(
        self,
        include_background: bool = True,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        other_act: Callable[[torch.Tensor], torch.Tensor] | None = None,
        squared_pred: bool = False,
        jaccard: bool = False,
        reduction: str = "mean",
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        weight: Sequence[float] | float | torch.Tensor | None = None,
        soft_label: bool = False,
        ignore_index: int | None = None,
        check_input: bool = True,
    ) -> None:
        super().__init__(
            include_background=include_background, to_onehot_y=to_onehot_y, sigmoid=sigmoid, softmax=softmax,
            other_act=other_act, reduction=reduction, smooth_nr=smooth_nr, smooth_dr=smooth_dr, batch=batch,
            soft_label=soft_label, ignore_index=ignore_index, check_input=check_input, squared_pred=squared_pred,
            jaccard=jaccard,
        )
        self.register_buffer("class_weight", _reduce.class_weight_tensor(weight))

    squared_pred = property(lambda self: self.options.squared_pred)
    jaccard = property(lambda self: self.options.jaccard)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return dice_loss(input, target, weight=self.class_weight, **self.region_options())


class JaccardLoss(DiceLoss):
    """Soft Jaccard (IoU) loss: :class:`DiceLoss` with ``jaccard=True`` (same arguments and shapes)::

        loss[b, c] = 1 - (2 TP + smooth_nr) / (2 (TP + FP + FN) + smooth_dr)

    References:
        Rahman & Wang, "Optimizing intersection-over-union in deep neural networks for image segmentation",
        ISVC 2016.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["jaccard"] = True
        super().__init__(*args, **kwargs)


class MaskedDiceLoss(DiceLoss):
    """:class:`DiceLoss` restricted to a region by a mask; a drop-in for ``monai.losses.MaskedDiceLoss``.

    As in MONAI, the activation is applied first, then ``input`` and ``target`` are multiplied by ``mask``
    ((B, 1, *S) or (1, 1, *S), values in [0, 1]) and the Dice loss is computed on the products, so voxels where
    the mask is 0 add nothing to TP and PRED. With ``to_onehot_y=True`` a masked voxel's label becomes 0, i.e. it
    still counts in the target volume of class 0 (MONAI's numbers); to leave voxels out of every sum, give them a
    label and set ``ignore_index`` (on this class or :class:`DiceLoss`).

    Shapes:
        input, target: as :class:`DiceLoss`; mask: (B, 1, *S) or (1, 1, *S).
        output: as :class:`DiceLoss`.

    Arguments as :class:`DiceLoss`. ``forward(input, target, mask=None)``: without a mask, MONAI's warning and the
    plain Dice loss.

    Differences from MONAI 1.6.1: as :class:`DiceLoss`; a mask whose batch, channel or spatial size does not fit is
    a :class:`~medloss.errors.ShapeMismatchError` (MONAI warns about a spatial mismatch, then broadcasts).

    References:
        Milletari, Navab, Ahmadi, "V-Net", 3DV 2016, arXiv:1606.04797.

    Example:
        >>> import torch
        >>> loss = MaskedDiceLoss(softmax=True, to_onehot_y=True)
        >>> mask = torch.ones(2, 1, 8, 8, 8)
        >>> loss(torch.randn(2, 3, 8, 8, 8), torch.randint(0, 3, (2, 1, 8, 8, 8)), mask).shape
        torch.Size([])
    """

    def forward(
        self, input: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        if mask is None:
            warnings.warn("No mask value specified for the MaskedLoss.", stacklevel=2)
            return super().forward(input, target)
        prepare.check_input_tensor(input)
        if not isinstance(mask, torch.Tensor):
            raise ShapeMismatchError(f"`mask` must be a tensor of shape (B, 1, *S), got {type(mask).__name__}.")
        if mask.ndim != input.ndim or mask.shape[0] not in (1, input.shape[0]) or mask.shape[1] != 1 \
                or mask.shape[2:] != input.shape[2:]:
            raise ShapeMismatchError(
                f"`mask` of shape {tuple(mask.shape)} does not fit `input` of shape {tuple(input.shape)}: expected "
                f"(B, 1, *S) or (1, 1, *S) with B={input.shape[0]} and S={tuple(input.shape[2:])}."
            )
        if self.check_input:
            self._check_mask_and_target(mask, input, target)
        p = prepare.activate(
            input, activation=self.options.activation, other_act=self.other_act, check_input=self.check_input
        )
        return dice_loss(p * mask, target * mask, weight=self.class_weight, options=self._masked_options,
                         reduction=self.reduction)

    @functools.cached_property
    def _masked_options(self) -> RegionOptions:
        """The Dice options on the masked probabilities: no activation (applied before masking), no value checks
        (the products are fractional by construction, so the target was checked before masking)."""
        return dataclasses.replace(self.options, activation=None, other_act=None, check_input=False)


    def _check_mask_and_target(self, mask: torch.Tensor, input: torch.Tensor, target: torch.Tensor) -> None:
        lo, hi = prepare.check_finite(mask, arg="mask")
        if lo < 0.0 or hi > 1.0:
            raise InputRangeError(f"`mask` values must lie in [0, 1], got min {lo:.4g}, max {hi:.4g}.")
        if self.to_onehot_y:
            if bool(((mask != 0) & (mask != 1)).any()):
                raise InputRangeError(
                    "`mask` holds values between 0 and 1, which would scale a label map into fractional labels: "
                    "use a binary mask with `to_onehot_y=True`, or pass a one-hot target with `to_onehot_y=False`."
                )
            prepare.labels_and_mask(target, input, ignore_index=self.ignore_index, check_input=True)
        else:
            prepare.dense_target(target, input, to_onehot_y=False, ignore_index=self.ignore_index,
                                 soft_label=self.soft_label, check_input=True)


class GeneralizedDiceLoss(RegionLoss):
    """Generalized Dice loss (Sudre et al., DLMIA 2017); a drop-in for ``monai.losses.GeneralizedDiceLoss``.

    Per sample b (or once for the batch with ``batch=True``)::

        w_c = 1 / TARGET_c^2  ("square", default) | 1 / TARGET_c  ("simple") | 1  ("uniform")
        loss[b] = 1 - (2 sum_c w_c TP_c + smooth_nr) / (sum_c w_c (PRED_c + TARGET_c) + smooth_dr)

    with TP, PRED, TARGET as in :class:`DiceLoss`. The weights carry no gradient.

    Absent classes (``empty`` policy): a class absent from the target (TARGET_c = 0, infinite weight) gets the
    largest weight among the present classes, as in MONAI. When **no** class is present (e.g. an all-background
    patch with ``include_background=False``):

    * ``empty="penalize"`` (default): the loss of that row is the soft false-positive rate
      sum_c PRED_c / (C' * VOXELS), the mean predicted probability of the scored classes over the valid voxels,
      in [0, 1], 0 only without false positives, with a gradient of 1 / (C' * VOXELS) per voxel that does not
      vanish (a Dice ratio with 1e-5 smoothing is saturated at 1 there and has a gradient of ~1e-9).
    * ``empty="monai"``: MONAI 1.6.1's result, all weights 0, loss 0 and gradient 0 (false positives on empty
      patches are free).

    Shapes:
        input, target: as :class:`DiceLoss`.
        output: scalar; (B, 1) for ``reduction="none"`` ((1, 1) with ``batch=True``): the loss pools classes,
        so it has one column.

    Args:
        w_type: "square" | "simple" | "uniform".
        empty: "penalize" | "monai" (see above).

    Other arguments as :class:`DiceLoss`.

    References:
        Sudre, Li, Vercauteren, Ourselin, Cardoso, "Generalised Dice overlap as a deep learning loss function for
        highly unbalanced segmentations", DLMIA 2017, arXiv:1707.03237.
        Crum, Camara, Hill, "Generalized overlap measures ...", IEEE TMI 2006.
    """

    def __init__(
        self,
        include_background: bool = True,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        other_act: Callable[[torch.Tensor], torch.Tensor] | None = None,
        w_type: str = "square",
        reduction: str = "mean",
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        soft_label: bool = False,
        ignore_index: int | None = None,
        empty: str = "penalize",
        check_input: bool = True,
    ) -> None:
        super().__init__(
            include_background=include_background, to_onehot_y=to_onehot_y, sigmoid=sigmoid, softmax=softmax,
            other_act=other_act, reduction=reduction, smooth_nr=smooth_nr, smooth_dr=smooth_dr, batch=batch,
            soft_label=soft_label, ignore_index=ignore_index, check_input=check_input,
        )
        self.w_type = check_choice("w_type", str(w_type), W_TYPES)
        self.empty = check_choice("empty", empty, EMPTY_POLICIES)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return generalized_dice_loss(input, target, w_type=self.w_type, empty=self.empty, **self.region_options())
