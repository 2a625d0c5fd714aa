"""GeneralizedWassersteinDiceLoss: MONAI 1.6.1's numbers over its option grid, the paper formula, the medloss extras
(ignore_index, batch), gradients, half precision and typed errors."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from medloss.errors import InvalidOptionError, LabelValueError, OptionTypeError, ShapeMismatchError
from medloss.losses import GeneralizedWassersteinDiceLoss as GWDL
from tests.reference import wasserstein as ref

monai_losses = pytest.importorskip("monai.losses")
pytestmark = pytest.mark.usefixtures("table_engine")  # every test on the C kernel and on the eager engine


def _matrix(c, seed=0, top=2.0):
    rng = np.random.default_rng(seed)
    m = rng.random((c, c)) * top
    np.fill_diagonal(m, 0.0)
    return m


def _case(seed, shape):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * 2
    y = torch.randint(0, shape[1], (shape[0], 1, *shape[2:]), generator=gen)
    return x, y


GRID = [(c, mode, red, smooth, kind, spatial) for c, mode, smooth, spatial in itertools.product(
    [2, 3, 5], ["default", "GDL"], [(1e-5, 1e-5), (0.5, 2.0)], [(2, 5, 4, 3), (2, 6, 5)])
    for red, kind in ([("none", "numpy"), ("mean", "tensor"), ("sum", "numpy")] if c == 3 else [("none", "numpy")])]


@pytest.mark.parametrize("classes,mode,reduction,smooth,kind,spatial", GRID)
def test_matches_monai_value_and_gradient(classes, mode, reduction, smooth, kind, spatial):
    m = _matrix(classes, seed=classes)
    x, y = _case(classes, (spatial[0], classes, *spatial[1:]))
    x.requires_grad_()
    matrix = torch.from_numpy(m) if kind == "tensor" else m
    kw = dict(weighting_mode=mode, reduction=reduction, smooth_nr=smooth[0], smooth_dr=smooth[1])
    ours = GWDL(matrix, **kw)(x, y)
    theirs = monai_losses.GeneralizedWassersteinDiceLoss(torch.from_numpy(m), **kw)(x, y)
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-10)
    g_ours, = torch.autograd.grad(ours.sum(), x)
    g_theirs, = torch.autograd.grad(theirs.sum(), x)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-5, atol=1e-10)


def test_monai_docstring_example_is_zero():
    m = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.5], [1.0, 0.5, 0.0]], dtype=np.float32)
    x = torch.tensor([[1000.0, 0, 0], [0, 1000, 0], [0, 0, 1000]]).T.reshape(1, 3, 3)
    assert float(GWDL(m)(x, torch.tensor([[0, 1, 2]]))) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("mode", ["default", "GDL"])
@pytest.mark.parametrize("batch", [False, True])
def test_matches_the_paper_formula_with_ignored_voxels(mode, batch):
    m = _matrix(4, seed=1)
    x, y = _case(5, (2, 4, 4, 3, 3))
    y[1, :, 0] = -1
    valid = y != -1
    expected = ref.gwdl_loss(torch.softmax(x, 1), y.clamp_min(0), m, valid, weighting_mode=mode, batch=batch)
    ours = GWDL(m, weighting_mode=mode, batch=batch, ignore_index=-1, reduction="none")(x, y)
    torch.testing.assert_close(ours, torch.from_numpy(expected), rtol=1e-9, atol=1e-12)


def test_ignored_voxels_are_inert():
    m = _matrix(3)
    x, y = _case(6, (2, 3, 4, 4, 4))
    y[0, :, 1] = 255
    loss = GWDL(m, ignore_index=255)
    x1, x2 = x.clone().requires_grad_(), x.clone()
    x2[0, :, 1] = 7.0
    x2.requires_grad_()
    l1, l2 = loss(x1, y), loss(x2, y)
    torch.testing.assert_close(l1, l2, rtol=0, atol=1e-14)
    l1.backward()
    assert torch.count_nonzero(x1.grad[0, :, 1]) == 0


def test_class_permutation_with_the_matrix_permuted_gives_the_same_loss():
    m = _matrix(4, seed=3)
    x, y = _case(8, (2, 4, 5, 4, 3))
    perm = torch.tensor([0, 2, 3, 1])  # keep the background first: the default weighting singles it out
    inverse = torch.argsort(perm)
    permuted = GWDL(m[perm][:, perm])(x[:, perm], inverse[y])
    torch.testing.assert_close(permuted, GWDL(m)(x, y))


def test_gradcheck():
    x, y = _case(9, (2, 3, 3, 2, 2))
    loss = GWDL(_matrix(3), weighting_mode="GDL", ignore_index=0)
    assert torch.autograd.gradcheck(lambda t: loss(t, y), (x.requires_grad_(),))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_outside_autocast(dtype):
    x, y = _case(10, (2, 4, 16, 16, 8))
    loss = GWDL(_matrix(4))
    low = x.to(dtype).requires_grad_()
    value = loss(low, y)
    value.backward()
    assert value.dtype == dtype and torch.isfinite(low.grad).all()
    torch.testing.assert_close(value.float(), loss(x.to(dtype).double(), y).float(), rtol=2e-2, atol=2e-3)


@pytest.mark.parametrize("matrix,error,text", [
    (np.zeros((3, 3)), InvalidOptionError, "all zeros"),
    (np.ones((2, 3)), ShapeMismatchError, "C x C"),
    (np.array([[0.0, -1.0], [1.0, 0.0]]), InvalidOptionError, ">= 0"),
    (np.array([[0.0, np.nan], [1.0, 0.0]]), InvalidOptionError, "finite"),
    ("identity", OptionTypeError, "numpy array"),
])
def test_bad_matrices_are_typed_errors_at_construction(matrix, error, text):
    with pytest.raises(error, match=text):
        GWDL(matrix)


def test_wrong_class_count_and_labels_are_typed_errors():
    x, y = _case(11, (1, 3, 4, 4, 4))
    with pytest.raises(ShapeMismatchError, match="one row and column per class"):
        GWDL(_matrix(4))(x, y)
    with pytest.raises(LabelValueError, match="outside"):
        GWDL(_matrix(3))(x, y + 1)
    with pytest.raises(InvalidOptionError, match="weighting_mode"):
        GWDL(_matrix(3), weighting_mode="gdl")


def test_the_loss_is_two_tables_of_the_operator(table_engine, monkeypatch):
    """One operator call per forward, on the engine the run is pinned to, with the "wasserstein" term alone."""
    from medloss.backends import op

    seen = []
    original = op.backends.forward

    def spy(engine, logits, target, options):
        seen.append((engine, options.voxel_term, options.region))
        return original(engine, logits, target, options)

    monkeypatch.setattr(op.backends, "forward", spy)
    x, y = _case(12, (2, 3, 4, 4, 4))
    GWDL(_matrix(3))(x.requires_grad_(), y).backward()
    assert seen == [(table_engine, "wasserstein", False)] and torch.isfinite(x.grad).all()


def test_a_loaded_matrix_reaches_the_operator():
    """load_state_dict replaces the `dist_matrix` buffer: the loss then scores with the loaded matrix."""
    x, y = _case(13, (2, 3, 4, 4, 4))
    loaded = GWDL(_matrix(3, seed=1))
    loss = GWDL(_matrix(3, seed=2))
    loss.load_state_dict(loaded.state_dict())
    torch.testing.assert_close(loss(x, y), loaded(x, y), rtol=0, atol=0)
    assert float((loss(x, y) - GWDL(_matrix(3, seed=2))(x, y)).abs()) > 1e-6
