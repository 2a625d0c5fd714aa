"""The packaging path: a wheel built from the source tree carries the bundles, and from an installed wheel (not the
source tree) `medloss bundle list/init`, a 1-epoch `python -m monai.bundle run`, inference and `medloss demo` work
from an unrelated folder.

The wheel goes into a fresh venv without downloading anything: `--no-deps --no-build-isolation`, and the test
interpreter's own site-packages (torch, MONAI, ...) are appended to the venv's path by a ``.pth`` file, after the
venv's site-packages, so `import medloss` finds the installed wheel and the editable install of the checkout is
not activated (``.pth`` files of an appended folder are not processed).

Not collected by a plain ``pytest`` (its name does not start with ``test_``): ``test_bundles_and_wheel.py`` runs
it in a subprocess beside the session (a background test); ``pytest tests/bundles/wheel_cases.py`` runs it directly.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(cmd, cwd, env, timeout=600):
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


@pytest.mark.slow
def test_installed_wheel_ships_and_runs_the_bundles(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MEDLOSS_BUNDLES", "PYTHONHOME")}
    env.update(OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    # build from a clean copy of the sources (no build/, no in-place kernel, no run outputs)
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "*.so", "__pycache__", "eval", "*.pt", "tests", "benchmarks"))
    _run([sys.executable, "-m", "pip", "wheel", src, "--no-deps", "--no-build-isolation", "-q", "-w",
          tmp_path / "dist"], tmp_path, env)
    (wheel,) = (tmp_path / "dist").glob("medloss-*.whl")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", venv], tmp_path, env)
    python = venv / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path,
                     env).strip().splitlines()[-1])
    parent = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_parent_env.pth").write_text("\n".join(sorted(parent)) + "\n")
    _run([python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q", wheel], tmp_path, env)

    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run([python, "-c", "import medloss, medloss.data as d; print(medloss.__file__); print(d.bundles_root())"],
                 work, env).strip().splitlines()
    assert all(line.startswith(str(site)) for line in where[-2:]), where  # the wheel, not the source tree
    medloss = venv / "bin" / "medloss"
    assert "tversky_lesion" in _run([medloss, "bundle", "list"], work, env)
    _run([medloss, "bundle", "init", "tversky_lesion", "mine"], work, env)
    tiny = ["--num_samples", "4", "--synthetic_size", "[32,32,32]", "--roi_size", "[16,16,16]"]
    out = _run([python, "-m", "monai.bundle", "run", "--config_file", "configs/train.json", "--epochs", "1", *tiny],
               work / "mine", env)
    assert "epoch 1/1" in out and (work / "mine" / "models" / "model.pt").is_file()
    out = _run([python, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json", *tiny],
               work / "mine", env)
    assert "1 case(s) predicted" in out and list((work / "mine" / "eval" / "predictions").glob("*_seg.nii.gz"))
    out = _run([medloss, "demo", "--epochs", "1", "--num-samples", "3", "--size", "24", "--roi-size", "16",
                "--device", "cpu"], work, env)
    assert str(site / "medloss" / "bundles" / "tversky_lesion") in out.replace("\n", "")
    assert (work / "medloss_demo_output" / "scores.json").is_file()
