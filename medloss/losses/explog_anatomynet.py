"""Paper-faithful losses: Exponential Logarithmic (Wong 2018) and AnatomyNet Dice + focal (Zhu 2019)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from medloss.errors import InvalidOptionError, OptionTypeError, ShapeMismatchError, check_number
from medloss.functional import prepare
from medloss.functional import reduce as _reduce
from medloss.functional.explog_anatomynet import anatomynet_loss, explog_loss
from medloss.losses._base import ActivationFlags, MedlossLoss, check_ignore_index


class ExpLogLoss(ActivationFlags, MedlossLoss):
    """Exponential Logarithmic loss (Wong, Moradi, Tang, Syeda-Mahmood, MICCAI 2018)::

        L       = w_dice * L_dice + w_cross * L_cross
        L_dice  = mean_i (-ln Dice_i)^gamma_dice                 (exponent per class, before the mean)
        Dice_i  = (2 TP_i + smooth_nr) / (PRED_i + TARGET_i + smooth_dr)     (paper: smoothing 1)
        L_cross = mean_x w_l (-ln p_l(x))^gamma_cross            (l = label of voxel x, valid voxels only)
        w_l     = ((sum_k f_k) / f_l)^0.5                        (f_k = frequency of label k)

    per sample (pooled over the batch with ``batch=True``), defaults w_dice = 0.8, w_cross = 0.2,
    gamma_dice = gamma_cross = 0.3 as in the paper. Dice_i and p_l are clipped to [clamp, 1 - clamp]
    (default 1e-5, the AnatomyNet authors' bound) before the logarithm: with gamma < 1 the derivative of
    (-ln x)^gamma is infinite at x = 1, so a perfectly segmented class would give inf/NaN gradients. With the clip
    the gradient is 0 once Dice_i > 1 - clamp, and is otherwise bounded by gamma (-ln(1 - clamp))^(gamma - 1) /
    (1 - clamp) ~ 950 times the gradient of Dice_i for gamma = 0.3.

    Label frequencies f_k (background included): ``class_frequencies`` as a sequence (e.g. from a dataset scan,
    :func:`medloss.functional.weights.class_counts`), ``None`` for the label counts of each batch, or
    ``"running"`` for counts accumulated over every training batch seen so far (a buffer, saved in the
    state_dict; updated only in ``train()`` mode; under DDP each rank adds the global batch's counts, so the
    buffers and the weights stay identical across ranks).

    Shapes:
        input: (B, C, *S) logits (``softmax=True``; ``sigmoid=True`` for a single foreground channel) or
        probabilities. target: (B, 1, *S) label map (``to_onehot_y=True``) or (B, C, *S) one-hot.
        output: scalar; (B,) for ``reduction="none"`` ((1,) with ``batch=True``).

    Args:
        include_background: include class 0 in the Dice term (the cross term always uses every label).
        ignore_index: label value whose voxels are excluded from both terms.

    References:
        Wong et al., "3D segmentation with exponential logarithmic loss for highly unbalanced object sizes",
        MICCAI 2018, arXiv:1809.00076.
    """

    class_counts: torch.Tensor
    class_frequencies: torch.Tensor | None

    def __init__(
        self,
        *,
        w_dice: float = 0.8,
        w_cross: float = 0.2,
        gamma_dice: float = 0.3,
        gamma_cross: float = 0.3,
        class_frequencies: Sequence[float] | float | torch.Tensor | None = None,
        include_background: bool = True,
        to_onehot_y: bool = False,
        softmax: bool = False,
        sigmoid: bool = False,
        ignore_index: int | None = None,
        reduction: str = "mean",
        smooth_nr: float = 1.0,
        smooth_dr: float = 1.0,
        batch: bool = False,
        clamp: float = 1e-5,
        check_input: bool = True,
    ) -> None:
        super().__init__(reduction=reduction, check_input=check_input)
        prepare.check_activation_options(sigmoid, softmax, None)
        self.w_dice = check_number("w_dice", w_dice, low=0)
        self.w_cross = check_number("w_cross", w_cross, low=0)
        self.gamma_dice = check_number("gamma_dice", gamma_dice, low=0, low_open=True)
        self.gamma_cross = check_number("gamma_cross", gamma_cross, low=0, low_open=True)
        self.clamp = check_number("clamp", clamp, low=0, high=0.5, low_open=True, high_open=True)
        self.include_background, self.to_onehot_y = bool(include_background), bool(to_onehot_y)
        self.activation = prepare.activation_of(sigmoid=sigmoid, softmax=softmax)
        self.ignore_index = check_ignore_index(ignore_index)
        self.smooth_nr = check_number("smooth_nr", smooth_nr, low=0)
        # > 0: an absent, unpredicted class has Dice 0/0
        self.smooth_dr = check_number("smooth_dr", smooth_dr, low=0, low_open=True)
        self.batch = bool(batch)
        self.running = isinstance(class_frequencies, str)
        if self.running and class_frequencies != "running":
            raise InvalidOptionError(
                f"`class_frequencies` must be a sequence of frequencies, None or 'running', got {class_frequencies!r}."
            )
        if self.running:
            self.register_buffer("class_counts", torch.zeros(0, dtype=torch.float64))
            frequencies = None
        else:
            frequencies = _reduce.class_weight_tensor(class_frequencies, arg="class_frequencies")
            if frequencies is not None and (frequencies.ndim != 1 or bool((frequencies <= 0).any())):
                raise InvalidOptionError(
                    "`class_frequencies` must hold one frequency > 0 per class (background included)."
                )
        self.register_buffer("class_frequencies", frequencies)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        key = prefix + "class_counts"
        if self.running and key in state_dict:  # the buffer's size is only known once labels were seen
            counts = state_dict[key]
            if not isinstance(counts, torch.Tensor) or counts.ndim != 1 or counts.is_complex():
                raise ShapeMismatchError(
                    f"`{key}` in the state dict must be a 1-D tensor of running label counts (one per class), got "
                    f"{tuple(counts.shape) if isinstance(counts, torch.Tensor) else type(counts).__name__}."
                )
            self.class_counts = torch.zeros_like(counts, dtype=torch.float64)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        running = None
        if self.running:
            num_classes = 2 if self.sigmoid else input.shape[1]
            if self.class_counts.numel() == 0:  # sized once the number of labels is known
                self.class_counts = torch.zeros(num_classes, dtype=torch.float64, device=input.device)
            elif self.class_counts.numel() != num_classes:
                raise ShapeMismatchError(
                    f"the running label counts (`class_counts`, e.g. from load_state_dict) have "
                    f"{self.class_counts.numel()} entries but the labels have {num_classes} classes: the state was "
                    "saved for another number of classes; load a matching checkpoint or start from a fresh loss."
                )
            running = self.class_counts
        return explog_loss(
            input, target, w_dice=self.w_dice, w_cross=self.w_cross, gamma_dice=self.gamma_dice,
            gamma_cross=self.gamma_cross, class_frequencies=self.class_frequencies, running_counts=running,
            training=self.training,
            include_background=self.include_background, to_onehot_y=self.to_onehot_y, softmax=self.softmax,
            sigmoid=self.sigmoid, ignore_index=self.ignore_index, smooth_nr=self.smooth_nr,
            smooth_dr=self.smooth_dr, batch=self.batch, clamp=self.clamp, reduction=self.reduction,
            check_input=self.check_input,
        )


class AnatomyNetLoss(ActivationFlags, MedlossLoss):
    """AnatomyNet hybrid Dice + focal loss for small organs (Zhu et al., Med. Phys. 2019)::

        L       = L_dice + lambda_focal * L_focal
        L_dice  = sum_c a_c w_c (1 - TP_c / (TP_c + alpha FN_c + beta FP_c + smooth_dr))
        L_focal = -(1 / N) sum_c sum_{b,n} m_bc w_c g_{n,c} (1 - p_{n,c})^gamma log p_{n,c}

    TP, FN, FP are summed over the batch and every valid voxel (batch Dice) and over the samples whose class mask
    m_bc is 1; a_c = 1 if any sample of the batch has class c annotated; N = number of valid voxels in the batch;
    log p is taken at max(p, 1e-6) as in the authors' code; w_c = ``class_weights``. alpha weighs false
    **negatives** and beta false positives, in the paper's notation (alpha = beta = 0.5 make the index the Dice
    coefficient). With all classes available and unit weights, L_dice = C - sum_c Dice_c as in the paper.

    ``lambda_focal`` default 0.1: the weight of the second term in the authors' compound code
    (``baselineDiceCrossEntropy.py``, ``ceweight = 0.1``) and in MONAI's first reproduction of AnatomyNet; set
    it explicitly if you follow another reading of the paper.

    Per-class arguments count the scored classes C' (C - 1 with ``include_background=False``, as ``weight`` in
    every medloss loss): ``class_weights`` has C' values, ``class_mask`` C' columns (class 0 then always counts).

    Class availability (partially annotated scans): ``forward(input, target, class_mask)`` with a (B, C') 0/1
    mask; classes not annotated in a scan contribute nothing, neither to the pooled Dice statistics nor to the focal
    term. In a MONAI pipeline the mask can travel with the label: if ``class_mask`` is not given and ``target`` is
    a MetaTensor whose ``meta["class_mask"]`` holds the (B, C) mask (set per case by a transform, collated by the
    DataLoader), it is used.

    Shapes:
        input: (B, C, *S) logits (``softmax=True``) or probabilities; target: (B, 1, *S) label map
        (``to_onehot_y=True``) or (B, C, *S) one-hot. output: scalar ("sum": the paper's L, default; "mean": L / C');
        (1, C') per-class terms for ``reduction="none"``.

    Args:
        alpha, beta: weights of false negatives and false positives in the Dice term (paper's notation; 0.5 each).
        gamma: focal exponent (2).
        lambda_focal: weight of the focal term (0.1).
        class_weights: per-class weights w_c (C' values).

    The other arguments are :class:`~medloss.losses.DiceLoss`'s.

    References:
        Zhu, Huang, Tang, Qian, Du, Fan, Xie, "AnatomyNet: Deep learning for fast and fully automated
        whole-volume segmentation of head and neck anatomy", Medical Physics 46(2), 2019, arXiv:1808.05238.
    """

    class_weights: torch.Tensor | None

    def __init__(
        self,
        *,
        alpha: float = 0.5,
        beta: float = 0.5,
        gamma: float = 2.0,
        lambda_focal: float = 0.1,
        class_weights: Sequence[float] | float | torch.Tensor | None = None,
        include_background: bool = True,
        to_onehot_y: bool = False,
        softmax: bool = False,
        ignore_index: int | None = None,
        reduction: str = "sum",
        smooth_nr: float = 0.0,
        smooth_dr: float = 1e-5,
        check_input: bool = True,
    ) -> None:
        super().__init__(reduction=reduction, check_input=check_input)
        self.alpha = check_number("alpha", alpha, low=0)
        self.beta = check_number("beta", beta, low=0)
        self.gamma = check_number("gamma", gamma, low=0)
        self.lambda_focal = check_number("lambda_focal", lambda_focal, low=0)
        self.include_background, self.to_onehot_y = bool(include_background), bool(to_onehot_y)
        self.activation = prepare.activation_of(softmax=softmax)
        self.ignore_index = check_ignore_index(ignore_index)
        self.smooth_nr = check_number("smooth_nr", smooth_nr, low=0)
        self.smooth_dr = check_number("smooth_dr", smooth_dr, low=0)
        self.register_buffer("class_weights", _reduce.class_weight_tensor(class_weights, arg="class_weights"))

    def forward(self, input: torch.Tensor, target: torch.Tensor,
                class_mask: torch.Tensor | Sequence | None = None) -> torch.Tensor:
        if class_mask is None:
            meta = getattr(target, "meta", None)
            if isinstance(meta, dict) and "class_mask" in meta:
                class_mask = meta["class_mask"]
                if isinstance(class_mask, (list, tuple)):
                    class_mask = torch.stack([torch.as_tensor(m) for m in class_mask])
        if class_mask is not None and not isinstance(class_mask, (torch.Tensor, list, tuple)):
            raise OptionTypeError(f"`class_mask` must be a (B, C) tensor, got {type(class_mask).__name__}.")
        if isinstance(target, torch.Tensor) and hasattr(target, "as_tensor"):
            target = target.as_tensor()
        if hasattr(input, "as_tensor"):
            input = input.as_tensor()
        return anatomynet_loss(
            input, target, alpha=self.alpha, beta=self.beta, gamma=self.gamma, lambda_focal=self.lambda_focal,
            class_weights=self.class_weights, class_mask=class_mask, include_background=self.include_background,
            to_onehot_y=self.to_onehot_y, softmax=self.softmax, ignore_index=self.ignore_index,
            smooth_nr=self.smooth_nr, smooth_dr=self.smooth_dr, reduction=self.reduction,
            check_input=self.check_input,
        )
