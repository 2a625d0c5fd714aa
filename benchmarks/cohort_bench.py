"""Cohort scoring throughput: cases/s of :func:`medloss.scoring.score_folders` on BraTS-sized cases with 1 and 2
local worker processes and a 2-worker Dask ``LocalCluster`` (127.0.0.1), the parallel efficiency from 1 to 2
workers and the Dask / local ratio.

Cases are 155×240×240 uint8 label volumes (gzip NIfTI, 1 mm): a few ellipsoidal tumours with labels 1-3 and a
prediction that is the reference shifted by one voxel with false-positive speckles. ``--distinct`` volumes are
generated and the N cases hard-link them (every case is still read, decompressed and scored; generating 200 distinct
BraTS volumes would take longer than scoring them). The Dask cluster (that of ``medloss score --executor dask
--workers 2``) is started before its timing starts (its
start-up time is printed apart) and each of its workers scores one warm-up case, as in a cluster that is running
already; the local pool forks from this process after its warm-up case. Each configuration scores every case once;
all three must give the same summary.

    python benchmarks/cohort_bench.py                  # N = 200, brats23 preset
    python benchmarks/cohort_bench.py --cases 24 --preset none
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPE = (240, 240, 155)


def _case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    grid = np.ogrid[:SHAPE[0], :SHAPE[1], :SHAPE[2]]
    ref = np.zeros(SHAPE, np.uint8)
    for _ in range(rng.integers(1, 4)):
        centre = rng.uniform((70, 70, 40), (170, 170, 115))
        radii = rng.uniform(10, 28, 3)
        dist = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True))
        ref[dist < 1.0] = 2          # oedema
        ref[dist < 0.45] = 1         # necrosis / non-enhancing core
        ref[(dist > 0.2) & (dist < 0.45)] = 3  # enhancing rim
    pred = np.roll(ref, 1, axis=int(rng.integers(0, 3)))
    pred[rng.random(SHAPE) < 2e-5] = 2
    return pred, ref


def make_cases(root: Path, n: int, distinct: int, seed: int = 0) -> tuple[Path, Path]:
    import nibabel as nib

    pred_dir, ref_dir = root / "pred", root / "ref"
    pred_dir.mkdir(parents=True, exist_ok=True)
    ref_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k in range(min(distinct, n)):
        pred, ref = _case(rng)
        nib.save(nib.Nifti1Image(pred, np.eye(4)), pred_dir / f"case{k:04d}.nii.gz")
        nib.save(nib.Nifti1Image(ref, np.eye(4)), ref_dir / f"case{k:04d}.nii.gz")
    for i in range(distinct, n):
        for d in (pred_dir, ref_dir):
            os.link(d / f"case{i % distinct:04d}.nii.gz", d / f"case{i:04d}.nii.gz")
    return pred_dir, ref_dir


def _same(a, b) -> bool:
    """Equality of two summaries, NaN equal to NaN."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (a != a and b != b)
    return a == b


def _cpu() -> float:
    """CPU seconds of this process and of its reaped children (the local pool's workers once it shut down)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _worker_cpu(client) -> float:
    def cpu() -> float:
        import resource

        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    return sum(client.run(cpu).values())


def _timed(pred: Path, ref: Path, config, executor) -> tuple[float, float, dict]:
    """Wall seconds, CPU seconds (every process that scored) and summary of one run."""
    from medloss.scoring import score_folders

    client = executor if not isinstance(executor, int) else None
    c0 = _cpu() + (_worker_cpu(client) if client is not None else 0.0)
    t0 = time.perf_counter()
    result = score_folders(str(pred), str(ref), config, executor=executor)
    seconds = time.perf_counter() - t0
    cpu = _cpu() + (_worker_cpu(client) if client is not None else 0.0) - c0
    if result.errors:
        raise RuntimeError(result.errors[:3])
    return seconds, cpu, result.summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=200, help="number of cases (default 200)")
    ap.add_argument("--distinct", type=int, default=8, help="distinct volumes the cases link to (default 8)")
    ap.add_argument("--preset", default="brats23", help="lesion preset, or 'none' for per-label scoring")
    ap.add_argument("--workdir", default=None, help="folder for the cases (default: a temporary folder)")
    args = ap.parse_args(argv)

    from medloss.scoring import DaskExecutor, scoring_config

    config = scoring_config(None if args.preset == "none" else args.preset, allow_uncovered_labels=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.workdir or tmp)
        t0 = time.perf_counter()
        pred, ref = make_cases(root, args.cases, args.distinct)
        print(f"{args.cases} cases of {SHAPE} (gzip NIfTI, {args.distinct} distinct) written in "
              f"{time.perf_counter() - t0:.0f} s; preset {args.preset}; {os.cpu_count()} CPUs; "
              f"load average before: {os.getloadavg()[0]:.1f}")
        from medloss.scoring import score_case, score_pairs

        score_pairs([("warm", str(pred / "case0000.nii.gz"), str(ref / "case0000.nii.gz"))], config)
        runs = {}
        for name, workers in (("local, 1 worker", 1), ("local, 2 workers", 2)):
            runs[name] = _timed(pred, ref, config, workers)
        t0 = time.perf_counter()
        with DaskExecutor(workers=2) as own:  # the cluster of `--executor dask --workers 2`
            client = own.client
            start = time.perf_counter() - t0
            # a running cluster has its modules imported: warm each worker as the local pool is (forked warm)
            client.run(score_case, "warm", str(pred / "case0000.nii.gz"), str(ref / "case0000.nii.gz"), config)
            runs["dask, 2 workers"] = _timed(pred, ref, config, client)
    rates = {name: args.cases / s for name, (s, _, _) in runs.items()}
    print("\n| executor | seconds | cases/s | wall s/case | CPU s/case |\n|---|---|---|---|---|")
    for name, (s, cpu, _) in runs.items():
        print(f"| {name} | {s:.1f} | {rates[name]:.3f} | {s / args.cases:.3f} | {cpu / args.cases:.3f} |")
    eff = rates["local, 2 workers"] / (2 * rates["local, 1 worker"])
    ratio = rates["dask, 2 workers"] / rates["local, 2 workers"]
    print(f"\nparallel efficiency 1 -> 2 local workers: {eff:.2f}; Dask / local (2 workers): {ratio:.2f}; "
          f"Dask LocalCluster start-up {start:.1f} s (not timed); load average after: {os.getloadavg()[0]:.1f}")
    summaries = [s for _, _, s in runs.values()]
    print("same summary from all three:", all(_same(summaries[0], s) for s in summaries[1:]))
    per_case = runs["local, 2 workers"][1] / args.cases  # CPU seconds: what a core spends on one case
    print(f"plan: 10,000 cases x {per_case:.2f} CPU s / (16 nodes x C cores) = {10000 * per_case / 16:.0f} s / C "
          f"(C = 16: {10000 * per_case / 256 / 60:.1f} min at efficiency 1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
