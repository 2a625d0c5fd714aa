"""Run the official lesion-wise evaluators on NIfTI pairs, for the agreement tests and the timing benchmark.

* BraTS 2023 (rachitsaluja/BraTS-2023-Metrics, ``metrics.py``): not on PyPI and not vendored here. Point
  ``BRATS23_METRICS_DIR`` at a checkout (``git clone https://github.com/rachitsaluja/BraTS-2023-Metrics``); it is
  imported from there unchanged. It was written for NumPy 1.24 / pandas 1.3, so two removed aliases are put back
  before import (``np.Inf``/``np.NaN``, ``pandas.DataFrame.append`` as ``pandas.concat``); nothing else is touched.
* BraTS 2025 (PyPI ``BraTS-evaluation``, on ``panoptica``): ``evaluate_single_exam`` with a bundled config.
* panoptica alone: connected components, naive threshold matching (IoU >= 0.5 by default), per region.

Record the numbers the tests compare against (``tests/scoring/data/official_lesion_numbers.json``); each command
updates its part of the file. The BraTS 2023 code runs under the versions it pins (``requirements.txt``: NumPy
1.24, pandas 1.3; under pandas >= 1.5 its ``DataFrame.replace`` on the lesion table raises), e.g.
Python 3.10 with ``pip install -r requirements.txt`` of that repository (numpy 1.24.3, pandas 1.3.4, scipy 1.11.1,
nibabel 5.1.0, cc3d 3.12.1)::

    BRATS23_METRICS_DIR=/path/to/BraTS-2023-Metrics /path/to/b23venv/bin/python benchmarks/official_runners.py \\
        record-brats23 tests/scoring/data/official_lesion_numbers.json
    python benchmarks/official_runners.py record-panoptica tests/scoring/data/official_lesion_numbers.json
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _num(v):
    v = float(v)
    return None if math.isnan(v) else ("inf" if math.isinf(v) else v)


def write_nifti(path, arr, spacing) -> str:
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.asarray(arr, np.uint8), np.diag([*spacing, 1.0])), str(path))
    return str(path)


def brats23_module(directory: str | None = None):
    """The official ``metrics.py`` imported from ``directory`` (default ``$BRATS23_METRICS_DIR``), or None."""
    directory = directory or os.environ.get("BRATS23_METRICS_DIR")
    if not directory or not (Path(directory) / "metrics.py").exists():
        return None
    import pandas as pd

    for name, value in (("Inf", np.inf), ("NaN", np.nan)):  # removed in NumPy 2
        if not hasattr(np, name):
            setattr(np, name, value)
    if not hasattr(pd.DataFrame, "append"):  # removed in pandas 2
        pd.DataFrame.append = lambda self, other, **kw: pd.concat([self, other], **kw)
    sys.path.insert(0, str(directory))  # its own surface_distance package comes first
    try:
        for mod in [m for m in sys.modules if m == "surface_distance" or m.startswith("surface_distance.")]:
            del sys.modules[mod]
        spec = importlib.util.spec_from_file_location("brats23_official_metrics", Path(directory) / "metrics.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(directory))
    return module


def run_brats23(module, pred_path: str, ref_path: str, challenge: str = "BraTS-GLI") -> dict:
    """``{region: {Num_TP, Num_FP, Num_FN, Legacy_Dice, Legacy_HD95, LesionWise_Score_Dice, ...}}``."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = module.get_LesionWiseResults(pred_path, ref_path, challenge)
    out = {}
    for _, row in df.iterrows():
        out[row["Labels"]] = {k: _num(row[k]) for k in ("Num_TP", "Num_FP", "Num_FN", "Legacy_Dice", "Legacy_HD95",
                                                       "LesionWise_Score_Dice", "LesionWise_Score_HD95")}
    return out


def run_brats25(pred_path: str, ref_path: str, config: str = "gli") -> dict:
    """brats-evaluation's per-region result dict (only the keys its leaderboard parser reads)."""
    import warnings

    from brats_evaluation import config_path, evaluate_single_exam
    from panoptica import Panoptica_Evaluator

    evaluator = Panoptica_Evaluator.load_from_config(str(config_path(config)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = evaluate_single_exam(pred_path, ref_path, "case", evaluator)
    if "error" in res:
        raise RuntimeError(res["error"])
    keys = ("tp", "fp", "fn", "rq", "sq_dsc", "sq_hd95", "sq_nsd", "global_bin_dsc", "global_bin_hd95",
            "global_bin_nsd")
    return {region: {k: _num(r[k]) if r.get(k) is not None else None for k in keys}
            for region, r in res.items() if isinstance(r, dict)}


def run_panoptica(pred: np.ndarray, ref: np.ndarray, spacing, regions: dict, metric: str = "iou",
                  threshold: float = 0.5) -> dict:
    """panoptica with connected components and NaiveThresholdMatching (metric >= threshold), per region."""
    import warnings

    from panoptica import (
        ConnectedComponentsInstanceApproximator,
        InputType,
        NaiveThresholdMatching,
        Panoptica_Evaluator,
    )
    from panoptica.metrics import Metric
    from panoptica.utils.label_group import LabelMergeGroup
    from panoptica.utils.segmentation_class import SegmentationClassGroups

    m = Metric.IOU if metric == "iou" else Metric.DSC
    groups = SegmentationClassGroups({name: LabelMergeGroup(list(labs)) for name, labs in regions.items()})
    evaluator = Panoptica_Evaluator(
        expected_input=InputType.SEMANTIC, instance_approximator=ConnectedComponentsInstanceApproximator(),
        instance_matcher=NaiveThresholdMatching(matching_metric=m, matching_threshold=threshold),
        instance_metrics=[Metric.DSC, Metric.IOU], global_metrics=[Metric.DSC], segmentation_class_groups=groups)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = evaluator.evaluate(pred.astype(np.uint8), ref.astype(np.uint8), voxelspacing=tuple(spacing))
    keys = ("tp", "fp", "fn", "rq", "sq", "pq", "sq_dsc", "pq_dsc")
    out = {}
    for name, r in res.items():
        d = r.to_dict()
        out[name] = {k: _num(d[k]) if d.get(k) is not None else None for k in keys}
    return out


GLI_REGIONS = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,), "RC": (4,)}  # panoptica refuses labels in no group


def _cases():
    sys.path.insert(0, str(ROOT / "tests" / "scoring"))
    from _lesion_cases import CASES, load

    return [(name, *load(name)) for name in CASES]


def record(kind: str, out_path: str) -> None:
    """Run one family of official tools on every fixed case and merge its numbers into ``out_path``."""
    path = Path(out_path)
    doc = json.loads(path.read_text()) if path.exists() else {}
    prefix = ("BRATS23_METRICS_DIR=<BraTS-2023-Metrics checkout> <Python 3.10 venv with its requirements.txt>/bin/"
              if kind == "record-brats23" else "")
    doc.setdefault("commands", {})[kind] = f"{prefix}python benchmarks/official_runners.py {kind} {out_path}"
    doc.setdefault("versions", {})[kind] = _versions()
    with tempfile.TemporaryDirectory() as tmp:
        for name, pred, ref, spacing in _cases():
            p = write_nifti(Path(tmp) / f"{name}_pred.nii.gz", pred, spacing)
            r = write_nifti(Path(tmp) / f"{name}_ref.nii.gz", ref, spacing)
            if kind == "record-brats23":
                module = brats23_module()
                if module is None:
                    sys.exit("set BRATS23_METRICS_DIR to a BraTS-2023-Metrics checkout")
                doc.setdefault("brats23", {})[name] = {ch: run_brats23(module, p, r, ch)
                                                       for ch in ("BraTS-GLI", "BraTS-MEN", "BraTS-MET")}
            else:
                for config, key in (("gli", "brats25"), ("mets", "brats25-mets"), ("ped", "brats25-ped")):
                    doc.setdefault(key, {})[name] = run_brats25(p, r, config)
                doc.setdefault("panoptica_iou05", {})[name] = run_panoptica(pred, ref, spacing, GLI_REGIONS)
    path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for d in ("numpy", "scipy", "pandas", "connected-components-3d", "panoptica", "BraTS-evaluation", "nibabel"):
        with contextlib.suppress(PackageNotFoundError):
            out[d] = version(d)
    directory = os.environ.get("BRATS23_METRICS_DIR")
    if os.environ.get("BRATS23_METRICS_COMMIT"):  # a checkout without .git (e.g. a git archive)
        out["BraTS-2023-Metrics"] = os.environ["BRATS23_METRICS_COMMIT"]
    elif directory and (Path(directory) / ".git").exists():
        import subprocess

        out["BraTS-2023-Metrics"] = subprocess.run(["git", "-C", directory, "rev-parse", "HEAD"], capture_output=True,
                                                   text=True).stdout.strip()
    return out


def time_brats23(pred_path: str, ref_path: str) -> None:
    """Print ``{"seconds": s, "result": {...}}`` of one ``get_LesionWiseResults`` call (imports not timed)."""
    import time

    module = brats23_module()
    if module is None:
        sys.exit("set BRATS23_METRICS_DIR to a BraTS-2023-Metrics checkout")
    t0 = time.perf_counter()
    result = run_brats23(module, pred_path, ref_path)
    print(json.dumps({"seconds": time.perf_counter() - t0, "result": result}))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "time-brats23":
        time_brats23(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] in ("record-brats23", "record-panoptica"):
        record(sys.argv[1], sys.argv[2])
    else:
        sys.exit("usage: python benchmarks/official_runners.py record-brats23|record-panoptica OUT.json\n"
                 "       python benchmarks/official_runners.py time-brats23 PRED.nii.gz REF.nii.gz")
