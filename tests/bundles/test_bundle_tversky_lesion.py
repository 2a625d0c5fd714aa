"""The tversky_lesion bundle: layout, metadata, config IDs, train/evaluate/infer, resume, bad input, DDP, real data.

Fast tests run the bundle in-process through ``monai.bundle.ConfigWorkflow`` on tiny synthetic data (4 cases of
32³, 16³ patches). Slow ones run the documented command lines in a copy of the bundle folder.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "tversky_lesion"
SCHEMA = BUNDLE.parent / "schema" / "meta_schema_20240725.json"
REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
TINY = {"num_samples": 4, "synthetic_size": [32, 32, 32], "roi_size": [16, 16, 16], "seed": 5}


def _config(name: str) -> dict:
    return json.loads((BUNDLE / "configs" / name).read_text())


def _workflow(configs, workflow_type, tmp: Path, **overrides):
    from monai.bundle import ConfigWorkflow

    files = [str(BUNDLE / "configs" / c) for c in configs]
    base = {"bundle_root": str(BUNDLE), "output_dir": str(tmp / "out"), "ckpt_dir": str(tmp / "models"),
            "dataset_dir": str(tmp / "data"), **TINY}
    return ConfigWorkflow(config_file=files if len(files) > 1 else files[0], workflow_type=workflow_type,
                          meta_file=str(BUNDLE / "configs" / "metadata.json"), logging_file=False,
                          **{**base, **overrides})


def _run(wf, before_run=None):
    wf.initialize()
    assert wf.check_properties() in (None, [])
    if before_run:
        before_run(wf)
    wf.run()
    wf.finalize()
    return wf


def test_layout():
    for rel in ("LICENSE", "docs/README.md", "configs/metadata.json", "configs/train.json", "configs/evaluate.json",
                "configs/inference.json", "configs/multi_gpu_train.json", "configs/logging.conf"):
        assert (BUNDLE / rel).is_file(), rel
    assert (BUNDLE / "models").is_dir()
    assert "Apache License" in (BUNDLE / "LICENSE").read_text()


def test_metadata_validates_against_the_offline_schema():
    import jsonschema

    meta = _config("metadata.json")
    jsonschema.validate(meta, json.loads(SCHEMA.read_text()))
    assert meta["schema"].endswith("meta_schema_20240725.json")
    assert "optional_packages_version" not in meta  # MONAI would rename it over required_packages_version
    assert meta["required_packages_version"]["medloss"] == version("medloss")
    assert meta["version"] in meta["changelog"]
    assert meta["eval_metrics"]["val_mean_dice"] >= 0.85
    broken = {k: v for k, v in meta.items() if k != "authors"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, json.loads(SCHEMA.read_text()))


def test_verify_metadata_cli_works_offline_with_the_local_schema():
    from monai.bundle import verify_metadata

    with pytest.warns(UserWarning, match="No hash value provided for .*meta_schema_20240725.json"):  # local file used
        verify_metadata(meta_file=str(BUNDLE / "configs" / "metadata.json"), filepath=str(SCHEMA))


def test_config_ids_and_dotted_loss_target():
    train = _config("train.json")
    for key in ("epochs", "num_samples", "roi_size", "dataset_dir", "datalist", "device", "bundle_root",
                "output_dir", "val_interval", "resume"):
        assert key in train, key
    assert train["loss"]["_target_"] == "medloss.losses.FocalTverskyLoss"
    assert train["loss"]["beta"] > train["loss"]["alpha"]  # false negatives weigh more
    infer = _config("inference.json")
    assert infer["network_def"] == train["network_def"]  # inference must load what training saved
    assert infer["preprocessing"]["transforms"][2] == train["preprocessing_common"][2]  # same intensity scaling


@pytest.mark.parametrize("value,expected", [(True, True), ("true", True), ("True", True), (False, False),
                                            ("false", False), ("0", False)])
def test_resume_flag_parses_command_line_strings(tmp_path, value, expected):
    # `--resume false` reaches the config as the string 'false' (fire only parses True/False): it must not resume
    wf = _workflow(["train.json"], "train", tmp_path, resume=value)
    assert wf.parser.get_parsed_content("resuming") is expected


def test_verify_net_in_out():
    from monai.bundle import verify_net_in_out

    verify_net_in_out(net_id="network_def", meta_file=str(BUNDLE / "configs" / "metadata.json"),
                      config_file=str(BUNDLE / "configs" / "inference.json"), device="cpu")


def test_train_evaluate_infer(tmp_path):
    _run(_workflow(["train.json"], "train", tmp_path, epochs=2))
    assert (tmp_path / "models" / "model.pt").is_file()
    ckpt = torch.load(tmp_path / "models" / "checkpoint_epoch=2.pt", weights_only=True)
    assert {"model", "optimizer", "lr_scheduler", "trainer", "best_metric"} <= set(ckpt)
    with (tmp_path / "out" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(r["val_metric"] for r in rows)
    assert (tmp_path / "out" / "training_curves.png").stat().st_size > 1000

    _run(_workflow(["train.json", "evaluate.json"], "train", tmp_path))  # the model zoo's type for evaluate
    assert (tmp_path / "out" / "val_mean_dice_raw.csv").is_file()
    val = json.loads((tmp_path / "data" / "datalist.json").read_text())["validation"][0]
    pred = nib.load(str(tmp_path / "out" / "predictions" / Path(val["image"]).name.replace(".nii.gz", "_seg.nii.gz")))
    ref = nib.load(str(tmp_path / "data" / val["label"]))
    assert pred.shape == ref.shape and np.allclose(pred.affine, ref.affine)

    shutil.rmtree(tmp_path / "out" / "predictions")
    _run(_workflow(["inference.json"], "infer", tmp_path))
    assert len(list((tmp_path / "out" / "predictions").glob("*_seg.nii.gz"))) == 1


def test_resume_matches_uninterrupted_run(tmp_path):
    from ignite.engine import Events

    def stop_after_first_epoch(wf):
        trainer = wf.parser.get_parsed_content("train#trainer")
        trainer.add_event_handler(Events.EPOCH_COMPLETED(once=1), lambda engine: engine.terminate())

    _run(_workflow(["train.json"], "train", tmp_path, epochs=2, ckpt_dir=str(tmp_path / "full")))
    _run(_workflow(["train.json"], "train", tmp_path, epochs=2, ckpt_dir=str(tmp_path / "cut"),
                   output_dir=str(tmp_path / "cut_out")), before_run=stop_after_first_epoch)
    assert sorted(p.name for p in (tmp_path / "cut").glob("checkpoint_epoch=*.pt")) == ["checkpoint_epoch=1.pt"]
    _run(_workflow(["train.json"], "train", tmp_path, epochs=2, ckpt_dir=str(tmp_path / "cut"),
                   output_dir=str(tmp_path / "cut_out"), resume=True))

    full = torch.load(tmp_path / "full" / "checkpoint_epoch=2.pt", weights_only=True)
    resumed = torch.load(tmp_path / "cut" / "checkpoint_epoch=2.pt", weights_only=True)
    assert full["trainer"]["iteration"] == resumed["trainer"]["iteration"] == 2 * full["trainer"]["epoch_length"]
    for name, tensor in full["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name
    assert full["best_metric"] == resumed["best_metric"]
    best_full = torch.load(tmp_path / "full" / "model.pt", weights_only=True)
    best_resumed = torch.load(tmp_path / "cut" / "model.pt", weights_only=True)
    assert all(torch.equal(t, best_resumed[k]) for k, t in best_full.items())
    with (tmp_path / "cut_out" / "metrics.csv").open() as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2"]


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    from medloss.errors import InvalidOptionError

    wf = _workflow(["train.json"], "train", tmp_path, epochs=1, resume=True)
    wf.initialize()
    with pytest.raises(RuntimeError) as info:
        wf.run()
    assert _medloss_error(info.value, InvalidOptionError, "checkpoint_epoch")


def _medloss_error(err, kind, text):
    while err is not None:
        if isinstance(err, kind) and text in str(err):
            return True
        err = err.__cause__ or err.__context__
    return False


def _small_datalist(tmp_path: Path, mutate=None) -> Path:
    """A datalist over synthetic files, optionally broken by ``mutate(data_dir, content)``."""
    from medloss.data import make_lesion_dataset

    path = make_lesion_dataset(tmp_path / "real", 4, size=32, seed=2)
    content = json.loads(path.read_text())
    content.pop("medloss_synthetic")
    if mutate:
        mutate(path.parent, content)
    out = tmp_path / "list.json"
    out.write_text(json.dumps(content))
    return out


def _shape_mismatch(root, content):
    nib.save(nib.Nifti1Image(np.zeros((32, 32, 30), np.uint8), np.eye(4)), str(root / content["training"][1]["label"]))


def _bad_value(root, content):
    label = root / content["validation"][0]["label"]
    array = np.asarray(nib.load(str(label)).dataobj).copy()
    array[0, 0, 0] = 7
    nib.save(nib.Nifti1Image(array, np.eye(4)), str(label))


def _missing_entry(root, content):
    content["training"][0]["image"] = "imagesTr/not_there.nii.gz"


@pytest.mark.parametrize("mutate,kind,text", [
    (_shape_mismatch, "ShapeMismatchError", "lesion_001.nii.gz"),
    (_bad_value, "LabelValueError", "lesion_003.nii.gz"),
    (_missing_entry, "VolumeReadError", "not_there.nii.gz"),
    (None, "InvalidOptionError", "does not exist"),
])
def test_bad_input_fails_before_training(tmp_path, mutate, kind, text):
    import medloss.errors

    datalist = _small_datalist(tmp_path, mutate)
    dataset_dir = tmp_path / "real" if mutate else tmp_path / "no_such_dir"
    wf = _workflow(["train.json"], "train", tmp_path, epochs=1, datalist=str(datalist), dataset_dir=str(dataset_dir))
    with pytest.raises(RuntimeError) as info:
        wf.initialize()
    assert _medloss_error(info.value, getattr(medloss.errors, kind), text)
    assert not (tmp_path / "models").exists()


def _copy_bundle(tmp_path: Path) -> Path:
    dst = tmp_path / "tversky_lesion"
    shutil.copytree(BUNDLE, dst, ignore=shutil.ignore_patterns("eval", "*.pt", "data", "__pycache__"))
    return dst


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _failure_lines(output: str) -> str:
    """The lines of a failed run that say why (errors, signals, exit codes), not the whole log."""
    keys = ("Error", "error:", "terminate", "exitcode", "Signal", "Traceback")
    return "\n".join(line for line in output.splitlines() if any(k in line for k in keys))[-6000:]


def _bundle_cli(bundle: Path, config_file: str, *args: str) -> str:
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", config_file, *args]
    done = subprocess.run(cmd, cwd=bundle, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, _failure_lines(done.stdout + done.stderr)
    return done.stdout


@pytest.mark.slow
def test_documented_cli_commands_from_the_bundle_folder(tmp_path):
    bundle = _copy_bundle(tmp_path)
    out = _bundle_cli(bundle, "configs/train.json", "--epochs", "2", "--num_samples", "4", "--roi_size", "[32,32,32]")
    assert "Epoch: 2/2" in out and "val_mean_dice" in out  # StatsHandler progress
    assert (bundle / "models" / "model.pt").is_file() and (bundle / "eval" / "training_curves.png").is_file()
    tiny = ("--num_samples", "4", "--roi_size", "[32,32,32]")
    _bundle_cli(bundle, "['configs/train.json','configs/evaluate.json']", *tiny)
    assert (bundle / "eval" / "val_mean_dice_raw.csv").is_file()
    shutil.rmtree(bundle / "eval" / "predictions")
    _bundle_cli(bundle, "configs/inference.json", *tiny)
    val = json.loads((bundle / "eval" / "synthetic_data" / "datalist.json").read_text())["validation"][0]
    pred = nib.load(str(bundle / "eval" / "predictions" / Path(val["image"]).name.replace(".nii", "_seg.nii")))
    assert pred.shape == (64, 64, 64) and pred.get_data_dtype() == np.uint8


@pytest.mark.slow
def test_multi_gpu_train_with_two_gloo_processes(tmp_path):
    bundle = _copy_bundle(tmp_path)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
           "-m", "monai.bundle", "run", "--config_file", "['configs/train.json','configs/multi_gpu_train.json']",
           "--epochs", "2", "--num_samples", "8", "--synthetic_size", "[32,32,32]", "--roi_size", "[16,16,16]"]
    done = subprocess.run(cmd, cwd=bundle, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, _failure_lines(done.stdout + done.stderr)
    state = torch.load(bundle / "models" / "model.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in state)  # a plain state_dict, loadable without DDP
    with (bundle / "eval" / "metrics.csv").open() as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2"]


@pytest.mark.slow
@pytest.mark.skipif(not REAL.is_dir(), reason="shared real data not present")
def test_real_nrrd_and_nifti_cases_through_a_datalist(tmp_path):
    cases = [("pyradiomics_breast1", "nrrd"), ("mirp_sts003_pet", "nii.gz"), ("mirp_sts002_mrt1", "nii.gz")]
    entries = [{"image": f"{n}_image.{e}", "label": f"{n}_label.{e}"} for n, e in cases]
    datalist = tmp_path / "real.json"
    datalist.write_text(json.dumps({"training": entries[1:], "validation": entries[:1]}))
    common = {"datalist": str(datalist), "dataset_dir": str(REAL), "roi_size": [32, 32, 16]}
    _run(_workflow(["train.json"], "train", tmp_path, epochs=1, **common))
    _run(_workflow(["inference.json"], "infer", tmp_path, **common))
    pred = nib.load(str(tmp_path / "out" / "predictions" / "pyradiomics_breast1_image_seg.nii.gz"))
    image = sitk.ReadImage(str(REAL / "pyradiomics_breast1_image.nrrd"))
    assert pred.shape == image.GetSize()
    spacing = np.sqrt((pred.affine[:3, :3] ** 2).sum(0))
    np.testing.assert_allclose(spacing, image.GetSpacing(), rtol=1e-5)
    lps_origin = pred.affine[:3, 3] * np.array([-1, -1, 1])  # NIfTI is RAS, ITK is LPS
    np.testing.assert_allclose(lps_origin, image.GetOrigin(), atol=1e-4)
