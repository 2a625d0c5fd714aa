"""Ignite/MONAI handlers the medloss bundles attach to their trainer.

* :class:`EpochSeeder` re-seeds every random source at the start of each epoch from ``(seed, epoch)``, so an
  epoch's crops, flips and shuffling do not depend on how many epochs ran before in this process. That is what
  makes a resumed run end with the same weights as an uninterrupted one.
* :class:`TrainingLog` writes ``metrics.csv`` (epoch, train loss, validation metric, learning rate, seconds) and
  ``training_curves.png`` (loss and validation Dice per epoch) into the output folder after every epoch; after a
  resume it keeps the rows of the epochs already done.
* :class:`BestMetricState` puts the evaluator's best validation metric (and the best-model saver's record of it)
  into the per-epoch checkpoint, so after a resume ``models/model.pt`` is only replaced by a better model.
* :class:`InferenceSummary` logs, when inference ends, how many cases were predicted and where the files are.
* :func:`latest_checkpoint` finds the newest ``checkpoint_epoch=N.pt`` written by the bundles' per-epoch
  ``CheckpointSaver`` (the bundles' ``--resume true`` override loads it) and refuses one whose learning-rate
  schedule was built for another ``epochs`` (the restored cosine would keep its old length, silently). It runs as
  a config expression before the trainer starts, so its error is not logged inside an engine traceback.
"""
from __future__ import annotations

import csv
import logging
import math
import re
import time
from pathlib import Path
from typing import Any

from medloss.errors import InvalidOptionError

__all__ = ["BestMetricState", "EpochSeeder", "InferenceSummary", "TrainingLog", "latest_checkpoint"]

_CKPT = re.compile(r"checkpoint_epoch=(\d+)\.pt$")


def latest_checkpoint(ckpt_dir: str | Path, epochs: int | None = None) -> str:
    """Path of the ``checkpoint_epoch=N.pt`` with the largest N in ``ckpt_dir``.

    With ``epochs``, the checkpoint's learning-rate schedule (a saved ``lr_scheduler`` with a ``T_max``, as
    CosineAnnealingLR has) must have been built for the same number of epochs: MONAI's loader keeps the new
    ``max_epochs`` but restores the scheduler, so another ``--epochs`` would restart or cut the cosine silently.

    Raises:
        InvalidOptionError: if there is none (nothing to resume from), or the schedule is for other ``epochs``.
    """
    found = []
    folder = Path(ckpt_dir)
    if folder.is_dir():
        found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _CKPT.search(p.name))]
    if not found:
        raise InvalidOptionError(
            f"`resume` is true but {str(folder)!r} holds no checkpoint_epoch=N.pt. Train first (every epoch saves "
            "one), point `--ckpt_dir` at the run to continue, or drop `--resume true`."
        )
    done, path = max(found)
    if epochs is not None:
        import torch

        scheduler = torch.load(path, map_location="cpu", weights_only=True).get("lr_scheduler") or {}
        restored = scheduler.get("T_max") if isinstance(scheduler, dict) else None
        if restored is not None and int(restored) != int(epochs):
            raise InvalidOptionError(
                f"`epochs` is {int(epochs)} but the checkpoint being resumed ({path.name}) has a learning-rate "
                f"schedule for {int(restored)} epochs (done: {done}): resume with `--epochs {int(restored)}`, or "
                "start a new run in another `--ckpt_dir` (e.g. fine-tuning from models/model.pt)."
            )
    return str(path)


class BestMetricState:
    """``state_dict``/``load_state_dict`` view of an evaluator's best metric, for a trainer checkpoint.

    Args:
        evaluator: the MONAI evaluator whose ``state.best_metric`` / ``best_metric_epoch`` are kept.
        saver: the evaluator's key-metric ``CheckpointSaver`` (its record of the best score decides whether a
            later validation overwrites ``model.pt``); optional.
    """

    def __init__(self, evaluator: Any, saver: Any = None) -> None:
        self.evaluator = evaluator
        self.saver = saver

    def _checkpoint(self) -> Any:
        return getattr(self.saver, "_key_metric_checkpoint", None)

    def state_dict(self) -> dict:
        """The best metric, its epoch and the saver's record (plain Python values, safe for ``weights_only``)."""
        state = self.evaluator.state
        out: dict = {"best_metric": float(state.best_metric), "best_metric_epoch": int(state.best_metric_epoch)}
        ckpt = self._checkpoint()
        if ckpt is not None:
            out["saved"] = [[float(p), str(f)] for p, f in ckpt.state_dict()["_saved"]]
        return out

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.evaluator.state.best_metric = float(state["best_metric"])
        self.evaluator.state.best_metric_epoch = int(state["best_metric_epoch"])
        ckpt = self._checkpoint()
        if ckpt is not None and "saved" in state:
            ckpt.load_state_dict({"_saved": [(p, f) for p, f in state["saved"]]})


class EpochSeeder:
    """Seed Python, NumPy, torch and the training transforms with ``seed + epoch`` when each epoch starts.

    Under ``torch.distributed`` the seed also depends on the rank, so ranks do not repeat each other's augmentations.

    Args:
        seed: base seed (the bundles use their ``seed`` ID).
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)

    def attach(self, engine: Any) -> None:
        """Register on ``Events.EPOCH_STARTED`` of ``engine`` (a MONAI trainer)."""
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Any) -> None:
        import torch.distributed as dist
        from monai.utils import set_determinism

        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        epoch_seed = self.seed + int(engine.state.epoch) + 100_003 * rank  # DDP ranks draw different augmentations
        set_determinism(seed=epoch_seed)
        dataset = getattr(getattr(engine, "data_loader", None), "dataset", None)
        transform: Any = getattr(dataset, "transform", None)
        if hasattr(transform, "set_random_state"):
            transform.set_random_state(seed=epoch_seed)


class InferenceSummary:
    """Log, when the evaluator's run completes, how many cases were predicted and where the files went.

    Args:
        output_dir: the folder ``SaveImaged`` writes to.
        postfix: its ``output_postfix`` (the bundles: ``seg``), used to tell how to pair the files with labels.
    """

    def __init__(self, output_dir: str | Path, postfix: str = "seg") -> None:
        self.output_dir = Path(output_dir)
        self.postfix = postfix
        self.logger = logging.getLogger(__name__)

    def attach(self, engine: Any) -> None:
        """Register on ``Events.COMPLETED`` of ``engine`` (a MONAI evaluator)."""
        from ignite.engine import Events

        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Any) -> None:
        loader: Any = getattr(engine, "data_loader", None)
        n = len(loader.dataset) if hasattr(getattr(loader, "dataset", None), "__len__") else engine.state.iteration
        folder = self.output_dir.resolve()
        self.logger.info(
            "inference: %d case(s) predicted -> %s (<image>_%s.nii.gz). Score them against labels named <image> with: "
            "medloss score %s LABELS_DIR --pred-suffix _%s", n, folder, self.postfix, folder, self.postfix)


class TrainingLog:
    """Write per-epoch ``metrics.csv`` and ``training_curves.png`` into ``output_dir``.

    Args:
        output_dir: folder for both files (created if missing).
        validator: the evaluator run by the ``ValidationHandler``; its ``metric_name`` is read after each epoch.
        metric_name: the validator metric to log (the bundles' key metric, ``val_mean_dice``).
        optimizer: if given, its first group's learning rate is logged.
        loss_key: key of the loss in the trainer's iteration output.
        plot: also draw the PNG (needs matplotlib).

    Attach it **after** the ``ValidationHandler`` so the epoch's validation has run when it writes.
    """

    columns = ("epoch", "train_loss", "val_metric", "lr", "seconds")

    def __init__(self, output_dir: str | Path, validator: Any = None, metric_name: str = "val_mean_dice",
                 optimizer: Any = None, loss_key: str = "loss", plot: bool = True) -> None:
        self.output_dir = Path(output_dir)
        self.validator = validator
        self.metric_name = metric_name
        self.optimizer = optimizer
        self.loss_key = loss_key
        self.plot = plot
        self.rows: list[dict] = []
        self._losses: list[float] = []
        self._start = time.perf_counter()
        self._fresh = True
        self.logger = logging.getLogger(__name__)

    @property
    def csv_path(self) -> Path:
        """Where the metrics table is written."""
        return self.output_dir / "metrics.csv"

    @property
    def plot_path(self) -> Path:
        """Where the loss / validation metric plot is written."""
        return self.output_dir / "training_curves.png"

    def attach(self, engine: Any) -> None:
        """Register on the iteration, epoch-start and epoch-completed events of ``engine``."""
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration_completed)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)

    def _epoch_started(self, engine: Any) -> None:
        self._losses = []
        self._start = time.perf_counter()

    def _iteration_completed(self, engine: Any) -> None:
        output = engine.state.output
        items = output if isinstance(output, list) else [output]
        for item in items:
            loss = item.get(self.loss_key) if isinstance(item, dict) else None
            if loss is not None:
                self._losses.append(float(loss))
                break

    def _previous_rows(self, epoch: int) -> list[dict]:
        """Rows of epochs before ``epoch`` from an existing CSV (a resumed run continues the same table)."""
        if epoch <= 1 or not self.csv_path.is_file():
            return []
        with self.csv_path.open(newline="") as f:
            return [row for row in csv.DictReader(f) if row.get("epoch", "").isdigit() and int(row["epoch"]) < epoch]

    def _epoch_completed(self, engine: Any) -> None:
        epoch = int(engine.state.epoch)
        if self._fresh:
            self.rows = self._previous_rows(epoch)
            self._fresh = False
        metric: Any = ""
        if self.validator is not None and int(getattr(self.validator.state, "epoch", 0) or 0) == epoch:
            value = self.validator.state.metrics.get(self.metric_name)
            metric = "" if value is None else float(value)
        lr: Any = ""
        if self.optimizer is not None:
            lr = float(self.optimizer.param_groups[0]["lr"])
        loss = sum(self._losses) / len(self._losses) if self._losses else float("nan")
        self.rows.append({"epoch": epoch, "train_loss": loss, "val_metric": metric, "lr": lr,
                          "seconds": round(time.perf_counter() - self._start, 3)})
        self.write()
        self.logger.info(self.summary(engine))

    def summary(self, engine: Any) -> str:
        """One line for the last epoch: loss, validation metric (and the best so far), learning rate, seconds."""
        row = self.rows[-1]
        parts = [f"epoch {row['epoch']}/{engine.state.max_epochs}", f"train_loss {float(row['train_loss']):.4f}"]
        if row["val_metric"] != "":
            parts.append(f"{self.metric_name} {float(row['val_metric']):.4f}")
            best = getattr(self.validator.state, "best_metric", None)
            if best is not None and best > -1:
                parts[-1] += f" (best {best:.4f} at epoch {self.validator.state.best_metric_epoch})"
        if row["lr"] != "":
            parts.append(f"lr {float(row['lr']):.3g}")
        parts.append(f"{float(row['seconds']):.1f} s")
        return "  ".join(parts)

    def write(self) -> None:
        """Write the CSV (and the PNG when ``plot``) from the rows collected so far."""
        from medloss.io.outputs import atomic_output

        self.output_dir.mkdir(parents=True, exist_ok=True)
        with atomic_output(self.csv_path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns)
            writer.writeheader()
            for row in self.rows:
                writer.writerow({k: row.get(k, "") for k in self.columns})
        if self.plot:
            self._plot()

    def _plot(self) -> None:
        from medloss.io.outputs import atomic_output

        with atomic_output(self.plot_path, suffix=".png") as tmp:
            self.figure().savefig(tmp)

    def figure(self) -> Any:
        """The matplotlib ``Figure`` of loss and validation metric per epoch (what ``training_curves.png`` shows)."""
        from matplotlib.figure import Figure  # no pyplot: no GUI backend, safe in threads and on servers
        from matplotlib.ticker import MaxNLocator

        def num(v: Any) -> float:
            try:
                return float(v)
            except (TypeError, ValueError):
                return math.nan

        epochs = [int(r["epoch"]) for r in self.rows]
        loss = [num(r["train_loss"]) for r in self.rows]
        val = [(e, num(r["val_metric"])) for e, r in zip(epochs, self.rows, strict=True)
               if not math.isnan(num(r["val_metric"]))]
        fig = Figure(figsize=(6.4, 4.0), dpi=100)
        ax1 = fig.add_subplot()
        ax1.plot(epochs, loss, "o-", color="tab:blue", label="train loss")
        ax1.set_xlabel("epoch")
        ax1.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax1.set_ylabel("train loss", color="tab:blue")
        ax2 = ax1.twinx()
        if val:
            ax2.plot([e for e, _ in val], [v for _, v in val], "s-", color="tab:red", label=self.metric_name)
        ax2.set_ylabel(self.metric_name, color="tab:red")
        ax2.set_ylim(0.0, 1.0)
        ax1.set_title("training loss and validation metric per epoch")
        fig.tight_layout()
        return fig
