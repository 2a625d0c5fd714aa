"""MONAI's own published loss test cases, run against medloss.

``data/monai_cases.json`` holds the inputs, options and expected values of the ``TEST_CASES*`` lists of MONAI's
``tests/losses/test_{dice,dice_ce,focal,generalized_dice,tversky,ds}_loss.py`` (regenerate with
``data/make_monai_cases.py``). Every case must give MONAI's published number, or be listed in ``DIFFERENCES`` with
the reason in docs/monai-differences.md and the behaviour medloss has instead (checked too). MONAI 1.6.1 itself
reproduces every published number (checked live, so the data is the installed MONAI's behaviour, not an older one's).
"""
from __future__ import annotations

import json
import pathlib
import warnings

import numpy as np
import pytest
import torch

import medloss.losses as L
from medloss.errors import InputRangeError, LabelValueError

pytestmark = pytest.mark.usefixtures("table_engine")  # every engine is held to these numbers

CASES = json.loads((pathlib.Path(__file__).parent / "data" / "monai_cases.json").read_text())
ACTIVATIONS = {"tanh": torch.tanh, "log_softmax": lambda x: torch.log_softmax(x, dim=1)}


def decode(value):
    if isinstance(value, dict) and "tensor" in value:
        return torch.tensor(value["tensor"], dtype=getattr(torch, value["dtype"]))
    if isinstance(value, dict) and "activation" in value:
        return ACTIVATIONS[value["activation"]]
    if isinstance(value, dict):
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return [decode(v) for v in value]
    return value


def case_id(case: dict) -> str:
    return f"{case['file'][5:-3]}:{case['case']}"


_SOFT = ("fractional target with soft_label=False: medloss raises LabelValueError (usually interpolated labels); "
         "check_input=False computes MONAI's product form", LabelValueError, {"check_input": False})
_LOGITS = ("probabilities expected but logits given (no activation): MONAI returns a negative Dice, medloss raises "
           "InputRangeError; check_input=False computes MONAI's number", InputRangeError, {"check_input": False})

# case -> (why medloss differs, as docs/monai-differences.md says; what the default does instead:
# the error it raises, or None for another number; the options that give MONAI's published number)
DIFFERENCES: dict[str, tuple[str, type[Exception] | None, dict]] = {
    "dice_loss:TEST_CASES[3]": _SOFT,
    "generalized_dice_loss:TEST_CASES[3]": _SOFT,
    "tversky_loss:TEST_CASES[3]": _SOFT,
    "dice_ce_loss:TEST_CASES[3]": _LOGITS,
    "dice_ce_loss:TEST_CASES[4]": _LOGITS,
    "dice_ce_loss:TEST_CASES[5]": _LOGITS,
    "generalized_dice_loss:TEST_CASES[9]": (
        "no class present: MONAI returns 0 (false positives free), medloss's empty='penalize' the soft "
        "false-positive rate", None, {"empty": "monai"}),
}


def build(case: dict, extra: dict | None = None, module=L):
    options = dict(decode(case["options"]), **(extra or {}))
    if case["loss"] == "DeepSupervisionLoss":
        return module.DeepSupervisionLoss(getattr(module, case["inner"])(**options), **decode(case["ds_options"]))
    return getattr(module, case["loss"])(**options)


def check(result: torch.Tensor, case: dict) -> None:
    expected = np.asarray(decode(case["expected"]))
    got = result.detach().numpy()
    np.testing.assert_allclose(got, expected.reshape(got.shape) if expected.size == got.size else expected,
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_published_case(case):
    input, target = decode(case["input"]), decode(case["target"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI's own warnings (e.g. one channel with to_onehot_y) are expected
        monai_losses = pytest.importorskip("monai.losses")
        check(build(case, module=monai_losses)(input, target), case)
        difference = DIFFERENCES.get(case_id(case))
        if difference is None:
            check(build(case)(input, target), case)
            return
        _, raises, fix = difference
        if raises is not None:
            with pytest.raises(raises):
                build(case)(input, target)
        else:
            with pytest.raises(AssertionError):
                check(build(case)(input, target), case)
        check(build(case, fix)(input, target), case)


def test_every_listed_difference_is_a_published_case():
    assert set(DIFFERENCES) <= {case_id(c) for c in CASES}


# MONAI's tests that state a rule rather than a table (restated with medloss, compared with MONAI live)

def test_focal_foreground_values():
    """MONAI test_focal_loss.test_foreground: 0.1116 with background, 0.1733 without."""
    background, foreground = torch.ones(1, 1, 5, 5), torch.zeros(1, 1, 5, 5)
    target = torch.cat((background, foreground), dim=1)
    input = target.clone()
    target[:, 0, 2, 2], target[:, 1, 2, 2] = 0, 1
    assert float(L.FocalLoss(include_background=True)(input, target)) == pytest.approx(0.1116, abs=1e-3)
    assert float(L.FocalLoss(include_background=False)(input, target)) == pytest.approx(0.1733, abs=1e-3)


@pytest.mark.parametrize("use_softmax", [False, True])
@pytest.mark.parametrize("empty", [False, True])
def test_focal_confident_prediction_is_near_zero(use_softmax, empty):
    """MONAI test_bin_seg_2d / test_empty_class_2d: very good logits give a focal loss of ~0, with alpha too."""
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    if not empty:
        target[0, 1:3, 1:3] = 1
    logits = 1000.0 * torch.nn.functional.one_hot(target, 2).permute(0, 3, 1, 2).float() - 500.0
    for alpha in (None, 0.5):
        loss = L.FocalLoss(to_onehot_y=True, alpha=alpha, use_softmax=use_softmax)(logits, target[:, None])
        assert float(loss) == pytest.approx(0.0, abs=1e-3)


M = pytest.importorskip("monai.losses")


@pytest.mark.parametrize("reduction", ["sum", "mean", "none"])
@pytest.mark.parametrize("case", ["onehot-bg", "labels-no-bg"])
def test_generalized_dice_focal_is_gdl_plus_weighted_focal(reduction, case):
    """MONAI test_generalized_dice_focal_loss: GDFL = GDL + lambda_focal * Focal(weight) (weight on focal only)."""
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(3, 3, 5, 5, generator=g, dtype=torch.float64)
    onehot = torch.randint(0, 2, (3, 3, 5, 5), generator=g)
    if case == "onehot-bg":
        common = dict(include_background=True, to_onehot_y=False, reduction=reduction, sigmoid=True)
        target, weights = onehot.double(), [None, [1.0, 1.0, 2.0], (3, 2.0, 1)]
    else:
        common = dict(include_background=False, to_onehot_y=True, reduction=reduction, sigmoid=True)
        target, weights = onehot.argmax(dim=1, keepdim=True), [2.0, [1.0, 2.0], (2.0, 1)]
    for weight in weights:
        ours = L.GeneralizedDiceFocalLoss(weight=weight, gamma=1.0, lambda_focal=1.5, **common)(pred, target)
        gdl = L.GeneralizedDiceLoss(**common)(pred, target)
        focal_common = {k: v for k, v in common.items() if k != "sigmoid"}
        focal = L.FocalLoss(weight=weight, gamma=1.0, **focal_common)(pred, target)
        if reduction == "none":
            gdl = gdl.reshape(*gdl.shape, 1, 1)
        torch.testing.assert_close(ours, gdl + 1.5 * focal)
        theirs = M.GeneralizedDiceFocalLoss(weight=weight, gamma=1.0, lambda_focal=1.5, **common)(pred, target)
        torch.testing.assert_close(ours.double(), theirs.double(), rtol=1e-5, atol=1e-6)


def test_deep_supervision_ill_shape_and_reduction():
    """MONAI test_ds_loss: mismatched target rank and DiceCELoss(reduction='none') are ValueErrors."""
    with pytest.raises(ValueError):
        L.DeepSupervisionLoss(L.DiceCELoss())(torch.ones((1, 2, 3)), torch.ones((1, 1, 2, 3)))
    with pytest.raises(ValueError):
        L.DeepSupervisionLoss(L.DiceCELoss(reduction="none"))
