"""The benchmark scripts run (on tiny inputs: speed is measured in benchmarks/, never in tests)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HARNESS = os.path.normpath(os.path.join(ROOT, "..", "shared", "tools", "loss_bench.py"))
needs_harness = pytest.mark.skipif(not os.path.exists(HARNESS), reason="../shared/tools/loss_bench.py not present")


@needs_harness
def test_device_loss_bench_runs_on_cpu(tmp_path):
    """The GPU mode's plumbing (parity gate, interleaved timing, table, JSON) on CPU with a tiny case."""
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "device_loss_bench.py"), "--device", "cpu",
         "--shapes", "1x3x12", "--losses", "dice,focal,dicefocal", "--repeats", "2", "--warmup", "1",
         "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    rows = {r["loss"]: r for r in json.loads(out.read_text(encoding="utf-8"))}
    assert rows["dice"]["agree"] and rows["focal"]["agree"]
    assert rows["dice"]["monai_ms"] > 0 and rows["dice"]["medloss_ms"] > 0
    assert not rows["dicefocal"]["agree"] and "medloss_ms" not in rows["dicefocal"]  # differs from MONAI on purpose
    assert "| dice 1x3x12 | yes |" in proc.stdout


def test_device_loss_bench_refuses_missing_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "device_loss_bench.py"), "--device", "cuda"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and "no CUDA device" in proc.stderr


def test_sigmoid_bench_runs():
    """Parity gate, interleaved timing and the fresh-process memory measurement on one tiny case (each memory
    measurement is a fresh process that imports torch and MONAI)."""
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "sigmoid_bench.py"), "--shapes", "1x1x16",
         "--cases", "bcedice", "--repeats", "2", "--warmup", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| bcedice")]
    assert len(rows) == 1 and all("| yes |" in r for r in rows)
    peaks = [float(r.strip("|").split("|")[-1]) for r in rows]
    assert all(p > 0 for p in peaks)


@pytest.mark.slow
def test_topology_bench_runs_and_agrees_with_monai_on_one_channel(tmp_path):
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "topology_bench.py"), "--shapes", "1x1x12,1x3x12",
         "--repeats", "1", "--no-memory", "--json", str(out)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert proc.returncode == 0, proc.stderr
    rows = {(r["loss"], r["shape"]): r for r in json.loads(out.read_text(encoding="utf-8"))}
    assert rows[("SoftclDiceLoss", "1x1x12")]["agree"] and rows[("SoftDiceclDiceLoss", "1x1x12")]["agree"]
    assert not rows[("SoftclDiceLoss", "1x3x12")]["agree"]  # per class vs MONAI's pooled channels, by design
    assert "| SoftclDiceLoss 1x1x12 | yes |" in proc.stdout


def test_loss_study_runs_resumes_and_writes_its_outputs(tmp_path):
    """benchmarks/loss_study.py on a tiny set: per-case rows, bootstrap summary, PNG; --resume reuses runs."""
    import csv

    script = os.path.join(ROOT, "benchmarks", "loss_study.py")
    args = [sys.executable, script, "--losses", "DiceLoss,BCELoss", "--seeds", "1", "--steps", "3",
            "--train-cases", "3", "--test-cases", "3", "--size", "20", "--bootstrap", "20", "--out", str(tmp_path),
            "--no-progress", "--threads", "1"]
    env = dict(os.environ, PYTHONPATH=ROOT)
    first = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    with open(tmp_path / "runs.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["loss"] for r in rows} == {"DiceLoss", "BCELoss"} and len(rows) == 6
    assert {"dice", "hd95", "nsd", "tp_r<2", "fp_r>=4"} <= set(rows[0])
    with open(tmp_path / "summary.csv") as fh:
        summary = list(csv.DictReader(fh))
    dice = [r for r in summary if r["metric"] == "dice"]
    assert len(dice) == 2 and all(float(r["ci_low"]) <= float(r["mean"]) <= float(r["ci_high"]) for r in dice)
    assert (tmp_path / "study.png").stat().st_size > 0
    more_seeds = [("2" if a == "1" and args[i - 1] == "--seeds" else a) for i, a in enumerate(args)]
    second = subprocess.run(more_seeds + ["--resume"],
                            capture_output=True, text=True, timeout=600, env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "2 new runs" in second.stdout  # seed 0 of both losses reused, seed 1 trained


def test_loss_study_bucket_counts_use_one_to_one_matching():
    """A predicted blob that merges two small lesions detects one of them, not both (study's lesion rule)."""
    import numpy as np

    from tests._helpers import loss_study

    study = loss_study()
    ref = np.zeros((20, 20, 20), np.uint8)
    ref[5:7, 5:7, 5:7] = 1
    ref[5:7, 5:7, 9:11] = 1
    pred = np.zeros_like(ref)
    pred[5:7, 5:7, 5:11] = 1  # one blob over both
    counts = study.bucket_counts(pred.astype(bool), ref.astype(bool))
    assert counts["tp_r<2"] == 1 and counts["fn_r<2"] == 1
    assert sum(v for k, v in counts.items() if k.startswith("fp")) == 0
