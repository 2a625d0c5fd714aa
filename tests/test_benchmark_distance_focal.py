"""benchmarks/distance_focal_bench.py runs (tiny shapes; speed is measured in benchmarks/, never in tests)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow  # a subprocess importing MONAI and torch.profiler: ~40 s on a loaded 2-core machine
def test_distance_focal_bench_runs_parity_gated(tmp_path):
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "distance_focal_bench.py"), "--hd-shape", "1x3x12",
         "--aufl-shape", "1x2x12", "--repeats", "1", "--warmup", "0", "--json", str(out)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert {(r["loss"], r["impl"]) for r in rows} == {
        ("hd", "monai"), ("hd", "medloss (loader maps)"), ("hd", "medloss (no maps)"), ("aufl", "monai"),
        ("aufl", "medloss")}
    assert all(r["agree"] and r["ms"] > 0 and r["peak_mib"] > 0 for r in rows)
    assert "| hd | 1x3x12x12x12 | medloss (loader maps) | yes |" in proc.stdout
