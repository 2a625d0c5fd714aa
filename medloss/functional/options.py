"""The options of the table operator, validated once into one frozen object that every engine reads."""
from __future__ import annotations

import math
from dataclasses import dataclass

from medloss.errors import InvalidOptionError

__all__ = ["TableOptions", "VOXEL_TERMS"]

#: the voxel terms a softmax table can carry (formulas: :mod:`medloss.backends.eager.softmax`)
VOXEL_TERMS = (None, "ce", "focal", "explog")


@dataclass(frozen=True)
class TableOptions:
    """What the tables are of: validated once, shared by every engine.

    ignore_index: label value whose voxels count nowhere (``None``: every voxel counts).
    squared: PRED sums p^2 (V-Net denominators) instead of p.
    voxel_term: ``None``, ``"ce"``, ``"focal"`` or ``"explog"``; ``gamma`` its exponent.
    log_clamp: (lo, hi) clamp of log p_y inside the voxel term (its slope is 0 where it clips).
    region: whether TP and PRED are needed (``False`` for a voxel loss alone; engines may then skip them).
    check: validate logits (finite) and labels (in [0, C) or ``ignore_index``) and raise typed errors; without it
        no engine reads a tensor back to the host (the C kernel still checks, for free, inside its pass).
    """

    ignore_index: int | None = None
    squared: bool = False
    voxel_term: str | None = None
    gamma: float = 0.0
    log_clamp: tuple[float, float] = (-math.inf, math.inf)
    region: bool = True
    check: bool = True

    def __post_init__(self) -> None:
        if self.voxel_term not in VOXEL_TERMS:
            raise InvalidOptionError(f"`voxel_term` must be one of {list(VOXEL_TERMS)}, got {self.voxel_term!r}.")
        if not (isinstance(self.gamma, (int, float)) and math.isfinite(self.gamma) and self.gamma >= 0):
            raise InvalidOptionError(f"`gamma` must be a finite number >= 0, got {self.gamma!r}.")
        lo, hi = self.log_clamp
        if not lo <= hi or lo > 0:
            raise InvalidOptionError(f"`log_clamp` must be (lo, hi) with lo <= hi and lo <= 0, got {self.log_clamp!r}.")
        if self.ignore_index is not None and not isinstance(self.ignore_index, int):
            raise InvalidOptionError(f"`ignore_index` must be an integer or None, got {self.ignore_index!r}.")
