"""Ending a command cleanly: SIGINT/SIGTERM in the main process, and pool workers that never outlive it.

* :func:`ends_on_signals` wraps a click command: SIGINT and SIGTERM raise :class:`RunInterrupted` in the main thread,
  so context managers and ``finally`` blocks run (temporaries removed, workers ended); the command then prints one
  line on stderr and exits 128 + the signal number (130 for SIGINT, 143 for SIGTERM), as a shell reports it.
* :func:`init_worker` / :func:`end_pool` (from :mod:`medloss.scoring.workers`, where the scoring engine's process pool
  uses them): pool workers that die with their parent, and ending a pool at once.
"""
from __future__ import annotations

import contextlib
import functools
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from medloss.io.outputs import OutputSet

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
