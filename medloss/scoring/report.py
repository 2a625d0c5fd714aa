"""Reports of scored rows: summary statistics, the recipe, atomic CSV/JSON files, a terminal table and a plot.

* CSV: the header is :func:`medloss.scoring.columns`; one row per case x label; then (unless disabled) summary rows
  whose ``case`` is ``[mean]``, ``[std]``, ``[median]``, ``[min]``, ``[max]`` (one per label and statistic; filter
  ``case`` values starting with ``[`` out before aggregating). Missing values (NaN) are empty cells.
* JSON: ``{"rows": [...], "summary": {...}, "recipe": {...}, "errors": [...]}``; NaN is written as ``null``.
* Summary statistics ignore NaN and say how many there were (``n_nan``), so nothing is dropped silently.
* Files are streamed from the rows to a temporary name and moved into place (:func:`medloss.io.atomic_output`); with
  ``outputs=`` (a :class:`medloss.io.OutputSet`) they are staged and moved with the run's other outputs.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import platform
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from medloss.io.outputs import OutputSet, atomic_output
from medloss.scoring.summary import STATS, SummaryAccumulator, as_number

if TYPE_CHECKING:
    from rich.console import Console

    from medloss.scoring.presets import LesionConfig

SURFACE_TEXT = {
    "voxel": "voxel: inner-boundary voxels (6-neighbourhood) at voxel centres, every point weighs 1 "
             "(MONAI 1.6.1 HausdorffDistanceMetric / SurfaceDistanceMetric / SurfaceDiceMetric)",
    "surfel": "surfel: surface elements on the voxel-corner grid weighted by their area "
              "(DeepMind surface-distance)",
}


def summarize(rows: Iterable[dict], n_cases: int | None = None) -> dict:
    """Per-label statistics of every numeric column, NaN-aware, plus empty-mask counts
    (:class:`~medloss.scoring.summary.SummaryAccumulator`)."""
    acc = SummaryAccumulator()
    for r in rows:
        acc.add(r)
    return acc.summary(n_cases)


def _versions(surface: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    dists = ["medloss", "numpy", "scipy", "nibabel", "SimpleITK", "connected-components-3d"]
    if surface == "surfel":
        dists.append("surface-distance")
    for d in dists:
        try:
            out[d] = version(d)
        except PackageNotFoundError:
            out[d] = "not installed"
    return out


def recipe(*, surface: str, tolerance: float, percentile: float, empty: str, worst_distance: str | float,
           labels: Iterable[int] | None, ignore_index: int | None, lesion_cfg: LesionConfig | None = None,
           geometry_tolerance: float | None = None, spacing: dict | None = None,
           regions: Iterable[tuple[str, Iterable[int]]] | None = None) -> dict:
    """Everything needed to reproduce or interpret the numbers."""
    from medloss.scoring.matching import is_unique

    pct = ("linear-interpolation percentile of each direction" if surface == "voxel"
           else "area-weighted percentile of each direction (DeepMind rule)")
    out = {
        "surface": surface,
        "surface_definition": SURFACE_TEXT[surface],
        "distance_backend": "exact Euclidean nearest-point distances (KD-tree) on the union bounding box, mm",
        "tolerance_mm": float(tolerance),
        "hd95": f"max over the two directions of the {percentile:g}th {pct}",
        "hd": "max over both directed surface distances",
        "assd": "pooled mean of both directed surface distances (weighted for surfel)",
        "nsd": f"fraction of surface (count for voxel, area for surfel) within {tolerance:g} mm of the other",
        "volumes": "ml = voxel count x prod(spacing) / 1000",
        "empty_policy": empty,
        "worst_distance": worst_distance,
        "labels": "reference and prediction foreground labels, per case" if labels is None else list(labels),
        "regions": {name: list(labs) for name, labs in regions} if regions else None,
        "ignore_index": ignore_index,
        "geometry_tolerance": geometry_tolerance,
        "versions": _versions(surface),
    }
    if lesion_cfg is not None:
        c = lesion_cfg
        match = ("any voxel of a predicted component inside the (dilated) reference lesion, many-to-many"
                 if not c.one_to_one else
                 f"one-to-one, {c.matching} >= {c.match_threshold:g} "
                 f"({'greedy, unique' if is_unique(c.matching, c.match_threshold) else 'maximum-weight bipartite'})")
        out["lesions"] = {"preset": c.preset, "connectivity": c.connectivity, "reference_dilation": c.dilation,
                          "exclude_volume_mm3": c.exclude_volume_mm3, "matching": c.matching,
                          "threshold": c.match_threshold if c.one_to_one else None, "match": match,
                          "lesion_hd95": bool(c.hd95), "penalty_mm": c.penalty_mm,
                          "lesion_hd95_convention": f"{c.hd95_surface}, {c.hd95_rule} of the directed percentiles"
                          if c.hd95_rule == "max" else f"{c.hd95_surface}, percentile of the pooled distances"}
    if spacing:
        out["spacing_mm"] = spacing
    return out


def _cell(v: object) -> object:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    return v


def _csv_rows(fh: TextIO, rows: Iterable[dict], cols: list[str], summary: dict | None = None) -> None:
    w = csv.writer(fh, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in cols])
    if summary:
        for stat in STATS:
            for lab, entry in summary["per_label"].items():
                metrics = entry["metrics"]
                w.writerow([f"[{stat}]" if c == "case" else lab if c == "label"
                            else _cell(metrics[c][stat]) if c in metrics else "" for c in cols])


def csv_text(rows: Iterable[dict], cols: list[str], summary: dict | None = None) -> str:
    buf = io.StringIO()
    _csv_rows(buf, rows, cols, summary)
    return buf.getvalue()


@contextlib.contextmanager
def _text_output(path: str | os.PathLike, outputs: OutputSet | None) -> Iterator[TextIO]:
    """A text file written to a temporary and moved into place with the run's other outputs (streamed: the rows
    of a large run are never all in memory)."""
    target = atomic_output(path) if outputs is None else outputs.output(path)
    with target as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        yield fh


def write_csv(path: str | os.PathLike, rows: Iterable[dict], cols: list[str], summary: dict | None = None, *,
              outputs: OutputSet | None = None) -> None:
    """Rows (any iterable, written as it is read), then the summary rows (module docstring)."""
    with _text_output(path, outputs) as fh:
        _csv_rows(fh, rows, cols, summary)


INSTANCE_COLUMNS = ["case", "label", "side", "id", "voxels", "volume_ml", "partners", "iou", "dice", "hd95", "excluded"]


def _instance_rows(fh: TextIO, rows: Iterable[dict]) -> None:
    w = csv.writer(fh, lineterminator="\n")
    w.writerow(INSTANCE_COLUMNS)
    for r in rows:
        for inst in r.get("instances") or []:
            cell = {**inst, "case": r["case"], "label": r["label"],
                    "partners": ";".join(str(v) for v in inst["partners"])}
            w.writerow([_cell(cell.get(c)) for c in INSTANCE_COLUMNS])


def instances_csv_text(rows: Iterable[dict]) -> str:
    """One line per reference lesion / predicted component of every row (``partners``: ids joined by ``;``)."""
    buf = io.StringIO()
    _instance_rows(buf, rows)
    return buf.getvalue()


def write_instances_csv(path: str | os.PathLike, rows: Iterable[dict], *, outputs: OutputSet | None = None) -> None:
    with _text_output(path, outputs) as fh:
        _instance_rows(fh, rows)


def _jsonable(o: object) -> Any:
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (float, np.floating)):
        f = float(o)
        return f if math.isfinite(f) else None
    return o


def write_json(path: str | os.PathLike, rows: Iterable[dict], summary: dict, recipe_: dict, errors: list[dict], *,
               outputs: OutputSet | None = None) -> None:
    """``{"rows", "summary", "recipe", "errors"}``; the rows (any iterable) are written one by one as read."""
    with _text_output(path, outputs) as fh:
        fh.write('{"rows": [')
        for i, row in enumerate(rows):
            fh.write(("," if i else "") + "\n " + json.dumps(_jsonable(row), allow_nan=False))
        fh.write("\n],\n")
        for i, (key, value) in enumerate((("summary", summary), ("recipe", recipe_), ("errors", errors))):
            fh.write(f'"{key}": ' + json.dumps(_jsonable(value), indent=1, allow_nan=False) + (",\n" if i < 2 else ""))
        fh.write("\n}\n")


def _fmt(v: object, nd: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.{nd}g}" if abs(v) >= 1000 else f"{v:.{nd}f}"
    return str(v)


TABLE_COLUMNS = ["case", "label", "dice", "hd95", "assd", "nsd", "vol_ref_ml", "vol_pred_ml", "empty"]
LESION_TABLE = ["lesions_ref", "lesions_detected", "lesions_fp", "lesion_f1", "pq"]
SUMMARY_COLUMNS = ["dice", "iou", "hd95", "assd", "nsd", "lesion_f1", "lesion_dice", "pq"]


def print_report(console: Console, rows: list[dict], summary: dict, recipe_: dict, max_rows: int = 40) -> None:
    """Per-row table (when the run has at most ``max_rows`` rows; ``rows`` may be left empty otherwise), per-label
    summary and a line naming the conventions."""
    from rich.table import Table

    cols = TABLE_COLUMNS + ([c for c in LESION_TABLE if rows and c in rows[0]])
    if rows and summary["n_rows"] <= max_rows:
        t = Table(title="medloss score", title_justify="left")
        for c in cols:
            t.add_column(c, justify="left" if c in ("case", "empty") else "right")
        for r in rows:
            t.add_row(*[_fmt(r.get(c)) for c in cols])
        console.print(t)
    elif summary["n_rows"]:
        console.print(f"{summary['n_rows']} rows (table omitted; see --csv / --json).")
    s = Table(title=f"summary over {summary['n_cases']} case(s): mean ± std", title_justify="left")
    present = {c for entry in summary["per_label"].values() for c in entry["metrics"]}
    metric_cols = [c for c in SUMMARY_COLUMNS if c in present]
    s.add_column("label")
    for c in metric_cols:
        s.add_column(c, justify="right")
    s.add_column("n / nan / empty", justify="right")
    for lab, entry in summary["per_label"].items():
        m = entry["metrics"]
        cells = [f"{_fmt(m[c]['mean'])} ± {_fmt(m[c]['std'], 2)}" if c in m and m[c]["mean"] is not None else "-"
                 for c in metric_cols]
        n_nan = m.get("dice", {}).get("n_nan", 0)
        n_empty = sum(v for k, v in entry["empty"].items() if k != "none")
        s.add_row(lab, *cells, f"{entry['n_rows']} / {n_nan} / {n_empty}")
    console.print(s)
    console.print(f"surface convention: {recipe_['surface_definition']}; NSD tolerance {recipe_['tolerance_mm']:g} mm; "
                  f"HD95 = {recipe_['hd95']}; empty policy: {recipe_['empty_policy']} "
                  f"(worst distance: {recipe_['worst_distance']}).", highlight=False)


def write_plot(path: str | os.PathLike, rows: Iterable[dict], *, outputs: OutputSet | None = None) -> None:
    """PNG with, per label, a box plot and the case points (strip) of Dice and of HD95 across cases."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    values: dict = {}  # label -> (dice values, hd95 values); one pass, so ``rows`` may be a stream
    cases = set()
    for r in rows:
        d, h = values.setdefault(r["label"], ([], []))
        d.append(as_number(r.get("dice")))
        h.append(as_number(r.get("hd95")))
        cases.add(r["case"])
    labels = sorted(values, key=lambda v: (str(type(v)), v))
    fig, axes = plt.subplots(1, 2, figsize=(max(6.0, 1.2 * len(labels) + 4), 4.0))
    rng = np.random.default_rng(0)
    for i_key, (ax, key, unit) in enumerate(((axes[0], "dice", ""), (axes[1], "hd95", " (mm)"))):
        data = []
        for lab in labels:
            vals = np.asarray(values[lab][i_key], dtype=np.float64)
            data.append(vals[np.isfinite(vals)])
        ax.boxplot([d if d.size else np.array([np.nan]) for d in data], showfliers=False)
        ax.set_xticks(range(1, len(labels) + 1), [str(lab) for lab in labels])
        for i, d in enumerate(data, start=1):
            ax.plot(i + rng.uniform(-0.12, 0.12, d.size), d, "o", ms=3, alpha=0.6)
        ax.set_xlabel("label")
        ax.set_ylabel(key + unit)
        ax.set_title(f"{key} across {len(cases)} case(s)")
    fig.tight_layout()
    try:
        target = atomic_output(path, suffix=".png") if outputs is None else outputs.output(path, suffix=".png")
        with target as tmp:
            fig.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(fig)
