"""`medloss bundle list` / `medloss bundle init`: the shipped bundles, and copying one out to run it."""
from __future__ import annotations

import json

from click.testing import CliRunner

from medloss.cli import main


def test_list_names_every_bundle_with_its_loss():
    result = CliRunner().invoke(main, ["bundle", "list"])
    assert result.exit_code == 0, result.output
    for name, loss in (("tversky_lesion", "FocalTverskyLoss"), ("explog_lesion", "ExpLogLoss"),
                       ("anatomynet_lesion", "AnatomyNetLoss")):
        assert any(line.startswith(name) and f"medloss.losses.{loss}" in line for line in result.output.splitlines())


def test_init_copies_a_runnable_bundle_without_run_outputs(tmp_path, monkeypatch):
    from medloss.data import bundles_root

    source = tmp_path / "shipped"
    import shutil

    shutil.copytree(bundles_root(), source)
    (source / "tversky_lesion" / "eval").mkdir()  # what a run inside the source folder leaves behind
    (source / "tversky_lesion" / "eval" / "metrics.csv").write_text("x")
    (source / "tversky_lesion" / "models" / "model.pt").write_bytes(b"x")
    monkeypatch.setenv("MEDLOSS_BUNDLES", str(source))
    result = CliRunner().invoke(main, ["bundle", "init", "tversky_lesion", str(tmp_path / "mine")])
    assert result.exit_code == 0, result.output
    mine = tmp_path / "mine"
    assert json.loads((mine / "configs" / "train.json").read_text())["loss"]["_target_"].startswith("medloss.")
    assert (mine / "LICENSE").is_file() and (mine / "docs" / "README.md").is_file() and (mine / "models").is_dir()
    assert not (mine / "eval").exists() and not (mine / "models" / "model.pt").exists()
    assert "python -m monai.bundle run --config_file configs/train.json" in result.output


def test_init_refuses_an_unknown_bundle_and_a_used_folder(tmp_path):
    result = CliRunner().invoke(main, ["bundle", "init", "tversky", str(tmp_path / "a")])
    assert result.exit_code == 2 and "Did you mean 'tversky_lesion'?" in result.stderr
    assert not (tmp_path / "a").exists()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("mine")
    result = CliRunner().invoke(main, ["bundle", "init", "tversky_lesion", str(tmp_path / "b")])
    assert result.exit_code == 2 and "not an empty folder" in result.stderr
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["keep.txt"]
    assert len(result.stderr.strip().splitlines()) == 1
