"""Validate the issue-13 references (distance, top-k, unified focal) against independent code where it exists:
scipy's distance transform, MONAI 1.6.1, and the authors' recorded outputs (re-recorded live when their sources
are given by MEDLOSS_NNUNET_SRC / MEDLOSS_BOUNDARY_LOSS_SRC, git directories of MIC-DKFZ/nnUNet and
LIVIAETS/boundary-loss)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from . import distance, topk, unified_focal
from ._common import one_hot_np

DATA = Path(__file__).resolve().parent / "data"


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
    hd_loss = HausdorffDTLoss(softmax=True, include_background=True, reduction="none")
    expected = hd_loss(logits, torch.from_numpy(onehot))
    got = distance.hausdorff_dt(torch.softmax(logits, 1).numpy(), onehot)
    np.testing.assert_allclose(got, expected.reshape(2, 3).numpy(), rtol=1e-6)  # MONAI holds distances in float32


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


def _recorded():
    return json.loads((DATA / "authors_recorded.json").read_text())


def test_topk_reference_equals_nnunet_recorded():
    record = _recorded()
    x = torch.tensor(record["inputs"]["logits"], dtype=torch.float64).reshape(record["shapes"]["logits"])
    y = torch.tensor(record["inputs"]["labels"]).reshape(record["shapes"]["labels"])
    for k in (10, 25):
        assert topk.topk_ce(x, y, k=k) == pytest.approx(record["nnunet"][f"topk_k{k}"][0], rel=1e-12)


def test_recorded_inputs_are_those_of_the_script():
    sys.path.insert(0, str(DATA))
    try:
        from record_authors import inputs
    finally:
        sys.path.remove(str(DATA))
    record = _recorded()
    for key, value in inputs().items():
        assert value.flatten().tolist() == record["inputs"][key], key


SOURCES = {"nnunet": os.environ.get("MEDLOSS_NNUNET_SRC"), "boundary": os.environ.get("MEDLOSS_BOUNDARY_LOSS_SRC")}


@pytest.mark.slow
@pytest.mark.skipif(not all(SOURCES.values()), reason="authors' sources not given (MEDLOSS_NNUNET_SRC, "
                    "MEDLOSS_BOUNDARY_LOSS_SRC)")
def test_live_authors_code_reproduces_the_recorded_numbers(tmp_path):
    out = tmp_path / "live.json"
    subprocess.run([sys.executable, str(DATA / "record_authors.py"), "--nnunet", SOURCES["nnunet"], "--boundary",
                    SOURCES["boundary"], "--out", str(out)], check=True, capture_output=True, timeout=300)
    live, stored = json.loads(out.read_text()), _recorded()
    for repo in ("nnunet", "boundary"):
        for key, value in stored[repo].items():
            if key != "commit":
                np.testing.assert_allclose(_floats(live[repo][key]), _floats(value), rtol=1e-12, err_msg=key)


def _floats(value) -> list[float]:
    """Every number of a nested record entry, in order."""
    if isinstance(value, dict):
        return [f for v in value.values() for f in _floats(v)]
    if isinstance(value, (list, tuple)):
        return [f for v in value for f in _floats(v)]
    return [float(value)]
