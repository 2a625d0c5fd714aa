"""MONAI components that count classes in label maps, for class weights from data (:mod:`medloss.functional.weights`).

* :func:`compute_class_weights` / :func:`dataset_class_counts` scan a dataset or loader once (dataset-level
  weights, before training);
* :class:`ClassCountsd` is a dictionary transform that adds every label it sees to a running count;
* :class:`ClassCountsHandler` is an ignite/MONAI trainer handler that counts the labels of every training batch
  (in the main process, so it works with loader workers) and can push the updated weights into the loss.

This is the only medloss module that imports MONAI at import time (``import medloss`` does not import it).

In a bundle config (dataset-level weights for the loss)::

    "class_weights": {"_target_": "medloss.transforms.compute_class_weights", "data": "@train#dataset",
                      "num_classes": 3, "scheme": "inverse_sqrt", "normalize": "mean"},
    "loss": {"_target_": "medloss.losses.CrossEntropyLoss", "weight": "@class_weights"}

or running weights, refreshed during training (add to ``train#handlers``)::

    {"_target_": "medloss.transforms.ClassCountsHandler", "num_classes": 3, "loss": "@loss", "scheme": "log"}
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from medloss.errors import InvalidOptionError, OptionTypeError, ShapeMismatchError
from medloss.functional.weights import RunningClassCounts, class_weights

__all__ = [
    "ClassCountsHandler", "ClassCountsd", "compute_class_weights", "dataset_class_counts",
    "SignedDistanceMapd", "signed_distance_maps", "ConnectedComponentsd", "ReferenceSkeletond",
]


def _labels_of(item: Any, label_key: str, where: str) -> Iterable[Any]:
    """Yield the label arrays held by one dataset item: a dict, a list of dicts (patch samplers), or an array."""
    if isinstance(item, Mapping):
        if label_key not in item:
            raise InvalidOptionError(
                f"{where} has no key {label_key!r} (keys: {sorted(map(str, item))}); "
                "set `label_key` to the label's key."
            )
        yield from _labels_of(item[label_key], label_key, where)
    elif isinstance(item, (list, tuple)):
        for i, sub in enumerate(item):
            yield from _labels_of(sub, label_key, f"{where}[{i}]")
    elif isinstance(item, (torch.Tensor, np.ndarray)):
        yield item
    elif isinstance(item, str):
        raise OptionTypeError(
            f"{where} holds the file name {item!r}, not a label array: scan a dataset whose transform loads the "
            "labels, e.g. monai.data.Dataset(datalist, transform=LoadImaged(keys='label'))."
        )
    else:
        raise OptionTypeError(f"{where} is a {type(item).__name__}: expected a dict, a list of dicts or an array.")


def _items(data: Any) -> Iterable[Any]:
    if isinstance(data, (Mapping, torch.Tensor, np.ndarray)):
        return [data]
    if hasattr(data, "__len__") and hasattr(data, "__getitem__"):  # map-style datasets, lists
        return (data[i] for i in range(len(data)))
    if isinstance(data, Iterable):  # DataLoader, generators
        return data
    raise OptionTypeError(f"`data` must be a dataset, a data loader or a list of items, got {type(data).__name__}.")


def dataset_class_counts(
    data: Any, num_classes: int, label_key: str = "label", ignore_index: int | None = None
) -> torch.Tensor:
    """Exact (C,) int64 voxel counts of every class over a dataset.

    Args:
        data: a MONAI/torch map-style dataset (items are dicts, or lists of dicts from patch samplers), a
            ``DataLoader`` (collated batches), a list of such items, or label arrays. Items are read once, with
            the dataset's transforms: scan a dataset whose transform only loads the labels if random crops
            should not bias the counts.
        num_classes: C, background included.
        label_key: the key of the label map in each dict item.
        ignore_index: label value not counted.

    Returns:
        (C,) int64 counts: entry c is the number of voxels labelled c.
    """
    counter = RunningClassCounts(num_classes, ignore_index=ignore_index)
    for n, item in enumerate(_items(data)):
        for labels in _labels_of(item, label_key, f"`data` item {n}"):
            counter.update(labels)
    return counter.counts


def compute_class_weights(
    data: Any,
    num_classes: int,
    label_key: str = "label",
    scheme: str = "inverse",
    normalize: str | None = "none",
    absent: str = "max",
    ignore_index: int | None = None,
    k: float = 1.02,
) -> torch.Tensor:
    """(C,) float32 class weights from the voxel counts of a dataset: :func:`dataset_class_counts`, then
    :func:`medloss.functional.weights.class_weights`.

    The result goes straight into ``CrossEntropyLoss(weight=...)`` or ``FocalLoss(weight=...)``.

    Args:
        data, num_classes, label_key, ignore_index: as :func:`dataset_class_counts`.
        scheme, normalize, absent, k: as :func:`medloss.functional.weights.class_weights`.

    Returns:
        (C,) float32 weights.
    """
    counts = dataset_class_counts(data, num_classes, label_key=label_key, ignore_index=ignore_index)
    return class_weights(counts, scheme, normalize=normalize, absent=absent, k=k)


def _counter(counter: RunningClassCounts | None, num_classes: int | None, ignore_index: int | None):
    if counter is None:
        if num_classes is None:
            raise InvalidOptionError("pass `num_classes` (or an existing `counter`) to count classes.")
        return RunningClassCounts(num_classes, ignore_index=ignore_index)
    if not isinstance(counter, RunningClassCounts):
        raise OptionTypeError(f"`counter` must be a medloss RunningClassCounts, got {type(counter).__name__}.")
    if num_classes is not None and num_classes != counter.num_classes:
        raise ShapeMismatchError(f"`num_classes`={num_classes} but `counter` counts {counter.num_classes} classes.")
    return counter


class ClassCountsd(MapTransform):
    """Dictionary transform that adds the class counts of ``data[key]`` to :attr:`counter`; the data is returned
    unchanged.

    Place it where the labels have the content to count (after ``LoadImaged``, before or after cropping).
    The counts accumulate in the process that runs the transform: with a ``DataLoader`` with ``num_workers > 0``
    every worker counts into its own copy and the main process sees nothing (a warning says so). Use it with
    ``num_workers=0``, in :func:`dataset_class_counts`, or count batches with :class:`ClassCountsHandler`.

    Args:
        keys: the label key(s).
        num_classes: C, background included (not needed when ``counter`` is given).
        ignore_index: label value not counted.
        counter: a shared :class:`RunningClassCounts` (e.g. referenced from a bundle config); a new one if None.
        allow_missing_keys: do not raise when a key is missing.
    """

    def __init__(
        self,
        keys: KeysCollection = "label",
        num_classes: int | None = None,
        ignore_index: int | None = None,
        counter: RunningClassCounts | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.counter = _counter(counter, num_classes, ignore_index)
        self._warned = False

    def __call__(self, data: Mapping) -> Mapping:
        if not self._warned and torch.utils.data.get_worker_info() is not None:
            self._warned = True
            warnings.warn(
                "ClassCountsd runs in a DataLoader worker: its counts stay in the worker process. Use "
                "num_workers=0, or count batches in the main process with ClassCountsHandler.",
                stacklevel=2,
            )
        for key in self.key_iterator(data):
            self.counter.update(data[key])
        return data

    def weights(self, scheme: str = "inverse", **kwargs) -> torch.Tensor:
        """Class weights of the counts so far (see :func:`medloss.functional.weights.class_weights`)."""
        return self.counter.weights(scheme, **kwargs)


class ClassCountsHandler:
    """Trainer handler: counts the classes of every training batch and optionally refreshes a loss's weights.

    On every ``ITERATION_COMPLETED`` it adds the counts of ``batch_transform(engine.state.batch)`` (default:
    ``engine.state.batch[label_key]``) to :attr:`counter`. When ``loss`` is given, every ``interval``
    iterations it sets ``loss.<weight_attr>`` to ``counter.weights(scheme, normalize=..., absent=...)`` on the
    device of the previous weights (the loss keeps its constructor weights until the first update). The new
    weights apply from the next iteration.

    ``state_dict``/``load_state_dict`` delegate to the counter, so the handler can go into a
    ``CheckpointSaver``'s ``save_dict`` and the counts survive a resume.

    Args:
        num_classes: C, background included (not needed when ``counter`` is given).
        label_key: key of the labels in the batch dict.
        ignore_index: label value not counted.
        counter: a shared :class:`RunningClassCounts`; a new one (``momentum`` as given) if None.
        momentum: None (cumulative counts) or the EMA factor of a new counter.
        loss: a loss module whose class weights to refresh (medloss ``CrossEntropyLoss``/``FocalLoss``, torch's
            ``CrossEntropyLoss``, the ``.loss`` of a ``DeepSupervisionLoss``), or None to only count.
        weight_attr: the attribute that holds the weights; default "weight", or "class_weight" when the loss has
            that attribute (medloss ``FocalLoss``).
        scheme, normalize, absent: as in :func:`medloss.functional.weights.class_weights`.
        include_background: False drops class 0's weight (for losses built with ``include_background=False``).
        interval: refresh the weights every this many iterations.
        batch_transform: callable batch -> labels, to override the default lookup.
    """

    def __init__(
        self,
        num_classes: int | None = None,
        label_key: str = "label",
        ignore_index: int | None = None,
        counter: RunningClassCounts | None = None,
        momentum: float | None = None,
        loss: torch.nn.Module | None = None,
        weight_attr: str | None = None,
        scheme: str = "inverse",
        normalize: str | None = "none",
        absent: str = "max",
        include_background: bool = True,
        interval: int = 1,
        batch_transform: Callable[[Any], Any] | None = None,
    ) -> None:
        if counter is None and num_classes is not None:
            counter = RunningClassCounts(num_classes, ignore_index=ignore_index, momentum=momentum)
        self.counter = _counter(counter, num_classes, ignore_index)
        self.label_key = label_key
        self.loss = loss
        if weight_attr is None:
            weight_attr = "class_weight" if loss is not None and hasattr(loss, "class_weight") else "weight"
        if loss is not None and not hasattr(loss, weight_attr):
            raise InvalidOptionError(
                f"`loss` ({type(loss).__name__}) has no attribute {weight_attr!r} to hold class weights; "
                "set `weight_attr` to the attribute its forward reads."
            )
        self.weight_attr = weight_attr
        class_weights(torch.ones(self.counter.num_classes), scheme, normalize=normalize, absent=absent)  # validate
        self.weight_options = {"normalize": normalize, "absent": absent}
        self.scheme = scheme
        self.include_background = bool(include_background)
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise InvalidOptionError(f"`interval` must be a positive int (iterations), got {interval!r}.")
        self.interval = interval
        self.batch_transform = batch_transform

    def attach(self, engine: Any) -> None:
        """Register on ``engine``'s ``ITERATION_COMPLETED`` event (MONAI trainers call this for ``handlers``)."""
        from ignite.engine import Events

        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Any) -> None:
        batch = engine.state.batch
        if self.batch_transform is not None:
            labels = self.batch_transform(batch)
        else:
            labels = list(_labels_of(batch, self.label_key, "`engine.state.batch`"))
        for lab in labels if isinstance(labels, list) else [labels]:
            self.counter.update(lab)
        if self.loss is not None and engine.state.iteration % self.interval == 0:
            self.update_loss()

    def update_loss(self) -> torch.Tensor:
        """Write the current weights into ``loss.<weight_attr>`` and return them."""
        w = self.counter.weights(self.scheme, **self.weight_options)
        if not self.include_background:
            w = w[1:]
        old = getattr(self.loss, self.weight_attr)
        if isinstance(old, torch.Tensor):
            w = w.to(device=old.device, dtype=old.dtype if old.is_floating_point() else w.dtype)
        setattr(self.loss, self.weight_attr, w)
        return w

    def state_dict(self) -> dict:
        return self.counter.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.counter.load_state_dict(state)


# maps the loader computes once per sample for the distance, topology and blob losses (re-exported here)
from medloss.data.distance import SignedDistanceMapd, signed_distance_maps  # noqa: E402
from medloss.data.topology import ConnectedComponentsd, ReferenceSkeletond  # noqa: E402
