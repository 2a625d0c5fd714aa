"""``medloss losses list`` and ``medloss losses show NAME``: the registry on the terminal."""
from __future__ import annotations

import inspect
import sys

import click


@click.group()
def losses() -> None:
    """List the losses medloss provides, or explain one."""


@losses.command("list")
def list_losses() -> None:
    """One line per loss: name, family, paper and the bundle `_target_` string."""
    from rich.console import Console
    from rich.table import Table

    from medloss import registry

    table = Table(title="medloss losses (details: medloss losses show NAME)")
    table.add_column("name", no_wrap=True)
    table.add_column("family", no_wrap=True)
    table.add_column("summary", overflow="fold")
    table.add_column("_target_ (bundle configs)", no_wrap=True)
    for info in registry.LOSSES.values():
        table.add_row(info.name, info.family, info.summary, info.target)
    console = Console()
    Console(width=max(140, console.width)).print(table)


@losses.command("show")
@click.argument("name")
def show_loss(name: str) -> None:
    """Formula, defaults, paper and `_target_` of one loss (NAME: e.g. ExpLogLoss, dice, focal-tversky)."""
    from medloss import registry
    from medloss.errors import MedlossError

    try:
        info = registry.get(name.replace("-", "").replace("_", ""))
    except MedlossError as exc:
        click.echo(f"medloss losses show: {exc}", err=True)
        sys.exit(2)
    cls = registry.load(info.name)
    click.echo(f"{info.name}  ({info.family})")
    click.echo(f"_target_: {info.target}")
    click.echo(f"paper:    {info.paper}")
    click.echo("defaults:")
    for key, value in registry.defaults(info.name).items():
        click.echo(f"  {key} = {value!r}")
    click.echo("")
    click.echo(inspect.cleandoc(cls.__doc__ or ""))
