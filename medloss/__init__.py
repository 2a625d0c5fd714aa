"""medloss: correct, lean 3-D segmentation losses for MONAI, bundles that train on them, and volume scoring.

``import medloss`` is cheap: the loss classes (``medloss.DiceLoss``, ...), ``medloss.functional`` and
``medloss.losses`` are imported on first access, so the CLI and the I/O and scoring code run without importing
torch (``medloss score --help`` stays fast). Bundle configs use ``medloss.losses.<Class>``.
"""
from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

from medloss.registry import LOSSES

try:
    __version__ = version("medloss")
except PackageNotFoundError:  # pragma: no cover - source tree without install
    __version__ = "0.0.0+unknown"

_SUBMODULES = ("functional", "losses", "registry", "errors", "scoring", "io", "data", "transforms")


def __getattr__(name: str):
    if name in LOSSES or name == "DeepSupervisionLoss":
        return getattr(importlib.import_module("medloss.losses"), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"medloss.{name}")
    raise AttributeError(f"module 'medloss' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(LOSSES) | set(_SUBMODULES))


__all__ = [*LOSSES, "__version__"]
