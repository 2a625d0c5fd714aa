"""`medloss.data.concise_errors`: an uncaught exception caused by a medloss error is one line on stderr."""
from __future__ import annotations

import sys

import pytest

from medloss.data import concise_errors, medloss_cause
from medloss.errors import InvalidOptionError


def _wrapped():
    try:
        try:
            raise InvalidOptionError("`epochs` is 3\n  but the checkpoint has 2.")
        except InvalidOptionError as err:
            raise RuntimeError("Failed to evaluate ConfigExpression: ...") from err
    except RuntimeError as outer:
        return outer


@pytest.fixture
def restore_hook():
    saved = sys.excepthook
    yield
    sys.excepthook = saved


@pytest.mark.parametrize("verbose", [False, "false", True, "true", "1"])
def test_medloss_cause_is_one_line_last(restore_hook, capsys, verbose):
    calls = []
    sys.excepthook = lambda *a: calls.append(a)
    concise_errors(verbose)
    concise_errors(verbose)  # idempotent: wraps the original hook once
    err = _wrapped()
    sys.excepthook(type(err), err, err.__traceback__)
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["medloss: error: `epochs` is 3 but the checkpoint has 2."]
    assert len(calls) == (1 if str(verbose).lower() in ("true", "1") else 0)  # the trace only when verbose


def test_other_exceptions_go_to_the_previous_hook(restore_hook, capsys):
    calls = []
    sys.excepthook = lambda *a: calls.append(a)
    concise_errors()
    err = RuntimeError("not ours")
    sys.excepthook(type(err), err, None)
    assert len(calls) == 1 and capsys.readouterr().err == ""
    assert medloss_cause(err) is None and isinstance(medloss_cause(_wrapped()), InvalidOptionError)
