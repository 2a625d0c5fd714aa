"""Loss modules of medloss: ``torch.nn.modules.loss._Loss`` subclasses with MONAI's argument names.

Use them in training loops, or in MONAI bundle configs by full dotted path, e.g.
``{"_target_": "medloss.losses.DiceLoss", "softmax": true, "to_onehot_y": true}``.
"""
from medloss.losses.blob import BlobLoss
from medloss.losses.boundary import BoundaryLoss, HausdorffDTLoss, LogHausdorffDTLoss
from medloss.losses.calibration import NACLLoss
from medloss.losses.compound import BCEDiceLoss, DiceCELoss, DiceFocalLoss, GeneralizedDiceFocalLoss
from medloss.losses.deep_supervision import DeepSupervisionLoss
from medloss.losses.dice import DiceLoss, GeneralizedDiceLoss, JaccardLoss, MaskedDiceLoss
from medloss.losses.explog_anatomynet import AnatomyNetLoss, ExpLogLoss
from medloss.losses.lovasz import LovaszHingeLoss, LovaszSoftmaxLoss
from medloss.losses.mcc import MCCLoss
from medloss.losses.topk import DiceTopKLoss, TopKLoss
from medloss.losses.topology import SkeletonRecallLoss, SoftclDiceLoss, SoftDiceclDiceLoss
from medloss.losses.tversky import FocalTverskyLoss, TverskyLoss
from medloss.losses.unified_focal import AsymmetricUnifiedFocalLoss, UnifiedFocalLoss
from medloss.losses.voxel import BCELoss, CrossEntropyLoss, FocalLoss
from medloss.losses.wasserstein import GeneralizedWassersteinDiceLoss

# MONAI's lower-case and short aliases (monai.losses.dice), so that switching the import is the whole migration
Dice = DiceLoss
dice_ce = DiceCELoss
dice_focal = DiceFocalLoss
generalized_dice = GeneralizedDiceLoss
generalized_dice_focal = GeneralizedDiceFocalLoss
generalized_wasserstein_dice = GeneralizedWassersteinDiceLoss

__all__ = [
    "AnatomyNetLoss",
    "BCEDiceLoss",
    "BCELoss",
    "DeepSupervisionLoss",
    "DiceCELoss",
    "DiceFocalLoss",
    "ExpLogLoss",
    "GeneralizedDiceFocalLoss",
    "CrossEntropyLoss",
    "DiceLoss",
    "FocalLoss",
    "FocalTverskyLoss",
    "GeneralizedDiceLoss",
    "JaccardLoss",
    "LovaszHingeLoss",
    "LovaszSoftmaxLoss",
    "TverskyLoss",
    "AsymmetricUnifiedFocalLoss",
    "BoundaryLoss",
    "DiceTopKLoss",
    "HausdorffDTLoss",
    "TopKLoss",
    "UnifiedFocalLoss",
    "BlobLoss",
    "SkeletonRecallLoss",
    "SoftclDiceLoss",
    "SoftDiceclDiceLoss",
    "GeneralizedWassersteinDiceLoss",
    "LogHausdorffDTLoss",
    "MaskedDiceLoss",
    "MCCLoss",
    "NACLLoss",
    "Dice",
    "dice_ce",
    "dice_focal",
    "generalized_dice",
    "generalized_dice_focal",
    "generalized_wasserstein_dice",
]
