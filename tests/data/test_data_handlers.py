"""Trainer handlers of the bundles: per-epoch CSV/PNG log (kept across a resume), epoch seeding, checkpoint lookup."""
from __future__ import annotations

import csv
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events

from medloss.data import EpochSeeder, TrainingLog, latest_checkpoint
from medloss.data.handlers import BestMetricState
from medloss.errors import InvalidOptionError


def _trainer(losses):
    it = iter(losses)
    return Engine(lambda engine, batch: [{"loss": torch.tensor(next(it))}])


def _validator(values):
    """A stand-in evaluator whose metric for epoch e is values[e - 1]."""
    return SimpleNamespace(state=SimpleNamespace(epoch=0, metrics={}), values=values)


def _validate(validator):
    def run(engine):
        validator.state.epoch = engine.state.epoch
        validator.state.metrics = {"val_mean_dice": validator.values[engine.state.epoch - 1]}
    return run


def _rows(path):
    with path.open() as f:
        return list(csv.DictReader(f))


def test_training_log_writes_csv_and_png_and_keeps_rows_after_resume(tmp_path):
    validator = _validator([0.2, 0.5, 0.7])
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    trainer = _trainer([1.0, 0.8, 0.6, 0.4])
    trainer.add_event_handler(Events.EPOCH_COMPLETED, _validate(validator))
    log = TrainingLog(tmp_path, validator=validator, optimizer=optimizer)
    log.attach(trainer)
    trainer.run([0, 1], max_epochs=2)
    rows = _rows(log.csv_path)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert float(rows[0]["train_loss"]) == pytest.approx(0.9) and float(rows[1]["train_loss"]) == pytest.approx(0.5)
    assert float(rows[1]["val_metric"]) == pytest.approx(0.5) and float(rows[0]["lr"]) == pytest.approx(0.1)
    assert log.plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a resumed run (state restored at epoch 1) keeps epoch 1 from the file and rewrites epochs 2-3
    resumed = _trainer([0.3, 0.3, 0.2, 0.2])
    resumed.add_event_handler(Events.STARTED, lambda e: e.state.__dict__.update(epoch=1, iteration=2))
    resumed.add_event_handler(Events.EPOCH_COMPLETED, _validate(validator))
    TrainingLog(tmp_path, validator=validator).attach(resumed)
    resumed.run([0, 1], max_epochs=3)
    rows = _rows(log.csv_path)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert float(rows[0]["train_loss"]) == pytest.approx(0.9)  # from the first run
    assert float(rows[2]["val_metric"]) == pytest.approx(0.7)


def test_epoch_without_validation_leaves_the_metric_blank(tmp_path):
    validator = _validator([0.2])
    trainer = _trainer([1.0])
    TrainingLog(tmp_path, validator=validator, plot=False).attach(trainer)
    trainer.run([0], max_epochs=1)
    assert _rows(tmp_path / "metrics.csv")[0]["val_metric"] == ""
    assert not (tmp_path / "training_curves.png").exists()


def test_epoch_seeder_makes_each_epoch_depend_on_seed_and_epoch_only():
    draws = {}

    def step(engine, batch):
        draws.setdefault(engine.state.epoch, []).append((np.random.rand(), torch.rand(1).item()))

    for run in range(2):
        trainer = Engine(step)
        EpochSeeder(seed=3).attach(trainer)
        np.random.seed(run)  # different state before the run: must not matter
        trainer.run([0], max_epochs=2)
        if run == 0:
            first, draws = dict(draws), {}
    assert first == draws and first[1] != first[2]


def test_latest_checkpoint(tmp_path):
    with pytest.raises(InvalidOptionError, match="checkpoint_epoch"):
        latest_checkpoint(tmp_path)
    for n in (2, 10, 9):
        (tmp_path / f"checkpoint_epoch={n}.pt").write_bytes(b"")
    (tmp_path / "model.pt").write_bytes(b"")
    assert latest_checkpoint(tmp_path).endswith("checkpoint_epoch=10.pt")


def test_best_metric_state_round_trip():
    evaluator = SimpleNamespace(state=SimpleNamespace(best_metric=0.8, best_metric_epoch=4))
    state = BestMetricState(evaluator).state_dict()
    other = SimpleNamespace(state=SimpleNamespace(best_metric=-1, best_metric_epoch=-1))
    BestMetricState(other).load_state_dict(state)
    assert (other.state.best_metric, other.state.best_metric_epoch) == (0.8, 4)


def test_training_log_prints_one_summary_line_per_epoch_and_integer_epoch_ticks(tmp_path, caplog):
    validator = _validator([0.2, 0.5])
    trainer = _trainer([1.0, 0.8, 0.6, 0.4])
    trainer.add_event_handler(Events.EPOCH_COMPLETED, _validate(validator))
    log = TrainingLog(tmp_path, validator=validator)
    log.attach(trainer)
    with caplog.at_level("INFO", logger="medloss.data.handlers"):
        trainer.run([0, 1], max_epochs=2)
    lines = [r.getMessage() for r in caplog.records if r.name == "medloss.data.handlers"]
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2  train_loss 0.5000  val_mean_dice 0.5000")
    ticks = log.figure().axes[0].get_xticks()
    assert len(ticks) and all(float(t).is_integer() for t in ticks)  # no 1.2, 1.4, ... epochs


def test_latest_checkpoint_refuses_a_schedule_for_other_epochs(tmp_path):
    torch.save({"lr_scheduler": {"T_max": 2}, "trainer": {"epoch": 2}}, tmp_path / "checkpoint_epoch=2.pt")
    assert latest_checkpoint(tmp_path, epochs=2).endswith("checkpoint_epoch=2.pt")
    with pytest.raises(InvalidOptionError, match=r"`epochs` is 3 .* resume with `--epochs 2`"):
        latest_checkpoint(tmp_path, epochs=3)
    torch.save({"lr_scheduler": {"step_size": 5}}, tmp_path / "checkpoint_epoch=3.pt")  # no T_max: nothing to check
    assert latest_checkpoint(tmp_path, epochs=3).endswith("checkpoint_epoch=3.pt")


def test_inference_summary_says_how_many_cases_and_where(tmp_path, caplog):
    from medloss.data import InferenceSummary

    engine = Engine(lambda e, b: None)
    engine.data_loader = SimpleNamespace(dataset=[0, 1, 2])
    InferenceSummary(tmp_path / "predictions").attach(engine)
    with caplog.at_level("INFO", logger="medloss.data.handlers"):
        engine.run([0, 1, 2], max_epochs=1)
    (message,) = [r.getMessage() for r in caplog.records if r.name == "medloss.data.handlers"]
    assert f"3 case(s) predicted -> {tmp_path / 'predictions'}" in message and "--pred-suffix _seg" in message
