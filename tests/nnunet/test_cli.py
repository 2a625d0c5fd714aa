"""``medloss nnunet trainers|path|train|predict``."""
from __future__ import annotations

import importlib.util

import pytest
from click.testing import CliRunner

from medloss.cli import main
from medloss.nnunet import trainer_folder


def _invoke(*args: str):
    return CliRunner().invoke(main, ["nnunet", *args])


def test_path_prints_the_ext_trainer_folder():
    result = _invoke("path")
    assert result.exit_code == 0
    assert result.output == trainer_folder() + "\n"


@pytest.mark.parametrize("command", ["trainers", "train", "predict"])
def test_missing_nnunet_is_one_line_with_the_install_command(command, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nnunetv2" else real(name, *a))
    result = _invoke(command, *(["1", "3d_fullres", "0"] if command == "train" else []))
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert f"medloss nnunet {command}: nnU-Net v2 is not installed" in result.output
    assert "pip install 'medloss[nnunet]'" in result.output


needs_nnunet = pytest.mark.skipif(importlib.util.find_spec("nnunetv2") is None, reason="nnunetv2 not installed")


@needs_nnunet
def test_trainers_lists_each_named_trainer_with_its_loss():
    from medloss.nnunet.trainers import TRAINERS

    result = _invoke("trainers")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert [line.split("\t")[0] for line in lines] == list(TRAINERS)
    assert "nnUNetTrainerMedlossTverskyCE\tTverskyLoss + 1 x CE (alpha=0.3, beta=0.7); regions: TverskyLoss" in lines
    assert lines[1].endswith("regions: not supported  [values as nnU-Net's]")
    assert ("nnUNetTrainerMedlossBlob\tBlobLoss (defaults); components map computed in the data pipeline; "
            "regions: not supported") in lines
    assert ("nnUNetTrainerMedlossDiceBoundary\tBoundaryLoss (defaults); signed_distance map computed in the data "
            "pipeline; at epoch e: x (0.01 + 0.01 e) + DiceCELoss x max(0.1, 1 - 0.01 e); regions: not supported  "
            "[values as nnU-Net's]") in lines


@needs_nnunet
@pytest.mark.parametrize("command, usage", [("train", "dataset_name_or_id"), ("predict", "-i I")])
def test_help_is_nnunets_own(command, usage):
    result = _invoke(command, "-h")
    assert result.exit_code == 0
    assert f"usage: nnUNetv2_{command}" in result.output and usage in result.output


@needs_nnunet
def test_trainer_flag_without_a_value_is_one_line():
    result = _invoke("train", "1", "3d_fullres", "0", "-tr")
    assert result.exit_code == 2
    assert result.output == "medloss nnunet train: -tr needs a trainer name, e.g. -tr nnUNetTrainerMedlossDiceTopK10.\n"


@needs_nnunet
def test_lookup_is_redirected_only_during_the_call():
    import nnunetv2.inference.predict_from_raw_data as predict_module
    import nnunetv2.run.run_training as train_module

    from medloss.nnunet.launch import _trainer_lookup, trainer_argument
    from medloss.nnunet.trainers import nnUNetTrainerMedlossDiceTopK10 as trainer

    original = train_module.recursive_find_trainer_class_by_name
    with _trainer_lookup(trainer):
        assert train_module.recursive_find_trainer_class_by_name(trainer.__name__) is trainer
        assert predict_module.recursive_find_trainer_class_by_name(trainer.__name__) is trainer
    assert train_module.recursive_find_trainer_class_by_name is original
    assert trainer_argument(["1", "3d_fullres", "0", "-tr", "X", "--npz"]) == "X"
    assert trainer_argument(["1", "3d_fullres", "0", "-tr=Y"]) == "Y"
    assert trainer_argument(["1", "3d_fullres", "0"]) == "nnUNetTrainer"
