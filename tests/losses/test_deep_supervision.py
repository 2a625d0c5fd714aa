"""DeepSupervisionLoss: resized targets against brute-force references, weights, gradients, errors, MONAI parity."""
from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F

from medloss.errors import InvalidOptionError, LabelValueError, MedlossError, OptionTypeError, ShapeMismatchError
from medloss.losses import CrossEntropyLoss, DiceLoss
from medloss.losses.deep_supervision import (
    DeepSupervisionLoss,
    deep_supervision_weights,
    downsample_dense,
    downsample_labels,
)

IGNORE = 255


def _labels(shape, num_classes=3, ignore_fraction=0.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    lab = torch.randint(0, num_classes, shape, generator=gen)
    if ignore_fraction:
        lab = lab.masked_fill(torch.rand(shape, generator=gen) < ignore_fraction, IGNORE)
    return lab


def _outputs(batch, channels, sizes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, channels, *s, generator=gen, dtype=torch.float64).requires_grad_() for s in sizes]


def _nearest_src(j, n_in, n_out):
    """Pixel-centre nearest neighbour, exact rational arithmetic: floor((j + 1/2) * n_in / n_out)."""
    return min(math.floor((Fraction(2 * j + 1, 2) * n_in) / n_out), n_in - 1)


def _brute_nearest(target, size):
    out = torch.empty(*target.shape[:2], *size, dtype=target.dtype)
    for idx in itertools.product(*(range(s) for s in size)):
        src = tuple(_nearest_src(j, n_in, n_out) for j, n_in, n_out in zip(idx, target.shape[2:], size, strict=True))
        out[(..., *idx)] = target[(..., *src)]
    return out


def _window(i, n_in, n_out):
    """Adaptive average pooling window [floor(i n_in / n_out), ceil((i + 1) n_in / n_out))."""
    return range((i * n_in) // n_out, -((-(i + 1) * n_in) // n_out))


def _brute_pool(target, size, ignore=None, min_valid=0.5):
    """Per coarse voxel: the mean of the valid fine targets of its window; ignore when < min_valid is valid."""
    t = target.double()
    out = torch.empty(*t.shape[:2], *size, dtype=torch.float64)
    for b in range(t.shape[0]):
        for idx in itertools.product(*(range(s) for s in size)):
            windows = [_window(j, n_in, n_out) for j, n_in, n_out in zip(idx, t.shape[2:], size, strict=True)]
            voxels = [t[(b, slice(None), *p)] for p in itertools.product(*windows)]
            valid = [v for v in voxels if ignore is None or not bool((v == ignore).any())]
            if len(valid) == 0 or len(valid) / len(voxels) < min_valid:
                out[(b, slice(None), *idx)] = float(ignore)
            else:
                out[(b, slice(None), *idx)] = torch.stack(valid).mean(0)
    return out


def _onehot(lab, num_classes):
    """(B, 1, *S) labels -> (B, C, *S) one-hot with IGNORE in every channel of ignored voxels."""
    oh = F.one_hot(lab[:, 0].clamp_max(num_classes - 1), num_classes).movedim(-1, 1).double()
    return oh.masked_fill((lab == IGNORE).expand_as(oh), float(IGNORE))


# ------------------------------------------------------------------------------------------- target resizing


@pytest.mark.parametrize("size_in,size_out", [((8, 8, 8), (4, 4, 4)), ((8, 6, 4), (2, 3, 4)), ((7, 5, 9), (3, 2, 4))])
def test_nearest_equals_brute_force_and_keeps_ignore(size_in, size_out):
    lab = _labels((2, 1, *size_in), ignore_fraction=0.3)
    got = downsample_labels(lab, size_out)
    assert got.dtype == lab.dtype
    assert torch.equal(got, _brute_nearest(lab, size_out))
    assert set(got.unique().tolist()) <= {0, 1, 2, IGNORE}  # no value is invented, the ignore value stays exact


@pytest.mark.parametrize("size_in,size_out", [((8, 8, 8), (4, 4, 4)), ((16, 8, 4), (4, 2, 1)), ((9, 6, 3), (3, 2, 1))])
def test_nearest_equals_torch_nearest_exact_for_integer_ratios(size_in, size_out):
    lab = _labels((1, 1, *size_in), ignore_fraction=0.2)
    want = F.interpolate(lab.double(), size=size_out, mode="nearest-exact").long()
    assert torch.equal(downsample_labels(lab, size_out), want)


@pytest.mark.parametrize("size_in,size_out", [((8, 8, 8), (4, 4, 4)), ((7, 5, 6), (3, 2, 4))])
def test_average_pooling_equals_brute_force(size_in, size_out):
    gen = torch.Generator().manual_seed(5)
    soft = torch.softmax(torch.randn(2, 3, *size_in, generator=gen, dtype=torch.float64), dim=1)
    assert torch.allclose(downsample_dense(soft, size_out), _brute_pool(soft, size_out))


@pytest.mark.parametrize("min_valid", [0.5, 1.0, 0.1])
@pytest.mark.parametrize("size_in,size_out", [((8, 8, 8), (4, 4, 4)), ((7, 5, 6), (3, 2, 4))])
def test_pooling_with_ignore_equals_brute_force(size_in, size_out, min_valid):
    lab = _labels((2, 1, *size_in), ignore_fraction=0.4, seed=2)
    target = _onehot(lab, 3)
    got = downsample_dense(target, size_out, ignore_index=IGNORE, min_valid_fraction=min_valid)
    want = _brute_pool(target, size_out, ignore=IGNORE, min_valid=min_valid)
    assert torch.allclose(got, want)
    ignored = got == IGNORE
    assert torch.equal(ignored, ignored[:, :1].expand_as(ignored))  # all channels or none
    kept = got.masked_fill(ignored, 0.0)
    assert float(kept.max()) <= 1.0 and bool(((kept.sum(1) - 1).abs() < 1e-12)[~ignored[:, 0]].all())


# ------------------------------------------------------------------------------------------------ the weights


def test_weight_modes():
    assert deep_supervision_weights(3) == [1.0, 0.5, 0.25]  # MONAI's default "exp"
    assert deep_supervision_weights(1, "nnunet") == [1.0]
    assert deep_supervision_weights(2, "nnunet") == [1.0, 0.0]
    nn = deep_supervision_weights(4, "nnunet")
    raw = [1.0, 0.5, 0.25, 0.0]
    assert nn == pytest.approx([r / sum(raw) for r in raw]) and sum(nn) == pytest.approx(1.0)
    halving = deep_supervision_weights(4, "halving")
    assert halving == pytest.approx([r / 1.875 for r in (1.0, 0.5, 0.25, 0.125)])
    assert deep_supervision_weights(6, "exp") == [1.0, 0.5, 0.25, 0.125, 0.0625, 0.0625]
    assert deep_supervision_weights(3, "two") == [1.0, 0.5, 0.5]
    assert deep_supervision_weights(3, "same") == [1.0, 1.0, 1.0]


SIZES = [(8, 8, 8), (4, 4, 4), (2, 2, 2), (1, 1, 1)]


def _by_hand(inner, outputs, target, weights, resize):
    total = 0.0
    for y, w in zip(outputs, weights, strict=True):
        if w:
            total = total + w * inner(y, resize(target, tuple(y.shape[2:])))
    return total


@pytest.mark.usefixtures("table_engine")
@pytest.mark.parametrize("weight_mode", ["nnunet", "halving", "exp"])
@pytest.mark.parametrize(
    "make_inner",
    [lambda: DiceLoss(softmax=True, to_onehot_y=True), lambda: CrossEntropyLoss()],
    ids=["dice", "ce"],
)
def test_equals_weighted_sum_of_inner_losses(make_inner, weight_mode):
    inner = make_inner()
    outputs = _outputs(2, 3, SIZES)
    lab = _labels((2, 1, 8, 8, 8))
    got = DeepSupervisionLoss(make_inner(), weight_mode=weight_mode)(outputs, lab)
    want = _by_hand(inner, outputs, lab, deep_supervision_weights(4, weight_mode), _brute_nearest)
    assert torch.allclose(got, want)


@pytest.mark.usefixtures("table_engine")
def test_label_map_with_ignore_through_cross_entropy():
    outputs = _outputs(2, 3, SIZES[:3], seed=1)
    lab = _labels((2, 1, 8, 8, 8), ignore_fraction=0.3)
    inner = CrossEntropyLoss(ignore_index=IGNORE)
    got = DeepSupervisionLoss(inner, weights=[0.6, 0.3, 0.1])(outputs, lab)
    assert torch.allclose(got, _by_hand(inner, outputs, lab, [0.6, 0.3, 0.1], _brute_nearest))


def test_onehot_with_ignore_through_soft_dice():
    outputs = _outputs(2, 3, [(8, 6, 4), (4, 3, 2), (2, 2, 1)], seed=3)
    target = _onehot(_labels((2, 1, 8, 6, 4), ignore_fraction=0.3, seed=4), 3)
    inner = DiceLoss(softmax=True, soft_label=True, ignore_index=IGNORE)
    loss = DeepSupervisionLoss(inner, weight_mode="halving")  # ignore_index taken from the inner loss
    assert loss.ignore_index == IGNORE
    got = loss(outputs, target)
    want = _by_hand(inner, outputs, target, deep_supervision_weights(3, "halving"),
                    lambda t, s: t if s == tuple(t.shape[2:]) else _brute_pool(t, s, ignore=IGNORE))
    assert torch.allclose(got, want)


def test_pooled_onehot_needs_soft_label_and_says_which_scale():
    outputs = _outputs(1, 3, SIZES[:2])
    target = _onehot(_labels((1, 1, 8, 8, 8)), 3)
    with pytest.raises(LabelValueError, match=r"output 1.*soft_label=True"):
        DeepSupervisionLoss(DiceLoss(softmax=True), weight_mode="halving", target_mode="dense")(outputs, target)


@pytest.mark.usefixtures("table_engine")
def test_onehot_target_is_resized_by_nearest_unless_the_inner_loss_takes_soft_labels():
    """MONAI resizes every target by nearest neighbour, so a one-hot target stays one-hot for a hard-label loss."""
    outputs = _outputs(1, 3, SIZES[:2])
    lab = _labels((1, 1, 8, 8, 8))
    target = _onehot(lab, 3)
    hard = DeepSupervisionLoss(DiceLoss(softmax=True))(outputs, target)
    assert torch.allclose(hard, DeepSupervisionLoss(DiceLoss(softmax=True, to_onehot_y=True))(outputs, lab))
    soft = DeepSupervisionLoss(DiceLoss(softmax=True, soft_label=True))(outputs, target)
    want = _by_hand(DiceLoss(softmax=True, soft_label=True), outputs, target, [1.0, 0.5], downsample_dense)
    assert torch.allclose(soft, want)


@pytest.mark.usefixtures("table_engine")
def test_gradients_reach_every_scale_and_nnunet_skips_the_lowest():
    lab = _labels((2, 1, 8, 8, 8))
    outputs = _outputs(2, 3, SIZES)
    DeepSupervisionLoss(DiceLoss(softmax=True, to_onehot_y=True), weight_mode="halving")(outputs, lab).backward()
    assert all(y.grad is not None and float(y.grad.abs().sum()) > 0 for y in outputs)
    outputs = _outputs(2, 3, SIZES)
    DeepSupervisionLoss(CrossEntropyLoss(), weight_mode="nnunet")(outputs, lab).backward()
    assert all(float(y.grad.abs().sum()) > 0 for y in outputs[:3])
    # the zero-weight lowest output stays in the graph with an exactly zero gradient (DDP-safe)
    assert outputs[3].grad is not None and float(outputs[3].grad.abs().sum()) == 0.0


@pytest.mark.usefixtures("table_engine")
def test_zero_weight_output_changes_nothing_even_when_non_finite():
    lab = _labels((2, 1, 8, 8, 8))
    outputs = _outputs(2, 3, SIZES)
    loss = DeepSupervisionLoss(CrossEntropyLoss(), weight_mode="nnunet")
    ref = loss(outputs, lab)
    outputs[3].data.fill_(float("inf"))  # never evaluated: its weight is 0
    assert torch.equal(loss(outputs, lab), ref)


def test_stacked_dynunet_output_and_single_tensor():
    lab = _labels((2, 1, 6, 6, 6))
    stacked = torch.randn(2, 3, 3, 6, 6, 6, dtype=torch.float64)  # (B, L, C, *S), all at full resolution
    inner = DiceLoss(softmax=True, to_onehot_y=True)
    loss = DeepSupervisionLoss(inner, weight_mode="halving")
    assert torch.allclose(loss(stacked, lab), loss(list(stacked.unbind(1)), lab))
    w = deep_supervision_weights(3, "halving")
    assert torch.allclose(loss(stacked, lab), sum(wi * inner(stacked[:, i], lab) for i, wi in enumerate(w)))
    single = stacked[:, 0]
    assert torch.allclose(loss(single, lab), inner(single, lab))
    assert torch.allclose(loss(single, lab[:, 0]), inner(single, lab))  # (B, *S) labels
    stacked_2d = torch.randn(2, 2, 3, 6, 6, dtype=torch.float64)
    loss_2d = DeepSupervisionLoss(inner, weight_mode="same", spatial_dims=2)
    lab_2d = lab[..., 0]
    want_2d = inner(stacked_2d[:, 0], lab_2d) + inner(stacked_2d[:, 1], lab_2d)
    assert torch.allclose(loss_2d(stacked_2d, lab_2d), want_2d)


@pytest.mark.usefixtures("table_engine")
@pytest.mark.parametrize("weight_mode", ["exp", "same", "two"])
def test_monai_parity(weight_mode):
    monai_losses = pytest.importorskip("monai.losses")
    outputs = _outputs(2, 3, SIZES)
    lab = _labels((2, 1, 8, 8, 8))
    ours = DeepSupervisionLoss(DiceLoss(softmax=True, to_onehot_y=True), weight_mode=weight_mode)(outputs, lab)
    theirs = monai_losses.DeepSupervisionLoss(monai_losses.DiceLoss(softmax=True, to_onehot_y=True),
                                              weight_mode=weight_mode)(outputs, lab.double())
    assert torch.allclose(ours.float(), theirs, rtol=1e-5)


# ----------------------------------------------------------------------------------------------------- errors

_X = _outputs(1, 3, SIZES[:3])
_Y = _labels((1, 1, 8, 8, 8))
_DICE = dict(softmax=True, to_onehot_y=True)

ERROR_CASES = [
    ("weights-vs-scales", dict(weights=[0.5, 0.5]), _X, _Y, ShapeMismatchError, r"`weights` has 2.*3 outputs"),
    ("channels", {}, [_X[0], torch.randn(1, 2, 4, 4, 4)], _Y, ShapeMismatchError, r"`input\[1\]` has 2 channels"),
    ("increasing", {}, [_X[0], _X[2], _X[1]], _Y, ShapeMismatchError, r"`input\[2\]`.*non-increasing"),
    ("batch", {}, [_X[0], torch.randn(2, 3, 4, 4, 4)], _Y, ShapeMismatchError, r"`input\[1\]`.*batch"),
    ("larger-than-target", {}, _X, _Y[..., :4], ShapeMismatchError, r"larger than `target`"),
    ("target-channels", {}, _X, torch.zeros(1, 2, 8, 8, 8), ShapeMismatchError, r"`target` has 2 channels"),
    ("label-mode-onehot", dict(target_mode="label"), _X, torch.zeros(1, 3, 8, 8, 8), ShapeMismatchError,
     r"target_mode='label'"),
    ("target-batch", {}, _X, _Y.expand(2, 1, 8, 8, 8), ShapeMismatchError, r"`target`"),
    ("stacked-ndim", {}, torch.randn(1, 2, 3, 4, 4, 4, 4), _Y, ShapeMismatchError, r"`spatial_dims`"),
    ("stacked-ndim-3", dict(spatial_dims=3), torch.randn(1, 2, 3, 4, 4, 4, 4), _Y, ShapeMismatchError,
     r"spatial_dims=3"),
    ("input-type", {}, "logits", _Y, OptionTypeError, r"`input`"),
    ("input-element", {}, [_X[0], None], _Y, OptionTypeError, r"`input\[1\]`"),
    ("input-none", {}, None, _Y, OptionTypeError, r"`input`"),
]


@pytest.mark.parametrize("case_id,kwargs,inp,target,exc,pattern", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_bad_input_raises_typed_error(case_id, kwargs, inp, target, exc, pattern):
    loss = DeepSupervisionLoss(DiceLoss(**_DICE), **kwargs)
    with pytest.raises(exc, match=pattern) as info:
        loss(inp, target)
    assert isinstance(info.value, MedlossError)


@pytest.mark.parametrize(
    "kwargs,exc,pattern",
    [
        (dict(weight_mode="nnUnet"), InvalidOptionError, r"Did you mean 'nnunet'"),
        (dict(target_mode="onehot"), InvalidOptionError, r"`target_mode`"),
        (dict(weights=[1.0, -0.5]), InvalidOptionError, r"`weights`"),
        (dict(weights=[0.0, 0.0]), InvalidOptionError, r"not all 0"),
        (dict(weights="abc"), OptionTypeError, r"`weights`"),
        (dict(min_valid_fraction=0.0), InvalidOptionError, r"min_valid_fraction"),
        (dict(spatial_dims=0), InvalidOptionError, r"spatial_dims"),
    ],
)
def test_bad_options(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        DeepSupervisionLoss(DiceLoss(**_DICE), **kwargs)


def test_conflicting_ignore_index_and_non_callable_loss():
    with pytest.raises(InvalidOptionError, match="ignore_index"):
        DeepSupervisionLoss(CrossEntropyLoss(ignore_index=255), ignore_index=-1)
    with pytest.raises(OptionTypeError, match="`loss`"):
        DeepSupervisionLoss("dice")


def test_reduction_none_of_voxel_loss_is_refused():
    outputs = _outputs(1, 3, SIZES[:2])
    with pytest.raises(ShapeMismatchError, match="reduction='mean'"):
        DeepSupervisionLoss(CrossEntropyLoss(reduction="none"), weight_mode="halving")(outputs, _Y)
