"""Process-pool workers that never outlive the process that started them, and ending a pool at once.

* :func:`init_worker` is the initializer of a pool's processes: they ignore SIGINT (Ctrl-C reaches the whole process
  group; the parent ends them), take SIGTERM's default action, and die with their parent even when it is killed
  with SIGKILL: on Linux by ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, elsewhere by a thread that watches the parent pid.
  Without it a worker blocks forever on the pool's call queue, whose other end the sibling workers keep open.
* :func:`end_pool` cancels the pending jobs and ends the workers at once.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent() -> bool:
    """Ask Linux to SIGKILL this process when its parent ends; ``False`` where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), ctypes.c_ulong(0), ctypes.c_ulong(0),
                          ctypes.c_ulong(0)) == 0
    except (OSError, AttributeError):
        return False


def watch_parent(parent_pid: int, interval: float = 0.5) -> threading.Thread:
    """Start a daemon thread that ends this process (exit status 1) once ``parent_pid`` is no longer its parent.

    POSIX re-parents an orphan, so ``os.getppid()`` changes when the parent dies, however it died.
    """
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os._exit(1)

    thread = threading.Thread(target=watch, name="medloss-parent-watch", daemon=True)
    thread.start()
    return thread


def init_worker(parent_pid: int) -> None:
    """Initializer of pool workers (see the module notes); ``parent_pid`` is the pid of the process that made the
    pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # fork copied the parent's handler, which raises RunInterrupted
    if not _die_with_parent():
        watch_parent(parent_pid)
    if os.getppid() != parent_pid:  # the parent died before the request above was in place
        os._exit(1)


def end_pool(pool: Any, timeout: float = 5.0) -> None:
    """Cancel the jobs of a ``ProcessPoolExecutor`` that have not started and end its workers now: SIGTERM, then
    SIGKILL for any still alive after ``timeout`` seconds; every worker is reaped before this returns."""
    from medloss.io.outputs import signals_held

    with signals_held():
        # the executor has no public handle on its processes before Python 3.14 (terminate_workers)
        procs = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join()
