"""Helpers shared by the bundle tests: run a bundle in-process or from a copy of its folder, find typed errors.

Fast tests run a bundle in-process through ``monai.bundle.ConfigWorkflow`` on tiny synthetic data (4 cases of
32³, 16³ patches); slow ones run the documented command lines in a copy of the bundle folder.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

BUNDLES_DIR = Path(__file__).resolve().parents[2] / "bundles"
BUNDLE_NAMES = ("tversky_lesion", "explog_lesion", "anatomynet_lesion")
SCHEMA = BUNDLES_DIR / "schema" / "meta_schema_20240725.json"
TINY = {"num_samples": 4, "synthetic_size": [32, 32, 32], "roi_size": [16, 16, 16], "seed": 5}


def bundle_dir(name: str) -> Path:
    return BUNDLES_DIR / name


def config(name: str, file: str) -> dict:
    return json.loads((bundle_dir(name) / "configs" / file).read_text())


def workflow(name: str, configs, workflow_type, tmp: Path, bundle: Path | None = None, **overrides):
    """A ``ConfigWorkflow`` over ``configs`` of bundle ``name`` with outputs, checkpoints and data under ``tmp``."""
    from monai.bundle import ConfigWorkflow

    root = bundle or bundle_dir(name)
    files = [str(root / "configs" / c) for c in configs]
    base = {"bundle_root": str(root), "output_dir": str(tmp / "out"), "ckpt_dir": str(tmp / "models"),
            "dataset_dir": str(tmp / "data"), **TINY}
    return ConfigWorkflow(config_file=files if len(files) > 1 else files[0], workflow_type=workflow_type,
                          meta_file=str(root / "configs" / "metadata.json"), logging_file=False,
                          **{**base, **overrides})


def run(wf, before_run=None):
    wf.initialize()
    assert wf.check_properties() in (None, [])
    if before_run:
        before_run(wf)
    wf.run()
    wf.finalize()
    return wf


def medloss_error(err, kind, text) -> bool:
    """True if ``err`` or an exception in its cause/context chain is a ``kind`` whose message holds ``text``."""
    while err is not None:
        if isinstance(err, kind) and text in str(err):
            return True
        err = err.__cause__ or err.__context__
    return False


def copy_bundle(name: str, tmp_path: Path) -> Path:
    dst = tmp_path / name
    shutil.copytree(bundle_dir(name), dst, ignore=shutil.ignore_patterns("eval", "*.pt", "data", "__pycache__"))
    return dst


def env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def failure_lines(output: str) -> str:
    """The lines of a failed run that say why (errors, signals, exit codes), not the whole log."""
    keys = ("Error", "error:", "terminate", "exitcode", "Signal", "Traceback")
    return "\n".join(line for line in output.splitlines() if any(k in line for k in keys))[-6000:]


def bundle_cli(bundle: Path, config_file: str, *args: str) -> str:
    """Run ``python -m monai.bundle run --config_file ...`` from the bundle folder; return its stdout."""
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", config_file, *args]
    done = subprocess.run(cmd, cwd=bundle, env=env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, failure_lines(done.stdout + done.stderr)
    return done.stdout


def torchrun(bundle: Path, config_file: str, *args: str, nproc: int = 2) -> None:
    """Run the bundle with ``python -m torch.distributed.run`` (``nproc`` processes) from its folder."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", f"--nproc_per_node={nproc}",
           "-m", "monai.bundle", "run", "--config_file", config_file, *args]
    done = subprocess.run(cmd, cwd=bundle, env=env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, failure_lines(done.stdout + done.stderr)
