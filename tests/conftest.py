"""Shared test configuration: deterministic seeds, CPU threads, GPU skipping, the engine fixture."""
from __future__ import annotations

import os
import signal
import subprocess
import tempfile

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


#: per engine-dependent test (its node id without the engine): whether it reached the table operator on the first
#: engine it ran on; the ids of one test function run engine by engine, the first engine's cases first
_REACHED_OPERATOR = pytest.StashKey[dict]()
#: whether a test's call phase was skipped (a skip inside the test says nothing about the operator)
_CALL_SKIPPED = pytest.StashKey[bool]()


def _case_key(node: pytest.Item) -> tuple:
    callspec = getattr(node, "callspec", None)
    params = {} if callspec is None else callspec.params
    return node.nodeid.split("[", 1)[0], tuple(sorted((k, repr(v)) for k, v in params.items() if k != "table_engine"))


@pytest.fixture(params=_table_engines())
def table_engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """Run a test once per engine of the table operator (``pytest.mark.usefixtures("table_engine")``): for the tests
    whose losses go through the operator, so that each engine is held to MONAI, the references and the typed
    errors, while the tests that never reach an engine run once.

    Whether a case reaches the operator is decided by the loss (its fused path), never by the engine, so a case
    that did not reach it on the first engine (a dense path: probabilities, ``other_act``, soft targets) is
    skipped on the others instead of running the same torch code again."""
    from medloss import backends
    from medloss.backends import cpu

    if request.param == "cpu" and not cpu.available():
        pytest.skip("the compiled kernel is not built (tests/backends/test_kernel_build.py says why)")
    reached = request.config.stash.setdefault(_REACHED_OPERATOR, {})
    key = _case_key(request.node)
    if reached.get(key) is False:
        pytest.skip("engine-independent case: it never reached the table operator on the first engine")
    calls = [0]

    def counted(*args, _forward=backends.forward, **kwargs):
        calls[0] += 1
        return _forward(*args, **kwargs)

    monkeypatch.setenv("MEDLOSS_BACKEND", request.param)
    monkeypatch.setattr(backends, "forward", counted)
    yield request.param
    if calls[0] or not request.node.stash.get(_CALL_SKIPPED, False):
        reached.setdefault(key, calls[0] > 0)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if call.when == "call":
        item.stash[_CALL_SKIPPED] = report.skipped
    return report


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def pytest_collection_modifyitems(config, items):
    # background tests wait for their subprocess (started when collection ends) at the end of the session
    items.sort(key=lambda item: item.get_closest_marker("background") is not None)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu") is not None:  # the marker, not a keyword: a folder named *gpu* is not one
            item.add_marker(skip)


# --- background tests -------------------------------------------------------------------------------------------
# A test marked ``background`` checks a long subprocess (its module's ``background_command()`` gives argv and
# environment, or None when there is nothing to run). The subprocess starts as soon as collection ends, on one CPU
# thread, and runs beside the session on the other core; the test itself runs last and waits for it, so the
# session's wall time is not the sum of the two. Whatever is still running when the session ends is stopped.
_BACKGROUND = pytest.StashKey[dict]()


def pytest_collection_finish(session: pytest.Session) -> None:
    started = session.config.stash.setdefault(_BACKGROUND, {})
    for item in session.items:
        if item.get_closest_marker("background") is None or not isinstance(item, pytest.Function):
            continue
        command = item.module.background_command()
        if command is None:
            continue
        argv, env = command
        env = dict(env, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in pytest_sessionfinish, after the subprocess ends)
        proc = subprocess.Popen(argv, cwd=str(session.config.rootpath), env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        started[item.nodeid] = proc, log


@pytest.fixture
def background_result(request: pytest.FixtureRequest) -> tuple[int, str]:
    """(return code, output) of this background test's subprocess, once it has finished."""
    started = request.config.stash.get(_BACKGROUND, {})
    if request.node.nodeid not in started:
        pytest.skip("nothing to run in the background (background_command() gave None)")
    proc, log = started[request.node.nodeid]
    proc.wait()
    log.seek(0)
    return proc.returncode, log.read().decode("utf-8", "replace")


def pytest_sessionfinish(session: pytest.Session) -> None:
    for proc, log in session.config.stash.get(_BACKGROUND, {}).values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
