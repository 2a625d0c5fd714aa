"""`medloss score` lesion presets, regions and matching options, on NIfTI files of the fixed BraTS cases."""
from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from medloss.cli.score import _PRESETS, score
from medloss.io import write_volume

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scoring"))
from _lesion_cases import load  # noqa: E402

RECORDED = json.loads((Path(__file__).resolve().parents[1] / "scoring" / "data" /
                       "official_lesion_numbers.json").read_text())


def _files(tmp_path, case):
    pred, ref, spacing = load(case)
    p = write_volume(tmp_path / f"{case}_pred.nii.gz", pred, spacing=spacing)
    r = write_volume(tmp_path / f"{case}_ref.nii.gz", ref, spacing=spacing)
    return str(p), str(r)


def _run(args):
    return CliRunner().invoke(score, [str(a) for a in args])


def test_preset_names_equal_the_library():
    from medloss.scoring import LESION_PRESETS

    assert set(_PRESETS) == set(LESION_PRESETS)


@pytest.mark.parametrize("case", ["glioma", "merged", "empty_pred"])
def test_brats23_preset_alone_equals_official_code(tmp_path, case):
    """`medloss score PRED REF --lesion-preset brats23` prints WT, TC, ET rows equal to the official code."""
    p, r = _files(tmp_path, case)
    res = _run([p, r, "--lesion-preset", "brats23", "--json", tmp_path / "o.json"])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "o.json").read_text())
    rows = {row["label"]: row for row in doc["rows"]}
    assert list(rows) == ["WT", "TC", "ET"]
    assert doc["recipe"]["surface"] == "surfel" and doc["recipe"]["worst_distance"] == 374.0
    assert doc["recipe"]["regions"] == {"WT": [1, 2, 3], "TC": [1, 3], "ET": [3]}
    keys = {"Num_TP": "lesions_detected", "Num_FP": "lesions_fp", "Num_FN": "lesions_missed", "Legacy_Dice": "dice",
            "Legacy_HD95": "hd95", "LesionWise_Score_Dice": "lesion_dice", "LesionWise_Score_HD95": "lesion_hd95"}
    for region, want in RECORDED["brats23"][case]["BraTS-GLI"].items():
        for theirs, ours in keys.items():
            assert math.isclose(rows[region][ours], want[theirs], rel_tol=1e-6, abs_tol=1e-9), (region, ours)
    assert all("instances" in row for row in doc["rows"])
    for region in ("WT", "TC", "ET"):
        assert region in res.stdout


def test_region_matching_threshold_and_instances_csv(tmp_path):
    p, r = _files(tmp_path, "near_miss")
    res = _run([p, r, "--region", "ET=3", "--region", "core=1,3", "--lesion-matching", "iou", "--lesion-threshold",
                "0.4", "--csv", tmp_path / "o.csv", "--instances-csv", tmp_path / "i.csv",
                "--json", tmp_path / "o.json"])
    assert res.exit_code == 0, res.output
    with open(tmp_path / "o.csv", newline="") as fh:
        rows = [row for row in csv.DictReader(fh) if not row["case"].startswith("[")]
    assert [row["label"] for row in rows] == ["ET", "core"]
    et = rows[0]
    assert (et["lesions_detected"], et["lesions_fp"], et["lesions_missed"]) == ("2", "0", "0")  # IoU 0.54, 0.43
    assert {"pq", "sq", "rq", "sq_dice", "pq_dice"} <= set(et)
    assert float(et["sq"]) == pytest.approx((700 / 1300 + 600 / 1400) / 2)
    doc = json.loads((tmp_path / "o.json").read_text())
    assert doc["recipe"]["lesions"]["matching"] == "iou" and doc["recipe"]["lesions"]["threshold"] == 0.4
    with open(tmp_path / "i.csv", newline="") as fh:
        inst = list(csv.DictReader(fh))
    assert {row["label"] for row in inst} == {"ET", "core"}
    et_ref = [row for row in inst if row["label"] == "ET" and row["side"] == "ref"]
    assert len(et_ref) == 2 and all(row["partners"] for row in et_ref)
    res = _run([p, r, "--region", "ET=3", "--lesion-matching", "iou", "--json", tmp_path / "o2.json"])
    et05 = json.loads((tmp_path / "o2.json").read_text())["rows"][0]
    assert (et05["lesions_detected"], et05["lesions_fp"], et05["lesions_missed"]) == (1, 1, 1)  # default 0.5


@pytest.mark.parametrize("args,msg", [
    (["--region", "WT"], "NAME=L1,L2"),
    (["--region", "WT=1,x"], "NAME=L1,L2"),
    (["--region", "A=1", "--region", "A=2"], "distinct"),
    (["--lesion-threshold", "0.3"], "iou"),
])
def test_bad_region_and_matching_options_one_line(tmp_path, args, msg):
    p, r = _files(tmp_path, "split")
    res = _run([p, r, *args, "--csv", tmp_path / "o.csv"])
    assert res.exit_code != 0
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and msg in err[0], res.stderr
    assert not (tmp_path / "o.csv").exists()


def test_preset_defaults_are_overridable(tmp_path):
    p, r = _files(tmp_path, "glioma")
    res = _run([p, r, "--lesion-preset", "brats23", "--surface", "voxel", "--worst-distance", "diagonal",
                "--labels", "3", "--json", tmp_path / "o.json"])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "o.json").read_text())
    assert [row["label"] for row in doc["rows"]] == [3]
    assert doc["recipe"]["surface"] == "voxel" and doc["recipe"]["worst_distance"] == "diagonal"
