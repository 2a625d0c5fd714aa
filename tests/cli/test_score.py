"""`medloss score` through click's CliRunner, on tiny volumes written in tmp_path."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from medloss.cli.score import score
from medloss.io import write_volume

SPACING = (0.8, 0.9, 2.0)


def _ref(shift=0):
    a = np.zeros((14, 12, 8), np.uint8)
    a[3 + shift:8 + shift, 3:8, 2:5] = 1
    a[10:12, 2:4, 5:7] = 2
    return a


def _case(folder, name, arr, suffix=".nii.gz", spacing=SPACING):
    folder.mkdir(exist_ok=True)
    return str(write_volume(folder / f"{name}{suffix}", arr, spacing=spacing))


def _run(args):
    return CliRunner().invoke(score, [str(a) for a in args])


def _no_outputs(tmp_path):
    return not any(p.suffix in (".csv", ".json", ".png") or p.name.startswith(".tmp") for p in tmp_path.iterdir())


def test_single_pair_outputs(tmp_path):
    p = _case(tmp_path / "p", "c1", _ref(1))
    r = _case(tmp_path / "r", "c1", _ref(), ".nrrd")  # mixed formats, same geometry
    res = _run([p, r, "--csv", tmp_path / "o.csv", "--json", tmp_path / "o.json", "--lesions", "--surface", "surfel"])
    assert res.exit_code == 0, res.output + res.stderr
    assert "surfel" in res.stdout  # the output says which convention
    with open(tmp_path / "o.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    fixed = ["case", "label", "dice", "iou", "precision", "recall", "vol_ref_ml", "vol_pred_ml", "hd", "hd95",
             "assd", "nsd", "lesions_ref", "lesions_detected", "lesions_fp", "lesion_f1", "fp_volume_ml",
             "fn_volume_ml"]
    assert all(c in rows[0] for c in fixed)
    per_case = [r for r in rows if r["case"] == "c1"]
    assert [r["label"] for r in per_case] == ["1", "2"] and float(per_case[1]["dice"]) == 1.0
    doc = json.loads((tmp_path / "o.json").read_text())
    assert set(doc) >= {"rows", "summary", "recipe"} and doc["errors"] == []
    assert doc["recipe"]["surface"] == "surfel" and doc["recipe"]["spacing_mm"]["c1"] == "0.8x0.9x2"
    from medloss.scoring import score_arrays  # the CLI equals the API on the same arrays

    want = score_arrays(_ref(1), _ref(), SPACING, surface="surfel", lesions=True, case="c1")
    assert doc["rows"][0]["hd95"] == pytest.approx(want[0]["hd95"], rel=1e-12)


def test_folders_with_one_bad_case_and_a_missing_pair(tmp_path):
    P, R = tmp_path / "pred", tmp_path / "ref"
    for i in range(3):
        _case(P, f"case{i}", _ref(i % 2))
        _case(R, f"case{i}", _ref())
    (P / "case1.nii.gz").write_bytes(b"garbage")  # unreadable
    _case(R, "case9", _ref())  # no prediction
    res = _run([P, R, "--json", tmp_path / "o.json", "--csv", tmp_path / "o.csv", "--workers", "2", "--plot",
                tmp_path / "o.png"])
    assert res.exit_code == 1
    err_lines = [ln for ln in res.stderr.splitlines() if "error:" in ln]
    assert any("case1.nii.gz" in ln and "cannot read" in ln for ln in err_lines)
    assert any("case9" in ln and "no prediction" in ln for ln in err_lines)
    doc = json.loads((tmp_path / "o.json").read_text())
    assert sorted({r["case"] for r in doc["rows"]}) == ["case0", "case2"]
    assert sorted(e["case"] for e in doc["errors"]) == ["case1", "case9"]
    assert doc["summary"]["n_cases"] == 2 and doc["summary"]["n_errors"] == 2
    assert (tmp_path / "o.png").exists() and (tmp_path / "o.csv").exists()


def test_folder_labels_filled_for_absent_label(tmp_path):
    P, R = tmp_path / "pred", tmp_path / "ref"
    _case(P, "a", _ref())
    _case(R, "a", _ref())
    only1 = (_ref() == 1).astype(np.uint8)
    _case(P, "b", only1)
    _case(R, "b", only1)
    res = _run([P, R, "--json", tmp_path / "o.json", "-q"])
    assert res.exit_code == 0, res.stderr
    rows = json.loads((tmp_path / "o.json").read_text())["rows"]
    b2 = [r for r in rows if r["case"] == "b" and r["label"] == 2]
    assert len(b2) == 1 and b2[0]["empty"] == "both" and b2[0]["dice"] == 1.0


def _bad_inputs(tmp_path):
    good = _case(tmp_path / "in", "good", _ref())
    yield "missing file", [tmp_path / "in" / "nope.nii.gz", good], "nope.nii.gz"
    (tmp_path / "in" / "junk.nii.gz").write_bytes(b"junk")
    yield "unreadable", [tmp_path / "in" / "junk.nii.gz", good], "junk.nii.gz"
    small = _case(tmp_path / "in", "small", _ref()[:-1])
    yield "shape mismatch", [small, good], "shape"
    sp = _case(tmp_path / "in", "sp", _ref(), spacing=(0.8, 0.9, 2.5))
    yield "spacing mismatch", [sp, good], "spacing"
    prob = _case(tmp_path / "in", "prob", _ref().astype(np.float32) * 0.4)
    yield "non-integer", [prob, good], "non-integer"
    (tmp_path / "empty1").mkdir()
    (tmp_path / "empty2").mkdir()
    (tmp_path / "empty2" / "x.txt").write_text("")
    yield "empty folder", [tmp_path / "empty2", tmp_path / "empty1"], "no volume files"


def test_bad_input_one_line_nonzero_no_files(tmp_path):
    for what, args, needle in _bad_inputs(tmp_path):
        out = tmp_path / "out"
        out.mkdir(exist_ok=True)
        res = _run([*args, "--csv", out / "o.csv", "--json", out / "o.json"])
        assert res.exit_code != 0, what
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and needle in lines[0], (what, res.stderr)
        assert _no_outputs(out), what


def test_bad_options(tmp_path):
    p = _case(tmp_path / "p", "c", _ref())
    assert _run([p, p, "--surface", "mesh"]).exit_code == 2
    assert _run([p, p, "--labels", "a,b"]).exit_code == 2
    res = _run([p, p, "--worst-distance", "far"])
    assert res.exit_code == 1 and "worst_distance" in res.stderr
    res = _run([p, tmp_path / "p"])
    assert res.exit_code == 1 and "two files or two folders" in res.stderr
    assert _run([p, p, "--csv", tmp_path / "nodir" / "o.csv"]).exit_code == 2


def test_lesion_preset_and_labels_and_empty_policy(tmp_path):
    ref = _ref()
    pred = ref.copy()
    pred[pred == 2] = 0  # label 2 missed entirely
    p = _case(tmp_path / "p", "c", pred)
    r = _case(tmp_path / "r", "c", ref)
    res = _run([p, r, "--lesion-preset", "brats23", "--labels", "2", "--json", tmp_path / "o.json", "--empty", "nan"])
    assert res.exit_code == 0, res.stderr
    doc = json.loads((tmp_path / "o.json").read_text())
    row = doc["rows"][0]
    assert row["label"] == 2 and row["hd95"] is None and row["empty"] == "pred"
    assert doc["recipe"]["lesions"]["preset"] == "brats23" and "lesion_hd95" in row
    res = _run([p, r, "--labels", "2", "--json", tmp_path / "w.json", "--worst-distance", "374"])
    assert json.loads((tmp_path / "w.json").read_text())["rows"][0]["hd95"] == 374.0
    res = _run([p, r, "--lesion-preset", "brats23", "--lesion-dilation", "1", "--lesion-min-volume", "2",
                "--connectivity", "6", "--json", tmp_path / "m.json", "-q"])
    les = json.loads((tmp_path / "m.json").read_text())["recipe"]["lesions"]
    assert (les["reference_dilation"], les["exclude_volume_mm3"], les["connectivity"]) == (1, 2.0, 6)


def test_help_does_not_import_torch():
    code = ("import sys\nfrom medloss.cli import main\ntry:\n    main(['score', '--help'])\nexcept SystemExit:\n"
            "    pass\nprint('TORCH' if 'torch' in sys.modules else 'NOTORCH')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "--surface" in out.stdout
    assert out.stdout.strip().endswith("NOTORCH"), out.stdout[-200:]


def test_score_module_itself_does_not_import_torch():
    code = ("import sys, types, importlib.util; spec = importlib.util.find_spec('medloss'); "
            "pkg = types.ModuleType('medloss'); pkg.__path__ = list(spec.submodule_search_locations); "
            "sys.modules['medloss'] = pkg; from click.testing import CliRunner; from medloss.cli.score import score; "
            "r = CliRunner().invoke(score, ['--help']); assert r.exit_code == 0; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
