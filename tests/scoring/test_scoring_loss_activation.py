"""`--activation` means the same for every loss: probabilities with "none" score what their logits score with
"softmax" / "sigmoid", for every registered loss (the terms on logits get log p or log(p / (1 - p)))."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from medloss import registry
from medloss.errors import InputRangeError, InvalidOptionError
from medloss.scoring.loss_values import LOGIT_TERMS, RAW_LOGITS, build_loss, loss_rows

rng = np.random.default_rng(3)
LOGITS3 = rng.normal(scale=2.0, size=(3, 7, 6, 5)).astype(np.float32)
LABELS3 = rng.integers(0, 3, (7, 6, 5)).astype(np.uint8)
LABELS3[1:5, 1:5, 1:4] = 1
LOGITS1 = rng.normal(scale=2.0, size=(1, 7, 6, 5)).astype(np.float32)
LABELS1 = (LABELS3 > 0).astype(np.uint8)


# constructor options a registered loss cannot be built without (a loss that needs some and is not listed fails these
# tests with its TypeError, so that its way of taking logits gets checked here: LOGIT_TERMS)
REQUIRED_OPTIONS: dict[str, dict] = {
    "GeneralizedWassersteinDiceLoss": {"dist_matrix": [[0.0, 1.0, 1.0], [1.0, 0.0, 0.5], [1.0, 0.5, 0.0]]},
    "NACLLoss": {"classes": 3, "dim": 3},
}


def _values(name, activation, prob, ref):
    scorer, per_class = build_loss(name, activation, dict(REQUIRED_OPTIONS.get(name, {})))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [r["value"] for r in loss_rows(prob, ref, scorer, per_class, case="c", name=name)]


def _same_or_same_error(name, pair_none, pair_logits):
    try:
        got = _values(name, "none", *pair_none)
    except (ValueError, RuntimeError) as exc:
        got = type(exc)
    try:
        want = _values(name, pair_logits[0], *pair_logits[1:])
    except (ValueError, RuntimeError) as exc:
        want = type(exc)
    if isinstance(want, list) and isinstance(got, list):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6, err_msg=name)
    else:  # a loss that cannot take this layout (e.g. BCE with a label map of 3 classes) fails both ways
        assert isinstance(got, type) and isinstance(want, type), (name, got, want)
    return got


@pytest.mark.parametrize("name", registry.names())
def test_the_registry_declares_the_activation_flags_each_loss_takes(name):
    # the scorer sets an activation by the declared flag, never by reading the signature: the declaration must be
    # exactly the constructor's flags
    params = registry.defaults(name)
    assert set(registry.get(name).activations) == {flag for flag in ("softmax", "sigmoid") if flag in params}


@pytest.mark.parametrize("name", sorted(set(registry.names()) - set(RAW_LOGITS)))
def test_softmax_probabilities_score_as_their_logits(name):
    probs = torch.softmax(torch.from_numpy(LOGITS3), 0).numpy()
    _same_or_same_error(name, (probs, LABELS3), ("softmax", LOGITS3, LABELS3))


@pytest.mark.parametrize("name", registry.names())
def test_sigmoid_probabilities_score_as_their_logits(name):
    probs = torch.sigmoid(torch.from_numpy(LOGITS1)).numpy()
    _same_or_same_error(name, (probs, LABELS1), ("sigmoid", LOGITS1, LABELS1))


def test_every_logit_term_entry_names_a_registered_loss():
    assert set(LOGIT_TERMS) <= set(registry.names())


def test_a_loss_of_the_raw_logits_refuses_probabilities():
    with pytest.raises(InvalidOptionError, match="logits themselves"):
        build_loss("NACLLoss", "none", {"classes": 3, "dim": 3})
    scorer, _ = build_loss("NACLLoss", "softmax", {"classes": 3, "dim": 3})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = loss_rows(LOGITS3, LABELS3, scorer, False, case="c", name="NACLLoss")
    logits, labels = torch.from_numpy(LOGITS3)[None], torch.from_numpy(LABELS3)[None].long()
    expected = registry.load("NACLLoss")(classes=3, dim=3)(logits, labels)
    assert rows[0]["value"] == pytest.approx(float(expected), rel=1e-6)


# direct torch computations of the losses with a softmax term, on class probabilities p (C, *S) and labels y (*S)
def _ce_voxels(p, y):
    return -torch.log(p.double()).gather(0, y[None].long())[0].reshape(-1)


def _dice(p, y):
    g = torch.nn.functional.one_hot(y.long(), p.shape[0]).movedim(-1, 0).double()
    p = p.double()
    tp, s = (p * g).flatten(1).sum(1), (p + g).flatten(1).sum(1)
    return float((1 - (2 * tp + 1e-5) / (s + 1e-5)).mean())


def _topk(v, k=10.0):
    n = max(1, int(v.numel() * k / 100))
    return float(v.topk(n).values.mean())


def _focal(p, y, gamma=2.0):
    g = torch.nn.functional.one_hot(y.long(), p.shape[0]).movedim(-1, 0).double()
    p = p.double()
    return float((-g * (1 - p) ** gamma * torch.log(p)).mean())


EXPECTED = {
    "CrossEntropyLoss": lambda p, y: float(_ce_voxels(p, y).mean()),
    "TopKLoss": lambda p, y: _topk(_ce_voxels(p, y)),
    "FocalLoss": _focal,
    "DiceCELoss": lambda p, y: _dice(p, y) + float(_ce_voxels(p, y).mean()),
    "DiceTopKLoss": lambda p, y: _dice(p, y) + _topk(_ce_voxels(p, y)),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("activation", ["none", "softmax"])
def test_logit_losses_give_the_loss_of_the_probabilities(name, activation):
    z = torch.from_numpy(LOGITS3)
    p = torch.softmax(z, 0)
    got = _values(name, activation, (p if activation == "none" else z).numpy(), LABELS3)
    want = EXPECTED[name](p, torch.from_numpy(LABELS3))
    assert got == [pytest.approx(want, rel=1e-5)]


def test_cross_entropy_of_a_probability_volume_is_not_its_cross_entropy_as_logits():
    p = torch.softmax(torch.from_numpy(LOGITS3), 0)
    as_logits = float(torch.nn.functional.cross_entropy(p[None], torch.from_numpy(LABELS3).long()[None]))
    got = _values("CrossEntropyLoss", "none", p.numpy(), LABELS3)[0]
    assert got == pytest.approx(float(_ce_voxels(p, torch.from_numpy(LABELS3)).mean()), rel=1e-6)
    assert abs(got - as_logits) > 0.1  # the old, wrong reading


def test_zero_probability_of_the_true_class_costs_100_nats_as_torch_bce():
    p = np.zeros((2, 2, 2, 2), np.float32)
    p[0] = 1.0
    y = np.ones((2, 2, 2), np.uint8)
    assert _values("CrossEntropyLoss", "none", p, y) == [pytest.approx(100.0)]


def test_activation_that_the_logit_term_does_not_apply_is_refused():
    for name, activation in (("CrossEntropyLoss", "sigmoid"), ("TopKLoss", "sigmoid"), ("BCELoss", "softmax"),
                             ("AnatomyNetLoss", "sigmoid")):
        with pytest.raises(InvalidOptionError, match="--activation"):
            build_loss(name, activation, {})
    with pytest.raises(InvalidOptionError, match="DiceCELoss applies a softmax to 3 channels"):
        _values("DiceCELoss", "sigmoid", LOGITS3, LABELS3)
    with pytest.raises(InvalidOptionError, match="--activation none\\|softmax\\|sigmoid"):
        build_loss("FocalLoss", "none", {"use_softmax": True})


def test_probabilities_are_checked():
    with pytest.raises(InputRangeError, match="outside \\[0, 1\\]"):
        _values("CrossEntropyLoss", "none", LOGITS3, LABELS3)
    half = np.full((3, 7, 6, 5), 0.5, np.float32)  # sums to 1.5: not softmax probabilities
    with pytest.raises(InputRangeError, match="do not sum to 1"):
        _values("CrossEntropyLoss", "none", half, LABELS3)
