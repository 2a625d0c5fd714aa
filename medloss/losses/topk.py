"""Top-k cross-entropy and Dice + top-k (thin shells over :mod:`medloss.functional.topk`)."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from medloss.errors import InvalidOptionError, check_number
from medloss.functional import reduce as _reduce
from medloss.functional.topk import check_k, dice_topk_loss, topk_loss
from medloss.losses._base import MedlossLoss, check_ignore_index
from medloss.losses.compound import _CompoundLoss, _dice_options


class TopKLoss(MedlossLoss):
    """Top-k cross-entropy (nnU-Net's ``TopKLoss``, "TopK10"): the mean of the k percent largest voxel losses::

        ce_n = torch's cross-entropy of voxel n (class weights, label smoothing, soft targets as
               :class:`~medloss.losses.CrossEntropyLoss`)
        L = (1 / K) sum of the K largest ce_n,     K = max(1, floor(n k / 100))

    over the n voxels that count (not ``ignore_index``). With ``batch=True`` (nnU-Net's pooling, the default) the
    K voxels are chosen among all voxels of the batch, of every DDP rank; with ``batch=False`` per sample, then the
    per-sample values are averaged over the samples with a voxel that counts (a sample whose voxels are all
    ``ignore_index`` is left out of the mean, as its voxels are of the pooled top k; its "none" row is 0). Easy
    voxels, which dominate small lesions' volumes, drop out of the loss.

    Same values and gradients as nnU-Net's ``TopKLoss`` (recorded in ``tests/reference/data/topk_nnunet.json``),
    except: ignored voxels are left out of the pool and of n (nnU-Net keeps them as zeros, so an ignore label
    shrinks its loss), K >= 1 (nnU-Net's int(n k / 100) = 0 gives NaN), the gradient of values tied at the K-th
    largest is shared evenly (torch.topk picks some), and with DDP the pool is the global batch.

    The K largest values are selected with ``torch.topk`` (K values and indices), not by sorting the volume.

    Shapes:
        input: (B, C, *S) logits, C >= 2.
        target: (B, 1, *S) / (B, *S) label map, or (B, C, *S) class probabilities.
        output: scalar; for ``reduction="none"`` (B,) per-sample values (``batch=False``) or (1,) (``batch=True``).

    Args:
        k: percentage of voxels kept, in (0, 100] (k = 100 is the cross-entropy's mean).
        weight, ignore_index, label_smoothing: as :class:`~medloss.losses.CrossEntropyLoss` (ignore_index
            default -100, torch's and nnU-Net's).
        batch: pool the top-k over the batch (True, nnU-Net) or per sample.

    References:
        Wu, Shen, van den Hengel, "Bridging category-level and instance-level semantic image segmentation",
        arXiv:1605.06885, 2016 (online bootstrapped cross-entropy).
        Isensee et al., nnU-Net, Nature Methods 2021; Ma et al., "Loss odyssey in medical image segmentation",
        MedIA 71 (2021), arXiv:2005.13449 (TopK10 and DiceTopK10).
    """

    weight: torch.Tensor | None

    def __init__(
        self,
        k: float = 10.0,
        weight: Sequence[float] | float | torch.Tensor | None = None,
        ignore_index: int | None = -100,
        label_smoothing: float = 0.0,
        batch: bool = True,
        reduction: str = "mean",
        check_input: bool = True,
    ) -> None:
        super().__init__(reduction=reduction, check_input=check_input)
        self.k = check_k(k)
        self.ignore_index = check_ignore_index(ignore_index)
        self.label_smoothing = check_number("label_smoothing", label_smoothing, low=0, high=1)
        self.batch = bool(batch)
        self.register_buffer("weight", _reduce.class_weight_tensor(weight))

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return topk_loss(input, target, k=self.k, weight=self.weight, ignore_index=self.ignore_index,
                         label_smoothing=self.label_smoothing, batch=self.batch, reduction=self.reduction,
                         check_input=self.check_input)


class DiceTopKLoss(_CompoundLoss):
    """Dice + top-k cross-entropy (nnU-Net's ``DC_and_topk_loss``, "DiceTopK10")::

        L = lambda_dice * Dice(input, target) + lambda_topk * TopK(input, target)

    Dice is :class:`~medloss.losses.DiceLoss` with the Dice arguments (1 - Dice: nnU-Net uses -Dice, the same
    gradient); TopK is :class:`TopKLoss` on the logits with ``k``, ``weight``, ``label_smoothing`` and
    ``topk_batch``. nnU-Net's configuration is ``softmax=True, to_onehot_y=True, include_background=False,
    smooth_nr=smooth_dr=1e-5`` and ``batch`` = its batch_dice. ``ignore_index`` goes to both terms.

    Shapes: input (B, C, *S) logits, C >= 2; target (B, 1, *S) label map (``to_onehot_y=True``) or (B, C, *S).
    Output: scalar ("mean" or "sum" of each term; "none" is undefined for a compound).

    Args:
        lambda_dice, lambda_topk: weights of the two terms (1 each).
        k: percentage of the voxels kept by the top-k term (10).
        weight, label_smoothing: of the top-k cross-entropy, as :class:`TopKLoss`.
        topk_batch: pool the top-k voxels over the batch (nnU-Net's), as ``TopKLoss(batch=...)``.
        ignore_index: label value of voxels left out of both terms.

    The other arguments are :class:`~medloss.losses.DiceLoss`'s (``sigmoid`` and ``other_act`` are refused).

    References:
        Isensee et al., nnU-Net, Nature Methods 2021; Ma et al., "Loss odyssey in medical image segmentation",
        MedIA 71 (2021) (DiceTopK10: best or near-best on liver tumour and multi-organ).
    """

    lambda_dice: float
    lambda_topk: float
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
        k: float = 10.0,
        weight: Sequence[float] | float | torch.Tensor | None = None,
        lambda_dice: float = 1.0,
        lambda_topk: float = 1.0,
        label_smoothing: float = 0.0,
        topk_batch: bool = True,
        ignore_index: int | None = None,
        check_input: bool = True,
    ) -> None:
        super().__init__(name="DiceTopKLoss", reduction=reduction, sigmoid=sigmoid, softmax=softmax,
                         other_act=other_act, ignore_index=ignore_index, check_input=check_input,
                         lambdas={"lambda_dice": lambda_dice, "lambda_topk": lambda_topk})
        if sigmoid or other_act is not None:  # as DiceFocalLoss refuses an activation its voxel term cannot follow
            raise InvalidOptionError(
                f"`{'sigmoid' if sigmoid else 'other_act'}` is not supported by DiceTopKLoss: its top-k "
                "cross-entropy is a softmax over the channels of the logits, so the Dice term must use "
                "`softmax=True` as well (one foreground channel: give two channels, or use BCEDiceLoss)."
            )
        self.k = check_k(k)
        self.label_smoothing = check_number("label_smoothing", label_smoothing, low=0, high=1)
        self.topk_batch = bool(topk_batch)
        self.dice_options = _dice_options(
            include_background, to_onehot_y, sigmoid, softmax, other_act, squared_pred, jaccard, smooth_nr, smooth_dr,
            batch, ignore_index=self.ignore_index, check_input=self.check_input, voxel_terms={},
        )
        self.register_buffer("weight", _reduce.class_weight_tensor(weight))

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return dice_topk_loss(
            input, target, lambda_dice=self.lambda_dice, lambda_topk=self.lambda_topk, k=self.k, weight=self.weight,
            label_smoothing=self.label_smoothing, topk_batch=self.topk_batch, ignore_index=self.ignore_index,
            reduction=self.reduction, dice_options=self.dice_options, check_input=self.check_input,
        )
