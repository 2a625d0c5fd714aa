"""``make_trainer``: an nnU-Net v2 trainer for any registered medloss loss, with nnU-Net's conventions.

The trainer's ``_build_loss`` builds the medloss loss from the dataset's plans, as nnU-Net's own trainer builds
``DC_and_CE_loss``:

* label maps (the usual case): ``softmax=True, to_onehot_y=True, include_background=False`` (nnU-Net's Dice skips
  the background), ``batch`` = the plans' ``batch_dice``, ``ignore_index`` = the dataset's ignore label;
* region-based training (``label_manager.has_regions``): the sigmoid form, ``sigmoid=True,
  include_background=True`` (every region is foreground), ``batch`` from the plans, ignored voxels marked by
  :class:`~medloss.nnunet.adapter.NnunetLoss` after it strips nnU-Net's ignore channel;
* with deep supervision (nnU-Net's default), nnU-Net's ``DeepSupervisionWrapper`` and its weights;
* a loss that takes a map of the label (Skeleton Recall's skeleton, blob loss's components, the boundary and
  Hausdorff-DT losses' signed distances) gets a :class:`MapTrainer`: the map is computed in nnU-Net's data pipeline
  at every scale and handed to the loss (:mod:`medloss.nnunet.maps`); these maps are of a label map, so region-based
  datasets are refused;
* a :class:`Rebalance` (e.g. Dice + boundary) adds a region loss, the two weighted by an epoch schedule
  (:class:`~medloss.nnunet.adapter.RebalancedSum`) that the trainer advances at every epoch start.

Each convention is passed only to a loss whose constructor has that argument, and the options given to
:func:`make_trainer` override them. The trainer class must be a module-level name in a file of a folder listed in
``nnUNet_extTrainer``: nnU-Net finds trainers (for training and for prediction, whose checkpoints store the trainer
name) by class name there.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from torch import nn

from medloss import registry
from medloss.errors import InvalidOptionError, MedlossError
from medloss.nnunet.adapter import REGION_IGNORE, NnunetLoss, RebalancedSum, WeightedSum
from medloss.nnunet.maps import MAP_KEYWORDS, MAP_KINDS, LabelMapTransform, split_maps

#: the class-name prefix of medloss's named trainers (medloss.nnunet.trainers)
RESERVED_PREFIX = "nnUNetTrainerMedloss"


@dataclass(frozen=True)
class Rebalance:
    """A region loss trained with the trainer's loss, weighted by Kervadec et al.'s epoch schedule
    (:class:`~medloss.nnunet.adapter.RebalancedSum`: ``max(region_floor, 1 - alpha_step * e)`` x region +
    ``(alpha_start + alpha_step * e)`` x the trainer's loss at epoch e). Label-map (softmax) training only.

    Attributes:
        loss: registered name of the region loss (it takes (input, target) only); nnU-Net's conventions apply.
        options: its constructor options.
        alpha_start, alpha_step, region_floor: the schedule (defaults: the authors' 0.01, 0.01, 0.1).
    """

    loss: str = "DiceCELoss"
    options: Mapping = field(default_factory=dict)
    alpha_start: float = 0.01
    alpha_step: float = 0.01
    region_floor: float = 0.1

    def __post_init__(self) -> None:
        for name in ("alpha_start", "alpha_step", "region_floor"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < float("inf"):
                raise InvalidOptionError(f"`{name}` of Rebalance must be a finite number >= 0, got {value!r}.")
        if self.region_floor > 1:
            raise InvalidOptionError(f"`region_floor` of Rebalance must be at most 1 (the region weight starts at "
                                     f"1), got {self.region_floor!r}.")
        object.__setattr__(self, "loss", _check_loss_name("rebalance loss", self.loss))
        if self.loss in MAP_KINDS:
            raise InvalidOptionError(f"the rebalanced region loss must take (input, target) only; {self.loss} "
                                     f"needs a {MAP_KINDS[self.loss]} map. Pass it as the trainer's loss instead.")
        _check_options(self.loss, self.options, "rebalance options")


@dataclass(frozen=True)
class LossSpec:
    """What a trainer trains with.

    Attributes:
        loss: registered loss name for label-map training (softmax).
        options: constructor options of ``loss`` (they override nnU-Net's conventions).
        ce: weight of a cross-entropy term added to ``loss`` (BCE for region-based training); 0 for none.
        region_loss: registered loss for region-based training (sigmoid); None: region datasets are refused.
        region_options: constructor options of ``region_loss``.
        match_nnunet: reproduce nnU-Net's numbers (``DC_and_CE_loss``, ``DC_and_topk_loss``, ``DC_and_BCE_loss``):
            subtract the Dice weight (nnU-Net's Dice term is -Dice, medloss's 1 - Dice) and, in region-based
            training with an ignore label, weigh BCE by the number of regions (nnU-Net's masked BCE sums the
            regions of a voxel and divides by the number of voxels). With ``rebalance``, this applies to the
            region term (e.g. Dice + CE as nnU-Net's ``DC_and_CE_loss``).
        rebalance: a region loss added to ``loss`` with an epoch schedule; None for ``loss`` alone.
    """

    loss: str
    options: Mapping = field(default_factory=dict)
    ce: float = 0.0
    region_loss: str | None = None
    region_options: Mapping = field(default_factory=dict)
    match_nnunet: bool = False
    rebalance: Rebalance | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "loss", _check_loss_name("loss", self.loss))
        if self.region_loss is not None:
            object.__setattr__(self, "region_loss", _check_loss_name("region_loss", self.region_loss))
        if not isinstance(self.ce, (int, float)) or isinstance(self.ce, bool) or not self.ce >= 0:
            raise InvalidOptionError(f"`ce` must be a weight >= 0 (0: no cross-entropy term), got {self.ce!r}.")
        _check_options(self.loss, self.options, "options")
        if self.region_loss is not None:
            _check_options(self.region_loss, self.region_options, "region_options")
        if self.rebalance is not None and not isinstance(self.rebalance, Rebalance):
            raise InvalidOptionError(f"`rebalance` must be a Rebalance(...) or None, got {self.rebalance!r}.")
        if self.rebalance is not None and self.region_loss is not None:
            raise InvalidOptionError("`rebalance` schedules label-map (softmax) training only; leave `region_loss` "
                                     "out (region-based datasets are then refused).")
        # run both forms once on a small batch, so a bad option value or a loss that cannot take nnU-Net's
        # targets fails when the trainer is made, not when training starts
        _try_loss(self, regions=False)
        if self.region_loss is not None:
            _try_loss(self, regions=True)

    @property
    def map_kind(self) -> str | None:
        """The map the label-map loss takes from the batch ("skeleton", "components", "signed_distance"), None for
        none."""
        return MAP_KINDS.get(self.loss)


def map_transform(spec: LossSpec, *, ignore_label: int | None, num_classes: int) -> LabelMapTransform:
    """The transform that computes ``spec``'s map, with the loss's own map options (``tube``, ``connectivity``,
    ``spacing``, and for signed distances the classes it scores: all ``num_classes`` output channels, or all but
    the background under nnU-Net's ``include_background=False``)."""
    if spec.map_kind is None:
        raise InvalidOptionError(f"{spec.loss} takes no map from the label; it needs no LabelMapTransform.")
    options = {**registry.defaults(spec.loss), **spec.options}
    first = 0 if spec.options.get("include_background", False) else 1
    return LabelMapTransform(spec.map_kind, ignore_label=ignore_label, tube=bool(options.get("tube", True)),
                             connectivity=options.get("connectivity"), num_classes=num_classes,
                             classes=tuple(range(first, num_classes)), spacing=options.get("spacing"))


def _try_loss(spec: LossSpec, *, regions: bool) -> None:
    """Build ``spec``'s loss for placeholder plans (batch Dice, an ignore label) and run it on a small batch."""
    gen = torch.Generator().manual_seed(0)
    loss = build_loss(spec, regions=regions, batch_dice=True, ignore_label=3, n_regions=2)
    logits = torch.randn(2, 2 if regions else 3, 6, 6, 6, generator=gen)
    labels = torch.randint(0, 4, (2, 1, 6, 6, 6), generator=gen).to(torch.int16)  # 3: the ignore label
    target = torch.cat([labels == 1, labels == 2, labels == 3], 1).to(torch.int16) if regions else labels
    name = spec.region_loss if regions else spec.loss
    maps = []
    if not regions and spec.map_kind is not None:
        transform = map_transform(spec, ignore_label=3, num_classes=3)
        packed = torch.stack([transform(segmentation=sample)["segmentation"] for sample in labels])
        maps = [split_maps(packed, transform.channels)[1]]
    try:
        loss(logits, target, *maps)
    except MedlossError as exc:
        kind = "region-based (sigmoid) training" if regions else "label maps (softmax)"
        raise InvalidOptionError(f"{name} with these options cannot train on nnU-Net's {kind}: {exc}") from exc


def _check_loss_name(arg: str, name: str) -> str:
    if not isinstance(name, str):
        raise InvalidOptionError(f"`{arg}` must be a registered loss name (`medloss losses list`), got {name!r}.")
    resolved = registry.get(name).name
    if arg == "region_loss" and resolved in MAP_KINDS:
        raise InvalidOptionError(
            f"`{arg}`={name!r}: {resolved}'s {MAP_KINDS[resolved]} map is computed from a label map, and "
            "region-based training has overlapping regions instead; leave `region_loss` out (region datasets are "
            "then refused) or pick a loss without a map.")
    return resolved


def _check_options(loss: str, options: Mapping, arg: str) -> None:
    known = registry.defaults(loss)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise InvalidOptionError(f"`{arg}` of {loss}: unknown option(s) {', '.join(unknown)}; "
                                 f"{loss} takes {', '.join(known)}.")


def _conventions(loss: str, *, regions: bool, batch_dice: bool, ignore_label: int | None) -> dict:
    """nnU-Net's settings for ``loss``, limited to the arguments its constructor has."""
    wanted: dict[str, object]
    if regions:
        wanted = {"sigmoid": True, "include_background": True, "batch": batch_dice}
        if ignore_label is not None:
            wanted["ignore_index"] = REGION_IGNORE
    else:
        wanted = {"softmax": True, "to_onehot_y": True, "include_background": False, "batch": batch_dice}
        if ignore_label is not None:
            wanted["ignore_index"] = ignore_label
    known = registry.defaults(loss)
    return {key: value for key, value in wanted.items() if key in known}


def build_loss(spec: LossSpec, *, regions: bool, batch_dice: bool, ignore_label: int | None,
               n_regions: int) -> NnunetLoss:
    """One scale's loss for a dataset with these properties (see the module docstring)."""
    if regions and spec.map_kind is not None:
        raise InvalidOptionError(
            f"this trainer's loss {spec.loss} takes a {spec.map_kind} map, which medloss's transform computes from a "
            "label map, and the dataset uses (overlapping) regions: the trainer has no region-based form; use one "
            "without a map (e.g. nnUNetTrainerMedlossDiceCE).")
    if regions and spec.region_loss is None:
        raise InvalidOptionError(
            f"this trainer's loss {spec.loss} has no region-based (sigmoid) form configured, and the dataset uses "
            "regions; use a trainer with a region loss (e.g. nnUNetTrainerMedlossDiceCE) or pass `region_loss=` "
            "to make_trainer.")
    name = spec.region_loss if regions and spec.region_loss is not None else spec.loss
    options = {**_conventions(name, regions=regions, batch_dice=batch_dice, ignore_label=ignore_label),
               **(spec.region_options if regions else spec.options)}
    if spec.match_nnunet and regions and ignore_label is not None and "lambda_bce" in registry.defaults(name):
        options["lambda_bce"] = float(options.get("lambda_bce", 1.0)) * n_regions
    loss: nn.Module = registry.load(name)(**options)
    offset = float(getattr(loss, "lambda_dice", 0.0)) if spec.match_nnunet else 0.0
    if spec.ce:
        if regions:
            term = registry.load("BCELoss")(**({"ignore_index": REGION_IGNORE} if ignore_label is not None else {}))
        else:
            term = registry.load("CrossEntropyLoss")(**({"ignore_index": ignore_label}
                                                          if ignore_label is not None else {}))
        loss = WeightedSum([(1.0, loss), (spec.ce, term)])
    if spec.rebalance is not None:
        rebalance = spec.rebalance
        region_options = {**_conventions(rebalance.loss, regions=False, batch_dice=batch_dice,
                                         ignore_label=ignore_label), **rebalance.options}
        region: nn.Module = registry.load(rebalance.loss)(**region_options)
        region_offset = float(getattr(region, "lambda_dice", 0.0)) if spec.match_nnunet else 0.0
        loss = RebalancedSum(region, loss, region_offset=region_offset, alpha_start=rebalance.alpha_start,
                             alpha_step=rebalance.alpha_step, region_floor=rebalance.region_floor)
        offset = 0.0  # the region term's offset is its own; the scheduled term keeps its value
    map_key = MAP_KEYWORDS[spec.map_kind] if spec.map_kind is not None else None
    return NnunetLoss(loss, ignore_label=ignore_label, regions=regions, offset=offset, map_key=map_key)


def deep_supervision_weights(levels: int, *, ddp_without_compile: bool) -> np.ndarray:
    """nnU-Net's weights (``nnUNetTrainer._build_loss``): 1/2^i, the lowest scale 0 (1e-6 under DDP without
    torch.compile, where DDP rejects an unused output), normalised to sum 1."""
    weights = np.array([1 / 2**i for i in range(levels)])
    weights[-1] = 1e-6 if ddp_without_compile else 0.0
    return weights / weights.sum()


class MedlossTrainer(nnUNetTrainer):
    """nnU-Net's trainer with a medloss loss (``spec``); everything but ``_build_loss`` is nnU-Net's."""

    spec: LossSpec  # set by make_trainer

    def _build_loss(self) -> nn.Module:
        manager = self.label_manager
        regions = bool(manager.has_regions)
        loss = build_loss(self.spec, regions=regions, batch_dice=bool(self.configuration_manager.batch_dice),
                          ignore_label=manager.ignore_label, n_regions=manager.num_segmentation_heads)
        if self.enable_deep_supervision:
            levels = len(self._get_deep_supervision_scales())
            weights = deep_supervision_weights(levels, ddp_without_compile=self.is_ddp and not self._do_i_compile())
            return DeepSupervisionWrapper(loss, weights)
        return loss

    def on_epoch_start(self) -> None:
        """nnU-Net's epoch start, then the loss's epoch schedule (a :class:`Rebalance`) set to this epoch."""
        super().on_epoch_start()
        for module in self.loss.modules():
            if isinstance(module, RebalancedSum):
                module.set_epoch(self.current_epoch)
                self.print_to_log_file(f"loss weights: {module.region_weight:g} x region + {module.alpha:g} x "
                                       f"{self.spec.loss}")


class MapTrainer(MedlossTrainer):
    """A :class:`MedlossTrainer` whose loss takes a map of the label (:mod:`medloss.nnunet.maps`).

    Its training and validation transforms end with the map's :class:`~medloss.nnunet.maps.LabelMapTransform`, so
    the validation loss is the training loss (the same function, logged side by side in nnU-Net's progress plot);
    the maps of the validation batches cost the loader workers what the training batches' do, per batch.
    """

    def map_transform(self) -> LabelMapTransform:
        """This dataset's map transform (its ignore label, one signed distance map per output channel)."""
        manager = self.label_manager
        return map_transform(self.spec, ignore_label=manager.ignore_label,
                             num_classes=manager.num_segmentation_heads)

    def get_training_transforms(self, *args, **kwargs) -> BasicTransform:
        return ComposeTransforms([super().get_training_transforms(*args, **kwargs), self.map_transform()])

    def get_validation_transforms(self, *args, **kwargs) -> BasicTransform:
        return ComposeTransforms([super().get_validation_transforms(*args, **kwargs), self.map_transform()])

    def train_step(self, batch: dict) -> dict:
        return self._step_with_maps(super().train_step, batch)

    def validation_step(self, batch: dict) -> dict:
        return self._step_with_maps(super().validation_step, batch)

    def _step_with_maps(self, step: Callable[[dict], dict], batch: dict) -> dict:
        """Run nnU-Net's ``step`` on the batch without its map channels, its ``self.loss(output, target)`` calls
        bound to the batch's maps: nnU-Net's steps (autocast, gradient scaling and clipping, the online Dice) stay
        nnU-Net's own code, and the online Dice sees the label only."""
        target, maps = split_maps(batch["target"], self.map_transform().channels)
        device = self.device
        maps = ([m.to(device, non_blocking=True) for m in maps] if isinstance(maps, list)
                else maps.to(device, non_blocking=True))
        loss: Callable[..., torch.Tensor] = self.loss  # type: ignore[has-type]

        def with_maps(output: list[torch.Tensor] | torch.Tensor, target: list[torch.Tensor] | torch.Tensor
                      ) -> torch.Tensor:
            return loss(output, target, maps)

        self.loss = with_maps
        try:
            return step({**batch, "target": target})
        finally:
            self.loss = loss


def make_trainer(loss: str, *, name: str, ce: float = 0.0, region_loss: str | None = None,
                 region_options: Mapping | None = None, match_nnunet: bool = False, rebalance: Rebalance | None = None,
                 **options) -> type:
    """An ``nnUNetTrainer`` subclass that trains with the registered loss ``loss`` and its ``options``.

    Args:
        loss: a registered loss name (``medloss losses list``), e.g. ``"TverskyLoss"`` or ``"tversky"``.
        name: the class name nnU-Net will know it by (``-tr NAME``); assign the result to a module-level variable
            of that name in a file of an ``nnUNet_extTrainer`` folder. Names starting with
            ``nnUNetTrainerMedloss`` are medloss's own (``medloss nnunet trainers``).
        ce, region_loss, region_options, match_nnunet, rebalance: see :class:`LossSpec`.
        **options: constructor options of ``loss``; they override nnU-Net's conventions.

    Example::

        nnUNetTrainerTversky37 = make_trainer("TverskyLoss", name="nnUNetTrainerTversky37", alpha=0.3, beta=0.7,
                                              ce=1.0, region_loss="TverskyLoss")
        nnUNetTrainerGDLBoundary = make_trainer("BoundaryLoss", name="nnUNetTrainerGDLBoundary",
                                                rebalance=Rebalance("GeneralizedDiceLoss"))
    """
    if not (isinstance(name, str) and name.isidentifier()):
        raise InvalidOptionError(f"`name` must be a Python identifier (nnU-Net's -tr takes the class name), "
                                 f"got {name!r}.")
    frame = inspect.currentframe()
    caller = frame.f_back if frame is not None else None
    module = caller.f_globals.get("__name__", __name__) if caller is not None else __name__
    if name.startswith(RESERVED_PREFIX) and module != "medloss.nnunet.trainers":
        # medloss nnunet train resolves these names to medloss's own trainers first
        raise InvalidOptionError(f"`name`={name!r}: the prefix {RESERVED_PREFIX!r} is reserved for medloss's own "
                                 f"trainers; pick another, e.g. {'nnUNetTrainer' + name[len(RESERVED_PREFIX):]!r}.")
    spec = LossSpec(loss=loss, options=dict(options), ce=ce, region_loss=region_loss,
                    region_options=dict(region_options or {}), match_nnunet=match_nnunet, rebalance=rebalance)
    scheduled = f" + {spec.rebalance.loss}, rebalanced per epoch" if spec.rebalance else ""
    doc = (f"nnU-Net trainer with medloss's {spec.loss}{f' + {spec.ce} x (B)CE' if spec.ce else ''}{scheduled} "
           f"(options {dict(spec.options)}; region-based: {spec.region_loss or 'not supported'}).")
    # the caller's module, so pickling and nnU-Net's lookup by class name find the class where it is assigned
    base = MapTrainer if spec.map_kind is not None else MedlossTrainer
    return type(name, (base,), {"spec": spec, "__module__": module, "__qualname__": name, "__doc__": doc})


def spec_of(trainer: type) -> LossSpec:
    """The :class:`LossSpec` of a medloss trainer class."""
    if not (isinstance(trainer, type) and issubclass(trainer, MedlossTrainer)):
        raise InvalidOptionError(f"{trainer!r} is not a medloss nnU-Net trainer (made by make_trainer).")
    return trainer.spec


__all__ = [
    "RESERVED_PREFIX",
    "LossSpec",
    "MapTrainer",
    "MedlossTrainer",
    "Rebalance",
    "build_loss",
    "deep_supervision_weights",
    "make_trainer",
    "map_transform",
    "spec_of",
]
