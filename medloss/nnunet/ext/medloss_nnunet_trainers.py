"""medloss's named nnU-Net trainers, for nnU-Net's ``nnUNet_extTrainer`` search.

nnU-Net imports this file by its bare module name from the folder ``medloss nnunet path`` prints; re-exporting the
classes (rather than defining them here) keeps one class object per trainer, whichever way it was found.
"""
from medloss.nnunet.trainers import *  # noqa: F403 (every trainer, by its own name, is what nnU-Net looks up)
from medloss.nnunet.trainers import __all__  # noqa: F401
