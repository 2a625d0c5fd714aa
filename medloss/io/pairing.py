"""Pair prediction and reference volumes by case id.

A *case id* is a file name without its volume suffix (``case_001.nii.gz`` -> ``case_001``), optionally without a
user-given suffix such as ``_pred`` or ``_seg``; a sub-folder that is not itself a volume (a DICOM series) is a
case named after the folder. Hidden files and files of other formats (``.json``, the ``.raw`` data of ``.mhd``
headers, ...) are ignored. Cases present on one side only are returned, never dropped silently.
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


def case_id(path: str, strip_suffix: str = "") -> str:
    """Case id of a volume path: the base name without the volume suffix and without ``strip_suffix``."""
    name = os.path.basename(os.path.normpath(path))
    suf = volume_suffix(name)
    if suf:
        name = name[: -len(suf)]
    if strip_suffix and name.endswith(strip_suffix) and len(name) > len(strip_suffix):
        name = name[: -len(strip_suffix)]
    return name


def list_cases(folder: str, strip_suffix: str = "") -> dict[str, str]:
    """Map case id -> path for every volume file (or DICOM sub-folder) directly inside ``folder``.

    Raises :class:`VolumeReadError` if the folder holds no volume or two files map to the same case id.
    """
    if not os.path.isdir(folder):
        raise VolumeReadError(f"{folder}: no such folder.")
    cases: dict[str, str] = {}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            if not is_dicom_folder(entry.path):
                continue  # not a DICOM series
        elif not volume_suffix(entry.name):
            continue
        cid = case_id(entry.path, strip_suffix)
        if cid in cases:
            raise VolumeReadError(f"{entry.path}: case id {cid!r} is also used by {cases[cid]}; "
                                  "keep one file per case.")
        cases[cid] = entry.path
    if not cases:
        raise VolumeReadError(f"{folder}: folder holds no volume files (.nii, .nii.gz, .nrrd, .nhdr, .mha, .mhd) "
                              "or DICOM series folders.")
    return cases


def is_dicom_folder(path: str) -> bool:
    """True for a folder that holds no volume file and at least one DICOM file (``.dcm``/``.ima`` suffix, or the
    ``DICM`` marker at byte 128): it is read as one DICOM series, not as a folder of cases."""
    if not os.path.isdir(path):
        return False
    files = [e for e in os.scandir(path) if e.is_file() and not e.name.startswith(".")]
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
    preds = list_cases(pred_dir, pred_suffix)
    refs = list_cases(ref_dir, ref_suffix)
    out = Pairing()
    for cid in sorted(set(preds) | set(refs)):
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
