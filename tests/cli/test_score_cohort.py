"""`medloss score` on cohorts: --resume after a SIGKILL, the part file, --metrics, progress with cases/s and ETA,
and the usage errors of the executor options."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import medloss
import medloss.scoring.cohort as cohort_mod
from medloss.cli.score import score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scoring"))
from _cohort_cases import same, write_cohort  # noqa: E402

ROOT = str(Path(medloss.__file__).resolve().parents[1])


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return write_cohort(tmp_path_factory.mktemp("cli_cohort"), 30, size=40)


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True) if path.exists() else []


@pytest.mark.slow
def test_resume_after_sigkill_scores_only_the_unfinished_cases_and_equals_an_uninterrupted_run(cases, tmp_path,
                                                                                              monkeypatch):
    pred, ref = cases
    opts = ["--lesion-preset", "brats23", "--allow-uncovered-labels", "-q"]
    out = tmp_path / "s.json"
    part = tmp_path / "s.part.jsonl"
    cmd = [sys.executable, "-c", "from medloss.cli import main; main()", "score", str(pred), str(ref), *opts,
           "--json", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    deadline = time.monotonic() + 60
    while len(_lines(part)) < 6 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not out.exists(), "the run ended before it could be killed"
    finished = {json.loads(line)["case"] for line in _lines(part)[1:] if line.endswith(b"\n")}
    assert 5 <= len(finished) < 30

    scored = []
    real = cohort_mod.score_case

    def spy(case, *args):
        scored.append(case)
        return real(case, *args)

    monkeypatch.setattr(cohort_mod, "score_case", spy)
    res = CliRunner().invoke(score, [str(pred), str(ref), *opts, "--json", str(out), "--resume"])
    assert res.exit_code == 0, res.output
    assert f"medloss score: resumed: {len(finished)} case(s) were already scored in {part}." in res.stderr
    assert sorted(scored) == sorted({f"c{c:03d}" for c in range(30)} - finished)  # no finished case again
    assert not part.exists()  # the outputs hold every row: the part file is gone

    whole = tmp_path / "whole.json"
    res = CliRunner().invoke(score, [str(pred), str(ref), *opts, "--json", str(whole)])
    assert res.exit_code == 0, res.output
    got, want = json.loads(out.read_text()), json.loads(whole.read_text())
    assert len(got["rows"]) == 90 and same(got["rows"], want["rows"]) and same(got["summary"], want["summary"])


def test_metrics_option_adds_boundary_iou_and_progress_shows_rate_and_eta(cases, tmp_path):
    pred, ref = cases
    res = CliRunner().invoke(score, [str(pred), str(ref), "-q", "--metrics", "overlap,boundary_iou", "--csv",
                                     str(tmp_path / "s.csv")])
    assert res.exit_code == 0, res.output
    header = (tmp_path / "s.csv").read_text().splitlines()[0].split(",")
    assert header[:7] == ["case", "label", "dice", "iou", "precision", "recall", "boundary_iou"]
    assert "hd95" not in header
    progress = [line for line in res.stderr.splitlines() if line.startswith("scoring")]
    assert progress and "30/30" in progress[-1] and "cases/s, ETA 0:00" in progress[-1], res.stderr


@pytest.mark.parametrize(("args", "text"), [
    (["--executor", "local", "--scheduler", "tcp://127.0.0.1:1"], "--scheduler is the address of a Dask scheduler"),
    (["--scheduler", "tcp://127.0.0.1:1", "--workers", "2"], "--workers sets the size of a local pool"),
    (["--resume"], "--resume reads the part file written beside --json"),
    (["--loss", "dice", "--resume"], "--resume applies to metric scoring"),
])
def test_executor_and_resume_usage_errors(cases, args, text):
    pred, ref = cases
    res = CliRunner().invoke(score, [str(pred), str(ref), *args])
    assert res.exit_code == 2 and text in res.stderr and len(res.stderr.splitlines()) == 1, res.output


def test_metrics_option_error_names_the_choices(cases, tmp_path):
    pred, ref = cases
    res = CliRunner().invoke(score, [str(pred), str(ref), "--metrics", "overlap,bioU", "--csv",
                                     str(tmp_path / "s.csv")])
    assert res.exit_code == 1 and "`metrics` must be one of" in res.stderr and not (tmp_path / "s.csv").exists()


def test_a_run_where_no_case_scores_leaves_no_part_file(tmp_path):
    import nibabel as nib
    import numpy as np

    for side, shape in (("p", (4, 4, 4)), ("r", (5, 5, 5))):
        (tmp_path / side).mkdir()
        for c in ("a", "b"):
            nib.save(nib.Nifti1Image(np.ones(shape, np.uint8), np.eye(4)), str(tmp_path / side / f"{c}.nii.gz"))
    res = CliRunner().invoke(score, [str(tmp_path / "p"), str(tmp_path / "r"), "-q", "--json",
                                     str(tmp_path / "s.json")])
    assert res.exit_code == 1 and "no case could be scored (2 error(s)); nothing written." in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p", "r"]
