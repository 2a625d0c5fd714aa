"""Scoring a cohort: :func:`score_folders` and :func:`score_pairs`, the Python API under ``medloss score``.

::

    from medloss.scoring import scoring_config, score_folders
    config = scoring_config("brats23")                       # a lesion preset plus overrides, resolved once
    result = score_folders("preds/", "refs/", config, executor=4, part_file="scores.part.jsonl")
    result.write(csv="scores.csv", json="scores.json")      # written atomically, streamed from the part file
    result.summary["per_label"]["WT"]["metrics"]["dice"]["mean"]

Each case is read and scored by a worker of the executor (:mod:`medloss.scoring.executors`: this process, a local
process pool, or Dask), which returns the case's record as a JSON line; the engine appends it to the store
(:mod:`medloss.scoring.stream`: memory, or a part file flushed per case) as cases finish, in any order. A case that
fails is one error record (``on_error`` is called with it), never the end of the run. ``resume=True`` keeps the
part file's finished cases and scores the others. The rows (sorted by case id, every executor giving the same
bytes), the summary (:class:`~medloss.scoring.summary.SummaryAccumulator`, in case order) and the outputs are read
back from the store, so memory does not grow with the number of cases. With ``config.labels`` and
``config.regions`` unset, a label scored in some case but absent from both volumes of another gets that case's
both-empty row from the same scorer, so every case has the same labels.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from medloss.errors import InvalidOptionError, MedlossError
from medloss.scoring.config import ScoringConfig
from medloss.scoring.executors import resolve_executor
from medloss.scoring.stream import PartFile, RecordStore, record_error, record_line
from medloss.scoring.summary import SummaryAccumulator


@dataclass(frozen=True)
class Progress:
    """Passed to ``progress=`` at the start and after each finished case: ``done`` of ``total`` cases scored by
    this run (resumed cases are not counted), ``elapsed_s`` since scoring started.

    Args:
        done: cases scored by this run so far.
        total: cases this run scores.
        elapsed_s: seconds since scoring started.
        case: the case that just finished (``None`` at the start).
    """

    done: int
    total: int
    elapsed_s: float
    case: str | None = None

    @property
    def rate(self) -> float:
        """Cases per second so far (0 before the first)."""
        return self.done / self.elapsed_s if self.done and self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the rate so far (``None`` before the first case)."""
        return (self.total - self.done) / self.rate if self.rate else None


def score_case(case: str, pred_path: str, ref_path: str, config: ScoringConfig) -> str:
    """Read, check and score one case.

    Args:
        case: the case id.
        pred_path, ref_path: the prediction and reference volume files.
        config: the run's :class:`ScoringConfig`.

    Returns:
        The case's record as a JSON line (:mod:`medloss.scoring.stream`), with ``error`` set (and no rows) when the
        case cannot be scored.
    """
    from medloss.io import as_label_array, check_geometry, read_volume
    from medloss.scoring.api import score_arrays
    from medloss.scoring.coverage import UncoveredLabelWarning

    try:
        ref = read_volume(ref_path)
        pred = read_volume(pred_path)
        check_geometry(pred, ref, config.geometry_tolerance)
        ref_arr = as_label_array(ref.array, ref_path, config.ignore_index)
        pred_arr = as_label_array(pred.array, pred_path, config.ignore_index)
        with warnings.catch_warnings(record=True) as caught:  # the run reports unscored labels once, at its end
            warnings.simplefilter("always", UncoveredLabelWarning)
            rows = score_arrays(pred_arr, ref_arr, ref.spacing, case=case, workers=config.kd_workers,
                                uncovered=config.uncovered, **_score_options(config))
        for w in caught:
            if isinstance(w.message, UncoveredLabelWarning):
                for row in rows:
                    row["unscored_labels"] = w.message.labels
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return record_line(case, pred_path, ref_path, rows, None)
    except MedlossError as exc:
        return record_line(case, pred_path, ref_path, [], str(exc))
    except MemoryError:
        return record_line(case, pred_path, ref_path, [], f"{pred_path}: out of memory while scoring this case.")


def _score_options(config: ScoringConfig) -> dict:
    return dict(labels=list(config.labels) if config.labels is not None else None,
                regions=[(n, list(labs)) for n, labs in config.regions] if config.regions else None,
                surface=config.surface, tolerance=config.tolerance, lesions=config.lesions or False,
                ignore_index=config.ignore_index, empty=config.empty, worst_distance=config.worst_distance,
                percentile=config.percentile, instances=config.lesions is not None, metrics=config.metrics)


def _absent_rows(case: str, missing: list[int], spacing_mm: str, config: ScoringConfig) -> list[dict]:
    """The both-empty rows of labels a case lacks (module docstring), from the same scorer."""
    import numpy as np

    from medloss.scoring.api import score_arrays

    zeros = np.zeros((1, 1, 1), np.uint8)
    spacing = [float(v) for v in spacing_mm.split("x")]
    opts = {**_score_options(config), "labels": missing, "regions": None, "ignore_index": None}
    rows = score_arrays(zeros, zeros, spacing, case=case, **opts)
    for row in rows:
        row["spacing_mm"] = spacing_mm
    return json.loads(json.dumps(rows))


@dataclass
class ScoringResult:
    """A finished run: ``rows`` (property; or :meth:`iter_rows` to stream them), ``summary``, ``recipe``,
    ``errors`` (``{"case", "pred", "ref", "error"}`` each), ``columns``; ``resumed``: cases kept from a part file."""

    config: ScoringConfig
    store: RecordStore
    errors: list[dict]
    summary: dict = field(default_factory=dict)
    recipe: dict = field(default_factory=dict)
    resumed: int = 0
    batch: bool = True
    _labels: list = field(default_factory=list)
    _ok_cases: list = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return self.config.columns()

    def iter_rows(self) -> Iterator[dict]:
        """The rows, sorted by case id (within a case: labels, then regions), read back from the store."""
        for case in self._ok_cases:
            rows = self.store.read(case)["rows"]
            have = {r["label"] for r in rows}
            missing = [lab for lab in self._labels if lab not in have]
            if missing:
                rows = sorted(rows + _absent_rows(case, missing, rows[0]["spacing_mm"], self.config),
                              key=lambda r: r["label"])
            yield from rows

    @property
    def rows(self) -> list[dict]:
        return list(self.iter_rows())

    def write(self, *, csv: str | None = None, json: str | None = None, plot: str | None = None,
              instances_csv: str | None = None, csv_summary: bool = True, outputs: Any = None) -> None:
        """Write the requested files together (:class:`medloss.io.OutputSet`; pass ``outputs`` to add them to
        one of yours), each streamed from the store."""
        from medloss.io.outputs import OutputSet
        from medloss.scoring.report import write_csv, write_instances_csv, write_json, write_plot

        with OutputSet() if outputs is None else contextlib.nullcontext(outputs) as out:
            if csv:
                write_csv(csv, self.iter_rows(), self.columns, self.summary if csv_summary else None, outputs=out)
            if json:
                write_json(json, self.iter_rows(), self.summary, self.recipe, self.errors, outputs=out)
            if plot:
                write_plot(plot, self.iter_rows(), outputs=out)
            if instances_csv:
                write_instances_csv(instances_csv, self.iter_rows(), outputs=out)


def score_pairs(pairs: Sequence[tuple[str, str, str]], config: ScoringConfig, *, executor: Any = None,
                progress: Callable[[Progress], None] | None = None, on_error: Callable[[dict], None] | None = None,
                part_file: str | None = None, resume: bool = False, errors: Sequence[dict] = ()) -> ScoringResult:
    """Score ``(case, pred_path, ref_path)`` pairs (module docstring).

    Args:
        pairs: the cases to score.
        config: the run's :class:`ScoringConfig` (:func:`scoring_config`).
        executor: ``None`` or 1 (this process), N local processes, ``"dask"``, or a ``distributed.Client``; see
            :func:`~medloss.scoring.executors.resolve_executor`.
        progress: called with a :class:`Progress` (done, total, cases/s, ETA) as cases finish.
        on_error: called with each error record.
        part_file: the JSON Lines file records are appended to (default: memory).
        resume: keep the finished cases of ``part_file`` and score the others.
        errors: errors found before scoring (e.g. unpaired files), reported with the others.

    Returns:
        The :class:`ScoringResult`: rows, summary, recipe and errors.
    """
    if not isinstance(config, ScoringConfig):
        raise InvalidOptionError(f"`config` must be a ScoringConfig (medloss.scoring.scoring_config(...)), got "
                                 f"{type(config).__name__}.")
    if resume and part_file is None:
        raise InvalidOptionError("`resume` needs the `part_file` of the earlier run.")
    cases = [c for c, _, _ in pairs]
    twice = sorted(c for c, n in Counter(cases).items() if n > 1)
    if twice:
        raise InvalidOptionError(f"every pair needs its own case id; {twice[:5]} appear more than once.")
    ex = resolve_executor(executor)
    config = dataclasses.replace(config, kd_workers=1 if ex.parallel else config.kd_workers)
    with ex:  # a cluster that cannot start leaves no part file behind
        store: RecordStore = PartFile(part_file, config.fingerprint(), resume) if part_file else RecordStore()
        try:
            done: set[str] = getattr(store, "resumed", set())
            todo = [(c, str(p), str(r)) for c, p, r in pairs if c not in done]
            _run(ex, todo, config, store, progress, on_error)
            return _finish(config, store, list(errors), set(cases), resumed=len(pairs) - len(todo))
        finally:
            if isinstance(store, PartFile):
                store.close()


def _run(ex: Any, todo: list, config: ScoringConfig, store: RecordStore,
         progress: Callable[[Progress], None] | None, on_error: Callable[[dict], None] | None) -> None:
    start = time.perf_counter()
    if progress is not None:
        progress(Progress(0, len(todo), 0.0))
    for n, (i, result) in enumerate(ex.map_unordered(score_case, todo, config), start=1):
        case, p, r = todo[i]
        if isinstance(result, BaseException):
            result = record_line(case, p, r, [], f"{p}: scoring failed ({type(result).__name__}: {result})")
        store.add(case, result)
        failed = record_error(result) if on_error is not None else None
        if failed is not None and on_error is not None:
            on_error(failed)
        if progress is not None:
            progress(Progress(n, len(todo), time.perf_counter() - start, case))


def _finish(config: ScoringConfig, store: RecordStore, errors: list[dict], cases: set[str],
            resumed: int) -> ScoringResult:
    labels: set = set()
    spacing: dict[str, str] = {}
    ok: list[str] = []
    for rec in store.records():
        if rec["case"] not in cases:  # in a resumed part file but no longer among the pairs
            continue
        if rec["error"] is not None:
            errors.append({k: rec[k] for k in ("case", "pred", "ref", "error")})
            continue
        ok.append(rec["case"])
        spacing[rec["case"]] = rec["rows"][0]["spacing_mm"]
        labels.update(r["label"] for r in rec["rows"])
    result = ScoringResult(config, store, errors, resumed=resumed, _ok_cases=ok,
                           _labels=sorted(labels) if config.fill_absent_labels else [])
    acc = SummaryAccumulator()
    for row in result.iter_rows():
        acc.add(row)
    result.summary = {**acc.summary(len(ok)), "n_errors": len(errors), **acc.coverage()}
    result.recipe = config.recipe(spacing)
    return result


def score_folders(pred: str, ref: str, config: ScoringConfig, *, pred_suffix: str = "", ref_suffix: str = "",
                  on_error: Callable[[dict], None] | None = None, **kwargs: Any) -> ScoringResult:
    """Pair the cases of two folders by case id (:func:`medloss.io.pair_folders`; two volume files are one case)
    and :func:`score_pairs` them; unpaired or unreadable files are errors of the result (and go to ``on_error``).

    Args:
        pred, ref: the prediction and reference folders.
        config: the run's :class:`ScoringConfig` (:func:`scoring_config`).
        pred_suffix, ref_suffix: suffixes stripped from the file names to get the case ids.
        on_error: called with each error record.
        **kwargs: those of :func:`score_pairs` (``executor``, ``progress``, ``part_file``, ``resume``).

    Returns:
        The :class:`ScoringResult`: rows, summary, recipe and errors.
    """
    from medloss.io import resolve_inputs

    batch, pairing = resolve_inputs(pred, ref, pred_suffix, ref_suffix)
    errors = [{"case": c, "pred": p, "ref": None, "error": f"{p}: no reference for case {c!r} in {ref}"}
              for c, p in pairing.missing_reference]
    errors += [{"case": c, "pred": None, "ref": r, "error": f"{r}: no prediction for case {c!r} in {pred}"}
               for c, r in pairing.missing_prediction]
    errors += [{"case": c, "pred": None, "ref": None, "error": msg} for c, _, msg in pairing.unreadable]
    if on_error is not None:
        for e in errors:
            on_error(e)
    result = score_pairs(pairing.pairs, config, on_error=on_error, errors=errors, **kwargs)
    result.batch = batch
    return result
