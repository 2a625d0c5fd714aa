"""benchmarks/nnunet_loss_bench.py runs, parity-gated (tiny shapes; speed is measured in benchmarks/, not here)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("nnunetv2")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow  # a subprocess importing nnU-Net and torch.profiler: ~15 s on a loaded 2-core machine
def test_nnunet_loss_bench_runs_parity_gated(tmp_path):
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "nnunet_loss_bench.py"), "--shapes", "1x3x16",
         "--maps", "1x3x16", "--levels", "3", "--repeats", "1", "--warmup", "0", "--json", str(out)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": ROOT}, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [(r["case"], r["impl"].split()[0]) for r in rows] == [
        ("dice_ce", "nnU-Net"), ("dice_ce", "medloss"), ("dice_topk", "nnU-Net"), ("dice_topk", "medloss"),
        ("dice_bce", "nnU-Net"), ("dice_bce", "medloss"), ("skeleton_recall", "nnU-Net"),
        ("skeleton_recall", "medloss"), ("blob", "nnU-Net"), ("blob", "medloss"), ("dice_boundary", "nnU-Net"),
        ("dice_boundary", "medloss")]
    assert all(r["agree"] is not False and r["ms"] > 0 and r["peak_mib"] > 0 for r in rows)
    assert [r["agree"] for r in rows[6:]] == [None] * 6  # different losses: no parity gate
    assert all(r["transform_ms_per_sample"] > 0 for r in rows[7::2])
    assert "| dice_bce | 1x3x16 | medloss DiceCE trainer (regions) | yes |" in proc.stdout
