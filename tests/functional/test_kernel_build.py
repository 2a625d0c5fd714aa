"""The compiled kernel is built by the README's install (and CI's): a silent fallback to the eager path would hide
a broken build, so this test is not skipped when the kernel is missing (set MEDLOSS_ALLOW_NO_NATIVE=1 on machines
without a C compiler)."""
from __future__ import annotations

import os

import pytest

from medloss.functional import native


def test_kernel_is_built():
    if os.environ.get("MEDLOSS_ALLOW_NO_NATIVE") == "1":
        pytest.skip("MEDLOSS_ALLOW_NO_NATIVE=1")
    assert native.available(), "medloss/functional/_kernels.c was not compiled at install (is a C compiler present?)"
    assert native.enabled() or os.environ.get("MEDLOSS_NATIVE") == "0"
