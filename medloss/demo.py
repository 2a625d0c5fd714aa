"""The ``medloss demo`` pipeline: synthetic lesions → short bundle training → inference → ``medloss score``.

:func:`run_demo` does, in one process and with no download:

1. writes a small seeded synthetic lesion set (:func:`medloss.data.make_lesion_dataset`) into ``<out>/data``;
2. trains the ``tversky_lesion`` bundle (``configs/train.json``, Focal-Tversky loss) for a short CPU schedule,
   saving ``<out>/models/model.pt`` (best validation Dice), ``<out>/metrics.csv`` and ``<out>/training_curves.png``;
3. runs the bundle's ``configs/inference.json`` on the validation cases, writing ``<out>/predictions/*_seg.nii.gz``
   with each input's geometry;
4. scores the predictions against the reference labels with ``medloss score`` (``<out>/scores.csv`` and
   ``<out>/scores.json``).

The CLI command in :mod:`medloss.cli.demo` wraps it. Defaults take well under two minutes on two CPU cores
(about 30 s of CPU time; 33 s wall with one thread on a shared 2-core machine).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medloss.errors import InvalidOptionError, MedlossError

__all__ = ["DemoResult", "DEMO_DEFAULTS", "find_bundle", "run_demo"]

#: default demo schedule: 16 cases of 48³ (12 train, 4 validate), 20 epochs at lr 1e-2. Measured: about 30 s of
#: CPU time for the whole demo (one thread), best validation Dice 0.80.
DEMO_DEFAULTS: dict[str, Any] = {"epochs": 20, "num_samples": 16, "size": 48, "roi_size": 32, "seed": 0,
                                 "learning_rate": 0.01}


@dataclass
class DemoResult:
    """Where the demo put its outputs, and what it measured."""

    output_dir: Path
    bundle_dir: Path
    checkpoint: Path
    metrics_csv: Path
    plot: Path
    predictions: list[Path]
    scores_csv: Path
    scores_json: Path
    best_val_dice: float
    mean_dice: float
    seconds: dict[str, float] = field(default_factory=dict)


def find_bundle(name: str = "tversky_lesion") -> Path:
    """Folder of a shipped bundle: ``$MEDLOSS_BUNDLES/<name>``, else ``bundles/<name>`` of the source tree.

    Raises:
        InvalidOptionError: if no such bundle folder with ``configs/train.json`` exists.
    """
    import medloss

    candidates = []
    if os.environ.get("MEDLOSS_BUNDLES"):
        candidates.append(Path(os.environ["MEDLOSS_BUNDLES"]) / name)
    candidates.append(Path(medloss.__file__).resolve().parents[1] / "bundles" / name)
    candidates.append(Path.cwd() / "bundles" / name)
    for folder in candidates:
        if (folder / "configs" / "train.json").is_file():
            return folder
    raise InvalidOptionError(
        f"bundle {name!r} not found (looked in {', '.join(str(c) for c in candidates)}). Install medloss from a "
        "source checkout (`pip install -e .`) or set MEDLOSS_BUNDLES to the folder that holds the bundles."
    )


#: loggers that MONAI and ignite write INFO lines to during a bundle run (silenced unless --verbose)
_NOISY_LOGGERS = ("ignite", "monai.handlers.StatsHandler", "monai.bundle.workflows", "monai.bundle.scripts")


@contextlib.contextmanager
def _quiet_logs(quiet: bool) -> Iterator[None]:
    """Raise the noisy loggers to WARNING/ERROR for the duration (restored afterwards)."""
    import monai.bundle  # noqa: F401  (their loggers are (re)configured at import: import them first)
    import monai.handlers  # noqa: F401

    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS] if quiet else []
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR if lg.name.startswith("monai.bundle") else logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _medloss_cause(err: BaseException) -> MedlossError | None:
    """The first medloss error in the chain of ``err`` (MONAI wraps config errors in RuntimeError)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, MedlossError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _workflow(bundle: Path, configs: Sequence[str], workflow_type: str, overrides: dict[str, Any]) -> Any:
    from monai.bundle import ConfigWorkflow

    files = [str(bundle / "configs" / c) for c in configs]
    return ConfigWorkflow(
        config_file=files if len(files) > 1 else files[0],
        meta_file=str(bundle / "configs" / "metadata.json"),
        logging_file=False,
        workflow_type=workflow_type,
        **overrides,
    )


def _run_workflow(wf: Any, before_run: Callable[[Any], None] | None = None) -> None:
    try:
        wf.initialize()
        if before_run is not None:
            before_run(wf)
        wf.run()
        wf.finalize()
    except Exception as err:
        cause = _medloss_cause(err)
        if cause is not None:
            raise cause from err
        raise


def run_demo(
    output_dir: str | Path = "medloss_demo_output",
    *,
    epochs: int = DEMO_DEFAULTS["epochs"],
    num_samples: int = DEMO_DEFAULTS["num_samples"],
    size: int = DEMO_DEFAULTS["size"],
    roi_size: int = DEMO_DEFAULTS["roi_size"],
    seed: int = DEMO_DEFAULTS["seed"],
    learning_rate: float = DEMO_DEFAULTS["learning_rate"],
    bundle: str = "tversky_lesion",
    device: str | None = None,
    verbose: bool = False,
    echo: Callable[[str], None] = print,
) -> DemoResult:
    """Run the whole demo and return a :class:`DemoResult`.

    Args:
        output_dir: folder for everything the demo writes (created; an earlier demo's outputs are replaced).
        epochs: training epochs.
        num_samples: synthetic cases (a quarter, at least one, are the validation and scored cases).
        size: synthetic volume side in voxels.
        roi_size: training patch and sliding-window side in voxels (at most ``size``).
        seed: seed of the data generator and of training.
        learning_rate: initial learning rate (the bundle's cosine schedule decays it over ``epochs``); higher than
            the bundle's default because the demo trains for few epochs.
        bundle: name of the shipped bundle to train.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default CUDA when available, else CPU.
        verbose: show MONAI's full training log instead of one line per epoch.
        echo: where progress lines go.
    """
    for flag, value, low in (("--epochs", epochs, 1), ("--num-samples", num_samples, 2), ("--size", size, 16),
                             ("--roi-size", roi_size, 16)):
        if int(value) < low:
            raise InvalidOptionError(f"`{flag}` must be at least {low}, got {value}.")
    if not 0.0 < float(learning_rate) <= 1.0:
        raise InvalidOptionError(f"`--learning-rate` must be in (0, 1], got {learning_rate}.")
    if roi_size > size:
        raise InvalidOptionError(f"`--roi-size` ({roi_size}) must not exceed `--size` ({size}).")
    out = Path(output_dir).resolve()
    bundle_dir = find_bundle(bundle)
    for stale in ("models", "predictions", "reference"):
        shutil.rmtree(out / stale, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}

    import torch  # heavy imports only once the options are known to be valid

    dev = device or ("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        dev = str(torch.device(dev))
    except (RuntimeError, TypeError) as err:
        raise InvalidOptionError(f"`--device` {device!r} is not a torch device; use e.g. cpu, cuda or cuda:1.") from err
    common = {"bundle_root": str(bundle_dir), "output_dir": str(out), "ckpt_dir": str(out / "models"),
              "dataset_dir": str(out / "data"), "datalist": None, "num_samples": int(num_samples),
              "synthetic_size": [int(size)] * 3, "roi_size": [int(roi_size)] * 3, "seed": int(seed),
              "device": f"$torch.device('{dev}')", "amp": dev.startswith("cuda")}
    with warnings.catch_warnings(), _quiet_logs(not verbose):
        if not verbose:
            warnings.filterwarnings("ignore", category=UserWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
        t0 = time.perf_counter()
        echo(f"[1/4] synthetic lesion set: {num_samples} cases of {size}^3 voxels -> {out / 'data'}")
        from medloss.data import prepare_data

        data = prepare_data(None, out / "data", num_samples=num_samples, size=int(size), seed=int(seed))
        times["data"] = time.perf_counter() - t0

        echo(f"[2/4] training bundle {bundle!r} for {epochs} epochs on {dev} ({bundle_dir})")
        t0 = time.perf_counter()
        train = _workflow(bundle_dir, ["train.json"], "train",
                          {**common, "epochs": int(epochs), "learning_rate": float(learning_rate)})
        best = {"dice": float("nan")}
        _run_workflow(train, lambda wf: _attach_progress(wf, best, echo, t0))
        times["train"] = time.perf_counter() - t0

        echo("[3/4] inference on the validation cases with the best checkpoint")
        t0 = time.perf_counter()
        _run_workflow(_workflow(bundle_dir, ["inference.json"], "infer", common))
        times["inference"] = time.perf_counter() - t0

        echo("[4/4] scoring with `medloss score`")
        t0 = time.perf_counter()
        reference = out / "reference"
        reference.mkdir(exist_ok=True)
        for item in data["validation"]:
            shutil.copyfile(item["label"], reference / Path(item["label"]).name)
        scores_csv, scores_json = out / "scores.csv", out / "scores.json"
        mean_dice = _score(out / "predictions", reference, scores_csv, scores_json)
        times["score"] = time.perf_counter() - t0

    predictions = sorted((out / "predictions").glob("*_seg.nii.gz"))
    return DemoResult(output_dir=out, bundle_dir=bundle_dir, checkpoint=out / "models" / "model.pt",
                      metrics_csv=out / "metrics.csv", plot=out / "training_curves.png", predictions=predictions,
                      scores_csv=scores_csv, scores_json=scores_json, best_val_dice=best["dice"],
                      mean_dice=mean_dice, seconds=times)


def _attach_progress(wf: Any, best: dict, echo: Callable[[str], None], start: float) -> None:
    """Print one line per epoch (loss, validation Dice, elapsed) and remember the best validation Dice."""
    from ignite.engine import Events

    from medloss.data.handlers import TrainingLog

    trainer = wf.parser.get_parsed_content("train#trainer")
    evaluator = wf.parser.get_parsed_content("validate#evaluator")
    log = next(h for h in wf.parser.get_parsed_content("train#handlers") if isinstance(h, TrainingLog))

    def _line(engine: Any) -> None:
        dice = evaluator.state.metrics.get("val_mean_dice")
        if dice is not None and not (dice <= best["dice"]):
            best["dice"] = float(dice)
        loss = float(log.rows[-1]["train_loss"]) if log.rows else float("nan")  # the epoch's mean loss
        echo(f"      epoch {engine.state.epoch:3d}/{engine.state.max_epochs}  loss {loss:.4f}  "
             f"val Dice {float('nan') if dice is None else dice:.4f}  ({time.perf_counter() - start:5.1f} s)")

    trainer.add_event_handler(Events.EPOCH_COMPLETED, _line)


def _score(pred_dir: Path, ref_dir: Path, csv_path: Path, json_path: Path) -> float:
    """Run ``medloss score`` on the two folders; return the mean Dice over the scored cases."""
    from medloss.cli.score import score

    args = [str(pred_dir), str(ref_dir), "--pred-suffix", "_seg", "--csv", str(csv_path), "--json", str(json_path),
            "--quiet"]
    try:
        code = score.main(args=args, prog_name="medloss score", standalone_mode=False)
    except SystemExit as done:  # the command ends with sys.exit(status)
        code = done.code
    if code not in (0, None) or not json_path.is_file():
        raise RuntimeError(f"`medloss score {' '.join(args)}` failed with status {code}; see its messages above.")
    return _mean_dice(json.loads(json_path.read_text()))


def _mean_dice(report: Any) -> float:
    """Mean of the per-case Dice values (``rows[*].dice``) in a ``medloss score --json`` report."""
    values = [float(row["dice"]) for row in report["rows"] if isinstance(row.get("dice"), (int, float))]
    return sum(values) / len(values) if values else float("nan")
