"""NACLLoss: MONAI 1.6.1's numbers over its option grid, the paper formula, ignore_index, gradients, half precision
and typed errors."""
from __future__ import annotations

import itertools

import pytest
import torch

from medloss.errors import InvalidOptionError, OptionTypeError, ShapeMismatchError
from medloss.losses import NACLLoss
from tests.reference import calibration as ref

pytestmark = pytest.mark.usefixtures("table_engine")  # every engine is held to these numbers

monai_losses = pytest.importorskip("monai.losses")


def _case(seed, shape):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * 2
    y = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=gen)
    return x, y


KERNELS = [("mean", 3, 1.0), ("mean", 4, 1.0), ("mean", 5, 1.0), ("gaussian", 3, 1.0), ("gaussian", 3, 0.6)]
GRID = [(dim, ops, distance, size, sigma, alpha) for dim, (ops, size, sigma), distance, alpha
        in itertools.product([2, 3], KERNELS, ["l1", "l2"], [0.1, 1.0])]


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.parametrize("dim,ops,distance,size,sigma,alpha", GRID)
def test_matches_monai_value_and_gradient(dim, ops, distance, size, sigma, alpha):
    shape = (2, 3, 7, 6, 5) if dim == 3 else (2, 4, 11, 10)
    x, y = _case(dim + size, shape)
    x.requires_grad_()
    kw = dict(kernel_size=size, kernel_ops=ops, distance_type=distance, alpha=alpha, sigma=sigma)
    ours = NACLLoss(shape[1], dim, **kw)(x, y)
    theirs = monai_losses.NACLLoss(shape[1], dim, **kw)(x, y)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-10)
    g_ours, = torch.autograd.grad(ours, x)
    g_theirs, = torch.autograd.grad(theirs, x)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-5, atol=1e-10)


@pytest.mark.parametrize("ops,size,sigma,distance", [("mean", 3, 1.0, "l1"), ("mean", 4, 1.0, "l2"),
                                                     ("gaussian", 3, 0.7, "l1")])
def test_matches_the_paper_formula(ops, size, sigma, distance):
    x, y = _case(1, (1, 3, 5, 4, 3))
    expected = ref.nacl_loss(x, y, kernel_ops=ops, kernel_size=size, sigma=sigma, distance_type=distance, alpha=0.3)
    ours = NACLLoss(3, 3, kernel_ops=ops, kernel_size=size, sigma=sigma, distance_type=distance, alpha=0.3)(x, y)
    assert float(ours) == pytest.approx(expected, rel=1e-9)


def test_ignored_voxels_are_left_out_of_both_terms():
    x, y = _case(2, (2, 3, 6, 5, 4))
    y[0, 0] = 255
    loss = NACLLoss(3, 3, ignore_index=255)
    x1, x2 = x.clone().requires_grad_(), x.clone()
    x2[0, :, 0] = 9.0
    x2.requires_grad_()
    l1, l2 = loss(x1, y), loss(x2, y)
    torch.testing.assert_close(l1, l2, rtol=0, atol=1e-14)
    l1.backward()
    assert torch.count_nonzero(x1.grad[0, :, 0]) == 0


def test_label_map_with_a_channel_axis_is_accepted():
    x, y = _case(3, (2, 3, 5, 5, 5))
    loss = NACLLoss(3, 3)
    torch.testing.assert_close(loss(x, y[:, None]), loss(x, y))


def test_gradcheck():
    x, y = _case(4, (1, 3, 3, 3, 2))
    loss = NACLLoss(3, 3, kernel_ops="gaussian", sigma=0.5, distance_type="l2")
    assert torch.autograd.gradcheck(lambda t: loss(t, y), (x.requires_grad_(),))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_outside_autocast(dtype):
    x, y = _case(5, (2, 3, 16, 16, 8))
    loss = NACLLoss(3, 3)
    low = x.to(dtype).requires_grad_()
    value = loss(low, y)
    value.backward()
    assert value.dtype == dtype and torch.isfinite(low.grad).all()
    torch.testing.assert_close(value.float(), loss(x.to(dtype).double(), y).float(), rtol=2e-2, atol=2e-3)


def test_typed_errors():
    x, y = _case(6, (1, 3, 4, 4, 4))
    with pytest.raises(ShapeMismatchError, match="`classes`=4"):
        NACLLoss(4, 3)(x, y)
    with pytest.raises(InvalidOptionError, match="`dim`=2"):
        NACLLoss(3, 2)(x, y)
    with pytest.raises(InvalidOptionError, match="`dim` must be a finite number"):
        NACLLoss(3, 4)
    with pytest.raises(InvalidOptionError, match="kernel_ops"):
        NACLLoss(3, 3, kernel_ops="median")
    with pytest.raises(OptionTypeError, match="kernel_size"):
        NACLLoss(3, 3, kernel_size=2.5)
    with pytest.raises(InvalidOptionError, match="sigma"):
        NACLLoss(3, 3, sigma=0)
