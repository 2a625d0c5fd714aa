"""The site's figures, drawn from data kept in the repository (run by ``hooks/site.py`` at every build).

Each function writes one PNG and returns nothing; the numbers come from the benchmark logs or from medloss itself,
so a figure changes when its data does.
"""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BENCH_LOG = ROOT / "benchmarks" / "results" / "native_default.log"

# one benchmark row: "dice@2x2x96   candidate:medloss.losses.DiceLoss   ok   8.8 ... 0.40 0.34"
_ROW = re.compile(r"^(\w+)@(\S+)\s+candidate:\S+\s+(ok|NO)\s.*\s(\d+\.\d+)\s+(\d+\.\d+)\s*(\[.*\])?$")


def benchmark_ratios(log: Path = BENCH_LOG) -> list[tuple[str, float, float]]:
    """(case, time / MONAI, memory / MONAI) of every medloss row of a ``run_loss_bench.py`` log."""
    rows = []
    for line in log.read_text(encoding="utf-8").splitlines():
        m = _ROW.match(line)
        if m:
            rows.append((f"{m.group(1)} {m.group(2)}", float(m.group(4)), float(m.group(5))))
    if not rows:
        raise ValueError(f"{log}: no benchmark rows found; was the log format of run_loss_bench.py changed?")
    return rows


def benchmark_plot(out: Path) -> None:
    """Bars of medloss's forward+backward time and peak extra memory as fractions of MONAI's, per case."""
    rows = benchmark_ratios()
    names = [r[0] for r in rows]
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(rows) + 1.4))
    ax.barh(y - 0.2, [r[1] for r in rows], 0.4, label="time / MONAI")
    ax.barh(y + 0.2, [r[2] for r in rows], 0.4, label="peak extra memory / MONAI")
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("fraction of MONAI 1.6.1 (below 1: medloss is faster / smaller)")
    ax.set_title(f"Softmax losses, forward + backward on CPU ({BENCH_LOG.relative_to(ROOT)})", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def _disc(shape: tuple[int, int], centre: tuple[float, float], radius: float) -> np.ndarray:
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def lesion_cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Two 2-D cases as (reference, prediction) masks: two lesions merged into one blob, one lesion split in two."""
    shape = (40, 60)
    ref_merged = _disc(shape, (20, 21), 6) | _disc(shape, (20, 39), 6)
    pred_merged = ref_merged | (np.abs(np.arange(60) - 30) <= 9)[None, :] & (np.abs(np.arange(40) - 20) <= 3)[:, None]
    ref_split = _disc(shape, (20, 30), 11)
    pred_split = ref_split & (np.abs(np.arange(60) - 30) >= 2)[None, :]
    return {"merged": (ref_merged, pred_merged), "split": (ref_split, pred_split)}


def lesion_counts(ref: np.ndarray, pred: np.ndarray, matching: str) -> dict[str, float]:
    """medloss's lesion-wise counts of a 2-D case under one matching rule (scored as a one-slice volume)."""
    from medloss.scoring import lesion_config, score_arrays

    row = score_arrays(pred[None].astype(np.uint8), ref[None].astype(np.uint8), (1.0, 1.0, 1.0), labels=[1],
                       lesions=lesion_config(True, matching=matching), workers=1)[0]
    return {k: row[k] for k in ("lesions_ref", "lesions_detected", "lesions_fp", "lesion_f1")}


def lesion_plot(out: Path) -> None:
    """Reference lesions (outlined) over predicted components (filled), with the counts of both matching rules."""
    cases = lesion_cases()
    fig, axes = plt.subplots(1, len(cases), figsize=(9, 3.6))
    for ax, (name, (ref, pred)) in zip(axes, cases.items(), strict=True):
        ax.imshow(np.where(pred, 1.0, np.nan), cmap="autumn", vmin=0, vmax=2, interpolation="nearest")
        ax.contour(ref.astype(float), levels=[0.5], colors="tab:blue", linewidths=2)
        lines = []
        for rule in ("overlap", "iou"):
            c = lesion_counts(ref, pred, rule)
            lines.append(f"{rule}: {c['lesions_detected']:.0f}/{c['lesions_ref']:.0f} found, "
                         f"{c['lesions_fp']:.0f} FP, F1 {c['lesion_f1']:.2f}")
        ax.set_title(f"{name}\n" + "\n".join(lines), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("reference lesions: blue outline; predicted components: filled", fontsize=9, y=0.01, va="bottom")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(out, dpi=100)
    plt.close(fig)
