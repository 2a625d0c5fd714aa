#!/usr/bin/env python
"""MONAI's remaining segmentation losses (MCC, Generalized Wasserstein Dice, Masked Dice, NACL) against medloss's,
in one interleaved, parity-gated run built on the shared harness ``../shared/tools/loss_bench.py`` (its inputs,
agreement check, interleaved timing and fresh-subprocess memory measurement).

    python benchmarks/monai_names_bench.py                        # 2x4x128, all four
    python benchmarks/monai_names_bench.py --shapes 2x4x64 --losses mcc,gwdl --repeats 5

Per loss: medloss/MONAI median time of one forward+backward, and peak extra memory of one forward+backward as a
multiple of the logits (RSS high-water mark in a fresh process, the harness's method).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
HARNESS = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "tools", "loss_bench.py"))
CLASSES = 4
# distances between 4 BraTS-like classes (background, necrosis, edema, enhancing): tumour parts are close
DIST = [[0.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.6, 0.5], [1.0, 0.6, 0.0, 0.7], [1.0, 0.5, 0.7, 0.0]]


def _pair(name: str):
    """(medloss loss, MONAI loss) for one key; both take (logits, label map)."""
    import monai.losses as M
    import numpy as np

    import medloss.losses as L

    if name == "mcc":
        kw = dict(softmax=True, to_onehot_y=True)
        return L.MCCLoss(**kw), M.MCCLoss(**kw)
    if name == "gwdl":
        return L.GeneralizedWassersteinDiceLoss(np.array(DIST)), M.GeneralizedWassersteinDiceLoss(np.array(DIST))
    if name == "masked":
        kw = dict(softmax=True, to_onehot_y=True)
        ours, theirs = L.MaskedDiceLoss(**kw), M.MaskedDiceLoss(**kw)
        # a fixed mask over the front half of the volume, passed by a wrapper so both see (x, y) like the harness
        return _Masked(ours), _Masked(theirs)
    if name == "nacl":
        return L.NACLLoss(CLASSES, 3), _NACLMonai(M.NACLLoss(CLASSES, 3))
    raise SystemExit(f"monai_names_bench: unknown loss {name!r}")


class _Masked:
    def __init__(self, loss):
        self.loss = loss

    def __call__(self, x, y):
        import torch

        mask = torch.zeros_like(y, dtype=x.dtype)
        mask[..., : y.shape[-1] // 2] = 1
        return self.loss(x, y, mask)


class _NACLMonai:
    """MONAI's NACL takes (B, *S) labels."""

    def __init__(self, loss):
        self.loss = loss

    def __call__(self, x, y):
        return self.loss(x, y[:, 0])


# instances the harness's memory worker resolves by "path.py:NAME" (it imports this file)
def __getattr__(attr: str):
    key, _, side = attr.partition("__")
    ours, theirs = _pair(key)
    return ours if side == "medloss" else theirs


def _harness(path: str):
    spec = importlib.util.spec_from_file_location("loss_bench", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["loss_bench"] = mod
    spec.loader.exec_module(mod)
    return mod


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--losses", default="mcc,gwdl,masked,nacl")
    parser.add_argument("--shapes", default="2x4x128", help="BxCxS (cubic S), comma-separated; C must be 4")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--harness", default=HARNESS)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if not os.path.exists(args.harness):
        print(f"monai_names_bench: {args.harness} not found; pass --harness PATH", file=sys.stderr)
        return 2
    bench = _harness(args.harness)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    for spec in args.shapes.split(","):
        b, c, s = (int(v) for v in spec.split("x"))
        if c != CLASSES:
            raise SystemExit("monai_names_bench: the distance matrix and NACL are set up for C = 4")
        shape = (b, c, s, s, s)
        x, y = bench.make_inputs(shape)
        logits_mib = x.numel() * x.element_size() / 2**20
        for key in args.losses.split(","):
            ours, theirs = _pair(key)
            agree = bench.agreement(theirs, ours, x, y)
            times = bench.time_interleaved({"medloss": ours, "monai": theirs}, x, y, args.warmup, args.repeats)
            row = {"loss": key, "shape": spec, "agree": agree["ok"],
                   "medloss_ms": bench.summarize(times["medloss"])["median_ms"],
                   "monai_ms": bench.summarize(times["monai"])["median_ms"]}
            row["time_ratio"] = row["medloss_ms"] / row["monai_ms"]
            if not args.no_memory:
                mem_args = argparse.Namespace(seed=0, label_dtype="int64", memory_format="contiguous",
                                              threads=args.threads or torch.get_num_threads(), no_profiler=True,
                                              mem_timeout=900)
                for side in ("medloss", "monai"):
                    out = bench.measure_memory(f"{os.path.abspath(__file__)}:{key}__{side}", {}, shape, mem_args)
                    row[f"{side}_extra_x_logits"] = out.get("peak_extra_rss_mib", float("nan")) / logits_mib
            results.append(row)
            mem = "" if args.no_memory else (f"  memory {row['medloss_extra_x_logits']:.2f}x vs "
                                             f"{row['monai_extra_x_logits']:.2f}x logits")
            print(f"{key:7s} {spec:10s} agree={row['agree']!s:5s} {row['medloss_ms']:9.1f} ms vs "
                  f"{row['monai_ms']:9.1f} ms  time {row['time_ratio']:.2f}x{mem}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0 if all(r["agree"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
