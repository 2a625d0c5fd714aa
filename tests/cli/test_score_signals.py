"""`medloss score` ends cleanly: SIGINT, SIGTERM or SIGKILL of a `--workers 2` run leaves no process of the run, no
temporary file, and either the previous outputs or a complete new set; workers die with their parent; outputs keep
the umask's mode or that of the file they replace."""
from __future__ import annotations

import contextlib
import csv
import json
import multiprocessing
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import medloss
from medloss.cli.processes import RunInterrupted
from medloss.cli.score import score
from medloss.io import write_volume
from medloss.scoring.workers import init_worker

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads the process table from /proc")

ROOT = str(Path(medloss.__file__).resolve().parents[1])
N_CASES, SIZE = 40, 64
OLD = {"scores.csv": b"case,label\nold,1\n", "scores.json": b'{"old": true}\n', "instances.csv": b"old\n"}


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            text = fh.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2]


def _alive(pid: int) -> bool:
    return _state(pid) not in (None, "Z", "X")  # a zombie holds no memory; its parent (or init) reaps it


def _processes_with(marker: str) -> list[int]:
    """Live processes whose command line holds ``marker`` (forked workers keep their parent's command line)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read().decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and _alive(int(entry)):
            found.append(int(entry))
    return found


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    text = fh.read()
            except OSError:
                continue
            if int(text[text.rindex(")") + 2:].split()[1]) == pid:
                kids.append(int(entry))
    return kids


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}


def _kill_all(pids) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """40 cases of 64³ voxels with two labels of blobs and prediction speckles (about 3 s of scoring on 2 workers)."""
    import nibabel as nib

    root = tmp_path_factory.mktemp("cases")
    (root / "p").mkdir()
    (root / "r").mkdir()
    rng = np.random.default_rng(0)
    grid = np.indices((SIZE,) * 3, dtype=np.float32)
    for c in range(N_CASES):
        ref = np.zeros((SIZE,) * 3, np.uint8)
        for label in (1, 2):
            for _ in range(4):
                centre, radius = rng.uniform(8, SIZE - 8, 3), rng.uniform(3, 8)
                ref[((grid - centre[:, None, None, None].astype(np.float32)) ** 2).sum(0) < radius ** 2] = label
        pred = np.roll(ref, 1, axis=0)
        pred[rng.random(ref.shape) < 0.002] = 1
        nib.save(nib.Nifti1Image(ref, np.eye(4)), root / "r" / f"c{c:02d}.nii.gz")
        nib.save(nib.Nifti1Image(pred, np.eye(4)), root / "p" / f"c{c:02d}.nii.gz")
    return root


def _assert_old_or_complete(out: Path) -> str:
    now = {name: (out / name).read_bytes() for name in OLD}
    if now == OLD:
        return "old"
    assert all(now[name] != OLD[name] for name in OLD), "a mix of old and new output files"
    doc = json.loads(now["scores.json"])
    assert len({row["case"] for row in doc["rows"]}) == N_CASES
    rows = list(csv.DictReader(now["scores.csv"].decode().splitlines()))
    assert len({row["case"] for row in rows if not row["case"].startswith("[")}) == N_CASES
    assert now["instances.csv"].startswith(b"case,label,side,id")
    return "new"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_a_signal_mid_run_leaves_no_process_no_temporary_and_old_or_new_outputs(cases, tmp_path, sig):
    out = tmp_path / "out"
    out.mkdir()
    for name, data in OLD.items():
        (out / name).write_bytes(data)
    # Python keeps SIGINT ignored when its parent ignores it (a background CI job): make it the usual handler
    main = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from medloss.cli import main; main()")
    cmd = [sys.executable, "-c", main, "score", str(cases / "p"), str(cases / "r"), "--workers", "2",
           "-q", "--lesions", "--csv", str(out / "scores.csv"), "--json", str(out / "scores.json"),
           "--instances-csv", str(out / "instances.csv")]
    seen: set[int] = set()
    with open(tmp_path / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(_children(proc.pid)) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the workers are scoring
        seen.update(_children(proc.pid))
        assert len(seen) >= 2 and proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(sig)
        code = proc.wait(timeout=30)
        deadline = time.monotonic() + 5
        while (_processes_with(str(out)) or any(_alive(p) for p in seen)) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = sorted(set(_processes_with(str(out))) | {p for p in seen if _alive(p)})
        assert left == [], f"processes of the run still alive 5 s after it ended: {left}"
    finally:
        _kill_all([proc.pid, *seen, *_processes_with(str(out))])
        proc.wait()
    # no temporary, visible or hidden; an unfinished run leaves its part file (the cases it finished, for --resume)
    left_files = sorted(p.name for p in out.iterdir())
    state = _assert_old_or_complete(out)
    assert left_files == sorted(OLD) + (["scores.part.jsonl"] if state == "old" else [])
    if state == "old":
        lines = (out / "scores.part.jsonl").read_bytes().splitlines(keepends=True)
        records = [json.loads(line) for line in lines[1:] if line.endswith(b"\n")]
        assert len({r["case"] for r in records}) == len(records) <= N_CASES
    stderr = (tmp_path / "stderr.txt").read_text()
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert code == 128 + sig, stderr
        lines = [line for line in stderr.splitlines() if line.startswith("medloss score:")]
        assert len(lines) == 1 and "Traceback" not in stderr, stderr
        assert lines[0].startswith(f"medloss score: interrupted by {signal.Signals(sig).name};"), lines[0]


def _script_parent_with_child(tmp_path: Path, child_body: str) -> subprocess.Popen:
    script = tmp_path / "parent.py"
    script.write_text(
        "import multiprocessing, os, sys, time\n"
        "from medloss.scoring.workers import init_worker, watch_parent\n"
        "def child(parent):\n"
        f"    {child_body}\n"
        "    time.sleep(60)\n"
        "if __name__ == '__main__':\n"
        "    p = multiprocessing.get_context('fork').Process(target=child, args=(os.getpid(),))\n"
        "    p.start()\n"
        "    print(p.pid, flush=True)\n"
        "    time.sleep(60)\n")
    return subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, env=_env())


@pytest.mark.parametrize("body", ["watch_parent(parent, 0.05)", "init_worker(parent)"],
                         ids=["watchdog", "pdeathsig"])
def test_a_worker_dies_with_its_killed_parent(tmp_path, body):
    parent = _script_parent_with_child(tmp_path, body)
    child = int(parent.stdout.readline())
    time.sleep(0.3)  # the child has run the line above
    try:
        assert _alive(child)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 5
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the worker outlived its parent"
    finally:
        _kill_all([child])
        parent.stdout.close()


def test_a_worker_whose_parent_died_before_its_initializer_exits():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    worker = multiprocessing.get_context("fork").Process(target=init_worker, args=(gone.pid,))
    worker.start()
    worker.join(10)
    assert worker.exitcode == 1


def _vol(path: Path, shift: int = 0) -> None:
    a = np.zeros((10, 10, 8), np.uint8)
    a[2 + shift:6 + shift, 2:6, 2:5] = 1
    path.parent.mkdir(exist_ok=True)
    write_volume(path, a)


@pytest.fixture()
def two_cases(tmp_path):
    for c in ("c1", "c2"):
        _vol(tmp_path / "p" / f"{c}.nii.gz", 1)
        _vol(tmp_path / "r" / f"{c}.nii.gz")
    return tmp_path


def _score(root: Path, *extra):
    return CliRunner().invoke(score, [str(root / "p"), str(root / "r"), "-q", "--lesions", *map(str, extra)])


def test_outputs_get_the_umask_mode_and_a_replaced_file_keeps_its_own(two_cases):
    out = two_cases / "out"
    out.mkdir()
    (out / "s.json").write_text("{}")
    os.chmod(out / "s.json", 0o640)
    old = os.umask(0o002)
    try:
        res = _score(two_cases, "--csv", out / "s.csv", "--json", out / "s.json", "--instances-csv", out / "i.csv")
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.output
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert modes == {"s.csv": 0o664, "s.json": 0o640, "i.csv": 0o664}
    assert json.loads((out / "s.json").read_text())["rows"]


@pytest.mark.parametrize("failure", ["interrupt", "disk full"])
def test_a_failure_before_the_renames_leaves_the_old_outputs_and_no_temporary(two_cases, monkeypatch, failure):
    import medloss.io.outputs as outputs_mod
    from medloss.scoring import report

    out = two_cases / "out"
    out.mkdir()
    for name, data in OLD.items():
        (out / name).write_bytes(data)
    if failure == "interrupt":  # SIGTERM while the last file is written, after the CSV and JSON are staged
        def last_file(fh, rows):
            raise RunInterrupted(signal.SIGTERM)
        monkeypatch.setattr(report, "_instance_rows", last_file)
    else:
        real = outputs_mod._fsync

        def fsync(path, directory=False):
            if "-instances.csv-" in os.path.basename(path):
                raise OSError(28, "No space left on device")
            real(path, directory)
        monkeypatch.setattr(outputs_mod, "_fsync", fsync)
    res = _score(two_cases, "--csv", out / "scores.csv", "--json", out / "scores.json", "--instances-csv",
                 out / "instances.csv")
    lines = [line for line in res.stderr.splitlines() if not line.startswith("scoring")]  # the progress bar
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    if failure == "interrupt":
        assert res.exit_code == 143
        assert lines[0] == ("medloss score: interrupted by SIGTERM; no output written, existing files left as they "
                            "were.")
    else:
        assert res.exit_code == 1
        assert lines[0].startswith("medloss score: error: cannot write") and "instances.csv" in lines[0]
    assert {name: (out / name).read_bytes() for name in OLD} == OLD
    # no temporary; the part file of the unfinished run stays, with both cases, for --resume
    assert sorted(p.name for p in out.iterdir()) == sorted([*OLD, "scores.part.jsonl"])
    assert len((out / "scores.part.jsonl").read_text().splitlines()) == 1 + 2


def test_sigterm_during_the_renames_is_delivered_after_the_last(two_cases, monkeypatch):
    import medloss.io.outputs as outputs_mod

    out = two_cases / "out"
    out.mkdir()
    for name, data in OLD.items():
        (out / name).write_bytes(data)
    real_replace, sent = os.replace, []

    def replace(src, dst):
        if not sent:
            sent.append(dst)
            os.kill(os.getpid(), signal.SIGTERM)  # held: the handler runs once every file is in place
        real_replace(src, dst)

    monkeypatch.setattr(outputs_mod.os, "replace", replace)
    res = _score(two_cases, "--csv", out / "scores.csv", "--json", out / "scores.json", "--instances-csv",
                 out / "instances.csv")
    assert sent and res.exit_code == 143, res.output
    assert res.stderr.splitlines()[-1] == "medloss score: interrupted by SIGTERM; the output files had been written."
    assert all((out / name).read_bytes() != data for name, data in OLD.items())
    assert json.loads((out / "scores.json").read_text())["rows"]
    assert sorted(p.name for p in out.iterdir()) == sorted(OLD)
