"""The options of the table operator (:mod:`medloss.backends.op`), validated once into one frozen object that
every engine reads."""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any

import torch

from medloss.errors import InvalidOptionError

__all__ = ["TableOptions", "VOXEL_TERMS", "ACTIVATIONS", "cost_matrix"]

ACTIVATIONS = ("softmax", "sigmoid")

#: the voxel terms each activation's tables can carry (formulas: :mod:`medloss.backends.eager.softmax` and
#: :mod:`medloss.backends.eager.sigmoid`)
VOXEL_TERMS = {"softmax": (None, "ce", "focal", "explog", "wasserstein"), "sigmoid": (None, "bce", "focal")}


@dataclass(frozen=True)
class TableOptions:
    """What the tables are of: validated once, shared by every engine.

    ignore_index: label (or dense target) value whose voxels count nowhere (``None``: every voxel counts).
    squared: PRED sums p^2 (and TARGET g^2: V-Net denominators) instead of p.
    voxel_term: softmax ``None``, ``"ce"``, ``"focal"``, ``"explog"`` or ``"wasserstein"``; sigmoid ``None``,
        ``"bce"`` or ``"focal"``; ``gamma`` its exponent.
    log_clamp: (lo, hi) clamp of log p_y inside a softmax voxel term (its slope is 0 where it clips).
    region: whether TP and PRED are needed (``False`` for a voxel loss alone; engines may then skip them).
    check: validate logits (finite) and targets (labels in [0, C) or ``ignore_index``; dense targets in [0, 1] and,
        without ``soft``, in {0, 1}) and raise typed errors; without it no engine reads a tensor back to the host.
    activation: ``"softmax"`` (over the C channels, label-map target) or ``"sigmoid"`` (per channel).
    dense: sigmoid only: the target is (B, C, N) (one value per logit) instead of a (B, 1, N) label map.
    soft: sigmoid only: fractional dense targets are meant (used as given, never an error).
    matrix: the C x C class cost matrix M of the ``"wasserstein"`` term (rows: label, columns: predicted class),
        a tuple of C tuples of C finite floats >= 0 (hashable, so the options stay one frozen object that
        torch.compile's scalars can stand for); ``None`` for every other term. Engines read it through
        :func:`cost_matrix`.
    """

    ignore_index: int | None = None
    squared: bool = False
    voxel_term: str | None = None
    gamma: float = 0.0
    log_clamp: tuple[float, float] = (-math.inf, math.inf)
    region: bool = True
    check: bool = True
    activation: str = "softmax"
    dense: bool = False
    soft: bool = False
    matrix: tuple[tuple[float, ...], ...] | None = None

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise InvalidOptionError(f"`activation` must be one of {list(ACTIVATIONS)}, got {self.activation!r}.")
        terms = VOXEL_TERMS[self.activation]
        if self.voxel_term not in terms:
            raise InvalidOptionError(
                f"`voxel_term` of {self.activation} tables must be one of {list(terms)}, got {self.voxel_term!r}."
            )
        if not (isinstance(self.gamma, (int, float)) and math.isfinite(self.gamma) and self.gamma >= 0):
            raise InvalidOptionError(f"`gamma` must be a finite number >= 0, got {self.gamma!r}.")
        lo, hi = self.log_clamp
        if not lo <= hi or lo > 0:
            raise InvalidOptionError(f"`log_clamp` must be (lo, hi) with lo <= hi and lo <= 0, got {self.log_clamp!r}.")
        if self.activation == "sigmoid" and (lo, hi) != (-math.inf, math.inf):
            raise InvalidOptionError("`log_clamp` applies to softmax voxel terms only; leave it unset for sigmoid.")
        if self.activation == "softmax" and (self.dense or self.soft):
            raise InvalidOptionError("`dense` and `soft` apply to sigmoid tables only (softmax takes a label map).")
        if self.ignore_index is not None and not isinstance(self.ignore_index, int):
            raise InvalidOptionError(f"`ignore_index` must be an integer or None, got {self.ignore_index!r}.")
        _check_matrix(self.matrix, self.voxel_term)

    def without_ignore(self) -> TableOptions:
        """These options with no ``ignore_index``, for labels whose dtype cannot hold it (built per call, as
        torch.compile traces it without a break; the loss's own labels usually hold it)."""
        return self if self.ignore_index is None else dataclasses.replace(self, ignore_index=None)


def _check_matrix(matrix: Any, voxel_term: str | None) -> None:
    """The cost matrix goes with the ``"wasserstein"`` term and only with it: C x C (C >= 2) finite numbers >= 0."""
    if voxel_term != "wasserstein":
        if matrix is not None:
            raise InvalidOptionError(f"`matrix` is the cost matrix of the 'wasserstein' voxel term; leave it None "
                                     f"for voxel_term={voxel_term!r}.")
        return
    size = len(matrix) if isinstance(matrix, tuple) else 0
    if size < 2 or not all(isinstance(row, tuple) and len(row) == size for row in matrix):
        raise InvalidOptionError("the 'wasserstein' voxel term needs `matrix`: a tuple of C tuples of C numbers "
                                 f"(C >= 2), got {type(matrix).__name__}.")
    values = [v for row in matrix for v in row]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
               for v in values):
        raise InvalidOptionError("`matrix` of the 'wasserstein' voxel term must hold finite numbers >= 0.")


@functools.lru_cache(maxsize=64)
def cost_matrix(matrix: tuple[tuple[float, ...], ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The C x C cost matrix of validated options as a contiguous tensor of ``dtype`` on ``device``. Cached per
    (matrix, dtype, device), so a training step makes no host-to-device copy and creates no tensor after its first
    call; never written to."""
    return torch.tensor(matrix, dtype=dtype, device=device)
