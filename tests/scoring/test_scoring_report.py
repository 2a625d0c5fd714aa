"""Reports: NaN-aware summary, CSV/JSON layout, atomic writes, the plot."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from medloss.scoring import columns, score_arrays
from medloss.scoring.report import csv_text, recipe, summarize, write_csv, write_json, write_plot


def _rows():
    ref = np.zeros((8, 8, 8), np.uint8)
    ref[2:5, 2:5, 2:5] = 1
    ref[6:8, 6:8, 6:8] = 2
    pred = np.roll(ref, 1, axis=0)
    rows = score_arrays(pred, ref, (1, 1, 2), case="a")
    rows += score_arrays(np.zeros_like(ref), ref, (1, 1, 2), case="b", empty="nan")
    return rows


def test_summary_ignores_nan_and_counts_it():
    rows = _rows()
    s = summarize(rows)
    assert s["n_cases"] == 2 and s["n_rows"] == 4
    hd = s["per_label"]["1"]["metrics"]["hd95"]
    assert hd["n"] == 1 and hd["n_nan"] == 1 and hd["mean"] == rows[0]["hd95"]
    dice = s["per_label"]["2"]["metrics"]["dice"]
    vals = [r["dice"] for r in rows if r["label"] == 2]
    assert dice["mean"] == pytest.approx(np.mean(vals)) and dice["std"] == pytest.approx(np.std(vals))
    assert s["per_label"]["1"]["empty"] == {"none": 1, "pred": 1}


def test_csv_and_json_layout(tmp_path):
    rows = _rows()
    cols = columns()
    s = summarize(rows)
    write_csv(tmp_path / "o.csv", rows, cols, s)
    with open(tmp_path / "o.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == cols
    per_case = [r for r in table if not r["case"].startswith("[")]
    assert len(per_case) == 4 and per_case[2]["hd95"] == ""  # NaN -> empty cell
    assert {r["case"] for r in table if r["case"].startswith("[")} == {"[mean]", "[std]", "[median]", "[min]",
                                                                        "[max]"}
    rec = recipe(surface="voxel", tolerance=1.0, percentile=95, empty="nan", worst_distance="diagonal", labels=None,
                 ignore_index=None)
    write_json(tmp_path / "o.json", rows, s, rec, [{"case": "x", "error": "boom"}])
    doc = json.loads((tmp_path / "o.json").read_text(encoding="utf-8"))
    assert set(doc) == {"rows", "summary", "recipe", "errors"}
    assert doc["rows"][2]["hd95"] is None and doc["recipe"]["surface"] == "voxel"
    assert "numpy" in doc["recipe"]["versions"] and doc["errors"][0]["case"] == "x"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_failed_write_leaves_old_file(tmp_path, monkeypatch):
    target = tmp_path / "o.csv"
    target.write_text("old")
    import medloss.io.readers as readers

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(readers.os, "replace", boom)
    from medloss.errors import OutputPathError

    with pytest.raises(OutputPathError, match="cannot write .*o.csv: disk full"):  # one typed line naming the file
        write_csv(target, _rows(), columns())
    assert target.read_text(encoding="utf-8") == "old"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_csv_without_summary():
    text = csv_text(_rows(), columns(), None)
    assert "[mean]" not in text and text.splitlines()[0].startswith("case,label,dice,iou")


def test_plot_png(tmp_path):
    write_plot(tmp_path / "p.png", _rows())
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_nan_never_written_as_json_nan(tmp_path):
    rows = [{"case": "a", "label": 1, "dice": math.nan}]
    write_json(tmp_path / "o.json", rows, summarize(rows), {}, [])
    assert "NaN" not in (tmp_path / "o.json").read_text(encoding="utf-8")
