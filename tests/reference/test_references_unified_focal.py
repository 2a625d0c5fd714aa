"""The unified focal reference against MONAI 1.6.1's AsymmetricUnifiedFocalLoss."""

from __future__ import annotations

import pytest
import torch

from . import unified_focal
from ._common import one_hot_np


def test_unified_focal_reference_equals_monai_up_to_its_halved_focal_term():
    from monai.losses import AsymmetricUnifiedFocalLoss

    gen = torch.Generator().manual_seed(2)
    probs = torch.softmax(torch.randn(2, 2, 5, 4, 3, generator=gen, dtype=torch.float64), 1)
    labels = torch.randint(0, 2, (2, 1, 5, 4, 3), generator=gen)
    onehot = one_hot_np(labels.numpy(), 2)
    w, lam = 0.4, 0.4 / 1.6
    expected = float(AsymmetricUnifiedFocalLoss(to_onehot_y=True, weight=w, gamma=0.3, delta=0.7)(probs, labels))
    got = unified_focal.unified_focal(probs, onehot, weight=lam, gamma=0.3, delta=0.7, asymmetric=True).mean()
    assert got * (1 - w) / (1 - lam) == pytest.approx(expected, rel=1e-10)
