"""The distance references (brute-force signed distance, Hausdorff DT) against scipy's distance transform and
MONAI 1.6.1."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from . import distance
from ._common import one_hot_np


@pytest.mark.parametrize("spacing", [None, (0.5, 2.0, 1.25)])
def test_brute_force_signed_distance_equals_scipy(spacing):
    gen = np.random.default_rng(0)
    mask = ndi.gaussian_filter(gen.random((6, 5, 4)), 1.0) > 0.5
    expected = ndi.distance_transform_edt(~mask, sampling=spacing) - ndi.distance_transform_edt(mask, sampling=spacing)
    np.testing.assert_allclose(distance.brute_signed_distance(mask, spacing), expected, rtol=1e-12, atol=1e-12)


def test_hausdorff_reference_equals_monai():
    from monai.losses import HausdorffDTLoss

    gen = torch.Generator().manual_seed(1)
    logits = 2.0 * torch.randn(2, 3, 5, 4, 4, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 1, 5, 4, 4), generator=gen)
    onehot = one_hot_np(labels.numpy(), 3)
    monai_loss = HausdorffDTLoss(softmax=True, include_background=True, reduction="none")
    expected = monai_loss(logits, torch.from_numpy(onehot))
    got = distance.hausdorff_dt(torch.softmax(logits, 1).numpy(), onehot)
    np.testing.assert_allclose(got, expected.reshape(2, 3).numpy(), rtol=1e-6)  # MONAI holds distances in float32
