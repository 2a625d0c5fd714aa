"""Data for the medloss bundles and ``medloss demo``.

* :func:`make_lesion_volume` / :func:`make_lesion_dataset` — the seeded synthetic lesion generator (the bundles'
  embedded default data, so they run with no download);
* :func:`prepare_data` / :func:`load_datalist` / :func:`check_case` — MSD-style datalists for real data, checked
  before training (typed errors naming the file);
* :class:`SimpleITKReader` — a MONAI ``LoadImage`` reader for NRRD / MetaImage over SimpleITK;
* :class:`EpochSeeder`, :class:`TrainingLog`, :class:`InferenceSummary`, :func:`latest_checkpoint` — handlers of
  the bundles;
* :func:`concise_errors` — a bundle's medloss errors as one line instead of a MONAI traceback;
* :func:`list_bundles` / :func:`find_bundle` / :func:`init_bundle` — the bundles shipped as package data.

Names are imported lazily, so ``import medloss.data`` does not import MONAI or torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "make_lesion_volume": "medloss.data.synthetic",
    "make_lesion_dataset": "medloss.data.synthetic",
    "LesionCase": "medloss.data.synthetic",
    "prepare_data": "medloss.data.datalist",
    "load_datalist": "medloss.data.datalist",
    "check_case": "medloss.data.datalist",
    "volume_shape": "medloss.data.datalist",
    "SimpleITKReader": "medloss.data.sitk_reader",
    "EpochSeeder": "medloss.data.handlers",
    "InferenceSummary": "medloss.data.handlers",
    "concise_errors": "medloss.data.console",
    "bundles_root": "medloss.data.bundles",
    "find_bundle": "medloss.data.bundles",
    "init_bundle": "medloss.data.bundles",
    "list_bundles": "medloss.data.bundles",
    "medloss_cause": "medloss.data.console",
    "TrainingLog": "medloss.data.handlers",
    "latest_checkpoint": "medloss.data.handlers",
    "ReferenceSkeletond": "medloss.data.topology",
    "ConnectedComponentsd": "medloss.data.topology",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'medloss.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
