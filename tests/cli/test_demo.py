"""`medloss demo`: the whole pipeline with tiny settings, its printed output locations, and option errors."""
from __future__ import annotations

import csv
import json

import nibabel as nib
import pytest
from click.testing import CliRunner

from medloss.cli import main


def test_demo_runs_end_to_end_and_prints_where_outputs_are(tmp_path):
    out = tmp_path / "demo_out"
    result = CliRunner().invoke(main, ["demo", "--output-dir", str(out), "--epochs", "2", "--num-samples", "3",
                                       "--size", "24", "--roi-size", "16", "--device", "cpu"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    for path in ("models/model.pt", "metrics.csv", "training_curves.png", "scores.csv", "scores.json"):
        assert (out / path).is_file(), path
        assert str(out / path) in result.output.replace("\n", "")
    preds = sorted((out / "predictions").glob("*_seg.nii.gz"))
    assert len(preds) == 1  # one validation case of three
    label = out / "data" / "labelsTr" / preds[0].name.replace("_seg", "")
    assert nib.load(str(preds[0])).shape == nib.load(str(label)).shape
    with (out / "metrics.csv").open() as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2"]
    report = json.loads((out / "scores.json").read_text())
    assert report["rows"][0]["case"] == label.name.replace(".nii.gz", "")
    assert "epoch   2/2" in result.output and "Done in" in result.output


@pytest.mark.parametrize("args,message", [
    (["--size", "16", "--roi-size", "32"], "must not exceed"),
    (["--epochs", "0"], "--epochs"),
])
def test_demo_option_errors_are_clear(tmp_path, args, message):
    result = CliRunner().invoke(main, ["demo", "--output-dir", str(tmp_path / "o"), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "o" / "models").exists()


def test_demo_is_listed_by_the_cli():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0 and "demo" in result.output
