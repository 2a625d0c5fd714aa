"""Options are validated once, in the constructor; a training step checks its input tensor once and builds no
options (counted by wrapping the validators)."""
from __future__ import annotations

import pytest
import torch

from medloss import checks
from medloss.backends.options import TableOptions
from medloss.functional import prepare
from medloss.losses import (
    BCEDiceLoss,
    BCELoss,
    CrossEntropyLoss,
    DiceCELoss,
    DiceFocalLoss,
    DiceLoss,
    DiceTopKLoss,
    FocalLoss,
    GeneralizedDiceFocalLoss,
    GeneralizedWassersteinDiceLoss,
    TopKLoss,
    TverskyLoss,
)

LOSSES = {
    "DiceCELoss": lambda: DiceCELoss(softmax=True, to_onehot_y=True),
    "DiceCELoss-dice0": lambda: DiceCELoss(softmax=True, to_onehot_y=True, lambda_dice=0),
    "DiceCELoss-ce0": lambda: DiceCELoss(softmax=True, to_onehot_y=True, lambda_ce=0),
    "DiceCELoss-sigmoid": lambda: DiceCELoss(sigmoid=True, to_onehot_y=True),
    "BCEDiceLoss-dice0": lambda: BCEDiceLoss(lambda_dice=0),
    "BCEDiceLoss-bce0": lambda: BCEDiceLoss(lambda_bce=0),
    "DiceFocalLoss-dice0": lambda: DiceFocalLoss(softmax=True, to_onehot_y=True, lambda_dice=0),
    "DiceFocalLoss-focal0": lambda: DiceFocalLoss(sigmoid=True, to_onehot_y=True, lambda_focal=0),
    "DiceTopKLoss-dice0": lambda: DiceTopKLoss(softmax=True, to_onehot_y=True, lambda_dice=0),
    "DiceLoss": lambda: DiceLoss(softmax=True, to_onehot_y=True),
    "TverskyLoss": lambda: TverskyLoss(softmax=True, to_onehot_y=True, alpha=0.3, beta=0.7),
    "DiceLoss-ignore": lambda: DiceLoss(softmax=True, to_onehot_y=True, ignore_index=255, batch=True),
    "DiceLoss-sigmoid": lambda: DiceLoss(sigmoid=True, to_onehot_y=True),
    "CrossEntropyLoss": lambda: CrossEntropyLoss(),
    "CrossEntropyLoss-ignore": lambda: CrossEntropyLoss(ignore_index=255),
    "BCELoss-dense": lambda: BCELoss(ignore_index=255),
    "FocalLoss-sigmoid": lambda: FocalLoss(to_onehot_y=True, alpha=0.25),
    "FocalLoss-softmax": lambda: FocalLoss(to_onehot_y=True, use_softmax=True, ignore_index=255),
    "FocalLoss-sigmoid-dense": lambda: FocalLoss(),
    "TopKLoss": lambda: TopKLoss(k=10),
    "TopKLoss-sample": lambda: TopKLoss(k=10, batch=False, ignore_index=255),
    "DiceFocalLoss-softmax": lambda: DiceFocalLoss(softmax=True, to_onehot_y=True, ignore_index=255),
    "DiceFocalLoss-sigmoid": lambda: DiceFocalLoss(sigmoid=True, to_onehot_y=True, alpha=0.25),
    "DiceFocalLoss-none": lambda: DiceFocalLoss(softmax=True, to_onehot_y=True, reduction="none"),
    "GeneralizedDiceFocalLoss": lambda: GeneralizedDiceFocalLoss(softmax=True, to_onehot_y=True),
    "GeneralizedDiceFocalLoss-focal": lambda: GeneralizedDiceFocalLoss(sigmoid=True, to_onehot_y=True, lambda_gdl=0),
    "DiceTopKLoss": lambda: DiceTopKLoss(softmax=True, to_onehot_y=True, include_background=False),
    "GeneralizedWassersteinDiceLoss": lambda: GeneralizedWassersteinDiceLoss(
        [[0.0, 1.0, 0.5], [1.0, 0.0, 0.7], [0.5, 0.7, 0.0]], ignore_index=255, batch=True),
}
# per-voxel values (torch's cross-entropy), no table options to build
NO_TABLES = {"TopKLoss", "TopKLoss-sample", "DiceTopKLoss-dice0"}
# (B, C, *S) binary targets, one per logit
DENSE_TARGET = {"BCELoss-dense", "FocalLoss-sigmoid-dense", "BCEDiceLoss-dice0", "BCEDiceLoss-bce0"}


@pytest.fixture
def counts(monkeypatch):
    """{"options": TableOptions validations, "input": input-tensor checks}, counting from the fixture's start."""
    seen = {"options": 0, "input": 0}
    post_init, check = TableOptions.__post_init__, checks.check_input_tensor

    def counting_post_init(self):
        seen["options"] += 1
        post_init(self)

    def counting_check(*args, **kwargs):
        seen["input"] += 1
        return check(*args, **kwargs)

    monkeypatch.setattr(TableOptions, "__post_init__", counting_post_init)
    monkeypatch.setattr(checks, "check_input_tensor", counting_check)
    monkeypatch.setattr(prepare, "check_input_tensor", counting_check)
    return seen


@pytest.mark.parametrize("engine", ["auto", "eager"])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_a_step_builds_no_options_and_checks_the_input_once(name, engine, counts, monkeypatch):
    monkeypatch.setenv("MEDLOSS_BACKEND", engine)
    loss = LOSSES[name]()
    built_in_init = counts["options"]
    logits = torch.randn(2, 3, 6, 6, 6, requires_grad=True)
    labels = torch.randint(0, 3 if "sigmoid" not in name else 2, (2, 1, 6, 6, 6))
    if name in DENSE_TARGET:
        labels = torch.randint(0, 2, (2, 3, 6, 6, 6)).float()
    for step in range(2):
        counts["options"] = counts["input"] = 0
        value = loss(logits, labels).sum()  # "none" gives the elements
        value.backward()
        assert counts == {"options": 0, "input": 1}, f"step {step}"
        assert torch.isfinite(value) and logits.grad is not None
    assert built_in_init >= (name not in NO_TABLES)  # the constructor built (and validated) the options the steps use
