"""Compound losses: a region term plus a voxel term (thin shells over :mod:`medloss.functional.compound`)."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.nn.modules.loss import _Loss

from medloss.errors import InvalidOptionError, check_choice, check_number
from medloss.functional import prepare
from medloss.functional import reduce as _reduce
from medloss.functional.compound import (
    bce_dice_loss,
    check_compound_reduction,
    dice_ce_loss,
    dice_focal_loss,
)
from medloss.functional.region import EMPTY_POLICIES, W_TYPES
from medloss.functional.region_options import RegionOptions
from medloss.functional.stats import voxel_tables_options
from medloss.losses._base import check_ignore_index
from medloss.losses.voxel import check_focal_alpha


def _dice_options(include_background: bool, to_onehot_y: bool, sigmoid: bool, softmax: bool,
                  other_act: Callable[[torch.Tensor], torch.Tensor] | None, squared_pred: bool, jaccard: bool,
                  smooth_nr: float, smooth_dr: float, batch: bool, *, ignore_index: int | None, check_input: bool,
                  voxel_terms: dict[str, str], gamma: float = 0.0) -> RegionOptions:
    """A compound's Dice-term options from MONAI's arguments, validated once; ``voxel_terms``: activation -> the
    voxel term its fused pass sums with them (exponent ``gamma``)."""
    activation = prepare.activation_of(sigmoid=sigmoid, softmax=softmax)
    return RegionOptions(
        include_background=include_background, to_onehot_y=to_onehot_y, activation=activation, other_act=other_act,
        squared_pred=squared_pred, jaccard=jaccard, smooth_nr=smooth_nr, smooth_dr=smooth_dr, batch=batch,
        ignore_index=ignore_index, check_input=check_input, voxel_term=voxel_terms.get(activation or ""),
        gamma=gamma,
    )


class _CompoundLoss(_Loss):
    """Validates the options shared by the Dice + voxel-term compounds."""

    def __init__(self, *, name: str, reduction: str, sigmoid: bool, softmax: bool,
                 other_act: Callable[[torch.Tensor], torch.Tensor] | None, ignore_index: int | None,
                 check_input: bool, lambdas: dict, elementwise: bool = False) -> None:
        super().__init__(reduction=check_compound_reduction(reduction, name, elementwise=elementwise))
        prepare.check_activation_options(sigmoid, softmax, other_act)
        for key, value in lambdas.items():
            setattr(self, key, check_number(key, value, low=0))
        self.ignore_index = check_ignore_index(ignore_index)
        self.check_input = bool(check_input)


class DiceCELoss(_CompoundLoss):
    """Dice + cross-entropy; a drop-in for ``monai.losses.DiceCELoss``, plus ``ignore_index``::

        L = lambda_dice * Dice(input, target) + lambda_ce * CE(input, target)

    Dice is :class:`~medloss.losses.DiceLoss` with the Dice arguments; CE is
    :class:`~medloss.losses.CrossEntropyLoss` on the logits (BCE with logits when ``input`` has one channel), with
    class ``weight`` (also given to Dice, without class 0 when ``include_background=False``, as MONAI; a scalar
    weighs every class; Dice ignores it with one scored class, as MONAI),
    ``label_smoothing`` and ``ignore_index`` (MONAI 1.6.1 has no ignore_index on compounds). A (B, C, *S) one-hot or
    soft target is used by CE as class probabilities, as in MONAI.

    Shapes: input (B, C, *S) logits; target (B, 1, *S) label map (``to_onehot_y=True``) or (B, C, *S).
    Output: scalar ("mean" or "sum" of each term; "none" is undefined for a compound, as in MONAI).

    Args:
        lambda_dice, lambda_ce: weights of the two terms (1 each).
        weight: class weights of both terms (see above).
        label_smoothing: of the cross-entropy term, as ``torch.nn.CrossEntropyLoss``.
        ignore_index: label value of voxels left out of both terms.

    The other arguments are :class:`~medloss.losses.DiceLoss`'s.

    References:
        Isensee et al., "nnU-Net", Nature Methods 2021 (Dice + CE as the default segmentation loss).
        Taghanaki et al., "Combo loss", CMIG 2019, arXiv:1805.02798.
    """

    lambda_dice: float
    lambda_ce: float
    weight: torch.Tensor | None

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
        lambda_dice: float = 1.0,
        lambda_ce: float = 1.0,
        label_smoothing: float = 0.0,
        ignore_index: int | None = None,
        check_input: bool = True,
    ) -> None:
        super().__init__(name="DiceCELoss", reduction=reduction, sigmoid=sigmoid, softmax=softmax,
                         other_act=other_act, ignore_index=ignore_index, check_input=check_input,
                         lambdas={"lambda_dice": lambda_dice, "lambda_ce": lambda_ce})
        self.label_smoothing = check_number("label_smoothing", label_smoothing, low=0, high=1)
        # one options object for both terms: the fused pass sums the voxel term of the Dice activation with them
        self.dice_options = _dice_options(
            include_background, to_onehot_y, sigmoid, softmax, other_act, squared_pred, jaccard, smooth_nr, smooth_dr,
            batch, ignore_index=self.ignore_index, check_input=self.check_input, voxel_terms=self._VOXEL_TERMS,
        )
        # the voxel term's own pass, when it is computed alone (one lambda 0, or an activation the Dice fuses not)
        self.ce_options = voxel_tables_options("ce", ignore_index=self.ignore_index, check_input=self.check_input)
        self.bce_options = voxel_tables_options("bce", activation="sigmoid", ignore_index=self.ignore_index,
                                                check_input=self.check_input)
        self.register_buffer("weight", _reduce.class_weight_tensor(weight))

    #: activation -> the voxel term of the fused pass (BCE + Dice: "bce" with sigmoid)
    _VOXEL_TERMS: dict = {"softmax": "ce"}

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return dice_ce_loss(
            input, target, lambda_dice=self.lambda_dice, lambda_ce=self.lambda_ce, weight=self.weight,
            label_smoothing=self.label_smoothing, ignore_index=self.ignore_index, reduction=self.reduction,
            dice_options=self.dice_options, check_input=self.check_input, ce_options=self.ce_options,
            bce_options=self.bce_options,
        )


class DiceFocalLoss(_CompoundLoss):
    """Dice + focal; a drop-in for ``monai.losses.DiceFocalLoss`` that keeps the activations consistent::

        L = lambda_dice * Dice(input, target) + lambda_focal * Focal(input, target)

    The focal term is the **softmax** focal loss when ``softmax=True`` and the sigmoid focal loss otherwise
    (MONAI 1.6.1 always uses the sigmoid focal loss, even when its Dice uses softmax: MONAI#8242); with
    ``sigmoid=True`` the values equal MONAI's. ``gamma`` and ``alpha`` go to the focal term
    (:class:`~medloss.losses.FocalLoss`); ``weight`` (scalar or one value per scored class) and ``ignore_index``
    to both terms, as MONAI 1.6.1 (the Dice term ignores ``weight`` when it scores one class, as MONAI's DiceLoss).

    Shapes: as :class:`DiceCELoss`. Output: scalar ("mean" or "sum"); (B, C', *S) for ``reduction="none"``:
    the (B, C') Dice table broadcast over the focal loss's elements, as MONAI.

    Args:
        lambda_dice, lambda_focal: weights of the two terms (1 each).
        gamma, alpha: of the focal term, as :class:`~medloss.losses.FocalLoss`.
        weight: class weights of both terms.
        ignore_index: label value of voxels left out of both terms.

    The other arguments are :class:`~medloss.losses.DiceLoss`'s (``other_act`` is refused, see above).

    References:
        Zhu et al., "AnatomyNet", Med. Phys. 2019, arXiv:1808.05238 (Dice + focal for small organs; the
        paper-faithful form is :class:`~medloss.losses.AnatomyNetLoss`).
        Lin et al., "Focal loss for dense object detection", ICCV 2017.
    """

    lambda_dice: float
    lambda_focal: float
    weight: torch.Tensor | None

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
        gamma: float = 2.0,
        weight: Sequence[float] | float | torch.Tensor | None = None,
        lambda_dice: float = 1.0,
        lambda_focal: float = 1.0,
        alpha: float | Sequence[float] | torch.Tensor | None = None,
        ignore_index: int | None = None,
        check_input: bool = True,
    ) -> None:
        super().__init__(name=type(self).__name__, reduction=reduction, sigmoid=sigmoid, softmax=softmax,
                         other_act=other_act, ignore_index=ignore_index, check_input=check_input,
                         lambdas={"lambda_dice": lambda_dice, "lambda_focal": lambda_focal}, elementwise=True)
        if other_act is not None:
            raise InvalidOptionError(f"`other_act` is not supported by {type(self).__name__}: its focal term needs "
                                     "logits with `sigmoid=True` or `softmax=True`.")
        gamma = check_number("gamma", gamma, low=0)
        self.dice_weight = _reduce.class_weight_tensor(weight)  # both terms, as MONAI 1.6.1
        self.region_options = _dice_options(
            include_background, to_onehot_y, sigmoid, softmax, None, squared_pred, jaccard, smooth_nr, smooth_dr,
            batch, ignore_index=self.ignore_index, check_input=self.check_input,
            voxel_terms={"softmax": "focal", "sigmoid": "focal"}, gamma=gamma,
        )
        activation = "softmax" if softmax else "sigmoid"  # the focal term's: sigmoid also without an activation
        self.focal_options = dict(
            include_background=bool(include_background), to_onehot_y=bool(to_onehot_y), gamma=gamma,
            alpha=check_focal_alpha(alpha), weight=self.dice_weight, activation=activation,
            options=voxel_tables_options("focal", activation=activation, ignore_index=self.ignore_index, gamma=gamma,
                                         to_onehot_y=to_onehot_y, check_input=self.check_input),
        )

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return dice_focal_loss(
            input, target, lambda_dice=self.lambda_dice, lambda_focal=self.lambda_focal,
            region_options=self.region_options, focal_options=self.focal_options, dice_weight=self.dice_weight,
            reduction=self.reduction,
        )


class GeneralizedDiceFocalLoss(DiceFocalLoss):
    """Generalized Dice + focal; a drop-in for ``monai.losses.GeneralizedDiceFocalLoss``::

        L = lambda_gdl * GDL(input, target) + lambda_focal * Focal(input, target)

    GDL is :class:`~medloss.losses.GeneralizedDiceLoss` (``w_type``, ``empty`` policy); the focal term is softmax
    focal with ``softmax=True``, sigmoid focal otherwise (as :class:`DiceFocalLoss`). ``weight`` weighs the focal
    term only (GDL has its own class weights), as MONAI. ``reduction="none"``: (B, 1) GDL broadcast over the
    (B, C', *S) focal elements.

    Args:
        lambda_gdl, lambda_focal: weights of the two terms (1 each).
        w_type, empty: as :class:`~medloss.losses.GeneralizedDiceLoss`.
        gamma, alpha, weight: of the focal term, as :class:`~medloss.losses.FocalLoss`.
        ignore_index: label value of voxels left out of both terms.

    The other arguments are :class:`~medloss.losses.DiceLoss`'s (``other_act`` is refused, see above).

    References:
        Sudre et al., DLMIA 2017, arXiv:1707.03237; Lin et al., ICCV 2017.
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
        gamma: float = 2.0,
        weight: Sequence[float] | float | torch.Tensor | None = None,
        lambda_gdl: float = 1.0,
        lambda_focal: float = 1.0,
        alpha: float | Sequence[float] | torch.Tensor | None = None,
        empty: str = "penalize",
        ignore_index: int | None = None,
        check_input: bool = True,
    ) -> None:
        lambda_gdl = check_number("lambda_gdl", lambda_gdl, low=0)  # named here, not as the base's `lambda_dice`
        super().__init__(
            include_background=include_background, to_onehot_y=to_onehot_y, sigmoid=sigmoid, softmax=softmax,
            other_act=other_act, reduction=reduction, smooth_nr=smooth_nr, smooth_dr=smooth_dr, batch=batch,
            gamma=gamma, weight=weight, lambda_dice=lambda_gdl, lambda_focal=lambda_focal, alpha=alpha,
            ignore_index=ignore_index, check_input=check_input,
        )
        self.lambda_gdl = self.lambda_dice
        self.w_type = check_choice("w_type", str(w_type), W_TYPES)
        self.empty = check_choice("empty", empty, EMPTY_POLICIES)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return dice_focal_loss(
            input, target, lambda_dice=self.lambda_gdl, lambda_focal=self.lambda_focal, generalized=True,
            region_options=self.region_options, focal_options=self.focal_options, w_type=self.w_type,
            empty=self.empty, reduction=self.reduction,
        )


class BCEDiceLoss(DiceCELoss):
    """Binary cross-entropy + Dice with sigmoid outputs (binary or multi-label / region-based training)::

        L = lambda_bce * BCE(input, target) + lambda_dice * Dice(sigmoid(input), target)

    Each channel is an independent binary problem (e.g. BraTS regions, or one lesion channel). BCE is
    :class:`~medloss.losses.BCELoss` semantics (``pos_weight`` per channel, ``ignore_index`` marks target voxels
    to ignore in both terms); Dice is :class:`~medloss.losses.DiceLoss` with ``sigmoid=True``.

    Shapes: input (B, C, *S) logits; target (B, C, *S) in {0, 1} (or (B, 1, *S) for C = 1).
    Output: scalar ("mean" or "sum").

    Args:
        lambda_bce, lambda_dice: weights of the two terms (1 each).
        pos_weight: per-channel weight of positives in the BCE term, as ``torch.nn.BCEWithLogitsLoss``.
        ignore_index: target value of voxels left out of both terms.

    The other arguments are :class:`~medloss.losses.DiceLoss`'s.

    References:
        Isensee et al., nnU-Net (``DC_and_BCE_loss`` for region-based training), Nature Methods 2021.
    """

    lambda_bce: float
    pos_weight: torch.Tensor | None

    def __init__(
        self,
        include_background: bool = True,
        squared_pred: bool = False,
        reduction: str = "mean",
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        pos_weight: Sequence[float] | float | torch.Tensor | None = None,
        lambda_dice: float = 1.0,
        lambda_bce: float = 1.0,
        ignore_index: int | None = None,
        check_input: bool = True,
    ) -> None:
        lambda_bce = check_number("lambda_bce", lambda_bce, low=0)  # named here, not as the base's `lambda_ce`
        super().__init__(
            include_background=include_background, sigmoid=True, squared_pred=squared_pred, reduction=reduction,
            smooth_nr=smooth_nr, smooth_dr=smooth_dr, batch=batch, lambda_dice=lambda_dice, lambda_ce=lambda_bce,
            ignore_index=ignore_index, check_input=check_input,
        )
        self.lambda_bce = self.lambda_ce
        self.register_buffer("pos_weight", _reduce.class_weight_tensor(pos_weight, arg="pos_weight"))

    _VOXEL_TERMS: dict = {"sigmoid": "bce"}

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return bce_dice_loss(
            input, target, lambda_dice=self.lambda_dice, lambda_bce=self.lambda_bce, pos_weight=self.pos_weight,
            ignore_index=self.ignore_index, reduction=self.reduction, dice_options=self.dice_options,
            check_input=self.check_input, bce_options=self.bce_options,
        )
