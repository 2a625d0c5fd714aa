"""The Triton softmax-table kernels against the eager implementation (on CPU under the Triton interpreter).

The eager engine (``medloss.backends.eager.softmax``) is held to the one-hot path and MONAI
(tests/functional/test_fused.py); here the Triton kernels must give its tables and gradient for every option, label
dtype, class count (padded tiles), block tails, half-precision logits and saturated logits; raise the same typed errors
on bad input when checking; skip invalid labels without a host read when not checking; and be deterministic.
tests/conftest.py turns the interpreter on when there is no CUDA device; on a GPU the same tests run the compiled
kernels on CUDA tensors.
"""
from __future__ import annotations

import math

import pytest
import torch

from medloss.backends import triton as triton_tables
from medloss.backends.options import TableOptions
from medloss.backends.triton import status
from medloss.errors import InputRangeError, LabelValueError
from tests._helpers import native_case as _case
from tests._helpers import softmax_tables

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
pytestmark = pytest.mark.skipif(
    not triton_tables.available() or (DEVICE == "cpu" and not triton_tables.interpreted()),
    reason="needs Triton (and a CUDA device or TRITON_INTERPRET=1)",
)

NO_CLAMP = (-math.inf, math.inf)
EXPLOG_CLAMP = (math.log(1e-5), math.log1p(-1e-5))
ANATOMYNET_CLAMP = (math.log(1e-6), math.inf)


def _tables(engine, x, y, ignore, squared, voxel_term, gamma, log_clamp=NO_CLAMP, check=True):
    """Tables and d(sum_i w_i * table_i)/dx for fixed random weights w."""
    b, c = x.shape[:2]
    xf = x.detach().reshape(b, c, -1).to(DEVICE).requires_grad_()
    lab = y.reshape(b, 1, -1).to(DEVICE)
    out = softmax_tables(xf, lab, engine, TableOptions(ignore, squared, voxel_term, gamma, log_clamp, check=check))
    gen = torch.Generator().manual_seed(1)
    weights = [torch.rand(b, c, generator=gen, dtype=torch.float64).to(out[0].dtype).to(DEVICE) for _ in out]
    total = sum((o * w).sum() for o, w in zip(out, weights, strict=True) if o.requires_grad)
    (grad,) = torch.autograd.grad(total, xf)
    return [o.detach().cpu() for o in out], grad.cpu()


def _checked(call):
    """Run a checked call; on CUDA its input errors surface at a later call or at check_pending (no host sync)."""
    out = call()
    if DEVICE == "cuda":
        status.check_pending()
    return out


def _close(got, ref, rtol):
    (tg, gg), (tr, gr) = got, ref
    for a, b in zip(tg, tr, strict=True):
        torch.testing.assert_close(a.double(), b.double(), rtol=rtol, atol=rtol * (1 + float(b.abs().max())))
    scale = float(gr.abs().max()) or 1.0
    torch.testing.assert_close(gg.double(), gr.double(), rtol=rtol, atol=rtol * scale)


TERMS = [(None, 0.0, NO_CLAMP), ("ce", 0.0, NO_CLAMP), ("focal", 2.0, NO_CLAMP), ("focal", 0.5, NO_CLAMP),
         ("focal", 0.0, NO_CLAMP), ("focal", 1.0, ANATOMYNET_CLAMP), ("explog", 0.3, EXPLOG_CLAMP),
         ("explog", 1.0, EXPLOG_CLAMP)]


@pytest.mark.parametrize("voxel_term,gamma,log_clamp", TERMS, ids=lambda v: str(v))
@pytest.mark.parametrize("squared", [False, True], ids=["linear", "squared"])
@pytest.mark.parametrize("ignore", [None, 255], ids=["all", "ignore"])
def test_float64_equals_eager(voxel_term, gamma, log_clamp, squared, ignore):
    x, y = _case((2, 3, 9, 7, 5), torch.float64, ignore=ignore)
    ref = _tables("eager", x, y, ignore, squared, voxel_term, gamma, log_clamp)
    got = _tables("triton", x, y, ignore, squared, voxel_term, gamma, log_clamp)
    _close(got, ref, 1e-10)


@pytest.mark.parametrize("voxel_term,gamma,log_clamp", TERMS, ids=lambda v: str(v))
def test_float32_close_to_float64(voxel_term, gamma, log_clamp):
    """float32 logits: the kernel's float32 arithmetic against float64 eager tables (relative 1e-5)."""
    x, y = _case((2, 4, 11, 6, 5), torch.float32, ignore=255)
    ref = _tables("eager", x.double(), y, 255, False, voxel_term, gamma, log_clamp)
    got = _tables("triton", x, y, 255, False, voxel_term, gamma, log_clamp)
    _close(got, ref, 1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
def test_half_logits_are_read_natively(dtype):
    """fp16/bf16 logits: float32 tables equal to those of the same (rounded) values in float64; gradient in the
    logits' dtype, close to the float64 one."""
    x, y = _case((2, 3, 8, 8, 4), dtype, ignore=255)
    ref = _tables("eager", x.double(), y, 255, True, "focal", 2.0)
    (tables, grad) = _tables("triton", x, y, 255, True, "focal", 2.0)
    assert all(t.dtype == torch.float32 for t in tables) and grad.dtype == dtype
    _close((tables, grad.float()), ref, 1e-2 if dtype == torch.bfloat16 else 2e-3)
    for a, b in zip(tables, ref[0], strict=True):
        torch.testing.assert_close(a.double(), b, rtol=1e-5, atol=1e-5 * float(b.abs().max()))


@pytest.mark.parametrize("num_classes", [2, 5, 9], ids=lambda c: f"C{c}")
@pytest.mark.parametrize("voxels", [1, 17, 1025, 2050], ids=lambda n: f"N{n}")
def test_padded_classes_and_block_tails(num_classes, voxels):
    x, y = _case((2, num_classes, voxels), torch.float64, ignore=None)
    _close(_tables("triton", x, y, None, False, "ce", 0.0), _tables("eager", x, y, None, False, "ce", 0.0), 1e-10)


@pytest.mark.parametrize("voxel_term,gamma", [("ce", 0.0), ("focal", 2.0)])
def test_grid_stride_forward_sums_many_tiles_per_program(voxel_term, gamma, monkeypatch):
    """With fewer forward programs than tiles each program sums several tiles (pid, pid + nprog, ...) in registers,
    including the partial tail tile: same tables as eager, and the status flags of every tile still reach the
    check."""
    from medloss.backends.triton import sigmoid

    monkeypatch.setattr(triton_tables, "PROGRAMS", 6)  # 3 programs per sample for 2 samples of 5 tiles
    triton_tables._plan.cache_clear()
    sigmoid._plan.cache_clear()
    try:
        x, y = _case((2, 3, 4 * 1024 + 7), torch.float64, ignore=255)
        _close(_tables("triton", x, y, 255, True, voxel_term, gamma), _tables("eager", x, y, 255, True, voxel_term,
                                                                             gamma), 1e-10)
        y[1, 0, 4 * 1024 + 3] = 9  # in the tail tile, summed by the second of three programs
        with pytest.raises(LabelValueError):
            _checked(lambda: _tables("triton", x, y, 255, True, voxel_term, gamma))
    finally:
        triton_tables._plan.cache_clear()
        sigmoid._plan.cache_clear()


@pytest.mark.parametrize("label_dtype", [torch.uint8, torch.int8, torch.int16, torch.int32, torch.float32,
                                         torch.float64], ids=str)
def test_label_dtypes(label_dtype):
    ignore = 100 if label_dtype in (torch.uint8, torch.int8) else 255
    x, y = _case((2, 3, 6, 6, 6), torch.float64, label_dtype=label_dtype, ignore=ignore)
    _close(_tables("triton", x, y, ignore, False, "focal", 2.0),
           _tables("eager", x, y.long(), ignore, False, "focal", 2.0), 1e-10)


def test_saturated_logits_stay_finite_and_exact():
    """Logits of +-150: p_y = 1 to float precision; log p_y and 1 - p_y must still be exact (focal slope)."""
    x, y = _case((1, 3, 4, 4, 4), torch.float64, scale=1.0)
    x = torch.where(torch.nn.functional.one_hot(y[:, 0], 3).movedim(-1, 1).bool(), 150.0, -150.0).double()
    x = x.contiguous()
    x[..., 0] = -x[..., 0]  # a few confidently wrong voxels (and ties) too
    got = _tables("triton", x, y, None, False, "focal", 2.0)
    ref = _tables("eager", x, y, None, False, "focal", 2.0)
    assert all(torch.isfinite(t).all() for t in got[0]) and torch.isfinite(got[1]).all()
    _close(got, ref, 1e-10)
    x32 = (x / 10).float()  # confident but representable in float32: l = -log1p(sum e) must not round to 0
    got32 = _tables("triton", x32, y, None, False, "ce", 0.0)
    ref64 = _tables("eager", x32.double(), y, None, False, "ce", 0.0)
    _close(got32, ref64, 1e-5)


def test_gradcheck_float64():
    x, y = _case((1, 3, 3, 3, 2), torch.float64, ignore=255)
    xf = x.reshape(1, 3, -1).to(DEVICE).requires_grad_()
    lab = y.reshape(1, 1, -1).to(DEVICE)
    for term, gamma, clamp in [("ce", 0.0, NO_CLAMP), ("focal", 2.0, NO_CLAMP), ("explog", 0.3, EXPLOG_CLAMP)]:
        def fn(logits, term=term, gamma=gamma, clamp=clamp):
            tp, pred, _, vox = softmax_tables(logits, lab, "triton", TableOptions(255, True, term, gamma, clamp))
            return tp, pred, vox

        assert torch.autograd.gradcheck(fn, (xf,), eps=1e-6, atol=1e-6, fast_mode=True)


def test_deterministic():
    x, y = _case((2, 3, 20, 20, 8), torch.float32, ignore=255)
    first = _tables("triton", x, y, 255, True, "ce", 0.0)
    second = _tables("triton", x, y, 255, True, "ce", 0.0)
    for a, b in zip(first[0] + [first[1]], second[0] + [second[1]], strict=True):
        assert torch.equal(a, b)


def test_bad_labels_raise_typed_error_when_checking():
    x, y = _case((1, 3, 5, 5, 5), torch.float32)
    y[0, 0, 1, 2, 3] = 7
    with pytest.raises(LabelValueError, match="7" if DEVICE == "cpu" else r"\[0, 3\)"):
        _checked(lambda: _tables("triton", x, y, None, False, "ce", 0.0))
    yf = y.float()
    yf[0, 0, 1, 2, 3] = 1.5
    with pytest.raises(LabelValueError):
        _checked(lambda: _tables("triton", x, yf, None, False, None, 0.0))


def test_nonfinite_logits_raise_typed_error_when_checking():
    x, y = _case((1, 3, 5, 5, 5), torch.float32)
    x[0, 1, 2, 2, 2] = float("nan")
    with pytest.raises(InputRangeError):
        _checked(lambda: _tables("triton", x, y, None, False, "ce", 0.0))


def test_without_check_bad_labels_are_skipped_and_nothing_is_read(monkeypatch):
    """check=False: no host read of the status (no sync); out-of-range labels count nowhere."""
    x, y = _case((1, 3, 5, 5, 5), torch.float64)
    bad = y.clone()
    bad[0, 0, 0] = 9
    monkeypatch.setattr(triton_tables, "raise_for_status", lambda *a: pytest.fail("status read without check"))
    got = _tables("triton", x, bad, None, False, "ce", 0.0, check=False)
    masked = y.clone()
    masked[0, 0, 0] = 255
    ref = _tables("eager", x, masked, 255, False, "ce", 0.0)
    _close(got, ref, 1e-10)


def test_takes_only_what_it_can():
    x, y = _case((1, 3, 10), torch.float32)
    assert triton_tables.takes(x.to(DEVICE), y.to(DEVICE), TableOptions())
    assert not triton_tables.takes(x[:, :1].to(DEVICE), y.to(DEVICE), TableOptions())  # one channel
    assert not triton_tables.takes(x.transpose(1, 2).to(DEVICE), y.to(DEVICE), TableOptions())  # non-contiguous
    assert not triton_tables.takes(x.to(DEVICE), y.bool().to(DEVICE), TableOptions())  # bool labels


def test_losses_take_the_triton_engine_when_asked(monkeypatch):
    """MEDLOSS_BACKEND=triton routes the label-map losses through the Triton engine, its tables or its fused losses
    (spies count the calls)."""
    import medloss.losses as L
    from medloss.backends.triton import fused

    calls = []
    original, original_fused = triton_tables.forward, fused.loss
    monkeypatch.setattr(triton_tables, "forward", lambda *a: calls.append(1) or original(*a))
    monkeypatch.setattr(fused, "loss", lambda *a: calls.append(1) or original_fused(*a))
    monkeypatch.setenv("MEDLOSS_BACKEND", "triton")
    x, y = _case((2, 3, 6, 6, 6), torch.float32, ignore=255)
    x = x.to(DEVICE).requires_grad_()
    for loss in (L.DiceCELoss(softmax=True, to_onehot_y=True, ignore_index=255),
                 L.FocalLoss(use_softmax=True, to_onehot_y=True, ignore_index=255)):
        loss(x, y.to(DEVICE)).backward()
    assert len(calls) == 2 and torch.isfinite(x.grad).all()


def test_backend_switch_is_validated(monkeypatch):
    from medloss import backends as backend
    from medloss.errors import InvalidOptionError

    monkeypatch.setenv("MEDLOSS_BACKEND", "cuda")
    with pytest.raises(InvalidOptionError, match="MEDLOSS_BACKEND"):
        backend.selected()
    monkeypatch.setenv("MEDLOSS_BACKEND", "Eager")
    assert backend.selected() == "eager"
    x, y = _case((1, 3, 10), torch.float32)
    assert backend.engine_for(x, y, TableOptions()) == "eager"
