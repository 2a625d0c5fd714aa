"""The guided tour behind ``medloss demo``: synthetic lesions → short bundle training → inference → scoring.

:func:`run_demo` does, in one process and with no download:

1. writes a small seeded synthetic lesion set (:func:`medloss.data.make_lesion_dataset`) into ``<out>/data``;
2. trains the ``tversky_lesion`` bundle (``configs/train.json``, Focal-Tversky loss) for a short CPU schedule,
   saving ``<out>/models/model.pt`` (best validation Dice), ``<out>/metrics.csv`` and ``<out>/training_curves.png``;
3. runs the bundle's ``configs/inference.json`` on the validation cases, writing ``<out>/predictions/*_seg.nii.gz``
   with each input's geometry;
4. scores the predictions against the reference labels with :func:`medloss.scoring.score_folders`, the API under
   ``medloss score`` (``<out>/scores.csv`` and ``<out>/scores.json``).

The ``medloss demo`` command (:mod:`medloss.cli.demo`) only parses its flags and prints where things are. Time
taken by the defaults (torch 2.13 CPU): 80 s wall with ``OMP_NUM_THREADS=1`` and 58 s with 2 threads on an idle
2-core VM; 6 min 20 s wall (76 s of CPU time, one thread) on a 2-core machine shared with other jobs at load
average 6-7.
"""
from __future__ import annotations

import contextlib
import logging
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medloss.data.bundles import find_bundle
from medloss.errors import InvalidOptionError, OutputPathError
from medloss.io.outputs import atomic_output

__all__ = ["DemoResult", "DEMO_DEFAULTS", "find_bundle", "run_demo"]

#: default demo schedule: 16 cases of 48³ (12 train, 4 validate), 20 epochs at lr 1e-2; best validation Dice 0.81
#: (timings: module docstring).
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
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


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
    from medloss.data.console import medloss_cause

    try:
        wf.initialize()
        if before_run is not None:
            before_run(wf)
        wf.run()
        wf.finalize()
    except Exception as err:
        cause = medloss_cause(err)
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
    overwrite: bool = False,
    echo: Callable[[str], None] = print,
) -> DemoResult:
    """Run the whole demo and return a :class:`DemoResult`.

    Args:
        output_dir: folder for everything the demo writes (created if missing).
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
        overwrite: replace the outputs of an earlier demo in ``output_dir``; without it they are refused
            (:class:`~medloss.errors.OutputPathError`) before anything is written or trained.
        echo: where progress lines go.
    """
    _check_demo_options(epochs=epochs, num_samples=num_samples, size=size, roi_size=roi_size,
                        learning_rate=learning_rate)
    out = Path(output_dir).resolve()
    bundle_dir = find_bundle(bundle)
    earlier = _earlier_outputs(out)
    if earlier and not overwrite:
        raise OutputPathError(f"{out} holds the outputs of an earlier demo ({', '.join(earlier)}); pass "
                              "`--overwrite` to replace them, or choose another `--output-dir`.")
    echo("[0/4] loading torch and MONAI")
    t0 = time.perf_counter()
    import monai.bundle  # noqa: F401  (heavy imports only once the options are known to be valid)
    import torch

    dev = _device(device, torch)
    _clear_earlier(out, earlier)
    times: dict[str, float] = {"load": time.perf_counter() - t0}

    common = {"bundle_root": str(bundle_dir), "output_dir": str(out), "ckpt_dir": str(out / "models"),
              "dataset_dir": str(out / "data"), "datalist": None, "num_samples": int(num_samples),
              "synthetic_size": [int(size)] * 3, "roi_size": [int(roi_size)] * 3, "seed": int(seed),
              "device": f"$torch.device('{dev}')", "amp": dev.startswith("cuda")}
    with warnings.catch_warnings(), _quiet_logs(not verbose):
        if not verbose:
            for category in (UserWarning, FutureWarning, DeprecationWarning):
                warnings.filterwarnings("ignore", category=category)
        best, mean_dice = _run_steps(out, bundle, bundle_dir, dev, common, epochs=int(epochs),
                                     learning_rate=float(learning_rate), echo=echo, times=times)
    scores_csv, scores_json = out / "scores.csv", out / "scores.json"
    predictions = sorted((out / "predictions").glob("*_seg.nii.gz"))
    return DemoResult(output_dir=out, bundle_dir=bundle_dir, checkpoint=out / "models" / "model.pt",
                      metrics_csv=out / "metrics.csv", plot=out / "training_curves.png", predictions=predictions,
                      scores_csv=scores_csv, scores_json=scores_json, best_val_dice=best["dice"],
                      mean_dice=mean_dice, seconds=times)


def _run_steps(out: Path, bundle: str, bundle_dir: Path, dev: str, common: dict[str, Any], *, epochs: int,
               learning_rate: float, echo: Callable[[str], None], times: dict[str, float]) -> tuple[dict, float]:
    """Steps 1 to 4 (data, training, inference, scoring), each timed into ``times``; returns the best validation
    Dice ({"dice": ...}) and the scored predictions' mean Dice."""
    num_samples, size, seed = common["num_samples"], common["synthetic_size"][0], common["seed"]
    t0 = time.perf_counter()
    echo(f"[1/4] synthetic lesion set: {num_samples} cases of {size}^3 voxels -> {out / 'data'}")
    from medloss.data import prepare_data

    data = prepare_data(None, out / "data", num_samples=num_samples, size=size, seed=seed)
    times["data"] = time.perf_counter() - t0

    echo(f"[2/4] training bundle {bundle!r} for {plural(epochs, 'epoch')} on {dev} ({bundle_dir})")
    echo(f"      building the network and caching {plural(len(data['training']), 'training case')}...")
    t0 = time.perf_counter()
    best = _train(bundle_dir, {**common, "epochs": epochs, "learning_rate": learning_rate}, echo, t0)
    times["train"] = time.perf_counter() - t0

    echo(f"[3/4] inference on {plural(len(data['validation']), 'validation case')} with the best checkpoint "
         f"-> {out / 'predictions'}")
    t0 = time.perf_counter()
    _run_workflow(_workflow(bundle_dir, ["inference.json"], "infer", common))
    times["inference"] = time.perf_counter() - t0

    echo("[4/4] scoring the predictions (medloss.scoring.score_folders, as `medloss score`)")
    t0 = time.perf_counter()
    reference = _copy_reference(out, data["validation"])
    mean_dice = _score(out / "predictions", reference, out / "scores.csv", out / "scores.json")
    times["score"] = time.perf_counter() - t0
    return best, mean_dice


def _check_demo_options(*, epochs: int, num_samples: int, size: int, roi_size: int, learning_rate: float) -> None:
    """Refuse out-of-range demo options, naming the CLI flag, before anything is imported or written."""
    for flag, value, low in (("--epochs", epochs, 1), ("--num-samples", num_samples, 2), ("--size", size, 16),
                             ("--roi-size", roi_size, 16)):
        if int(value) < low:
            raise InvalidOptionError(f"`{flag}` must be at least {low}, got {value}.")
    if not 0.0 < float(learning_rate) <= 1.0:
        raise InvalidOptionError(f"`--learning-rate` must be in (0, 1], got {learning_rate}.")
    if roi_size > size:
        raise InvalidOptionError(f"`--roi-size` ({roi_size}) must not exceed `--size` ({size}).")


def _clear_earlier(out: Path, earlier: list[str]) -> None:
    """Remove an earlier demo's outputs (only with --overwrite) and create ``out``; data/ is regenerated in place
    by prepare_data."""
    for stale in earlier:
        if stale != "data":
            path = out / stale
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _train(bundle_dir: Path, overrides: dict[str, Any], echo: Callable[[str], None], t0: float) -> dict[str, float]:
    """Train the bundle; returns {"dice": the best validation Dice} (NaN when no validation ran)."""
    train = _workflow(bundle_dir, ["train.json"], "train", overrides)
    best = {"dice": float("nan")}
    _run_workflow(train, lambda wf: _attach_progress(wf, best, echo, t0))
    return best


def _copy_reference(out: Path, validation: list[dict]) -> Path:
    """Copy the validation cases' labels into ``out/reference`` (the folder the predictions are scored against)."""
    reference = out / "reference"
    reference.mkdir(exist_ok=True)
    for item in validation:
        with atomic_output(reference / Path(item["label"]).name, suffix=".nii.gz") as tmp:
            shutil.copyfile(item["label"], tmp)
    return reference


#: what a demo writes into its output folder (an earlier demo's are refused without --overwrite)
DEMO_OUTPUTS = ("data", "models", "predictions", "reference", "metrics.csv", "training_curves.png", "scores.csv",
                "scores.json")


def _earlier_outputs(out: Path) -> list[str]:
    return [name for name in DEMO_OUTPUTS if (out / name).exists()]


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _device(device: str | None, torch: Any) -> str:
    """The torch device to train on, checked against this torch build and machine (one typed error otherwise)."""
    dev = device or ("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        parsed = torch.device(dev)
    except (RuntimeError, TypeError) as err:
        raise InvalidOptionError(f"`--device` {device!r} is not a torch device; use e.g. cpu, cuda or cuda:1.") from err
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            why = ("is a CPU-only build" if torch.version.cuda is None else "finds no CUDA device on this machine")
            raise InvalidOptionError(f"`--device {device}`: torch {torch.__version__} {why}; use `--device cpu` "
                                     "(or leave --device out).")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise InvalidOptionError(f"`--device {device}`: only {torch.cuda.device_count()} CUDA device(s) here; "
                                     "use e.g. cuda:0.")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidOptionError(f"`--device {device}`: MPS is not available here; use `--device cpu`.")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise InvalidOptionError(f"`--device {device}`: the demo runs on cpu, cuda or mps.")
    return str(parsed)


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
    echo(f"      ready after {time.perf_counter() - start:.1f} s; one line per epoch follows")


def _score(pred_dir: Path, ref_dir: Path, csv_path: Path, json_path: Path) -> float:
    """Score the predictions with :func:`medloss.scoring.score_folders` (the API under ``medloss score``), write
    the CSV and JSON, and return the mean Dice over the scored cases."""
    from medloss.scoring import score_folders, scoring_config

    result = score_folders(str(pred_dir), str(ref_dir), scoring_config(), pred_suffix="_seg")
    if result.errors or not result.summary["n_rows"]:
        raise RuntimeError(f"scoring {pred_dir} against {ref_dir} failed: "
                           f"{'; '.join(e['error'] for e in result.errors) or 'no case scored'}")
    result.write(csv=str(csv_path), json=str(json_path))
    return _mean_dice({"rows": result.rows})


def _mean_dice(report: Any) -> float:
    """Mean of the per-case Dice values (``rows[*].dice``) in a ``medloss score --json`` report."""
    values = [float(row["dice"]) for row in report["rows"] if isinstance(row.get("dice"), (int, float))]
    return sum(values) / len(values) if values else float("nan")
