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
                "allow_uncovered_labels")
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
    return None


def _parse_targets(labels: str | None, regions: tuple[str, ...]) -> list[int] | None:
    """``--labels`` as a list (None when not given); checks ``--region`` and that every row name is unique."""
    from medloss.scoring import check_target_names, parse_label_list, resolve_regions

    label_list = list(parse_label_list(labels, "'--labels'")) if labels is not None else None
    check_target_names(label_list or [], resolve_regions(regions))
    return label_list


def score_case(case: str, pred_path: str, ref_path: str, opts: dict) -> tuple[list[dict], str | None]:
    """Read, check and score one case; return ``(rows, None)`` or ``([], "one-line error")``."""
    import warnings

    from medloss.errors import MedlossError
    from medloss.io import as_label_array, check_geometry, read_volume
    from medloss.scoring import UncoveredLabelWarning, score_arrays

    try:
        ref = read_volume(ref_path)
        pred = read_volume(pred_path)
        check_geometry(pred, ref, opts["geometry_tolerance"])
        ref_arr = as_label_array(ref.array, ref_path, opts["ignore_index"])
        pred_arr = as_label_array(pred.array, pred_path, opts["ignore_index"])
        with warnings.catch_warnings(record=True) as caught:  # the run reports unscored labels once, at its end
            warnings.simplefilter("always", UncoveredLabelWarning)
            rows = score_arrays(pred_arr, ref_arr, ref.spacing, labels=opts["labels"], surface=opts["surface"],
                                tolerance=opts["tolerance"], lesions=opts["lesions"],
                                ignore_index=opts["ignore_index"], empty=opts["empty"],
                                worst_distance=opts["worst_distance"], percentile=opts["percentile"], case=case,
                                workers=opts["kd_workers"], connectivity=opts["connectivity"],
                                regions=opts["regions"], instances=opts["lesions"] is not None,
                                uncovered=opts["uncovered"])
        for w in caught:
            if isinstance(w.message, UncoveredLabelWarning):
                for row in rows:
                    row["unscored_labels"] = w.message.labels
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return rows, None
    except MedlossError as exc:
        return [], str(exc)
    except MemoryError:
        return [], f"{pred_path}: out of memory while scoring this case."


def _fill_absent_labels(rows: list[dict], opts: dict) -> None:
    """Folder mode with default labels: a label scored in some case but absent from both volumes of another case
    gets that case's both-empty row (from the same scorer), so every case has the same labels."""
    import numpy as np

    from medloss.scoring import score_arrays

    labels = sorted({r["label"] for r in rows})  # integer labels only: not called when regions are scored
    by_case: dict[str, dict] = {}
    for r in rows:
        by_case.setdefault(r["case"], {})[r["label"]] = r
    zeros = np.zeros((1, 1, 1), np.uint8)
    for case, have in by_case.items():
        missing = [lab for lab in labels if lab not in have]
        if not missing:
            continue
        template = next(iter(have.values()))
        spacing = [float(v) for v in template["spacing_mm"].split("x")]
        for row in score_arrays(zeros, zeros, spacing, labels=missing, surface=opts["surface"],
                                tolerance=opts["tolerance"], lesions=opts["lesions"], empty=opts["empty"],
                                worst_distance=opts["worst_distance"], percentile=opts["percentile"], case=case,
                                instances=opts["lesions"] is not None):
            row["spacing_mm"] = template["spacing_mm"]
            rows.append(row)
    rows.sort(key=lambda r: (r["case"], r["label"]))


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
              help="Lesion conventions of an official evaluator (implies --lesions; README table): brats23[-men, "
                   "-met, -ssa, -ped] = BraTS 2023 lesion-wise code, brats25[-mets, -ped] = brats-evaluation, "
                   "autopet, isles, default.")
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
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes scoring cases in parallel (folders).")
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
          no_csv_summary, workers, pred_suffix, ref_suffix, quiet, loss_name, activation, loss_options):
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
    try:
        code = _run(pred, ref, label_list, ignore_index, surface, tolerance, percentile, empty, worst_distance,
                    lesions, lesion_preset, (connectivity, lesion_dilation, lesion_min_volume, lesion_matching,
                                             lesion_threshold), geometry_tolerance, csv_path, json_path, plot_path,
                    no_csv_summary, workers, pred_suffix, ref_suffix, quiet, regions, instances_path,
                    allow_uncovered_labels)
    except MedlossError as exc:
        _err(str(exc))
        sys.exit(1)
    sys.exit(code)


def _err(msg: str) -> None:
    click.echo("medloss score: error: " + " ".join(str(msg).split()), err=True)


def _run(pred, ref, labels, ignore_index, surface, tolerance, percentile, empty, worst_distance, lesions,
         lesion_preset, lesion_opts, geometry_tolerance, csv_path, json_path, plot_path, no_csv_summary, workers,
         pred_suffix, ref_suffix, quiet, regions=(), instances_path=None, allow_uncovered=False) -> int:
    from rich.console import Console

    from medloss.cli.processes import run_outputs
    from medloss.io import resolve_inputs
    from medloss.scoring import columns, coverage_summary, lesion_config, resolve_regions, worst_distance_mm
    from medloss.scoring.presets import preset_defaults
    from medloss.scoring.report import (
        print_report,
        recipe,
        summarize,
        write_csv,
        write_instances_csv,
        write_json,
        write_plot,
    )

    connectivity, dilation, min_volume, matching, threshold = lesion_opts
    spec = lesion_preset if lesion_preset else bool(lesions or any(v is not None for v in lesion_opts))
    cfg = lesion_config(spec, connectivity=int(connectivity) if connectivity else None, dilation=dilation,
                        exclude_volume_mm3=min_volume, matching=matching, threshold=threshold)
    surface, worst_distance, empty, regions = preset_defaults(cfg, surface=surface, worst_distance=worst_distance,
                                                              empty=empty, labels=labels, regions=regions or None)
    worst_distance_mm((1, 1, 1), (1, 1, 1), worst_distance)  # validate early
    preset_regions = bool(regions) and labels is None and regions is getattr(cfg, "regions", None)
    region_list = resolve_regions(regions) if regions else None
    batch, pairing = resolve_inputs(pred, ref, pred_suffix, ref_suffix)
    opts = dict(labels=labels, regions=region_list, surface=surface, tolerance=tolerance, lesions=cfg,
                ignore_index=ignore_index, empty=empty, worst_distance=worst_distance, percentile=percentile,
                connectivity=None, geometry_tolerance=geometry_tolerance, kd_workers=1 if workers > 1 else -1,
                uncovered="error" if preset_regions and not allow_uncovered else "warn")
    errors: list[dict[str, Any]] = [
        {"case": c, "pred": p, "ref": None, "error": f"{p}: no reference for case {c!r} in {ref}"}
        for c, p in pairing.missing_reference]
    errors += [{"case": c, "pred": None, "ref": r, "error": f"{r}: no prediction for case {c!r} in {pred}"}
               for c, r in pairing.missing_prediction]
    errors += [{"case": c, "pred": None, "ref": None, "error": msg} for c, _, msg in pairing.unreadable]
    for e in errors:
        _err(e["error"])
    rows: list[dict] = []
    results = _score_all(pairing.pairs, opts, workers, show_progress=batch)
    for (case, p, r), (case_rows, err) in zip(pairing.pairs, results, strict=True):
        if err:
            _err(err)
            errors.append({"case": case, "pred": p, "ref": r, "error": err})
        rows.extend(case_rows)
    if not rows:
        if not batch and errors:
            return 1
        _err(f"no case could be scored ({len(errors)} error(s)); nothing written.")
        return 1
    if batch and labels is None and region_list is None:
        _fill_absent_labels(rows, opts)
    summary = summarize(rows, n_cases=len({r["case"] for r in rows}))
    summary["n_errors"] = len(errors)
    summary.update(_coverage_warnings(coverage_summary(rows), summary["n_cases"]))
    spacing: dict[str, Any] = {}
    for row in rows:
        spacing.setdefault(row["case"], row["spacing_mm"])
    rec = recipe(surface=surface, tolerance=tolerance, percentile=percentile, empty=empty,
                 worst_distance=worst_distance, labels=labels, ignore_index=ignore_index, lesion_cfg=cfg,
                 geometry_tolerance=geometry_tolerance, spacing=spacing, regions=region_list)
    cols = columns(cfg if cfg is not None else False)
    if not quiet:
        print_report(Console(width=None if sys.stdout.isatty() else 160), rows, summary, rec)
    with run_outputs() as outputs:  # all written, then renamed together: the last step of the run
        if csv_path:
            write_csv(csv_path, rows, cols, None if no_csv_summary else summary, outputs=outputs)
        if json_path:
            write_json(json_path, rows, summary, rec, errors, outputs=outputs)
        if plot_path:
            write_plot(plot_path, rows, outputs=outputs)
        if instances_path:
            write_instances_csv(instances_path, rows, outputs=outputs)
    return 1 if errors else 0


def _coverage_warnings(coverage: dict, n_cases: int) -> dict:
    """One stderr line for the cases with unscored labels and one for the labels/regions no case holds; returns
    the findings for the JSON summary."""
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
    return coverage


def _warn(msg: str) -> None:
    click.echo("medloss score: warning: " + " ".join(str(msg).split()), err=True)


def _score_all(pairs, opts: dict, workers: int, show_progress: bool) -> list[tuple[list[dict], str | None]]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    results: list = [None] * len(pairs)
    progress = Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=Console(stderr=True), disable=not show_progress or len(pairs) < 2, transient=False)
    if workers <= 1 or len(pairs) < 2:
        with progress:
            task = progress.add_task("scoring", total=len(pairs))
            for i, (case, p, r) in enumerate(pairs):
                results[i] = score_case(case, p, r, opts)
                progress.advance(task)
        return results
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from medloss.cli.processes import end_pool, init_worker

    # fork (Linux) reuses the imported modules; every job is submitted, so every worker is forked, before the
    # progress display starts its refresh thread. Elsewhere, spawn. Workers die with this process (init_worker).
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() and sys.platform == "linux" else "spawn"
    pool = ProcessPoolExecutor(max_workers=min(workers, len(pairs)), mp_context=multiprocessing.get_context(method),
                               initializer=init_worker, initargs=(os.getpid(),))
    try:
        futures = {pool.submit(score_case, case, p, r, opts): i for i, (case, p, r) in enumerate(pairs)}
        with progress:
            task = progress.add_task("scoring", total=len(pairs))
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    results[i] = fut.result()
                except Exception as exc:  # a crashed worker: report the case, keep the others
                    results[i] = ([], f"{pairs[i][1]}: scoring failed ({type(exc).__name__}: {exc})")
                progress.advance(task)
    except BaseException:  # SIGINT/SIGTERM (RunInterrupted) or a failure here: no job may go on running
        end_pool(pool)
        raise
    pool.shutdown()
    return results
