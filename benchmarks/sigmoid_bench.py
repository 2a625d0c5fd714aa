#!/usr/bin/env python
"""Sigmoid losses (binary / multi-label segmentation) against their MONAI counterparts: one interleaved,
parity-gated run per case, with peak extra memory measured in fresh subprocesses.

    python benchmarks/sigmoid_bench.py                              # all cases, shapes 2x1x128 and 2x4x128
    python benchmarks/sigmoid_bench.py --cases dice,bcedice --shapes 2x1x96 --repeats 5
    python benchmarks/sigmoid_bench.py --allocator jemalloc-cached  # LD_PRELOAD jemalloc, freed pages kept

The shared harness (``../shared/tools/loss_bench.py``) has only softmax baselines, so this script covers the
sigmoid side the same way: targets are binary one-hot/multi-label float tensors of the logits' shape (as MONAI
pipelines pass them), parity is checked on loss value and gradient (rtol 1e-4) before timing, medloss and MONAI
alternate (order rotated each round), and peak extra memory of one forward+backward is the high-water mark of
the process RSS minus the RSS before it, in a fresh process (glibc with MALLOC_MMAP_THRESHOLD_=65536 so that RSS
follows live tensors; it includes the 1x gradient).
"""
from __future__ import annotations

import argparse
import ctypes
import importlib
import json
import os
import statistics
import subprocess
import sys
import time

import torch

# case -> (MONAI target, medloss target, kwargs for both)
CASES = {
    "dice": ("monai.losses.DiceLoss", "medloss.losses.DiceLoss", dict(sigmoid=True)),
    "focal": ("monai.losses.FocalLoss", "medloss.losses.FocalLoss", dict(gamma=2.0)),
    "dicefocal": ("monai.losses.DiceFocalLoss", "medloss.losses.DiceFocalLoss", dict(sigmoid=True)),
    # MONAI's DiceCELoss with one channel is sigmoid Dice + BCE: medloss's BCEDiceLoss
    "bcedice": ("monai.losses.DiceCELoss", "medloss.losses.BCEDiceLoss", dict(sigmoid=True)),
}
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"


def build(target: str, kwargs: dict, case: str):
    module, name = target.rsplit(".", 1)
    kw = dict(kwargs)
    if case == "bcedice" and target.startswith("medloss"):
        kw.pop("sigmoid")  # always sigmoid
    return getattr(importlib.import_module(module), name)(**kw)


def make_inputs(shape, seed=0):
    b, c, s = shape
    g = torch.Generator().manual_seed(seed)
    low = torch.randn(b, c, max(2, s // 16), max(2, s // 16), max(2, s // 16), generator=g) - 0.8
    field = torch.nn.functional.interpolate(low, size=(s, s, s), mode="trilinear", align_corners=False)
    target = (field > 0).float()
    x = (3.0 * field + torch.randn(b, c, s, s, s, generator=g)).contiguous()
    return x.requires_grad_(True), target


def step(fn, x, y):
    x.grad = None
    loss = fn(x, y)
    loss.backward()
    return loss.detach(), x.grad


def memory_worker(args) -> None:
    """Child process: peak extra RSS (MiB) of one fwd+bwd, printed as JSON."""
    case, impl, shape = args.memory_worker.split(":")
    monai_t, ours_t, kw = CASES[case]
    fn = build(monai_t if impl == "monai" else ours_t, kw, case)
    x, y = make_inputs(tuple(int(v) for v in shape.split("x")), args.seed)
    step(fn, x, y)
    x.grad = None
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before = _status_mib("VmRSS:")
    step(fn, x, y)
    print(json.dumps({"extra_mib": _status_mib("VmHWM:") - before}))


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_extra(case: str, impl: str, shape: str, seed: int) -> float:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    env.pop("LD_PRELOAD", None)
    out = subprocess.run([sys.executable, __file__, "--memory-worker", f"{case}:{impl}:{shape}", "--seed", str(seed)],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["extra_mib"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--shapes", default="2x1x128,2x4x128", help="BxCxS; bcedice runs only where C = 1")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rtol", type=float, default=1e-4)
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--allocator", choices=["default", "jemalloc-cached"], default="default")
    ap.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_worker:
        memory_worker(args)
        return 0
    if args.allocator == "jemalloc-cached" and os.environ.get("SIGMOID_BENCH_REEXEC") != "1":
        if not os.path.exists(JEMALLOC):
            print(f"sigmoid_bench: {JEMALLOC} not found (apt-get install libjemalloc2)", file=sys.stderr)
            return 2
        env = dict(os.environ, LD_PRELOAD=JEMALLOC, SIGMOID_BENCH_REEXEC="1",
                   MALLOC_CONF="oversize_threshold:0,dirty_decay_ms:-1,muzzy_decay_ms:-1")
        return subprocess.call([sys.executable, __file__, *(argv if argv is not None else sys.argv[1:])], env=env)
    print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}, allocator {args.allocator}")
    print("| case | agree | MONAI ms | medloss ms | time / MONAI | MONAI peak (x logits) | medloss peak (x logits) |")
    print("|---|---|---|---|---|---|---|")
    for shape in args.shapes.split(","):
        b, c, s = (int(v) for v in shape.split("x"))
        for case in args.cases.split(","):
            if case == "bcedice" and c != 1:
                continue
            monai_t, ours_t, kw = CASES[case]
            fns = {"monai": build(monai_t, kw, case), "medloss": build(ours_t, kw, case)}
            x, y = make_inputs((b, c, s), args.seed)
            (l1, g1), (l2, g2) = step(fns["monai"], x, y), step(fns["medloss"], x, y)
            agree = torch.allclose(l1, l2, rtol=args.rtol) and torch.allclose(
                g1, g2, rtol=args.rtol, atol=args.rtol * float(g1.abs().max()))
            times = {n: [] for n in fns}
            if agree:
                for _ in range(args.warmup):
                    for fn in fns.values():
                        step(fn, x, y)
                names = list(fns)
                for r in range(args.repeats):
                    for n in names[r % 2:] + names[: r % 2]:
                        t0 = time.perf_counter()
                        step(fns[n], x, y)
                        times[n].append(time.perf_counter() - t0)
            ms = {n: 1e3 * statistics.median(t) for n, t in times.items() if t}
            logits_mib = x.numel() * 4 / 2**20
            mem = {} if args.no_memory else {n: peak_extra(case, n, shape, args.seed) / logits_mib for n in fns}
            ratio = f"{ms['medloss'] / ms['monai']:.2f}" if ms else "-"
            def cell(table, key, spec):
                return format(table[key], spec) if key in table else "-"

            print(f"| {case} {shape} | {'yes' if agree else 'NO'} | {cell(ms, 'monai', '.1f')} | "
                  f"{cell(ms, 'medloss', '.1f')} | {ratio} | {cell(mem, 'monai', '.2f')} | "
                  f"{cell(mem, 'medloss', '.2f')} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
