"""The options every region loss shares, validated once into one frozen object.

A loss builds its :class:`RegionOptions` in its constructor (from MONAI's argument names, :meth:`from_flags`) and
hands it whole to the functional layer, which then validates nothing; a functional loss called directly with
keyword arguments builds one per call. The options also carry the table operator's
:class:`~medloss.backends.options.TableOptions` for the loss's fused pass, built with them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from medloss.backends.options import TableOptions
from medloss.checks import check_ignore_index
from medloss.errors import InvalidOptionError, check_number
from medloss.functional import prepare

__all__ = ["RegionOptions", "check_region_options"]

ACTIVATIONS = (None, "softmax", "sigmoid")


def check_region_options(*, smooth_nr: float, smooth_dr: float) -> tuple[float, float]:
    """The smoothing every region term takes: finite numbers >= 0, as floats."""
    return check_number("smooth_nr", smooth_nr, low=0), check_number("smooth_dr", smooth_dr, low=0)


@dataclass(frozen=True)
class RegionOptions:
    """What a region loss's statistics are of (see :func:`medloss.functional.stats.region_stats`).

    activation: ``"softmax"``, ``"sigmoid"`` or None (probabilities, or ``other_act``): the one name of the
        activation inside the package (MONAI's ``sigmoid``/``softmax`` flags become it in :meth:`from_flags`).
    voxel_term, gamma: the voxel term a compound sums in the same pass (softmax ``"ce"``/``"focal"``, sigmoid
        ``"bce"``/``"focal"``), or None for a region loss alone.
    tables, compound_tables: the operator's options for the fused pass without and with the voxel term (None
        where the loss takes the dense path); built here, with the rest.
    """

    include_background: bool = True
    to_onehot_y: bool = False
    activation: str | None = None
    other_act: prepare.Activation | None = None
    squared_pred: bool = False
    jaccard: bool = False
    soft_label: bool | None = None
    batch: bool = False
    ignore_index: int | None = None
    check_input: bool = True
    smooth_nr: float = 1e-5
    smooth_dr: float = 1e-5
    voxel_term: str | None = None
    gamma: float = 0.0
    tables: TableOptions | None = field(init=False, repr=False, compare=False)
    compound_tables: TableOptions | None = field(init=False, repr=False, compare=False)

    @classmethod
    def from_flags(cls, *, sigmoid: bool = False, softmax: bool = False, other_act=None, **options) -> RegionOptions:
        """From MONAI's activation flags (at most one set) and the other options by their own names."""
        prepare.check_activation_options(sigmoid, softmax, other_act)
        return cls(activation=prepare.activation_of(sigmoid=sigmoid, softmax=softmax), other_act=other_act, **options)

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise InvalidOptionError(f"`activation` must be one of {list(ACTIVATIONS)}, got {self.activation!r}.")
        if self.activation is not None:  # an activation and other_act are exclusive
            prepare.check_activation_options(self.activation == "sigmoid", self.activation == "softmax",
                                             self.other_act)
        set_ = object.__setattr__  # frozen: normalise the values once, here
        for name in ("include_background", "to_onehot_y", "squared_pred", "jaccard", "batch", "check_input"):
            set_(self, name, bool(getattr(self, name)))
        set_(self, "soft_label", None if self.soft_label is None else bool(self.soft_label))
        set_(self, "ignore_index", check_ignore_index(self.ignore_index))
        smooth = check_region_options(smooth_nr=self.smooth_nr, smooth_dr=self.smooth_dr)
        set_(self, "smooth_nr", smooth[0])
        set_(self, "smooth_dr", smooth[1])
        set_(self, "tables", self._table_options(None, 0.0))
        set_(self, "compound_tables", self._table_options(self.voxel_term, self.gamma) if self.voxel_term else None)

    def _table_options(self, voxel_term: str | None, gamma: float) -> TableOptions | None:
        if self.soft_label or self.activation is None:
            return None
        if self.activation == "softmax":
            if not self.to_onehot_y:
                return None
            return TableOptions(ignore_index=self.ignore_index, squared=self.squared_pred, voxel_term=voxel_term,
                                gamma=float(gamma), log_clamp=(-math.inf, math.inf), check=self.check_input)
        return TableOptions(ignore_index=self.ignore_index, squared=self.squared_pred, voxel_term=voxel_term,
                            gamma=float(gamma), check=self.check_input, activation="sigmoid",
                            dense=not self.to_onehot_y)
