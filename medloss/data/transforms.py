"""Deprecated alias of :mod:`medloss.data.sitk_reader`, kept for one release.

The module holds an image reader (the transforms are in :mod:`medloss.transforms`), so it was renamed; a name
taken from here still works but warns, so that bundle configs naming ``medloss.data.transforms.SimpleITKReader``
can be updated to ``medloss.data.sitk_reader.SimpleITKReader``.
"""
from __future__ import annotations

import warnings
from typing import Any

from medloss.data import sitk_reader

_MOVED = ("SimpleITKReader", "SITK_SUFFIXES", "sitk_affine")


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        warnings.warn(
            f"medloss.data.transforms.{name} is deprecated and will be removed in the next release; use "
            f"medloss.data.sitk_reader.{name} (or medloss.data.{name}) instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(sitk_reader, name)
    raise AttributeError(f"module 'medloss.data.transforms' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MOVED))
