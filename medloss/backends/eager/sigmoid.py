"""Sigmoid tables of the eager engine: per-channel region sums and the BCE / sigmoid focal sums, with their gradient.

For logits x (B, C, N), a target g (B, C, N) in [0, 1], validity v (B, 1, N), p = sigmoid(x) and the softplus
sp(z) = log(1 + e^z) (so -log p = sp(-x) and -log(1 - p) = sp(x)), per sample and class::

    TP_c = sum_n v p g    PRED_c = sum_n v p^e    TARGET_c = sum_n v g^e    VOXELS = sum_n v        (e = 2 if squared)
    VPOS_c = sum_n v g L    VNEG_c = sum_n v (1 - g) L

for the sigmoid focal term L = w b, with the cross-entropy b = g sp(-x) + (1 - g) sp(x) and w =
sigmoid(-x (2g - 1))^gamma (Lin et al., ICCV 2017, "Focal Loss for Dense Object Detection"; for a binary g, w is
(1 - p)^gamma on positives and p^gamma on negatives). For the binary cross-entropy ("bce") VPOS and VNEG are b's
two summands, VPOS_c = sum_n v g sp(-x) and VNEG_c = sum_n v (1 - g) sp(x) (so pos_weight scales VPOS, as torch's
``binary_cross_entropy_with_logits``). Both agree with the focal form for binary targets. BCE and the focal loss
with a scalar alpha (alpha on positives, 1 - alpha on negatives) are alpha VPOS + (1 - alpha) VNEG; every sigmoid
region loss is a formula on TP, PRED, TARGET.

Backward, with a = dL/dTP, k = dL/dPRED, u+ = dL/dVPOS, u- = dL/dVNEG::

    dx = v [p (1 - p) (a g + e k p^(e-1)) + D]
    bce:    D = u+ g (p - 1) + u- (1 - g) p
    focal:  D = (u+ g + u- (1 - g)) w (gamma sigmoid(x (2g - 1)) (1 - 2g) b + p - g)

The target is dense (one value per logit; ``options.dense``) or a (B, 1, N) label map whose one-hot is the target
(C = 1: the map itself, values {0, 1}). A dense voxel counts nowhere where any channel equals ``ignore_index``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from medloss import checks
from medloss.backends.options import TableOptions

__all__ = ["check_target", "target_and_valid", "forward_tables", "backward_grad"]


def check_target(logits: torch.Tensor, target: torch.Tensor, options: TableOptions) -> None:
    """Raise the typed error for an invalid target: a label map outside [0, max(C, 2)) (other than
    ``ignore_index``); dense values outside [0, 1], or fractional without ``options.soft``. Host reads; used with
    ``options.check`` and by the kernels to word an error they flagged."""
    num_classes = logits.shape[1]
    if not options.dense:
        checks.check_labels(target, max(num_classes, 2), options.ignore_index,
                             range_fix=checks.channels_fix(num_classes))
        return
    if options.voxel_term == "bce":  # BCE's own wording (its losses take no label map to one-hot encode)
        counted = target if options.ignore_index is None else target.masked_fill(target == options.ignore_index, 0)
        checks.check_bce_target(counted)
        if options.soft:
            return
    # the tables do not know whether their loss has a `soft_label` option: word the error without advising it
    held = checks.representable_ignore(options.ignore_index, target.dtype)
    counted = target if held is None else target.masked_fill((target == held).any(dim=1, keepdim=True), 0)
    checks.check_dense_values(counted, True if options.soft else None, checks.compute_dtype(logits))


def target_and_valid(logits: torch.Tensor, target: torch.Tensor, options: TableOptions):
    """(g (B, C, N) in the compute dtype, valid (B, 1, N) or None), without a host read. Unchecked label-map values
    outside the classes count nowhere, as in the kernels."""
    dtype = checks.compute_dtype(logits)
    num_classes = logits.shape[1]
    ignore = options.ignore_index
    if options.dense:
        if ignore is None:
            return target.to(dtype), None
        ignored = (target == ignore).any(dim=1, keepdim=True)
        return target.to(dtype).masked_fill(ignored, 0.0), (~ignored).to(dtype)
    counted = None if ignore is None else target != ignore
    if not options.check:
        inside = (target >= 0) & (target < max(num_classes, 2))
        counted = inside if counted is None else counted & inside
    if num_classes == 1:
        g = (target == 1).to(dtype)
    else:
        g = (target == torch.arange(num_classes, device=target.device).view(1, -1, 1)).to(dtype)
    return g, None if counted is None else counted.to(dtype)


def _losses(x: torch.Tensor, g: torch.Tensor, options: TableOptions):
    """(b, w): the cross-entropy b = g sp(-x) + (1 - g) sp(x) and the focal weight w (None for "bce")."""
    b = g * F.softplus(-x) + (1 - g) * F.softplus(x)
    if options.voxel_term != "focal" or options.gamma == 0:
        return b, None
    return b, torch.exp(options.gamma * F.logsigmoid(x * (1 - 2 * g)))


def forward_tables(logits, g, valid, options: TableOptions):
    """(TP, PRED, TARGET, VOXELS (B, 1), VPOS, VNEG) in the compute dtype (see the module docstring)."""
    dtype = g.dtype
    x = logits.to(dtype)
    batch, num_classes, n = x.shape
    gv = g if valid is None else g * valid
    target = (gv * g).sum(dim=2) if options.squared else gv.sum(dim=2)
    zeros = torch.zeros_like(target)
    if options.region:
        p = torch.sigmoid(x)
        pv = p if valid is None else p * valid
        tp = (p * gv).sum(dim=2)
        pred = (pv * p).sum(dim=2) if options.squared else pv.sum(dim=2)
        del p, pv
    else:
        tp = pred = zeros
    voxels = valid.sum(dim=2) if valid is not None else torch.full((batch, 1), float(n), dtype=dtype,
                                                                      device=x.device)
    if options.voxel_term is None:
        return tp, pred, target, voxels, zeros, zeros.clone()
    if options.voxel_term == "bce":  # b's two summands
        vpos = (gv * F.softplus(-x)).sum(dim=2)
        neg = 1 - g if valid is None else (1 - g) * valid
        return tp, pred, target, voxels, vpos, (neg * F.softplus(x)).sum(dim=2)
    b, w = _losses(x, g, options)
    term = b if w is None else b.mul_(w)
    if valid is not None:
        term = term.mul_(valid)
    return tp, pred, target, voxels, (term * g).sum(dim=2), (term * (1 - g)).sum(dim=2)


def backward_grad(logits, g, valid, options: TableOptions, grad_tp, grad_pred, grad_vpos, grad_vneg):
    """dL/dlogits (logits' dtype) from the (B, C) gradients of TP, PRED, VPOS and VNEG."""
    dtype = g.dtype
    x = logits.to(dtype)
    p = torch.sigmoid(x)
    a, k, upos, uneg = (t.to(dtype).unsqueeze(-1) for t in (grad_tp, grad_pred, grad_vpos, grad_vneg))
    grad = torch.zeros_like(p)
    if options.region:
        grad = grad + p * (1 - p) * (a * g + (2 * k * p if options.squared else k))
    if options.voxel_term is not None:
        if options.voxel_term == "bce":
            grad = grad + upos * g * (p - 1) + uneg * (1 - g) * p
        else:
            b, w = _losses(x, g, options)
            slope = p - g
            if w is not None:
                slope = w * (options.gamma * torch.sigmoid(x * (2 * g - 1)) * (1 - 2 * g) * b + slope)
            grad = grad + (upos * g + uneg * (1 - g)) * slope
    if valid is not None:
        grad = grad * valid
    return grad.to(logits.dtype)
