"""What `python -m monai.bundle run` prints for the medloss bundles: a medloss check that fails is one line, last
(the trace only with `--verbose true`); inference says how many cases it predicted and where they are."""
from __future__ import annotations

import subprocess
import sys

import pytest
from bundle_testing import copy_bundle, env, run, workflow

TINY_ARGS = ("--num_samples", "4", "--synthetic_size", "[32,32,32]", "--roi_size", "[16,16,16]", "--seed", "5")


def _bundle_run(bundle, *args):
    cmd = [sys.executable, "-m", "monai.bundle", "run", *args]
    return subprocess.run(cmd, cwd=bundle, env=env(), capture_output=True, text=True, timeout=300)


def _ends_with_one_medloss_line(done, *words, trace=False):
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("medloss: error: "), done.stderr[-3000:]
    for word in words:
        assert word in lines[-1]
    assert ("Traceback" in done.stderr) is trace
    assert ("Failed to evaluate ConfigExpression" in done.stderr) is trace
    assert sum(line.startswith("medloss: error:") for line in lines) == 1


@pytest.mark.slow
def test_missing_dataset_folder_is_one_line_and_verbose_shows_the_trace(tmp_path):
    bundle = copy_bundle("tversky_lesion", tmp_path)
    args = ("--config_file", "configs/train.json", "--dataset_dir", str(tmp_path / "nope"), "--datalist", "x.json")
    done = _bundle_run(bundle, *args)
    _ends_with_one_medloss_line(done, "`dataset_dir`", str(tmp_path / "nope"))
    assert len(done.stderr.strip().splitlines()) <= 3  # MONAI's own two-line security warning, then ours
    assert done.stderr.count(str(tmp_path / "nope")) == 1  # no example repeating the failing path
    _ends_with_one_medloss_line(_bundle_run(bundle, *args, "--verbose", "true"), "`dataset_dir`", trace=True)


@pytest.mark.slow
def test_resume_with_other_epochs_is_one_line(tmp_path):
    bundle = copy_bundle("tversky_lesion", tmp_path)
    run(workflow("tversky_lesion", ["train.json"], "train", tmp_path, bundle=bundle, epochs=1,
                 ckpt_dir=str(bundle / "models")))
    done = _bundle_run(bundle, "--config_file", "configs/train.json", "--epochs", "3", "--resume", "true",
                       "--dataset_dir", str(tmp_path / "data"), *TINY_ARGS)
    _ends_with_one_medloss_line(done, "--epochs 1")
    assert "Engine run is terminating" not in done.stdout + done.stderr  # refused before the trainer starts
