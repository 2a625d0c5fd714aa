"""The Triton sigmoid-table kernels (medloss/backends/triton/sigmoid.py) against the eager engine, on CPU under
the Triton interpreter (tests/conftest.py turns it on without a CUDA device; on a GPU the same tests run the
compiled kernels on CUDA tensors).

The eager engine is held to plain per-voxel sums and gradcheck (test_eager_sigmoid.py) and to MONAI through the
losses; here the kernels must give its tables and gradient for label maps (C = 1 and padded C), dense binary and
soft targets, voxel-wise ignore, squared denominators, BCE and focal terms, half-precision logits, saturated logits
and any label dtype; raise the same typed errors when checking; read nothing back when not checking."""
from __future__ import annotations

import pytest
import torch

import medloss.losses as L
from medloss.backends import triton as triton_tables
from medloss.backends.op import TableOptions, tables
from medloss.backends.triton import status
from medloss.errors import InputRangeError, LabelValueError

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
pytestmark = pytest.mark.skipif(
    not triton_tables.available() or (DEVICE == "cpu" and not triton_tables.interpreted()),
    reason="needs Triton (and a CUDA device or TRITON_INTERPRET=1)",
)
B = 2


def _checked(call):
    """Run a checked call; on CUDA its input errors surface at a later call or at check_pending (no host sync)."""
    out = call()
    if DEVICE == "cuda":
        status.check_pending()
    return out


def _case(channels, layout, n=45, dtype=torch.float64, label_dtype=torch.int64, scale=3.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(B, channels, n, generator=gen, dtype=torch.float64) * scale).to(dtype)
    if layout == "map":
        target = torch.randint(0, max(channels, 2), (B, 1, n), generator=gen)
        target[:, :, :3] = 255
        return x, target.to(label_dtype)
    g = torch.rand(B, channels, n, generator=gen, dtype=torch.float64)
    g = g if layout == "soft" else (g > 0.6).double()
    g[:, :, :3] = 255.0
    return x, g.to(dtype if dtype != torch.float64 else torch.float64)


def _run(engine, x, target, options):
    """Tables and d(sum_i w_i * table_i)/dx for fixed weights w."""
    xf = x.detach().to(DEVICE).requires_grad_()
    out = tables(xf, target.to(DEVICE), options, engine)
    gen = torch.Generator().manual_seed(1)
    weights = [torch.rand(o.shape, generator=gen, dtype=torch.float64).to(o.dtype).to(DEVICE) for o in out]
    total = sum((o * w).sum() for o, w in zip(out, weights, strict=True) if o.requires_grad)
    (grad,) = torch.autograd.grad(total, xf)
    return [o.detach().cpu().double() for o in out], grad.cpu().double()


def _close(got, ref, rtol):
    for a, b in zip(got[0], ref[0], strict=True):
        torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * (1 + float(b.abs().max())))
    scale = float(ref[1].abs().max()) or 1.0
    torch.testing.assert_close(got[1], ref[1], rtol=rtol, atol=rtol * scale)


def _options(layout, **kw):
    return TableOptions(activation="sigmoid", dense=layout != "map", soft=layout == "soft", **kw)


TERMS = [(None, 0.0), ("bce", 0.0), ("focal", 2.0), ("focal", 0.5), ("focal", 0.0)]


@pytest.mark.parametrize("voxel_term,gamma", TERMS, ids=str)
@pytest.mark.parametrize("squared", [False, True], ids=["linear", "squared"])
@pytest.mark.parametrize("channels,layout", [(1, "map"), (3, "map"), (5, "map"), (3, "dense"), (1, "dense"),
                                             (3, "soft")])
def test_float64_equals_eager(channels, layout, voxel_term, gamma, squared):
    x, t = _case(channels, layout)
    options = _options(layout, ignore_index=255, squared=squared, voxel_term=voxel_term, gamma=gamma)
    _close(_run("triton", x, t, options), _run("eager", x, t, options), 1e-10)


@pytest.mark.parametrize("voxel_term,gamma", [("bce", 0.0), ("focal", 2.0)], ids=str)
@pytest.mark.parametrize("layout", ["map", "soft"])
def test_float32_and_block_tails(layout, voxel_term, gamma):
    """float32 within 1e-5 of the float64 eager result, N spanning several blocks with a tail."""
    x, t = _case(3, layout, n=3000 + 7)
    options = _options(layout, voxel_term=voxel_term, gamma=gamma, ignore_index=255)
    ref = _run("eager", x, t, options)
    _close(_run("triton", x.float(), t.float() if layout != "map" else t, options), ref, 1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_logits_are_read_natively(dtype):
    """float32 tables of the half-precision values (within 1e-5 of float64), the gradient in the logits' dtype
    (within its rounding of the eager engine's, which computes in float32 too)."""
    x, t = _case(3, "map", dtype=dtype)
    options = _options("map", voxel_term="focal", gamma=2.0, ignore_index=255)
    tables_got, grad_got = _run("triton", x, t, options)
    tables_ref, _ = _run("eager", x.double(), t, options)  # the same half-precision values, in float64
    _close((tables_got, torch.zeros(1)), (tables_ref, torch.zeros(1)), 1e-5)
    _, grad_ref = _run("eager", x, t, options)
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(grad_got, grad_ref, rtol=2 * eps, atol=2 * eps * float(grad_ref.abs().max()))


@pytest.mark.parametrize("label_dtype", [torch.uint8, torch.int32, torch.float32])
def test_label_dtypes(label_dtype):
    x, t = _case(3, "map", label_dtype=label_dtype)
    options = _options("map", voxel_term="bce", ignore_index=255)
    _close(_run("triton", x, t, options), _run("eager", x, t.long(), options), 1e-10)


def test_saturated_logits_stay_finite_and_exact():
    x, t = _case(3, "dense", scale=40.0)
    options = _options("dense", voxel_term="focal", gamma=2.0, squared=True, ignore_index=255)
    got = _run("triton", x, t, options)
    assert all(torch.isfinite(o).all() for o in got[0]) and torch.isfinite(got[1]).all()
    _close(got, _run("eager", x, t, options), 1e-10)


@pytest.mark.parametrize("layout,voxel_term", [("map", "bce"), ("dense", "focal")])
def test_grid_stride_forward_sums_many_tiles_per_program(layout, voxel_term, monkeypatch):
    """Fewer forward programs than tiles: each sums several (and the tail) in registers; same tables as eager."""
    from medloss.backends.triton import sigmoid

    monkeypatch.setattr(triton_tables, "PROGRAMS", 6)
    sigmoid._plan.cache_clear()
    try:
        x, t = _case(3, layout, n=5 * 1024 + 9)
        options = _options(layout, voxel_term=voxel_term, gamma=2.0, ignore_index=255)
        _close(_run("triton", x, t, options), _run("eager", x, t, options), 1e-10)
    finally:
        sigmoid._plan.cache_clear()


def test_bad_input_raises_typed_errors_when_checking():
    x, t = _case(3, "map")
    with pytest.raises(LabelValueError):
        _checked(lambda: tables(x.to(DEVICE), t.masked_fill(t == 1, 7).to(DEVICE), _options("map", ignore_index=255),
                                "triton"))
    bad = x.clone()
    bad[0, 1, 5] = float("nan")
    with pytest.raises(InputRangeError):
        _checked(lambda: tables(bad.to(DEVICE), t.to(DEVICE), _options("map", ignore_index=255), "triton"))
    xs, soft = _case(3, "soft")
    dense = TableOptions(ignore_index=255, activation="sigmoid", dense=True)
    with pytest.raises(LabelValueError, match="fractional"):
        _checked(lambda: tables(xs.to(DEVICE), soft.to(DEVICE), dense, "triton"))
    out_of_range = soft.masked_fill(soft > 0.9, 2.0)
    with pytest.raises(LabelValueError, match=r"\[0, 1\]"):
        _checked(lambda: tables(xs.to(DEVICE), out_of_range.to(DEVICE),
                                _options("soft", voxel_term="bce", ignore_index=255), "triton"))


def test_without_check_nothing_is_read_and_bad_labels_count_nowhere(monkeypatch):
    x, t = _case(3, "map")
    t = t.masked_fill(t == 1, 7)  # out of range: counts nowhere, as on the eager engine
    options = _options("map", voxel_term="focal", gamma=2.0, check=False)
    ref = _run("eager", x, t, options)

    def forbidden(*_args, **_kwargs):
        raise AssertionError("host read of a tensor value")

    for attr in ("item", "__bool__", "__float__", "__int__", "tolist"):
        monkeypatch.setattr(torch.Tensor, attr, forbidden)
    got = _run("triton", x, t, options)
    monkeypatch.undo()
    _close(got, ref, 1e-10)


def test_takes_only_what_it_can():
    x, t = _case(3, "map", dtype=torch.float32)
    xd, td = (v.to(DEVICE) for v in (x, t))
    assert triton_tables.takes(xd, td, _options("map"))
    assert not triton_tables.takes(xd.transpose(1, 2), td, _options("map"))  # non-contiguous
    assert not triton_tables.takes(xd, td.bool(), _options("map"))  # bool labels
    assert not triton_tables.takes(xd, td, _options("dense"))  # a dense target needs the logits' shape


@pytest.mark.parametrize("make,layout", [
    (lambda: L.DiceLoss(sigmoid=True, to_onehot_y=True), "map"),
    (lambda: L.BCELoss(), "soft"),
    (lambda: L.BCEDiceLoss(squared_pred=True), "dense"),
    (lambda: L.FocalLoss(alpha=0.25), "soft"),
    (lambda: L.DiceFocalLoss(sigmoid=True, to_onehot_y=True, ignore_index=255), "map"),
], ids=["dice", "bce", "bce-dice", "focal", "dice-focal"])
def test_losses_equal_on_triton_and_eager(make, layout, monkeypatch):
    x, t = _case(3, layout, n=6 * 6 * 6, dtype=torch.float32)
    x, t = x.reshape(B, 3, 6, 6, 6), t.reshape(B, -1, 6, 6, 6)
    t = t.masked_fill(t == 255, 0) if not isinstance(make(), L.DiceFocalLoss) else t
    from medloss.backends.triton import fused

    calls, out = [], []
    forward, fused_loss = triton_tables.forward, fused.loss  # the engine's tables, or its fused losses
    monkeypatch.setattr(triton_tables, "forward", lambda *a: calls.append(1) or forward(*a))
    monkeypatch.setattr(fused, "loss", lambda *a: calls.append(1) or fused_loss(*a))
    for engine in ("triton", "eager"):
        monkeypatch.setenv("MEDLOSS_BACKEND", engine)
        xg = x.detach().to(DEVICE).requires_grad_()
        value = make()(xg, t.to(DEVICE))
        (grad,) = torch.autograd.grad(value, xg)
        out.append((value.detach().cpu(), grad.cpu()))
    assert calls, "the Triton engine did not run"
    torch.testing.assert_close(out[0][0], out[1][0], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(out[0][1], out[1][1], rtol=1e-5, atol=1e-5 * float(out[1][1].abs().max()))
