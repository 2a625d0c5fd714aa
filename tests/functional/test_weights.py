"""Class counts and class weights from data (medloss.functional.weights), checked against brute-force references."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medloss.errors import InvalidOptionError, LabelValueError, MedlossError, OptionTypeError, ShapeMismatchError
from medloss.functional.weights import SCHEMES, RunningClassCounts, class_counts, class_weights
from medloss.losses import CrossEntropyLoss, FocalLoss


def _labels(shape=(2, 1, 7, 6, 5), num_classes=4, ignore=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    # skewed class distribution so the weights differ between classes
    probs = torch.tensor([0.7, 0.2, 0.07, 0.03][:num_classes])
    lab = torch.multinomial(probs, math.prod(shape), replacement=True, generator=gen).reshape(shape)
    if ignore is not None:
        lab = lab.masked_fill(torch.rand(shape, generator=gen) < 0.15, ignore)
    return lab


def _brute_counts(labels, num_classes, ignore=None):
    flat = [int(v) for v in np.asarray(labels).reshape(-1).tolist()]
    return [sum(1 for v in flat if v == c and v != ignore) for c in range(num_classes)]


def _brute_weight(n_c, counts, scheme, k=1.02):
    total, num_classes = sum(counts), len(counts)
    if scheme == "inverse":
        return total / (num_classes * n_c)
    if scheme == "inverse_sqrt":
        return math.sqrt(total / (num_classes * n_c))
    if scheme == "log":
        return 1.0 / math.log(k + n_c / total)
    return (total - n_c) / total


# ------------------------------------------------------------------------------------------------- class_counts


@pytest.mark.parametrize(
    "convert",
    [
        lambda t: t,
        lambda t: t.to(torch.uint8),
        lambda t: t.to(torch.int32),
        lambda t: t.float(),
        lambda t: t.numpy(),
        lambda t: t.float().numpy(),
    ],
    ids=["int64", "uint8", "int32", "float32", "numpy-int", "numpy-float"],
)
@pytest.mark.parametrize("ignore", [None, 255])
def test_class_counts_equal_brute_force(convert, ignore):
    lab = _labels(ignore=ignore)
    got = class_counts(convert(lab), 4, ignore_index=ignore)
    assert got.dtype == torch.int64 and got.shape == (4,)
    assert got.tolist() == _brute_counts(lab, 4, ignore)
    valid = lab.numel() if ignore is None else int((lab != ignore).sum())
    assert int(got.sum()) == valid  # ignored voxels are not counted


def test_class_counts_metatensor_and_bool():
    from monai.data import MetaTensor

    lab = _labels(num_classes=2)
    assert class_counts(MetaTensor(lab.float()), 2).tolist() == _brute_counts(lab, 2)
    assert class_counts(lab.bool(), 2).tolist() == _brute_counts(lab, 2)


def test_class_counts_counts_absent_class_as_zero():
    lab = _labels(num_classes=2)
    assert class_counts(lab, 5).tolist() == _brute_counts(lab, 2) + [0, 0, 0]


@pytest.mark.parametrize(
    "labels,ignore,exc,pattern",
    [
        (torch.tensor([0, 1, 4]), None, LabelValueError, r"\[4\].*`num_classes`"),
        (torch.tensor([0, -1, 2]), None, LabelValueError, r"-1"),
        (torch.tensor([0, 7, 255]), 255, LabelValueError, r"\[7\].*ignore_index=255"),
        (torch.tensor([0.0, 1.5]), None, LabelValueError, r"non-integer"),
        (torch.tensor([0.0, float("nan")]), None, LabelValueError, r"NaN"),
        ([0, 1, 2], None, OptionTypeError, r"`labels`"),
    ],
    ids=["too-large", "negative", "beyond-ignore", "fractional", "nan", "list"],
)
def test_class_counts_bad_labels(labels, ignore, exc, pattern):
    with pytest.raises(exc, match=pattern) as info:
        class_counts(labels, 3, ignore_index=ignore)
    assert isinstance(info.value, MedlossError)


@pytest.mark.parametrize("num_classes,exc", [(0, InvalidOptionError), (2.0, OptionTypeError), (True, OptionTypeError)])
def test_class_counts_bad_num_classes(num_classes, exc):
    with pytest.raises(exc, match="num_classes"):
        class_counts(torch.zeros(3, dtype=torch.long), num_classes)


# ------------------------------------------------------------------------------------------------ class_weights


@pytest.mark.parametrize("scheme", SCHEMES)
def test_class_weights_match_formula(scheme):
    counts = [9000, 700, 250, 50]
    got = class_weights(counts, scheme)
    assert got.dtype == torch.float32 and got.shape == (4,)
    want = [_brute_weight(n, counts, scheme) for n in counts]
    assert got.tolist() == pytest.approx(want, rel=1e-6)


def test_inverse_weights_balance_classes():
    counts = torch.tensor([9000, 700, 250, 50])
    w = class_weights(counts, "inverse", dtype=torch.float64)
    per_class_total = w * counts
    assert torch.allclose(per_class_total, torch.full((4,), counts.sum() / 4.0, dtype=torch.float64))
    assert float((w * counts).sum() / counts.sum()) == pytest.approx(1.0)  # mean weight per voxel is 1


def test_weights_order_rarer_class_heavier():
    counts = [9000, 700, 250, 50]
    for scheme in SCHEMES:
        w = class_weights(counts, scheme).tolist()
        assert w == sorted(w), scheme


def test_log_scheme_custom_k_and_bounds():
    counts = [1, 10**9]
    w = class_weights(counts, "log", k=1.5, dtype=torch.float64)
    assert w.tolist() == pytest.approx([1 / math.log(1.5 + 1e-9), 1 / math.log(1.5 + 1.0)], rel=1e-6)
    with pytest.raises(InvalidOptionError, match="`k`"):
        class_weights(counts, "log", k=1.0)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_absent_class_policies(scheme):
    counts = [900, 0, 80, 20]
    present = [0, 2, 3]
    w_max = class_weights(counts, scheme, absent="max")
    assert bool(torch.isfinite(w_max).all())
    assert float(w_max[1]) == pytest.approx(max(_brute_weight(counts[c], counts, scheme) for c in present), rel=1e-6)
    w_zero = class_weights(counts, scheme, absent="zero")
    assert float(w_zero[1]) == 0.0
    assert torch.equal(w_zero[present], w_max[present])
    with pytest.raises(LabelValueError, match=r"\[1\].*absent"):
        class_weights(counts, scheme, absent="error")


@pytest.mark.parametrize("normalize,check", [
    ("mean", lambda w: float(w.mean())), ("sum", lambda w: float(w.sum())), ("max", lambda w: float(w.max())),
])
def test_normalize(normalize, check):
    counts = [500, 120, 3, 0]
    raw = class_weights(counts, "inverse_sqrt", dtype=torch.float64)
    got = class_weights(counts, "inverse_sqrt", normalize=normalize, dtype=torch.float64)
    assert check(got) == pytest.approx(1.0)
    assert torch.allclose(got / raw, (got / raw)[0].expand(4))  # a pure rescaling
    assert torch.equal(class_weights(counts, "inverse_sqrt", normalize=None, dtype=torch.float64), raw)


@pytest.mark.parametrize(
    "kwargs,exc,pattern",
    [
        (dict(counts=[0, 0, 0]), LabelValueError, r"sum to 0"),
        (dict(counts=[5, -1]), InvalidOptionError, r"`counts`.*>= 0"),
        (dict(counts=[5, float("inf")]), InvalidOptionError, r"`counts`"),
        (dict(counts=[[1, 2]]), ShapeMismatchError, r"`counts`.*1-D"),
        (dict(counts=["a"]), OptionTypeError, r"`counts`"),
        (dict(counts=[1, 2], scheme="inverse-sqrt"), InvalidOptionError, r"Did you mean 'inverse_sqrt'"),
        (dict(counts=[1, 2], normalize="avg"), InvalidOptionError, r"`normalize`"),
        (dict(counts=[1, 2], absent="skip"), InvalidOptionError, r"`absent`"),
    ],
)
def test_class_weights_errors(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        class_weights(**kwargs)


# ---------------------------------------------------------------------------------------- usable by the losses


def test_weights_in_cross_entropy_match_torch():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 5, 5, 5, generator=gen, dtype=torch.float64)
    lab = _labels(shape=(2, 1, 5, 5, 5), ignore=255, seed=2)
    w = class_weights(class_counts(lab, 4, ignore_index=255), "inverse")
    got = CrossEntropyLoss(weight=w, ignore_index=255)(logits, lab)
    want = F.cross_entropy(logits, lab[:, 0], weight=w.double(), ignore_index=255)
    assert torch.allclose(got, want)
    assert not torch.allclose(got, F.cross_entropy(logits, lab[:, 0], ignore_index=255))
    assert torch.allclose(torch.nn.CrossEntropyLoss(weight=w.double(), ignore_index=255)(logits, lab[:, 0]), want)


def test_weights_in_focal_scale_each_class():
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 4, 4, 4, 4, generator=gen, dtype=torch.float64)
    lab = _labels(shape=(2, 1, 4, 4, 4), seed=4)
    w = class_weights(class_counts(lab, 4), "log")
    kw = dict(to_onehot_y=True, use_softmax=True, reduction="none")
    weighted = FocalLoss(weight=w, **kw)(logits, lab)
    plain = FocalLoss(**kw)(logits, lab)
    assert torch.allclose(weighted, plain * w.double().view(1, 4, 1, 1, 1))


# ----------------------------------------------------------------------------------------- RunningClassCounts


def test_running_counts_cumulative_equal_concatenation():
    batches = [_labels(shape=(1, 1, 4, 5, 6), ignore=255, seed=s) for s in range(4)]
    counter = RunningClassCounts(4, ignore_index=255)
    for b in batches:
        returned = counter.update(b)
        assert returned.tolist() == _brute_counts(b, 4, 255)
    assert counter.counts.tolist() == _brute_counts(torch.cat(batches), 4, 255)
    assert counter.num_updates == 4
    assert torch.equal(counter.weights("log", normalize="mean"), class_weights(counter.counts, "log", normalize="mean"))
    counter.reset()
    assert counter.counts.tolist() == [0, 0, 0, 0] and counter.num_updates == 0


def test_running_counts_ema():
    batches = [_labels(shape=(1, 1, 4, 4, 4), seed=s) for s in range(3)]
    m = 0.25
    counter = RunningClassCounts(4, momentum=m)
    want = None
    for b in batches:
        counter.update(b)
        c = torch.tensor(_brute_counts(b, 4), dtype=torch.float64)
        want = c if want is None else (1 - m) * want + m * c
    assert torch.allclose(counter.counts, want)
    with pytest.raises(InvalidOptionError, match="momentum"):
        RunningClassCounts(4, momentum=1.5)


@pytest.mark.parametrize("momentum", [None, 0.5])
def test_running_counts_state_dict_roundtrip(momentum):
    counter = RunningClassCounts(4, ignore_index=255, momentum=momentum)
    for s in range(2):
        counter.update(_labels(ignore=255, seed=s))
    buffer = io.BytesIO()
    torch.save(counter.state_dict(), buffer)
    buffer.seek(0)
    restored = RunningClassCounts(4, ignore_index=255, momentum=momentum)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(restored.counts, counter.counts) and restored.num_updates == 2
    with pytest.raises(ShapeMismatchError, match="num_classes=3"):
        RunningClassCounts(3, ignore_index=255, momentum=momentum).load_state_dict(counter.state_dict())
    with pytest.raises(InvalidOptionError, match="ignore_index"):
        RunningClassCounts(4, momentum=momentum).load_state_dict(counter.state_dict())


def test_running_counts_check_ignore_index_as_the_losses_do():
    """One ignore_index check for the losses and the counter: a bool or a value no int64 label holds is refused."""
    with pytest.raises(OptionTypeError, match="must be an int or None, got True"):
        RunningClassCounts(3, ignore_index=True)
    with pytest.raises(InvalidOptionError, match="does not fit in int64"):
        RunningClassCounts(3, ignore_index=2**70)
