"""Per-class region statistics: the only code in medloss that sums region terms over voxels.

For probabilities p (B, C, N), targets g (B, C, N) and a validity mask v (B, 1, N) (0 at ignored voxels):

    TP_c   = sum_n v p_c g_c                         (soft_label: sum_n v min(p_c, g_c))
    PRED_c = sum_n v p_c^e        TARGET_c = sum_n v g_c^e        (e = 2 with squared_pred, else 1)
    FP_c   = PRED_c - TP_c        FN_c     = TARGET_c - TP_c
    VOXELS = sum_n v                                 (the number of voxels that count)

per sample and class, or pooled over the batch (``batch=True``, shape (1, C)). Every region loss (Dice, Jaccard,
Tversky, Focal-Tversky, Generalized Dice, ...) is a small formula on these tables (:mod:`medloss.functional.region`),
so squared denominators, ignore masks, soft labels and batch pooling work for all of them at once.

Two paths compute the same tables:

* the **label-map softmax path** (``softmax=True, to_onehot_y=True``, the common multi-class case) never builds a
  one-hot tensor: TP comes from gathering p at the label and a per-class bincount, and a custom autograd function
  writes the analytic gradient into the softmax buffer it keeps, so forward+backward holds about one logits-sized
  buffer besides the gradient;
* the **dense path** (sigmoid, other activations, one-hot or soft targets) is written with plain tensor ops.

Sums accumulate in float32 (float64 for float64 input) whatever the input dtype.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from medloss.functional import prepare

_CHUNK = 1 << 20  # voxels per float64 chunk when summing per label (bounds the float64 temporary)


class RegionStats(NamedTuple):
    """Per-class statistics, each (B, C), or (1, C) when pooled over the batch; ``voxels`` is (B, 1) / (1, 1)."""

    tp: torch.Tensor
    pred: torch.Tensor
    target: torch.Tensor
    voxels: torch.Tensor

    @property
    def fp(self) -> torch.Tensor:
        return self.pred - self.tp

    @property
    def fn(self) -> torch.Tensor:
        return self.target - self.tp

    def drop_background(self) -> RegionStats:
        """The same tables without class 0."""
        return RegionStats(self.tp[:, 1:], self.pred[:, 1:], self.target[:, 1:], self.voxels)


def labelled_sums(values: torch.Tensor | None, labels: torch.Tensor, num_classes: int, dtype: torch.dtype):
    """sum_n values[b, n] [labels[b, n] = c] for every (b, c) -> (B, C), accumulated in float64.

    ``values=None`` counts voxels per label. A scatter-add into the tiny (B, C) table, in chunks of float64 so that
    the sums are exact to float64 rounding (a float32 accumulation over 10^6 voxels loses ~1e-5).
    """
    batch = labels.shape[0]
    labs = labels.reshape(batch, -1)
    out = torch.zeros(batch, num_classes, dtype=torch.float64, device=labels.device)
    if values is None:
        ones = torch.ones(1, dtype=torch.float64, device=labels.device)
        for b in range(batch):
            out[b].scatter_add_(0, labs[b], ones.expand(labs.shape[1]))
        return out.to(dtype)
    vals = values.reshape(batch, -1)
    for b in range(batch):
        for start in range(0, vals.shape[1], _CHUNK):
            sl = slice(start, start + _CHUNK)
            out[b].scatter_add_(0, labs[b, sl], vals[b, sl].double())
    return out.to(dtype)


class _SoftmaxLabelStats(torch.autograd.Function):
    """(logits, labels, valid) -> (TP, PRED, TARGET) for softmax probabilities, without a one-hot tensor.

    Backward: with k = dL/dPRED, a = dL/dTP and y the label of voxel n, the gradient of the loss with respect to
    the probabilities is gp_c = v (e k_c p_c^(e-1) + [c = y] a_c); through the softmax,
    dx_c = p_c (gp_c - t) with t = sum_c p_c gp_c. The softmax is recomputed in backward into the buffer that
    becomes the gradient, so nothing logits-sized is kept between forward and backward (re-entrant: safe with
    ``retain_graph=True``).
    """

    @staticmethod
    def forward(ctx, logits, labels, valid, squared):  # type: ignore[override]
        num_classes = logits.shape[1]
        p = torch.softmax(logits, dim=1, dtype=prepare.compute_dtype(logits))
        p_y = p.gather(1, labels)
        if valid is not None:
            p_y.mul_(valid)
        tp = labelled_sums(p_y, labels, num_classes, p.dtype)
        del p_y
        target = labelled_sums(valid, labels, num_classes, p.dtype)
        if squared:
            pred = torch.stack([_masked_square_sum(p[:, c], valid) for c in range(num_classes)], dim=1)
        elif valid is None:
            pred = p.sum(dim=2)
        else:
            pred = torch.bmm(p, valid.transpose(1, 2)).squeeze(2)
        ctx.save_for_backward(logits, labels, valid)
        ctx.squared = squared
        ctx.mark_non_differentiable(target)
        return tp, pred, target

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_tp, grad_pred, _grad_target):  # type: ignore[override]
        logits, labels, valid = ctx.saved_tensors
        p = torch.softmax(logits, dim=1, dtype=prepare.compute_dtype(logits))
        batch, num_classes, n = p.shape
        a = grad_tp.to(p.dtype) if grad_tp is not None else p.new_zeros(batch, num_classes)
        k = grad_pred.to(p.dtype) if grad_pred is not None else p.new_zeros(batch, num_classes)
        if ctx.squared:
            k = 2.0 * k  # d(p^2)/dp = 2p; the factor p is applied per class below
        # s_n = v a_y p_y: the label term of gp weighted by p, needed in t and in the final scatter.
        s = a.gather(1, labels.view(batch, n)).view(batch, 1, n).mul_(p.gather(1, labels))
        if valid is not None:
            s.mul_(valid)
        # t_n = sum_c p_c gp_c
        if ctx.squared:
            t = s.clone()
            for c in range(num_classes):
                term = p[:, c : c + 1].square().mul_(k[:, c].view(batch, 1, 1))
                t.add_(term if valid is None else term.mul_(valid))
        else:
            t = torch.bmm(k.unsqueeze(1), p)
            if valid is not None:
                t.mul_(valid)
            t.add_(s)
        # dx_c = p_c (v k_c p_c^(e-1) - t), written in place class by class; the [c = y] term is scattered after.
        buf = torch.empty_like(t)
        for c in range(num_classes):
            kc = k[:, c].view(batch, 1, 1)
            if ctx.squared or valid is not None:
                torch.mul(p[:, c : c + 1] if ctx.squared else valid, kc, out=buf)
                if ctx.squared and valid is not None:
                    buf.mul_(valid)
                buf.sub_(t)
            else:
                torch.sub(kc, t, out=buf)
            p[:, c : c + 1].mul_(buf)
        del buf, t
        p.scatter_add_(1, labels, s)  # dx_y += p_y v a_y
        return p.to(logits.dtype), None, None, None


def _masked_square_sum(x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """sum_n v x^2 for a (B, N) class slice -> (B,)."""
    sq = x.square()
    if valid is not None:
        sq.mul_(valid.view_as(sq))
    return sq.sum(dim=1)


def _voxel_count(valid: torch.Tensor | None, tp: torch.Tensor, num_voxels: int) -> torch.Tensor:
    """(B, 1) number of voxels that count, in the dtype of the tables."""
    if valid is not None:
        return valid.sum(dim=2).to(tp.dtype)
    return torch.full((tp.shape[0], 1), float(num_voxels), dtype=tp.dtype, device=tp.device)


def _dense_stats(
    p: torch.Tensor, g: torch.Tensor, valid: torch.Tensor | None, *, squared: bool, soft_label: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Plain tensor-op statistics for probabilities and dense targets, both (B, C, N)."""
    if valid is not None:
        p, g = p * valid, g * valid
    if soft_label and not squared:
        tp = 0.5 * (p + g - (p - g).abs()).sum(dim=2)  # = sum min(p, g), MONAI's soft-label TP
    else:
        tp = (p * g).sum(dim=2)
    if squared:
        return tp, p.square().sum(dim=2), g.square().sum(dim=2)
    return tp, p.sum(dim=2), g.sum(dim=2)


def region_stats(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    include_background: bool = True,
    to_onehot_y: bool = False,
    sigmoid: bool = False,
    softmax: bool = False,
    other_act: prepare.Activation | None = None,
    squared_pred: bool = False,
    soft_label: bool = False,
    batch: bool = False,
    ignore_index: int | None = None,
    check_input: bool = True,
) -> RegionStats:
    """Compute :class:`RegionStats` of ``input`` against ``target`` (see the module docstring for the math).

    Args:
        input: (B, C, *S) logits (with an activation flag) or probabilities.
        target: (B, 1, *S) / (B, *S) label map with ``to_onehot_y=True``, else (B, C, *S) one-hot or soft.
        include_background: keep class 0 (dropped after the activation, so softmax is over all classes).
        ignore_index: voxels whose label equals it are left out of every sum.
        batch: pool over the batch axis (tables become (1, C)).
        check_input: validate values (labels in range, probabilities in [0, 1], no NaN); shapes are always checked.

    Returns:
        RegionStats with (B, C') or (1, C') tables in float32 (float64 for float64 input).
    """
    prepare.check_input_tensor(input)
    num_classes = input.shape[1]
    fused = softmax and to_onehot_y and num_classes > 1 and not soft_label
    if fused:
        if check_input:
            prepare.check_finite(input)
        labels, valid = prepare.labels_and_mask(target, input, ignore_index=ignore_index, check_input=check_input)
        tables = _SoftmaxLabelStats.apply(prepare.flatten(input), labels, valid, squared_pred)
        stats = RegionStats(*tables, _voxel_count(valid, tables[0], labels.shape[2]))
    else:
        if check_input and (sigmoid or softmax or other_act is not None):
            prepare.check_finite(input)
        g, valid = prepare.dense_target(
            target, input, to_onehot_y=to_onehot_y, ignore_index=ignore_index,
            soft_label=soft_label, check_input=check_input,
        )
        p = prepare.flatten(
            prepare.activate(input, sigmoid=sigmoid, softmax=softmax, other_act=other_act, check_input=check_input)
        )
        stats = _dense_stats(p, g, valid, squared=squared_pred, soft_label=soft_label)
        stats = RegionStats(*stats, _voxel_count(valid, stats[0], p.shape[2]))
    if not include_background:
        if num_classes == 1:
            prepare.warn_single_channel("include_background=False")
        else:
            stats = stats.drop_background()
    if batch:
        stats = RegionStats(*(distributed_sum(t.sum(dim=0, keepdim=True)) for t in stats))
    return stats


def distributed_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a batch-pooled table over the ranks of an initialised ``torch.distributed`` process group, with gradient.

    A no-op without a process group (or with one rank). The backward of the all-reduce sums the gradients of every
    rank's copy of the loss, so each rank's logits receive world_size x dL/dlogits; DDP's gradient averaging then
    gives the parameters exactly the gradient of the loss on the concatenated global batch (as nnU-Net's
    all-gather Dice). Every region loss with ``batch=True`` goes through here.
    """
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(t)
