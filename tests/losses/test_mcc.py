"""MCCLoss: MONAI 1.6.1's numbers and shapes over its option grid, the paper formula, gradients, half precision,
ignored voxels inert."""
from __future__ import annotations

import itertools

import pytest
import torch

from medloss.losses import MCCLoss
from tests.reference import mcc as ref

pytestmark = pytest.mark.usefixtures("table_engine")  # every engine is held to these numbers

monai_losses = pytest.importorskip("monai.losses")

SHAPE = (2, 3, 5, 4, 3)


def _case(seed, shape=SHAPE):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * 2
    y = torch.randint(0, shape[1], (shape[0], 1, *shape[2:]), generator=gen)
    return x, y


def _onehot(y, c):
    return torch.nn.functional.one_hot(y[:, 0], c).movedim(-1, 1).double()


# reduction "none" over the whole grid; "mean" and "sum" (reductions of that table) on a slice of it
GRID = [(*rest, red, smooth) for *rest, smooth in itertools.product(
    [True, False], [True, False], ["softmax", "sigmoid", "probs", "other_act"], [False, True],
    [(0.0, 1e-5), (1.0, 0.5)]) for red in (["none", "mean", "sum"] if rest[2] == "softmax" else ["none"])]


@pytest.mark.parametrize("include_background,to_onehot_y,act,batch,reduction,smooth", GRID)
def test_matches_monai_value_gradient_and_shape(include_background, to_onehot_y, act, batch, reduction, smooth):
    x, y = _case(len(str((include_background, to_onehot_y, act, batch))))
    x.requires_grad_()
    target = y if to_onehot_y else _onehot(y, SHAPE[1])
    kw = dict(include_background=include_background, to_onehot_y=to_onehot_y, batch=batch, reduction=reduction,
              smooth_nr=smooth[0], smooth_dr=smooth[1])
    if act == "probs":
        make_input = lambda: torch.softmax(x, 1)  # noqa: E731
    else:
        make_input = lambda: x  # noqa: E731
        kw.update({"other_act": torch.sigmoid} if act == "other_act" else {act: True})
    ours, theirs = MCCLoss(**kw)(make_input(), target), monai_losses.MCCLoss(**kw)(make_input(), target)
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-10)
    g_ours, = torch.autograd.grad(ours.sum(), x)
    g_theirs, = torch.autograd.grad(theirs.sum(), x)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-5, atol=1e-10)


@pytest.mark.parametrize("batch", [False, True])
def test_matches_the_paper_formula_with_ignored_voxels(batch):
    x, y = _case(7)
    y[:, :, :2] = 255
    valid = (y != 255).double()
    probs = torch.softmax(x, 1)
    expected = ref.mcc_loss(probs, _onehot(y.masked_fill(y == 255, 0), 3), valid, batch=batch, smooth_nr=0.1)
    ours = MCCLoss(softmax=True, to_onehot_y=True, ignore_index=255, batch=batch, reduction="none",
                   smooth_nr=0.1)(x, y)
    torch.testing.assert_close(ours, torch.from_numpy(expected), rtol=1e-6, atol=1e-10)


def test_a_perfect_prediction_scores_zero_with_zero_gradient():
    _, y = _case(1)
    p = _onehot(y, 3).requires_grad_()
    loss = MCCLoss(reduction="none")(p, _onehot(y, 3))
    assert torch.equal(loss, torch.zeros_like(loss))
    loss.sum().backward()
    assert torch.count_nonzero(p.grad) == 0


def test_ignored_voxels_are_inert():
    x, y = _case(2)
    y[0, :, 0] = 255
    loss = MCCLoss(softmax=True, to_onehot_y=True, ignore_index=255)
    x1 = x.clone().requires_grad_()
    x2 = x.clone()
    x2[0, :, 0] += torch.randn_like(x2[0, :, 0]) * 5
    x2.requires_grad_()
    l1, l2 = loss(x1, y), loss(x2, y)
    torch.testing.assert_close(l1, l2, rtol=0, atol=1e-14)
    l1.backward()
    assert torch.count_nonzero(x1.grad[0, :, 0]) == 0


def test_gradcheck_on_the_fused_label_map_path():
    x, y = _case(3, (1, 3, 3, 3, 2))
    loss = MCCLoss(softmax=True, to_onehot_y=True, smooth_nr=0.01)
    assert torch.autograd.gradcheck(lambda t: loss(t, y), (x.requires_grad_(),))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_outside_autocast(dtype):
    x, y = _case(4, (2, 3, 16, 16, 8))
    loss = MCCLoss(softmax=True, to_onehot_y=True)
    low = x.to(dtype).requires_grad_()
    value = loss(low, y)
    value.backward()
    assert value.dtype == dtype and torch.isfinite(low.grad).all()
    torch.testing.assert_close(value.float(), loss(x.to(dtype).double(), y).float(), rtol=2e-2, atol=2e-3)
