"""Which loss for small lesions? Train the same small 3-D UNet with every registered loss and score it.

One command, rerunnable anywhere (CPU is fine; ``--device cuda`` on a GPU)::

    python benchmarks/loss_study.py --out study/                 # every registered loss, 3 seeds
    python benchmarks/loss_study.py --losses DiceLoss,DiceCELoss --seeds 5 --steps 400 --out study/

Design (what makes the comparison fair and what it can and cannot say):

* Data: the synthetic lesion generator (:func:`medloss.data.synthetic.make_lesion_volume`), binary lesion masks,
  radii drawn log-uniformly in ``--radius`` (default 1–6 voxels, so lesions of 1–3 voxel radius are common) and
  ``--lesions`` (default 0–5) lesions per case, so about one case in six is lesion-free. Training and test cases
  come from disjoint seeds; the data are the same for every loss and seed.
* Model and schedule: MONAI's 3-D ``UNet`` (channels 8/16/32, two poolings, one residual unit), Adam, a fixed
  number of steps and batch size; only the loss (and its output channels: 1 for sigmoid-only losses, 2 otherwise)
  changes. ``--seeds`` repeats the training with other initialisations and batch orders.
* Scores (``medloss.scoring.score_arrays``, voxel surface convention, 1 mm spacing): Dice, HD95 and NSD (1 mm) of the
  lesion label per test case, with the scorer's empty-mask policy (``worst``: a lesion-free case predicted empty
  scores Dice 1 / HD95 0, any false positive there scores Dice 0 / HD95 = the volume diagonal), and lesion-wise
  detection split by lesion size (26-connected components matched one-to-one at Dice > 0, so a blob merging
  several lesions detects one of them): a reference lesion counts in the bucket of its equivalent radius
  ``(3V / 4π)^(1/3)``, a false-positive component in the bucket of its own size; per bucket
  F1 = 2TP / (2TP + FP + FN) over all test cases.
* Uncertainty: per case, the metric averaged over seeds; 95 % percentile bootstrap interval of the mean over
  test cases (F1: TP/FP/FN summed over resampled cases). Seeds are averaged, not resampled, so the interval is
  about which cases were drawn, not about training noise (the per-seed rows are in ``runs.csv``).

Outputs in ``--out``: ``summary.csv`` (loss, metric, mean, ci_low, ci_high), ``runs.csv`` (loss, seed, case,
per-case metrics and lesion counts), ``study.json`` (arguments, versions, wall time) and ``study.png``.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SOFTMAX = {"softmax": True, "to_onehot_y": True}
REGION = {**SOFTMAX, "include_background": False}


@dataclass(frozen=True)
class Setup:
    """How a loss is trained on lesion label maps: constructor options, output channels, target layout.

    ``target``: ``"labels"`` = (B, 1, *S) int64 class indices; ``"binary"`` = the same mask as float (BCE-style).
    ``with_dice``: train ``DiceLoss + with_dice * loss`` (the boundary and Hausdorff-DT papers add a region loss:
    alone they reach their minimum by predicting no lesion).
    """

    kwargs: dict
    channels: int = 2
    target: str = "labels"
    with_dice: float = 0.0


#: one entry per registered loss (tests/losses/test_convergence.py checks that none is missing and trains each briefly)
SETUPS: dict[str, Setup] = {
    "DiceLoss": Setup(REGION),
    "JaccardLoss": Setup(REGION),
    "TverskyLoss": Setup({**REGION, "alpha": 0.3, "beta": 0.7}),
    "FocalTverskyLoss": Setup(REGION),
    "GeneralizedDiceLoss": Setup(SOFTMAX),
    "CrossEntropyLoss": Setup({}),
    "BCELoss": Setup({}, channels=1, target="binary"),
    "FocalLoss": Setup({"to_onehot_y": True, "use_softmax": True}),
    "DiceCELoss": Setup(SOFTMAX),
    "DiceFocalLoss": Setup(SOFTMAX),
    "GeneralizedDiceFocalLoss": Setup(SOFTMAX),
    "BCEDiceLoss": Setup({}, channels=1, target="binary"),
    "ExpLogLoss": Setup(SOFTMAX),
    "AnatomyNetLoss": Setup(SOFTMAX),
    "LovaszSoftmaxLoss": Setup(SOFTMAX),
    "LovaszHingeLoss": Setup({}, channels=1),
    "TopKLoss": Setup({"k": 10.0}),
    "DiceTopKLoss": Setup(SOFTMAX),
    "UnifiedFocalLoss": Setup(SOFTMAX),
    "AsymmetricUnifiedFocalLoss": Setup(SOFTMAX),
    "BoundaryLoss": Setup(REGION, with_dice=0.1),
    "HausdorffDTLoss": Setup(SOFTMAX, with_dice=0.1),
    "SoftclDiceLoss": Setup(SOFTMAX),
    "SoftDiceclDiceLoss": Setup(SOFTMAX),
    "SkeletonRecallLoss": Setup(SOFTMAX),
    "BlobLoss": Setup(SOFTMAX),
    # MONAI's remaining segmentation losses; MaskedDiceLoss gets no mask here, so it trains as DiceLoss
    "MaskedDiceLoss": Setup(REGION),
    "MCCLoss": Setup(REGION),
    "GeneralizedWassersteinDiceLoss": Setup({"dist_matrix": [[0.0, 1.0], [1.0, 0.0]]}),
    "NACLLoss": Setup({"classes": 2, "dim": 3}),
    "LogHausdorffDTLoss": Setup(SOFTMAX, with_dice=0.1),
}

#: lesion-size buckets by equivalent radius in voxels (upper bounds; the last is open)
BUCKETS = (("r<2", 2.0), ("2<=r<4", 4.0), ("r>=4", math.inf))
METRICS = ("dice", "hd95", "nsd")


def make_loss(name: str, **overrides):
    """The loss of ``name`` built with its study options (see :data:`SETUPS`), ``overrides`` on top."""
    from medloss import registry

    setup = SETUPS[name]
    loss = registry.load(name)(**{**setup.kwargs, **overrides})
    if not setup.with_dice:
        return loss
    return _WithDice(loss, setup.with_dice)


class _WithDice:
    """DiceLoss (softmax, label maps) + weight * loss, as the boundary and Hausdorff-DT losses are trained."""

    def __init__(self, loss, weight: float):
        from medloss.losses import DiceLoss

        self.dice, self.loss, self.weight = DiceLoss(**SOFTMAX), loss, weight

    def to(self, device):
        self.loss = self.loss.to(device)
        return self

    def __call__(self, x, y):
        return self.dice(x, y) + self.weight * self.loss(x, y)


# ----------------------------------------------------------------------------------------------------- data


def make_cases(count: int, size: int, lesions: tuple[int, int], radius: tuple[float, float], seed: int):
    """``count`` synthetic cases as (image (N, 1, *S) float32 z-scored per case, label (N, *S) uint8)."""
    from medloss.data.synthetic import make_lesion_volume

    images, labels = [], []
    for i in range(count):
        case = make_lesion_volume(size, num_lesions=lesions, radius_range=radius, noise=0.05,
                                  seed=np.random.default_rng([seed, i]))
        img = case.image.astype(np.float32)
        images.append((img - img.mean()) / (img.std() + 1e-6))
        labels.append(case.label)
    return np.stack(images), np.stack(labels)


# ------------------------------------------------------------------------------------------------- training


def train_and_predict(name: str, seed: int, train, test, steps: int, batch: int, lr: float, device: str):
    """Train a fresh UNet with loss ``name``; return the test predictions (N, *S) uint8 and the last losses."""
    import torch
    from monai.networks.nets import UNet

    setup = SETUPS[name]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = UNet(spatial_dims=3, in_channels=1, out_channels=setup.channels, channels=(8, 16, 32),
               strides=(2, 2), num_res_units=1).to(device)
    loss_fn = make_loss(name).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    images, labels = torch.from_numpy(train[0]), torch.from_numpy(train[1].astype(np.int64))
    history = []
    for _ in range(steps):
        idx = torch.from_numpy(rng.choice(len(images), size=min(batch, len(images)), replace=False))
        x = images[idx].to(device)
        y = labels[idx].unsqueeze(1).to(device)
        flip = [d + 2 for d in range(3) if rng.random() < 0.5]  # random flips: the same for image and label
        if flip:
            x, y = x.flip(flip), y.flip(flip)
        target = y.float() if setup.target == "binary" else y
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), target)
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    net.eval()
    preds = []
    with torch.no_grad():
        for x in torch.from_numpy(test[0]).split(batch):
            out = net(x.to(device))
            pred = out.argmax(1) if setup.channels > 1 else (out[:, 0] > 0)
            preds.append(pred.to(torch.uint8).cpu().numpy())
    return np.concatenate(preds), history


# -------------------------------------------------------------------------------------------------- scoring


def _bucket(volume_vox: np.ndarray) -> np.ndarray:
    radius = np.cbrt(3.0 * volume_vox / (4.0 * math.pi))
    return np.searchsorted([b[1] for b in BUCKETS[:-1]], radius, side="right")


#: lesion detection rule of the study: 26-connected components matched one-to-one at Dice > 0 (maximum-weight
#: bipartite matching, as the BraTS 2025 evaluator): a blob that merges several lesions detects only one of them
LESION_RULE = {"connectivity": 26, "matching": "dice", "threshold": 1e-6}


def bucket_counts(pred: np.ndarray, ref: np.ndarray) -> dict[str, int]:
    """Per size bucket: TP (matched reference lesions), FN (unmatched ones), FP (unmatched predicted components),
    from the scorer's per-instance rows (``medloss score --lesions --instances-csv``) under :data:`LESION_RULE`."""
    from medloss.scoring.lesion import lesion_scores
    from medloss.scoring.presets import LesionConfig

    rows = lesion_scores(ref, pred, (1.0, 1.0, 1.0), LesionConfig(**LESION_RULE), instances=True)["instances"]
    out = {f"{k}_{bucket}": 0 for bucket, _ in BUCKETS for k in ("tp", "fn", "fp")}
    for row in rows:
        bucket = BUCKETS[int(_bucket(np.array([row["voxels"]]))[0])][0]
        if row["side"] == "ref":
            out[f"{'tp' if row['partners'] else 'fn'}_{bucket}"] += 1
        elif not row["partners"]:
            out[f"fp_{bucket}"] += 1
    return out


def score_case(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    from medloss.scoring import score_arrays

    row = score_arrays(pred, ref, (1.0, 1.0, 1.0), labels=[1], tolerance=1.0, workers=1)[0]
    return {**{m: float(row[m]) for m in METRICS}, **bucket_counts(pred == 1, ref == 1)}


def f1(tp, fp, fn) -> float:
    den = 2 * tp + fp + fn
    return 2 * tp / den if den else math.nan


def summarize(rows: list[dict], n_boot: int, seed: int = 0) -> list[dict]:
    """Mean and 95 % bootstrap interval over test cases (seeds averaged per case) of each metric, per loss."""
    rng = np.random.default_rng(seed)
    out = []
    for loss in dict.fromkeys(r["loss"] for r in rows):
        mine = [r for r in rows if r["loss"] == loss]
        cases = sorted({r["case"] for r in mine})
        per_case = {c: [r for r in mine if r["case"] == c] for c in cases}
        draws = rng.integers(0, len(cases), size=(n_boot, len(cases)))
        for metric in METRICS:
            values = np.array([np.mean([r[metric] for r in per_case[c]]) for c in cases])
            boot = values[draws].mean(axis=1)
            out.append(_summary_row(loss, metric, values.mean(), boot))
        for bucket, _ in BUCKETS:
            counts = np.array([[sum(r[f"{k}_{bucket}"] for r in per_case[c]) for k in ("tp", "fp", "fn")]
                               for c in cases], dtype=np.float64)
            total = counts.sum(0)
            boot_tot = counts[draws].sum(axis=1)
            boot = np.array([f1(*t) for t in boot_tot])
            row = _summary_row(loss, f"lesion_f1[{bucket}]", f1(*total), boot)
            row["n_lesions"] = int(total[0] + total[2]) // max(1, len(mine) // len(cases))
            out.append(row)
    return out


def _summary_row(loss, metric, mean, boot) -> dict:
    boot = boot[np.isfinite(boot)]
    lo, hi = (np.percentile(boot, [2.5, 97.5]) if boot.size else (math.nan, math.nan))
    return {"loss": loss, "metric": metric, "mean": float(mean), "ci_low": float(lo), "ci_high": float(hi)}


# ---------------------------------------------------------------------------------------------------- output


def write_csv(path: Path, rows: list[dict]) -> None:
    fields = list(dict.fromkeys(k for r in rows for k in r))
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def plot(summary: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(dict.fromkeys(r["metric"] for r in summary))
    losses = list(dict.fromkeys(r["loss"] for r in summary))
    ncol = 3
    nrow = -(-len(metrics) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, nrow * (0.3 * len(losses) + 1.2)), sharey=True,
                             squeeze=False)
    for ax in axes.flat[len(metrics):]:
        ax.set_visible(False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        rows = {r["loss"]: r for r in summary if r["metric"] == metric}
        y = np.arange(len(losses))
        mean = np.array([rows[n]["mean"] for n in losses])
        err = np.array([[rows[n]["mean"] - rows[n]["ci_low"], rows[n]["ci_high"] - rows[n]["mean"]] for n in losses]).T
        ax.errorbar(mean, y, xerr=np.nan_to_num(err), fmt="o", ms=4, capsize=2)
        count = rows[losses[0]].get("n_lesions")
        note = " (mm, lower is better)" if metric == "hd95" else (f", {count} lesions" if count is not None else "")
        ax.set_title(metric + note, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_yticks(np.arange(len(losses)), losses, fontsize=8)
    axes[0, 0].invert_yaxis()
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def markdown_table(summary: list[dict]) -> str:
    metrics = list(dict.fromkeys(r["metric"] for r in summary))
    head = "| loss | " + " | ".join(metrics) + " |\n|---|" + "---|" * len(metrics) + "\n"
    lines = []
    for loss in dict.fromkeys(r["loss"] for r in summary):
        cells = {r["metric"]: r for r in summary if r["loss"] == loss}
        lines.append(f"| {loss} | " + " | ".join(
            f"{cells[m]['mean']:.3g} [{cells[m]['ci_low']:.3g}, {cells[m]['ci_high']:.3g}]" for m in metrics) + " |")
    return head + "\n".join(lines)


# ------------------------------------------------------------------------------------------------------ main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("loss_study"), help="output folder (default ./loss_study)")
    p.add_argument("--losses", default="all", help="comma-separated registered loss names, or 'all'")
    p.add_argument("--seeds", type=int, default=3, help="training seeds per loss (default 3)")
    p.add_argument("--steps", type=int, default=300, help="optimiser steps per run (default 300)")
    p.add_argument("--batch", type=int, default=4, help="batch size (default 4)")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 3e-3)")
    p.add_argument("--size", type=int, default=32, help="volume side in voxels (default 32)")
    p.add_argument("--train-cases", type=int, default=24)
    p.add_argument("--test-cases", type=int, default=24)
    p.add_argument("--lesions", default="0,5", help="min,max lesions per case (default 0,5)")
    p.add_argument("--radius", default="1,6", help="min,max lesion radius in voxels (default 1,6)")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. in logs)")
    p.add_argument("--resume", action="store_true",
                   help="keep the runs already in OUT/runs.csv made with the same data/training arguments")
    return p.parse_args(argv)


def _data_key(args) -> dict:
    """The arguments that define the data and the training: runs made with other values cannot be pooled."""
    keys = ("steps", "batch", "lr", "size", "train_cases", "test_cases", "lesions", "radius", "device")
    return {k: str(getattr(args, k)) for k in keys}


def previous_runs(args) -> list[dict]:
    """Rows of an earlier study in ``args.out`` with the same data/training arguments (else nothing)."""
    meta_path, runs_path = args.out / "study.json", args.out / "runs.csv"
    if not runs_path.exists():
        return []
    if meta_path.exists() and json.loads(meta_path.read_text()).get("data") != _data_key(args):
        print("loss_study: --resume ignores the earlier runs (other data/training arguments)", file=sys.stderr)
        return []
    with open(runs_path, newline="") as fh:
        return [{k: (v if k == "loss" else float(v)) for k, v in r.items()} for r in csv.DictReader(fh)]


def _pair(text: str, cast):
    a, b = (cast(v) for v in text.split(","))
    return a, b


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from medloss import registry

    if args.threads:
        torch.set_num_threads(args.threads)
    names = list(SETUPS) if args.losses == "all" else [registry.get(n).name for n in args.losses.split(",")]
    unknown = [n for n in names if n not in SETUPS]
    if unknown:
        print(f"loss_study: no study setup for {unknown}; add them to SETUPS in {__file__}", file=sys.stderr)
        return 2
    lesions, radius = _pair(args.lesions, int), _pair(args.radius, float)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = previous_runs(args) if args.resume else []
    (args.out / "study.json").write_text(json.dumps({"data": _data_key(args)}) + "\n")  # what runs.csv was made with
    train = make_cases(args.train_cases, args.size, lesions, radius, seed=1000)
    test = make_cases(args.test_cases, args.size, lesions, radius, seed=2000)
    done = {(r["loss"], int(r["seed"])) for r in rows}
    rows = [r for r in rows if r["loss"] in names and int(r["seed"]) < args.seeds]
    runs = [(n, s) for n in names for s in range(args.seeds) if (n, s) not in done]

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, disable=args.no_progress, transient=False) as progress:
        task = progress.add_task("loss study", total=len(runs))
        runs_file = args.out / "runs.csv"
        for name, seed in runs:
            progress.update(task, description=f"{name} seed {seed}")
            t0 = time.perf_counter()
            preds, history = train_and_predict(name, seed, train, test, args.steps, args.batch, args.lr, args.device)
            train_s = time.perf_counter() - t0
            for case, (pred, ref) in enumerate(zip(preds, test[1], strict=True)):
                rows.append({"loss": name, "seed": seed, "case": case, "has_lesion": int(ref.any()),
                             **score_case(pred, ref), "final_loss": float(np.mean(history[-10:])),
                             "train_s": round(train_s, 2)})
            write_csv(runs_file, rows)  # after every run, so an interrupted study can --resume
            progress.advance(task)
    summary = summarize(rows, args.bootstrap)
    wall = time.perf_counter() - start
    write_csv(args.out / "runs.csv", rows)
    write_csv(args.out / "summary.csv", summary)
    plot(summary, args.out / "study.png")
    meta = {"args": {k: str(v) for k, v in vars(args).items()}, "data": _data_key(args), "wall_s": round(wall, 1),
            "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
            "threads": torch.get_num_threads(), "lesion_free_test_cases": int(sum(1 - ref.any() for ref in test[1]))}
    (args.out / "study.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(markdown_table(summary))
    print(f"\n{len(runs)} new runs in {wall:.0f} s; wrote {args.out}/summary.csv, runs.csv, study.json, study.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
