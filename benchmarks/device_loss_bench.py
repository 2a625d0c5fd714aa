#!/usr/bin/env python
"""GPU mode of the loss benchmark: every medloss loss against its MONAI counterpart on one device, in one
interleaved, parity-gated run, with peak allocator memory as a multiple of the logits.

    python benchmarks/device_loss_bench.py --device cuda                        # 3 shapes, all losses
    python benchmarks/device_loss_bench.py --device cuda --dtype bf16 --amp     # under torch.autocast
    python benchmarks/device_loss_bench.py --device cpu --shapes 1x3x16          # the plumbing, anywhere

The inputs, baselines and shapes are the shared harness's (``../shared/tools/loss_bench.py``: imported, not
copied), so CPU (``run_loss_bench.py``) and GPU tables describe the same cases. Per case:

* parity gate: loss value and d loss / d logits of medloss vs MONAI (rtol 1e-4, fp32) before timing; a loss that
  disagrees by design (DiceFocal: softmax focal here, sigmoid focal in MONAI) is timed only with
  ``--time-anyway``;
* time: median of ``--repeats`` fwd+bwd runs after warm-up, implementations interleaved (A B A B, order
  rotated each round), synchronised with the device (``torch.cuda.synchronize``);
* memory (CUDA): ``torch.cuda.max_memory_allocated`` during one fwd+bwd minus the memory allocated before it,
  divided by the logits' size (the gradient alone is 1x). On CPU memory is not reported here: use
  ``run_loss_bench.py``, which measures peak RSS in fresh subprocesses.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from run_loss_bench import HARNESS  # noqa: E402  (one list of medloss/MONAI pairs)
from run_loss_bench import IMPLS as _ALL_IMPLS  # noqa: E402

IMPLS = {k: v for k, v in _ALL_IMPLS.items() if k != "lovasz"}  # Lovász has no MONAI counterpart
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def load_harness(path: str):
    spec = importlib.util.spec_from_file_location("loss_bench", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["loss_bench"] = module
    spec.loader.exec_module(module)
    return module


def build(target: str, kwargs: dict):
    module, name = target.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)(**kwargs)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step(fn, x, y, amp_dtype):
    """One forward + backward; returns (loss, grad)."""
    x.grad = None
    if amp_dtype is not None:
        with torch.autocast(device_type=x.device.type, dtype=amp_dtype):
            loss = fn(x, y)
    else:
        loss = fn(x, y)
    loss.backward()
    return loss.detach(), x.grad


def peak_extra_bytes(fn, x, y, amp_dtype, device) -> int | None:
    if device.type != "cuda":
        return None
    step(fn, x, y, amp_dtype)  # warm-up (lazy inits)
    x.grad = None
    sync(device)
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    step(fn, x, y, amp_dtype)
    sync(device)
    peak = torch.cuda.max_memory_allocated(device) - before
    x.grad = None
    return int(peak)


def agree(a, b, rtol):
    (la, ga), (lb, gb) = a, b
    ok_loss = torch.allclose(la.float(), lb.float(), rtol=rtol, atol=rtol * float(lb.abs().max()) + 1e-12)
    ok_grad = torch.allclose(ga.float(), gb.float(), rtol=rtol, atol=rtol * float(gb.abs().max()) + 1e-12)
    return bool(ok_loss and ok_grad)


def run_case(key, shape, args, harness, device):
    target, kwargs, _ = harness.BASELINES[key]
    x, y = harness.make_inputs(shape, args.seed)
    x = x.detach().to(device=device, dtype=DTYPES[args.dtype]).requires_grad_()
    y = y.to(device)
    amp_dtype = DTYPES[args.dtype] if args.amp and args.dtype != "fp32" else None
    impls = {"monai": build(target, kwargs), "medloss": build(IMPLS[key], kwargs)}
    ref, cand = step(impls["monai"], x, y, amp_dtype), step(impls["medloss"], x, y, amp_dtype)
    rtol = args.rtol if args.dtype == "fp32" else max(args.rtol, 1e-2)
    parity = agree(cand, ref, rtol)
    row = dict(loss=key, shape="x".join(map(str, shape)), device=str(device), dtype=args.dtype, amp=bool(amp_dtype),
               agree=parity, logits_bytes=x.numel() * x.element_size())
    if not parity and not args.time_anyway:
        row["note"] = "disagrees with MONAI: not timed (--time-anyway)"
        return row
    names = list(impls)
    times = {n: [] for n in names}
    for _ in range(args.warmup):
        for n in names:
            step(impls[n], x, y, amp_dtype)
    for r in range(args.repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            sync(device)
            t0 = time.perf_counter()
            step(impls[n], x, y, amp_dtype)
            sync(device)
            times[n].append(time.perf_counter() - t0)
    for n in names:
        row[f"{n}_ms"] = 1e3 * statistics.median(times[n])
        peak = peak_extra_bytes(impls[n], x, y, amp_dtype, device)
        row[f"{n}_peak_x_logits"] = None if peak is None else peak / row["logits_bytes"]
    row["time_ratio"] = row["medloss_ms"] / row["monai_ms"]
    if row["monai_peak_x_logits"]:
        row["mem_ratio"] = row["medloss_peak_x_logits"] / row["monai_peak_x_logits"]
    return row


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--losses", default=",".join(IMPLS))
    ap.add_argument("--shapes", default="2x2x96,2x4x128,1x14x96", help="BxCxS (cube side S)")
    ap.add_argument("--dtype", choices=list(DTYPES), default="fp32", help="logits dtype")
    ap.add_argument("--amp", action="store_true", help="run the losses under torch.autocast(dtype)")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rtol", type=float, default=1e-4)
    ap.add_argument("--time-anyway", action="store_true")
    ap.add_argument("--harness", default=HARNESS)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("device_loss_bench: --device cuda but no CUDA device is visible", file=sys.stderr)
        return 2
    if not os.path.exists(args.harness):
        print(f"device_loss_bench: {args.harness} not found; pass --harness PATH", file=sys.stderr)
        return 2
    harness = load_harness(args.harness)
    keys = [k for k in args.losses.split(",") if k]
    unknown = sorted(set(keys) - set(IMPLS))
    if unknown:
        print(f"device_loss_bench: unknown loss key(s) {unknown}; known: {sorted(IMPLS)}", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"# device {name}, torch {torch.__version__}, dtype {args.dtype}{' (autocast)' if args.amp else ''}")
    print("| case | agree | MONAI ms | medloss ms | time / MONAI | MONAI peak (x logits) | medloss peak (x logits) "
          "| mem / MONAI |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for shape_text in args.shapes.split(","):
        b, c, s = (int(v) for v in shape_text.split("x"))
        for key in keys:
            row = run_case(key, (b, c, s, s, s), args, harness, device)
            rows.append(row)
            print(f"| {key} {shape_text} | {'yes' if row['agree'] else 'NO'} | {fmt(row.get('monai_ms'), '.2f')} | "
                  f"{fmt(row.get('medloss_ms'), '.2f')} | {fmt(row.get('time_ratio'), '.2f')} | "
                  f"{fmt(row.get('monai_peak_x_logits'), '.2f')} | {fmt(row.get('medloss_peak_x_logits'), '.2f')} | "
                  f"{fmt(row.get('mem_ratio'), '.2f')} |", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
