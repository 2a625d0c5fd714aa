"""The ``eager`` engine: plain torch, on any device and dtype; also the reference the kernels are tested against.

:mod:`~medloss.backends.eager.softmax` holds the softmax label-map tables and their analytic gradient (the math is
in its docstring). :class:`Engine` adds what the kernels do inside their pass: the label checks and the masks of
voxels that count nowhere.
"""
from __future__ import annotations

import dataclasses

from medloss.backends.eager import softmax
from medloss.functional import prepare
from medloss.functional.options import TableOptions

__all__ = ["Engine"]


def _eager_labels(logits, labels, options: TableOptions):
    """(labels (B, 1, N) int64 with uncounted voxels at 0, valid (B, 1, N) or None) for the eager engine."""
    num_classes = logits.shape[1]
    if options.check:
        prepare.check_finite(logits)
        prepare.check_labels(labels, num_classes, options.ignore_index)
        counted = None if options.ignore_index is None else labels != options.ignore_index
    else:  # like the kernels: labels outside [0, C) count nowhere (no host read to find out whether there are any)
        counted = (labels >= 0) & (labels < num_classes)
        if options.ignore_index is not None:
            counted &= labels != options.ignore_index
    if counted is None:
        return labels.long(), None
    return labels.masked_fill(~counted, 0).long(), counted.to(prepare.compute_dtype(logits))


class Engine:
    """The ``eager`` engine: the functions above, with the label checks and masks the kernels do in their pass."""

    @staticmethod
    def forward(logits, labels, options: TableOptions):
        labels, valid = _eager_labels(logits, labels, options)
        return softmax.forward_tables(logits, labels, valid, options.squared, options.voxel_term, options.gamma,
                                      options.log_clamp, options.region)

    @staticmethod
    def backward(logits, labels, options: TableOptions, grad_tp, grad_pred, grad_vox):
        labels, valid = _eager_labels(logits, labels, dataclasses.replace(options, check=False))
        return softmax.backward_grad(logits, labels, valid, options.squared, options.voxel_term, options.gamma,
                                     options.log_clamp, options.region, grad_tp, grad_pred, grad_vox)
