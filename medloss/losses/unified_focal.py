"""Unified Focal loss, symmetric and asymmetric (thin shells over :mod:`medloss.functional.unified_focal`)."""
from __future__ import annotations

import torch

from medloss.errors import InvalidOptionError, check_number
from medloss.functional import prepare
from medloss.functional.unified_focal import check_unit_interval, unified_focal_loss
from medloss.losses._base import ActivationFlags, MedlossLoss, check_ignore_index


class UnifiedFocalLoss(ActivationFlags, MedlossLoss):
    """Unified Focal loss (Yeung et al., CMIG 2022), for C >= 2 classes with class 0 the background::

        L = weight * L_F + (1 - weight) * L_FTL

        L_F   = (1 / N) sum_n sum_c  w_c m_c(p_nc) (-g_nc log p_nc)        w_0 = 1 - delta, w_c = delta (c >= 1)
        L_FTL = (1 / C) sum_c  f_c(1 - mTI_c),   mTI_c = TP_c / (TP_c + delta FN_c + (1 - delta) FP_c)

    per sample (TP, FP, FN sums over its voxels), with p clamped to [epsilon, 1 - epsilon] and epsilon added to
    the numerator and denominator of mTI. Symmetric (``asymmetric=False``): m_c(p) = (1 - p)^gamma and
    f_c(x) = x^(1 - gamma) for every class. Asymmetric (:class:`AsymmetricUnifiedFocalLoss`): only the background
    is suppressed, m_0 = (1 - p)^gamma and m_c = 1 for c >= 1, and only the foreground enhanced, f_0(x) = x and
    f_c(x) = x^(1 - gamma). For C = 2 this is the authors' ``sym_unified_focal_loss`` / ``asym_unified_focal_loss``
    (mlyg/unified-focal-loss); for C > 2 every foreground class is a "rare" class.

    There is no ``include_background``: class 0 is the background by definition (suppressed in the asymmetric
    form), and every class is scored.

    ``weight`` multiplies the focal term, as in the paper's L = lambda L_mF + (1 - lambda) L_mFTL and MONAI (the
    authors' code multiplies the Tversky term; equal at the default 0.5).

    Shapes:
        input: (B, C, *S) probabilities, or logits with ``softmax`` (C >= 2) / ``sigmoid`` (C = 1: the foreground
            probability of a binary problem, expanded to [1 - p, p]).
        target: (B, 1, *S) label map (``to_onehot_y=True``, or with C = 1) or (B, C, *S) one-hot / soft.
        output: scalar; (B,) per sample for ``reduction="none"``.

    Args:
        weight: lambda in [0, 1], the focal term's share.
        delta: in [0, 1]; weight of false negatives in mTI and of the foreground classes in L_F.
        gamma: in [0, 1); focal exponent (suppression (1 - p)^gamma, enhancement (.)^(1 - gamma)).
        num_classes: optional check of the number of classes (MONAI's argument); None takes it from the input.
        ignore_index: label value whose voxels count in no sum (both terms).
        epsilon: the probability clamp and Tversky smoothing (1e-7, the authors' K.epsilon()).

    References:
        Yeung, Sala, Schönlieb, Rundo, "Unified Focal loss: Generalising Dice and cross entropy-based losses to
        handle class imbalanced medical image segmentation", Computerized Medical Imaging and Graphics 95 (2022)
        102026, arXiv:2102.04525.
    """

    _asymmetric = False

    def __init__(
        self,
        to_onehot_y: bool = False,
        num_classes: int | None = None,
        weight: float = 0.5,
        gamma: float = 0.5,
        delta: float = 0.6,
        reduction: str = "mean",
        ignore_index: int | None = None,
        sigmoid: bool = False,
        softmax: bool = False,
        epsilon: float = 1e-7,
        check_input: bool = True,
    ) -> None:
        super().__init__(reduction=reduction, check_input=check_input)
        prepare.check_activation_options(sigmoid, softmax, None)
        if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                        or num_classes < 2):
            raise InvalidOptionError(f"`num_classes` must be None or an int >= 2, got {num_classes!r}.")
        self.to_onehot_y = bool(to_onehot_y)
        self.num_classes = num_classes
        self.weight = check_unit_interval("weight", weight)
        self.gamma = check_unit_interval("gamma", gamma, upper_open=True)
        self.delta = check_unit_interval("delta", delta)
        self.ignore_index = check_ignore_index(ignore_index)
        self.activation = prepare.activation_of(sigmoid=sigmoid, softmax=softmax)
        self.epsilon = check_number("epsilon", epsilon, low=0, high=0.5, low_open=True, high_open=True)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return unified_focal_loss(
            input, target, weight=self.weight, delta=self.delta, gamma=self.gamma, asymmetric=self._asymmetric,
            to_onehot_y=self.to_onehot_y, sigmoid=self.sigmoid, softmax=self.softmax, num_classes=self.num_classes,
            ignore_index=self.ignore_index, epsilon=self.epsilon, reduction=self.reduction,
            check_input=self.check_input,
        )


class AsymmetricUnifiedFocalLoss(UnifiedFocalLoss):
    """Asymmetric Unified Focal loss (Yeung et al., CMIG 2022); MONAI's name, arguments and defaults (delta 0.7,
    gamma 0.5, weight 0.5), for any number of classes. The formula is :class:`UnifiedFocalLoss`'s asymmetric form.

    Differs from ``monai.losses.AsymmetricUnifiedFocalLoss`` 1.6.1 (docs/monai-differences.md): MONAI's focal
    term is a mean over the two channels as well as the voxels, i.e. half the paper's L_F (sum over classes, mean
    over voxels), so its value equals ``(1 - w) / (1 - l)`` times this loss with weight l = w / (2 - w)
    (tests/losses/test_distance_losses.py checks value and gradient that way); MONAI supports two classes only,
    applies no activation (its docstring says sigmoid) and has no (B,) "none" reduction.

    Args:
        weight: lambda, the share of the focal term (0.5).
        delta: weight of the foreground classes against the background (0.7).
        gamma: focal exponent (0.5).

    The other arguments are :class:`UnifiedFocalLoss`'s.
    """

    _asymmetric = True

    def __init__(
        self,
        to_onehot_y: bool = False,
        num_classes: int | None = None,
        weight: float = 0.5,
        gamma: float = 0.5,
        delta: float = 0.7,
        reduction: str = "mean",
        ignore_index: int | None = None,
        sigmoid: bool = False,
        softmax: bool = False,
        epsilon: float = 1e-7,
        check_input: bool = True,
    ) -> None:
        super().__init__(to_onehot_y=to_onehot_y, num_classes=num_classes, weight=weight, gamma=gamma, delta=delta,
                         reduction=reduction, ignore_index=ignore_index, sigmoid=sigmoid, softmax=softmax,
                         epsilon=epsilon, check_input=check_input)
