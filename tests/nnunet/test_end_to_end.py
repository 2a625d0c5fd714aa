"""nnU-Net end to end (plan, preprocess, ``medloss nnunet train`` / ``predict``, ``medloss score``): the cases in
``end_to_end_cases.py``, run in a subprocess beside the session (``pytest.mark.background``, tests/conftest.py)
because they take about two minutes of one core, nearly all of it in nnU-Net's own processes."""
from __future__ import annotations

import importlib.util
import os
import sys

import pytest

HAS_NNUNET = importlib.util.find_spec("nnunetv2") is not None and importlib.util.find_spec("nibabel") is not None


def background_command() -> tuple[list[str], dict[str, str]] | None:
    """The subprocess of :func:`test_train_predict_score_with_medloss_trainers`: (argv, environment)."""
    if not HAS_NNUNET:
        return None
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/nnunet/end_to_end_cases.py"]
    return argv, dict(os.environ)


@pytest.mark.slow
@pytest.mark.background(seconds=120)
@pytest.mark.timeout(1800)  # waits for the subprocess, which runs after the other background tests
@pytest.mark.skipif(not HAS_NNUNET, reason="nnunetv2 is not installed")
def test_train_predict_score_with_medloss_trainers(background_result):
    returncode, output = background_result
    assert returncode == 0, output[-5000:]
    assert " passed" in output and " skipped" not in output, output[-2000:]
