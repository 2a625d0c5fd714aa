"""Class weights from label frequencies: exact voxel counts, four weighting schemes, running counts.

For C classes with voxel counts N_c (ignored voxels excluded) and N = sum_c N_c, the schemes are::

    inverse       w_c = N / (C * N_c)                 scikit-learn's class_weight="balanced" (King & Zeng 2001)
    inverse_sqrt  w_c = sqrt(N / (C * N_c))           the square root of "inverse" (milder)
    log           w_c = 1 / ln(k + N_c / N), k = 1.02 ENet's weighting (Paszke et al. 2016), bounded in
                                                      [1 / ln(1 + k), 1 / ln(k)] = [1.42, 50.5] for k = 1.02
    complement    w_c = (N - N_c) / N                 one minus the class frequency, in [0, 1]

"inverse" makes every present class carry the same total weight (w_c N_c = N / C) and keeps the mean weight per
voxel at 1 (sum_c N_c w_c / N = 1). The exponential-logarithmic loss's w_l = (sum_k f_k / f_l)^0.5 (Wong et al.
2018) is "inverse_sqrt" times sqrt(C): the same weights after any normalisation.

**Absent classes** (N_c = 0; "inverse" and "inverse_sqrt" would be infinite) follow ``absent``:

    "max"   (default) the largest weight any present class gets under the same scheme (as MONAI's Generalized
            Dice does for its infinite weights); finite, so a class that never appeared in the counts is not
            switched off for losses that also score its false positives (focal, soft-target CE, Dice).
    "zero"  weight 0: the class does not contribute.
    "error" raise :class:`~medloss.errors.LabelValueError` naming the classes.

The policy applies to every scheme, so the four schemes treat absent classes the same way. Counts that sum to 0
(nothing was counted) raise :class:`~medloss.errors.LabelValueError`: there is no frequency to weight by.

The weights are a (C,) float tensor that :class:`medloss.losses.CrossEntropyLoss` (``weight=``),
:class:`medloss.losses.FocalLoss` (``weight=``) and ``torch.nn.CrossEntropyLoss`` accept as they are.

References:
    King & Zeng, "Logistic regression in rare events data", Political Analysis 9(2), 2001 (the "balanced" rule
    n_samples / (n_classes * bincount) that scikit-learn's ``compute_class_weight`` implements).
    Paszke, Chaurasia, Kim, Culurciello, "ENet: a deep neural network architecture for real-time semantic
    segmentation", arXiv:1606.02147, 2016 (w_class = 1 / ln(c + p_class), c = 1.02).
    Wong, Moradi, Tang, Syeda-Mahmood, "3D segmentation with exponential logarithmic loss ...", MICCAI 2018,
    arXiv:1809.00076 (w_l = ((sum_k f_k) / f_l)^0.5).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from medloss.errors import InvalidOptionError, LabelValueError, OptionTypeError, ShapeMismatchError, check_choice
from medloss.functional import prepare

SCHEMES = ("inverse", "inverse_sqrt", "log", "complement")
NORMALIZATIONS = ("none", "mean", "sum", "max")
ABSENT_POLICIES = ("max", "zero", "error")

__all__ = ["ABSENT_POLICIES", "NORMALIZATIONS", "SCHEMES", "RunningClassCounts", "class_counts", "class_weights"]


def _check_num_classes(num_classes: object) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise OptionTypeError(
            f"`num_classes` must be an int (the number of classes, background included), got {num_classes!r}."
        )
    if num_classes < 1:
        raise InvalidOptionError(f"`num_classes` must be >= 1, got {num_classes}.")
    return int(num_classes)


def _as_label_tensor(labels: object) -> torch.Tensor:
    """A torch view of a label array (tensor, MetaTensor or numpy array); bool becomes uint8."""
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(np.ascontiguousarray(labels))
    if not isinstance(labels, torch.Tensor):
        raise OptionTypeError(
            f"`labels` must be a torch.Tensor, MetaTensor or numpy array of class indices, got {type(labels).__name__}."
        )
    labels = labels.detach().as_subclass(torch.Tensor) if type(labels) is not torch.Tensor else labels.detach()
    if labels.dtype == torch.bool:
        labels = labels.to(torch.uint8)
    return labels


def _check_count_labels(labels: torch.Tensor, num_classes: int, ignore_index: int | None) -> None:
    """Labels must be finite integers in [0, num_classes) or ``ignore_index`` (messages about ``num_classes``)."""
    prepare.check_labels(
        labels, num_classes, ignore_index, arg="labels",
        non_integer_fix="for one-hot or soft labels, count argmax(labels) or pass the label map",
        range_fix="raise `num_classes` if the dataset has more classes, or set `ignore_index` to the label of "
        "unlabelled voxels",
    )


def class_counts(labels: object, num_classes: int, ignore_index: int | None = None) -> torch.Tensor:
    """Exact voxel count of every class in a label map.

    Args:
        labels: class indices of any shape, e.g. (1, *S) from a MONAI dict, (B, 1, *S) from a loader, or (*S);
            integer, bool or float with integer values (MONAI pipelines load labels as float); tensor, MetaTensor
            or numpy array, on any device.
        num_classes: C, background included. Every label must lie in [0, C) or equal ``ignore_index``.
        ignore_index: label value of unlabelled voxels; they are not counted.

    Returns:
        (C,) int64 tensor on the device of ``labels``: entry c is the number of voxels equal to c (``bincount``).

    Raises:
        LabelValueError: non-integer, NaN or out-of-range labels (the message lists them).
        OptionTypeError: ``labels`` is not an array, ``num_classes`` not an int.
    """
    num_classes = _check_num_classes(num_classes)
    labels = _as_label_tensor(labels)
    if labels.is_complex():
        raise OptionTypeError(f"`labels` must hold class indices, got complex dtype {labels.dtype}.")
    _check_count_labels(labels, num_classes, ignore_index)
    flat = labels.reshape(-1)
    if ignore_index is not None:
        flat = flat[flat != ignore_index]
    return torch.bincount(flat.to(torch.int64), minlength=num_classes)


def _counts_tensor(counts: object) -> torch.Tensor:
    try:
        c = torch.as_tensor(np.asarray(counts) if not isinstance(counts, torch.Tensor) else counts.detach().cpu())
    except (TypeError, ValueError, RuntimeError) as exc:
        raise OptionTypeError(f"`counts` must be a sequence of per-class voxel counts, got {counts!r}.") from exc
    if c.ndim != 1 or c.numel() == 0:
        raise ShapeMismatchError(f"`counts` must be 1-D with one entry per class, got shape {tuple(c.shape)}.")
    if c.is_complex() or c.dtype == torch.bool:
        raise OptionTypeError(f"`counts` must be numeric, got dtype {c.dtype}.")
    c = c.to(torch.float64)
    if not bool(torch.isfinite(c).all()) or bool((c < 0).any()):
        raise InvalidOptionError(f"`counts` must be finite and >= 0, got {c.tolist()}.")
    return c


def class_weights(
    counts: object,
    scheme: str = "inverse",
    *,
    normalize: str | None = "none",
    absent: str = "max",
    k: float = 1.02,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Per-class weights from per-class voxel counts (formulas in the module docstring).

    Args:
        counts: (C,) non-negative counts N_c (int or float: running/EMA counts are fine), e.g. from
            :func:`class_counts` or :attr:`RunningClassCounts.counts`.
        scheme: "inverse" | "inverse_sqrt" | "log" | "complement".
        normalize: rescaling applied after the absent-class policy: "none" (the formula's values), "mean" (the
            weights average to 1), "sum" (they sum to 1), "max" (the largest is 1). ``None`` means "none".
        absent: what an absent class (N_c = 0) gets: "max" | "zero" | "error" (see the module docstring).
        k: ENet's constant of the "log" scheme (> 1 so that the weight stays finite and positive).
        dtype: dtype of the result.

    Returns:
        (C,) tensor of finite, non-negative weights on the CPU (``.to(device)`` as needed).

    Raises:
        InvalidOptionError: unknown ``scheme``/``normalize``/``absent`` (with a did-you-mean), negative or
            non-finite counts, ``k <= 1``.
        LabelValueError: the counts sum to 0, or an absent class with ``absent="error"``.
    """
    check_choice("scheme", scheme, SCHEMES)
    normalize = check_choice("normalize", "none" if normalize is None else normalize, NORMALIZATIONS)
    check_choice("absent", absent, ABSENT_POLICIES)
    if isinstance(k, bool) or not isinstance(k, (int, float)) or not math.isfinite(k) or k <= 1.0:
        raise InvalidOptionError(f"`k` must be a finite number > 1 (ENet uses 1.02), got {k!r}.")
    n_c = _counts_tensor(counts)
    total = float(n_c.sum())
    if total <= 0:
        raise LabelValueError(
            f"`counts` sum to 0 ({n_c.tolist()}): no labelled voxel was counted, so there is no frequency to "
            "weight by. Check the label key, `ignore_index` and that the data is not empty."
        )
    num_classes = n_c.numel()
    present = n_c > 0
    if absent == "error" and not bool(present.all()):
        missing = torch.nonzero(~present).flatten().tolist()
        raise LabelValueError(
            f"classes {missing} have count 0 and `absent='error'`: scan more data, or pick `absent='max'` "
            "(largest weight of the present classes) or `absent='zero'`."
        )
    freq = n_c / total
    safe = torch.where(present, n_c, torch.ones_like(n_c))  # absent entries are replaced below
    if scheme == "inverse":
        w = total / (num_classes * safe)
    elif scheme == "inverse_sqrt":
        w = torch.sqrt(total / (num_classes * safe))
    elif scheme == "log":
        w = 1.0 / torch.log(k + freq)
    else:  # complement
        w = (total - n_c) / total
    fill = float(w[present].max()) if absent == "max" else 0.0
    w = torch.where(present, w, torch.full_like(w, fill))
    if normalize != "none":
        scale = {"mean": w.mean(), "sum": w.sum(), "max": w.max()}[normalize]
        if float(scale) > 0:  # all-zero weights (complement with one class) stay zero
            w = w / scale
    return w.to(dtype)


class RunningClassCounts:
    """Cumulative (or exponentially averaged) class counts over the labels seen during training.

    ``update(labels)`` adds :func:`class_counts` of one label batch; :meth:`weights` turns the counts into
    :func:`class_weights`. With ``momentum=None`` the counts are exact int64 sums over everything seen; with
    ``momentum=m`` in (0, 1] they are an exponential moving average, counts <- (1 - m) counts + m batch_counts
    (the first batch initialises them), so the weights follow the recent label distribution (only ratios of
    the counts matter for the weights).

    The counts live on the CPU: each update copies C integers from the labels' device (one synchronisation).
    ``state_dict()`` returns plain Python values (``torch.load(weights_only=True)``-safe), so the object can go
    into an ignite ``Checkpoint``/MONAI ``CheckpointSaver`` ``save_dict`` and be restored on resume.

    Args:
        num_classes: C, background included.
        ignore_index: label value not counted.
        momentum: None (cumulative, default) or the EMA factor m in (0, 1].

    Example::

        counter = RunningClassCounts(num_classes=3, ignore_index=255)
        for batch in loader:
            counter.update(batch["label"])
            loss_fn.weight = counter.weights("inverse_sqrt", normalize="mean").to(device)
    """

    def __init__(self, num_classes: int, ignore_index: int | None = None, momentum: float | None = None) -> None:
        self.num_classes = _check_num_classes(num_classes)
        self.ignore_index = prepare.check_ignore_index(ignore_index)
        if momentum is not None:
            if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0.0 < momentum <= 1.0:
                raise InvalidOptionError(
                    f"`momentum` must be None (cumulative counts) or in (0, 1], got {momentum!r}."
                )
            momentum = float(momentum)
        self.momentum = momentum
        self.reset()

    def reset(self) -> None:
        """Forget everything counted so far."""
        dtype = torch.int64 if self.momentum is None else torch.float64
        self._counts = torch.zeros(self.num_classes, dtype=dtype)
        self.num_updates = 0

    @property
    def counts(self) -> torch.Tensor:
        """(C,) counts so far (int64 cumulative, float64 with ``momentum``); a copy."""
        return self._counts.clone()

    def update(self, labels: object) -> torch.Tensor:
        """Count one label array or batch (any shape, see :func:`class_counts`); return its (C,) counts."""
        batch = class_counts(labels, self.num_classes, self.ignore_index).cpu()
        if self.momentum is None:
            self._counts += batch
        elif self.num_updates == 0:
            self._counts = batch.to(torch.float64)
        else:
            self._counts = (1.0 - self.momentum) * self._counts + self.momentum * batch.to(torch.float64)
        self.num_updates += 1
        return batch

    __call__ = update

    def weights(self, scheme: str = "inverse", **kwargs) -> torch.Tensor:
        """:func:`class_weights` of the current counts (keyword arguments as there)."""
        return class_weights(self._counts, scheme, **kwargs)

    def state_dict(self) -> dict:
        """Plain-Python state: counts, number of updates and the options they were taken with."""
        return {
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "momentum": self.momentum,
            "num_updates": self.num_updates,
            "counts": self._counts.tolist(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`; the number of classes must match."""
        counts = state.get("counts") if isinstance(state, dict) else None
        if counts is None or len(counts) != self.num_classes:
            got = None if counts is None else len(counts)
            raise ShapeMismatchError(
                f"`state` holds counts for {got} classes but this RunningClassCounts has num_classes="
                f"{self.num_classes}; load a state saved with the same number of classes."
            )
        saved = (state.get("momentum", self.momentum), state.get("ignore_index", self.ignore_index))
        if saved != (self.momentum, self.ignore_index):
            raise InvalidOptionError(
                f"`state` was saved with momentum={saved[0]!r}, ignore_index={saved[1]!r} but this counter has "
                f"momentum={self.momentum!r}, ignore_index={self.ignore_index!r}; build it with the same options."
            )
        dtype = torch.int64 if self.momentum is None else torch.float64
        self._counts = torch.tensor(counts, dtype=dtype)
        self.num_updates = int(state.get("num_updates", 0))

    def __repr__(self) -> str:
        return (
            f"RunningClassCounts(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
            f"momentum={self.momentum}, num_updates={self.num_updates}, counts={self._counts.tolist()})"
        )
