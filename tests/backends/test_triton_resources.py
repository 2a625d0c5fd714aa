"""Ahead-of-time sm_90 compiles of the Triton kernels (benchmarks/triton_resources.py on a subset, in a subprocess
because the test session may hold the interpreter's kernels): the heaviest variants of each kernel spill no
register and read N divisible by 16 with vector loads. Needs Triton with its bundled ptxas, no GPU."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="Triton is not installed")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# the heaviest variants of each kernel (those that spilled at some tile size): softmax focal in bf16, sigmoid focal
# against labels, the finalize step; the fused losses' finalize and backward with the most registers
HEAVY = ("softmax C=4 bf16 focal int64", "sigmoid C=4 fp32 focal labels", "finalize C=4 fp32",
         "loss C=14 fp32 tversky-focal", "softmax C=14 fp32 ce int64 fused backward")


@pytest.mark.slow
def test_heaviest_variants_compile_for_sm90_without_spills(tmp_path):
    out = tmp_path / "resources.json"
    cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "triton_resources.py"), "--json", str(out)]
    for name in HEAVY:
        cmd += ["--only", name]
    env = dict(os.environ, PYTHONPATH=ROOT, TRITON_DEFAULT_FP_FUSION="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if not out.exists() and "ptxas" not in proc.stderr and "Error" in proc.stderr:
        pytest.skip(f"this Triton cannot compile for sm_90: {proc.stderr[-300:]}")
    assert out.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = json.loads(out.read_text(encoding="utf-8"))["rows"]
    assert len(rows) == 12  # forward and backward, N % 16 == 0 or not, for two kernels; one finalize, one loss
    # finalize; the fused backward, N % 16 == 0 or not
    for row in rows:
        assert row["spill_bytes"] == 0 and row["local_stores"] == 0, row
        if row["n_multiple_of_16"]:
            assert row["load_widths"].startswith("v4"), row
    assert proc.returncode == 0, proc.stdout[-2000:]
