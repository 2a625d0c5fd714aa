"""Voxel-wise losses: cross-entropy, BCE with logits, focal (thin shells over :mod:`medloss.functional.voxel` and
:mod:`medloss.functional.focal`)."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from medloss.errors import check_number
from medloss.functional import reduce as _reduce
from medloss.functional.focal import focal_loss_for
from medloss.functional.stats import voxel_tables_options
from medloss.functional.voxel import bce_with_logits_loss, cross_entropy_loss
from medloss.losses._base import MedlossLoss, check_ignore_index


def check_focal_alpha(alpha: object) -> float | torch.Tensor | None:
    """A focal ``alpha``: None, a number in [0, 1] (positives vs negatives) or one weight >= 0 per class."""
    if alpha is None:
        return None
    if isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
        return check_number("alpha", alpha, low=0, high=1)
    return _reduce.class_weight_tensor(alpha, arg="alpha")


class CrossEntropyLoss(MedlossLoss):
    """Cross-entropy on (B, C, *S) logits with the numbers of ``torch.nn.CrossEntropyLoss``.

    For a label map y (hard targets), with class weights w and smoothing eps::

        l_n = -w_{y_n} [(1 - eps) log p_{n, y_n} + (eps / C) sum_c log p_{n, c}] ... (torch's exact form)
        mean = sum_n l_n / sum_n w_{y_n}        (ignored voxels in neither sum)

    and for probability ("soft") targets q of shape (B, C, *S): l_n = -sum_c w_c q'_{n,c} log p_{n,c}, mean over
    voxels. Computed by :func:`torch.nn.functional.cross_entropy` after validation, in float32 for half inputs.

    Shapes:
        input: (B, C, *S) logits, C >= 2.
        target: (B, 1, *S) or (B, *S) integer label map (float label maps with integer values are accepted, as
        MONAI pipelines pass them), or (B, C, *S) float probabilities.
        output: scalar; (B, *S) for ``reduction="none"`` (torch's shape).

    Args:
        weight: per-class weights (C values).
        ignore_index: label value excluded from the loss and its mean (default -100 like torch; None = none).
        reduction: "mean" | "sum" | "none".
        label_smoothing: eps in [0, 1].
        check_input: validate values (labels in [0, C) or ignore_index, finite logits).

    Raises:
        OptionTypeError: integer ``input`` (argmax'd predictions).
        ShapeMismatchError: one-channel ``input`` (use :class:`BCELoss`) or a target that fits neither form.
        LabelValueError: labels outside [0, C) other than ``ignore_index``.

    References:
        Standard multinomial log-likelihood; label smoothing: Szegedy et al., CVPR 2016, arXiv:1512.00567.
    """

    weight: torch.Tensor | None

    def __init__(
        self,
        weight: Sequence[float] | float | torch.Tensor | None = None,
        ignore_index: int | None = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        check_input: bool = True,
    ) -> None:
        super().__init__(reduction=reduction, check_input=check_input)
        self.ignore_index = check_ignore_index(ignore_index)
        self.label_smoothing = check_number("label_smoothing", label_smoothing, low=0, high=1)
        self.register_buffer("weight", _reduce.class_weight_tensor(weight))
        self.table_options = voxel_tables_options("ce", ignore_index=self.ignore_index, check_input=self.check_input)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return cross_entropy_loss(
            input, target, weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction,
            label_smoothing=self.label_smoothing, check_input=self.check_input, options=self.table_options,
        )


class BCELoss(MedlossLoss):
    """Binary cross-entropy on logits (``torch.nn.BCEWithLogitsLoss`` semantics) with an ignore mask::

        l = -[pos_weight_c t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))]
        mean = sum over valid elements / number of valid elements

    Elements whose target equals ``ignore_index`` count in neither sum (torch has no ignore option).

    Shapes:
        input: (B, C, *S) logits (one independent channel per class / region).
        target: (B, C, *S) in [0, 1] (or (B, *S) when C = 1).
        output: scalar; (B, C, *S) for ``reduction="none"`` (0 at ignored elements).

    Args:
        pos_weight: weight of positives per channel (C values or a scalar).
        ignore_index: target value marking elements to ignore (e.g. 255), or None.
        reduction: "mean" | "sum" | "none".
    """

    pos_weight: torch.Tensor | None

    def __init__(
        self,
        pos_weight: Sequence[float] | float | torch.Tensor | None = None,
        reduction: str = "mean",
        ignore_index: float | None = None,
        check_input: bool = True,
    ) -> None:
        super().__init__(reduction=reduction, check_input=check_input)
        self.register_buffer("pos_weight", _reduce.class_weight_tensor(pos_weight, arg="pos_weight"))
        self.ignore_index = None if ignore_index is None else check_number("ignore_index", ignore_index)
        self.table_options = voxel_tables_options("bce", activation="sigmoid", ignore_index=self.ignore_index,
                                                  check_input=self.check_input)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return bce_with_logits_loss(
            input, target, pos_weight=self.pos_weight, ignore_index=self.ignore_index, reduction=self.reduction,
            check_input=self.check_input, options=self.table_options,
        )


class FocalLoss(MedlossLoss):
    """Focal loss (Lin et al., ICCV 2017) on logits, sigmoid (default) or softmax; a drop-in for
    ``monai.losses.FocalLoss``.

    Per element, with t the (one-hot) target::

        sigmoid: FL = (1 - p_t)^gamma * BCE(x, t),        p_t = sigmoid(x) if t = 1 else 1 - sigmoid(x)
        softmax: FL_c = -t_c (1 - p_c)^gamma log p_c,      p = softmax(x) over all C channels

    times alpha (a scalar: alpha on positives and 1 - alpha on negatives for sigmoid, 1 - alpha for class 0 and
    alpha for the others with softmax; a sequence: one alpha per class on positives) and ``weight[c]``.
    Reduction as MONAI 1.6.1: "mean" divides by the number of elements of (B, C', *S); with ``ignore_index`` by
    C' times the number of valid voxels (MONAI divides by the valid voxels only, so its scale jumps by C' when an
    ignore label appears); "sum" is MONAI's sum over (B, C') of spatial means; "none" gives (B, C', *S).

    (N, C) classification logits (no spatial axis) are accepted, as MONAI; "none" then gives (N, C).

    Differences from MONAI: with ``use_softmax`` and ``include_background=False`` the softmax is over all classes
    before class 0 is dropped (MONAI drops it first, MONAI#8117; a scalar ``alpha`` is ignored there with MONAI's
    warning, as MONAI); fp16/bf16 inputs are computed in float32; "sum" on (N, C) input sums the elements (MONAI's
    equals its "mean" there).

    Args:
        include_background: keep channel 0 in the loss.
        to_onehot_y: one-hot encode a (B, 1, *S) label map.
        gamma: focusing parameter (default 2, the paper's).
        alpha: scalar or per-class sequence (see above), or None. A sequence has one value per scored class (C'
            values: without class 0 when ``include_background=False``, as MONAI and as ``weight``).
        weight: per-class weights (scalar or C' values).
        use_softmax: softmax focal loss (multi-class) instead of sigmoid (multi-label). ``softmax`` is an alias.
        ignore_index: label value whose voxels are excluded.

    References:
        Lin, Goyal, Girshick, He, Dollar, "Focal loss for dense object detection", ICCV 2017, arXiv:1708.02002.
        Zhu et al., "AnatomyNet", Med. Phys. 2019, arXiv:1808.05238 (focal term for small organs).
    """

    class_weight: torch.Tensor | None

    def __init__(
        self,
        include_background: bool = True,
        to_onehot_y: bool = False,
        gamma: float = 2.0,
        alpha: float | Sequence[float] | torch.Tensor | None = None,
        weight: Sequence[float] | float | torch.Tensor | None = None,
        reduction: str = "mean",
        use_softmax: bool = False,
        ignore_index: int | None = None,
        softmax: bool | None = None,
        check_input: bool = True,
    ) -> None:
        super().__init__(reduction=reduction, check_input=check_input)
        self.include_background = bool(include_background)
        self.to_onehot_y = bool(to_onehot_y)
        self.gamma = check_number("gamma", gamma, low=0)
        self.alpha = check_focal_alpha(alpha)
        self.activation = "softmax" if (use_softmax if softmax is None else softmax) else "sigmoid"
        self.ignore_index = check_ignore_index(ignore_index)
        self.register_buffer("class_weight", _reduce.class_weight_tensor(weight))
        self.table_options = voxel_tables_options(
            "focal", activation=self.activation, ignore_index=self.ignore_index, gamma=self.gamma,
            to_onehot_y=self.to_onehot_y, check_input=self.check_input,
        )

    @property
    def use_softmax(self) -> bool:
        """MONAI's name of the activation (read-only; the loss holds ``activation``)."""
        return self.activation == "softmax"

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return focal_loss_for(
            input, target, activation=self.activation, include_background=self.include_background,
            to_onehot_y=self.to_onehot_y, gamma=self.gamma, alpha=self.alpha, weight=self.class_weight,
            reduction=self.reduction, ignore_index=self.ignore_index, check_input=self.check_input,
            options=self.table_options,
        )
