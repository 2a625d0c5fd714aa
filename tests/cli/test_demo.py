"""`medloss demo`: the whole pipeline with tiny settings, its printed output locations, and option errors."""
from __future__ import annotations

import csv
import json

import nibabel as nib
import pytest
from click.testing import CliRunner

from medloss.cli import main

TINY = ["--num-samples", "3", "--size", "24", "--roi-size", "16", "--device", "cpu"]


def test_demo_runs_end_to_end_and_prints_where_outputs_are(tmp_path):
    out = tmp_path / "demo_out"
    result = CliRunner().invoke(main, ["demo", "--output-dir", str(out), "--epochs", "2", *TINY])
    assert result.exit_code == 0, result.output + repr(result.exception)
    printed = result.output.replace("\n", "")
    for path in ("models/model.pt", "models/checkpoint_epoch=2.pt", "metrics.csv", "training_curves.png",
                 "scores.csv", "scores.json"):
        assert (out / path).is_file(), path
        assert str(out / path) in printed, path
    for folder in ("data", "predictions", "reference"):
        assert (out / folder).is_dir() and str(out / folder) in printed, folder
    preds = sorted((out / "predictions").glob("*_seg.nii.gz"))
    assert len(preds) == 1  # one validation case of three
    label = out / "data" / "labelsTr" / preds[0].name.replace("_seg", "")
    assert nib.load(str(preds[0])).shape == nib.load(str(label)).shape
    with (out / "metrics.csv").open() as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2"]
    report = json.loads((out / "scores.json").read_text())
    assert report["rows"][0]["case"] == label.name.replace(".nii.gz", "")
    assert "epoch   2/2" in result.output and "Done in" in result.output
    assert "for 2 epochs on cpu" in result.output and "on 1 validation case with" in result.output  # grammar
    # the silence before the first epoch line is explained
    lines = result.output.splitlines()
    first_epoch = next(i for i, line in enumerate(lines) if "epoch   1/2" in line)
    assert any("building the network and caching 2 training cases" in line for line in lines[:first_epoch])
    assert any("ready after" in line for line in lines[:first_epoch])

    # a second run in the same folder refuses to replace the first one's outputs, before doing anything
    before = (out / "models" / "model.pt").stat().st_mtime_ns
    again = CliRunner().invoke(main, ["demo", "--output-dir", str(out), "--epochs", "1", *TINY])
    assert again.exit_code == 2 and "--overwrite" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    assert (out / "models" / "model.pt").stat().st_mtime_ns == before
    assert (out / "models" / "checkpoint_epoch=2.pt").is_file()


@pytest.mark.slow
def test_demo_overwrite_replaces_an_earlier_run(tmp_path):
    out = tmp_path / "o"
    for epochs in ("2", "1"):
        result = CliRunner().invoke(main, ["demo", "--output-dir", str(out), "--epochs", epochs, "--overwrite", *TINY])
        assert result.exit_code == 0, result.output
    assert "for 1 epoch on cpu" in result.output  # not "1 epochs"
    assert sorted(p.name for p in (out / "models").iterdir()) == ["checkpoint_epoch=1.pt", "model.pt"]
    with (out / "metrics.csv").open() as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1"]


@pytest.mark.parametrize("args,message", [
    (["--size", "16", "--roi-size", "32"], "must not exceed"),
    (["--epochs", "0"], "--epochs"),
    (["--bundle", "tversky"], "Did you mean 'tversky_lesion'?"),
])
def test_demo_option_errors_are_clear(tmp_path, args, message):
    result = CliRunner().invoke(main, ["demo", "--output-dir", str(tmp_path / "o"), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "o" / "models").exists()


def test_demo_on_a_missing_cuda_device_is_one_line(tmp_path):
    import torch

    device = "cuda" if not torch.cuda.is_available() else f"cuda:{torch.cuda.device_count()}"
    result = CliRunner().invoke(main, ["demo", "--output-dir", str(tmp_path / "o"), "--device", device])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("medloss demo: error: `--device cuda") and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_demo_is_listed_by_the_cli():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0 and "demo" in result.output


def test_the_tour_scores_through_the_api_without_importing_the_cli():
    import subprocess
    import sys

    code = ("import sys, medloss.tour; from medloss.tour import _score; "
            "print(sorted(m for m in sys.modules if m.startswith('medloss.cli')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_tour_scores_the_predictions_with_score_folders(tmp_path):
    import numpy as np

    from medloss.tour import _score

    for side, shift in (("p", 1), ("r", 0)):
        (tmp_path / side).mkdir()
        mask = np.zeros((10, 10, 10), np.uint8)
        mask[2 + shift:7 + shift, 2:7, 2:7] = 1
        name = "case_seg.nii.gz" if side == "p" else "case.nii.gz"
        nib.save(nib.Nifti1Image(mask, np.eye(4)), str(tmp_path / side / name))
    mean = _score(tmp_path / "p", tmp_path / "r", tmp_path / "s.csv", tmp_path / "s.json")
    assert mean == pytest.approx(2 * 100 / 250)  # 4 of 5 slices overlap: Dice = 2·100 / (125 + 125)
    assert json.loads((tmp_path / "s.json").read_text())["rows"][0]["case"] == "case"
    assert (tmp_path / "s.csv").read_text().startswith("case,label,dice")
