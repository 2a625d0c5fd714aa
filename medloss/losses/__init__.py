"""Loss modules of medloss: ``torch.nn.modules.loss._Loss`` subclasses with MONAI's argument names.

Use them in training loops, or in MONAI bundle configs by full dotted path, e.g.
``{"_target_": "medloss.losses.DiceLoss", "softmax": true, "to_onehot_y": true}``.
"""
from medloss.losses.deep_supervision import DeepSupervisionLoss
from medloss.losses.compound import BCEDiceLoss, DiceCELoss, DiceFocalLoss, GeneralizedDiceFocalLoss
from medloss.losses.dice import DiceLoss, GeneralizedDiceLoss, JaccardLoss
from medloss.losses.lovasz import LovaszHingeLoss, LovaszSoftmaxLoss
from medloss.losses.paper import AnatomyNetLoss, ExpLogLoss
from medloss.losses.tversky import FocalTverskyLoss, TverskyLoss
from medloss.losses.voxel import BCELoss, CrossEntropyLoss, FocalLoss
from medloss.losses.boundary import BoundaryLoss, HausdorffDTLoss
from medloss.losses.topk import DiceTopKLoss, TopKLoss
from medloss.losses.unified_focal import AsymmetricUnifiedFocalLoss, UnifiedFocalLoss
from medloss.losses.blob import BlobLoss
from medloss.losses.topology import SkeletonRecallLoss, SoftclDiceLoss, SoftDiceclDiceLoss

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
]
