"""The Triton engine's fused losses (medloss.backends.triton.fused: the loss formula and its gradient evaluated by a
finalize kernel, one autograd node) against the losses' torch formulas on the same Triton tables, which stay the
reference: value and gradient in float64 (rtol 1e-10) and float32 (1e-5), bf16 logits, every option the fused path
takes; the one predicate (medloss.functional.fused.fused_loss) sends every other option to the torch formulas; the
typed input errors are still raised. On a CPU the kernels run under the Triton interpreter (tests/conftest.py)."""
from __future__ import annotations

import pytest
import torch

import medloss.losses as L
from medloss.backends import triton as triton_tables
from medloss.backends.triton import fused as triton_fused
from medloss.backends.triton import status
from medloss.errors import InputRangeError, LabelValueError
from medloss.functional import fused as fused_path

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
pytestmark = pytest.mark.skipif(
    not triton_tables.available() or (DEVICE == "cpu" and not triton_tables.interpreted()),
    reason="needs Triton (and a CUDA device or TRITON_INTERPRET=1)",
)



@pytest.fixture(autouse=True)
def _triton_engine(monkeypatch):
    monkeypatch.setenv("MEDLOSS_BACKEND", "triton")


SM = dict(softmax=True, to_onehot_y=True)
#: name -> (loss, (B, C, *S), ignore_index in the labels or None): every option the fused path evaluates, C = 2 / 4 /
#: 14 (a padded class bucket), B = 1 / 2, N a multiple of no tile and (7^3, float64 / 1200, float32 at C = 4) more
#: than one program per sample
CASES = {
    "dice": (lambda: L.DiceLoss(**SM), (2, 4, 7, 7, 7), None),
    "dice nobg batch sum squared": (lambda: L.DiceLoss(**SM, include_background=False, batch=True, reduction="sum",
                                                       squared_pred=True, smooth_nr=0.0), (2, 4, 5, 5, 3), None),
    "jaccard ignore": (lambda: L.DiceLoss(**SM, jaccard=True, ignore_index=3), (1, 4, 10, 10, 12), 3),
    "tversky C=14": (lambda: L.TverskyLoss(**SM, alpha=0.3, beta=0.7), (2, 14, 5, 4, 3), None),
    "tversky nobg batch ignore": (lambda: L.TverskyLoss(**SM, alpha=0.7, beta=0.3, include_background=False,
                                                        batch=True, ignore_index=1), (2, 2, 6, 5, 1), 1),
    "focal tversky": (lambda: L.FocalTverskyLoss(**SM, alpha=0.3, beta=0.7, gamma=0.75), (2, 4, 5, 5, 5), None),
    "gdl": (lambda: L.GeneralizedDiceLoss(**SM), (2, 4, 5, 5, 3), None),
    "gdl simple nobg batch sum": (lambda: L.GeneralizedDiceLoss(**SM, w_type="simple", include_background=False,
                                                                batch=True, reduction="sum"), (2, 4, 5, 5, 3), None),
    "gdl uniform monai C=14": (lambda: L.GeneralizedDiceLoss(**SM, w_type="uniform", empty="monai"),
                               (1, 14, 4, 4, 3), None),
    "focal": (lambda: L.FocalLoss(use_softmax=True, to_onehot_y=True), (2, 4, 7, 7, 7), None),
    "focal nobg sum ignore": (lambda: L.FocalLoss(use_softmax=True, to_onehot_y=True, include_background=False,
                                                  reduction="sum", gamma=1.5, ignore_index=2), (2, 4, 5, 5, 3), 2),
    "dicece": (lambda: L.DiceCELoss(**SM), (2, 4, 7, 7, 7), None),
    "dicece lambdas sum batch nobg ignore": (lambda: L.DiceCELoss(**SM, lambda_dice=0.3, lambda_ce=1.7,
                                                                  reduction="sum", batch=True,
                                                                  include_background=False, ignore_index=0),
                                             (2, 4, 5, 5, 3), 0),
    "dicece jaccard C=2": (lambda: L.DiceCELoss(**SM, jaccard=True), (1, 2, 5, 5, 3), None),
    "sigmoid dice labels ignore": (lambda: L.DiceLoss(sigmoid=True, to_onehot_y=True, ignore_index=2),
                                   (2, 4, 5, 5, 3), 2),
    "sigmoid gdl dense": (lambda: L.GeneralizedDiceLoss(sigmoid=True), (2, 4, 5, 5, 3), None),
    "bcedice dense": (lambda: L.BCEDiceLoss(), (2, 4, 7, 7, 7), None),
    "bcedice dense sum lambdas nobg batch squared": (lambda: L.BCEDiceLoss(
        include_background=False, batch=True, squared_pred=True, reduction="sum", lambda_dice=0.4, lambda_bce=1.3),
        (1, 14, 5, 4, 3), None),
}


def _inputs(shape, dtype, ignore, seed=0, dense=False):
    """Logits and a label map, or (``dense``) a binary target per logit (one-hot of the labels, class 1 drawn on its
    own so that channels overlap, as multi-label targets do; strided, as ``movedim`` leaves it)."""
    gen = torch.Generator().manual_seed(seed)
    x = (3 * torch.randn(shape, generator=gen, dtype=torch.float64)).to(dtype)
    y = torch.randint(0, shape[1], (shape[0], 1, *shape[2:]), generator=gen)
    y[..., :2] = shape[1] - 1  # the last class present in every sample
    if ignore is not None:
        y[:, :, :1] = ignore
    if dense:
        y = torch.nn.functional.one_hot(y[:, 0], shape[1]).movedim(-1, 1).to(dtype)
        y[:, 1] = (torch.rand(y[:, 1].shape, generator=gen) > 0.5).to(dtype)
    return x.to(DEVICE), y.to(DEVICE)


def _case(name, dtype, seed=0, shape=None):
    make, case_shape, ignore = CASES[name]
    return make(), *_inputs(shape or case_shape, dtype, ignore, seed, dense="dense" in name)


def _run(loss, x, y, *, fused: bool, monkeypatch) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(value, gradient for an incoming gradient of 1.7, fused calls) with or without the fused path."""
    calls = []

    def counted(*args):
        calls.append(1)
        return real(*args)

    real = triton_fused.loss
    with monkeypatch.context() as m:
        m.setattr(triton_fused, "loss", counted)
        if not fused:  # the predicate sees another engine: the torch formulas on the Triton tables
            m.setattr(fused_path, "engine_for", lambda *args: "eager")
        x = x.detach().clone().requires_grad_()
        value = loss(x, y)
        value.backward(torch.full_like(value, 1.7))
    return value.detach().cpu(), x.grad.cpu(), len(calls)


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-10), (torch.float32, 1e-5)], ids=["fp64", "fp32"])
@pytest.mark.parametrize("name", list(CASES))
def test_fused_loss_equals_the_torch_formula(name, dtype, rtol, monkeypatch):
    loss, x, y = _case(name, dtype)
    value, grad, calls = _run(loss, x, y, fused=True, monkeypatch=monkeypatch)
    ref_value, ref_grad, ref_calls = _run(loss, x, y, fused=False, monkeypatch=monkeypatch)
    assert (calls, ref_calls) == (1, 0)
    assert value.dtype == ref_value.dtype == dtype and value.shape == ()
    torch.testing.assert_close(value, ref_value, rtol=rtol, atol=0.0)
    torch.testing.assert_close(grad, ref_grad, rtol=rtol, atol=rtol * float(ref_grad.abs().max()))


@pytest.mark.parametrize("name", ["gdl", "dicece", "bcedice dense"])
def test_fused_loss_with_bf16_logits(name, monkeypatch):
    loss, x, y = _case(name, torch.bfloat16)
    value, grad, calls = _run(loss, x, y, fused=True, monkeypatch=monkeypatch)
    ref_value, ref_grad, _ = _run(loss, x, y, fused=False, monkeypatch=monkeypatch)
    assert calls == 1 and value.dtype == grad.dtype == torch.bfloat16
    torch.testing.assert_close(value, ref_value, rtol=1e-2, atol=0.0)
    torch.testing.assert_close(grad.float(), ref_grad.float(), rtol=2e-2, atol=2e-2 * float(ref_grad.abs().max()))


@pytest.mark.parametrize("name", ["focal tversky", "dicece lambdas sum batch nobg ignore", "bcedice dense"])
def test_fused_gradient_passes_gradcheck(name):
    loss, x, y = _case(name, torch.float64, seed=3, shape=(2, 4, 2, 2, 1))
    assert torch.autograd.gradcheck(lambda t: loss(t, y), (x.requires_grad_(),), fast_mode=True)


def test_an_empty_target_row_takes_the_gdl_empty_rules(monkeypatch):
    """A sample without any kept class: the soft false-positive rate (penalize), MONAI's zero weights (monai)."""
    x, y = _inputs((2, 3, 4, 4, 2), torch.float64, None)
    y[0] = 0
    for empty in ("penalize", "monai"):
        loss = L.GeneralizedDiceLoss(**SM, include_background=False, empty=empty)
        value, grad, calls = _run(loss, x, y, fused=True, monkeypatch=monkeypatch)
        ref_value, ref_grad, _ = _run(loss, x, y, fused=False, monkeypatch=monkeypatch)
        assert calls == 1
        torch.testing.assert_close(value, ref_value, rtol=1e-10, atol=0.0)
        torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-12)


UNSUPPORTED = {
    "class weights": lambda: L.DiceLoss(**SM, weight=[1.0, 2.0, 3.0, 4.0]),
    "reduction none": lambda: L.DiceLoss(**SM, reduction="none"),
    "focal alpha": lambda: L.FocalLoss(use_softmax=True, to_onehot_y=True, alpha=[0.1, 0.2, 0.3, 0.4]),
    "dicece label smoothing": lambda: L.DiceCELoss(**SM, label_smoothing=0.1),
    "dicece weight": lambda: L.DiceCELoss(**SM, weight=torch.tensor([1.0, 2.0, 3.0, 4.0])),
    "mcc": lambda: L.MCCLoss(**SM),
    "dense bcedice pos_weight": lambda: L.BCEDiceLoss(pos_weight=[1.0, 2.0, 3.0, 4.0]),
    "dense sigmoid dice soft labels": lambda: L.DiceLoss(sigmoid=True, soft_label=True),
}


@pytest.mark.parametrize("name", list(UNSUPPORTED))
def test_the_predicate_leaves_other_options_to_the_torch_formulas(name, monkeypatch):
    x, y = _inputs((1, 4, 4, 3, 2), torch.float64, None, dense="dense" in name)
    value, _, calls = _run(UNSUPPORTED[name](), x, y, fused=True, monkeypatch=monkeypatch)
    assert calls == 0 and torch.isfinite(value).all()


def test_batch_pooling_across_a_process_group_takes_the_operator(monkeypatch):
    """DDP all-reduces batch-pooled tables (the fused path would skip it): the torch formula's path and numbers.
    (torch.compile: test_compiled_fused_losses_have_no_graph_break; a traced fused path would break the graph.)"""
    x, y = _inputs((2, 4, 4, 3, 2), torch.float64, None)
    loss = L.DiceLoss(**SM, batch=True)
    ref_value, ref_grad, _ = _run(loss, x, y, fused=False, monkeypatch=monkeypatch)
    monkeypatch.setattr(fused_path, "_distributed", lambda: True)
    value, grad, calls = _run(loss, x, y, fused=True, monkeypatch=monkeypatch)
    assert calls == 0
    torch.testing.assert_close((value, grad), (ref_value, ref_grad), rtol=1e-12, atol=1e-14)


def _checked(call):
    out = call()
    if DEVICE == "cuda":
        status.check_pending()
    return out


@pytest.mark.parametrize("name", ["dice", "focal", "dicece", "bcedice dense"])
def test_checked_fused_losses_raise_the_typed_errors(name, monkeypatch):
    loss, x, y = _case(name, torch.float32, shape=(1, 4, 4, 3, 2))
    bad = y.clone()
    bad[0, 0, 1, 1, 1] = 0.5 if "dense" in name else 7  # a fractional binary target, a label out of range
    calls = []
    real = triton_fused.loss
    monkeypatch.setattr(triton_fused, "loss", lambda *a: calls.append(1) or real(*a))
    with pytest.raises(LabelValueError):
        _checked(lambda: loss(x, bad))
    nan = x.clone()
    nan[0, 1, 0, 0, 0] = float("nan")
    with pytest.raises(InputRangeError):
        _checked(lambda: loss(nan, y))
    assert len(calls) == 2


def test_unchecked_fused_loss_reads_nothing_back(monkeypatch):
    """check_input=False: a bad label counts nowhere and raises nothing (no host read), as on the table path."""
    x, y = _inputs((1, 4, 4, 3, 2), torch.float64, None)
    bad = y.clone()
    bad[0, 0, 1, 1, 1] = 7
    loss = L.DiceLoss(**SM, check_input=False)
    value, _, calls = _run(loss, x, bad, fused=True, monkeypatch=monkeypatch)
    ref_value, _, _ = _run(loss, x, bad, fused=False, monkeypatch=monkeypatch)
    assert calls == 1
    torch.testing.assert_close(value, ref_value, rtol=1e-10, atol=0.0)


@pytest.mark.parametrize("check", [False, True], ids=["unchecked", "checked"])
@pytest.mark.parametrize("make", [L.GeneralizedDiceLoss, L.DiceCELoss], ids=["gdl", "dicece"])
def test_compiled_fused_losses_have_no_graph_break(make, check):
    """Under torch.compile the predicate steps aside: the registered table operator is traced, in one graph."""
    loss = make(**SM, check_input=check)
    x, y = _inputs((1, 4, 4, 3, 2), torch.float32, None)
    explained = torch._dynamo.explain(lambda a, b: loss(a, b))(x.requires_grad_(), y)
    assert explained.graph_break_count == 0, [str(r.reason)[:200] for r in explained.break_reasons]
