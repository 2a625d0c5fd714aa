"""Pair prediction and reference volumes by case id.

A *case id* is a file name without its volume suffix (``case_001.nii.gz`` -> ``case_001``), optionally without a
user-given suffix such as ``_pred`` or ``_seg``; a sub-folder that is not itself a volume (a DICOM series) is a
case named after the folder. Hidden files and files of other formats (``.json``, the ``.raw`` data of ``.mhd``
headers, ...) are ignored. Cases present on one side only are returned, never dropped silently; so are entries
that cannot be examined (a symlink loop, a sub-folder that cannot be listed), each as a per-case error, while the
other cases are scored.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from medloss.errors import InvalidOptionError, VolumeReadError
from medloss.io.readers import volume_suffix


@dataclass
class Pairing:
    """Result of :func:`pair_folders`: matched ``(case, pred_path, ref_path)`` triples and the unmatched ids."""

    pairs: list[tuple[str, str, str]] = field(default_factory=list)
    missing_reference: list[tuple[str, str]] = field(default_factory=list)  # (case, pred path)
    missing_prediction: list[tuple[str, str]] = field(default_factory=list)  # (case, ref path)
    unreadable: list[tuple[str, str, str]] = field(default_factory=list)  # (case, path, one-line error)


def case_id(path: str, strip_suffix: str = "") -> str:
    """Case id of a volume path: the base name without the volume suffix and without ``strip_suffix``."""
    name = os.path.basename(os.path.normpath(path))
    suf = volume_suffix(name)
    if suf:
        name = name[: -len(suf)]
    if strip_suffix and name.endswith(strip_suffix) and len(name) > len(strip_suffix):
        name = name[: -len(strip_suffix)]
    return name


def list_cases(folder: str, strip_suffix: str = "",
               unreadable: list[tuple[str, str, str]] | None = None) -> dict[str, str]:
    """Map case id -> path for every volume file (or DICOM sub-folder) directly inside ``folder``.

    An entry that cannot be examined (a symlink loop, a sub-folder without read permission) is appended to
    ``unreadable`` as ``(case id, path, one-line error)`` when a list is given, and raises
    :class:`VolumeReadError` otherwise. Raises :class:`VolumeReadError` if the folder holds no volume (and no
    unreadable entry) or two files map to the same case id.
    """
    if not os.path.isdir(folder):
        raise VolumeReadError(f"{folder}: no such folder.")
    cases: dict[str, str] = {}
    problems: list[tuple[str, str, str]] = []
    for entry in sorted(_scan(folder), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_dir():  # raises OSError for a symlink loop
                if not is_dicom_folder(entry.path):
                    continue  # not a DICOM series
            elif not volume_suffix(entry.name):
                continue
        except (OSError, VolumeReadError) as err:
            problems.append((case_id(entry.path, strip_suffix), entry.path, _unreadable(entry.path, err)))
            continue
        cid = case_id(entry.path, strip_suffix)
        if cid in cases:
            raise VolumeReadError(f"{entry.path}: case id {cid!r} is also used by {cases[cid]}; "
                                  "keep one file per case.")
        cases[cid] = entry.path
    if problems and unreadable is None:
        raise VolumeReadError(problems[0][2])
    if unreadable is not None:
        unreadable.extend(problems)
    if not cases and not problems:
        raise VolumeReadError(f"{folder}: folder holds no volume files (.nii, .nii.gz, .nrrd, .nhdr, .mha, .mhd) "
                              "or DICOM series folders.")
    return cases


def _unreadable(path: str, err: OSError | VolumeReadError) -> str:
    if isinstance(err, VolumeReadError):
        return str(err)
    return f"{path}: cannot be read ({err.strerror or err}); fix or remove this entry."


def _scan(folder: str) -> list[os.DirEntry]:
    """The entries of ``folder``; a folder that cannot be listed is a :class:`VolumeReadError` naming it."""
    try:
        with os.scandir(folder) as it:
            return list(it)
    except OSError as err:
        raise VolumeReadError(_unreadable(folder, err)) from err


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()
    except OSError:  # a symlink loop inside a series: not one of its files
        return False


def is_dicom_folder(path: str) -> bool:
    """True for a folder that holds no volume file and at least one DICOM file (``.dcm``/``.ima`` suffix, or the
    ``DICM`` marker at byte 128): it is read as one DICOM series, not as a folder of cases. Entries that cannot be
    examined are skipped; a folder that cannot be listed raises :class:`VolumeReadError`."""
    if not os.path.isdir(path):
        return False
    files = [e for e in _scan(path) if not e.name.startswith(".") and _is_file(e)]
    if not files or any(volume_suffix(e.name) for e in files):
        return False
    for e in files[:8]:
        if e.name.lower().endswith((".dcm", ".ima")):
            return True
        try:
            with open(e.path, "rb") as fh:
                if fh.read(132)[128:132] == b"DICM":
                    return True
        except OSError:
            continue
    return False


def pair_folders(pred_dir: str, ref_dir: str, pred_suffix: str = "", ref_suffix: str = "") -> Pairing:
    """Pair the cases of two folders by case id (see the module docstring)."""
    out = Pairing()
    preds = list_cases(pred_dir, pred_suffix, out.unreadable)
    refs = list_cases(ref_dir, ref_suffix, out.unreadable)
    if not preds and not refs:
        raise VolumeReadError(f"no readable case in {pred_dir} or {ref_dir}: " + out.unreadable[0][2])
    broken = {cid for cid, _, _ in out.unreadable}  # already reported: not also "missing" on the other side
    for cid in sorted((set(preds) | set(refs)) - broken):
        if cid in preds and cid in refs:
            out.pairs.append((cid, preds[cid], refs[cid]))
        elif cid in preds:
            out.missing_reference.append((cid, preds[cid]))
        else:
            out.missing_prediction.append((cid, refs[cid]))
    return out


def resolve_inputs(pred: str, ref: str, pred_suffix: str = "", ref_suffix: str = "") -> tuple[bool, Pairing]:
    """Interpret the two CLI arguments: two volumes (files or DICOM folders) or two folders of cases.

    Returns ``(is_batch, pairing)``. A single pair gets the case id of the reference file.
    """
    for p in (pred, ref):
        if not os.path.exists(p):
            raise VolumeReadError(f"{p}: no such file or folder.")
    pred_single = os.path.isfile(pred) or is_dicom_folder(pred)
    ref_single = os.path.isfile(ref) or is_dicom_folder(ref)
    if pred_single and ref_single:
        return False, Pairing(pairs=[(case_id(ref, ref_suffix), pred, ref)])
    if not pred_single and not ref_single:
        return True, pair_folders(pred, ref, pred_suffix, ref_suffix)
    kind = ("a file", "a folder") if pred_single else ("a folder", "a file")
    raise InvalidOptionError(f"PRED is {kind[0]} but REF is {kind[1]}: give two files or two folders.")
