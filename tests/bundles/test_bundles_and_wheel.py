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


def background_command() -> tuple[list[str], dict[str, str]]:
    """The subprocess of :func:`test_bundles_and_the_installed_wheel`: (argv, environment)."""
    return [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", *CASES], dict(os.environ)


@pytest.mark.slow
@pytest.mark.background
@pytest.mark.timeout(1800)  # waits for the subprocess, which runs after the other background tests
def test_bundles_and_the_installed_wheel(background_result):
    returncode, output = background_result
    assert returncode == 0, output[-5000:]
