"""The MONAI-parity, paper-reference and Wasserstein Dice suites pass on the Triton engine (interpreted on CPU,
compiled on CUDA).

The C kernel and the eager engine run those suites in every session (the ``table_engine`` fixture of
tests/conftest.py); the Triton kernels take minutes under the interpreter, so they run them once, in a subprocess
pinned to the engine, three subprocesses of similar length. They are background tests (``pytest.mark.background``):
tests/conftest.py starts them when collection ends, on one thread, so that they run beside the rest of the session
on the second core, and these tests, moved to the end of the session, wait for them."""
from __future__ import annotations

import os
import sys

import pytest

from medloss.backends import triton as triton_tables

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: the suites, in subprocesses of similar length (the background lane runs two at a time once the session is done),
#: and about how many seconds each takes one core under the interpreter
SUITES = {
    "monai-parity": ("tests/losses/test_monai_parity.py",),
    "reference-region": ("tests/losses/test_reference_parity_region.py",),
    "reference-voxel-compound-wasserstein": ("tests/losses/test_reference_parity_voxel.py",
                                             "tests/losses/test_reference_parity_compound.py",
                                             "tests/losses/test_wasserstein.py"),
}
SECONDS = {"monai-parity": 100, "reference-region": 110, "reference-voxel-compound-wasserstein": 70}


def background_command(suites: str) -> tuple[list[str], dict[str, str]] | None:
    """The subprocess of :func:`test_parity_and_reference_suites_pass_on_the_triton_engine` for ``suites``: (argv,
    environment)."""
    if not triton_tables.available():
        return None
    env = dict(os.environ, MEDLOSS_BACKEND="triton", TRITON_INTERPRET=os.environ.get("TRITON_INTERPRET", "1"))
    return [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *SUITES[suites]], env


@pytest.mark.slow
@pytest.mark.background
@pytest.mark.timeout(1800)  # waits for the subprocess, started when collection ended
@pytest.mark.skipif(not triton_tables.available(), reason="Triton is not installed")
@pytest.mark.parametrize("suites", [pytest.param(k, marks=pytest.mark.background(seconds=SECONDS[k])) for k in SUITES])
def test_parity_and_reference_suites_pass_on_the_triton_engine(suites, background_result):
    returncode, output = background_result
    assert returncode == 0, output[-5000:]
