"""Every bundle's layout, metadata, configs, resume, documented commands and two-process training
(``bundle_cases.py``), and the installed wheel (``wheel_cases.py``): run in a subprocess beside the session
(``pytest.mark.background``, tests/conftest.py), because they are nearly all training and inference processes of
their own (about 3.5 minutes of one core). ``pytest tests/bundles/bundle_cases.py tests/bundles/wheel_cases.py``
runs them directly, test by test."""
from __future__ import annotations

import os
import sys

import pytest

CASES = ("tests/bundles/bundle_cases.py", "tests/bundles/wheel_cases.py")


def background_command(cases: str) -> tuple[list[str], dict[str, str]]:
    """The subprocess of :func:`test_bundles_and_the_installed_wheel` for one of :data:`CASES`: (argv, environment)."""
    return [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", cases], dict(os.environ)


@pytest.mark.slow
@pytest.mark.background
@pytest.mark.timeout(1800)  # waits for the subprocess, which may run after the other background tests
@pytest.mark.parametrize("cases", [pytest.param(CASES[0], marks=pytest.mark.background(seconds=180)),
                                   pytest.param(CASES[1], marks=pytest.mark.background(seconds=75))])
def test_bundles_and_the_installed_wheel(cases, background_result):
    returncode, output = background_result
    assert returncode == 0, output[-5000:]
