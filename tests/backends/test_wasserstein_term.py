"""The table operator's "wasserstein" voxel term (the Generalized Wasserstein Dice loss's S_k = sum_{y_i = k} WE_i,
WE_i = sum_c M[y_i, c] p_ic) on every engine.

The eager engine is held to plain autograd on the one-hot-free formula; the C kernel and the Triton kernels (under
the interpreter on a CPU) to the eager engine, in float64 and float32, for C in {2, 3, 4, 5, 14}, with and without
ignored voxels, alone (``region=False``, what the loss uses) and beside the region tables; bad labels and
non-finite logits raise the typed errors, and the options refuse a matrix that does not fit.
"""
from __future__ import annotations

import pytest
import torch

from medloss.backends import cpu as native
from medloss.backends import triton as triton_engine
from medloss.backends.options import TableOptions
from medloss.errors import InputRangeError, InvalidOptionError, LabelValueError, ShapeMismatchError
from tests._helpers import native_case, softmax_tables

TRITON_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
KERNELS = (["cpu"] if native.available() else []) + (
    ["triton"] if triton_engine.available() and (torch.cuda.is_available() or triton_engine.interpreted()) else [])
CLASSES = [2, 3, 4, 5, 14]


def _matrix(num_classes: int, seed: int = 0) -> tuple[tuple[float, ...], ...]:
    gen = torch.Generator().manual_seed(seed)
    m = torch.rand(num_classes, num_classes, generator=gen, dtype=torch.float64)
    m.fill_diagonal_(0.0)
    return tuple(tuple(row) for row in m.tolist())


def _options(num_classes, ignore=None, region=False, squared=False, check=True):
    return TableOptions(ignore, squared, "wasserstein", region=region, check=check, matrix=_matrix(num_classes))


def _run(engine, x, y, options):
    """(tables compared, d(sum_t w_t table_t)/dx) for fixed random weights w; TP and PRED only with region tables
    (without them an engine may skip them, and the loss sends them no gradient)."""
    device = TRITON_DEVICE if engine == "triton" else "cpu"
    b, c = x.shape[:2]
    xf = x.detach().reshape(b, c, -1).to(device).requires_grad_()
    tp, pred, target, vox = softmax_tables(xf, y.reshape(b, 1, -1).to(device), engine, options)
    gen = torch.Generator().manual_seed(1)
    kept = [tp, pred, vox] if options.region else [vox]
    weights = [torch.rand(b, c, generator=gen, dtype=torch.float64).to(device, tp.dtype) for _ in kept]
    (grad,) = torch.autograd.grad(sum((t * w).sum() for t, w in zip(kept, weights, strict=True)), xf)
    return [t.detach().cpu() for t in kept + [target]], grad.cpu()


@pytest.mark.parametrize("ignore", [None, 255], ids=["all", "ignore"])
@pytest.mark.parametrize("num_classes", CLASSES, ids=lambda c: f"C{c}")
def test_eager_term_is_the_formula(num_classes, ignore):
    """VPOS_k = sum over counted voxels labelled k of sum_c M[k, c] p_c, and its gradient, from plain autograd."""
    x, y = native_case((2, num_classes, 5, 4, 3), torch.float64, ignore=ignore)
    options = _options(num_classes, ignore)
    (vox, target), grad = _run("eager", x, y, options)
    xf = x.reshape(2, num_classes, -1).requires_grad_()
    lab = y.reshape(2, -1)
    valid = (lab != 255).double()
    labels = lab.masked_fill(lab == 255, 0)
    we = (torch.tensor(options.matrix, dtype=torch.float64)[labels].transpose(1, 2) * xf.softmax(1)).sum(1)
    onehot = torch.nn.functional.one_hot(labels, num_classes).double() * valid[..., None]
    expected = torch.einsum("bn,bnk->bk", we, onehot)
    torch.testing.assert_close(vox, expected.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(target, onehot.sum(1), rtol=0, atol=0)
    w = torch.rand(2, num_classes, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (g_ref,) = torch.autograd.grad((expected * w).sum(), xf)
    torch.testing.assert_close(grad, g_ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("region,squared", [(False, False), (True, False), (True, True)],
                         ids=["alone", "region", "region-squared"])
def test_eager_gradcheck(region, squared):
    x, y = native_case((2, 4, 3, 2, 2), torch.float64, ignore=255)
    lab = y.reshape(2, 1, -1)
    options = _options(4, 255, region, squared)

    def fn(logits):
        tp, pred, _, vox = softmax_tables(logits, lab, "eager", options)
        return (tp, pred, vox) if region else vox

    assert torch.autograd.gradcheck(fn, (x.reshape(2, 4, -1).requires_grad_(),))


@pytest.mark.parametrize("engine", KERNELS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("num_classes", CLASSES, ids=lambda c: f"C{c}")
@pytest.mark.parametrize("ignore", [None, 255], ids=["all", "ignore"])
@pytest.mark.parametrize("region,squared", [(False, False), (True, True)], ids=["alone", "region-squared"])
def test_kernels_equal_eager(engine, dtype, num_classes, ignore, region, squared):
    """float64: to 1e-10; float32: within 1e-5 of the float64 eager tables (the term is a bounded sum of p)."""
    x, y = native_case((2, num_classes, 9, 7, 11), dtype, ignore=ignore)
    options = _options(num_classes, ignore, region, squared)
    tables, grad = _run(engine, x, y, options)
    ref_tables, ref_grad = _run("eager", x.double(), y, options)
    rtol = 1e-10 if dtype == torch.float64 else 1e-5
    for name, a, b in zip(["TP", "PRED", "VPOS"][-len(tables) + 1:] + ["TARGET"], tables, ref_tables, strict=True):
        torch.testing.assert_close(a.double(), b, rtol=rtol, atol=rtol * (1 + float(b.abs().max())), msg=name)
    assert grad.dtype == dtype
    torch.testing.assert_close(grad.double(), ref_grad, rtol=rtol, atol=rtol * float(ref_grad.abs().max()))


@pytest.mark.skipif("triton" not in KERNELS, reason="needs Triton (and a CUDA device or TRITON_INTERPRET=1)")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
def test_triton_reads_half_logits_natively(dtype):
    """fp16/bf16 logits: float32 sums equal to those of the same (rounded) values in float64, gradient in the
    logits' dtype."""
    x, y = native_case((2, 5, 8, 8, 4), dtype, ignore=255)
    options = _options(5, 255)
    (vox, target), grad = _run("triton", x, y, options)
    (ref_vox, ref_target), ref_grad = _run("eager", x.double(), y, options)
    assert vox.dtype == torch.float32 and grad.dtype == dtype
    torch.testing.assert_close(vox.double(), ref_vox, rtol=1e-5, atol=1e-5 * float(ref_vox.abs().max()))
    torch.testing.assert_close(target.double(), ref_target, rtol=0, atol=0)
    tol = 1e-2 if dtype == torch.bfloat16 else 2e-3
    torch.testing.assert_close(grad.double(), ref_grad, rtol=tol, atol=tol * float(ref_grad.abs().max()))


@pytest.mark.parametrize("engine", KERNELS + ["eager"])
@pytest.mark.parametrize("check", [True, False], ids=["checked", "unchecked"])
def test_out_of_range_labels_and_nonfinite_logits(engine, check, monkeypatch):
    """A label outside [0, C) raises LabelValueError when checked (the C kernel also unchecked: it never reads
    outside the matrix); NaN logits raise InputRangeError when checked and give NaN tables unchecked."""
    monkeypatch.setenv("MEDLOSS_NATIVE", "1")
    x, y = native_case((1, 3, 5, 5, 5), torch.float32)
    bad = y.clone()
    bad[0, 0, 1, 2, 3] = 3
    options = _options(3, check=check)
    if check or engine == "cpu":
        with pytest.raises(LabelValueError, match="3"):
            _run_checked(engine, x, bad, options)
    else:
        (vox, target), _ = _run(engine, x, bad, options)
        assert float(target.sum()) == y.numel() - 1 and torch.isfinite(vox).all()  # it counts nowhere
    x[0, 1, 2, 2, 2] = float("nan")
    if check:
        with pytest.raises(InputRangeError, match="NaN or infinite"):
            _run_checked(engine, x, y, options)
    else:
        assert torch.isnan(_run(engine, x, y, options)[0][0]).any()


def _run_checked(engine, x, y, options):
    out = _run(engine, x, y, options)
    if engine == "triton" and TRITON_DEVICE == "cuda":
        from medloss.backends.triton import status

        status.check_pending()
    return out


def test_the_matrix_must_fit_the_term_and_the_logits():
    with pytest.raises(InvalidOptionError, match="needs `matrix`"):
        TableOptions(voxel_term="wasserstein")
    with pytest.raises(InvalidOptionError, match="needs `matrix`"):
        TableOptions(voxel_term="wasserstein", matrix=((0.0, 1.0), (1.0,)))
    with pytest.raises(InvalidOptionError, match=">= 0"):
        TableOptions(voxel_term="wasserstein", matrix=((0.0, -1.0), (1.0, 0.0)))
    with pytest.raises(InvalidOptionError, match=">= 0"):
        TableOptions(voxel_term="wasserstein", matrix=((0.0, float("inf")), (1.0, 0.0)))
    with pytest.raises(InvalidOptionError, match="leave it None"):
        TableOptions(voxel_term="ce", matrix=_matrix(2))
    x, y = native_case((1, 3, 10), torch.float64)
    with pytest.raises(ShapeMismatchError, match="2 x 2 but the logits have 3 channels"):
        softmax_tables(x, y, "eager", _options(2))
