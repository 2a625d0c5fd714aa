"""TopKLoss / DiceTopKLoss: the paper-formula reference, nnU-Net's recorded numbers, ties, pooling, errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import medloss.losses as L
from medloss.errors import InvalidOptionError, LabelValueError, ShapeMismatchError
from tests._helpers import random_case, value_and_grad
from tests.reference import topk as ref

RECORDED = Path(__file__).resolve().parents[1] / "reference" / "data" / "authors_recorded.json"


@pytest.mark.parametrize("k", [10.0, 2.5, 33.0, 100.0])
@pytest.mark.parametrize("batch", [True, False])
@pytest.mark.parametrize("ignore", [None, 255])
def test_matches_the_reference(k, batch, ignore):
    logits, labels = random_case((2, 3, 6, 5, 4), ignore_index=ignore, seed=3)
    loss = L.TopKLoss(k=k, batch=batch, ignore_index=ignore, reduction="none")(logits, labels)
    expected = torch.as_tensor(ref.topk_ce(logits, labels, k=k, ignore_index=ignore, batch=batch), dtype=torch.float64)
    torch.testing.assert_close(loss, expected.reshape(loss.shape), rtol=1e-6, atol=1e-12)
    assert loss.shape == ((1,) if batch else (2,))


def _recorded():
    record = json.loads(RECORDED.read_text())
    shapes, inputs = record["shapes"], record["inputs"]
    x = torch.tensor(inputs["logits"], dtype=torch.float64).reshape(shapes["logits"])
    y = torch.tensor(inputs["labels"], dtype=torch.int64).reshape(shapes["labels"])
    return record["nnunet"], x, y


@pytest.mark.parametrize("k", [10, 25])
def test_equals_nnunet_topk_loss_value_and_gradient(k):
    nnunet, x, y = _recorded()
    value, grad = nnunet[f"topk_k{k}"]
    out, g = value_and_grad(L.TopKLoss(k=k), x, y)
    assert float(out) == pytest.approx(value, rel=1e-12)
    torch.testing.assert_close(g.flatten(), torch.tensor(grad, dtype=torch.float64), rtol=1e-10, atol=1e-14)


@pytest.mark.usefixtures("table_engine")
@pytest.mark.parametrize("batch_dice", [False, True])
def test_dice_topk_equals_nnunet_dc_and_topk_plus_one(batch_dice):
    """nnU-Net's Dice term is -Dice, ours 1 - Dice: same gradient, values 1 apart (its Dice sums in float32)."""
    nnunet, x, y = _recorded()
    value, grad = nnunet[f"dc_topk_batch{int(batch_dice)}"]
    loss = L.DiceTopKLoss(softmax=True, to_onehot_y=True, include_background=False, batch=batch_dice)
    out, g = value_and_grad(loss, x, y)
    assert float(out) == pytest.approx(value + 1.0, rel=1e-7)
    torch.testing.assert_close(g.flatten(), torch.tensor(grad, dtype=torch.float64), rtol=1e-6, atol=1e-9)


def test_the_gradient_of_ties_at_the_threshold_is_shared():
    """Six equal voxel losses, K = 3: each gets 1/6 of the gradient (torch.topk would give three of them 1/3)."""
    x = torch.zeros(1, 2, 6, 1, 1, dtype=torch.float64, requires_grad=True)
    y = torch.zeros(1, 1, 6, 1, 1, dtype=torch.int64)
    loss = L.TopKLoss(k=50.0)(x, y)
    loss.backward()
    torch.testing.assert_close(loss, torch.log(torch.tensor(2.0, dtype=torch.float64)))
    torch.testing.assert_close(x.grad[0, 1].flatten(), torch.full((6,), 0.5 / 6, dtype=torch.float64))


def test_ignored_voxels_change_nothing():
    logits, labels = random_case((2, 3, 6, 5, 4), ignore_index=255, seed=1)
    kept = labels != 255
    other = labels.masked_fill(~kept, 255)
    scrambled = logits.detach().clone()
    scrambled[~kept.expand_as(logits)] = 50.0  # values at ignored voxels must not matter
    a, ga = value_and_grad(L.TopKLoss(ignore_index=255), logits, labels)
    b, gb = value_and_grad(L.TopKLoss(ignore_index=255), scrambled, other)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(ga, gb)
    assert float(gb[~kept.expand_as(gb)].abs().max()) == 0.0


@pytest.mark.usefixtures("table_engine")
def test_k_100_is_the_cross_entropy_mean_and_soft_targets_work():
    logits, labels = random_case((2, 3, 4, 4, 3))
    torch.testing.assert_close(L.TopKLoss(k=100.0)(logits, labels), L.CrossEntropyLoss()(logits, labels))
    soft = torch.softmax(torch.randn(logits.shape, dtype=torch.float64), 1)
    torch.testing.assert_close(L.TopKLoss(k=100.0)(logits, soft), L.CrossEntropyLoss()(logits, soft))


def test_fully_ignored_batch_gives_zero_with_a_graph():
    logits, labels = random_case((1, 3, 3, 3, 2))
    out = L.TopKLoss(ignore_index=255)(logits, torch.full_like(labels, 255))
    out.backward()
    assert float(out.detach()) == 0.0 and float(logits.grad.abs().max()) == 0.0


@pytest.mark.parametrize("factory,error,text", [
    (lambda: L.TopKLoss(k=0), InvalidOptionError, r"`k`"),
    (lambda: L.TopKLoss(k=150), InvalidOptionError, r"`k`"),
    (lambda: L.TopKLoss(reduction="avg"), InvalidOptionError, r"`reduction`"),
    (lambda: L.DiceTopKLoss(reduction="none"), InvalidOptionError, r"reduction='none'"),
    (lambda: L.DiceTopKLoss(lambda_topk=-1), InvalidOptionError, r"`lambda_topk`"),
])
def test_bad_options(factory, error, text):
    with pytest.raises(error, match=text):
        factory()


def test_bad_inputs():
    logits, labels = random_case((2, 3, 4, 4, 3))
    with pytest.raises(ShapeMismatchError, match="1 channel"):
        L.TopKLoss()(logits[:, :1], labels)
    with pytest.raises(LabelValueError, match="outside"):
        L.TopKLoss()(logits, labels + 1)
    with pytest.raises(ShapeMismatchError, match="`target`"):
        L.DiceTopKLoss(softmax=True, to_onehot_y=True)(logits, labels[..., :2])


@pytest.mark.usefixtures("table_engine")
@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("ignore", [None, 255])
def test_dice_topk_matches_the_references(batch, ignore):
    from tests.reference import region
    from tests.reference._common import one_hot_np

    logits, labels = random_case((2, 3, 6, 5, 4), ignore_index=ignore, seed=5)
    probs = torch.softmax(logits.detach(), 1).numpy()
    onehot = one_hot_np(labels.numpy(), 3, ignore_value=ignore)
    valid = None if ignore is None else (labels[:, 0] != ignore).double().numpy()
    dice = region.dice_loss(probs[:, 1:], onehot[:, 1:], valid, batch=batch).mean()
    expected = dice + 0.5 * ref.topk_ce(logits, labels, k=10.0, ignore_index=ignore, batch=True)
    loss = L.DiceTopKLoss(softmax=True, to_onehot_y=True, include_background=False, batch=batch, lambda_topk=0.5,
                          ignore_index=ignore)(logits, labels)
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-6)
