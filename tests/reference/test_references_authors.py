"""The top-k reference against the authors' recorded outputs (nnU-Net's TopKLoss; the record also holds the
boundary-loss numbers), the recorded inputs against the script that made them, and, when the authors' sources are
given by MEDLOSS_NNUNET_SRC / MEDLOSS_BOUNDARY_LOSS_SRC (git directories of MIC-DKFZ/nnUNet and LIVIAETS/boundary-loss),
a live re-recording against the stored one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from . import topk

DATA = Path(__file__).resolve().parent / "data"


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
