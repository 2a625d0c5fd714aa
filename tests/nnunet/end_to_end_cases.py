"""nnU-Net end to end with medloss trainers: plan + preprocess a tiny synthetic raw dataset once, then for DiceTopK10
and the map-based Skeleton Recall: ``medloss nnunet train`` (1 epoch of 2 iterations), ``medloss nnunet predict``,
``medloss score`` on the predictions.

Not collected by a plain ``pytest`` (its name does not start with ``test_``): ``test_end_to_end.py`` runs it in a
subprocess beside the session (a background test); ``pytest tests/nnunet/end_to_end_cases.py`` runs it directly.

Training and prediction run as their own processes, as a user runs them (nnU-Net's export workers start by
re-importing the launcher). About 110 s of CPU time in all (plan 22 s; per trainer: train 24-29 s, predict 17-19 s),
nearly all of it in one process at a time.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from medloss.cli import main

pytest.importorskip("nnunetv2")
nib = pytest.importorskip("nibabel")

pytestmark = pytest.mark.slow

DATASET = "Dataset501_MedlossTiny"
PLAN = "from nnunetv2.experiment_planning.plan_and_preprocess_entrypoints import plan_and_preprocess_entry as f; f()"
#: the named trainers the test runs, each as a 1-epoch subclass ``<name>Tiny``
TRAINERS = ["nnUNetTrainerMedlossDiceTopK10", "nnUNetTrainerMedlossSkeletonRecall"]
#: nnU-Net's own final validation (sliding-window prediction of the fold's validation case, in spawned workers) does
#: not involve the loss: run it for the first trainer only, to keep the test short
TINY_TRAINER = '''
class {name}Tiny({name}):
    """{name} for 1 epoch of 2 training and 1 validation iteration, without mirroring (a smoke run)."""

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 1
        self.num_iterations_per_epoch = 2
        self.num_val_iterations_per_epoch = 1

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        # no mirror axes: nnU-Net's final validation then predicts without its 8-fold mirroring
        rotation, dummy_2d, initial_patch_size, _ = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        self.inference_allowed_mirroring_axes = None
        return rotation, dummy_2d, initial_patch_size, None
'''
SKIP_FINAL_VALIDATION = '''
    def perform_actual_validation(self, save_probabilities=False):
        pass
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
    result = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, encoding="utf-8",
                            errors="replace", timeout=400, check=False)
    assert result.returncode == 0, f"{args[:4]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The raw dataset, planned and preprocessed once for every trainer; returns (folder, environment)."""
    tmp_path = tmp_path_factory.mktemp("nnunet")
    raw, pre, res = (tmp_path / name for name in ("raw", "preprocessed", "results"))
    images, labels = raw / DATASET / "imagesTr", raw / DATASET / "labelsTr"
    for folder in (images, labels, tmp_path / "imagesTs", tmp_path / "labelsTs", pre, res):
        folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(5):  # the fewest for nnU-Net's 5-fold split
        _write_case(images, labels, f"case_{i:03d}", rng)
    _write_case(tmp_path / "imagesTs", tmp_path / "labelsTs", "test_000", rng)
    (raw / DATASET / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "sphere": 1, "box": 2},
        "numTraining": 5, "file_ending": ".nii.gz"}))
    ext = tmp_path / "my_trainers"
    ext.mkdir()
    tiny = "".join(textwrap.dedent(TINY_TRAINER).format(name=name) + (SKIP_FINAL_VALIDATION if i else "")
                   for i, name in enumerate(TRAINERS))
    imports = "".join(f"from medloss.nnunet.trainers import {name}\n" for name in TRAINERS)
    (ext / "tiny_trainers.py").write_text(f"import torch\n\n{imports}\n{tiny}")

    # one worker everywhere: nnU-Net's final validation starts nnUNet_def_n_proc (8) spawned exporters otherwise
    env = {**os.environ, "nnUNet_raw": str(raw), "nnUNet_preprocessed": str(pre), "nnUNet_results": str(res),
           "nnUNet_extTrainer": str(ext), "nnUNet_compile": "f", "OMP_NUM_THREADS": "1", "nnUNet_def_n_proc": "1"}
    _run([sys.executable, "-c", PLAN, "-d", "501", "-c", "3d_fullres", "-np", "1", "-npfp", "1"], env, tmp_path)
    return tmp_path, env


@pytest.mark.parametrize("name", TRAINERS)
def test_train_predict_score_with_a_medloss_trainer(name, prepared):
    tmp_path, env = prepared
    trainer = f"{name}Tiny"
    python = [sys.executable, "-c", "import sys; from medloss.cli import main; sys.exit(main())"]
    train_env = {**env, "nnUNet_n_proc_DA": "0"}  # only for training: 0 breaks planning
    _run([*python, "nnunet", "train", "501", "3d_fullres", "0", "-tr", trainer, "-device", "cpu"], train_env, tmp_path)
    model = Path(env["nnUNet_results"]) / DATASET / f"{trainer}__nnUNetPlans__3d_fullres" / "fold_0"
    assert (model / "checkpoint_final.pth").is_file()
    assert (model / "validation" / "summary.json").is_file() == (name == TRAINERS[0])
    log = next(model.glob("training_log_*.txt")).read_text(encoding="utf-8")
    assert "train_loss" in log and "val_loss" in log

    out = tmp_path / f"predictions_{name}"
    _run([*python, "nnunet", "predict", "-i", str(tmp_path / "imagesTs"), "-o", str(out), "-d", "501", "-c",
          "3d_fullres", "-f", "0", "-tr", trainer, "-chk", "checkpoint_final.pth", "-device", "cpu",
          "--disable_tta", "-npp", "1", "-nps", "1"], env, tmp_path)
    prediction = nib.load(out / "test_000.nii.gz")
    assert prediction.shape == (32, 32, 32)

    scores = tmp_path / f"scores_{name}.json"
    result = CliRunner().invoke(main, ["score", str(out / "test_000.nii.gz"),
                                       str(tmp_path / "labelsTs" / "test_000.nii.gz"), "--labels", "1,2",
                                       "--json", str(scores), "-q"])
    assert result.exit_code == 0, result.output
    report = json.loads(scores.read_text(encoding="utf-8"))
    assert report["errors"] == []
    assert sorted(row["label"] for row in report["rows"]) == [1, 2]
    assert all(0.0 <= row["dice"] <= 1.0 for row in report["rows"])  # 2 iterations: a number, not a good one
