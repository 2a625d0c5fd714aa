"""``medloss score --loss NAME PROB REF``: a registered loss evaluated on saved probability / logit volumes."""
from __future__ import annotations

import sys

import click


def run_loss_scoring(pred: str, ref: str, *, name: str, activation: str, options: tuple[str, ...],
                     geometry_tolerance: float, csv_path, json_path, pred_suffix: str, ref_suffix: str,
                     quiet: bool, err) -> int:
    """Score every (PROB, REF) pair with the loss; rows {case, label, loss, value}. Returns the exit code."""
    from rich.console import Console
    from rich.table import Table

    from medloss.cli.processes import run_outputs
    from medloss.errors import InputRangeError
    from medloss.io import Volume, as_label_array, check_geometry, read_volume, resolve_inputs
    from medloss.scoring.loss_values import build_loss, loss_rows, parse_loss_options
    from medloss.scoring.report import write_csv, write_json

    loss, per_class = build_loss(name, activation, parse_loss_options(options))
    loss_name = loss.name
    _, pairing = resolve_inputs(pred, ref, pred_suffix, ref_suffix)
    errors = [{"case": c, "error": f"{p}: no reference for case {c!r}"} for c, p in pairing.missing_reference]
    errors += [{"case": c, "error": f"{r}: no prediction for case {c!r}"} for c, r in pairing.missing_prediction]
    errors += [{"case": c, "error": msg} for c, _, msg in pairing.unreadable]
    rows: list[dict] = []
    for case, p, r in pairing.pairs:
        try:
            prob = read_volume(p, channels=True)
            reference = read_volume(r)
            spatial = Volume(prob.array[0], prob.spacing, prob.origin, prob.direction, prob.path)
            check_geometry(spatial, reference, geometry_tolerance)
            labels = as_label_array(reference.array, r)
            rows.extend(loss_rows(prob.array, labels, loss, per_class, case=case, name=loss_name))
        except (ValueError, RuntimeError) as exc:  # typed input errors; RuntimeError: a loss's own failure
            hint = " (medloss score: pass --activation softmax or sigmoid for logits)" if isinstance(
                exc, InputRangeError) and "--activation" not in str(exc) else ""
            errors.append({"case": case, "error": f"{p}: {exc}{hint}"})
    for e in errors:
        err(e["error"])
    for text in loss.warned:  # the loss's warnings, once each and on one line
        click.echo(f"medloss score: warning: {text}", err=True)
    if not rows:
        err(f"no case could be scored with {loss_name}; nothing written.")
        return 1
    recipe = {"loss": loss_name, "activation": activation, "options": list(options), "reduction": loss.reduction,
              "per_class": per_class}
    if not quiet:
        table = Table(title=f"medloss score --loss {loss_name}", title_justify="left")
        for col in ("case", "label", "value"):
            table.add_column(col)
        for row in rows:
            table.add_row(str(row["case"]), str(row["label"]), f"{row['value']:.6g}")
        Console(width=None if sys.stdout.isatty() else 120).print(table)
    with run_outputs() as outputs:  # both written, then renamed together
        if csv_path:
            write_csv(csv_path, rows, ["case", "label", "loss", "value"], None, outputs=outputs)
        if json_path:
            write_json(json_path, rows, {"n_cases": len({r["case"] for r in rows})}, recipe, errors, outputs=outputs)
    return 1 if errors else 0


__all__ = ["run_loss_scoring"]
