"""The cohort-scoring API: the resolved configuration, score_pairs / score_folders (errors, absent labels, summary,
progress), the same answer from 1 and 2 local workers, the part file and --resume's reading of it."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from _cohort_cases import same, write_cohort

from medloss.errors import InvalidOptionError
from medloss.scoring import (
    LesionOverrides,
    ScoringConfig,
    score_arrays,
    score_folders,
    score_pairs,
    scoring_config,
)
from medloss.scoring.report import summarize
from medloss.scoring.summary import SummaryAccumulator


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return write_cohort(tmp_path_factory.mktemp("cohort"), 12)


def test_config_is_resolved_once_from_the_preset_plus_overrides_and_pickles():
    cfg = scoring_config("brats23", lesion=LesionOverrides(dilation=1), surface="voxel")
    assert cfg.regions == (("WT", (1, 2, 3)), ("TC", (1, 3)), ("ET", (3,)))
    assert (cfg.surface, cfg.worst_distance, cfg.empty, cfg.uncovered) == ("voxel", 374.0, "worst", "error")
    assert cfg.lesions.dilation == 1 and cfg.lesions.exclude_volume_mm3 == 50.0
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    with pytest.raises(AttributeError):
        cfg.surface = "surfel"  # type: ignore[misc]
    plain = scoring_config()
    assert plain.lesions is None and plain.regions is None and plain.fill_absent_labels
    assert scoring_config(labels="1,2").labels == (1, 2) and not scoring_config(labels=[1]).fill_absent_labels
    assert plain.fingerprint() != scoring_config(tolerance=2.0).fingerprint()


@pytest.mark.parametrize(("kwargs", "text"), [
    ({"metrics": "dice"}, "`metrics` must be one of"),
    ({"tolerance": -1}, "`tolerance` must be a finite number"),
    ({"labels": [1, 1]}, "`labels` must be distinct"),
    ({"labels": [1], "ignore_index": 1}, "label 1 is the `ignore_index`"),
    ({"worst_distance": "far"}, "`worst_distance` must be 'diagonal' or a number"),
])
def test_bad_options_are_typed_errors_naming_the_argument(kwargs, text):
    with pytest.raises(InvalidOptionError, match=text.replace("(", r"\(")):
        scoring_config(**kwargs)


def test_score_pairs_refuses_a_dict_config_and_repeated_cases(cohort):
    pred, ref = cohort
    with pytest.raises(InvalidOptionError, match="ScoringConfig"):
        score_pairs([], {"labels": None})  # type: ignore[arg-type]
    pair = ("c000", str(pred / "c000.nii.gz"), str(ref / "c000.nii.gz"))
    with pytest.raises(InvalidOptionError, match="its own case id"):
        score_pairs([pair, pair], scoring_config())


def test_rows_equal_score_arrays_and_absent_labels_get_both_empty_rows(cohort):
    import nibabel as nib

    pred, ref = cohort
    result = score_folders(str(pred), str(ref), scoring_config())
    assert not result.errors and result.summary["n_cases"] == 12
    rows = result.rows
    assert [r["case"] for r in rows] == sorted(r["case"] for r in rows)
    assert {r["label"] for r in rows if r["case"] == "c000"} == {1, 2, 3}  # label 2 is in neither volume of c000
    filled = next(r for r in rows if r["case"] == "c000" and r["label"] == 2)
    assert (filled["empty"], filled["dice"], filled["hd95"]) == ("both", 1.0, 0.0)
    for case in ("c001", "c003"):
        r_img, p_img = nib.load(ref / f"{case}.nii.gz"), nib.load(pred / f"{case}.nii.gz")
        want = score_arrays(np.asarray(p_img.dataobj), np.asarray(r_img.dataobj), r_img.header.get_zooms(),
                            case=case)
        got = [r for r in rows if r["case"] == case]
        assert same(got, json.loads(json.dumps(want)))
    assert same(result.summary["per_label"], summarize(rows)["per_label"])


def test_one_failing_case_is_one_error_row_and_the_run_goes_on(cohort, tmp_path):
    pred, ref = cohort
    pairs = [(f"c00{i}", str(pred / f"c00{i}.nii.gz"), str(ref / f"c00{i}.nii.gz")) for i in range(3)]
    pairs[1] = ("c001", str(tmp_path / "missing.nii.gz"), pairs[1][2])
    seen = []
    result = score_pairs(pairs, scoring_config(), on_error=seen.append)
    assert [e["case"] for e in result.errors] == ["c001"] and seen == result.errors
    assert "missing.nii.gz" in result.errors[0]["error"]
    assert sorted({r["case"] for r in result.rows}) == ["c000", "c002"]
    assert result.summary["n_errors"] == 1 and result.summary["n_cases"] == 2


def test_one_and_two_local_workers_give_identical_rows_summary_and_progress(cohort):
    pred, ref = cohort
    runs = {}
    for workers in (1, 2):
        progress = []
        res = score_folders(str(pred), str(ref), scoring_config("brats23", allow_uncovered_labels=True),
                            executor=workers, progress=progress.append)
        runs[workers] = res
        assert [p.done for p in progress] == list(range(13)) and progress[-1].total == 12
        assert progress[-1].rate > 0 and progress[-1].eta_s == 0.0 and progress[1].eta_s is not None
    assert same(runs[1].rows, runs[2].rows)
    assert same(runs[1].summary, runs[2].summary)


def test_summary_accumulators_merge_to_the_whole_run(cohort):
    pred, ref = cohort
    rows = score_folders(str(pred), str(ref), scoring_config()).rows
    parts = [SummaryAccumulator(), SummaryAccumulator()]
    for i, r in enumerate(rows):
        parts[i * 2 // len(rows)].add(r)
    merged = parts[0].merge(parts[1])
    assert same(merged.summary(), summarize(rows))
    dice1 = [r["dice"] for r in rows if r["label"] == 1]
    stats = merged.summary()["per_label"]["1"]["metrics"]["dice"]
    assert stats["mean"] == pytest.approx(np.mean(dice1)) and stats["median"] == pytest.approx(np.median(dice1))


def test_part_file_resume_keeps_finished_cases_and_refuses_other_options(cohort, tmp_path):
    pred, ref = cohort
    part = tmp_path / "s.part.jsonl"
    cfg = scoring_config()
    full = score_folders(str(pred), str(ref), cfg, part_file=str(part))
    lines = part.read_bytes().splitlines(keepends=True)
    assert json.loads(lines[0]) == {"medloss_part": 1, "config": cfg.fingerprint()} and len(lines) == 13
    part.write_bytes(b"".join(lines[:6]) + lines[6][:25])  # five cases, then a line cut by a kill
    done = []
    again = score_folders(str(pred), str(ref), cfg, part_file=str(part), resume=True, progress=done.append)
    assert again.resumed == 5 and done[-1].total == 7
    assert same(again.rows, full.rows) and same(again.summary, full.summary)
    cases = [json.loads(line)["case"] for line in part.read_bytes().splitlines()[1:]]
    assert sorted(cases) == sorted(set(cases)) and len(cases) == 12  # no case scored twice
    fewer = [(f"c00{i}", str(pred / f"c00{i}.nii.gz"), str(ref / f"c00{i}.nii.gz")) for i in range(3)]
    part.write_bytes(b"".join(lines))
    subset = score_pairs(fewer, cfg, part_file=str(part), resume=True)  # cases of the part file not asked for
    assert subset.resumed == 3 and sorted({r["case"] for r in subset.rows}) == ["c000", "c001", "c002"]
    assert subset.summary["n_cases"] == 3
    with pytest.raises(InvalidOptionError, match="written with other scoring options"):
        score_folders(str(pred), str(ref), scoring_config(tolerance=2.0), part_file=str(part), resume=True)
    with pytest.raises(InvalidOptionError, match="`resume` needs the `part_file`"):
        score_folders(str(pred), str(ref), cfg, resume=True)


def test_config_round_trips_its_recipe_with_the_metrics():
    cfg = scoring_config(metrics="overlap,boundary_iou")
    assert isinstance(cfg, ScoringConfig) and cfg.metrics == ("overlap", "boundary_iou")
    assert cfg.recipe()["metrics"] == ["overlap", "boundary_iou"]
    assert cfg.columns()[:5] == ["case", "label", "dice", "iou", "precision"] and "boundary_iou" in cfg.columns()
    assert "hd95" not in cfg.columns()


def test_executor_arguments_are_checked(monkeypatch, cohort):
    import sys

    from medloss.errors import OptionTypeError
    from medloss.scoring.executors import DaskExecutor, LocalExecutor, resolve_executor

    assert isinstance(resolve_executor(None), LocalExecutor) and resolve_executor(3).workers == 3
    assert isinstance(resolve_executor("dask", scheduler="tcp://127.0.0.1:8786"), DaskExecutor)
    with pytest.raises(OptionTypeError, match="`executor` must be 'local', 'dask'"):
        resolve_executor("spark")
    with pytest.raises(InvalidOptionError, match="`scheduler` is a Dask address"):
        resolve_executor("local", scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(InvalidOptionError, match="`workers` must be an integer >= 1"):
        LocalExecutor(0)
    monkeypatch.setitem(sys.modules, "distributed", None)  # dask not installed
    pred, ref = cohort
    part = pred.parent / "never.part.jsonl"
    with pytest.raises(InvalidOptionError, match=r"pip install 'medloss\[dask\]'"):
        score_folders(str(pred), str(ref), scoring_config(), executor="dask", part_file=str(part))
    assert not part.exists()


def test_surfel_distances_do_not_depend_on_the_blas_thread_count():
    import os
    import subprocess
    import sys

    code = ("import numpy as np; from medloss.scoring.surface import SurfaceDistances, distance_metrics; "
            "rng = np.random.default_rng(0); d = [rng.random(300000) * 9 for _ in range(4)]; "
            "print(repr(distance_metrics(SurfaceDistances(d[0], d[1], d[2], d[3], 'surfel'))))")
    out = set()
    for threads in ("1", "2"):  # Dask workers run with 1 BLAS thread, a local pool with the machine's count
        env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        out.add(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                               check=True).stdout)
    assert len(out) == 1, out
