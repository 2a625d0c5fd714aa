"""The ``eager`` engine: plain torch, on any device and dtype; also the reference the kernels are tested against.

:mod:`~medloss.backends.eager.softmax` holds the softmax label-map tables and :mod:`~medloss.backends.eager.sigmoid`
the sigmoid ones, each with its analytic gradient (the math is in their docstrings). :func:`forward` and
:func:`backward` add what the kernels do inside their pass: the input checks and the masks of voxels that count
nowhere. Nothing here reads a tensor back to the host unless ``options.check`` asks for the checks.
"""
from __future__ import annotations

import torch

from medloss import backends, checks
from medloss.backends.eager import sigmoid, softmax
from medloss.backends.options import TableOptions, cost_matrix

__all__ = ["forward", "backward", "check_target"]


def _labels(logits, labels, options: TableOptions):
    """(labels (B, 1, N) int64 with uncounted voxels at 0, valid (B, 1, N) or None) for the softmax tables."""
    num_classes = logits.shape[1]
    if options.check:
        counted = None if options.ignore_index is None else labels != options.ignore_index
    else:  # like the kernels: labels outside [0, C) count nowhere (no host read to find out whether there are any)
        counted = (labels >= 0) & (labels < num_classes)
        if options.ignore_index is not None:
            counted &= labels != options.ignore_index
    if counted is None:
        return labels.long(), None
    return labels.masked_fill(~counted, 0).long(), counted.to(checks.compute_dtype(logits))


def check_target(logits, target, options: TableOptions) -> None:
    """Raise the typed error for an invalid target (also wording the errors the kernels flag in their pass)."""
    if options.activation == "softmax":
        checks.check_labels(target, logits.shape[1], options.ignore_index)
    else:
        sigmoid.check_target(logits, target, options)


def forward(logits: torch.Tensor, target: torch.Tensor, options: TableOptions):
    """(TP, PRED, TARGET, VOXELS (B, 1), VPOS, VNEG) in the compute dtype; softmax tables carry their voxel term
    in VPOS (VNEG is 0)."""
    if options.check:
        checks.check_finite(logits)
        check_target(logits, target, options)
    if options.activation == "sigmoid":
        g, valid = sigmoid.target_and_valid(logits, target, options)
        return sigmoid.forward_tables(logits, g, valid, options)
    labels, valid = _labels(logits, target, options)
    tp, pred, tgt, vox = softmax.forward_tables(logits, labels, valid, options.squared, options.voxel_term,
                                                options.gamma, options.log_clamp, options.region,
                                                _matrix(logits, options))
    return backends.softmax_result(tp, pred, tgt, vox)


def _matrix(logits: torch.Tensor, options: TableOptions) -> torch.Tensor | None:
    """The Wasserstein term's cost matrix in the compute dtype on the logits' device (cached), else None."""
    if options.matrix is None:
        return None
    return cost_matrix(options.matrix, checks.compute_dtype(logits), logits.device)


def backward(logits, target, options: TableOptions, grad_tp, grad_pred, grad_vpos, grad_vneg):
    """dL/dlogits (logits' dtype) from the (B, C) gradients of TP, PRED, VPOS and VNEG. Forward checked the inputs
    when ``options.check`` asked, so they are read here as the options say, with no check."""
    if options.activation == "sigmoid":
        g, valid = sigmoid.target_and_valid(logits, target, options)
        return sigmoid.backward_grad(logits, g, valid, options, grad_tp, grad_pred, grad_vpos, grad_vneg)
    labels, valid = _labels(logits, target, options)
    return softmax.backward_grad(logits, labels, valid, options.squared, options.voxel_term, options.gamma,
                                 options.log_clamp, options.region, grad_tp, grad_pred, grad_vpos,
                                 _matrix(logits, options))
