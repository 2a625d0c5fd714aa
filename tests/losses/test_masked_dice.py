"""MaskedDiceLoss: MONAI 1.6.1's numbers over its option grid (binary and soft masks), the meaning of a mask, and
typed errors for masks that do not fit."""
from __future__ import annotations

import itertools

import pytest
import torch

from medloss.errors import InputRangeError, LabelValueError, ShapeMismatchError
from medloss.losses import DiceLoss, MaskedDiceLoss

monai_losses = pytest.importorskip("monai.losses")

SHAPE = (2, 3, 5, 4, 3)


def _case(seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(SHAPE, generator=gen, dtype=torch.float64) * 2
    y = torch.randint(0, 3, (2, 1, *SHAPE[2:]), generator=gen)
    mask = (torch.rand((2, 1, *SHAPE[2:]), generator=gen) > 0.4).double()
    return x, y, mask


GRID = [g for g in itertools.product([True, False], ["softmax", "sigmoid", "probs"], [True, False], [True, False],
                                    [False, True], ["none", "mean"], ["binary", "soft", "shared"])
        if g[5] == "none" or g[1] == "softmax"]


@pytest.mark.parametrize("to_onehot_y,act,include_background,batch,squared_pred,reduction,mask_kind", GRID)
def test_matches_monai_value_and_gradient(to_onehot_y, act, include_background, batch, squared_pred, reduction,
                                          mask_kind):
    x, y, mask = _case(3)
    x.requires_grad_()
    if mask_kind == "soft":
        if to_onehot_y:
            pytest.skip("a soft mask turns a label map into fractional labels (refused, tested below)")
        mask = torch.rand_like(mask)
    elif mask_kind == "shared":
        mask = mask[:1]
    target = y if to_onehot_y else torch.nn.functional.one_hot(y[:, 0], 3).movedim(-1, 1).double()
    kw = dict(to_onehot_y=to_onehot_y, include_background=include_background, batch=batch, reduction=reduction,
              squared_pred=squared_pred)
    make_input = (lambda: torch.softmax(x, 1)) if act == "probs" else (lambda: x)
    if act != "probs":
        kw[act] = True
    ours = MaskedDiceLoss(**kw)(make_input(), target, mask)
    theirs = monai_losses.MaskedDiceLoss(**kw)(make_input(), target, mask)
    torch.testing.assert_close(ours, theirs.reshape(ours.shape), rtol=1e-5, atol=1e-10)
    g_ours, = torch.autograd.grad(ours.sum(), x)
    g_theirs, = torch.autograd.grad(theirs.sum(), x)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-5, atol=1e-10)


@pytest.mark.usefixtures("table_engine")
def test_without_a_mask_it_is_dice_with_monais_warning():
    x, y, _ = _case(4)
    with pytest.warns(UserWarning, match="No mask value specified"):
        value = MaskedDiceLoss(softmax=True, to_onehot_y=True)(x, y)
    torch.testing.assert_close(value, DiceLoss(softmax=True, to_onehot_y=True)(x, y))


def test_masked_voxels_carry_no_gradient():
    x, y, mask = _case(5)
    x.requires_grad_()
    MaskedDiceLoss(softmax=True, to_onehot_y=True)(x, y, mask).backward()
    assert torch.count_nonzero(x.grad * (1 - mask)) == 0


def test_a_soft_mask_on_a_label_map_and_bad_masks_are_typed_errors():
    x, y, mask = _case(7)
    loss = MaskedDiceLoss(softmax=True, to_onehot_y=True)
    with pytest.raises(InputRangeError, match="binary mask with `to_onehot_y=True`"):
        loss(x, y, mask * 0.5)
    with pytest.raises(InputRangeError, match=r"\[0, 1\]"):
        loss(x, y, mask * 2)
    with pytest.raises(LabelValueError, match="outside"):
        loss(x, y + 3, mask)


@pytest.mark.parametrize("shape", [(2, 2, 5, 4, 3), (3, 1, 5, 4, 3), (2, 1, 5, 4), (2, 1, 5, 4, 4)])
def test_masks_that_do_not_fit_are_typed_errors(shape):
    x, y, _ = _case(6)
    with pytest.raises(ShapeMismatchError, match="`mask` of shape"):
        MaskedDiceLoss(softmax=True, to_onehot_y=True)(x, y, torch.ones(shape))
