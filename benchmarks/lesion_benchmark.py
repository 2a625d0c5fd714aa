"""Lesion-wise BraTS scoring: `medloss score --lesion-preset brats23` against the official BraTS 2023 code.

One synthetic 155x240x240, 1 mm case with BraTS 2023 labels (a nested glioma, satellites, merged neighbours, a
lesion below 50 mm³, false-positive blobs and speckles), written as NIfTI. Timed, interleaved (official, medloss,
official, medloss, ...), each from the files to the WT/TC/ET numbers:

* official: ``get_LesionWiseResults`` of rachitsaluja/BraTS-2023-Metrics in its own interpreter (it needs its pinned
  NumPy 1.24 / pandas 1.3: ``BRATS23_PYTHON`` = that venv's python, ``BRATS23_METRICS_DIR`` = the checkout); only
  the call is timed, not the interpreter start or imports;
* medloss: :func:`medloss.scoring.score_case` (read both files, check geometry, score the three regions) after
  one untimed warm-up, in this process.

The numbers of both are compared (counts equal, scores to 1e-6) before the times are printed::

    BRATS23_PYTHON=/path/b23venv/bin/python BRATS23_METRICS_DIR=/path/BraTS-2023-Metrics \\
        python benchmarks/lesion_benchmark.py --repeats 3

``--brats25`` times the ``brats25`` preset against brats-evaluation's ``evaluate_single_exam`` (``gli`` config, both
in this process, interleaved) on the same files instead.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's medloss, not an installed one
SHAPE = (155, 240, 240)


def make_case():
    sys.path.insert(0, str(HERE.parent / "tests" / "scoring"))
    from _lesion_cases import _ball, _box, _tumour

    ref = _tumour(SHAPE, (80, 120, 110), 30, 18, 10)
    pred = _tumour(SHAPE, (82, 118, 111), 28, 19, 9)
    for c, rad in (((40, 60, 60), 6), ((120, 180, 170), 5), ((130, 60, 190), 4)):  # satellites
        ref[_ball(SHAPE, c, rad)] = 3
    pred[_ball(SHAPE, (41, 61, 60), 6)] = 3            # found
    pred[_ball(SHAPE, (121, 180, 171), 3)] = 3         # found, smaller; the third satellite is missed
    for y in (40, 46, 52):                             # merged neighbours (within the dilation)
        ref[_box(SHAPE, (20, y, 200), (25, y + 4, 205))] = 1
    pred[_box(SHAPE, (20, 40, 200), (25, 56, 205))] = 1
    ref[_box(SHAPE, (140, 20, 20), (143, 23, 23))] = 3  # 27 mm³, below the 50 mm³ threshold
    pred[_box(SHAPE, (10, 200, 30), (18, 210, 40))] = 2  # false-positive blobs
    pred[_box(SHAPE, (145, 100, 20), (150, 105, 25))] = 3
    rng = np.random.default_rng(0)
    for p in zip(*(rng.integers(0, n, 40) for n in SHAPE), strict=True):  # speckles
        pred[p] = 3
    return pred, ref


def official_once(pred_path, ref_path) -> dict:
    py = os.environ.get("BRATS23_PYTHON", sys.executable)
    out = subprocess.run([py, str(HERE / "official_runners.py"), "time-brats23", pred_path, ref_path],
                         capture_output=True, text=True, env=os.environ.copy())
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def score_case(case, pred_path, ref_path, preset):
    """``(rows, error)`` of :func:`medloss.scoring.score_case` under a lesion preset's defaults."""
    from medloss.scoring import score_case as score_one
    from medloss.scoring import scoring_config

    rec = json.loads(score_one(case, pred_path, ref_path, scoring_config(preset, allow_uncovered_labels=True)))
    return rec["rows"], rec["error"]


def medloss_once(pred_path, ref_path):
    t0 = time.perf_counter()
    rows, err = score_case("bench", pred_path, ref_path, "brats23")
    if err:
        raise RuntimeError(err)
    return time.perf_counter() - t0, rows


KEYS = {"Num_TP": "lesions_detected", "Num_FP": "lesions_fp", "Num_FN": "lesions_missed", "Legacy_Dice": "dice",
        "Legacy_HD95": "hd95", "LesionWise_Score_Dice": "lesion_dice", "LesionWise_Score_HD95": "lesion_hd95"}


BRATS25_KEYS = {"tp": "lesions_detected", "fp": "lesions_fp", "fn": "lesions_missed", "rq": "rq", "sq_dsc": "sq_dice",
                "sq_hd95": "sq_hd95", "sq_nsd": "sq_nsd", "global_bin_dsc": "dice",
                "global_bin_hd95": "global_hd95", "global_bin_nsd": "global_nsd"}


def brats25(p, r, repeats):
    from official_runners import run_brats25

    opts = "brats25"
    score_case("bench", p, r, opts)
    t_off, t_med = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        want = run_brats25(p, r, "gli")
        t_off.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        rows, _ = score_case("bench", p, r, opts)
        t_med.append(time.perf_counter() - t0)
    by = {row["label"]: row for row in rows}
    for region, w in want.items():
        for theirs, ours in BRATS25_KEYS.items():
            got, ref_v = by[region][ours], w[theirs]
            ok = (got != got) if ref_v is None else (got == 373.0) if ref_v == "inf" else \
                abs(got - ref_v) <= 1e-6 * max(1.0, abs(ref_v))
            assert ok, (region, ours, got, ref_v)
    mo, mm = statistics.median(t_off), statistics.median(t_med)
    print(f"case {SHAPE}, 1 mm, brats-evaluation gli regions; {repeats} interleaved runs; numbers equal (1e-6)")
    print("| implementation | runs (s) | median s |\n|---|---|---|")
    print(f"| brats-evaluation `evaluate_single_exam` (gli) | {', '.join(f'{t:.2f}' for t in t_off)} | {mo:.2f} |")
    print(f"| medloss `score_case` (brats25 preset) | {', '.join(f'{t:.3f}' for t in t_med)} | {mm:.3f} |")
    print(f"\nspeed-up (median): {mo / mm:.1f}x")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--brats25", action="store_true", help="time the brats25 preset against brats-evaluation")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from official_runners import write_nifti

    pred, ref = make_case()
    if args.brats25:
        with tempfile.TemporaryDirectory() as tmp:
            brats25(write_nifti(Path(tmp) / "pred.nii.gz", pred, (1.0, 1.0, 1.0)),
                    write_nifti(Path(tmp) / "ref.nii.gz", ref, (1.0, 1.0, 1.0)), args.repeats)
        return
    with tempfile.TemporaryDirectory() as tmp:
        p = write_nifti(Path(tmp) / "pred.nii.gz", pred, (1.0, 1.0, 1.0))
        r = write_nifti(Path(tmp) / "ref.nii.gz", ref, (1.0, 1.0, 1.0))
        medloss_once(p, r)  # warm-up (imports, caches)
        t_off, t_med = [], []
        for _ in range(args.repeats):
            off = official_once(p, r)
            t_off.append(off["seconds"])
            dt, rows = medloss_once(p, r)
            t_med.append(dt)
    by = {row["label"]: row for row in rows}
    table = []
    for region, want in off["result"].items():
        for theirs, ours in KEYS.items():
            got = by[region][ours]
            assert abs(got - want[theirs]) <= 1e-6 * max(1.0, abs(want[theirs])), (region, ours, got, want[theirs])
        table.append(f"| {region} | " + " | ".join(f"{by[region][o]:.6g}" for o in KEYS.values()) + " |")
    mo, mm = statistics.median(t_off), statistics.median(t_med)
    print(f"case {SHAPE}, 1 mm, lesions WT/TC/ET; {args.repeats} interleaved runs; numbers equal (1e-6)")
    print("| region | " + " | ".join(KEYS.values()) + " |\n|" + "---|" * (len(KEYS) + 1))
    print("\n".join(table))
    print("\n| implementation | runs (s) | median s |\n|---|---|---|")
    print(f"| official BraTS 2023 `get_LesionWiseResults` | {', '.join(f'{t:.2f}' for t in t_off)} | {mo:.2f} |")
    print(f"| medloss `score_case` (brats23 preset) | {', '.join(f'{t:.3f}' for t in t_med)} | {mm:.3f} |")
    print(f"\nspeed-up (median): {mo / mm:.1f}x")


if __name__ == "__main__":
    main()
