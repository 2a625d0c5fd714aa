"""``medloss score PRED REF``: score predicted label volumes against references, per label and per lesion.

PRED and REF are two volumes (files or DICOM series folders) or two folders of cases paired by case id. Geometry
(shape, spacing, origin, direction) is checked before scoring. Metrics are computed by
:func:`medloss.scoring.score_arrays`; see :mod:`medloss.scoring.report` for the output files.

Exit status: 0 when every case was scored; 1 when any case failed or was unpaired (the others are still scored
and written; the failures are on stderr and under ``errors`` in the JSON), or when the input is unusable (nothing
is written then); 2 for a usage error; 130 / 143 when SIGINT / SIGTERM ended the run (one line on stderr, workers
ended, no temporary left; the output files are the previous ones, or all new ones if the signal came after they were
written). The outputs of a run are written together at its end (:class:`medloss.io.OutputSet`). Heavy modules
(scipy, nibabel, SimpleITK, matplotlib) are imported only when the command runs, and torch never.
"""
from __future__ import annotations

import sys
from typing import Any

import click

from medloss.cli.processes import ends_on_signals

_SURFACES = ("voxel", "surfel")
# the keys of medloss.scoring.presets.LESION_PRESETS (a test keeps them equal; importing it here would load numpy)
_PRESETS = ("default", "autopet", "isles", "brats23", "brats23-ssa", "brats23-ped", "brats23-men", "brats23-met",
            "brats25", "brats25-mets", "brats25-ped")


# options read only by metric scoring, and options read only by --loss: given with the other mode they would be
# silently ignored, so they are refused (a usage error)
_METRIC_ONLY = ("labels", "ignore_index", "regions", "surface", "tolerance", "percentile", "empty", "worst_distance",
                "lesions", "lesion_preset", "lesion_matching", "lesion_threshold", "instances_path", "connectivity",
                "lesion_dilation", "lesion_min_volume", "plot_path", "no_csv_summary", "workers",
                "allow_uncovered_labels", "executor", "scheduler", "resume", "metrics")
_LOSS_ONLY = ("activation", "loss_options")
_LESION_OPTIONS = ("lesions", "lesion_preset", "lesion_matching", "lesion_threshold", "connectivity",
                   "lesion_dilation", "lesion_min_volume")


def _given(ctx: click.Context, names: tuple[str, ...]) -> list[str]:
    """The options among ``names`` set on the command line (or the environment), as the user spells them."""
    from click.core import ParameterSource

    return [param.opts[0] for param in ctx.command.params if param.name in names
            and ctx.get_parameter_source(param.name) not in (None, ParameterSource.DEFAULT)]


def _verb(options: list[str]) -> str:
    return "apply" if len(options) > 1 else "applies"


def _usage_error(ctx: click.Context, loss_name: str | None) -> str | None:
    """One line naming options that the chosen mode would ignore, or ``None``."""
    if loss_name is not None:
        extra = _given(ctx, _METRIC_ONLY)
        if extra:
            hint = " (for the loss's own: --loss-option ignore_index=N)" if "--ignore-index" in extra else ""
            return (f"{', '.join(extra)} {_verb(extra)} to metric scoring, not to --loss {loss_name}, which scores "
                    f"every class of PRED{hint}; leave {'them' if len(extra) > 1 else 'it'} out, or drop --loss.")
        return None
    extra = _given(ctx, _LOSS_ONLY)
    if extra:
        return f"{', '.join(extra)} {_verb(extra)} only with --loss NAME (loss values on probability or logit volumes)."
    if _given(ctx, ("instances_path",)) and not _given(ctx, _LESION_OPTIONS):
        return ("--instances-csv lists reference lesions and predicted components, which only lesion scoring finds: "
                "add --lesions (or --lesion-preset NAME), or leave --instances-csv out.")
    params = ctx.params
    if params["scheduler"] and params["executor"] == "local":
        return "--scheduler is the address of a Dask scheduler: use it with --executor dask, or leave it out."
    if params["scheduler"] and params["workers"]:
        return "--workers sets the size of a local pool or cluster; the workers of --scheduler are the cluster's own."
    if params["resume"] and not (params["csv_path"] or params["json_path"]):
        return "--resume reads the part file written beside --json (or --csv): give the same --json/--csv as the run."
    return None


def _parse_targets(labels: str | None, regions: tuple[str, ...]) -> list[int] | None:
    """``--labels`` as a list (None when not given); checks ``--region`` and that every row name is unique."""
    from medloss.scoring import check_target_names, parse_label_list, resolve_regions

    label_list = list(parse_label_list(labels, "'--labels'")) if labels is not None else None
    check_target_names(label_list or [], resolve_regions(regions))
    return label_list


@click.command(name="score", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("pred", type=click.Path(path_type=str))
@click.argument("ref", type=click.Path(path_type=str))
@click.option("--labels", default=None, metavar="1,2,...",
              help="Labels to score, comma-separated (default: every foreground label of the reference or "
                   "prediction).")
@click.option("--ignore-index", type=int, default=None, help="Reference value whose voxels are left out of scoring.")
@click.option("--region", "regions", multiple=True, metavar="NAME=L1,L2,...",
              help="Score the union of these labels as one region named NAME (repeatable), e.g. WT=1,2,3; "
                   "default: the lesion preset's regions (brats23: WT, TC, ET).")
@click.option("--surface", type=click.Choice(_SURFACES), default=None,
              help="Surface convention: 'voxel' = MONAI voxel centres, 'surfel' = DeepMind area-weighted surfels "
                   "[default: the lesion preset's (brats23: surfel), else voxel].")
@click.option("--tolerance", type=click.FloatRange(min=0, max=1e6), default=1.0, show_default=True,
              help="NSD tolerance in mm.")
@click.option("--percentile", type=click.FloatRange(0, 100), default=95.0, show_default=True,
              help="Percentile of the robust Hausdorff distance (column hd95).")
@click.option("--empty", type=click.Choice(("worst", "nan")), default=None,
              help="Empty-mask policy: 'worst' (documented worst values; both empty = perfect) or 'nan' "
                   "[default: the lesion preset's (brats25: nan, as panoptica), else worst].")
@click.option("--worst-distance", default=None,
              help="HD/HD95/ASSD when exactly one mask is empty: 'diagonal' (of the volume, mm) or a number of mm "
                   "[default: the lesion preset's (brats23: 374), else diagonal].")
@click.option("--lesions", is_flag=True, help="Add lesion-wise (connected-component) detection columns.")
@click.option("--lesion-preset", type=click.Choice(_PRESETS), default=None,
              help="Lesion conventions of an official evaluator (implies --lesions; table in docs/scoring-lesions.md): "
                   "brats23[-men, -met, -ssa, -ped] = BraTS 2023 lesion-wise code, brats25[-mets, -ped] = "
                   "brats-evaluation, autopet, isles, default.")
@click.option("--lesion-matching", type=click.Choice(("overlap", "iou", "dice")), default=None,
              help="Lesion matching: 'overlap' (any voxel, many-to-many) or one-to-one pairs with IoU/Dice >= "
                   "--lesion-threshold, adding PQ/SQ/RQ columns (implies --lesions; default: the preset's).")
@click.option("--lesion-threshold", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="IoU/Dice a pair needs under --lesion-matching iou|dice (default 0.5).")
@click.option("--instances-csv", "instances_path", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="With lesion scoring: also write one row per reference lesion and predicted component to this "
                   "CSV (they are always in the JSON rows under 'instances').")
@click.option("--connectivity", type=click.Choice(("6", "18", "26")), default=None,
              help="Connected-component connectivity (this and the two options below imply --lesions; "
                   "default: the preset's).")
@click.option("--lesion-dilation", type=click.IntRange(min=0), default=None,
              help="Reference dilation (iterations) for lesion matching/merging; brats23: 3 (MEN/MET use 1).")
@click.option("--lesion-min-volume", type=click.FloatRange(min=0), default=None,
              help="Reference lesions of at most this volume (mm³) are not counted; brats23: 50 (MET uses 2).")
@click.option("--allow-uncovered-labels", is_flag=True,
              help="Score a case even when it holds labels that no region of the lesion preset covers (they count "
                   "as background; a warning names them). Without it such a case is an error.")
@click.option("--geometry-tolerance", type=click.FloatRange(min=0), default=1e-3, show_default=True,
              help="Largest spacing/origin difference (mm) and direction-cosine difference accepted.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Write the per-case x per-label rows and summary rows to this CSV file.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Write {rows, summary, recipe, errors} to this JSON file.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Write a PNG box/strip plot of Dice and HD95 per label across cases.")
@click.option("--no-csv-summary", is_flag=True, help="Leave the summary rows out of the CSV.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes scoring cases in parallel (folders) [default: 1; with --executor dask and no "
                   "--scheduler: the CPU count, as a local Dask cluster].")
@click.option("--executor", type=click.Choice(("local", "dask")), default=None,
              help="Where cases are scored: 'local' processes (the default) or a Dask cluster (pip install "
                   "'medloss[dask]'): --scheduler ADDRESS, else a local cluster on 127.0.0.1.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Dask scheduler address (e.g. tcp://10.0.0.5:8786; implies --executor dask). The workers read "
                   "the files themselves: PRED and REF must be paths they can see.")
@click.option("--resume", is_flag=True,
              help="Keep the cases already scored in the part file beside --json/--csv (left by an interrupted run "
                   "with the same options) and score only the others.")
@click.option("--metrics", default=None, metavar="NAME,...",
              help="Per-label metrics to compute: overlap, volume, distance (the default set), boundary_iou "
                   "(table in docs/scoring.md).")
@click.option("--pred-suffix", default="", help="Suffix stripped from prediction names to get case ids (e.g. _pred).")
@click.option("--ref-suffix", default="", help="Suffix stripped from reference names to get case ids (e.g. _seg).")
@click.option("--quiet", "-q", is_flag=True, help="No table on the terminal.")
@click.option("--loss", "loss_name", default=None, metavar="NAME",
              help="Instead of metrics: the value of a registered loss (medloss losses list) on PRED = probability or "
                   "logit volumes (4-D NIfTI X,Y,Z,C or a vector NRRD/MHA) against REF labels; per label where the "
                   "loss is per class.")
@click.option("--activation", type=click.Choice(("none", "softmax", "sigmoid")), default="none", show_default=True,
              help="With --loss: PRED holds probabilities (none; a loss's logit terms get their logits, log p or "
                   "log(p/(1-p))) or logits (softmax / sigmoid, applied by every term).")
@click.option("--loss-option", "loss_options", multiple=True, metavar="KEY=VALUE",
              help="With --loss: a constructor option of the loss (JSON value), e.g. alpha=0.3; repeatable.")
@ends_on_signals("medloss score")
def score(pred, ref, labels, ignore_index, regions, surface, tolerance, percentile, empty, worst_distance, lesions,
          lesion_preset, lesion_matching, lesion_threshold, instances_path, connectivity, lesion_dilation,
          lesion_min_volume, allow_uncovered_labels, geometry_tolerance, csv_path, json_path, plot_path,
          no_csv_summary, workers, executor, scheduler, resume, metrics, pred_suffix, ref_suffix, quiet, loss_name,
          activation, loss_options):
    """Score predicted label volumes PRED against reference volumes REF.

    PRED and REF are two volumes (.nii, .nii.gz, .nrrd, .nhdr, .mha, .mhd, or a DICOM series folder) or two
    folders whose cases are paired by file name. Distances are in mm from the reference spacing.
    """
    from medloss.errors import MedlossError
    from medloss.io import check_output_paths

    usage = _usage_error(click.get_current_context(), loss_name)
    if usage:
        _err(usage)
        sys.exit(2)
    try:
        label_list = _parse_targets(labels, regions)
        # before any scoring: an output must not replace an input or another output, and must be writable
        check_output_paths((pred, ref), {"--csv": csv_path, "--json": json_path, "--plot": plot_path,
                                         "--instances-csv": instances_path})
    except MedlossError as exc:
        _err(str(exc))
        sys.exit(2)
    if loss_name is not None:
        from medloss.cli.score_loss import run_loss_scoring

        try:
            code = run_loss_scoring(pred, ref, name=loss_name, activation=activation, options=loss_options,
                                    geometry_tolerance=geometry_tolerance, csv_path=csv_path, json_path=json_path,
                                    pred_suffix=pred_suffix, ref_suffix=ref_suffix, quiet=quiet, err=_err)
        except MedlossError as exc:
            _err(str(exc))
            sys.exit(1)
        sys.exit(code)
    options = dict(labels=label_list, ignore_index=ignore_index, regions=regions, surface=surface,
                   tolerance=tolerance, percentile=percentile, empty=empty, worst_distance=worst_distance,
                   lesions=lesions, lesion_preset=lesion_preset, connectivity=connectivity, dilation=lesion_dilation,
                   min_volume=lesion_min_volume, matching=lesion_matching, threshold=lesion_threshold,
                   metrics=metrics, allow_uncovered=allow_uncovered_labels, geometry_tolerance=geometry_tolerance)
    outputs = dict(csv_path=csv_path, json_path=json_path, plot_path=plot_path, instances_path=instances_path,
                   no_csv_summary=no_csv_summary)
    try:
        code = _run(pred, ref, options, outputs, dict(executor=executor, scheduler=scheduler, workers=workers),
                    pred_suffix=pred_suffix, ref_suffix=ref_suffix, quiet=quiet, resume=resume)
    except MedlossError as exc:
        _err(str(exc))
        sys.exit(1)
    sys.exit(code)


def _err(msg: str) -> None:
    click.echo("medloss score: error: " + " ".join(str(msg).split()), err=True)


def _config(o: dict):
    from medloss.scoring import LesionOverrides, scoring_config

    lesion = LesionOverrides(connectivity=int(o["connectivity"]) if o["connectivity"] else None,
                             dilation=o["dilation"], min_volume_mm3=o["min_volume"], matching=o["matching"],
                             threshold=o["threshold"])
    return scoring_config(o["lesion_preset"], lesions=o["lesions"], lesion=lesion, labels=o["labels"],
                          regions=o["regions"] or None, surface=o["surface"], tolerance=o["tolerance"],
                          percentile=o["percentile"], empty=o["empty"], worst_distance=o["worst_distance"],
                          ignore_index=o["ignore_index"], metrics=o["metrics"],
                          allow_uncovered_labels=o["allow_uncovered"], geometry_tolerance=o["geometry_tolerance"])


def part_path(csv_path: str | None, json_path: str | None) -> str | None:
    """The part file of a run: beside its JSON (else CSV) output, ``scores.json`` -> ``scores.part.jsonl``."""
    import os

    out = json_path or csv_path
    return None if out is None else os.path.splitext(out)[0] + ".part.jsonl"


def _executor(executor: str | None, scheduler: str | None, workers: int | None):
    from medloss.scoring.executors import resolve_executor

    return resolve_executor("dask" if scheduler or executor == "dask" else "local", scheduler=scheduler,
                            workers=workers)


def _run(pred: str, ref: str, options: dict, outs: dict, where: dict, *, pred_suffix: str, ref_suffix: str,
         quiet: bool, resume: bool) -> int:
    from rich.console import Console

    from medloss.cli.processes import RunInterrupted, run_outputs
    from medloss.scoring import score_folders
    from medloss.scoring.report import print_report

    config = _config(options)
    part = part_path(outs["csv_path"], outs["json_path"])
    with _ProgressLine() as progress:
        result = score_folders(pred, ref, config, pred_suffix=pred_suffix, ref_suffix=ref_suffix,
                               executor=_executor(**where), progress=progress, on_error=lambda e: _err(e["error"]),
                               part_file=part, resume=resume)
    if result.resumed:
        _info(f"resumed: {result.resumed} case(s) were already scored in {part}.")
    summary = result.summary
    if not summary["n_rows"]:
        _remove(part)  # it holds failures only, which --resume would score again anyway
        if not result.batch and result.errors:
            return 1
        _err(f"no case could be scored ({len(result.errors)} error(s)); nothing written.")
        return 1
    _coverage_warnings(summary, summary["n_cases"])
    if not quiet:
        rows = result.rows if summary["n_rows"] <= 40 else []
        print_report(Console(width=None if sys.stdout.isatty() else 160), rows, summary, result.recipe)
    try:
        with run_outputs() as outputs:  # all written, then renamed together: the last step of the run
            result.write(csv=outs["csv_path"], json=outs["json_path"], plot=outs["plot_path"],
                         instances_csv=outs["instances_path"], csv_summary=not outs["no_csv_summary"],
                         outputs=outputs)
    except RunInterrupted as exc:
        if exc.outputs_written:
            _remove(part)
        raise
    _remove(part)
    return 1 if result.errors else 0


def _remove(part: str | None) -> None:
    """The outputs hold every row now: the part file, kept for an unfinished run, is no longer needed."""
    import contextlib
    import os

    if part is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)


def _coverage_warnings(coverage: dict, n_cases: int) -> None:
    """One stderr line for the cases with unscored labels and one for the labels/regions no case holds."""
    unscored = coverage["unscored_labels"]
    if unscored:
        labels = sorted({v for labs in unscored.values() for v in labs})
        first = next(iter(unscored))
        _warn(f"label(s) {labels} are in no scored label or region in {len(unscored)} of {n_cases} case(s) (e.g. "
              f"{first}: {unscored[first]}); their voxels were scored as background (JSON summary: unscored_labels).")
    absent = coverage["absent_everywhere"]
    if absent:
        names = ", ".join(f"label {v}" if isinstance(v, int) else f"region {v}" for v in absent)
        _warn(f"{names}: absent from the reference and the prediction of every case, so "
              f"{'their' if len(absent) > 1 else 'its'} scores are those of two empty masks, not of a segmentation "
              "(check the label values; JSON summary: absent_everywhere).")


def _warn(msg: str) -> None:
    click.echo("medloss score: warning: " + " ".join(str(msg).split()), err=True)


def _info(msg: str) -> None:
    click.echo("medloss score: " + " ".join(str(msg).split()), err=True)


class _ProgressLine:
    """The stderr progress bar of a run of two or more cases, with cases/s and the ETA, fed by the scoring API's
    ``progress`` callback whatever the executor. It starts at the first finished case: a local pool forks its
    workers before that, never while the display's refresh thread runs."""

    def __enter__(self) -> _ProgressLine:
        self._bar: Any = None
        return self

    def __call__(self, p) -> None:
        if p.done == 0 or p.total < 2:
            return
        if self._bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 TextColumn("{task.fields[rate]}"), console=Console(stderr=True), transient=False)
            self._task = self._bar.add_task("scoring", total=p.total, rate="")
            self._bar.start()
        eta = "" if p.eta_s is None else f", ETA {int(p.eta_s // 60)}:{int(p.eta_s % 60):02d}"
        self._bar.update(self._task, completed=p.done, rate=f"{p.rate:.2f} cases/s{eta}")

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
