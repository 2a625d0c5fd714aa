"""TopKLoss and DiceTopKLoss: one activation for both terms, fully ignored samples (issue 18, items 10 and 14)."""
from __future__ import annotations

import pytest
import torch

import medloss.losses as L
from medloss.errors import InvalidOptionError


@pytest.mark.parametrize("kwargs,name", [({"sigmoid": True}, "sigmoid"), ({"other_act": torch.tanh}, "other_act")])
def test_dice_topk_refuses_an_activation_its_cross_entropy_cannot_follow(kwargs, name):
    """Before: Dice on sigmoid (or other_act) and the top-k cross-entropy on softmax, silently; refused as
    DiceFocalLoss refuses other_act."""
    with pytest.raises(InvalidOptionError, match=rf"`{name}` is not supported by DiceTopKLoss.*`softmax=True`"):
        L.DiceTopKLoss(**kwargs)
    with pytest.raises(InvalidOptionError, match=r"`other_act` is not supported by DiceFocalLoss"):
        L.DiceFocalLoss(other_act=torch.tanh)
    L.DiceTopKLoss(softmax=True, to_onehot_y=True)


def _case():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 3, 6, 6, 4, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 3, (3, 1, 6, 6, 4), generator=g)
    return logits, labels


def test_topk_per_sample_leaves_a_fully_ignored_sample_out_of_the_mean():
    """Before: 1.607 (half of 3.214: a 0 averaged in for the ignored sample); the mean of the others now."""
    logits, labels = _case()
    labels[1] = 255
    loss = L.TopKLoss(batch=False, ignore_index=255)
    kept = torch.tensor([0, 2])
    torch.testing.assert_close(loss(logits, labels), loss(logits[kept], labels[kept]))
    rows = L.TopKLoss(batch=False, ignore_index=255, reduction="none")(logits, labels)
    assert float(rows[1]) == 0.0 and float(loss(logits, labels)) == pytest.approx(float(rows[[0, 2]].mean()))
    # as the pooled form, where the ignored sample's voxels are not in the pool either
    pooled = L.TopKLoss(batch=True, ignore_index=255)
    torch.testing.assert_close(pooled(logits, labels), pooled(logits[kept], labels[kept]))


def test_topk_per_sample_with_every_voxel_ignored_is_zero_with_a_gradient():
    logits, labels = _case()
    logits.requires_grad_(True)
    out = L.TopKLoss(batch=False, ignore_index=255)(logits, torch.full_like(labels, 255))
    out.backward()
    assert float(out.detach()) == 0.0 and float(logits.grad.abs().sum()) == 0.0
