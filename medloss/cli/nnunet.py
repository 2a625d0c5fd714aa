"""``medloss nnunet trainers|path|train|predict``: medloss's losses inside nnU-Net v2 (``pip install medloss[nnunet]``).

``train`` and ``predict`` pass every argument to nnU-Net's ``nnUNetv2_train`` / ``nnUNetv2_predict`` unchanged
(``medloss nnunet train -h`` shows nnU-Net's help); they set ``nnUNet_extTrainer`` and resolve the trainer first,
so they also work where the stock commands cannot import nnU-Net's own trainers (CPU-only torch).
"""
from __future__ import annotations

import importlib.util
import sys

import click

_PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}
_INSTALL_HINT = "nnU-Net v2 is not installed; install it with: pip install 'medloss[nnunet]' (pin your torch)"


def _fail(command: str, message: str) -> None:
    click.echo(f"medloss nnunet {command}: {message}", err=True)
    sys.exit(2)


def _require_nnunet(command: str) -> None:
    if importlib.util.find_spec("nnunetv2") is None:
        _fail(command, _INSTALL_HINT)


@click.group()
def nnunet() -> None:
    """nnU-Net v2 trainers for medloss's losses (list them, the nnUNet_extTrainer folder, train, predict)."""


@nnunet.command("path")
def path() -> None:
    """Print the folder to put in nnUNet_extTrainer (export nnUNet_extTrainer=$(medloss nnunet path))."""
    from medloss.nnunet import trainer_folder

    click.echo(trainer_folder())


@nnunet.command("trainers")
def trainers() -> None:
    """List medloss's named trainers: -tr name, loss, options, extra (B)CE weight, map from the label, scheduled
    region loss and region-based form."""
    _require_nnunet("trainers")
    from medloss.nnunet.factory import spec_of
    from medloss.nnunet.trainers import TRAINERS

    for name, trainer in TRAINERS.items():
        spec = spec_of(trainer)
        options = ", ".join(f"{key}={value!r}" for key, value in spec.options.items()) or "defaults"
        extra = f" + {spec.ce:g} x CE" if spec.ce else ""
        regions = spec.region_loss or "not supported"
        parity = "  [values as nnU-Net's]" if spec.match_nnunet else ""
        label_map = f"; {spec.map_kind} map computed in the data pipeline" if spec.map_kind else ""
        plan = spec.rebalance
        scheduled = (f"; at epoch e: x ({plan.alpha_start:g} + {plan.alpha_step:g} e) + {plan.loss} x "
                     f"max({plan.region_floor:g}, 1 - {plan.alpha_step:g} e)" if plan is not None else "")
        click.echo(f"{name}\t{spec.loss}{extra} ({options}){label_map}{scheduled}; regions: {regions}{parity}")


def _run(command: str, args: tuple[str, ...]) -> None:
    _require_nnunet(command)
    from medloss.errors import MedlossError
    from medloss.nnunet.launch import run

    try:
        run(command, list(args))
    except MedlossError as exc:
        _fail(command, str(exc))


@nnunet.command("train", context_settings=_PASS_THROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def train(args: tuple[str, ...]) -> None:
    """nnUNetv2_train with medloss's trainers, e.g.:
    medloss nnunet train 1 3d_fullres 0 -tr nnUNetTrainerMedlossDiceTopK10"""
    _run("train", args)


@nnunet.command("predict", context_settings=_PASS_THROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def predict(args: tuple[str, ...]) -> None:
    """nnUNetv2_predict with medloss's trainers (same arguments, e.g. -i IN -o OUT -d 1 -c 3d_fullres -tr NAME)."""
    _run("predict", args)
