"""UnifiedFocalLoss / AsymmetricUnifiedFocalLoss: paper reference, MONAI (value and gradient), layouts, errors."""
from __future__ import annotations

import pytest
import torch

import medloss.losses as L
from medloss.errors import InvalidOptionError, LabelValueError, ShapeMismatchError
from tests._helpers import random_case, value_and_grad
from tests.reference import unified_focal as ref
from tests.reference._common import one_hot_np


def _case(shape, seed=0, ignore=None):
    logits, labels = random_case(shape, seed=seed, ignore_index=ignore)
    probs = torch.softmax(logits.detach(), 1)
    valid = None if ignore is None else (labels[:, 0] != ignore).double()
    onehot = torch.from_numpy(one_hot_np(labels.numpy(), shape[1], ignore_value=ignore))
    return logits, labels, probs, onehot, valid


@pytest.mark.parametrize("asymmetric", [True, False])
@pytest.mark.parametrize("classes", [2, 4])
@pytest.mark.parametrize("ignore", [None, 255])
def test_matches_the_reference(asymmetric, classes, ignore):
    logits, labels, probs, onehot, valid = _case((2, classes, 5, 4, 3), seed=classes, ignore=ignore)
    cls = L.AsymmetricUnifiedFocalLoss if asymmetric else L.UnifiedFocalLoss
    loss = cls(softmax=True, to_onehot_y=True, ignore_index=ignore, weight=0.3, gamma=0.4, delta=0.65,
               reduction="none")(logits, labels)
    expected = ref.unified_focal(probs, onehot, weight=0.3, gamma=0.4, delta=0.65, asymmetric=asymmetric,
                                 valid=valid)
    torch.testing.assert_close(loss.detach(), torch.from_numpy(expected), rtol=1e-6, atol=1e-12)
    assert loss.shape == (2,)


def _monai_equivalent(w):
    """MONAI's focal term is half the paper's: MONAI(w) = (1 - w)/(1 - l) * ours(weight=l), l = w / (2 - w)."""
    lam = w / (2.0 - w)
    return lam, (1.0 - w) / (1.0 - lam)


@pytest.mark.parametrize("weight,gamma,delta", [(0.5, 0.5, 0.7), (0.2, 0.3, 0.6), (0.8, 0.75, 0.5)])
@pytest.mark.parametrize("layout", ["label-map", "one-hot", "one-channel"])
def test_monai_asymmetric_unified_focal_loss_up_to_its_halved_focal_term(weight, gamma, delta, layout):
    from monai.losses import AsymmetricUnifiedFocalLoss as MonaiAUFL

    _, labels, probs, onehot, _ = _case((2, 2, 6, 5, 4), seed=7)
    if layout == "label-map":
        x, target, kw = probs, labels, {"to_onehot_y": True}
    elif layout == "one-hot":
        x, target, kw = probs, onehot, {}
    else:
        x, target, kw = probs[:, 1:], labels.double(), {}
    lam, scale = _monai_equivalent(weight)
    ours = L.AsymmetricUnifiedFocalLoss(weight=lam, gamma=gamma, delta=delta, **kw)
    theirs = MonaiAUFL(weight=weight, gamma=gamma, delta=delta, **kw)
    a, ga = value_and_grad(lambda p, t: scale * ours(p, t), x, target)
    b, gb = value_and_grad(theirs, x, target)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ga, gb, rtol=1e-8, atol=1e-12)


def test_one_sigmoid_channel_equals_two_softmax_channels():
    x = torch.randn(2, 1, 5, 4, 3, dtype=torch.float64)
    y = torch.randint(0, 2, (2, 1, 5, 4, 3))
    two = torch.cat([torch.zeros_like(x), x], dim=1)  # softmax([0, x]) = [1 - sigmoid(x), sigmoid(x)]
    for cls in (L.UnifiedFocalLoss, L.AsymmetricUnifiedFocalLoss):
        torch.testing.assert_close(cls(sigmoid=True)(x, y), cls(softmax=True, to_onehot_y=True)(two, y))


def test_default_arguments_are_monai_for_the_asymmetric_and_the_authors_for_the_symmetric():
    from medloss.registry import defaults

    aufl = defaults("AsymmetricUnifiedFocalLoss")
    assert (aufl["weight"], aufl["gamma"], aufl["delta"], aufl["num_classes"]) == (0.5, 0.5, 0.7, None)
    assert defaults("UnifiedFocalLoss")["delta"] == 0.6  # sym_unified_focal_loss(weight=0.5, delta=0.6, gamma=0.5)


@pytest.mark.parametrize("factory,error,text", [
    (lambda: L.AsymmetricUnifiedFocalLoss(delta=1.5), InvalidOptionError, r"`delta`"),
    (lambda: L.AsymmetricUnifiedFocalLoss(gamma=1.0), InvalidOptionError, r"`gamma`.*\[0, 1\)"),
    (lambda: L.UnifiedFocalLoss(weight=-0.1), InvalidOptionError, r"`weight`"),
    (lambda: L.UnifiedFocalLoss(num_classes=1), InvalidOptionError, r"`num_classes`"),
    (lambda: L.UnifiedFocalLoss(sigmoid=True, softmax=True), InvalidOptionError, r"mutually exclusive"),
])
def test_bad_options(factory, error, text):
    with pytest.raises(error, match=text):
        factory()


def test_bad_inputs():
    logits, labels, probs, _, _ = _case((2, 3, 4, 4, 3))
    with pytest.raises(ShapeMismatchError, match="num_classes=2"):
        L.AsymmetricUnifiedFocalLoss(num_classes=2, to_onehot_y=True)(probs, labels)
    with pytest.raises(LabelValueError, match="outside"):
        L.AsymmetricUnifiedFocalLoss(softmax=True, to_onehot_y=True)(logits, labels + 1)
    with pytest.raises(ValueError, match="softmax=True"):
        L.AsymmetricUnifiedFocalLoss(to_onehot_y=True)(logits.detach() * 5, labels)  # logits without activation
