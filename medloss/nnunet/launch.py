"""Run nnU-Net's own ``nnUNetv2_train`` / ``nnUNetv2_predict`` entry points with medloss's trainers findable.

nnU-Net resolves ``-tr NAME`` by importing every module of its own trainer folder before it looks at
``nnUNet_extTrainer``; some of those modules import timm, hence torchvision, which does not load next to a CPU-only
torch ("operator torchvision::nms does not exist"), so the stock commands fail there for any external trainer.
:func:`run` therefore sets ``nnUNet_extTrainer`` (for any process nnU-Net starts), resolves the trainer itself
(:func:`resolve_trainer`), makes nnU-Net's training and prediction modules use that resolver for the duration of
the call, and calls nnU-Net's entry point with the user's arguments unchanged.
"""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from medloss.errors import InvalidOptionError
from medloss.nnunet import trainer_folder

ENV = "nnUNet_extTrainer"
#: command -> (module, entry point function) of nnU-Net's console scripts
ENTRY_POINTS = {
    "train": ("nnunetv2.run.run_training", "run_training_entry"),
    "predict": ("nnunetv2.inference.predict_from_raw_data", "predict_entry_point"),
}
#: the modules that look trainers up by name (both import ``recursive_find_trainer_class_by_name`` by name)
_LOOKUP_MODULES = ("nnunetv2.run.run_training", "nnunetv2.inference.predict_from_raw_data")


def ext_paths() -> list[str]:
    """The folders in ``nnUNet_extTrainer``, medloss's first."""
    ours = trainer_folder()
    others = [p for p in os.environ.get(ENV, "").split(os.pathsep) if p.strip() and p != ours]
    return [ours, *others]


def resolve_trainer(name: str) -> type:
    """The trainer class nnU-Net's ``-tr NAME`` means, found without importing nnU-Net's trainers when possible.

    medloss's named trainers are returned directly (nnU-Net has no trainer of those names). Any other name is
    looked up as nnU-Net does: its own trainers first, then the ``nnUNet_extTrainer`` folders; when nnU-Net's own
    search fails before reaching them (the torchvision failure above), the folders are searched anyway.
    """
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.find_class_by_name import recursive_find_python_class
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from medloss.nnunet.trainers import TRAINERS

    if name in TRAINERS:
        return TRAINERS[name]
    os.environ[ENV] = os.pathsep.join(ext_paths())
    try:
        return recursive_find_trainer_class_by_name(name)
    except (RuntimeError, ImportError) as exc:
        for folder in ext_paths():
            if os.path.isdir(folder):
                found = recursive_find_python_class(folder, name, None, base_folder=folder,
                                                    cleanup_imports_from_base_folder=True)
                if isinstance(found, type) and issubclass(found, nnUNetTrainer):
                    return found
        raise InvalidOptionError(
            f"-tr {name}: no nnU-Net trainer of that name in nnU-Net or in {ENV} ({os.pathsep.join(ext_paths())}); "
            f"medloss's are listed by `medloss nnunet trainers`. nnU-Net said: {exc}") from exc


def trainer_argument(argv: Sequence[str], default: str = "nnUNetTrainer") -> str:
    """The value of ``-tr`` in nnU-Net's command line ``argv`` (argparse's forms ``-tr X`` and ``-tr=X``)."""
    for i, arg in enumerate(argv):
        if arg == "-tr":
            if i + 1 == len(argv):
                raise InvalidOptionError("-tr needs a trainer name, e.g. -tr nnUNetTrainerMedlossDiceTopK10.")
            return argv[i + 1]
        if arg.startswith("-tr="):
            return arg[len("-tr="):]
    return default


@contextlib.contextmanager
def _trainer_lookup(trainer: type) -> Iterator[None]:
    """nnU-Net's training and prediction modules resolve ``trainer``'s name to ``trainer`` meanwhile."""
    import importlib

    modules: list[Any] = [importlib.import_module(name) for name in _LOOKUP_MODULES]
    originals = [module.recursive_find_trainer_class_by_name for module in modules]

    def lookup(name: str) -> type:
        return trainer if name == trainer.__name__ else resolve_trainer(name)

    for module in modules:
        module.recursive_find_trainer_class_by_name = lookup
    try:
        yield
    finally:
        for module, original in zip(modules, originals, strict=True):
            module.recursive_find_trainer_class_by_name = original


def run(command: str, argv: Sequence[str]) -> None:
    """Call nnU-Net's ``train`` or ``predict`` entry point with ``argv`` (its own arguments, unchanged)."""
    import importlib

    if command not in ENTRY_POINTS:
        raise InvalidOptionError(f"command {command!r}: expected one of {', '.join(ENTRY_POINTS)}.")
    os.environ[ENV] = os.pathsep.join(ext_paths())
    help_only = any(arg in ("-h", "--help") for arg in argv)
    module, function = ENTRY_POINTS[command]
    entry = getattr(importlib.import_module(module), function)
    saved = sys.argv
    sys.argv = [f"nnUNetv2_{command}", *argv]
    try:
        if help_only:
            entry()
            return
        with _trainer_lookup(resolve_trainer(trainer_argument(argv))):
            entry()
    finally:
        sys.argv = saved
