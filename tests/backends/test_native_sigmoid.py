"""The compiled kernel's sigmoid side (medloss/functional/_sigmoid_body.h) against the eager implementation.

Region tables (label maps and dense binary targets, one or several channels), BCE (soft targets, pos_weight,
ignore), sigmoid focal (alpha scalar/per class, weights, reductions) and the sigmoid compounds must equal the eager
path in value and gradient (float64 1e-10, float32 1e-5), the kernel must actually run where it is meant to (a spy
counts its calls), and inputs it declines (soft targets for focal) must fall back.
"""
from __future__ import annotations

import pytest
import torch

import medloss.losses as L
from medloss.backends import cpu as native
from medloss.backends.op import TableOptions, tables
from medloss.errors import InputRangeError, LabelValueError
from medloss.functional.stats import region_stats, sigmoid_tables
from tests._helpers import native_case as _case

pytestmark = pytest.mark.skipif(not native.available(), reason="compiled kernel not built")


@pytest.fixture(autouse=True)
def _kernel_on(monkeypatch):
    """These tests are about the kernel: on even when the environment turns it off for the rest of the suite."""
    monkeypatch.setenv("MEDLOSS_NATIVE", "1")


def _sigmoid_stats(engine, x, target, monkeypatch, **kw):
    monkeypatch.setenv("MEDLOSS_NATIVE", "1" if engine == "cpu" else "0")
    xg = x.detach().clone().requires_grad_()
    stats = region_stats(xg, target, sigmoid=True, **kw)
    gen = torch.Generator().manual_seed(3)
    w = [torch.rand(t.shape, generator=gen, dtype=torch.float64).to(t.dtype) for t in stats[:2]]
    (grad,) = torch.autograd.grad(sum((t * wi).sum() for t, wi in zip(stats[:2], w, strict=True)), xg)
    return [t.detach() for t in stats], grad


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-10), (torch.float32, 1e-5)], ids=["f64", "f32"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("layout", ["label-map", "dense"])
@pytest.mark.parametrize("squared", [False, True], ids=["linear", "squared"])
@pytest.mark.parametrize("ignore", [None, 255], ids=["all", "ignore"])
def test_sigmoid_native_equals_eager(dtype, rtol, channels, layout, squared, ignore, monkeypatch):
    x, y = _case((2, channels, 9, 10, 11), dtype, ignore=ignore)
    if channels == 1:
        y = torch.where(y == 255, y, (y > 0).long()) if ignore else y.clamp(max=1)
    kw = dict(ignore_index=ignore, squared_pred=squared, include_background=True)
    if layout == "dense":
        hot = torch.nn.functional.one_hot(y[:, 0].clamp(0, max(channels, 2) - 1), max(channels, 2)).movedim(-1, 1)
        target = (hot[:, 1:] if channels == 1 else hot).to(dtype)
        if ignore is not None:
            target = target.masked_fill((y == ignore).expand_as(target), float(ignore))
    else:
        target, kw = y, dict(kw, to_onehot_y=True)
    options = TableOptions(activation="sigmoid", dense=layout == "dense")
    assert native.takes(x.reshape(2, channels, -1), target.reshape(2, -1, x[0, 0].numel()), options)
    t1, g1 = _sigmoid_stats("cpu", x, target, monkeypatch, **kw)
    t2, g2 = _sigmoid_stats("eager", x, target, monkeypatch, **kw)
    for name, a, b in zip(("TP", "PRED", "TARGET", "VOXELS"), t1, t2, strict=True):
        torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * float(b.abs().max()) + 1e-30, msg=name)
    torch.testing.assert_close(g1, g2, rtol=rtol, atol=rtol * float(g2.abs().max()))


def test_sigmoid_gradcheck():
    x, y = _case((2, 3, 2, 2, 3), torch.float64, ignore=7)
    x.requires_grad_()
    dense = torch.nn.functional.one_hot(y[:, 0].clamp(0, 2), 3).movedim(-1, 1).double()
    for target, is_dense in ((y.reshape(2, 1, -1), False), (dense.reshape(2, 3, -1), True)):
        for squared in (False, True):
            def f(inp, squared=squared, is_dense=is_dense, target=target):
                options = TableOptions(ignore_index=7, squared=squared, activation="sigmoid", dense=is_dense)
                out = tables(inp.reshape(2, 3, -1), target, options, "cpu")
                return out.tp, out.pred
            assert torch.autograd.gradcheck(f, (x,), fast_mode=True)


def test_sigmoid_bad_input_raises():
    x, y = _case((1, 2, 5, 5, 5), torch.float32)
    dense = torch.nn.functional.one_hot(y[:, 0], 2).movedim(-1, 1).float()
    dense[0, 1, 0, 0, 0] = 0.5  # fractional without soft_label
    with pytest.raises(LabelValueError, match="fractional"):
        L.DiceLoss(sigmoid=True)(x, dense)
    with pytest.raises(LabelValueError):
        L.DiceLoss(sigmoid=True, to_onehot_y=True)(x, y + 1)  # label 2 with 2 channels
    x[0, 0, 1, 1, 1] = float("nan")
    with pytest.raises(InputRangeError):
        L.DiceLoss(sigmoid=True, to_onehot_y=True)(x, y)


def test_sigmoid_fallbacks():
    """Soft labels and unchecked dense targets stay on the eager path (used as given)."""
    x, y = _case((1, 2, 5, 5, 5), torch.float32)
    soft = torch.rand(1, 2, 5, 5, 5)
    assert sigmoid_tables(x, soft.requires_grad_(), to_onehot_y=False, ignore_index=None, voxel_term=None) is None
    a = L.DiceLoss(sigmoid=True, soft_label=True)(x, soft.detach())
    b = L.DiceLoss(sigmoid=True, check_input=False)(x, soft.detach())
    assert torch.isfinite(a) and torch.isfinite(b)


def _loss_both_engines(make_loss, x, target, monkeypatch, *, expect_kernel=True):
    """(value, grad) with the kernel and with the eager path; checks that the kernel really ran."""
    calls = []
    forward = native.forward

    def spy(logits, target, options):
        calls.append(options.activation)
        return forward(logits, target, options)

    monkeypatch.setattr(native, "forward", spy)
    out = []
    for engine in ("1", "0"):
        monkeypatch.setenv("MEDLOSS_NATIVE", engine)
        xg = x.detach().clone().requires_grad_()
        value = make_loss()(xg, target)
        (grad,) = torch.autograd.grad(value, xg)
        out.append((value.detach(), grad))
    assert bool(calls) == expect_kernel
    return out


def _binary_targets(shape, dtype, *, soft=False, ignore=None, seed=5):
    gen = torch.Generator().manual_seed(seed)
    t = torch.rand(shape, generator=gen, dtype=torch.float64)
    t = t if soft else (t > 0.7).double()
    if ignore is not None:
        t[..., :2] = ignore
    return t.to(dtype)


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-10), (torch.float32, 1e-5)], ids=["f64", "f32"])
@pytest.mark.parametrize("case", [
    dict(C=1), dict(C=1, ignore=255), dict(C=1, soft=True), dict(C=3), dict(C=3, soft=True, reduction="sum"),
    dict(C=3, pos_weight=[0.5, 2.0, 3.0]), dict(C=1, ignore=-1, pos_weight=[4.0], reduction="sum"),
], ids=str)
def test_bce_native_equals_eager(case, dtype, rtol, monkeypatch):
    c = case["C"]
    x = _case((2, c, 7, 8, 9), dtype)[0]
    t = _binary_targets(x.shape, dtype, soft=case.get("soft", False), ignore=case.get("ignore"))
    pw = torch.tensor(case["pos_weight"], dtype=dtype) if "pos_weight" in case else None
    (v1, g1), (v2, g2) = _loss_both_engines(
        lambda: L.BCELoss(pos_weight=pw, ignore_index=case.get("ignore"), reduction=case.get("reduction", "mean")),
        x, t, monkeypatch)
    torch.testing.assert_close(v1, v2, rtol=rtol, atol=0)
    torch.testing.assert_close(g1, g2, rtol=rtol, atol=rtol * float(g2.abs().max()))


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-10), (torch.float32, 1e-5)], ids=["f64", "f32"])
@pytest.mark.parametrize("case", [
    dict(C=1), dict(C=1, gamma=0.5, alpha=0.25), dict(C=3, alpha=0.25, reduction="sum"),
    dict(C=3, onehot=True, include_background=False, alpha=[0.3, 0.7], weight=[2.0, 0.5]),
    dict(C=3, onehot=True, ignore=255, gamma=0.0), dict(C=1, onehot=True, ignore=-1, gamma=3.0),
    dict(C=3, ignore=255, weight=1.5, reduction="sum"),
], ids=str)
def test_sigmoid_focal_native_equals_eager(case, dtype, rtol, monkeypatch):
    c = case["C"]
    x, y = _case((2, c, 7, 8, 9), dtype, ignore=case.get("ignore"))
    if case.get("onehot"):  # label map, one-hot inside the loss
        target = y if c > 1 else torch.where(y == case.get("ignore", -7), y, (y > 0).long())
        if c == 1:
            target = torch.where(_case((2, 1, 7, 8, 9), dtype, seed=9)[1] > 0, 1, 0).masked_fill(y == -1, -1)
    else:
        target = _binary_targets(x.shape, dtype, ignore=case.get("ignore"))
    opts = {k: v for k, v in case.items() if k in ("gamma", "alpha", "include_background", "reduction")}
    if "weight" in case:
        opts["weight"] = case["weight"] if isinstance(case["weight"], float) else torch.tensor(case["weight"])
    (v1, g1), (v2, g2) = _loss_both_engines(
        lambda: L.FocalLoss(to_onehot_y=bool(case.get("onehot")), ignore_index=case.get("ignore"), **opts),
        x, target, monkeypatch)
    torch.testing.assert_close(v1, v2, rtol=rtol, atol=0)
    torch.testing.assert_close(g1, g2, rtol=rtol, atol=rtol * float(g2.abs().max()))


def test_sigmoid_focal_soft_targets_fall_back(monkeypatch):
    """Fractional targets: the kernel declines the focal term and the eager path (which accepts them) runs."""
    x = _case((1, 2, 6, 6, 6), torch.float64)[0]
    t = _binary_targets(x.shape, torch.float64, soft=True)
    (v1, g1), (v2, g2) = _loss_both_engines(lambda: L.FocalLoss(), x, t, monkeypatch)
    torch.testing.assert_close(v1, v2, rtol=1e-12, atol=0)
    torch.testing.assert_close(g1, g2, rtol=1e-12, atol=1e-15)


def test_bce_bad_target_message():
    x = _case((1, 1, 5, 5, 5), torch.float32)[0]
    t = _binary_targets(x.shape, torch.float32)
    t[0, 0, 0, 0, 0] = 3.0
    with pytest.raises(LabelValueError, match=r"values must lie in \[0, 1\].*ignore_index"):
        L.BCELoss()(x, t)


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-10), (torch.float32, 1e-5)], ids=["f64", "f32"])
@pytest.mark.parametrize("name,make,layout", [
    ("bcedice-c1-ignore", lambda: L.BCEDiceLoss(ignore_index=255, pos_weight=[2.0]), "dense1"),
    ("bcedice-c3-sq-batch", lambda: L.BCEDiceLoss(squared_pred=True, batch=True, reduction="sum"), "dense3"),
    ("bcedice-c3-nobg", lambda: L.BCEDiceLoss(include_background=False), "dense3"),
    ("dicefocal-sigmoid-map", lambda: L.DiceFocalLoss(sigmoid=True, to_onehot_y=True, alpha=0.25), "map3"),
    ("dicefocal-sigmoid-dense-nobg", lambda: L.DiceFocalLoss(sigmoid=True, include_background=False, gamma=0.5,
                                                              ignore_index=255), "dense3-ignore"),
    ("gdl-focal-sigmoid", lambda: L.GeneralizedDiceFocalLoss(sigmoid=True, to_onehot_y=True), "map3"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_sigmoid_compounds_native_equals_eager(name, make, layout, dtype, rtol, monkeypatch):
    c = 1 if layout == "dense1" else 3
    x, y = _case((2, c, 7, 8, 9), dtype)
    if layout.startswith("dense"):
        target = _binary_targets(x.shape, dtype, ignore=255 if "ignore" in name or "ignore" in layout else None)
    else:
        target = y
    (v1, g1), (v2, g2) = _loss_both_engines(make, x, target, monkeypatch)
    torch.testing.assert_close(v1, v2, rtol=rtol, atol=0)
    torch.testing.assert_close(g1, g2, rtol=rtol, atol=rtol * float(g2.abs().max()))


@pytest.mark.parametrize("dtype", [torch.int16, torch.uint8, torch.bool, torch.int64])
@pytest.mark.parametrize("ignore", [None, 255])
def test_integer_dense_targets_stay_on_the_kernel_with_the_float_targets_numbers(dtype, ignore):
    from medloss import backends

    if ignore is not None and dtype in (torch.bool, torch.int64):
        pytest.skip("bool cannot hold 255; int64 is covered without it")
    gen = torch.Generator().manual_seed(11)
    channels = 1 if ignore is not None else 3  # BCE+Dice takes the fused tables with ignore_index for one channel
    x = torch.randn(2, channels, 6, 5, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(2, channels, 6, 5, 4, generator=gen) > 0.6
    target = mask.to(dtype)
    if ignore is not None:
        target[:, :, :2] = ignore
    options = TableOptions(activation="sigmoid", dense=True, ignore_index=ignore)
    assert backends.engine_for(x.detach().flatten(2), target.flatten(2), options) == "cpu"
    loss = L.BCEDiceLoss(batch=True, ignore_index=ignore)
    value, = torch.autograd.grad(loss(x, target), x)
    reference, = torch.autograd.grad(loss(x, target.double()), x)
    torch.testing.assert_close(value, reference, rtol=0, atol=0)
    torch.testing.assert_close(loss(x, target), loss(x, target.double()), rtol=0, atol=0)


def test_integer_dense_targets_outside_zero_one_are_a_typed_error():
    x = torch.randn(1, 2, 4, 4, 4)
    with pytest.raises(LabelValueError):
        L.BCEDiceLoss()(x, torch.full((1, 2, 4, 4, 4), 2, dtype=torch.int16))
