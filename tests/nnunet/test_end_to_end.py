"""nnU-Net end to end with a medloss trainer: plan + preprocess a tiny synthetic raw dataset, ``medloss nnunet
train`` (1 epoch of 2 iterations), ``medloss nnunet predict``, then ``medloss score`` on the predictions.

Each step runs as its own process, as a user runs them (nnU-Net's export workers start by re-importing the
launcher). About a minute on 2 CPU cores.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("nnunetv2")
nib = pytest.importorskip("nibabel")

pytestmark = pytest.mark.slow

DATASET = "Dataset501_MedlossTiny"
PLAN = "from nnunetv2.experiment_planning.plan_and_preprocess_entrypoints import plan_and_preprocess_entry as f; f()"
TRAINER = "nnUNetTrainerMedlossDiceTopK10Tiny"
TINY_TRAINER = f'''
import torch

from medloss.nnunet.trainers import nnUNetTrainerMedlossDiceTopK10


class {TRAINER}(nnUNetTrainerMedlossDiceTopK10):
    """DiceTopK10 for 1 epoch of 2 iterations (a smoke run)."""

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 1
        self.num_iterations_per_epoch = 2
        self.num_val_iterations_per_epoch = 1
'''


def _write_case(folder_images, folder_labels, name, rng):
    """A 32^3 volume with a bright sphere (label 1) and a dimmer box (label 2) at random places."""
    shape = (32, 32, 32)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"))
    centre = rng.integers(10, 22, size=3)
    label = (np.sum((grid - centre[:, None, None, None]) ** 2, axis=0) < 36).astype(np.uint8)
    corner = rng.integers(2, 6, size=3)
    label[tuple(slice(c, c + 6) for c in corner)] = 2
    image = (label * 1.0 + rng.normal(0, 0.2, shape)).astype(np.float32)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    nib.save(nib.Nifti1Image(image, affine), os.path.join(folder_images, f"{name}_0000.nii.gz"))
    if folder_labels is not None:
        nib.save(nib.Nifti1Image(label, affine), os.path.join(folder_labels, f"{name}.nii.gz"))
    return label


def _run(args, env, cwd):
    result = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=400, check=False)
    assert result.returncode == 0, f"{args[:4]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_train_predict_score_with_a_medloss_trainer(tmp_path):
    raw, pre, res = (tmp_path / name for name in ("raw", "preprocessed", "results"))
    images, labels = raw / DATASET / "imagesTr", raw / DATASET / "labelsTr"
    test_images, test_labels = tmp_path / "imagesTs", tmp_path / "labelsTs"
    for folder in (images, labels, test_images, test_labels, pre, res):
        folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        _write_case(images, labels, f"case_{i:03d}", rng)
    _write_case(test_images, test_labels, "test_000", rng)
    (raw / DATASET / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "sphere": 1, "box": 2},
        "numTraining": 6, "file_ending": ".nii.gz"}))
    ext = tmp_path / "my_trainers"
    ext.mkdir()
    (ext / "tiny_trainers.py").write_text(textwrap.dedent(TINY_TRAINER))

    env = {**os.environ, "nnUNet_raw": str(raw), "nnUNet_preprocessed": str(pre), "nnUNet_results": str(res),
           "nnUNet_extTrainer": str(ext), "nnUNet_compile": "f", "OMP_NUM_THREADS": "1"}
    python = [sys.executable, "-c", "import sys; from medloss.cli import main; sys.exit(main())"]
    _run([sys.executable, "-c", PLAN, "-d", "501", "-c", "3d_fullres", "-np", "1", "-npfp", "1"], env, tmp_path)
    train_env = {**env, "nnUNet_n_proc_DA": "0"}  # only for training: 0 breaks planning
    _run([*python, "nnunet", "train", "501", "3d_fullres", "0", "-tr", TRAINER, "-device", "cpu"], train_env, tmp_path)
    model = res / DATASET / f"{TRAINER}__nnUNetPlans__3d_fullres" / "fold_0"
    assert (model / "checkpoint_final.pth").is_file()
    log = next(model.glob("training_log_*.txt")).read_text()
    assert "train_loss" in log

    out = tmp_path / "predictions"
    _run([*python, "nnunet", "predict", "-i", str(test_images), "-o", str(out), "-d", "501", "-c", "3d_fullres",
          "-f", "0", "-tr", TRAINER, "-chk", "checkpoint_final.pth", "-device", "cpu", "--disable_tta",
          "-npp", "1", "-nps", "1"], env, tmp_path)
    prediction = nib.load(out / "test_000.nii.gz")
    assert prediction.shape == (32, 32, 32)

    scores = tmp_path / "scores.json"
    _run([*python, "score", str(out / "test_000.nii.gz"), str(test_labels / "test_000.nii.gz"), "--labels", "1,2",
          "--json", str(scores), "-q"], env, tmp_path)
    report = json.loads(scores.read_text())
    assert report["errors"] == []
    assert sorted(row["label"] for row in report["rows"]) == [1, 2]
    assert all(0.0 <= row["dice"] <= 1.0 for row in report["rows"])  # 2 iterations: a number, not a good one
