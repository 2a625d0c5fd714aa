"""Generalized Wasserstein Dice loss as a formula on two tables of the table operator.

Fidon et al. score each voxel i by the Wasserstein distance between its predicted distribution p_i and its label
y_i under a class distance matrix M: WE_i = sum_c M[y_i, c] p_ic. Every sum the loss needs runs over the voxels of
one reference class k, so it needs only, per sample and class::

    S_k = sum_{i: y_i = k} WE_i   (VPOS of the operator's "wasserstein" voxel term)
    n_k = #{i: y_i = k}           (TARGET)

    default:  TP = sum_k a_k (n_k - S_k), a = (0, 1, ..., 1)     denominator = 2 TP + sum_k S_k
    "GDL":    TP = sum_k a_k (n_k - S_k), a_k = 1 / (n_k + 1)    denominator = sum_k a_k (2 n_k - S_k)
    loss = 1 - (2 TP + smooth_nr) / (denominator + smooth_dr)

Both come from one pass of the table operator (:mod:`medloss.backends.op`; the term's value and slope are in
:mod:`medloss.backends.eager.softmax`), on every engine, with its analytic backward: no one-hot, no softmax kept
for backward. Every input takes that path (the eager engine reads any float dtype on any device), so there is no
dense path; the cost matrix travels in the operator's options (:class:`~medloss.backends.options.TableOptions`).

References:
    Fidon et al., "Generalised Wasserstein Dice Score for Imbalanced Multi-class Segmentation using Holistic
    Convolutional Networks", BrainLes 2017, arXiv:1707.00478.
    Tilborghs et al., "Comparative study of deep learning methods for the automatic segmentation of lung, lesion
    and lesion type in CT scans of COVID-19 patients", arXiv:2007.15546 (the "GDL" weighting, appendix).
"""
from __future__ import annotations

import numpy as np
import torch

from medloss.backends.options import TableOptions
from medloss.errors import InvalidOptionError, OptionTypeError, ShapeMismatchError
from medloss.functional import prepare
from medloss.functional import reduce as _reduce
from medloss.functional.stats import distributed_sum, label_map_tables

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


def wasserstein_options(matrix: torch.Tensor, *, ignore_index: int | None, check_input: bool) -> TableOptions:
    """The table operator's options for a validated cost matrix (:func:`distance_matrix`): the "wasserstein" voxel
    term alone (no TP or PRED), built once by the loss's constructor."""
    rows = tuple(tuple(float(v) for v in row) for row in matrix.tolist())
    return TableOptions(ignore_index=ignore_index, voxel_term="wasserstein", region=False, check=check_input,
                        matrix=rows)


def wasserstein_sums(input: torch.Tensor, target: torch.Tensor, options: TableOptions) -> tuple[torch.Tensor,
                                                                                                   torch.Tensor]:
    """(S, n), each (B, C) in the compute dtype, of (B, C, *S) logits (a tensor the caller checked) against a label
    map: the per-class sums of the voxels' Wasserstein errors and the voxel counts."""
    num_classes = input.shape[1]
    if num_classes < 2:
        raise ShapeMismatchError(
            f"`input` has {num_classes} channel; the Wasserstein Dice loss compares {num_classes}-class "
            "distributions and needs C >= 2 channels (one per class of `dist_matrix`)."
        )
    size = len(options.matrix or ())
    if size != num_classes:
        raise ShapeMismatchError(
            f"`dist_matrix` is {size} x {size} but `input` has {num_classes} channels: the matrix needs one row and "
            "column per class."
        )
    # shape check only: a (B, C, *S) one-hot target gets this loss's advice (the operator's would name to_onehot_y)
    prepare.label_map(target, input, channels_fix=prepare.LABEL_MAP_ONLY)
    stats, errors = label_map_tables(input, target, options=options)
    return errors, stats.target


def wasserstein_dice_from_sums(
    errors: torch.Tensor, counts: torch.Tensor, *, weighting_mode: str, smooth_nr: float, smooth_dr: float
) -> torch.Tensor:
    """1 - generalised Wasserstein Dice per row of the (B, C) sums S (``errors``) and n (``counts``): (B,)."""
    if weighting_mode == "GDL":
        alpha = torch.reciprocal(counts + 1.0)
        true_pos = (alpha * (counts - errors)).sum(dim=1)
        denom = (alpha * (2.0 * counts - errors)).sum(dim=1)
    else:
        true_pos = (counts - errors)[:, 1:].sum(dim=1)  # a = (0, 1, ..., 1): the background scores nothing
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
    options: TableOptions | None = None,
) -> torch.Tensor:
    """Generalized Wasserstein Dice loss, (B,) before reduction ((1,) with ``batch``).
    See :class:`medloss.losses.GeneralizedWassersteinDiceLoss`. ``dist_matrix``: a matrix :func:`distance_matrix`
    validated; ``options``: the loss's :func:`wasserstein_options` of it, used instead of ``dist_matrix``,
    ``ignore_index`` and ``check_input``."""
    prepare.check_input_tensor(input)
    if options is None:
        options = wasserstein_options(dist_matrix, ignore_index=ignore_index, check_input=check_input)
    errors, counts = wasserstein_sums(input, target, options)
    if batch:
        errors = distributed_sum(errors.sum(dim=0, keepdim=True))
        counts = distributed_sum(counts.sum(dim=0, keepdim=True))
    loss = wasserstein_dice_from_sums(errors, counts, weighting_mode=weighting_mode, smooth_nr=smooth_nr,
                                      smooth_dr=smooth_dr)
    return _reduce.reduce_table(loss, reduction).to(input.dtype)
