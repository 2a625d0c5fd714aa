"""``medloss bundle list`` and ``medloss bundle init NAME DIR``: the MONAI bundles that ship with medloss."""
from __future__ import annotations

import sys

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def bundle() -> None:
    """List the shipped MONAI bundles, or copy one into a folder to train and run it."""


@bundle.command("list")
def list_cmd() -> None:
    """One line per bundle: name, version, loss `_target_` and task."""
    from medloss.data.bundles import list_bundles
    from medloss.errors import MedlossError

    try:
        bundles = list_bundles()
    except MedlossError as exc:
        click.echo(f"medloss bundle list: error: {exc}", err=True)
        sys.exit(1)
    for b in bundles:
        click.echo(f"{b['name']:<20} {b['version']:<8} {b['loss']:<36} {b['task']}")
    if bundles:
        click.echo(f"(in {bundles[0]['path'].rsplit('/', 1)[0]}; copy one with: medloss bundle init NAME DIR)")


@bundle.command("init")
@click.argument("name")
@click.argument("directory", type=click.Path(file_okay=False, path_type=str))
def init_cmd(name: str, directory: str) -> None:
    """Copy bundle NAME into the new folder DIRECTORY, ready for `python -m monai.bundle run`."""
    from medloss.data.bundles import init_bundle
    from medloss.errors import MedlossError

    try:
        dest = init_bundle(name, directory)
    except MedlossError as exc:
        click.echo(f"medloss bundle init: error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"bundle {name!r} copied to {dest}. Train it (synthetic data, a GPU if there is one), then predict:")
    click.echo(f"  cd {dest}")
    click.echo("  python -m monai.bundle run --config_file configs/train.json")
    click.echo("  python -m monai.bundle run --config_file configs/inference.json")
    click.echo("See docs/README.md there for real data (--dataset_dir, --datalist), resuming and multi-GPU.")
