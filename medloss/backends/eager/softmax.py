"""The one-hot-free softmax path: per-class tables of softmax probabilities against a label map, with an analytic
backward.

For logits x (B, C, N), labels y (B, 1, N), validity v (B, 1, N) and p = softmax(x)::

    TP_c   = sum_n v p_c [y = c]        PRED_c = sum_n v p_c^e        TARGET_c = sum_n v [y = c]
    VOX_c  = sum_n v phi(p_y) [y = c]   (a voxel term of the labelled class, summed per label)

with e = 2 for squared denominators and a voxel term phi of l = log p_y, optionally clamped to [lo, hi]:
phi = -l (cross-entropy), -(1 - p)^gamma l (softmax focal; AnatomyNet clamps p below), (-l)^gamma (the
Exponential Logarithmic loss's cross term, clamped both sides), or none; or the Wasserstein error of the voxel
under a class cost matrix M, phi = WE = sum_c M[y, c] p_c (the Generalized Wasserstein Dice loss), which depends
on every p_c: dWE/dx_c = p_c (M[y, c] - WE). Every softmax region loss, cross-entropy,
softmax focal and the paper compounds with a label-map target are formulas on these (B, C) tables, so compounds
(Dice + CE, Dice + focal, ExpLog, AnatomyNet) cost one pass and one backward.

Backward: with k = dL/dPRED, a = dL/dTP, u = dL/dVOX, the gradient through the softmax is
    dx_c = p_c (v e k_c p_c^(e-1) - t) + [c = y] s,    s = v p_y (a_y + u_y phi'(p_y)),    t = v sum_c e k_c p_c^e + s
(p phi'(p) = -1 for cross-entropy; gamma p (1 - p)^(gamma - 1) log p - (1 - p)^gamma for focal; -gamma
(-l)^(gamma-1) for explog; 0 where the clamp clips l). The Wasserstein term instead adds w M[y, c] to each class's
factor v e k_c p_c^(e-1) and w WE to t, with w = v u_y (s gets nothing from it): its dx_c = w p_c (M[y, c] - WE).
The softmax is recomputed in backward into the buffer that becomes the gradient, so nothing logits-sized is kept
between forward and backward, and backward is re-entrant (``retain_graph=True`` is safe). log p_y is computed as
x_y - logsumexp(x) (for the rare voxels where p_y underflows; elsewhere log of the softmax).
"""
from __future__ import annotations

import math

import torch

from medloss import checks

_BLOCK = 1 << 20  # elements per (B, C, block) temporary in the backward's final pass


def labelled_sums(values: torch.Tensor | None, labels: torch.Tensor, num_classes: int, dtype: torch.dtype):
    """sum_n values[b, n] [labels[b, n] = c] for every (b, c) -> (B, C) in ``dtype``. Differentiable.

    ``values=None`` counts voxels per label (exact integers). One masked reduction per class: torch's tree
    reductions keep float32 sums accurate to ~1e-7 relative, with no atomics (a scatter-add into the C bins
    serialises on a GPU) and no host read.
    """
    batch = labels.shape[0]
    labs = labels.reshape(batch, -1)
    vals = None if values is None else values.reshape(batch, -1)
    columns = []
    for c in range(num_classes):
        hit = labs == c
        if vals is None:
            columns.append(hit.sum(dim=1).to(dtype))
        else:
            columns.append(torch.where(hit, vals, 0.0).sum(dim=1, dtype=dtype))
    return torch.stack(columns, dim=1)


def _label_log_prob(p: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p_y (B, 1, N) from the softmax p, exact even where p_y underflows: with m = max_c x_c and p_max = max_c p_c
    (= e^0 / sum_c e^(x_c - m) >= 1/C, never underflows), log p_y = x_y - m + log p_max. No term is -inf however
    saturated the network is, and no data-dependent branch (no host sync)."""
    dtype = p.dtype
    x_y = logits.gather(1, labels).to(dtype)
    top = logits.amax(dim=1, keepdim=True).to(dtype)
    return x_y.sub_(top).add_(p.amax(dim=1, keepdim=True).log_())


def _clamped(log_py: torch.Tensor, log_clamp: tuple[float, float]) -> torch.Tensor:
    lo, hi = log_clamp
    return log_py if lo == -math.inf and hi == math.inf else log_py.clamp(lo, hi)


def voxel_value(log_py: torch.Tensor, kind: str, gamma: float,
                log_clamp: tuple[float, float] = (-math.inf, math.inf)) -> torch.Tensor:
    """phi(p_y) per voxel from l = log p_y clamped to ``log_clamp``: -l (ce), -(1 - e^l)^gamma l (focal),
    (-l)^gamma (explog). The one definition of the softmax voxel terms: the engine evaluates it without autograd
    (in place), the formulas' dense paths with autograd (on any log-probabilities, e.g. of every channel)."""
    log_p = _clamped(log_py, log_clamp)
    if kind == "ce":
        return -log_p
    if kind == "explog":
        return log_p.neg().pow(gamma)
    q = torch.expm1(log_p).neg()  # 1 - p, accurate near p = 1
    if q.requires_grad:
        return -(q.pow(gamma) * log_p)
    return q.pow_(gamma).mul_(log_p).neg_()


def wasserstein_error(p: torch.Tensor, labels: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """WE = sum_c M[y, c] p_c per voxel, (B, 1, N), for probabilities p (B, C, N), labels (B, 1, N) int64 and the
    C x C cost matrix M in p's dtype: one gather of a matrix column per class, no (B, C, N) temporary."""
    columns = matrix.t()
    we = torch.zeros_like(p[:, :1])
    for c in range(p.shape[1]):
        we.addcmul_(p[:, c : c + 1], columns[c][labels])
    return we


def _label_rows(matrix: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """M[y_n, c] as (B, C, n) for labels (B, 1, n): the Wasserstein term's per-class factor."""
    return matrix.t()[:, labels[:, 0]].transpose(0, 1)


def _voxel_slope(log_py: torch.Tensor, kind: str, gamma: float, log_clamp: tuple[float, float]) -> torch.Tensor:
    """d phi / d l = p phi'(p) at p = p_y, from l = log p_y: -1 (cross-entropy), gamma p (1-p)^(gamma-1) l -
    (1-p)^gamma (focal, 0 where p = 1), -gamma (-l)^(gamma-1) (explog); 0 where ``log_clamp`` clips l (as
    torch.clamp). A few temporaries of log_py's size."""
    lo, hi = log_clamp
    inside = (log_py >= lo) & (log_py <= hi)
    if kind == "ce":
        slope = torch.full_like(log_py, -1.0)
    elif kind == "explog":
        base = log_py.neg()
        slope = torch.where(base > 0, base.clamp_min(1e-300).pow(gamma - 1.0).mul_(-gamma), torch.zeros_like(base))
    else:
        q = torch.expm1(log_py).neg_()  # 1 - p, accurate near p = 1
        saturated = q <= 0
        slope = q.masked_fill(saturated, 1.0).pow_(gamma - 1.0)  # (1 - p)^(gamma - 1)
        q.mul_(slope)  # (1 - p)^gamma
        slope.mul_(log_py).mul_(gamma).mul_(log_py.exp()).sub_(q)
        slope.masked_fill_(saturated, 0.0)
    return slope.masked_fill_(~inside, 0.0)


def forward_tables(logits, labels, valid, squared, voxel_term, gamma, log_clamp, region, matrix=None):
    """(TP, PRED, TARGET, VOX), each (B, C) in the compute dtype, for logits (B, C, N), labels (B, 1, N) int64 (0
    where ignored), valid (B, 1, N) or None. See the module docstring. With ``region=False`` (a voxel loss alone)
    TP and PRED are not computed (zeros). ``matrix``: the Wasserstein term's C x C cost matrix in the compute
    dtype. No autograd: :func:`backward_grad` is the gradient."""
    num_classes = logits.shape[1]
    dtype = checks.compute_dtype(logits)
    p = torch.softmax(logits, dim=1, dtype=dtype)
    target = labelled_sums(valid, labels, num_classes, dtype)
    if region:
        p_y = p.gather(1, labels)
        if valid is not None:
            p_y.mul_(valid)
        tp = labelled_sums(p_y, labels, num_classes, dtype)
        del p_y
        if squared:
            pred = torch.stack([_masked_square_sum(p[:, c], valid) for c in range(num_classes)], dim=1)
        elif valid is None:
            pred = p.sum(dim=2)
        else:
            pred = torch.bmm(p, valid.transpose(1, 2)).squeeze(2)
    else:
        tp = pred = torch.zeros_like(target)
    if voxel_term:
        if voxel_term == "wasserstein":
            phi = wasserstein_error(p, labels, matrix)
        else:
            phi = voxel_value(_label_log_prob(p, logits, labels), voxel_term, gamma, log_clamp)
        del p
        vox = labelled_sums(phi if valid is None else phi.mul_(valid), labels, num_classes, dtype)
    else:
        vox = torch.zeros_like(target)
    return tp, pred, target, vox


def backward_grad(logits, labels, valid, squared, voxel_term, gamma, log_clamp, region, grad_tp, grad_pred, grad_vox,
                  matrix=None):
    """dL/dlogits (logits' dtype) from the incoming (B, C) gradients of TP, PRED and VOX."""
    dtype = checks.compute_dtype(logits)
    batch, num_classes, n = logits.shape
    p = torch.softmax(logits, dim=1, dtype=dtype)

    flat_labels = labels.view(batch, n)
    # the Wasserstein term: w = v u_y and w WE (added to t); its w M[y, c] joins each class's factor below
    w = w_we = None
    if voxel_term == "wasserstein":
        w = grad_vox.to(dtype).gather(1, flat_labels).view(batch, 1, n)
        if valid is not None:
            w.mul_(valid)
        w_we = wasserstein_error(p, labels, matrix).mul_(w)
    # s_n = v p_y (a_y + u_y phi'(p_y)): the label term of the gradient, needed in t and in the final scatter
    s = None
    if region:
        s = grad_tp.to(dtype).gather(1, flat_labels).view(batch, 1, n).mul_(p.gather(1, labels))
    if voxel_term is not None and w is None:
        u = grad_vox.to(dtype).gather(1, flat_labels).view(batch, 1, n)
        u.mul_(_voxel_slope(_label_log_prob(p, logits, labels), voxel_term, gamma, log_clamp))
        s = u if s is None else s.add_(u)
        del u
    if s is None:
        s = p.new_zeros(batch, 1, n)
    if valid is not None:
        s.mul_(valid)
    if not region:  # k = 0: dx = s (onehot - p) (+ w p_c (M[y, c] - WE))
        if w is None:
            p.mul_(s.neg())
        else:
            for c in range(num_classes):
                p[:, c : c + 1].mul_(matrix[:, c][labels].mul_(w).sub_(w_we).sub_(s))
        p.scatter_add_(1, labels, s)
        return p.to(logits.dtype)
    k = grad_pred.to(dtype)
    if squared:
        k = 2.0 * k  # d(p^2)/dp = 2p; the factor p is applied per class below
    # t_n = sum_c p_c gp_c
    if squared:
        t = s.clone()
        for c in range(num_classes):
            term = p[:, c : c + 1].square().mul_(k[:, c].view(batch, 1, 1))
            t.add_(term if valid is None else term.mul_(valid))
    else:
        t = torch.bmm(k.unsqueeze(1), p)
        if valid is not None:
            t.mul_(valid)
        t.add_(s)
    if w_we is not None:
        t.add_(w_we)
    # dx_c = p_c (v k_c p_c^(e-1) - t), in place over voxel blocks (a bounded (B, C, block) temporary);
    # the [c = y] term is scattered after
    kc = k.unsqueeze(-1)
    block = max(1, _BLOCK // max(1, batch * num_classes))
    for start in range(0, n, block):
        sl = slice(start, start + block)
        p_blk = p[:, :, sl]
        factor = p_blk * kc if squared else kc.expand(batch, num_classes, p_blk.shape[2])
        if valid is not None:
            factor = factor * valid[:, :, sl]
        if w is not None:
            factor = factor + _label_rows(matrix, labels[:, :, sl]) * w[:, :, sl]
        p_blk.mul_(factor - t[:, :, sl])
    del t
    p.scatter_add_(1, labels, s)  # dx_y += s
    return p.to(logits.dtype)


def _masked_square_sum(x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """sum_n v x^2 for a (B, N) class slice -> (B,)."""
    sq = x.square()
    if valid is not None:
        sq.mul_(valid.view_as(sq))
    return sq.sum(dim=1)
