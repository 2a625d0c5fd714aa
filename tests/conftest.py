"""Shared test configuration: deterministic seeds, CPU threads, GPU skipping, the engine fixture."""
from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
if not torch.cuda.is_available():
    # the Triton kernels run (slowly) on CPU tensors in Triton's interpreter; only tests ask for them on a CPU
    os.environ.setdefault("TRITON_INTERPRET", "1")


def _table_engines() -> list[str]:
    """The engines the engine-dependent tests run on: the compiled C kernel and the eager reference, or only the
    engine a run is pinned to (``MEDLOSS_BACKEND=<engine>``; ``MEDLOSS_NATIVE=0`` pins the eager one)."""
    pinned = os.environ.get("MEDLOSS_BACKEND", "auto").strip().lower() or "auto"
    if pinned != "auto":
        return [pinned]
    return ["eager"] if os.environ.get("MEDLOSS_NATIVE") == "0" else ["cpu", "eager"]


@pytest.fixture(params=_table_engines())
def table_engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once per engine of the table operator (``pytest.mark.usefixtures("table_engine")``): for the tests
    whose losses go through the operator, so that each engine is held to MONAI, the references and the typed
    errors, while the tests that never reach an engine run once."""
    from medloss.backends import cpu

    if request.param == "cpu" and not cpu.available():
        pytest.skip("the compiled kernel is not built (tests/backends/test_kernel_build.py says why)")
    monkeypatch.setenv("MEDLOSS_BACKEND", request.param)
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu") is not None:  # the marker, not a keyword: a folder named *gpu* is not one
            item.add_marker(skip)
