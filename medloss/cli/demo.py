"""``medloss demo``: train a lesion-segmentation bundle on synthetic data, predict, score — no download, CPU-friendly.

The pipeline lives in :func:`medloss.tour.run_demo`; this module only parses flags and prints where things are.
"""
from __future__ import annotations

import sys

import click

from medloss.tour import DEMO_DEFAULTS, plural


@click.command(name="demo", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--output-dir", "-o", default="medloss_demo_output", show_default=True,
              type=click.Path(file_okay=False, path_type=str), help="Folder for all demo outputs.")
@click.option("--epochs", type=click.IntRange(min=1), default=DEMO_DEFAULTS["epochs"], show_default=True,
              help="Training epochs.")
@click.option("--num-samples", type=click.IntRange(min=2), default=DEMO_DEFAULTS["num_samples"], show_default=True,
              help="Synthetic cases to generate (a quarter are validated, predicted and scored).")
@click.option("--size", type=click.IntRange(min=16), default=DEMO_DEFAULTS["size"], show_default=True,
              help="Side of the synthetic volumes, in voxels.")
@click.option("--roi-size", type=click.IntRange(min=16), default=DEMO_DEFAULTS["roi_size"], show_default=True,
              help="Side of training patches and of the sliding window, in voxels.")
@click.option("--seed", type=int, default=DEMO_DEFAULTS["seed"], show_default=True, help="Data and training seed.")
@click.option("--learning-rate", type=float, default=DEMO_DEFAULTS["learning_rate"], show_default=True,
              help="Initial learning rate (cosine decay over the epochs).")
@click.option("--bundle", default="tversky_lesion", show_default=True, help="Shipped bundle to train.")
@click.option("--device", default=None, help="torch device, e.g. cpu or cuda:0 [default: cuda if available, else cpu].")
@click.option("--verbose", "-v", is_flag=True, help="Show MONAI's full training log.")
@click.option("--overwrite", is_flag=True, help="Replace the outputs of an earlier demo in OUTPUT_DIR.")
def demo(output_dir: str, epochs: int, num_samples: int, size: int, roi_size: int, seed: int, learning_rate: float,
         bundle: str, device: str | None, verbose: bool, overwrite: bool) -> None:
    """Generate synthetic lesions, train a bundle briefly, predict and score the result.

    Everything goes into OUTPUT_DIR: the data, the best checkpoint, the metrics CSV and plot, the predictions
    (NIfTI) and the scores (CSV and JSON from `medloss score`). The defaults took 80 s on an idle 2-core CPU
    VM with one thread (58 s with two), several minutes on a busy one; the run prints its own timing.
    """
    from rich.console import Console

    from medloss.errors import MedlossError
    from medloss.tour import run_demo

    console = Console(highlight=False)
    try:
        result = run_demo(output_dir, epochs=epochs, num_samples=num_samples, size=size, roi_size=roi_size,
                          seed=seed, learning_rate=learning_rate, bundle=bundle, device=device, verbose=verbose,
                          overwrite=overwrite, echo=lambda line: console.print(line, markup=False, soft_wrap=True))
    except MedlossError as err:
        click.echo(f"medloss demo: error: {err}", err=True)
        sys.exit(2)
    total = sum(result.seconds.values())
    console.print()
    console.print(f"[bold]Done in {total:.0f} s[/bold] (loading torch and MONAI {result.seconds['load']:.0f} s, "
                  f"data {result.seconds['data']:.0f} s, training "
                  f"{result.seconds['train']:.0f} s, inference {result.seconds['inference']:.0f} s, scoring "
                  f"{result.seconds['score']:.0f} s). Best validation Dice {result.best_val_dice:.3f}; "
                  f"scored mean Dice {result.mean_dice:.3f} over {plural(len(result.predictions), 'case')}.",
                  soft_wrap=True)
    out = result.output_dir
    rows = [("synthetic data", out / "data"), ("checkpoint (best val Dice)", result.checkpoint),
            ("last-epoch checkpoint (--resume)", out / "models" / f"checkpoint_epoch={epochs}.pt"),
            ("metrics per epoch", result.metrics_csv), ("loss / Dice plot", result.plot),
            ("predictions (NIfTI)", out / "predictions"), ("reference labels", out / "reference"),
            ("scores", f"{result.scores_csv}  {result.scores_json}")]
    for name, path in rows:
        console.print(f"  {name:<33} {path}", markup=False, soft_wrap=True)
    console.print(f"Re-score: medloss score {out / 'predictions'} {out / 'reference'} --pred-suffix _seg",
                  markup=False, soft_wrap=True)
    console.print(f"Train the bundle yourself: medloss bundle init {bundle} my_bundle && cd my_bundle && "
                  "python -m monai.bundle run --config_file configs/train.json", markup=False, soft_wrap=True)
