"""Generalized Wasserstein Dice loss as a formula on a soft confusion table.

Fidon et al. score each voxel i by the Wasserstein distance between its predicted distribution p_i and its label
y_i under a class distance matrix M: WE_i = sum_c M[y_i, c] p_ic. Every sum the loss needs runs over the voxels of
one reference class k, so it is a function of the (B, K, C) soft confusion table and the class counts::

    Q[b, k, c] = sum_{i: y_i = k} p_ic          n[b, k] = #{i: y_i = k}
    S_k = sum_{i: y_i = k} WE_i = sum_c M[k, c] Q[k, c]

    default:  TP = sum_k a_k (n_k - S_k), a = (0, 1, ..., 1)     denominator = 2 TP + sum_k S_k
    "GDL":    TP = sum_k a_k (n_k - S_k), a_k = 1 / (n_k + 1)    denominator = sum_k a_k (2 n_k - S_k)
    loss = 1 - (2 TP + smooth_nr) / (denominator + smooth_dr)

The table is built without a one-hot tensor (one masked reduction per reference class) and its gradient is a
gather of dL/dQ at each voxel's label, so autograd keeps only the labels and the softmax.

References:
    Fidon et al., "Generalised Wasserstein Dice Score for Imbalanced Multi-class Segmentation using Holistic
    Convolutional Networks", BrainLes 2017, arXiv:1707.00478.
    Tilborghs et al., "Comparative study of deep learning methods for the automatic segmentation of lung, lesion
    and lesion type in CT scans of COVID-19 patients", arXiv:2007.15546 (the "GDL" weighting, appendix).
"""
from __future__ import annotations

import numpy as np
import torch

from medloss.errors import InvalidOptionError, OptionTypeError, ShapeMismatchError
from medloss.functional import prepare
from medloss.functional import reduce as _reduce
from medloss.functional.stats import distributed_sum

WEIGHTING_MODES = ("default", "GDL")


def distance_matrix(dist_matrix: object) -> torch.Tensor:
    """Validate a class distance matrix and scale it to a maximum of 1 (as MONAI does), in float64."""
    if isinstance(dist_matrix, np.ndarray):
        m = torch.from_numpy(np.asarray(dist_matrix, dtype=np.float64))
    elif isinstance(dist_matrix, torch.Tensor):
        m = dist_matrix.detach().to("cpu", torch.float64)
    elif isinstance(dist_matrix, (list, tuple)):
        try:
            m = torch.tensor(dist_matrix, dtype=torch.float64)
        except (TypeError, ValueError) as exc:
            raise OptionTypeError(f"`dist_matrix` must be a C x C matrix of numbers: {exc}") from None
    else:
        raise OptionTypeError(
            f"`dist_matrix` must be a C x C numpy array, tensor or nested list, got {type(dist_matrix).__name__}."
        )
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 2:
        raise ShapeMismatchError(f"`dist_matrix` must be a C x C matrix with C >= 2, got shape {tuple(m.shape)}.")
    if not bool(torch.isfinite(m).all()) or bool((m < 0).any()):
        raise InvalidOptionError("`dist_matrix` must hold finite distances >= 0.")
    top = float(m.max())
    if top == 0:
        raise InvalidOptionError("`dist_matrix` is all zeros: every confusion would cost nothing.")
    return m / top if top != 1 else m


class _ConfusionTable(torch.autograd.Function):
    """Q[b, k, c] = sum over voxels labelled k of p[b, c, i]; labels equal to C count nowhere (ignored voxels)."""

    @staticmethod
    def forward(ctx, p: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        num_classes = p.shape[1]
        q = torch.stack([torch.where(labels == k, p, 0).sum(dim=2) for k in range(num_classes)], dim=1)
        ctx.save_for_backward(labels)
        return q

    @staticmethod
    def backward(ctx, grad_q: torch.Tensor):
        (labels,) = ctx.saved_tensors
        b, c, n = grad_q.shape[0], grad_q.shape[2], labels.shape[2]
        # dQ[b, k, c] / dp[b, c, i] = [y_i == k]: gather dL/dQ at each voxel's label (a zero column for ignored ones)
        per_label = torch.cat([grad_q.transpose(1, 2), grad_q.new_zeros(b, c, 1)], dim=2)
        return per_label.gather(2, labels.expand(b, c, n)), None


def confusion_table(
    input: torch.Tensor, target: torch.Tensor, *, ignore_index: int | None, check_input: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax of ``input`` (B, C, *S) against a label map: Q (B, K, C) and the counts n (B, K), compute dtype."""
    prepare.check_input_tensor(input)
    num_classes = input.shape[1]
    if num_classes < 2:
        raise ShapeMismatchError(
            f"`input` has {num_classes} channel; the Wasserstein Dice loss compares {num_classes}-class "
            "distributions and needs C >= 2 channels (one per class of `dist_matrix`)."
        )
    if check_input:
        prepare.check_finite(input)
    prepare.label_map(target, input, channels_fix=prepare.LABEL_MAP_ONLY)
    labels, valid = prepare.labels_and_mask(target, input, ignore_index=ignore_index, check_input=check_input)
    if valid is not None:
        labels = labels.masked_fill(valid == 0, num_classes)
    p = torch.softmax(prepare.flatten(input.to(prepare.compute_dtype(input))), dim=1)
    q = _ConfusionTable.apply(p, labels)
    counts = torch.stack([(labels == k).sum(dim=2)[:, 0] for k in range(num_classes)], dim=1).to(q.dtype)
    return q, counts


def wasserstein_dice_from_tables(
    q: torch.Tensor, counts: torch.Tensor, m: torch.Tensor, *, weighting_mode: str, smooth_nr: float,
    smooth_dr: float,
) -> torch.Tensor:
    """1 - generalised Wasserstein Dice per row of the tables: (B,)."""
    errors = (m.to(q) * q).sum(dim=2)  # S_k, (B, K)
    if weighting_mode == "GDL":
        alpha = torch.reciprocal(counts + 1.0)
        true_pos = (alpha * (counts - errors)).sum(dim=1)
        denom = (alpha * (2.0 * counts - errors)).sum(dim=1)
    else:
        alpha = torch.ones_like(counts)
        alpha[:, 0] = 0.0
        true_pos = (alpha * (counts - errors)).sum(dim=1)
        denom = 2.0 * true_pos + errors.sum(dim=1)
    return 1.0 - (2.0 * true_pos + smooth_nr) / (denom + smooth_dr)


def generalized_wasserstein_dice_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    dist_matrix: torch.Tensor,
    *,
    weighting_mode: str = "default",
    reduction: str = "mean",
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    batch: bool = False,
    ignore_index: int | None = None,
    check_input: bool = True,
) -> torch.Tensor:
    """Generalized Wasserstein Dice loss, (B,) before reduction ((1,) with ``batch``).
    See :class:`medloss.losses.GeneralizedWassersteinDiceLoss`."""
    prepare.check_input_tensor(input)
    if dist_matrix.shape[0] != input.shape[1]:
        raise ShapeMismatchError(
            f"`dist_matrix` is {dist_matrix.shape[0]} x {dist_matrix.shape[0]} but `input` has {input.shape[1]} "
            "channels: the matrix needs one row and column per class."
        )
    q, counts = confusion_table(input, target, ignore_index=ignore_index, check_input=check_input)
    if batch:
        q, counts = distributed_sum(q.sum(dim=0, keepdim=True)), distributed_sum(counts.sum(dim=0, keepdim=True))
    loss = wasserstein_dice_from_tables(
        q, counts, dist_matrix, weighting_mode=weighting_mode, smooth_nr=smooth_nr, smooth_dr=smooth_dr
    )
    return _reduce.reduce_table(loss, reduction).to(input.dtype)
