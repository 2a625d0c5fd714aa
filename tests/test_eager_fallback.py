"""Every engine passes the loss suite: the eager path (what other devices, fp16/bf16 CPU logits and installs without a
C compiler run) the whole loss suite — MONAI parity, paper references, gradcheck, invariances, bad input — with the
compiled kernel turned off; the Triton kernels (interpreted on CPU, compiled on CUDA) the MONAI parity and
paper-reference suites."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from medloss.backends import triton as triton_tables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_loss_suite_passes_on_the_eager_path():
    env = dict(os.environ, MEDLOSS_NATIVE="0")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests/losses",
         "tests/test_convergence.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.skipif(not triton_tables.available(), reason="Triton is not installed")
def test_parity_and_reference_suites_pass_on_the_triton_engine():
    env = dict(os.environ, MEDLOSS_BACKEND="triton", TRITON_INTERPRET=os.environ.get("TRITON_INTERPRET", "1"))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests/losses/test_monai_parity.py",
         "tests/losses/test_reference_parity.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
