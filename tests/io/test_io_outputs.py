"""Output files: modes from the umask or the replaced file, all-or-nothing sets, no temporary left behind."""
from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import medloss.io.outputs as outputs_mod
from medloss.errors import OutputPathError
from medloss.io import OutputSet, atomic_output, atomic_write_text, current_umask, remove_stale_temporaries


@contextlib.contextmanager
def _umask(value):
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _temporaries(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp"))


@pytest.mark.parametrize(("umask", "mode"), [(0o002, 0o664), (0o022, 0o644), (0o077, 0o600)])
def test_new_file_gets_the_umask_mode(tmp_path, umask, mode):
    with _umask(umask):
        atomic_write_text(tmp_path / "a.csv", "x\n")
        with atomic_output(tmp_path / "b.png", suffix=".png") as tmp, open(tmp, "wb") as fh:
            fh.write(b"png")
    assert _mode(tmp_path / "a.csv") == mode and _mode(tmp_path / "b.png") == mode


@pytest.mark.parametrize(("umask", "existing"), [(0o077, 0o664), (0o002, 0o600), (0o022, 0o640)])
def test_replaced_file_keeps_its_mode(tmp_path, umask, existing):
    target = tmp_path / "scores.csv"
    target.write_text("old\n")
    os.chmod(target, existing)
    with _umask(umask):
        atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n" and _mode(target) == existing


def test_umask_is_read_without_changing_it():
    with _umask(0o027):
        assert current_umask() == 0o027
        assert os.umask(0o027) == 0o027  # still set


def test_umask_fallback_sets_and_restores_once(monkeypatch):
    monkeypatch.setattr(outputs_mod, "_proc_umask", lambda: None)  # as on a system without /proc
    monkeypatch.setattr(outputs_mod, "_UMASK", None)
    with _umask(0o007):
        assert current_umask() == 0o007
        assert os.umask(0o007) == 0o007  # restored
        os.umask(0o077)
        assert current_umask() == 0o007  # read once, cached
        os.umask(0o007)


def test_set_is_all_or_nothing_when_a_write_fails(tmp_path):
    old = {name: f"old {name}\n" for name in ("a.csv", "b.json")}
    for name, text in old.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(RuntimeError, match="plot failed"), OutputSet() as outputs:
        outputs.write_text(tmp_path / "a.csv", "new a\n")
        outputs.write_text(tmp_path / "b.json", "new b\n")
        assert len(_temporaries(tmp_path)) == 2  # staged, hidden, not yet in place
        with outputs.output(tmp_path / "c.png", suffix=".png") as tmp, open(tmp, "wb") as fh:
            fh.write(b"half")
            raise RuntimeError("plot failed")
    assert {name: (tmp_path / name).read_text() for name in old} == old
    assert not (tmp_path / "c.png").exists() and _temporaries(tmp_path) == []


def test_every_temporary_is_complete_and_fsynced_before_the_first_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = outputs_mod._fsync, os.replace

    def fsync(path, directory=False):
        events.append(("fsync", os.path.basename(path)))
        real_fsync(path, directory)

    def replace(src, dst):
        events.append(("rename", os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(outputs_mod, "_fsync", fsync)
    monkeypatch.setattr(outputs_mod.os, "replace", replace)
    with OutputSet() as outputs:
        for name in ("a.csv", "b.json", "c.csv"):
            outputs.write_text(tmp_path / name, name)
    kinds = [kind for kind, _ in events]
    assert kinds[:6] == ["fsync"] * 3 + ["rename"] * 3, events
    assert [name for kind, name in events[3:6]] == ["a.csv", "b.json", "c.csv"]
    assert all(name.startswith(".tmp-medloss-") for _, name in events[:3])
    assert kinds[6:] == ["fsync"]  # then the folder, so the renames survive a crash


def test_failure_before_the_renames_leaves_old_files_and_no_temporaries(tmp_path, monkeypatch):
    (tmp_path / "a.csv").write_text("old a\n")
    real = outputs_mod._fsync

    def fsync(path, directory=False):
        if "-b.json-" in os.path.basename(path):
            raise OSError(28, "No space left on device")
        real(path, directory)

    monkeypatch.setattr(outputs_mod, "_fsync", fsync)
    with pytest.raises(OutputPathError, match=r"cannot write .*b\.json: No space left on device"), \
            OutputSet() as outputs:
        outputs.write_text(tmp_path / "a.csv", "new a\n")
        outputs.write_text(tmp_path / "b.json", "new b\n")
    assert (tmp_path / "a.csv").read_text() == "old a\n" and not (tmp_path / "b.json").exists()
    assert _temporaries(tmp_path) == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.skipif(os.name != "posix", reason="stale temporaries are recognised by pid on POSIX only")
def test_a_killed_runs_temporaries_are_removed_by_the_next_write(tmp_path):
    host = outputs_mod._host_tag()
    stale = f".tmp-medloss-{host}-{_dead_pid()}-scores.csv-k2j4"
    live = f".tmp-medloss-{host}-{os.getppid()}-scores.csv-a8f1"  # a running process: maybe still writing
    other_host = f".tmp-medloss-{'0' * 8 if host != '0' * 8 else '1' * 8}-{_dead_pid()}-scores.csv-zz"
    unrelated = ".tmp-notes.txt"
    for name in (stale, live, other_host, unrelated):
        (tmp_path / name).write_text("x")
    atomic_write_text(tmp_path / "scores.csv", "new\n")
    assert _temporaries(tmp_path) == sorted([live, other_host, unrelated])
    assert remove_stale_temporaries(tmp_path) == []


def test_held_signals_do_not_split_the_renames(tmp_path, monkeypatch):
    """SIGTERM sent while the first file is renamed is delivered after the last: the set is complete."""
    from medloss.cli.processes import RunInterrupted, run_outputs

    real_replace = os.replace
    sent = []

    def replace(src, dst):
        if not sent:
            sent.append(dst)
            os.kill(os.getpid(), signal.SIGTERM)
        real_replace(src, dst)

    def raise_interrupted(signum, frame):
        raise RunInterrupted(signum)

    monkeypatch.setattr(outputs_mod.os, "replace", replace)
    previous = signal.signal(signal.SIGTERM, raise_interrupted)
    try:
        with pytest.raises(RunInterrupted) as info, run_outputs() as outputs:
            for name in ("a.csv", "b.json", "c.csv"):
                outputs.write_text(tmp_path / name, "new " + name)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert sent and info.value.outputs_written
    names = ("a.csv", "b.json", "c.csv")
    assert [(tmp_path / n).read_text() for n in names] == [f"new {n}" for n in names]
    assert _temporaries(tmp_path) == []


def test_a_signal_with_its_default_action_still_ends_the_process_after_the_block(tmp_path):
    """Without a handler, SIGTERM held during the renames ends the process once they are done (numpy's BLAS
    threads are there: a signal mask on the main thread alone would let one of them take the signal at once)."""
    code = (
        "import os, signal, sys\n"
        "from medloss.io import OutputSet\n"
        "real = os.replace\n"
        "def replace(src, dst):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    real(src, dst)\n"
        "os.replace = replace\n"
        "with OutputSet() as o:\n"
        f"    o.write_text({str(tmp_path / 'a.csv')!r}, 'a')\n"
        f"    o.write_text({str(tmp_path / 'b.csv')!r}, 'b')\n"
        "print('not reached')\n")
    root = str(Path(outputs_mod.__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    res = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env)
    assert res.returncode == -signal.SIGTERM and "not reached" not in res.stdout, res.stderr
    assert (tmp_path / "a.csv").read_text() == "a" and (tmp_path / "b.csv").read_text() == "b"
    assert _temporaries(tmp_path) == []
