"""medloss SoftclDiceLoss / SoftDiceclDiceLoss vs MONAI 1.6.1's, on CPU: one interleaved, parity-gated run.

For each case the two implementations get the same float32 logits and target; they must agree (loss and gradient,
rtol 1e-4) before timing where MONAI's definition is medloss's (one channel: MONAI pools channels, medloss scores
each class, docs/monai-differences.md); multi-class cases are timed anyway and marked. Time: median of
``--repeats`` forward+backward passes, medloss and MONAI alternating. Memory: peak extra RSS of one forward+backward
in a fresh subprocess (the peak is reset after the inputs are built), as a multiple of the logits' size.

    python benchmarks/topology_bench.py --repeats 5     # benchmarks/README.md's table (2.5 min on the shared 2-core VM)
    python benchmarks/topology_bench.py --shapes 1x1x24 --repeats 2 --json rows.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

LOSSES = ("SoftclDiceLoss", "SoftDiceclDiceLoss")


def make(impl: str, name: str, channels: int):
    import monai.losses

    import medloss.losses

    module = medloss.losses if impl == "medloss" else monai.losses
    if channels == 1:
        return getattr(module, name)(sigmoid=True)
    return getattr(module, name)(softmax=True, include_background=False)


def inputs(shape: tuple[int, ...]):
    gen = torch.Generator().manual_seed(0)
    b, c, n = shape
    x = torch.randn(b, c, n, n, n, generator=gen)
    labels = torch.randint(0, max(c, 2), (b, n, n, n), generator=gen)
    y = torch.nn.functional.one_hot(labels, max(c, 2)).movedim(-1, 1).float()
    return x, (y[:, 1:] if c == 1 else y)


def step(fn, x, y):
    x = x.detach().requires_grad_()
    loss = fn(x, y)
    loss.backward()
    return loss.detach(), x.grad


def peak_rss_ratios(impl: str, cases: list[tuple[str, tuple]]) -> list[float]:
    """Peak extra RSS of one forward+backward per case, in units of the logits' bytes, measured in one fresh
    interpreter per implementation: before each case freed memory is returned to the OS (``malloc_trim``) and the
    peak is reset (``/proc/self/clear_refs``), after the inputs are built."""
    code = f"""
import ctypes, gc, sys, torch
sys.path.insert(0, {sys.path[0]!r})
from topology_bench import inputs, make, step
torch.set_num_threads(1)
libc = ctypes.CDLL('libc.so.6')
def rss(key):
    for line in open('/proc/self/status'):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
step(make({impl!r}, 'SoftclDiceLoss', 1), *inputs((1, 1, 8)))  # first-call allocations (thread pools, caches)
for name, shape in {cases!r}:
    x, y = inputs(shape); fn = make({impl!r}, name, shape[1])
    gc.collect(); libc.malloc_trim(0)
    open('/proc/self/clear_refs', 'w').write('5')
    base = rss('VmRSS:')
    step(fn, x, y)
    print((rss('VmHWM:') - base) / (x.numel() * 4), flush=True)
    del x, y, fn
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return [float(v) for v in done.stdout.split()]


def run_case(name: str, shape, repeats: int) -> dict:
    x, y = inputs(shape)
    fns = {impl: make(impl, name, shape[1]) for impl in ("medloss", "monai")}
    (lm, gm), (lo, go) = step(fns["medloss"], x, y), step(fns["monai"], x, y)
    agree = bool(torch.allclose(lm, lo, rtol=1e-4, atol=1e-6) and torch.allclose(gm, go, rtol=1e-4, atol=1e-8))
    times = {"medloss": [], "monai": []}
    for _ in range(repeats):
        for impl in ("medloss", "monai"):
            t0 = time.perf_counter()
            step(fns[impl], x, y)
            times[impl].append(time.perf_counter() - t0)
    row = {"loss": name, "shape": "x".join(map(str, shape)), "agree": agree,
           "medloss_ms": 1e3 * statistics.median(times["medloss"]), "monai_ms": 1e3 * statistics.median(times["monai"])}
    row["time_ratio"] = row["medloss_ms"] / row["monai_ms"]
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="2x1x32,2x3x32,1x1x48", help="BxCxN cases (N^3 volumes)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    cases = [(name, tuple(int(v) for v in spec.split("x"))) for spec in args.shapes.split(",") for name in LOSSES]
    memory = {}
    if not args.no_memory:
        memory = {impl: peak_rss_ratios(impl, cases) for impl in ("medloss", "monai")}
    rows = []
    print("| case | agrees with MONAI | time / MONAI (ms: medloss / MONAI) | peak extra, x logits (medloss / MONAI) |")
    print("|---|---|---|---|")
    for i, (name, shape) in enumerate(cases):
        row = run_case(name, shape, args.repeats)
        if memory:
            row["medloss_mem"], row["monai_mem"] = memory["medloss"][i], memory["monai"][i]
            row["mem_ratio"] = row["medloss_mem"] / row["monai_mem"]
        rows.append(row)
        agree = "yes" if row["agree"] else "no (per class vs pooled channels, by design)"
        mem = f"{row['medloss_mem']:.1f} / {row['monai_mem']:.1f}" if memory else "-"
        print(f"| {name} {row['shape']} | {agree} | **{row['time_ratio']:.2f}** "
              f"({row['medloss_ms']:.1f} / {row['monai_ms']:.1f}) | {mem} |", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
