"""Loss modules of medloss: ``torch.nn.modules.loss._Loss`` subclasses with MONAI's argument names.

Use them in training loops, or in MONAI bundle configs by full dotted path, e.g.
``{"_target_": "medloss.losses.DiceLoss", "softmax": true, "to_onehot_y": true}``.
"""
from medloss.losses.dice import DiceLoss, GeneralizedDiceLoss, JaccardLoss
from medloss.losses.tversky import FocalTverskyLoss, TverskyLoss
from medloss.losses.voxel import BCELoss, CrossEntropyLoss, FocalLoss

__all__ = [
    "BCELoss",
    "CrossEntropyLoss",
    "DiceLoss",
    "FocalLoss",
    "FocalTverskyLoss",
    "GeneralizedDiceLoss",
    "JaccardLoss",
    "TverskyLoss",
]
