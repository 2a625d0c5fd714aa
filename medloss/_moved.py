"""Old import paths kept for one release: a module that moved leaves a shim whose attributes warn and forward."""
from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable


def forwarder(old: str, new: str, names: tuple[str, ...]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``old``: each of ``names`` comes from ``new`` with a :class:`DeprecationWarning`
    naming the new path."""

    def __getattr__(name: str) -> object:
        if name not in names:
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        warnings.warn(f"`{old}` moved to `{new}`; import `{name}` from there (the old path goes in the next release).",
                      DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(new), name)

    return __getattr__
