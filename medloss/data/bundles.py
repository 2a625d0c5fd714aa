"""The MONAI bundles that ship with medloss: find them, list them, copy one out to run it.

The repository's top-level ``bundles/`` folder is the one hand-kept copy; the build (``setup.py``) puts its bundle
files into the wheel as ``medloss/bundles/``. :func:`bundles_root` finds whichever is there: ``$MEDLOSS_BUNDLES``
if set, else the installed package data, else ``bundles/`` of a source checkout (an editable install).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from medloss.errors import InvalidOptionError, OutputPathError, did_you_mean

__all__ = ["bundles_root", "find_bundle", "init_bundle", "list_bundles"]

#: what a bundle folder holds (the rest, e.g. eval/ outputs or checkpoints of a run inside it, is not copied)
_COPY_IGNORE = shutil.ignore_patterns("eval", "*.pt", "__pycache__", "synthetic_data", ".*")


def _candidates() -> list[Path]:
    import medloss

    package = Path(medloss.__file__).resolve().parent
    roots = [Path(os.environ["MEDLOSS_BUNDLES"])] if os.environ.get("MEDLOSS_BUNDLES") else []
    return roots + [package / "bundles", package.parent / "bundles"]


def bundles_root() -> Path:
    """The folder that holds the shipped bundles (see the module docstring for the search order).

    Raises:
        InvalidOptionError: if none of the places holds a bundle.
    """
    for root in _candidates():
        if any((root / name / "configs" / "train.json").is_file() for name in _names(root)):
            return root
    raise InvalidOptionError(
        f"no medloss bundles found (looked in {', '.join(str(c) for c in _candidates())}). Reinstall medloss "
        "(`pip install medloss` or `pip install .` from a checkout), or set MEDLOSS_BUNDLES to a folder of bundles."
    )


def _names(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "configs" / "train.json").is_file())


def list_bundles() -> list[dict]:
    """One dict per shipped bundle: ``name``, ``path``, ``version``, ``loss`` (the ``_target_``) and ``task``."""
    root = bundles_root()
    out = []
    for name in _names(root):
        configs = root / name / "configs"
        meta = json.loads((configs / "metadata.json").read_text())
        loss = json.loads((configs / "train.json").read_text()).get("loss", {}).get("_target_", "")
        out.append({"name": name, "path": str(root / name), "version": meta.get("version", ""), "loss": loss,
                    "task": meta.get("task", "")})
    return out


def find_bundle(name: str = "tversky_lesion") -> Path:
    """Folder of the shipped bundle ``name``.

    Raises:
        InvalidOptionError: if there is no such bundle (with the names there are, and the closest one).
    """
    root = bundles_root()
    names = _names(root)
    if name not in names:
        raise InvalidOptionError(f"no bundle {name!r}; shipped bundles: {', '.join(names)} (in {root})."
                                 f"{did_you_mean(name, names)}")
    return root / name


def init_bundle(name: str, destination: str | os.PathLike) -> Path:
    """Copy the shipped bundle ``name`` into the new folder ``destination`` (runnable there with
    ``python -m monai.bundle run --config_file configs/train.json``) and return its path.

    Raises:
        InvalidOptionError: unknown bundle.
        OutputPathError: ``destination`` exists and is not an empty folder (nothing is overwritten), or cannot be
            written.
    """
    source = find_bundle(name)
    dest = Path(destination).resolve()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise OutputPathError(f"{dest} already exists and is not an empty folder; give a new folder for the bundle.")
    try:
        shutil.copytree(source, dest, ignore=_COPY_IGNORE, dirs_exist_ok=True)
    except OSError as err:
        raise OutputPathError(f"cannot copy bundle {name!r} to {dest}: {err.strerror or err}.") from err
    (dest / "models").mkdir(exist_ok=True)
    return dest
