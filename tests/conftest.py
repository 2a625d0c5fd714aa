"""Shared test configuration: deterministic seeds, CPU threads, GPU skipping, the engine fixture."""
from __future__ import annotations

import os
import queue
import signal
import subprocess
import tempfile
import threading

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
if "OMP_NUM_THREADS" not in os.environ:
    # One intra-op thread per process, subprocesses included: the tests' tensors are tiny, and a second OpenMP
    # thread spin-waits whenever the other core is busy (the background lane, a DDP peer, a subprocess). On the
    # 2-core machine with the other core loaded, 2 threads made the convergence tests 6x slower than 1. The tests of
    # the kernels' threading set their thread counts themselves; export OMP_NUM_THREADS to choose another count.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
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
# A test marked ``background`` checks a long subprocess: its module's ``background_command(**params)`` (params: the
# test's parametrization) gives (argv, environment), or None when there is nothing to run. The subprocesses run on
# one CPU thread each in a lane that starts as soon as collection ends, beside the session on the other core; the
# tests themselves run last and wait for their results. When the session reaches them its own core is free, so a
# second worker joins the lane and the remaining subprocesses run two at a time. Whatever is still running when the
# session ends is stopped.
class _BackgroundLane:
    def __init__(self, jobs: list[tuple[str, list[str], dict[str, str]]], cwd: str) -> None:
        self.cwd = cwd
        self.queue: queue.SimpleQueue[tuple[str, list[str], dict[str, str]]] = queue.SimpleQueue()
        for job in jobs:
            self.queue.put(job)
        self.results: dict[str, tuple[int, str]] = {}
        self.finished = {nodeid: threading.Event() for nodeid, _, _ in jobs}
        self.stopping = threading.Event()
        self.running: set[subprocess.Popen] = set()
        self.lock = threading.Lock()
        self.workers: list[threading.Thread] = []

    def add_worker(self, limit: int) -> None:
        """Start one more worker, up to ``limit`` in all."""
        with self.lock:
            if len(self.workers) < limit and not self.stopping.is_set():
                worker = threading.Thread(target=self._work, name=f"background-tests-{len(self.workers)}",
                                          daemon=True)
                self.workers.append(worker)
                worker.start()

    def _work(self) -> None:
        while not self.stopping.is_set():
            try:
                nodeid, argv, env = self.queue.get_nowait()
            except queue.Empty:
                return
            with tempfile.TemporaryFile() as log:
                with self.lock:
                    if self.stopping.is_set():
                        return
                    process = subprocess.Popen(
                        argv, cwd=self.cwd, env=dict(env, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1"),
                        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
                    self.running.add(process)
                process.wait()
                with self.lock:
                    self.running.discard(process)
                log.seek(0)
                self.results[nodeid] = process.returncode, log.read().decode("utf-8", "replace")
            self.finished[nodeid].set()

    def stop(self) -> None:
        with self.lock:
            self.stopping.set()
            for process in self.running:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
        for worker in self.workers:
            worker.join()
        for event in self.finished.values():  # a test still waiting (a signal mid-session) stops waiting
            event.set()


_LANE = pytest.StashKey[_BackgroundLane]()


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    jobs = []
    for item in session.items:
        marker = item.get_closest_marker("background")
        if marker is not None and isinstance(item, pytest.Function):
            params = item.callspec.params if hasattr(item, "callspec") else {}
            command = item.module.background_command(**params)
            if command is not None:
                jobs.append((marker.kwargs.get("seconds", 0), item.nodeid, *command))
    # longest first (``pytest.mark.background(seconds=...)``: about how long it takes one core), so that the two
    # workers of the end of the session share short jobs
    jobs = [job[1:] for job in sorted(jobs, key=lambda job: -job[0])]
    if jobs:
        lane = session.config.stash[_LANE] = _BackgroundLane(jobs, str(session.config.rootpath))
        lane.add_worker(limit=1)
        _stop_lane_on_termination(lane)


def _stop_lane_on_termination(lane: _BackgroundLane) -> None:
    """A session killed by SIGTERM or SIGHUP (a CI timeout, a closed terminal) never reaches
    ``pytest_sessionfinish``; the lane's subprocess runs in its own session, so nothing else would stop it."""
    if threading.current_thread() is not threading.main_thread():
        return

    def terminate(signum: int, _frame: object) -> None:
        lane.stop()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) in (signal.SIG_DFL, None):
            signal.signal(signum, terminate)


@pytest.fixture
def background_result(request: pytest.FixtureRequest) -> tuple[int, str]:
    """(return code, output) of this background test's subprocess, once it has finished."""
    lane = request.config.stash.get(_LANE, None)
    if lane is None or request.node.nodeid not in lane.finished:
        pytest.skip("nothing to run in the background (background_command() gave None)")
    lane.add_worker(limit=2)  # the session has reached its background tests: its core is free
    lane.finished[request.node.nodeid].wait()
    if request.node.nodeid not in lane.results:
        pytest.fail("the background lane was stopped before this test's subprocess finished")
    return lane.results[request.node.nodeid]


def pytest_sessionfinish(session: pytest.Session) -> None:
    lane = session.config.stash.get(_LANE, None)
    if lane is not None:
        lane.stop()
