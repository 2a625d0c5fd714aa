"""nnU-Net v2 trainers for medloss's losses, without forking nnU-Net.

nnU-Net (>= 2.8) looks for trainer classes it does not ship in the folders listed in the ``nnUNet_extTrainer``
environment variable; :func:`trainer_folder` is medloss's (``medloss nnunet path`` prints it), so::

    export nnUNet_extTrainer=$(medloss nnunet path)
    nnUNetv2_train 1 3d_fullres 0 -tr nnUNetTrainerMedlossDiceTopK10

trains with medloss's DiceTopK loss, nnU-Net's deep supervision, ignore label, batch Dice and region-based
training. ``medloss nnunet train|predict`` do the same and also work with a CPU-only torch, where nnU-Net's own
trainer search fails (see :mod:`medloss.nnunet.launch`).

* :mod:`medloss.nnunet.adapter` — one scale's loss in nnU-Net's target conventions (torch only).
* :mod:`medloss.nnunet.factory` — :func:`~medloss.nnunet.factory.make_trainer`: an ``nnUNetTrainer`` subclass
  for any registered loss and options (needs ``nnunetv2``: ``pip install medloss[nnunet]``).
* :mod:`medloss.nnunet.maps` — the skeleton, component and signed distance maps of the map-based losses, computed
  in nnU-Net's data pipeline at every deep-supervision scale.
* :mod:`medloss.nnunet.trainers` — the named trainers (``medloss nnunet trainers`` lists them).

Nothing else in medloss imports this package; this module itself imports neither torch nor nnU-Net.
"""
from __future__ import annotations

from pathlib import Path

#: the module that holds the named trainers inside :func:`trainer_folder`; nnU-Net imports it by this bare name
EXT_MODULE = "medloss_nnunet_trainers"


def trainer_folder() -> str:
    """The folder to list in ``nnUNet_extTrainer`` (it holds only :data:`EXT_MODULE`)."""
    return str(Path(__file__).resolve().parent / "ext")
