"""The ``medloss`` command line: a click group whose subcommands are imported only when invoked.

``medloss --help`` and ``medloss score --help`` stay fast because nothing heavy (torch, monai) is imported until a
command that needs it runs.
"""
from __future__ import annotations

import importlib
import importlib.util

import click

# command name -> "module:attribute" of the click command; modules are imported on first use only.
_COMMANDS = {
    "bundle": "medloss.cli.bundle:bundle",
    "demo": "medloss.cli.demo:demo",
    "losses": "medloss.cli.losses:losses",
    "nnunet": "medloss.cli.nnunet:nnunet",
    "score": "medloss.cli.score:score",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | {n for n in _COMMANDS if _available(n)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _COMMANDS and _available(cmd_name):
            module, attr = _COMMANDS[cmd_name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, cmd_name)


def _available(name: str) -> bool:
    module = _COMMANDS[name].split(":")[0]
    return importlib.util.find_spec(module) is not None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("medloss")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "unknown"


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), prog_name="medloss")
def main() -> None:
    """medloss: 3-D segmentation losses for MONAI, bundles that train on them, and volume scoring."""
