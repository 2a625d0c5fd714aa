#!/usr/bin/env python
"""Every medloss loss against its MONAI counterpart (Lovász against the reference), in one interleaved,
parity-gated run of the shared harness ``../shared/tools/loss_bench.py`` (not copied here: it is the benchmark
performance issues are judged by).

    python benchmarks/run_loss_bench.py                         # 3 shapes, default allocator
    python benchmarks/run_loss_bench.py --allocator jemalloc-cached --shapes 2x4x128
    python benchmarks/run_loss_bench.py --losses dice,gdice --json out.json

The harness checks value and gradient agreement with the baseline (rtol 1e-4) before timing, times A/B
interleaved, and measures peak extra memory in fresh subprocesses; it prints time and memory ratios. Losses whose
definition differs from MONAI on purpose (DiceFocal: softmax focal here, sigmoid focal in MONAI) are reported as
disagreeing and timed only with ``--time-anyway``.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
HARNESS = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "tools", "loss_bench.py"))
IMPLS = {
    "dice": "medloss.losses.DiceLoss",
    "gdice": "medloss.losses.GeneralizedDiceLoss",
    "tversky": "medloss.losses.TverskyLoss",
    "focal": "medloss.losses.FocalLoss",
    "dicece": "medloss.losses.DiceCELoss",
    "dicefocal": "medloss.losses.DiceFocalLoss",
    "lovasz": "medloss.losses.LovaszSoftmaxLoss",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--losses", default="dice,gdice,tversky,focal,dicece,dicefocal,lovasz")
    parser.add_argument("--harness", default=HARNESS, help="path of loss_bench.py (default: ../shared/tools/)")
    args, rest = parser.parse_known_args(argv)
    if not os.path.exists(args.harness):
        print(f"run_loss_bench: {args.harness} not found; pass --harness PATH", file=sys.stderr)
        return 2
    keys = [k for k in args.losses.split(",") if k]
    unknown = sorted(set(keys) - set(IMPLS))
    if unknown:
        print(f"run_loss_bench: unknown loss key(s) {unknown}; known: {sorted(IMPLS)}", file=sys.stderr)
        return 2
    # the Lovász baseline (the authors' reference) takes no kwargs, and LovaszSoftmaxLoss needs its activation and
    # label-map options, which the harness passes to every candidate of a run: so Lovász runs on its own
    runs = [k for k in keys if k != "lovasz"], [k for k in keys if k == "lovasz"]
    status = 0
    for group, extra in zip(runs, ([], ["--impl-kwargs", '{"softmax": true, "to_onehot_y": true}']), strict=True):
        if not group:
            continue
        cmd = [sys.executable, args.harness, "--losses", ",".join(group), "--kornia", "off"]
        for key in group:
            cmd += ["--impl", f"{IMPLS[key]}={key}"]
        status = subprocess.call(cmd + extra + rest) or status
    return status

if __name__ == "__main__":
    raise SystemExit(main())
