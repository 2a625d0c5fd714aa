"""The compiled kernel is built by the README's install (and CI's): a silent fallback to the eager path would hide
a broken build, so where a C compiler exists this test fails when the kernel is missing. On a machine without a
compiler the install falls back to the eager path by design, and the test is skipped (so is it with
MEDLOSS_ALLOW_NO_NATIVE=1)."""
from __future__ import annotations

import os
import shlex
import shutil
import sysconfig

import pytest

from medloss.backends import cpu as native


def _compiler_present() -> bool:
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shutil.which(shlex.split(cc)[0]) is not None


def test_kernel_is_built():
    if os.environ.get("MEDLOSS_ALLOW_NO_NATIVE") == "1":
        pytest.skip("MEDLOSS_ALLOW_NO_NATIVE=1")
    if not native.available() and not _compiler_present():
        pytest.skip("no C compiler on this machine: the eager path is used, by design")
    assert native.available(), (
        "medloss/backends/cpu/_kernels.c was not compiled at install although a C compiler exists")
    assert native.enabled() or os.environ.get("MEDLOSS_NATIVE") == "0"
