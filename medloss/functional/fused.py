"""Which loss calls the Triton engine evaluates whole (:mod:`medloss.backends.triton.fused`: the loss formula and
its gradient on the device, one autograd node), and the description of each loss it gets.

:func:`fused_loss` is the one predicate: every loss that can take the fused path asks it, with the
:class:`LossSpec` its builder here gives (None for options the kernel does not evaluate); where it answers None the
loss runs its torch formula on the tables (:func:`medloss.functional.stats.tables_path`), with the same numbers.
"""
from __future__ import annotations

import functools

import torch

from medloss.backends import engine_for
from medloss.backends.options import TableOptions
from medloss.backends.triton import fused as _fused
from medloss.backends.triton.fused import LossSpec
from medloss.functional import prepare
from medloss.functional.region_options import RegionOptions

__all__ = ["LossSpec", "fused_loss", "region_spec", "focal_spec"]

def _distributed() -> bool:
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def fused_loss(input: torch.Tensor, target: torch.Tensor, table_options: TableOptions | None,
               spec: LossSpec | None) -> torch.Tensor | None:
    """The loss ``spec`` from the Triton engine's fused path, or None where it does not apply: no spec (options
    the kernel does not evaluate), no tables (the dense path) or one channel, a target that is no tensor on the
    logits' device, a dense target of another shape or with a gradient, under ``torch.compile`` (the registered operator
    keeps the graph whole), batch pooling across a process group (the tables are all-reduced), and inputs the
    Triton engine does not take (:func:`medloss.backends.engine_for`) or labels whose dtype cannot hold
    ``ignore_index``. ``input`` must be a tensor (the caller checked it)."""
    if (spec is None or table_options is None or input.shape[1] < 2 or not isinstance(target, torch.Tensor)
            or target.device != input.device or torch.compiler.is_compiling() or (spec.batch and _distributed())):
        return None
    if table_options.dense:  # sigmoid against one target value per logit
        if tuple(target.shape) != tuple(input.shape) or target.requires_grad:
            return None
        labels = target
    else:
        labels = prepare.label_map(target, input)
    if not input.is_contiguous():  # the Triton engine takes contiguous logits (the tables' path copies them)
        return None
    labels = labels.contiguous()  # a copy only where the target is strided (e.g. a one-hot made by movedim)
    batch, num_classes = input.shape[:2]
    if engine_for(input.view(batch, num_classes, -1), labels.view(batch, labels.shape[1], -1),
                  table_options) != "triton":
        return None
    ignore = table_options.ignore_index
    if ignore is not None and prepare.representable_ignore(ignore, labels.dtype) is None:
        return None
    return _fused.loss(input, labels, table_options, spec)


@functools.lru_cache(maxsize=256)
def region_spec(kind: str, options: RegionOptions, reduction: str, *, weighted: bool = False,
                alpha: float = 0.5, beta: float = 0.5, gamma: float | None = None, eps: float = 0.0,
                w_type: str = "square", empty: str = "penalize", lam_region: float = 1.0,
                lam_voxel: float = 0.0, voxel: str = "ce") -> LossSpec | None:
    """The spec of a region loss (``kind``: ``"dice"`` (Jaccard with ``options.jaccard``), ``"tversky"``
    (focal Tversky with ``gamma``, 1 - TI clamped below by ``eps``) or ``"gdl"``), alone or, with ``lam_voxel``,
    plus ``voxel`` (``"ce"``: DiceCE, ``"bce"``: BCEDice); None for what the kernel does not evaluate: class
    weights (``weighted``; BCE's ``pos_weight``) and ``reduction="none"``."""
    if weighted or reduction not in ("mean", "sum"):
        return None
    region, overlap = "dice", (2.0, 1.0, 1.0)
    if kind == "gdl":
        region = "gdl"
    elif kind == "tversky":
        region, overlap = "overlap", (1.0, float(alpha), float(beta))
    elif options.jaccard:
        region, overlap = "overlap", (2.0, 2.0, 2.0)
    return LossSpec(region=region, overlap=overlap, focal_gamma=None if gamma is None else float(gamma),
                    focal_eps=float(eps), w_type=w_type, empty=empty, voxel=voxel if lam_voxel else None,
                    lam_region=float(lam_region), lam_voxel=float(lam_voxel),
                    include_background=options.include_background, batch=options.batch, mean=reduction == "mean",
                    smooth_nr=options.smooth_nr, smooth_dr=options.smooth_dr)


@functools.lru_cache(maxsize=64)
def focal_spec(include_background: bool, reduction: str, *, weighted: bool, alpha_free: bool) -> LossSpec | None:
    """The spec of the softmax focal loss; None with ``alpha`` or class weights (``weighted``) or
    ``reduction="none"``."""
    if weighted or not alpha_free or reduction not in ("mean", "sum"):
        return None
    return LossSpec(voxel="focal", lam_voxel=1.0, include_background=include_background, mean=reduction == "mean")
