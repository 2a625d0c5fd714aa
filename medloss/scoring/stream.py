"""Where a run's per-case records go as cases finish: memory, or an append-only JSON Lines part file.

A record is one JSON object per case, ``{"case", "pred", "ref", "rows": [...], "error": str | null}``, written by the
worker that scored the case (so every executor gives byte-identical records; NaN is written as ``NaN``, which
Python's json reads back). The part file starts with a header line ``{"medloss_part": 1, "config": fingerprint}``
and gets one line per finished case, flushed at once, so a run killed at case k has the first k cases on disk.
:class:`PartFile` with ``resume=True`` reads them back (ignoring a last line cut by the kill), refuses a part file
written with other options, and keeps only each case's latest record; cases whose record holds rows are not
scored again. Only a byte offset per case stays in memory; :meth:`RecordStore.records` reads them back in case
order.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import BinaryIO

from medloss.errors import InvalidOptionError, OutputPathError

PART_VERSION = 1


def _np_default(o: object) -> int | float | list:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, (tuple, set)):
        return list(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def record_line(case: str, pred: str | None, ref: str | None, rows: list[dict], error: str | None) -> str:
    """One case's record as a JSON line (no newline)."""
    return json.dumps({"case": case, "pred": pred, "ref": ref, "rows": rows, "error": error}, default=_np_default)


def record_error(line: str) -> dict | None:
    """``{"case", "pred", "ref", "error"}`` of a record line whose case failed, else ``None`` (without parsing the
    rows of a scored case: :func:`record_line` writes ``error`` last)."""
    if line.endswith(', "error": null}'):
        return None
    rec = json.loads(line)
    return {k: rec[k] for k in ("case", "pred", "ref", "error")}


class RecordStore:
    """Records kept in memory (one JSON line per case); the latest record of a case replaces an earlier one."""

    def __init__(self) -> None:
        self._lines: dict[str, str] = {}

    def add(self, case: str, line: str) -> None:
        self._lines[case] = line

    def cases(self) -> list[str]:
        return sorted(self._lines)

    def read(self, case: str) -> dict:
        return json.loads(self._lines[case])

    def records(self) -> Iterator[dict]:
        for case in self.cases():
            yield self.read(case)

    def close(self) -> None:
        pass


class PartFile(RecordStore):
    """Records appended to ``path`` as they arrive (module docstring); ``resume`` keeps the records already there."""

    def __init__(self, path: str | os.PathLike, fingerprint: str, resume: bool = False) -> None:
        super().__init__()
        self.path = os.fspath(path)
        self._offsets: dict[str, int] = {}
        self.resumed: set[str] = set()  # cases whose latest record, read back from an earlier run, holds rows
        self._fh: BinaryIO
        try:
            if resume and os.path.exists(self.path):
                self._fh = open(self.path, "r+b")  # noqa: SIM115 (held open for the whole run)
                self._load(fingerprint)
            else:
                self._fh = open(self.path, "wb")  # noqa: SIM115
                self._fh.write((json.dumps({"medloss_part": PART_VERSION, "config": fingerprint}) + "\n").encode())
                self._fh.flush()
        except OSError as err:
            raise OutputPathError(f"part file {self.path}: {err.strerror or err}; choose a writable output "
                                  "folder.") from err

    def _load(self, fingerprint: str) -> None:
        fh = self._fh
        header = fh.readline()
        try:
            head = json.loads(header)
        except ValueError:
            head = None
        if not isinstance(head, dict) or head.get("medloss_part") != PART_VERSION:
            raise InvalidOptionError(f"`--resume`: {self.path} is not a medloss part file; remove it or write the "
                                     "outputs elsewhere.")
        if head.get("config") != fingerprint:
            raise InvalidOptionError(f"`--resume`: {self.path} was written with other scoring options; rerun with "
                                     "the same options, or without --resume to start again.")
        end = fh.tell()
        while True:
            offset = fh.tell()
            line = fh.readline()
            if not line.endswith(b"\n"):  # end of file, or the last line cut by a kill
                break
            try:
                rec = json.loads(line)
            except ValueError:
                break
            end = fh.tell()
            self._offsets[rec["case"]] = offset
            if rec["error"] is None:
                self.resumed.add(rec["case"])
            else:
                self.resumed.discard(rec["case"])
        fh.truncate(end)
        fh.seek(end)

    def add(self, case: str, line: str) -> None:
        self._offsets[case] = self._fh.tell()
        self._fh.write(line.encode() + b"\n")
        self._fh.flush()

    def cases(self) -> list[str]:
        return sorted(self._offsets)

    def _flush(self) -> None:
        if not self._fh.closed:
            self._fh.flush()

    def read(self, case: str) -> dict:
        self._flush()
        with open(self.path, "rb") as fh:
            fh.seek(self._offsets[case])
            return json.loads(fh.readline())

    def records(self) -> Iterator[dict]:
        self._flush()
        with open(self.path, "rb") as fh:
            for case in self.cases():
                fh.seek(self._offsets[case])
                yield json.loads(fh.readline())

    def close(self) -> None:
        self._fh.close()
