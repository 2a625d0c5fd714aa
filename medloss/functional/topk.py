"""Top-k cross-entropy (nnU-Net's TopK10) and Dice + top-k, as a selection over the cross-entropy voxel term.

The math, defaults and references are documented on :class:`medloss.losses.TopKLoss` and
:class:`medloss.losses.DiceTopKLoss`.

The mean of the K largest values is ``torch.topk`` (K values and indices, no sort of the volume) when no value
tied with the K-th largest, t, is left out; otherwise, and always under DDP, it is computed from t:

    topk_mean = (sum_{v > t} v + (K - #{v > t}) / #{v = t} * sum_{v = t} v) / K

which is the top-k mean exactly and spreads the gradient evenly over the tied values (``torch.topk`` alone would
pick some of them arbitrarily). Under DDP the sums and counts are all-reduced and t is the K-th largest of the
gathered local candidates, so the batch is pooled over all ranks.
"""
from __future__ import annotations

import torch

from medloss.errors import check_number
from medloss.functional import prepare
from medloss.functional import reduce as _reduce
from medloss.functional.compound import check_compound_reduction, compound_options, dense_dice_term, weighted_sum
from medloss.functional.region_options import RegionOptions
from medloss.functional.stats import distributed_sum
from medloss.functional.voxel import cross_entropy


def check_k(k: object) -> float:
    """k is a percentage in (0, 100]."""
    return check_number("k", k, low=0, high=100, low_open=True)


def _world() -> int:
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _all_reduce_count(n: torch.Tensor) -> torch.Tensor:
    if _world() > 1:
        n = n.clone()
        torch.distributed.all_reduce(n)
    return n


def _global_threshold(masked: torch.Tensor, count: int) -> torch.Tensor:
    """The ``count``-th largest of the values of all DDP ranks (``masked`` holds -inf at voxels that do not count)."""
    world = _world()
    local = torch.topk(masked, min(count, masked.numel()), sorted=False).values
    padded = masked.new_full((count,), -float("inf"))
    padded[: local.numel()] = local
    gathered = [torch.empty_like(padded) for _ in range(world)]
    torch.distributed.all_gather(gathered, padded)
    return torch.topk(torch.cat(gathered), count, sorted=False).values.min()


def topk_mean(values: torch.Tensor, valid: torch.Tensor | None, k: float, *, across_ranks: bool) -> torch.Tensor:
    """Mean of the largest k percent of the 1-D ``values`` where ``valid`` (bool or None), pooled over DDP ranks
    when ``across_ranks``. K = max(1, floor(n k / 100)) of the n values that count (nnU-Net's int(n k / 100))."""
    masked = values.detach()
    if valid is not None:
        masked = masked.masked_fill(~valid, -float("inf"))
    n = valid.sum().to(torch.float64) if valid is not None else torch.tensor(float(values.numel()), dtype=torch.float64)
    if across_ranks:
        n = _all_reduce_count(n)
    n_total = int(n)
    if n_total == 0:  # nothing counts: a zero that keeps the graph
        return values.sum() * 0.0
    count = max(1, int(n_total * k / 100))
    if across_ranks and _world() > 1:
        t = _global_threshold(masked, count)
    else:
        top, index = torch.topk(masked, count, sorted=False)
        t = top.min()
        if int((top == t).sum()) == int((masked == t).sum()):  # no tie across the K-th place: the usual case
            return values[index].sum() / count
    above, tied = masked > t, masked == t
    sums = torch.stack([values.masked_fill(~above, 0).sum(), values.masked_fill(~tied, 0).sum()])
    counts = torch.stack([above.sum(), tied.sum()]).to(torch.float64)
    if across_ranks:
        sums, counts = distributed_sum(sums), _all_reduce_count(counts)
    share = (count - counts[0]) / counts[1]
    return (sums[0] + share.to(sums.dtype) * sums[1]) / count


def voxel_ce(input: torch.Tensor, target: torch.Tensor, *, weight, ignore_index, label_smoothing, check_input):
    """Per-voxel cross-entropy (B, N) in the compute dtype, and the voxels that count (B, N) bool or None, of an
    input tensor its caller checked."""
    x = input.to(prepare.compute_dtype(input))
    ce = cross_entropy(x, target, weight=weight, ignore_index=ignore_index, reduction="none",
                       label_smoothing=label_smoothing, check_input=check_input)
    ce = ce.reshape(ce.shape[0], -1)
    soft = target.is_floating_point() and tuple(target.shape) == tuple(input.shape)
    if ignore_index is None or soft:
        return ce, None
    valid = prepare.label_map(target, input).reshape(ce.shape) != ignore_index
    return ce, None if bool(valid.all()) else valid


def topk_rows(ce: torch.Tensor, valid: torch.Tensor | None, k: float, *, batch: bool) -> torch.Tensor:
    """(B,) per-sample top-k means, or (1,) pooled over the (global, under DDP) batch."""
    if batch:
        return topk_mean(ce.reshape(-1), None if valid is None else valid.reshape(-1), k, across_ranks=True).view(1)
    return torch.stack([topk_mean(ce[b], None if valid is None else valid[b], k, across_ranks=False)
                        for b in range(ce.shape[0])])


def topk_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    k: float = 10.0,
    weight: torch.Tensor | None = None,
    ignore_index: int | None = -100,
    label_smoothing: float = 0.0,
    batch: bool = True,
    reduction: str = "mean",
    check_input: bool = True,
) -> torch.Tensor:
    """Top-k cross-entropy. See :class:`medloss.losses.TopKLoss`."""
    prepare.check_input_tensor(input)
    return topk_value(input, target, k=check_k(k), weight=weight, ignore_index=ignore_index,
                      label_smoothing=label_smoothing, batch=batch, reduction=reduction, check_input=check_input)


def topk_value(input: torch.Tensor, target: torch.Tensor, *, k: float, weight: torch.Tensor | None,
               ignore_index: int | None, label_smoothing: float, batch: bool, reduction: str,
               check_input: bool) -> torch.Tensor:
    """:func:`topk_loss` of an input tensor its caller checked, with a checked ``k`` (a compound checks once)."""
    ce, valid = voxel_ce(input, target, weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing,
                         check_input=check_input)
    rows = topk_rows(ce, valid, k, batch=batch)
    if reduction == "mean" and not batch and valid is not None:
        # a sample none of whose voxels counts has no top k: it is left out of the mean (its row is 0), as its
        # voxels are left out of the pooled (batch=True) top k, instead of diluting the others' mean
        counted = valid.any(dim=1).to(rows.dtype)
        return ((rows * counted).sum() / counted.sum().clamp_min(1.0)).to(input.dtype)
    return _reduce.reduce_table(rows, reduction).to(input.dtype)


def dice_topk_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    lambda_dice: float = 1.0,
    lambda_topk: float = 1.0,
    k: float = 10.0,
    weight: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    topk_batch: bool = True,
    ignore_index: int | None = None,
    reduction: str = "mean",
    dice_options: RegionOptions | dict,
    check_input: bool = True,
) -> torch.Tensor:
    """lambda_dice (1 - Dice) + lambda_topk TopK. See :class:`medloss.losses.DiceTopKLoss`. ``dice_options``: a
    loss's validated :class:`RegionOptions` (which then also holds ``ignore_index`` and ``check_input``, and ``k``
    is taken as checked), or a dict of the Dice term's region options validated here."""
    check_compound_reduction(reduction, "DiceTopKLoss")
    prepare.check_input_tensor(input)
    if not isinstance(dice_options, RegionOptions):  # a direct call
        k = check_k(k)
    opts = compound_options(dice_options, ignore_index=ignore_index, check_input=check_input, voxel_terms={})

    def topk_alone() -> torch.Tensor:
        probabilities = not opts.to_onehot_y and tuple(target.shape) == tuple(input.shape)
        # a one-hot / soft target: class probabilities
        return topk_value(
            input, target.to(prepare.compute_dtype(input)) if probabilities else target, k=k, weight=weight,
            ignore_index=opts.ignore_index, label_smoothing=label_smoothing, batch=topk_batch, reduction=reduction,
            check_input=opts.check_input,
        )

    return weighted_sum(input, [
        (lambda_dice, lambda: dense_dice_term(input, target, opts, None, reduction).to(input.dtype)),
        (lambda_topk, topk_alone),
    ]).to(input.dtype)
