"""Lovász-Softmax and Lovász hinge losses (thin shells over :mod:`medloss.functional.lovasz`)."""
from __future__ import annotations

from collections.abc import Callable

import torch

from medloss.errors import InvalidOptionError
from medloss.functional.lovasz import check_classes, lovasz_hinge_loss, lovasz_softmax_loss
from medloss.losses._base import MedlossLoss, RegionLoss, check_ignore_index


class LovaszSoftmaxLoss(RegionLoss):
    """Lovász-Softmax loss (Berman et al., CVPR 2018), a tractable surrogate of the per-class Jaccard (IoU) loss,
    for 2-D and 3-D volumes.

    For each scored problem (the whole flattened batch, or one image with ``per_image=True``) and class c, over its
    voxels i (ignored voxels removed), with p the activated input and y the label map::

        m_i(c)  = | [y_i = c] - p_i(c) |                 (per-voxel error of class c)
        pi      = voxels ordered by decreasing m(c);  G = number of voxels with y = c
        J_k     = 1 - (G - sum_{j<=k} [y_pi(j) = c]) / (G + sum_{j<=k} [y_pi(j) != c])
        loss_c  = sum_k m_pi(k)(c) (J_k - J_(k-1))       (J_0 = 0: Lovász extension of 1 - IoU_c at m(c))

        loss    = mean over problems of (mean of loss_c over the problem's scored classes; 0 if none)

    Scored classes (``classes``): ``"present"`` (default) those with at least one non-ignored voxel in the problem;
    ``"all"`` every class (an absent class scores its largest error, max_i p_i(c)); or a list of class indices
    (scored in every problem, present or not). ``include_background=False`` removes class 0 from any policy.

    Value and gradient equal the authors' reference (``lovasz_softmax`` in ``bermanmaxim/LovaszSoftmax``); ties in
    m give the same value, and one valid subgradient. The gradient is the closed form of J_k - J_(k-1), so it is
    accurate in float32 where the reference's difference of cumulative ratios loses digits on large volumes.

    Shapes:
        input: (B, C, *S) logits (with ``softmax=True``, the paper's setting; or ``sigmoid``/``other_act``) or
            probabilities, C >= 2.
        target: (B, 1, *S) or (B, *S) label map with ``to_onehot_y=True`` (the natural form); with
            ``to_onehot_y=False`` a (B, C, *S) **hard** one-hot target, turned into labels by argmax (a soft or
            multi-hot target raises :class:`~medloss.errors.LabelValueError`; with ``ignore_index``, a voxel where
            any channel equals it is ignored).
        output: scalar; ``reduction="none"``: the table of loss_c, (B, C') with ``per_image=True``, (1, C')
            otherwise (C' = C, or C - 1 without background). Entries of classes that are not scored are 0 (never
            NaN); ``"mean"`` is the per-problem mean over *scored* entries (not ``table.mean()``) averaged over the
            problems, ``"sum"`` is ``table.sum()``.

    Args:
        classes: ``"present"``, ``"all"`` or a list of class indices (see above).
        per_image: one problem per image (mean over images) instead of one over the whole batch (the reference's
            default is ``False``; an image whose voxels are all ignored counts as 0 in the mean, as there).
        ignore_index: label value of voxels to leave out (removed before sorting; zero gradient there).
        include_background: score class 0 (the softmax is always over all C channels).
        to_onehot_y: ``target`` is a label map (see Shapes).
        sigmoid, softmax, other_act: activation of ``input`` (at most one); none means ``input`` holds
            probabilities, checked to lie in [0, 1]. With ``sigmoid`` the channels are independent probabilities
            and each class is scored on its own channel.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (see Shapes).
        check_input: validate values (labels in range, probabilities in [0, 1], no NaN, hard one-hot); with
            ``False`` the caller guarantees them (probabilities outside [0, 1] give an undefined result).

    Cost: one sort of the problem's voxels per scored class (an int32 key sort; rows processed in chunks so the
    temporaries do not grow with C); at (2, 4, 128^3) on CPU about 0.55-0.7x the reference's time and 0.5x its peak
    memory. The gradient is computed in the forward pass and kept until backward (one tensor the size of the
    input). Computed in float32 for float16/bfloat16 input (float64 for float64), returned in the input dtype.

    References:
        Berman, Rannen Triki, Blaschko, "The Lovász-Softmax loss: A tractable surrogate for the optimization of the
        intersection-over-union measure in neural networks", CVPR 2018, arXiv:1705.08790.
    """

    def __init__(
        self,
        *,
        classes: str | list[int] = "present",
        per_image: bool = False,
        ignore_index: int | None = None,
        include_background: bool = True,
        softmax: bool = False,
        sigmoid: bool = False,
        other_act: Callable[[torch.Tensor], torch.Tensor] | None = None,
        to_onehot_y: bool = False,
        reduction: str = "mean",
        check_input: bool = True,
    ) -> None:
        super().__init__(include_background=include_background, to_onehot_y=to_onehot_y, sigmoid=sigmoid,
                         softmax=softmax, other_act=other_act, ignore_index=ignore_index, reduction=reduction,
                         check_input=check_input)
        self.classes = check_classes(classes)
        if not include_background and isinstance(self.classes, tuple) and 0 in self.classes:
            raise InvalidOptionError(
                "`classes` lists class 0 but `include_background=False` excludes it; drop one of the two."
            )
        self.per_image = bool(per_image)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return lovasz_softmax_loss(
            input, target, classes=self.classes, per_image=self.per_image, **self.activation_kwargs(),
        )


class LovaszHingeLoss(MedlossLoss):
    """Binary Lovász hinge loss (Berman et al., CVPR 2018): the Lovász extension of the foreground Jaccard loss
    applied to hinge errors of the logits.

    For each problem (one image with ``per_image=True``, the default as in the reference; else the flattened
    batch), over its non-ignored voxels i with logit s_i and label y_i in {0, 1}::

        e_i  = 1 - s_i (2 y_i - 1)                          (hinge margin error)
        pi   = voxels ordered by decreasing e;  J_k as in :class:`LovaszSoftmaxLoss` with foreground y = 1
        loss = sum_k relu(e_pi(k)) (J_k - J_(k-1))

    and the mean over problems (an all-ignored image counts as 0). Value and gradient equal the authors'
    ``lovasz_hinge``.

    Shapes:
        input: (B, 1, *S) logits (no activation: the hinge acts on the raw score).
        target: (B, 1, *S) or (B, *S) label map with values 0, 1 (and ``ignore_index``).
        output: scalar; ``reduction="none"``: (B, 1) per image, or (1, 1) with ``per_image=False``.

    Args:
        per_image: one problem per image (default ``True``) or one over the whole batch.
        ignore_index: label value of voxels to leave out.
        reduction: ``"mean"`` over problems, ``"sum"``, or ``"none"``.
        check_input: validate values (labels in {0, 1} or ``ignore_index``, no NaN).

    References:
        Berman, Rannen Triki, Blaschko, CVPR 2018, arXiv:1705.08790.
    """

    def __init__(
        self,
        *,
        per_image: bool = True,
        ignore_index: int | None = None,
        reduction: str = "mean",
        check_input: bool = True,
    ) -> None:
        super().__init__(reduction=reduction, check_input=check_input)
        self.per_image = bool(per_image)
        self.ignore_index = check_ignore_index(ignore_index)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return lovasz_hinge_loss(
            input, target, per_image=self.per_image, ignore_index=self.ignore_index, reduction=self.reduction,
            check_input=self.check_input,
        )


__all__ = ["LovaszHingeLoss", "LovaszSoftmaxLoss"]
