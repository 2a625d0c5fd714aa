"""The MONAI-parity and paper-reference suites pass on the Triton engine (interpreted on CPU, compiled on CUDA).

The C kernel and the eager engine run those suites in every session (the ``table_engine`` fixture of
tests/conftest.py); the Triton kernels take minutes under the interpreter, so they run them once here, in a
subprocess pinned to the engine."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from medloss.backends import triton as triton_tables

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
@pytest.mark.skipif(not triton_tables.available(), reason="Triton is not installed")
def test_parity_and_reference_suites_pass_on_the_triton_engine():
    env = dict(os.environ, MEDLOSS_BACKEND="triton", TRITON_INTERPRET=os.environ.get("TRITON_INTERPRET", "1"))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests/losses/test_monai_parity.py",
         "tests/losses/test_reference_parity.py", "tests/losses/test_wasserstein.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
