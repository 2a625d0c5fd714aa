"""Blob loss (Kofler et al., IPMI 2023): the Dice loss of every reference connected component on its own masked
volume, averaged per sample, plus the global Dice loss. The math and defaults are documented on
:class:`medloss.losses.BlobLoss`; this module is its implementation.

For component k of class c in sample b, the authors' masked volume keeps channel c of the prediction at the
background of class c and at component k, and zeroes it at the other components of class c. Its Dice tables are
therefore, with T the tables of (p, g) (:mod:`medloss.functional.stats`) and P_k = sum_{n in k} p_c:

    TP_k = P_k          PRED_k = FP_c + P_k          TARGET_k = |k|           (FP_c = PRED_c - TP_c)

so every component's loss comes from one scatter-add of p over the component-id map (one pass over the voxels,
whatever the number of components K) and the global tables, never from a masked copy of the volume per lesion.
"""
from __future__ import annotations

import torch

from medloss.errors import LabelValueError
from medloss.functional import maps, prepare
from medloss.functional import reduce as _reduce
from medloss.functional.region import dice_from_stats
from medloss.functional.stats import RegionStats, _dense_stats


def _component_tables(
    p: torch.Tensor, labels: torch.Tensor, comps: torch.Tensor, valid: torch.Tensor | None, channel_offset: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-component (P_k, |k|, channel of k, present) over all samples, each (B, M) with M the number of distinct
    ids in the batch (background included).

    ``p`` (B, C', N), ``labels`` and ``comps`` (B, 1, N) int64, ``valid`` (B, 1, N) or None. A component's
    channel is its class minus ``channel_offset`` (1 when the background channel was dropped; a single sigmoid
    channel is channel 0 for every foreground class). The ids are compacted to 0..M-1 first, so the tables' size
    follows the number of components, not the values of their ids (an id of 10**12 costs what an id of 1 does).
    """
    batch = p.shape[0]
    distinct, ids = torch.unique(comps[:, 0], return_inverse=True)
    size = distinct.numel()
    channel = (labels[:, 0] - channel_offset).clamp(0, p.shape[1] - 1)
    p_at = p.gather(1, channel.unsqueeze(1))[:, 0]  # p of each voxel's own class channel
    weight = torch.ones_like(p_at) if valid is None else valid[:, 0]
    inside = (ids > 0).to(p.dtype) * weight
    mass = p.new_zeros(batch, size).scatter_add_(1, ids, p_at * inside)
    count = p.new_zeros(batch, size).scatter_add_(1, ids, inside)
    chan = torch.zeros(batch, size, dtype=torch.long, device=p.device)
    chan = chan.scatter_reduce_(1, ids, channel, reduce="amax", include_self=False)
    present = (count > 0) & (distinct > 0)  # compact index of id 0 (if any) is the background
    lowest = torch.zeros_like(chan).scatter_reduce_(1, ids, channel, reduce="amin", include_self=False)
    if bool(((lowest != chan) & present).any()):
        raise LabelValueError(
            "`components` has a component spanning two classes: label each class's components separately "
            "(medloss.transforms.ConnectedComponentsd, or cc3d on the label map, which does)."
        )
    return mass, count, chan, present


def blob_terms(
    p: torch.Tensor,
    g: torch.Tensor,
    labels: torch.Tensor,
    comps: torch.Tensor,
    valid: torch.Tensor | None,
    *,
    channel_offset: int,
    smooth_nr: float,
    smooth_dr: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(main (B, C') = 1 - Dice, blob (B, C') = mean over the components of the class of 1 - Dice_k, has (B, C')
    whether the class has a component); all inputs flattened to (B, *, N)."""
    tp, pred, tgt = _dense_stats(p, g, valid, squared=False, soft_label=False)
    main = dice_from_stats(RegionStats(tp, pred, tgt, tp[:, :1]), jaccard=False, smooth_nr=smooth_nr,
                           smooth_dr=smooth_dr)
    mass, count, chan, present = _component_tables(p, labels, comps, valid, channel_offset)
    fp = (pred - tp).gather(1, chan)  # the prediction outside every component of the component's class
    loss_k = 1.0 - (2.0 * mass + smooth_nr) / (fp + mass + count + smooth_dr)
    weight = present.to(p.dtype)
    blob_sum = p.new_zeros(p.shape[:2]).scatter_add_(1, chan, loss_k * weight)
    n = p.new_zeros(p.shape[:2]).scatter_add_(1, chan, weight)
    has = n > 0
    return main, torch.where(has, blob_sum / n.clamp_min(1.0), torch.zeros_like(n)), has


def blob_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    components: torch.Tensor | None = None,
    main_weight: float = 2.0,
    blob_weight: float = 1.0,
    include_background: bool = True,
    to_onehot_y: bool = False,
    sigmoid: bool = False,
    softmax: bool = False,
    other_act=None,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    connectivity: int | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
    check_input: bool = True,
) -> torch.Tensor:
    """main_weight Dice + blob_weight blob Dice. See :class:`medloss.losses.BlobLoss`."""
    target, components = maps.split_packed_target(
        target, input, components, to_onehot_y=to_onehot_y, name="components"
    )
    prepare.check_input_tensor(input)
    if check_input and (sigmoid or softmax or other_act is not None):
        prepare.check_finite(input)
    g, valid = prepare.dense_target(
        target, input, to_onehot_y=to_onehot_y, ignore_index=ignore_index, soft_label=None, check_input=check_input
    )
    p = prepare.flatten(
        prepare.activate(input, activation=prepare.activation_of(sigmoid=sigmoid, softmax=softmax),
                         other_act=other_act, check_input=check_input)
    )
    labels = maps.label_map_of(target, input, to_onehot_y=to_onehot_y)
    if components is None:
        maps.warn_once(
            "BlobLoss.components",
            "BlobLoss was not handed the connected-component map, so it labels the components of every target on "
            "the CPU at every step (cc3d). Compute them once per sample in the data loader with "
            "medloss.transforms.ConnectedComponentsd and pack them into the label (see its docstring).",
        )
        components = maps.batch_map(labels, maps.component_map, connectivity=connectivity, ignore_index=ignore_index)
    components = maps.integer_map(
        components.reshape(input.shape[0], 1, -1), "components", upper=None, check=check_input,
        fix="expected integer ids, 0 (background) and 1..K per sample (medloss.transforms.ConnectedComponentsd)",
    )
    flat_labels = labels.reshape(input.shape[0], 1, -1).long()
    if valid is not None:
        flat_labels = flat_labels.masked_fill(valid == 0, 0)
        components = components.masked_fill(valid == 0, 0)
    components = components.masked_fill(flat_labels == 0, 0)  # a component id on background voxels means nothing
    offset = 0
    if not include_background:
        if input.shape[1] == 1:
            prepare.warn_single_channel("include_background=False")
        else:
            p, g, offset = p[:, 1:], g[:, 1:], 1
    main, blob, has = blob_terms(
        p, g, flat_labels, components, valid, channel_offset=offset, smooth_nr=smooth_nr, smooth_dr=smooth_dr
    )
    if reduction == "none":
        return (main_weight * main + blob_weight * blob).to(input.dtype)
    blob_mean = blob.sum() / has.sum().clamp_min(1) if reduction == "mean" else blob.sum()
    return (main_weight * _reduce.reduce_table(main, reduction) + blob_weight * blob_mean).to(input.dtype)
