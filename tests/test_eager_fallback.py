"""The eager path (what CUDA tensors, fp16/bf16 logits and installs without a C compiler run) passes the whole loss
suite — MONAI parity, paper references, gradcheck, invariances, bad input — with the compiled kernel turned off."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_loss_suite_passes_on_the_eager_path():
    env = dict(os.environ, MEDLOSS_NATIVE="0")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests/losses", "tests/test_convergence.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
