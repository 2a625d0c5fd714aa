"""Output files that never destroy data: path checks before any work, and atomic writes.

* :func:`check_output_paths` refuses, before anything is computed, an output path that resolves (through symlinks
  and hard links) to an input file, to a file inside an input DICOM series folder, to a volume (case) file inside an
  input folder, or to another output of the same run; and an output whose folder is missing or not writable.
* :func:`atomic_output` yields a temporary name next to the destination and moves it into place with
  :func:`os.replace` only when writing succeeded, so a reader never sees a partial file and a failed run leaves the
  previous file intact. An ``OSError`` while writing becomes one :class:`~medloss.errors.OutputPathError` naming
  the path.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence

from medloss.errors import OutputPathError

__all__ = ["atomic_output", "atomic_write_text", "check_output_paths"]


def _same(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:
        return False


def _input_of(out: str, inputs: Sequence[str]) -> str | None:
    """What ``out`` would overwrite: an input, a file of an input DICOM folder or a case file of an input folder of
    cases (described in words); else ``None``."""
    from medloss.io.pairing import is_dicom_folder
    from medloss.io.readers import volume_suffix

    parent = os.path.dirname(os.path.abspath(out))
    for inp in inputs:
        if _same(out, inp):
            return f"the input {inp}"
        if os.path.isdir(inp) and _same(parent, inp):
            if is_dicom_folder(inp):
                return f"a file of the input DICOM series {inp}"
            if volume_suffix(out):
                return f"a case of the input folder {inp}"
    return None


def check_output_paths(inputs: Sequence[str], outputs: Mapping[str, str | None]) -> None:
    """Check every output path (``{flag: path}``; ``None`` = not requested) before any work starts.

    Raises:
        OutputPathError: naming the flag and the path, if an output would replace an input (or a case file or DICOM
            slice inside an input folder), two outputs are the same file, the path is a folder, or its folder is
            missing or not writable.
    """
    seen: dict[str, str] = {}
    for flag, path in outputs.items():
        if path is None:
            continue
        hit = _input_of(path, inputs)
        if hit is not None:
            raise OutputPathError(f"`{flag}` {path} would overwrite {hit}; write the {flag[2:]} file "
                                  "somewhere else.")
        for other_flag, other in seen.items():
            if _same(path, other) or os.path.abspath(path) == os.path.abspath(other):
                raise OutputPathError(f"`{flag}` and `{other_flag}` are the same file ({path}); give each output "
                                      "its own name.")
        if os.path.isdir(path):
            raise OutputPathError(f"`{flag}` {path} is a folder; give a file name.")
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise OutputPathError(f"`{flag}` {path}: folder {parent} does not exist; create it first.")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise OutputPathError(f"`{flag}` {path}: folder {parent} is not writable; choose another location.")
        seen[flag] = path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
    """Yield a temporary file name in the folder of ``path``; move it onto ``path`` when the block succeeds.

    ``suffix`` keeps the extension writers look at (e.g. ``.png``, ``.nii.gz``). On any error the temporary file
    is removed and ``path`` is left as it was; an ``OSError`` is raised as :class:`OutputPathError` naming ``path``.
    """
    p = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(p))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".tmp-{os.path.basename(p)[:40]}-", suffix=suffix, dir=folder)
        os.close(fd)
        yield tmp
        os.replace(tmp, p)
    except OSError as err:
        raise OutputPathError(f"cannot write {p}: {err.strerror or err}.") from err
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write text to ``path`` through :func:`atomic_output` (no partial file on failure)."""
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
