"""LovaszSoftmaxLoss / LovaszHingeLoss: value and gradient vs loop references, gradcheck, precision, ignore
invariance, typed errors, reduction shapes, MONAI config instantiation.

Two references: ``tests/reference/lovasz.py`` (pure-Python loops, values only, written from the paper) and
``_autograd_loop`` below (a per-(image, class) loop of the paper's Algorithm 1 in torch, differentiated by
autograd) for gradients.
"""
from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest
import torch

from medloss.errors import InputRangeError, InvalidOptionError, LabelValueError, MedlossError, ShapeMismatchError
from medloss.losses.lovasz import LovaszHingeLoss, LovaszSoftmaxLoss

try:
    from tests.reference import lovasz as ref
except ImportError:  # tests/ not importable as a package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from reference import lovasz as ref  # noqa: E402

IGNORE = 255


def _jaccard_steps(fg_sorted: torch.Tensor) -> torch.Tensor:
    """J_k - J_(k-1) for foreground indicators in decreasing-error order (Algorithm 1 of the paper), float64."""
    out = torch.empty_like(fg_sorted)
    total = float(fg_sorted.sum())
    prev, inter, union = 0.0, total, total
    for k, g in enumerate(fg_sorted.tolist()):
        inter -= g
        union += 1.0 - g
        jac = 1.0 - inter / union
        out[k] = jac - prev
        prev = jac
    return out


def _extension(errors: torch.Tensor, fg: torch.Tensor) -> torch.Tensor:
    if errors.numel() == 0:
        return errors.sum() * 0.0
    order = torch.argsort(errors.detach(), descending=True)
    return torch.dot(errors[order], _jaccard_steps(fg[order]))


def _autograd_loop(p, labels, *, classes="present", per_image=False, ignore=None, hinge=False):
    """Loop reference differentiable by autograd. p: (B, C, *S) probabilities (hinge: (B, 1, *S) logits)."""
    batch, num_classes = p.shape[:2]
    flat_p, flat_y = p.reshape(batch, num_classes, -1), labels.reshape(batch, -1)
    groups = [[b] for b in range(batch)] if per_image else [list(range(batch))]
    values = []
    for group in groups:
        probs = torch.cat([flat_p[b] for b in group], dim=1)
        ys = torch.cat([flat_y[b] for b in group])
        keep = torch.ones_like(ys, dtype=torch.bool) if ignore is None else ys != ignore
        probs, ys = probs[:, keep], ys[keep]
        if hinge:
            fg = (ys == 1).double()
            values.append(_extension(torch.relu(1.0 - probs[0] * (2 * fg - 1)), fg))
            continue
        chosen = range(num_classes) if classes in ("present", "all") else classes
        losses = []
        for c in chosen:
            fg = (ys == c).double()
            if classes == "present" and fg.sum() == 0:
                continue
            losses.append(_extension((fg - probs[c]).abs(), fg))
        values.append(torch.stack(losses).mean() if losses else p.sum() * 0.0)
    return torch.stack(values).mean()


def _case(shape=(2, 4, 5, 6, 7), *, seed=0, ignore=False, absent=True, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    x = (2.0 * torch.randn(shape, generator=gen, dtype=torch.float64)).to(dtype).requires_grad_()
    y = torch.randint(0, shape[1], (shape[0], 1, *shape[2:]), generator=gen)
    if absent and shape[1] > 3:  # class 3 absent from image 0
        y[0][y[0] == 3] = 1
    if ignore:
        y = y.masked_fill(torch.rand(y.shape, generator=gen) < 0.25, IGNORE)
    return x, y


def _grad(fn, x, y):
    x = x.detach().clone().requires_grad_()
    out = fn(x, y)
    out.sum().backward()
    return out.detach(), x.grad


# ----------------------------------------------------------------------------- value and gradient
@pytest.mark.parametrize("classes", ["present", "all", [1, 2]])
@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("ignore", [False, True])
def test_softmax_value_and_grad_match_loop_reference(classes, per_image, ignore):
    x, y = _case(ignore=ignore)
    ign = IGNORE if ignore else None
    loss = LovaszSoftmaxLoss(classes=classes, per_image=per_image, ignore_index=ign, softmax=True, to_onehot_y=True)
    value, grad = _grad(loss, x, y)
    exp_value, exp_grad = _grad(
        lambda x_, y_: _autograd_loop(torch.softmax(x_, 1), y_, classes=classes, per_image=per_image, ignore=ign),
        x, y,
    )
    paper = ref.lovasz_softmax(torch.softmax(x, 1), y, classes=classes, per_image=per_image, ignore=ign)
    assert value.dtype == torch.float64
    assert abs(float(value) - paper) <= 1e-6 * max(1.0, abs(paper))
    torch.testing.assert_close(value, exp_value, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(grad, exp_grad, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("ignore", [False, True])
def test_hinge_value_and_grad_match_loop_reference(per_image, ignore):
    x, y = _case((3, 1, 6, 5, 4), seed=1)
    y = torch.randint(0, 2, y.shape, generator=torch.Generator().manual_seed(2))
    ign = IGNORE if ignore else None
    if ignore:
        y[:, :, :2] = IGNORE
        y[2] = IGNORE  # a fully ignored image counts as 0 in the per-image mean
    value, grad = _grad(LovaszHingeLoss(per_image=per_image, ignore_index=ign), x, y)
    exp_value, exp_grad = _grad(
        lambda x_, y_: _autograd_loop(x_, y_, per_image=per_image, ignore=ign, hinge=True), x, y
    )
    paper = ref.lovasz_hinge(x, y, per_image=per_image, ignore=ign)
    assert abs(float(value) - paper) <= 1e-6 * max(1.0, abs(paper))
    torch.testing.assert_close(value, exp_value, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(grad, exp_grad, rtol=1e-6, atol=1e-9)


def test_probabilities_sigmoid_onehot_and_include_background():
    x, y = _case(absent=False)
    p = torch.softmax(x.detach(), 1)
    base = LovaszSoftmaxLoss(softmax=True, to_onehot_y=True)(x, y)
    assert torch.allclose(LovaszSoftmaxLoss(to_onehot_y=True)(p, y), base, rtol=1e-12)
    onehot = torch.nn.functional.one_hot(y[:, 0], 4).movedim(-1, 1).double()
    assert torch.allclose(LovaszSoftmaxLoss(softmax=True)(x, onehot), base, rtol=1e-12)
    sig = LovaszSoftmaxLoss(sigmoid=True, to_onehot_y=True, classes="all")(x, y).detach()
    assert abs(float(sig) - ref.lovasz_softmax(torch.sigmoid(x), y, classes="all")) < 1e-9
    no_bg = LovaszSoftmaxLoss(softmax=True, to_onehot_y=True, include_background=False, classes="all")(x, y).detach()
    assert abs(float(no_bg) - ref.lovasz_softmax(p, y, classes=[1, 2, 3])) < 1e-9


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_signed_rows_extreme_magnitudes(dtype):
    """Integer sort keys order every finite magnitude (tiny, huge, exact zeros) like the floats themselves."""
    from medloss.functional.lovasz import lovasz_signed_rows

    gen = torch.Generator().manual_seed(5)
    mag = torch.cat([torch.rand(40, generator=gen, dtype=torch.float64) * 10.0 ** torch.randint(-30, 30, (40,),
                     generator=gen), torch.zeros(8, dtype=torch.float64)])
    fg = torch.rand(48, generator=gen) < 0.4
    d = torch.where(fg, -mag, mag).to(dtype)
    grad, loss = lovasz_signed_rows(d[None].clone(), fg.sum()[None])
    errors = d.double().abs().requires_grad_()
    value = _extension(errors, fg.double())
    value.backward()
    torch.testing.assert_close(loss[0].double(), value.detach(), rtol=1e-6, atol=0)
    torch.testing.assert_close(grad[0].double(), errors.grad * torch.sign(d.double()), rtol=1e-6, atol=1e-30)


def test_chunking_does_not_change_result(monkeypatch):
    import medloss.functional.lovasz as F

    x, y = _case(ignore=True)
    loss = LovaszSoftmaxLoss(softmax=True, to_onehot_y=True, ignore_index=IGNORE, per_image=True, classes="all")
    full = _grad(loss, x, y)
    monkeypatch.setattr(F, "CHUNK_ELEMENTS", 1)  # one row at a time
    one = _grad(loss, x, y)
    for a, b in zip(full, one, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)


def test_gradcheck_float64():
    # Lovász is piecewise linear in the sorted order: random inputs have no ties (no kink within eps)
    x, y = _case((1, 3, 3, 3, 2), seed=3, absent=False)
    for kw in (dict(per_image=False), dict(per_image=True, classes="all")):
        loss = LovaszSoftmaxLoss(softmax=True, to_onehot_y=True, **kw)
        assert torch.autograd.gradcheck(lambda t, loss=loss: loss(t, y), (x.detach().requires_grad_(),), eps=1e-7,
                                        atol=1e-6)
    s = torch.randn(2, 1, 3, 3, 2, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 2, s.shape)
    assert torch.autograd.gradcheck(lambda v: LovaszHingeLoss()(v, t), (s,), eps=1e-7, atol=1e-6)


# ----------------------------------------------------------------------------- precision
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_close_to_float32(dtype):
    x, y = _case((1, 3, 32, 32, 32), seed=4, dtype=torch.float32, absent=False)
    x16 = x.detach().to(dtype).requires_grad_()
    loss = LovaszSoftmaxLoss(softmax=True, to_onehot_y=True)
    out16 = loss(x16, y)
    out16.backward()
    out32 = loss(x16.detach().float(), y)  # same (rounded) logits in float32
    assert out16.dtype == dtype and torch.isfinite(out16)
    assert abs(float(out16.detach()) - float(out32.detach())) < 1e-2
    assert x16.grad.dtype == dtype and torch.isfinite(x16.grad).all() and x16.grad.abs().sum() > 0
    hinge = LovaszHingeLoss()(x16[:, :1], (y > 0).long())
    assert hinge.dtype == dtype and torch.isfinite(hinge)


def test_float32_matches_float64_on_a_large_problem():
    """1M voxels per problem: float32 value and gradient stay within 1e-5 of float64 (sums and J-differences are
    the places where a naive float32 implementation loses digits)."""
    x, y = _case((1, 2, 128, 128, 64), seed=6, dtype=torch.float32, absent=False)
    loss = LovaszSoftmaxLoss(softmax=True, to_onehot_y=True, classes="all")
    v32, g32 = _grad(loss, x, y)
    v64, g64 = _grad(loss, x.double(), y)
    assert abs(float(v32) - float(v64)) <= 1e-5 * abs(float(v64))
    assert float((g32.double() - g64).abs().max()) <= 1e-5 * float(g64.abs().max())


# ----------------------------------------------------------------------------- ignore invariance
def test_ignored_voxels_change_nothing():
    x, y = _case(ignore=True)
    ignored = (y == IGNORE).expand_as(x)
    x2 = torch.where(ignored, torch.randn_like(x) * 10, x).detach()
    y2 = torch.where(y == IGNORE, y, y)  # same labels; now change the logits at ignored voxels only
    for kw in (dict(per_image=False), dict(per_image=True, classes="all"), dict(classes=[1, 2])):
        loss = LovaszSoftmaxLoss(softmax=True, to_onehot_y=True, ignore_index=IGNORE, **kw)
        (v1, g1), (v2, g2) = _grad(loss, x, y), _grad(loss, x2, y2)
        torch.testing.assert_close(v1, v2, rtol=1e-12, atol=1e-15)
        assert (g2[ignored] == 0).all()
        torch.testing.assert_close(g1[~ignored], g2[~ignored], rtol=1e-12, atol=1e-15)
    # one-hot target: a voxel is ignored where any channel holds ignore_index; its other channels do not matter
    onehot = torch.nn.functional.one_hot(y[:, 0].clamp(max=3), 4).movedim(-1, 1).double()
    onehot = onehot.masked_fill(ignored, 0.0)
    onehot2 = torch.where(ignored, torch.rand_like(onehot), onehot)
    onehot[:, :1] = onehot[:, :1].masked_fill(y == IGNORE, IGNORE)
    onehot2[:, :1] = onehot2[:, :1].masked_fill(y == IGNORE, IGNORE)
    loss = LovaszSoftmaxLoss(softmax=True, ignore_index=IGNORE)
    (v1, g1), (v2, g2) = _grad(loss, x, onehot), _grad(loss, x2, onehot2)
    torch.testing.assert_close(v1, v2, rtol=1e-12, atol=1e-15)
    label_map_value = LovaszSoftmaxLoss(softmax=True, to_onehot_y=True, ignore_index=IGNORE)(x, y).detach()
    torch.testing.assert_close(v1, label_map_value)
    assert (g2[ignored] == 0).all()
    s, t = x[:, :1].detach(), (y > 1).long().masked_fill(y == IGNORE, IGNORE)
    s2 = torch.where(t == IGNORE, -s * 5, s)
    hinge = LovaszHingeLoss(ignore_index=IGNORE)
    (v1, g1), (v2, g2) = _grad(hinge, s, t), _grad(hinge, s2, t)
    torch.testing.assert_close(v1, v2, rtol=1e-12, atol=1e-15)
    assert (g2[t == IGNORE] == 0).all()


# ----------------------------------------------------------------------------- reductions
@pytest.mark.parametrize("per_image", [False, True])
def test_reduction_none_shapes_and_consistency(per_image):
    x, y = _case(ignore=True)
    kw = dict(softmax=True, to_onehot_y=True, ignore_index=IGNORE, per_image=per_image)
    table = LovaszSoftmaxLoss(reduction="none", **kw)(x, y)
    assert table.shape == ((2, 4) if per_image else (1, 4)) and torch.isfinite(table).all()
    if per_image:
        assert table[0, 3] == 0  # class 3 is absent from image 0: excluded ('present'), entry 0
    total = LovaszSoftmaxLoss(reduction="sum", **kw)(x, y)
    torch.testing.assert_close(total, table.sum())
    no_bg = LovaszSoftmaxLoss(reduction="none", include_background=False, **kw)(x, y)
    torch.testing.assert_close(no_bg, table[:, 1:])
    hinge = LovaszHingeLoss(per_image=per_image, reduction="none")(x[:, :1], (y == 1).long())
    assert hinge.shape == ((2, 1) if per_image else (1, 1))


def test_empty_selection_is_zero_with_zero_gradient():
    x, y = _case(ignore=False)
    value, grad = _grad(LovaszSoftmaxLoss(softmax=True, to_onehot_y=True, ignore_index=IGNORE), x, y * 0 + IGNORE)
    assert value == 0 and (grad == 0).all()


# ----------------------------------------------------------------------------- errors
X = torch.randn(2, 3, 4, 4, 4)
Y = torch.randint(0, 3, (2, 1, 4, 4, 4))

ERROR_CASES = [
    ("logits-no-activation", dict(to_onehot_y=True), X, Y, InputRangeError, r"`input`.*softmax=True"),
    ("label-map-without-onehot", dict(softmax=True), X, Y, ShapeMismatchError, r"to_onehot_y=True"),
    ("soft-target", dict(softmax=True), X, torch.full_like(X, 1 / 3), LabelValueError, r"`target`.*one-hot"),
    ("label-too-large", dict(softmax=True, to_onehot_y=True), X, Y + 1, LabelValueError, r"`target`"),
    ("shape", dict(softmax=True, to_onehot_y=True), X, Y[..., :3], ShapeMismatchError, r"`target`"),
    ("one-channel", dict(sigmoid=True, to_onehot_y=True), X[:, :1], Y.clamp(max=1), ShapeMismatchError,
     r"`input`.*LovaszHingeLoss"),
    ("class-out-of-range", dict(softmax=True, to_onehot_y=True, classes=[1, 5]), X, Y, InvalidOptionError,
     r"`classes`"),
    ("nan", dict(softmax=True, to_onehot_y=True), X * float("nan"), Y, InputRangeError, r"`input`.*NaN"),
]


@pytest.mark.parametrize("case_id,kw,inp,target,exc,pattern", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_bad_input_raises_typed_error(case_id, kw, inp, target, exc, pattern):
    with pytest.raises(exc, match=pattern) as info:
        LovaszSoftmaxLoss(**kw)(inp, target)
    assert isinstance(info.value, MedlossError)


@pytest.mark.parametrize(
    "kw,pattern",
    [
        (dict(classes="presnt"), r"`classes`.*Did you mean 'present'"),
        (dict(classes=[1, 1]), r"`classes`.*twice"),
        (dict(classes=[]), r"`classes`"),
        (dict(reduction="avg"), r"`reduction`"),
        (dict(softmax=True, sigmoid=True), r"`sigmoid`, `softmax`"),
        (dict(classes=[0, 1], include_background=False), r"`classes`.*include_background"),
    ],
)
def test_bad_options_raise(kw, pattern):
    with pytest.raises(InvalidOptionError, match=pattern):
        LovaszSoftmaxLoss(**kw)


def test_hinge_errors():
    with pytest.raises(ShapeMismatchError, match=r"`input`.*LovaszSoftmaxLoss"):
        LovaszHingeLoss()(X, Y)
    with pytest.raises(LabelValueError, match=r"`target`"):
        LovaszHingeLoss()(X[:, :1], Y + 1)
    with pytest.raises(InputRangeError, match=r"`input`.*NaN"):
        LovaszHingeLoss()(X[:, :1] * float("nan"), Y.clamp(max=1))


# ----------------------------------------------------------------------------- MONAI config
def test_monai_config_parser_instantiation():
    monai_bundle = pytest.importorskip("monai.bundle")
    config = {
        "loss": {
            "_target_": "medloss.losses.lovasz.LovaszSoftmaxLoss",
            "softmax": True,
            "to_onehot_y": True,
            "classes": "all",
            "per_image": True,
            "ignore_index": IGNORE,
        },
        "hinge": {"_target_": "medloss.losses.lovasz.LovaszHingeLoss", "per_image": False},
    }
    parser = monai_bundle.ConfigParser(config)
    loss = parser.get_parsed_content("loss")
    assert isinstance(loss, LovaszSoftmaxLoss) and loss.classes == "all" and loss.per_image
    assert isinstance(parser.get_parsed_content("hinge"), LovaszHingeLoss)
    x, y = _case(ignore=True)
    assert torch.isfinite(loss(x, y))


def test_all_combinations_run_on_2d_input():
    x, y = _case((2, 3, 8, 9), absent=False)
    for classes, per_image in itertools.product(["present", "all", [2]], [False, True]):
        out = LovaszSoftmaxLoss(classes=classes, per_image=per_image, softmax=True, to_onehot_y=True)(x, y)
        exp = ref.lovasz_softmax(torch.softmax(x, 1), y, classes=classes, per_image=per_image)
        assert abs(float(out.detach()) - exp) < 1e-9
