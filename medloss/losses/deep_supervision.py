"""Deep supervision: one loss applied to the outputs of several decoder scales, with targets resized per scale.

A deeply supervised network (nnU-Net's, MONAI's ``DynUNet(deep_supervision=True)``, ``SegResNetDS``) returns
outputs y_0, ..., y_{L-1} at decreasing resolution. The loss is::

    L = sum_i w_i * loss(y_i, down_i(target))

where ``down_i`` resizes the full-resolution target to y_i's spatial shape S_i:

* **label maps** (B, 1, *S) — class indices, possibly with an ignore label — by nearest neighbour with pixel
  centres (torch's ``"nearest-exact"``): coarse voxel j takes fine voxel floor((j + 1/2) * S / S_i) on every
  axis (integer arithmetic, any dtype kept). A coarse voxel is therefore always one fine voxel's value: labels stay
  labels and the ignore value stays exactly the ignore value (never averaged into a class).
* **one-hot / soft targets** (B, C, *S) — by nearest neighbour as well (MONAI's rule, so a one-hot target stays
  one-hot) unless the inner loss takes soft labels (``soft_label=True``) or ``target_mode="dense"``: then by adaptive
  average pooling: the coarse target is the mean of the fine
  targets in the pooling window (torch's ``adaptive_avg_pool``; for integer ratios, the S/S_i block). A one-hot
  target becomes a soft target, so the inner loss must accept soft labels (e.g. ``DiceLoss(soft_label=True)``).
  Fine voxels marked ignored (any channel equal to ``ignore_index``, as medloss's losses mark them) are left out
  of the mean: coarse target = sum of valid fine targets / number of valid fine voxels in the window, and the
  coarse voxel is marked ignored (all channels set to ``ignore_index``) when fewer than ``min_valid_fraction``
  (default 1/2) of its window is valid — a majority rule, so a coarse voxel is supervised only by a target
  estimated from at least half of its area. Pooling never mixes the ignore value into a target.

Targets are computed from the full-resolution target at every call (at most once per distinct shape within a
call); nothing is cached across batches.

Weights (``weight_mode``), for L scales, i = 0 the full resolution:

* ``"exp"`` (default), ``"same"``, ``"two"``: MONAI's ``DeepSupervisionLoss`` weights, not normalised:
  max(1/2^i, 1/16); all 1; 1 then 1/2 for the rest.
* ``"nnunet"``: w_i = 1 / 2^i, **the lowest scale gets w_{L-1} = 0** (as nnU-Net v2's trainer does;
  the lowest output is then not evaluated; it stays in the autograd graph with a zero gradient, so
  DistributedDataParallel works without ``find_unused_parameters`` — nnU-Net gives it 1e-6 under DDP instead),
  then normalised to sum 1. L = 1 gives [1]; L = 2 gives [1, 0]; L = 4 gives [4/7, 2/7, 1/7, 0].
* ``"halving"``: w_i = 1 / 2^i on every scale, normalised to sum 1 (no zero).
* ``weights=[...]``: used as given (not normalised); with more weights than outputs the first ones are used (as
  MONAI); fewer is an error (MONAI then silently falls back to ``weight_mode``).

Shapes:
    input: a list/tuple of L tensors (B, C, *S_i) with S_0 >= S_1 >= ... on every axis (equal shapes allowed),
        or a tensor (B, L, C, *S) — MONAI ``DynUNet``'s stacked training output, split on dim 1 — or a single
        (B, C, *S) tensor (one scale, e.g. evaluation mode; 1-D, 2-D or 3-D). A tensor is one output unless it
        has 6 axes (stacked 3-D outputs) or ``spatial_dims`` says it is stacked (``spatial_dims + 3`` axes).
    target: (B, 1, *S) or (B, *S) label map, or (B, C, *S) one-hot/soft target, at full resolution S >= S_0.
    output: the weighted sum of the inner loss's outputs (a scalar for "mean"/"sum" reductions).

References:
    Lee, Xie, Gallagher, Zhang, Tu, "Deeply-supervised nets", AISTATS 2015, arXiv:1409.5185.
    Isensee et al., "nnU-Net", Nature Methods 18, 2021 (weights 1/2^i, lowest 0, normalised; targets
    downsampled with nearest neighbour).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.modules.loss import _Loss

from medloss.errors import (
    InvalidOptionError,
    MedlossError,
    OptionTypeError,
    ShapeMismatchError,
    check_choice,
    check_number,
)

WEIGHT_MODES = ("nnunet", "halving", "exp", "same", "two")
TARGET_MODES = ("auto", "label", "dense")

__all__ = ["DeepSupervisionLoss", "deep_supervision_weights", "downsample_dense", "downsample_labels"]


def deep_supervision_weights(levels: int, weight_mode: str = "exp") -> list[float]:
    """The weights of ``levels`` scales under ``weight_mode`` (see the module docstring)."""
    check_choice("weight_mode", weight_mode, WEIGHT_MODES)
    if weight_mode == "same":
        return [1.0] * levels
    if weight_mode == "two":
        return [1.0] + [0.5] * (levels - 1)
    if weight_mode == "exp":
        return [max(0.5**i, 0.0625) for i in range(levels)]
    raw = [0.5**i for i in range(levels)]
    if weight_mode == "nnunet" and levels > 1:
        raw[-1] = 0.0
    total = sum(raw)
    return [r / total for r in raw]


def _nearest_exact_index(size_in: int, size_out: int, device: torch.device) -> torch.Tensor:
    """Source index floor((j + 1/2) * size_in / size_out) of every output j, in integer arithmetic."""
    j = torch.arange(size_out, device=device, dtype=torch.int64)
    return ((2 * j + 1) * size_in // (2 * size_out)).clamp_max(size_in - 1)


def downsample_labels(target: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """(B, K, *S) -> (B, K, *size) by nearest neighbour with pixel centres ("nearest-exact"); dtype kept.

    Every output voxel is a copy of one input voxel, so class indices and the ignore value stay exact.
    """
    out = target
    for axis, (s_in, s_out) in enumerate(zip(target.shape[2:], size, strict=False)):
        if s_in != s_out:
            out = out.index_select(axis + 2, _nearest_exact_index(s_in, s_out, target.device))
    return out


def _adaptive_avg_pool(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    pool: Callable[..., torch.Tensor] | None = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d,
                                                 3: F.adaptive_avg_pool3d}.get(len(size))
    if pool is None:
        raise ShapeMismatchError(f"average pooling of soft targets supports 1 to 3 spatial axes, got {len(size)}.")
    return pool(x, size)


def downsample_dense(
    target: torch.Tensor,
    size: tuple[int, ...],
    *,
    ignore_index: float | None = None,
    min_valid_fraction: float = 0.5,
) -> torch.Tensor:
    """(B, C, *S) one-hot/soft target -> (B, C, *size) by adaptive average pooling over the valid voxels.

    A fine voxel is ignored when any channel equals ``ignore_index``. The coarse target is the mean of the valid
    fine targets in the window; a coarse voxel whose window is less than ``min_valid_fraction`` valid (or not
    valid at all) gets ``ignore_index`` in every channel. Computed in float32 (float64 for float64 targets).
    """
    dtype = torch.float64 if target.dtype == torch.float64 else torch.float32
    t = target.to(dtype)
    ignored = None if ignore_index is None else (t == ignore_index).any(dim=1, keepdim=True)
    if ignored is None or not bool(ignored.any()):
        if tuple(t.shape[2:]) == tuple(size):
            return t
        return _adaptive_avg_pool(t, size)
    valid = (~ignored).to(dtype)
    frac = _adaptive_avg_pool(valid, size)
    total = _adaptive_avg_pool(t.masked_fill(ignored, 0.0), size)
    keep = (frac >= min_valid_fraction) & (frac > 0)
    coarse = (total / frac.clamp_min(torch.finfo(dtype).tiny)).clamp_(0.0, 1.0)
    assert ignore_index is not None  # else nothing is ignored and the early return above was taken
    return torch.where(keep, coarse, torch.full_like(coarse, float(ignore_index)))


class DeepSupervisionLoss(_Loss):
    """Weighted sum of a loss over the outputs of a deeply supervised network (see the module docstring).

    Args:
        loss: the inner loss, called as ``loss(y_i, target_i)`` at every scale with non-zero weight, e.g.
            ``DiceLoss(softmax=True, to_onehot_y=True)`` or ``CrossEntropyLoss()`` for label-map targets.
        weight_mode: "exp" (default, MONAI's) | "same" | "two" | "nnunet" | "halving".
        weights: explicit per-scale weights (overrides ``weight_mode``); non-negative, at least one > 0; extra
            trailing weights are unused.
        ignore_index: value marking unlabelled voxels of one-hot/soft targets during pooling; ``None`` takes
            the inner loss's ``ignore_index`` (if it has one). Label maps need none (nearest keeps it exact).
        target_mode: "auto" (nearest neighbour, except average pooling of a C-channel target, C > 1, when the
            inner loss has ``soft_label=True``), "label" (a (B, 1, *S) label map, nearest) or "dense" (always
            average pooling).
        min_valid_fraction: for dense targets with ignored voxels, the smallest valid fraction of a pooling
            window for the coarse voxel to be supervised, in (0, 1].
        spatial_dims: number of spatial axes, or None (default): a tensor ``input`` is then one (B, C, *S)
            output unless it has 6 axes (stacked 3-D). With a value, ``spatial_dims + 2`` axes is one output and
            ``spatial_dims + 3`` the stacked (B, L, C, *S) form (e.g. ``spatial_dims=2`` for stacked 2-D outputs).

    Raises:
        ShapeMismatchError: outputs with different batch sizes, channel counts or dimensionality, an output
            larger than the previous one or than the target, a target that fits no output, the number of
            ``weights`` differing from the number of outputs.
        InvalidOptionError: unknown ``weight_mode``/``target_mode``; negative or all-zero ``weights``; an
            ``ignore_index`` different from the inner loss's.
        OptionTypeError: ``loss`` not callable, ``input`` not a tensor or a list of tensors.
    """

    def __init__(
        self,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        weight_mode: str = "exp",
        weights: Sequence[float] | None = None,
        ignore_index: int | float | None = None,
        target_mode: str = "auto",
        min_valid_fraction: float = 0.5,
        spatial_dims: int | None = None,
    ) -> None:
        super().__init__()
        if not callable(loss):
            raise OptionTypeError(f"`loss` must be a callable loss (e.g. medloss.losses.DiceLoss(...)), got {loss!r}.")
        self.loss = loss
        self.weight_mode = check_choice("weight_mode", weight_mode, WEIGHT_MODES)
        self.target_mode = check_choice("target_mode", target_mode, TARGET_MODES)
        self.weights = None if weights is None else self._check_weights(weights)
        if ignore_index is not None:
            check_number("ignore_index", ignore_index)  # NaN would match no voxel: nothing ignored, silently
        inner = getattr(loss, "ignore_index", None)
        if ignore_index is not None and inner is not None and ignore_index != inner:
            raise InvalidOptionError(
                f"`ignore_index`={ignore_index!r} differs from the inner loss's ignore_index={inner!r}: the inner "
                "loss would score the pooled ignore voxels as labels. Give both the same value."
            )
        self.ignore_index = inner if ignore_index is None else ignore_index
        if isinstance(min_valid_fraction, bool) or not isinstance(min_valid_fraction, (int, float)) or not (
            0.0 < min_valid_fraction <= 1.0
        ):
            raise InvalidOptionError(f"`min_valid_fraction` must be in (0, 1], got {min_valid_fraction!r}.")
        self.min_valid_fraction = float(min_valid_fraction)
        if spatial_dims is not None and (
            isinstance(spatial_dims, bool) or not isinstance(spatial_dims, int) or spatial_dims < 1
        ):
            raise InvalidOptionError(
                f"`spatial_dims` must be None or a positive int (3 for volumes), got {spatial_dims!r}."
            )
        self.spatial_dims = spatial_dims

    @staticmethod
    def _check_weights(weights: Sequence[float]) -> list[float]:
        try:
            w = [float(v) for v in weights]
        except (TypeError, ValueError) as exc:
            raise OptionTypeError(f"`weights` must be a sequence of numbers, one per output, got {weights!r}.") from exc
        if not w or any(not (v >= 0.0 and v != float("inf")) for v in w) or not any(v > 0 for v in w):
            raise InvalidOptionError(f"`weights` must be finite, >= 0 and not all 0, got {w}.")
        return w

    def get_weights(self, levels: int) -> list[float]:
        """The weights of ``levels`` outputs (explicit ``weights`` or ``weight_mode``)."""
        if self.weights is None:
            return deep_supervision_weights(levels, self.weight_mode)
        if len(self.weights) < levels:
            raise ShapeMismatchError(
                f"`weights` has {len(self.weights)} entries but the network returned {levels} outputs: give one "
                "weight per output (full resolution first)."
            )
        weights = list(self.weights[:levels])
        if not any(w > 0 for w in weights):
            raise InvalidOptionError(f"`weights` {weights} used for {levels} outputs are all 0.")
        return weights

    def _split(self, input: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if isinstance(input, torch.Tensor):
            if self.spatial_dims is None:
                if input.ndim == 6:  # stacked 3-D outputs (B, L, C, H, W, D)
                    return list(torch.unbind(input, dim=1))
                if 3 <= input.ndim <= 5:
                    return [input]
                raise ShapeMismatchError(
                    f"`input` has shape {tuple(input.shape)}: expected one output (B, C, *S) with 1 to 3 spatial "
                    "axes or stacked 3-D outputs (B, L, C, H, W, D); set `spatial_dims` for other layouts."
                )
            if input.ndim == self.spatial_dims + 3:
                return list(torch.unbind(input, dim=1))
            if input.ndim == self.spatial_dims + 2:
                return [input]
            raise ShapeMismatchError(
                f"`input` has shape {tuple(input.shape)}: with spatial_dims={self.spatial_dims} expected one output "
                f"(B, C, *S) ({self.spatial_dims + 2} axes) or stacked outputs (B, L, C, *S) "
                f"({self.spatial_dims + 3} axes). Set `spatial_dims` to the network's."
            )
        if not isinstance(input, (list, tuple)) or not input:
            raise OptionTypeError(
                "`input` must be a non-empty list/tuple of (B, C, *S_i) tensors or a tensor, "
                f"got {type(input).__name__}."
            )
        for i, y in enumerate(input):
            if not isinstance(y, torch.Tensor):
                raise OptionTypeError(f"`input[{i}]` must be a torch.Tensor, got {type(y).__name__}.")
        return list(input)

    def _check_outputs(self, outputs: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        first = outputs[0]
        if first.ndim < 3:
            raise ShapeMismatchError(f"`input[0]` must be (B, C, *S) with a spatial axis, got {tuple(first.shape)}.")
        for i, y in enumerate(outputs[1:], start=1):
            prev = outputs[i - 1]
            if y.ndim != first.ndim or y.shape[0] != first.shape[0]:
                raise ShapeMismatchError(
                    f"`input[{i}]` has shape {tuple(y.shape)} but `input[0]` has {tuple(first.shape)}: every output "
                    "needs the same batch size and number of axes."
                )
            if y.shape[1] != first.shape[1]:
                raise ShapeMismatchError(
                    f"`input[{i}]` has {y.shape[1]} channels but `input[0]` has {first.shape[1]}: every "
                    "deep-supervision head must predict the same classes."
                )
            _check_not_larger(f"input[{i}]", y, f"input[{i - 1}]", prev,
                              "outputs must come full resolution first, in non-increasing size")
        if not isinstance(target, torch.Tensor):
            raise OptionTypeError(f"`target` must be a torch.Tensor, got {type(target).__name__}.")
        if target.ndim == first.ndim - 1:
            target = target.unsqueeze(1)
        if target.ndim != first.ndim or target.shape[0] != first.shape[0]:
            raise ShapeMismatchError(
                f"`target` of shape {tuple(target.shape)} does not fit `input[0]` of shape {tuple(first.shape)}: "
                "expected (B, 1, *S) or (B, *S) labels or (B, C, *S) one-hot at full resolution."
            )
        _check_not_larger("input[0]", first, "target", target,
                          "pass the target at full (the largest output's) resolution")
        return target.as_subclass(torch.Tensor) if type(target) is not torch.Tensor else target

    def _resized_by_nearest(self, target: torch.Tensor, num_classes: int) -> bool:
        """Whether the target is resized by nearest neighbour (label maps; one-hot targets unless pooled)."""
        k = target.shape[1]
        if self.target_mode == "label" or (self.target_mode == "auto" and k == 1):
            if k != 1:
                raise ShapeMismatchError(
                    f"`target` has {k} channels but `target_mode='label'` needs a (B, 1, *S) label map."
                )
            return True
        if k != num_classes:
            raise ShapeMismatchError(
                f"`target` has {k} channels but the outputs have {num_classes}: pass a (B, 1, *S) label map or "
                f"a (B, {num_classes}, *S) one-hot/soft target."
            )
        return self.target_mode == "auto" and not getattr(self.loss, "soft_label", False)

    def forward(self, input: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """Weighted sum over scales of ``loss(input[i], target resized to input[i])``."""
        if input is None:
            raise OptionTypeError("`input` is None: pass the network's outputs (a list, or a stacked tensor).")
        outputs = self._split(input)
        target = self._check_outputs(outputs, target)
        weights = self.get_weights(len(outputs))
        as_labels = self._resized_by_nearest(target, outputs[0].shape[1])
        resized: dict[tuple[int, ...], torch.Tensor] = {}
        total = None
        for i, (y, w) in enumerate(zip(outputs, weights, strict=True)):
            if w == 0.0:
                continue
            size = tuple(y.shape[2:])
            if size not in resized:
                if size == tuple(target.shape[2:]):
                    resized[size] = target
                elif as_labels:
                    resized[size] = downsample_labels(target, size)
                else:
                    resized[size] = downsample_dense(
                        target, size, ignore_index=self.ignore_index, min_valid_fraction=self.min_valid_fraction
                    )
            try:
                value = self.loss(y, resized[size])
            except MedlossError as err:
                if i == 0:
                    raise
                raise type(err)(f"deep supervision output {i} (spatial shape {size}): {err}") from err
            if total is not None and value.shape != total.shape:
                raise ShapeMismatchError(
                    f"the inner loss returned shape {tuple(value.shape)} at output {i} but {tuple(total.shape)} "
                    "before: use reduction='mean' or 'sum' in the inner loss."
                )
            total = w * value if total is None else total + w * value
        assert total is not None  # every weight mode weighs output 0, and all-zero `weights` are refused
        # zero-weight heads stay in the graph with a zero gradient (DDP-safe)
        for y, w in zip(outputs, weights, strict=True):
            if w == 0.0 and y.requires_grad:
                total = total + _ZeroGradient.apply(y).to(total.dtype)
        return total


def _check_not_larger(name: str, x: torch.Tensor, other: str, y: torch.Tensor, fix: str) -> None:
    """Refuse ``x`` if it is larger than ``y`` on a spatial axis (the scales shrink from the target down)."""
    if any(a > b for a, b in zip(x.shape[2:], y.shape[2:], strict=True)):
        raise ShapeMismatchError(f"`{name}` has spatial shape {tuple(x.shape[2:])}, larger than `{other}`'s "
                                 f"{tuple(y.shape[2:])}: {fix}.")


class _ZeroGradient(torch.autograd.Function):
    """A 0 that depends on ``y``: its gradient is zeros_like(y). Keeps an output whose weight is 0 in the graph, so
    DistributedDataParallel sees a (zero) gradient for that head's parameters instead of failing on unused ones;
    the loss value is unchanged and, unlike 0 * y.sum(), a non-finite y cannot turn it into NaN."""

    @staticmethod
    def forward(ctx: Any, y: torch.Tensor) -> torch.Tensor:
        ctx.shape, ctx.dtype, ctx.device = y.shape, y.dtype, y.device
        return torch.zeros((), dtype=y.dtype, device=y.device)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return torch.zeros(ctx.shape, dtype=ctx.dtype, device=ctx.device)
