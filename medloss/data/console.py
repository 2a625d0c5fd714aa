"""A bundle's own errors as one line, where the user looks: the end of the output.

MONAI evaluates every ``$`` expression of a bundle config inside ``ConfigExpression.evaluate``, which re-raises
any exception as ``RuntimeError("Failed to evaluate ConfigExpression ...")``; ``python -m monai.bundle run`` (a
``fire`` program) lets it reach the interpreter, which prints 60-90 lines of MONAI and fire frames with the medloss
message buried in the middle. A medloss check inside the config (``prepare_data``, ``latest_checkpoint``) cannot
escape that wrapping, and a wrapper command would not help users who run the documented MONAI command line. What
does work with a plain ``python -m monai.bundle run`` is the interpreter's last step: :func:`concise_errors`, the
first ``initialize`` expression of every medloss bundle config, installs a :data:`sys.excepthook` that prints
``medloss: error: <message>`` alone when a :class:`~medloss.errors.MedlossError` is in the exception's cause chain
(``--verbose true``: the full traceback first, the line last) and leaves every other exception to the previous
hook. The exit status stays 1.
"""
from __future__ import annotations

import sys
from types import TracebackType

from medloss.errors import MedlossError

__all__ = ["concise_errors", "medloss_cause"]


def medloss_cause(err: BaseException | None) -> MedlossError | None:
    """The first :class:`MedlossError` in the cause/context chain of ``err`` (``err`` itself first), or ``None``."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, MedlossError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _flag(value: object) -> bool:
    """A bundle override as a boolean: fire passes ``--verbose true`` as the string 'true'."""
    return str(value).strip().lower() in ("true", "1", "yes", "on")


def concise_errors(verbose: object = False) -> None:
    """Make an uncaught exception caused by a medloss error print one line ``medloss: error: ...`` to stderr.

    Args:
        verbose: also print the full traceback (before the line); accepts the strings a command line passes.

    Calling it again replaces the earlier medloss hook (not the hook it wrapped).
    """
    previous = getattr(sys.excepthook, "medloss_previous", sys.excepthook)
    show_trace = _flag(verbose)

    def hook(kind: type[BaseException], err: BaseException, tb: TracebackType | None) -> None:
        cause = medloss_cause(err)
        if cause is None:
            previous(kind, err, tb)
            return
        if show_trace:
            previous(kind, err, tb)
        sys.stderr.write(f"medloss: error: {' '.join(str(cause).split())}\n")
        sys.stderr.flush()

    hook.medloss_previous = previous  # type: ignore[attr-defined]
    sys.excepthook = hook
