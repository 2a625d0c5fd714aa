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
# against labels, the finalize step, the float64 explog forward at C = 14 (it spilled 8-32 B with Triton 3.6
# before its tile was halved and its registers capped at 128, the launch's options that the compile uses too); the
# fused losses' finalize and backward with the most registers
HEAVY = ("softmax C=4 bf16 focal int64", "sigmoid C=4 fp32 focal labels", "finalize C=4 fp32",
         "softmax C=14 fp64 explog int64 forward", "loss C=14 fp32 tversky-focal",
         "softmax C=14 fp32 ce int64 fused backward")


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
    # forward and backward, N % 16 == 0 or not, for two kernels; one finalize; the fp64 forward; one loss finalize;
    # the fused backward, N % 16 == 0 or not
    assert len(rows) == 14
    assert [row["maxnreg"] for row in rows if "fp64" in row["variant"]] == [128, 128]
    for row in rows:
        assert row["spill_bytes"] == 0 and row["local_stores"] == 0, row
        if row["n_multiple_of_16"]:  # 16-byte loads: v4 of 32-bit words, v2 of float64
            assert row["load_widths"].startswith("v2" if "fp64" in row["variant"] else "v4"), row
    assert proc.returncode == 0, proc.stdout[-2000:]


def test_heavy_forward_launches_cap_registers_and_halve_tiles():
    """The launch options and tiles that the compile above measures: 128 registers at most for the forward kernels
    of a logarithmic voxel term on float64 (or half precision, C > 8) logits and of the Wasserstein term on float64
    (or float32, C > 8), on halved tiles; the common float32 launches and every backward keep Triton's register
    allocation and their tiles."""
    import torch

    from medloss.backends import triton as api
    from medloss.backends.options import TableOptions

    focal, plain = TableOptions(voxel_term="focal"), TableOptions()
    wasserstein = TableOptions(voxel_term="wasserstein", matrix=((0.0, 1.0), (1.0, 0.0)))
    assert api.launch_options(4, focal, torch.float64, True) == {"num_warps": api.WARPS, "maxnreg": 128}
    for args in ((14, focal, torch.bfloat16, True), (4, wasserstein, torch.float64, True),
                 (14, wasserstein, torch.float32, True)):
        assert api.launch_options(*args)["maxnreg"] == 128, args
    for args in ((4, focal, torch.float64, False), (4, focal, torch.bfloat16, True), (4, focal, torch.float32, True),
                 (14, focal, torch.float32, True), (4, plain, torch.float64, True),
                 (4, wasserstein, torch.float32, True), (14, wasserstein, torch.bfloat16, True)):
        assert api.launch_options(*args) == {"num_warps": api.WARPS}, args
    assert api.blocks(4, focal, torch.float64) == (128, 4) and api.blocks(4, plain, torch.float64) == (256, 4)
    assert api.blocks(4, wasserstein, torch.float64) == (128, 4) and api.blocks(4, wasserstein) == (512, 4)
    assert api.blocks(14, wasserstein, torch.float32) == (64, 16)
    assert api.blocks(14, focal, torch.bfloat16) == (64, 16) and api.blocks(4, focal, torch.bfloat16) == (512, 4)
    assert api.blocks(4, focal, torch.float32) == api.blocks(4, plain, torch.float32) == (1024, 4)
