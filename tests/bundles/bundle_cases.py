"""What every medloss bundle must do, checked for each of them: model-zoo layout, metadata against the offline
schema, overridable config IDs, train / evaluate / infer from the bundle folder, bit-exact resume, typed errors on
bad input, and DDP with two gloo processes.

Loss- and task-specific checks live in ``test_bundle_<name>.py``.

Not collected by a plain ``pytest`` (its name does not start with ``test_``): ``test_bundles_and_wheel.py`` runs
it in a subprocess beside the session (a background test); ``pytest tests/bundles/bundle_cases.py`` runs it directly.
"""
from __future__ import annotations

import csv
import json
import shutil
from importlib.metadata import version
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_testing import (
    BUNDLE_NAMES,
    SCHEMA,
    bundle_cli,
    bundle_dir,
    config,
    copy_bundle,
    medloss_error,
    run,
    torchrun,
    workflow,
)

pytestmark = pytest.mark.parametrize("name", BUNDLE_NAMES)

#: data options inference.json must share with train.json, so that it sees (or regenerates) the same cases
DATA_IDS = ("num_samples", "synthetic_size", "num_channels", "num_classes", "seed", "dataset_dir", "datalist",
            "output_dir", "ckpt_dir", "bundle_root", "roi_size", "data", "network_def")


def test_layout(name):
    bundle = bundle_dir(name)
    for rel in ("LICENSE", "docs/README.md", "configs/metadata.json", "configs/train.json", "configs/evaluate.json",
                "configs/inference.json", "configs/multi_gpu_train.json", "configs/logging.conf"):
        assert (bundle / rel).is_file(), rel
    assert (bundle / "models").is_dir()
    assert "Apache License" in (bundle / "LICENSE").read_text()
    assert f"[`{name}`]({name}/docs/README.md)" in (bundle.parent / "README.md").read_text()  # in the index


def test_metadata_validates_against_the_offline_schema(name):
    import jsonschema

    meta = config(name, "metadata.json")
    jsonschema.validate(meta, json.loads(SCHEMA.read_text()))
    assert meta["schema"].endswith("meta_schema_20240725.json")
    assert "optional_packages_version" not in meta  # MONAI would rename it over required_packages_version
    assert meta["required_packages_version"]["medloss"] == version("medloss")
    assert meta["version"] in meta["changelog"]
    assert meta["eval_metrics"]["val_mean_dice"] >= 0.85
    assert f"{meta['eval_metrics']['val_mean_dice']:.3f}" in (bundle_dir(name) / "docs" / "README.md").read_text()
    outputs = meta["network_data_format"]["outputs"]["pred"]
    assert outputs["num_channels"] == len(outputs["channel_def"]) == config(name, "train.json")["num_classes"]
    broken = {k: v for k, v in meta.items() if k != "authors"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, json.loads(SCHEMA.read_text()))


def test_verify_metadata_cli_works_offline_with_the_local_schema(name):
    from monai.bundle import verify_metadata

    with pytest.warns(UserWarning, match="No hash value provided for .*meta_schema_20240725.json"):  # local file used
        verify_metadata(meta_file=str(bundle_dir(name) / "configs" / "metadata.json"), filepath=str(SCHEMA))


def test_config_ids_and_dotted_loss_target(name):
    train = config(name, "train.json")
    for key in ("epochs", "num_samples", "roi_size", "dataset_dir", "datalist", "device", "bundle_root",
                "output_dir", "ckpt_dir", "num_classes", "num_channels", "synthetic_size", "seed", "learning_rate",
                "batch_size", "samples_per_volume", "num_workers", "cache_rate", "val_interval", "resume", "amp"):
        assert key in train, key
    loss = train["loss"]
    assert loss["_target_"].startswith("medloss.losses.")  # MONAI resolves short names only inside monai.*
    assert loss["softmax"] is True and loss["to_onehot_y"] is True
    assert train["data"].startswith("$medloss.data.prepare_data(")  # the checked datalist loader (typed errors)
    infer = config(name, "inference.json")
    for key in DATA_IDS + ("synthetic_options",):
        assert infer.get(key) == train.get(key), key  # inference loads what training saved, on the same cases
    for infer_t, train_t in zip(infer["preprocessing"]["transforms"], train["preprocessing_common"], strict=True):
        assert infer_t == {**train_t, "keys": "image"}  # same reading and intensity scaling, image only


@pytest.mark.parametrize("value,expected", [("true", True), ("True", True), (False, False), ("false", False)])
def test_resume_flag_parses_command_line_strings(tmp_path, name, value, expected):
    # `--resume false` reaches the config as the string 'false' (fire only parses True/False): it must not resume
    wf = workflow(name, ["train.json"], "train", tmp_path, resume=value)
    assert wf.parser.get_parsed_content("resuming") is expected


def test_verify_net_in_out(name):
    from monai.bundle import verify_net_in_out

    verify_net_in_out(net_id="network_def", meta_file=str(bundle_dir(name) / "configs" / "metadata.json"),
                      config_file=str(bundle_dir(name) / "configs" / "inference.json"), device="cpu")


def test_resume_matches_uninterrupted_run(tmp_path, name):
    from ignite.engine import Events

    def stop_after_first_epoch(wf):
        trainer = wf.parser.get_parsed_content("train#trainer")
        trainer.add_event_handler(Events.EPOCH_COMPLETED(once=1), lambda engine: engine.terminate())

    run(workflow(name, ["train.json"], "train", tmp_path, epochs=2, ckpt_dir=str(tmp_path / "full")))
    run(workflow(name, ["train.json"], "train", tmp_path, epochs=2, ckpt_dir=str(tmp_path / "cut"),
                 output_dir=str(tmp_path / "cut_out")), before_run=stop_after_first_epoch)
    assert sorted(p.name for p in (tmp_path / "cut").glob("checkpoint_epoch=*.pt")) == ["checkpoint_epoch=1.pt"]
    run(workflow(name, ["train.json"], "train", tmp_path, epochs=2, ckpt_dir=str(tmp_path / "cut"),
                 output_dir=str(tmp_path / "cut_out"), resume=True))

    full = torch.load(tmp_path / "full" / "checkpoint_epoch=2.pt", weights_only=True)
    resumed = torch.load(tmp_path / "cut" / "checkpoint_epoch=2.pt", weights_only=True)
    assert {"model", "optimizer", "lr_scheduler", "trainer", "best_metric"} <= set(full)
    assert full["trainer"]["iteration"] == resumed["trainer"]["iteration"] == 2 * full["trainer"]["epoch_length"]
    for key, tensor in full["model"].items():
        assert torch.equal(tensor, resumed["model"][key]), key
    assert full["best_metric"] == resumed["best_metric"]
    best_full = torch.load(tmp_path / "full" / "model.pt", weights_only=True)
    best_resumed = torch.load(tmp_path / "cut" / "model.pt", weights_only=True)
    assert all(torch.equal(t, best_resumed[k]) for k, t in best_full.items())
    with (tmp_path / "cut_out" / "metrics.csv").open() as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2"]


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, name):
    from medloss.errors import InvalidOptionError

    wf = workflow(name, ["train.json"], "train", tmp_path, epochs=1, resume=True)
    wf.initialize()
    with pytest.raises(RuntimeError) as info:
        wf.run()
    assert medloss_error(info.value, InvalidOptionError, "checkpoint_epoch")


def test_resume_with_other_epochs_is_a_clear_error(tmp_path, name):
    """The restored trainer keeps its max_epochs and the restored scheduler its length: a different --epochs would
    be silently ignored, so it is refused, naming both numbers."""
    from medloss.errors import InvalidOptionError

    run(workflow(name, ["train.json"], "train", tmp_path, epochs=1, ckpt_dir=str(tmp_path / "ckpt")))
    wf = workflow(name, ["train.json"], "train", tmp_path, epochs=3, ckpt_dir=str(tmp_path / "ckpt"), resume=True)
    wf.initialize()
    with pytest.raises(RuntimeError) as info:
        wf.run()
    assert medloss_error(info.value, InvalidOptionError, "--epochs 1")  # the schedule of the first run


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
    array[0, 0, 0] = 7  # above every bundle's num_classes - 1
    nib.save(nib.Nifti1Image(array, np.eye(4)), str(label))


def _missing_entry(root, content):
    content["training"][0]["image"] = "imagesTr/not_there.nii.gz"


@pytest.mark.parametrize("mutate,kind,text", [
    (_shape_mismatch, "ShapeMismatchError", "lesion_001.nii.gz"),
    (_bad_value, "LabelValueError", "lesion_003.nii.gz"),
    (_missing_entry, "VolumeReadError", "not_there.nii.gz"),
    (None, "InvalidOptionError", "does not exist"),
])
def test_bad_input_fails_before_training(tmp_path, name, mutate, kind, text):
    import medloss.errors

    datalist = _small_datalist(tmp_path, mutate)
    dataset_dir = tmp_path / "real" if mutate else tmp_path / "no_such_dir"
    wf = workflow(name, ["train.json"], "train", tmp_path, epochs=1, datalist=str(datalist),
                  dataset_dir=str(dataset_dir))
    with pytest.raises(RuntimeError) as info:
        wf.initialize()
    assert medloss_error(info.value, getattr(medloss.errors, kind), text)
    assert not (tmp_path / "models").exists()


@pytest.mark.slow
def test_documented_commands_train_evaluate_infer_from_the_bundle_folder(tmp_path, name):
    bundle = copy_bundle(name, tmp_path)
    out = bundle_cli(bundle, "configs/train.json", "--epochs", "2", "--num_samples", "4", "--roi_size", "[32,32,32]")
    epochs = [line for line in out.splitlines() if " - medloss.data.handlers - INFO - epoch " in line]
    assert [line.split(" - INFO - ")[1].split()[1] for line in epochs] == ["1/2", "2/2"]  # one summary per epoch
    assert "val_mean_dice" in epochs[-1] and "train_loss" in epochs[-1]
    assert len(out.splitlines()) < 20  # no per-iteration or ignite lines (it was ~30 per epoch)
    assert (bundle / "models" / "model.pt").is_file() and (bundle / "models" / "checkpoint_epoch=2.pt").is_file()
    with (bundle / "eval" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(r["val_metric"] and r["train_loss"] for r in rows)
    assert (bundle / "eval" / "training_curves.png").stat().st_size > 1000

    bundle_cli(bundle, "['configs/train.json','configs/evaluate.json']", "--num_samples", "4")
    assert (bundle / "eval" / "val_mean_dice_raw.csv").is_file()
    shutil.rmtree(bundle / "eval" / "predictions")
    # inference in-process (the same code path as the CLI, and checks the "infer" workflow properties)
    run(workflow(name, ["inference.json"], "infer", tmp_path, bundle=bundle, bundle_root=str(bundle),
                 output_dir=str(bundle / "eval"), ckpt_dir=str(bundle / "models"),
                 dataset_dir=str(bundle / "eval" / "synthetic_data"), num_samples=4, synthetic_size=[64, 64, 64],
                 roi_size=[32, 32, 32], seed=config(name, "inference.json")["seed"]))
    data = json.loads((bundle / "eval" / "synthetic_data" / "datalist.json").read_text())
    assert len(list((bundle / "eval" / "predictions").glob("*_seg.nii.gz"))) == len(data["validation"]) == 1
    val = data["validation"][0]
    pred = nib.load(str(bundle / "eval" / "predictions" / Path(val["image"]).name.replace(".nii", "_seg.nii")))
    ref = nib.load(str(bundle / "eval" / "synthetic_data" / val["label"]))
    assert pred.shape == ref.shape == (64, 64, 64) and np.allclose(pred.affine, ref.affine)
    assert pred.get_data_dtype() == np.uint8
    assert np.asarray(pred.dataobj).max() < config(name, "train.json")["num_classes"]


@pytest.mark.slow
def test_multi_gpu_train_with_two_gloo_processes(tmp_path, name):
    if name != "tversky_lesion":  # the bundles share one multi_gpu_train.json (test_multi_gpu_config_is_shared)
        pytest.skip("same multi_gpu_train.json as tversky_lesion, which runs it")
    bundle = copy_bundle(name, tmp_path)
    torchrun(bundle, "['configs/train.json','configs/multi_gpu_train.json']", "--epochs", "2", "--num_samples", "8",
             "--synthetic_size", "[32,32,32]", "--roi_size", "[16,16,16]")
    state = torch.load(bundle / "models" / "model.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in state)  # a plain state_dict, loadable without DDP
    with (bundle / "eval" / "metrics.csv").open() as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2"]



def test_multi_gpu_config_is_shared(name):
    """One two-process run covers every bundle's multi-GPU override because they are the same file."""
    shared = bundle_dir("tversky_lesion") / "configs" / "multi_gpu_train.json"
    assert (bundle_dir(name) / "configs" / "multi_gpu_train.json").read_bytes() == shared.read_bytes()
