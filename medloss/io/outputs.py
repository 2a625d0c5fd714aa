"""Output files that never destroy data: path checks before any work, and all-or-nothing writes.

* :func:`check_output_paths` refuses, before anything is computed, an output path that resolves (through symlinks
  and hard links) to an input file, to a file inside an input DICOM series folder, to a volume (case) file inside an
  input folder, or to another output of the same run; and an output whose folder is missing or not writable.
* :class:`OutputSet` writes the outputs of a run to hidden temporaries next to their destinations and renames them
  all at the end, after every one is complete and fsynced, so a reader sees the old set or the new set; a failed or
  interrupted run removes its temporaries, and a killed run's temporaries are removed by the next run.
  :func:`atomic_output` and :func:`atomic_write_text` are the one-file case.
* Modes: a new file gets ``0o666 & ~umask`` (what ``open`` gives), a replaced file keeps its permission bits.
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import stat
import tempfile
import threading
import zlib
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType

from medloss.errors import OutputPathError

__all__ = ["OutputSet", "atomic_output", "atomic_write_text", "check_output_paths", "current_umask",
           "remove_stale_temporaries", "signals_held"]

_TMP_PREFIX = ".tmp-medloss-"
_TMP_NAME = re.compile(r"\.tmp-medloss-([0-9a-f]{8})-(\d+)-")


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


_UMASK: int | None = None


def _proc_umask() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def current_umask() -> int:
    """The process umask.

    Linux reports it in ``/proc/self/status`` (kernel 4.7+), which reads it without changing it. Elsewhere the only
    way to read it is to set it and set it back (:func:`os.umask`); that is done once, on first use, and cached (the
    CLI calls this at start-up, before any thread or worker exists). The value set meanwhile is 0o077, so a file
    that another thread creates in that instant gets fewer permissions than asked, never more.
    """
    global _UMASK
    umask = _proc_umask()
    if umask is not None:
        return umask
    if _UMASK is None:
        _UMASK = os.umask(0o077)
        os.umask(_UMASK)
    return _UMASK


def _target_mode(path: str) -> int:
    """Permission bits for ``path``: those of the file it replaces, else what ``open`` would give a new file."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode) & 0o777
    except FileNotFoundError:
        return 0o666 & ~current_umask()


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the block: one that arrives meanwhile is raised again when it ends.

    Used around steps that must not be cut by a signal (the renames of a commit, the removal of temporaries, the
    ending of worker processes). Python runs signal handlers in the main thread, whichever thread the kernel picked,
    so the handlers are swapped for a recorder there (a thread's signal mask would not stop a signal delivered to
    another thread, e.g. a BLAS worker). A signal ignored before the block stays ignored; one whose action was the
    default one (e.g. SIGTERM without a handler) ends the process when the block ends. Outside the main thread,
    where handlers cannot be swapped, the block runs as is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) not in (signal.SIG_IGN, None):  # None: set outside Python, left alone
            previous[sig] = signal.signal(sig, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in dict.fromkeys(pending):
            signal.raise_signal(signum)


def _host_tag() -> str:
    return f"{zlib.crc32(socket.gethostname().encode()):08x}"


def _pid_running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it runs under another user
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[str]:
    """Remove the temporaries a killed medloss process of this host left in ``folder``; return their names.

    A temporary is named ``.tmp-medloss-<host>-<pid>-<file>-<random>``: hidden, and removed here only when it comes
    from this host (the tag is a hash of the host name, so a process on another machine sharing the folder is never
    judged by local pids) and its pid no longer runs. A pid reused by another process keeps its file until a later
    run. POSIX only (``os.kill(pid, 0)`` would end the process on Windows).
    """
    if os.name != "posix":
        return []
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    host, removed = _host_tag(), []
    for name in names:
        m = _TMP_NAME.match(name)
        if m is None or m.group(1) != host or _pid_running(int(m.group(2))):
            continue
        with contextlib.suppress(FileNotFoundError):  # another run removed it first
            os.unlink(os.path.join(folder, name))
            removed.append(name)
    return removed


def _error(path: str, err: OSError) -> OutputPathError:
    return OutputPathError(f"cannot write {path}: {err.strerror or err}.")


def _fsync(path: str, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY if directory else os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_SWEPT: set[str] = set()


class OutputSet:
    """The output files of one run: each written to a hidden temporary beside it, all moved into place together.

    ::

        with OutputSet() as outputs:
            outputs.write_text("scores.csv", text)
            with outputs.output("scores.png", suffix=".png") as tmp:
                figure.savefig(tmp)
        # the block ended without an exception: both files are in place

    Leaving the block normally commits: every temporary is fsynced and given its mode (that of the file it replaces,
    else ``0o666 & ~umask``), and only then are they renamed onto their destinations, one after another, with
    SIGINT/SIGTERM held so an interrupt cannot stop the renames half-way. POSIX renames one file at a time: only a
    SIGKILL or a crash inside that loop (microseconds) can leave some files new and some old. Leaving the block by
    any exception (``KeyboardInterrupt`` and handler-raised exceptions included) removes every temporary and leaves
    the destinations untouched. A SIGKILL cannot run that clean-up; the hidden temporaries it leaves are removed by
    the next process whose :class:`OutputSet` writes into the same folder (:func:`remove_stale_temporaries`).

    An ``OSError`` becomes one :class:`~medloss.errors.OutputPathError` naming the file.
    """

    def __init__(self) -> None:
        self._staged: dict[str, str] = {}  # destination -> temporary, in the order written
        self.committed = False

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()

    @contextlib.contextmanager
    def output(self, path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
        """Yield a temporary name for ``path`` (``suffix`` keeps the extension a writer looks at, e.g. ``.png``).

        The file is staged for the commit when the block succeeds and removed at once when it fails.
        """
        p = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(p))
        if folder not in _SWEPT:  # once per folder and process: a writer of many files lists its folder once
            remove_stale_temporaries(folder)
            _SWEPT.add(folder)
        self._drop(p)  # written twice in one run: the last version wins
        prefix = f"{_TMP_PREFIX}{_host_tag()}-{os.getpid()}-{os.path.basename(p)[:40]}-"
        try:
            with signals_held():  # registered as soon as it exists, so every exit path removes it
                fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
                self._staged[p] = tmp
                os.close(fd)
        except OSError as err:
            raise _error(p, err) from err
        try:
            yield tmp
        except OSError as err:
            self._drop(p)
            raise _error(p, err) from err
        except BaseException:
            self._drop(p)
            raise

    def write_text(self, path: str | os.PathLike, text: str) -> None:
        """Stage ``text`` (UTF-8, newlines as given) for ``path``."""
        with self.output(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)

    def commit(self) -> None:
        """Move every staged file into place (see the class notes); on any failure remove the temporaries left.

        ``committed`` is true once every file is in place, before the held signals are delivered.
        """
        try:
            self._commit()
        except BaseException:
            self.discard()
            raise

    def _commit(self) -> None:
        current = ""
        try:
            for current, tmp in self._staged.items():
                _fsync(tmp)
                os.chmod(tmp, _target_mode(current))
            folders = {os.path.dirname(os.path.abspath(p)) for p in self._staged}
            with signals_held():
                for current, tmp in list(self._staged.items()):
                    os.replace(tmp, current)
                    del self._staged[current]
                self.committed = True
        except OSError as err:
            raise _error(current, err) from err
        for folder in folders:  # make the renames durable; not every platform can open a folder
            with contextlib.suppress(OSError):
                _fsync(folder, directory=True)

    def discard(self) -> None:
        """Remove every staged temporary; the destinations stay as they were."""
        with signals_held():
            for p in list(self._staged):
                self._drop(p)

    def _drop(self, path: str) -> None:
        tmp = self._staged.get(path)
        if tmp is not None:  # unlinked before it is forgotten: an interrupt in between leaves it for discard()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            del self._staged[path]


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
    """Yield a temporary file name in the folder of ``path``; move it onto ``path`` when the block succeeds.

    A one-file :class:`OutputSet`: ``suffix`` keeps the extension writers look at (e.g. ``.png``, ``.nii.gz``); on
    any error the temporary file is removed and ``path`` is left as it was; the file gets the mode of the file it
    replaces, else the umask's; an ``OSError`` is raised as :class:`OutputPathError` naming ``path``.
    """
    with OutputSet() as outputs, outputs.output(path, suffix) as tmp:
        yield tmp


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write text to ``path`` through :func:`atomic_output` (no partial file on failure)."""
    with OutputSet() as outputs:
        outputs.write_text(path, text)
