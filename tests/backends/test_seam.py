"""The table seam (medloss/backends/op.py): one operator for every engine, visible to torch.compile as one
node, and no host synchronisation on the eager engine when input checks are off."""
from __future__ import annotations

import warnings

import pytest
import torch

import medloss.losses as L
from medloss.backends import cpu as native
from medloss.backends import triton as triton_engine
from medloss.backends.options import TableOptions
from medloss.errors import InvalidOptionError
from tests._helpers import native_case, softmax_tables

S = dict(softmax=True, to_onehot_y=True)
FUSED = {
    "dice": lambda c: L.DiceLoss(**S, check_input=c),
    "dice-squared-batch": lambda c: L.DiceLoss(**S, squared_pred=True, batch=True, include_background=False,
                                               check_input=c),
    "tversky": lambda c: L.TverskyLoss(**S, check_input=c),
    "focal-tversky": lambda c: L.FocalTverskyLoss(**S, check_input=c),
    "gdl": lambda c: L.GeneralizedDiceLoss(**S, check_input=c),
    "ce": lambda c: L.CrossEntropyLoss(ignore_index=255, check_input=c),
    "focal": lambda c: L.FocalLoss(use_softmax=True, to_onehot_y=True, check_input=c),
    "dice-ce": lambda c: L.DiceCELoss(**S, ignore_index=255, check_input=c),
    "dice-focal": lambda c: L.DiceFocalLoss(**S, check_input=c),
    "gdl-focal": lambda c: L.GeneralizedDiceFocalLoss(**S, check_input=c),
    "explog": lambda c: L.ExpLogLoss(**S, check_input=c),
    "anatomynet": lambda c: L.AnatomyNetLoss(**S, check_input=c),
    "gwdl-wasserstein": lambda c: L.GeneralizedWassersteinDiceLoss([[0, 1, 0.5], [1, 0, 0.7], [0.5, 0.7, 0]],
                                                                    check_input=c),
    # sigmoid tables: label maps ("sigmoid-" names) and dense one-hot targets ("dense-" names)
    "sigmoid-dice": lambda c: L.DiceLoss(sigmoid=True, to_onehot_y=True, check_input=c),
    "sigmoid-focal": lambda c: L.FocalLoss(to_onehot_y=True, check_input=c),
    "sigmoid-dice-focal": lambda c: L.DiceFocalLoss(sigmoid=True, to_onehot_y=True, check_input=c),
    "dense-dice": lambda c: L.DiceLoss(sigmoid=True, squared_pred=True, check_input=c),
    "dense-bce": lambda c: L.BCELoss(check_input=c),
    "dense-bce-dice": lambda c: L.BCEDiceLoss(check_input=c),
    "dense-focal": lambda c: L.FocalLoss(alpha=0.25, check_input=c),
}
ENGINES = ["eager"] + (["cpu"] if native.available() else [])
# the Triton engine runs eagerly through an autograd.Function and compiled through the operator: both must agree
TRITON = ["triton"] if triton_engine.available() and (torch.cuda.is_available() or triton_engine.interpreted()) else []


def _inputs(name="dice"):
    x, y = native_case((2, 3, 6, 6, 6), torch.float32, ignore=255)
    if name not in ("ce", "dice-ce"):
        y = y.masked_fill(y == 255, 0)
    if name.startswith("dense-"):
        y = torch.nn.functional.one_hot(y[:, 0], 3).movedim(-1, 1).float()
    return x.requires_grad_(), y


@pytest.mark.parametrize("check", [False, True], ids=["unchecked", "checked"])
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", list(FUSED))
def test_compiled_training_step_has_no_graph_break(name, engine, check, monkeypatch):
    """torch.compile(fullgraph=True) traces loss forward + backward of a step in one graph, with input checks too
    (they run inside the operator, which the graph holds as one opaque node)."""
    monkeypatch.setenv("MEDLOSS_BACKEND", engine)
    loss_fn = FUSED[name](check)
    x, y = _inputs(name)
    explained = torch._dynamo.explain(lambda a, b: loss_fn(a, b))(x, y)
    assert explained.graph_break_count == 0, [str(r.reason)[:200] for r in explained.break_reasons]


@pytest.mark.parametrize("check", [False, True], ids=["unchecked", "checked"])
def test_uint8_labels_with_an_unheld_ignore_index_compile_without_breaks(check):
    """CE's default ignore_index=-100 cannot be held by uint8 labels: the explanatory eager check steps aside under
    torch.compile (the operator still checks), so no graph break either way."""
    loss_fn = L.CrossEntropyLoss(check_input=check)
    x, y = _inputs("dice")
    explained = torch._dynamo.explain(lambda a, b: loss_fn(a, b))(x, y.to(torch.uint8))
    assert explained.graph_break_count == 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dice-ce", "dense-bce-dice", "gwdl-wasserstein"])
@pytest.mark.parametrize("engine", ENGINES + TRITON)
def test_compiled_loss_equals_eager(engine, name, monkeypatch):
    """The fake implementation has the real shapes: a compiled step (softmax DiceCE, sigmoid BCE+Dice) gives the
    eager value and gradient."""
    monkeypatch.setenv("MEDLOSS_BACKEND", engine)
    loss_fn = FUSED[name](True)
    x, y = _inputs(name)
    if engine == "triton" and torch.cuda.is_available():
        x, y = x.detach().cuda().requires_grad_(), y.cuda()
    expected = loss_fn(x, y)
    (g_expected,) = torch.autograd.grad(expected, x)
    torch._dynamo.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = torch.compile(lambda a, b: loss_fn(a, b), fullgraph=True, backend="aot_eager")
        got = compiled(x, y)
    (g_got,) = torch.autograd.grad(got, x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g_got, g_expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", list(FUSED))
def test_eager_engine_never_reads_back_without_checks(name, monkeypatch):
    """check_input=False on the eager engine (what ROCm/MPS run): no .item(), bool() or float() of a tensor in the
    forward or backward (each would be a device synchronisation)."""
    monkeypatch.setenv("MEDLOSS_BACKEND", "eager")
    loss_fn = FUSED[name](False)
    x, y = _inputs(name)

    def forbidden(*_args, **_kwargs):
        raise AssertionError("host read of a tensor value")

    for attr in ("item", "__bool__", "__float__", "__int__", "tolist"):
        monkeypatch.setattr(torch.Tensor, attr, forbidden)
    loss_fn(x, y).backward()
    monkeypatch.undo()
    assert torch.isfinite(x.grad).all()


def test_options_are_validated_once():
    with pytest.raises(InvalidOptionError, match="voxel_term"):
        TableOptions(voxel_term="dice")
    with pytest.raises(InvalidOptionError, match="gamma"):
        TableOptions(voxel_term="focal", gamma=-1.0)
    with pytest.raises(InvalidOptionError, match="log_clamp"):
        TableOptions(log_clamp=(0.5, -1.0))
    opts = TableOptions(ignore_index=255, voxel_term="ce")
    with pytest.raises(AttributeError):  # dataclasses.FrozenInstanceError is one
        opts.squared = True  # frozen


@pytest.mark.parametrize("engine", ENGINES)
def test_operator_is_registered_with_its_fake(engine):
    """medloss::tables runs on meta tensors through its fake implementation (what torch.compile traces)."""
    x = torch.empty(2, 3, 10, device="meta")
    y = torch.empty(2, 1, 10, dtype=torch.int64, device="meta")
    out = torch.ops.medloss.tables(x, y, engine, "softmax", False, False, None, False, "ce", 0.0, -1e30, 1e30, True,
                                   False)
    assert [tuple(t.shape) for t in out] == [(2, 3)] * 3 + [(2, 1)] + [(2, 3)] * 2
    assert all(t.device.type == "meta" for t in out)
    direct = softmax_tables(*(t.to("cpu") for t in native_case((2, 3, 10), torch.float64)), engine,
                            TableOptions(voxel_term="ce"))
    assert all(t.shape == (2, 3) for t in direct)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", list(FUSED))
def test_cuda_step_never_synchronises_without_checks(name, monkeypatch):
    """On CUDA (Triton engine where Triton is installed, else eager) a forward + backward with check_input=False
    issues no device synchronisation (torch.cuda.set_sync_debug_mode raises on one)."""
    monkeypatch.delenv("MEDLOSS_BACKEND", raising=False)
    loss_fn = FUSED[name](False)
    x, y = _inputs(name)
    x, y = x.detach().cuda().requires_grad_(), y.cuda()
    loss_fn(x, y).backward()  # compile the kernels first (compilation may synchronise)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss_fn(x, y).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(x.grad).all()


def test_the_table_engine_fixture_runs_the_engine_it_names(table_engine, monkeypatch):
    """The engine-dependent loss tests (``usefixtures("table_engine")``) run on the engine in their id: a spy on each
    engine's forward counts the calls of a CPU label-map loss."""
    from medloss import backends

    calls = dict.fromkeys(backends.ENGINES, 0)
    for name, engine in backends.ENGINES.items():
        def spy(*args, _name=name, _forward=engine.forward, **kwargs):
            calls[_name] += 1
            return _forward(*args, **kwargs)

        monkeypatch.setattr(engine, "forward", spy)
    L.DiceCELoss(**S)(*native_case((2, 3, 4, 4, 4), torch.float32))
    assert {name: count > 0 for name, count in calls.items()} == {name: name == table_engine for name in calls}
