"""Ending a command cleanly: SIGINT/SIGTERM in the main process, and pool workers that never outlive it.

* :func:`ends_on_signals` wraps a click command: SIGINT and SIGTERM raise :class:`RunInterrupted` in the main thread,
  so context managers and ``finally`` blocks run (temporaries removed, workers ended); the command then prints one
  line on stderr and exits 128 + the signal number (130 for SIGINT, 143 for SIGTERM), as a shell reports it.
* :func:`init_worker` is the initializer of a pool's processes: they ignore SIGINT (Ctrl-C reaches the whole process
  group; the parent ends them), take SIGTERM's default action, and die with their parent even when it is killed
  with SIGKILL: on Linux by ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, elsewhere by a thread that watches the parent pid.
  Without it a worker blocks forever on the pool's call queue, whose other end the sibling workers keep open.
* :func:`end_pool` cancels the pending jobs and ends the workers at once.
"""
from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from medloss.io.outputs import OutputSet

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class RunInterrupted(BaseException):
    """SIGINT or SIGTERM arrived while a command ran; a ``BaseException`` (like ``KeyboardInterrupt``) so that
    ``except Exception`` clauses let it through. ``outputs_written`` is set by :func:`run_outputs`."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.outputs_written = False


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise RunInterrupted(signum)


def ends_on_signals(prog: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a command so that SIGINT/SIGTERM end it cleanly with one line on stderr and exit 130/143.

    A signal that is ignored when the command starts (``nohup``, a background job of a non-interactive shell) stays
    ignored. Outside the main thread (where handlers cannot be installed) the command runs unchanged.
    """
    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from medloss.io.outputs import current_umask  # here: importing medloss.io loads numpy

            current_umask()  # read while the process has one thread (see current_umask)
            if threading.current_thread() is not threading.main_thread():
                return fn(*args, **kwargs)
            previous = {sig: signal.signal(sig, _raise_interrupted) for sig in (signal.SIGINT, signal.SIGTERM)
                        if signal.getsignal(sig) not in (signal.SIG_IGN, None)}  # None: set outside Python
            try:
                return fn(*args, **kwargs)
            except RunInterrupted as exc:
                what = ("the output files had been written" if exc.outputs_written
                        else "no output written, existing files left as they were")
                click.echo(f"{prog}: interrupted by {signal.Signals(exc.signum).name}; {what}.", err=True)
                sys.exit(128 + exc.signum)
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
        return wrapper
    return decorate


@contextlib.contextmanager
def run_outputs() -> Iterator[OutputSet]:
    """The :class:`~medloss.io.OutputSet` of a command's files, committed when the block ends without an exception;
    an interrupt delivered once the files are in place is marked ``outputs_written``."""
    from medloss.io.outputs import OutputSet

    outputs = OutputSet()
    try:
        with outputs:
            yield outputs
    except RunInterrupted as exc:
        exc.outputs_written = outputs.committed
        raise


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
