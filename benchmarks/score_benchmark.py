#!/usr/bin/env python
"""Speed of ``medloss.scoring`` against MONAI, DeepMind surface-distance and a per-lesion loop, in one run.

The data, the anchors and the timing harness are imported from the shared benchmark ``score_bench.py``
(``../shared/tools/score_bench.py`` by default; ``--bench PATH`` to change it), which the speed acceptance is judged
by, so both measure the same thing: the 256x256x160 volume at 0.8x0.8x2.5 mm, Dice + HD95 + NSD@1 mm from in-memory
arrays, median of ``--repeats`` runs after a warm-up, ``gc.collect()`` between methods.

Rows:
* medloss ``score_arrays(surface="voxel")`` vs MONAI DiceMetric + HausdorffDistanceMetric(95) + SurfaceDiceMetric;
* medloss ``score_arrays(surface="surfel")`` vs DeepMind ``surface-distance``;
* medloss ``lesion_scores`` (autoPET preset, 18-connectivity) vs the autoPET-style per-lesion loop, with 300
  false-positive speckles added to the prediction (same speckles as ``score_bench.py``).
Values are checked for agreement before any time is reported.

Usage: python benchmarks/score_benchmark.py [--repeats 5] [--out benchmarks/results_score.md] [--json FILE]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_BENCH = HERE.parent.parent / "shared" / "tools" / "score_bench.py"


def load_bench(path: Path):
    spec = importlib.util.spec_from_file_location("score_bench", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def speckled(pred: np.ndarray) -> np.ndarray:
    """The prediction plus 300 two-voxel false-positive speckles (the shared benchmark's recipe, seed 1)."""
    rng = np.random.default_rng(1)
    noisy = pred.copy()
    for _ in range(300):
        q = [int(rng.integers(2, n - 3)) for n in noisy.shape]
        noisy[q[0]:q[0] + 2, q[1], q[2]] = True
    return noisy


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, default=DEFAULT_BENCH, help="path of the shared score_bench.py")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None, help="write the markdown table here")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if not args.bench.exists():
        print(f"score_bench.py not found at {args.bench}; pass --bench", file=sys.stderr)
        return 2
    sb = load_bench(args.bench)
    from medloss.scoring import LESION_PRESETS, lesion_scores, score_arrays

    gt, pred, spacing = sb.make_volumes()
    g8, p8 = gt.astype(np.uint8), pred.astype(np.uint8)
    noisy = speckled(pred)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    autopet = LESION_PRESETS["autopet"]
    with warnings.catch_warnings():  # warm-up: imports and first-call overheads, untimed
        warnings.simplefilter("ignore")
        small = (slice(0, 96), slice(0, 96), slice(0, 48))
        sb.monai_scores(gt[small] | True, pred[small], spacing)
        score_arrays(p8[small], g8[small], spacing, labels=[1])
        score_arrays(p8[small], g8[small], spacing, labels=[1], surface="surfel")

    methods = {
        "medloss score_arrays voxel (labels=[1])": lambda: score_arrays(p8, g8, spacing, labels=[1]),
        "medloss score_arrays voxel (default labels)": lambda: score_arrays(p8, g8, spacing),
        "MONAI Dice+HD95+NSD": lambda: sb.monai_scores(gt, pred, spacing),
        "medloss score_arrays surfel (labels=[1])": lambda: score_arrays(p8, g8, spacing, labels=[1],
                                                                           surface="surfel"),
        "DeepMind surface-distance": lambda: sb.deepmind_scores(gt, pred, spacing),
        "medloss lesion_scores autopet, +300 speckles": lambda: lesion_scores(gt, noisy, spacing, autopet),
        "per-lesion loop (score_bench.lesion_naive), +300 speckles": lambda: sb.lesion_naive(gt, noisy, voxel_ml),
        "medloss score_arrays voxel + lesions=autopet, +300 speckles":
            lambda: score_arrays(noisy.astype(np.uint8), g8, spacing, labels=[1], lesions="autopet"),
        "medloss lesion_scores brats23 (with lesion HD95), +300 speckles":
            lambda: lesion_scores(gt, noisy, spacing, LESION_PRESETS["brats23"]),
    }
    res = {}
    for name, fn in methods.items():
        r = sb.bench(fn, args.repeats)
        if r["error"]:
            raise SystemExit(f"{name}: {r['error']}")
        res[name] = r
        print(f"{name:66s} median {r['median_s']:.4f} s  [{', '.join(f'{t:.3f}' for t in r['times_s'])}]", flush=True)

    # agreement before speed
    v, m = res["medloss score_arrays voxel (labels=[1])"]["result"][0], res["MONAI Dice+HD95+NSD"]["result"]
    s, d = res["medloss score_arrays surfel (labels=[1])"]["result"][0], res["DeepMind surface-distance"]["result"]
    lz, ln = res["medloss lesion_scores autopet, +300 speckles"]["result"], \
        res["per-lesion loop (score_bench.lesion_naive), +300 speckles"]["result"]
    assert abs(v["dice"] - m["dice"]) < 1e-6 and abs(v["nsd"] - m["nsd"]) < 1e-6
    assert abs(v["hd95"] - m["hd95"]) < 2e-5 * m["hd95"]  # MONAI's float32 torch.quantile, see tests
    assert all(abs(s[k] - d[k]) < 1e-6 for k in ("dice", "hd95", "nsd", "hd"))
    assert (lz["lesions_detected"], lz["lesions_fp"], lz["lesions_missed"]) == (ln["tp"], ln["fp"], ln["fn"])
    assert abs(lz["fp_volume_ml"] - ln["fp_vol_ml"]) < 1e-9 and abs(lz["fn_volume_ml"] - ln["fn_vol_ml"]) < 1e-9

    t = {k: r["median_s"] for k, r in res.items()}
    ratios = {
        "MONAI / medloss voxel": t["MONAI Dice+HD95+NSD"] / t["medloss score_arrays voxel (labels=[1])"],
        "MONAI / medloss voxel (default labels)":
            t["MONAI Dice+HD95+NSD"] / t["medloss score_arrays voxel (default labels)"],
        "DeepMind / medloss surfel": t["DeepMind surface-distance"] / t["medloss score_arrays surfel (labels=[1])"],
        "per-lesion loop / medloss lesion_scores":
            t["per-lesion loop (score_bench.lesion_naive), +300 speckles"]
            / t["medloss lesion_scores autopet, +300 speckles"],
        "per-lesion loop / medloss score_arrays+lesions":
            t["per-lesion loop (score_bench.lesion_naive), +300 speckles"]
            / t["medloss score_arrays voxel + lesions=autopet, +300 speckles"],
    }
    for k, r in ratios.items():
        print(f"{k}: {r:.1f}x")
    import scipy
    import torch

    env = (f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
           f"torch {torch.__version__}, {os.cpu_count()} CPU cores, median of {args.repeats} runs, "
           f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    lines = [f"Environment: {env}.", "", "| method | Dice | HD95 mm | NSD@1mm | median s |", "|---|---|---|---|---|"]
    for k, r in res.items():
        out = r["result"]
        row = out[0] if isinstance(out, list) else out
        if "lesion" in k or "loop" in k:
            cells = ["—", "—", "—"]
        else:
            cells = [f"{row['dice']:.6f}", f"{row['hd95']:.6f}", f"{row['nsd']:.6f}"]
        lines.append(f"| {k} | {' | '.join(cells)} | {r['median_s']:.4f} |")
    lines += ["", "| ratio | × |", "|---|---|"] + [f"| {k} | {v:.1f} |" for k, v in ratios.items()]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if args.out:
        args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps({"env": env, "median_s": t, "ratios": ratios}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
