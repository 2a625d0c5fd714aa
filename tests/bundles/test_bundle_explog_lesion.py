"""The explog_lesion bundle: what is specific to it (the Exponential Logarithmic loss).

Layout, metadata, config IDs, train/evaluate/infer from the bundle folder, resume, bad input and DDP are checked for
every bundle in ``bundle_cases.py``.
"""
from __future__ import annotations

import torch
from bundle_testing import config

NAME = "explog_lesion"


def test_exponential_logarithmic_loss_as_in_the_paper_with_batch_statistics():
    from monai.bundle import ConfigParser

    from medloss.losses import ExpLogLoss

    train = config(NAME, "train.json")
    assert train["loss"]["_target_"] == "medloss.losses.ExpLogLoss"
    assert train["num_classes"] == 2
    loss = ConfigParser(train).get_parsed_content("loss")
    assert isinstance(loss, ExpLogLoss)
    # Wong et al. 2018: 0.8 Dice term, 0.2 cross term, both exponents 0.3; pooled over the batch (DDP-ready)
    expected = {"w_dice": 0.8, "w_cross": 0.2, "gamma_dice": 0.3, "gamma_cross": 0.3, "batch": True,
                "softmax": True, "to_onehot_y": True, "include_background": False}
    assert {k: train["loss"][k] for k in expected} == expected
    logits, label = torch.randn(2, 2, 8, 8, 8, requires_grad=True), torch.randint(0, 2, (2, 1, 8, 8, 8))
    value = loss(logits, label)
    value.backward()
    assert value.ndim == 0 and torch.isfinite(value) and torch.isfinite(logits.grad).all()
