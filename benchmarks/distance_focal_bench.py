#!/usr/bin/env python
"""HausdorffDTLoss and AsymmetricUnifiedFocalLoss: medloss vs MONAI 1.6.1, time and memory of forward+backward in
one interleaved run, parity-gated.

    python benchmarks/distance_focal_bench.py                      # benchmarks/README.md's figures (~1 min on 2 cores)
    python benchmarks/distance_focal_bench.py --hd-shape 1x3x16 --aufl-shape 1x2x16 --repeats 2 --json out.json

Implementations (each case checks value and gradient against MONAI, rtol 1e-5, before timing):

* ``hd``: MONAI ``HausdorffDTLoss(softmax=True, to_onehot_y=True)`` (scipy distance transforms of the prediction
  and the reference at every call) vs medloss with the reference maps from the loader (``SignedDistanceMapd``,
  computed once per sample, outside the step: the intended use) and medloss computing them itself ("no maps").
* ``aufl``: MONAI ``AsymmetricUnifiedFocalLoss(to_onehot_y=True)`` on two-channel probabilities vs medloss's, whose
  focal term is the paper's (MONAI halves it): compared as (1 - w) / (1 - l) * medloss(weight=l), l = w / (2 - w).

Time: median of ``--repeats`` runs after ``--warmup``, implementations interleaved (A B C A B C ..., order rotated
every round) in one process. Memory: peak of live torch-allocated bytes during one fwd+bwd (torch.profiler with
profile_memory; includes the 1x input gradient), what a caching GPU allocator would have to hold.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings

import torch

torch.set_num_threads(1)


def parse_shape(text: str) -> tuple[int, ...]:
    b, c, s = (int(v) for v in text.split("x"))
    return (b, c, s, s, s)


def structured_case(shape, seed=0):
    """Logits of a partly trained net and a label map of smooth blobs (every class present, background-dominant)."""
    gen = torch.Generator().manual_seed(seed)
    b, c = shape[:2]
    field = torch.randn(b, c, *(max(2, s // 8) for s in shape[2:]), generator=gen)
    field[:, 0] += 1.0
    field = torch.nn.functional.interpolate(field, size=shape[2:], mode="trilinear", align_corners=False)
    labels = field.argmax(1, keepdim=True)
    onehot = torch.nn.functional.one_hot(labels[:, 0], c).movedim(-1, 1).float()
    logits = 3.0 * onehot + torch.randn(shape, generator=gen)
    return logits, labels


def cases(hd_shape, aufl_shape):
    from monai.losses import AsymmetricUnifiedFocalLoss as MonaiAUFL
    from monai.losses import HausdorffDTLoss as MonaiHD

    import medloss.losses as L
    from medloss.transforms import signed_distance_maps

    logits, labels = structured_case(hd_shape)
    maps = torch.stack([signed_distance_maps(labels[i], hd_shape[1]) for i in range(hd_shape[0])])
    ours = L.HausdorffDTLoss(softmax=True, to_onehot_y=True)
    hd = {
        "monai": (lambda x: MonaiHD(softmax=True, to_onehot_y=True)(x, labels)),
        "medloss (loader maps)": (lambda x: ours(x, labels, distance=maps)),
        "medloss (no maps)": (lambda x: ours(x, labels)),
    }
    logits2, labels2 = structured_case(aufl_shape, seed=1)
    probs = torch.softmax(logits2, 1)
    w = 0.5
    lam = w / (2.0 - w)
    ours_aufl = L.AsymmetricUnifiedFocalLoss(to_onehot_y=True, weight=lam)
    aufl = {
        "monai": (lambda x: MonaiAUFL(to_onehot_y=True, weight=w)(x, labels2)),
        "medloss": (lambda x: (1.0 - w) / (1.0 - lam) * ours_aufl(x, labels2)),
    }
    return [("hd", hd_shape, logits, hd), ("aufl", aufl_shape, probs, aufl)]


def fwd_bwd(fn, x):
    x = x.detach().clone().requires_grad_()
    out = fn(x)
    out.backward()
    return out.detach(), x.grad


def agree(ref, cand, x, rtol=1e-5) -> bool:
    (a, ga), (b, gb) = fwd_bwd(ref, x), fwd_bwd(cand, x)
    return bool(torch.allclose(a, b, rtol=rtol, atol=1e-8) and torch.allclose(ga, gb, rtol=rtol, atol=1e-8))


def time_interleaved(fns: dict, x, warmup: int, repeats: int) -> dict:
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fwd_bwd(fns[name], x)
    times = {name: [] for name in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            t0 = time.perf_counter()
            fwd_bwd(fns[name], x)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def alloc_peak(fn, x) -> int:
    """Peak of live torch-allocated bytes during one fwd+bwd (torch.profiler memory events)."""
    from torch.profiler import ProfilerActivity, profile

    x = x.detach().clone()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fwd_bwd(fn, x)
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.cpu_memory_usage
        peak = max(peak, live)
    return peak


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hd-shape", default="2x3x48", help="BxCxS (S^3 volume)")
    ap.add_argument("--aufl-shape", default="2x2x96", help="BxCxS; C must be 2 (MONAI's AUFL is binary)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")  # medloss's one-time "computing maps" warning in the "no maps" row
    import monai

    print(f"torch {torch.__version__}, MONAI {monai.__version__}, 1 thread")
    rows = []
    for key, shape, x, fns in cases(parse_shape(args.hd_shape), parse_shape(args.aufl_shape)):
        ref = fns["monai"]
        ok = {name: agree(ref, fn, x) for name, fn in fns.items() if name != "monai"}
        timed = {name: fn for name, fn in fns.items() if name == "monai" or ok[name]}
        times = time_interleaved(timed, x, args.warmup, args.repeats)
        for name in fns:
            row = {"loss": key, "shape": "x".join(map(str, shape)), "impl": name,
                   "agree": True if name == "monai" else ok[name]}
            if name in times:
                row.update(ms=1e3 * times[name], peak_mib=alloc_peak(fns[name], x) / 2**20)
            rows.append(row)
    monai_rows = {r["loss"]: r for r in rows if r["impl"] == "monai"}
    print("| loss | shape | implementation | agrees | ms (median) | time / MONAI | alloc peak MiB | memory / MONAI |")
    print("|---|---|---|---|---:|---:|---:|---:|")
    for r in rows:
        m = monai_rows[r["loss"]]
        if "ms" not in r:
            print(f"| {r['loss']} | {r['shape']} | {r['impl']} | no | - | - | - | - |")
            continue
        print(f"| {r['loss']} | {r['shape']} | {r['impl']} | {'yes' if r['agree'] else 'no'} | {r['ms']:.1f} | "
              f"{r['ms'] / m['ms']:.2f}x | {r['peak_mib']:.1f} | {r['peak_mib'] / m['peak_mib']:.2f}x |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0 if all(r["agree"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
