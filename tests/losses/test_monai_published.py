"""MONAI's own published loss test cases, run against medloss.

``data/monai_cases.json`` holds the inputs, options and expected values of the ``TEST_CASES*`` lists of MONAI's
``tests/losses/test_{dice,dice_ce,focal,generalized_dice,tversky,ds}_loss.py`` (regenerate with
``data/make_monai_cases.py``). Every case must give MONAI's published number, or be listed in ``DIFFERENCES`` with
the README's reason and the behaviour medloss has instead (checked too).
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

# case -> (why medloss differs, as README "Where medloss differs from MONAI" says; what the default does instead:
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


def build(case: dict, extra: dict | None = None):
    options = dict(decode(case["options"]), **(extra or {}))
    if case["loss"] == "DeepSupervisionLoss":
        return L.DeepSupervisionLoss(getattr(L, case["inner"])(**options), **decode(case["ds_options"]))
    return getattr(L, case["loss"])(**options)


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
