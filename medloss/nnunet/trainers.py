"""medloss's named nnU-Net trainers (``-tr NAME``); ``medloss nnunet trainers`` lists them.

Every trainer follows nnU-Net's conventions (:mod:`medloss.nnunet.factory`): softmax over label maps without the
background in Dice terms, batch Dice from the plans, the dataset's ignore label, nnU-Net's deep-supervision
weights, and a sigmoid form for region-based datasets where the loss has one. The two trainers named after
nnU-Net's losses reproduce nnU-Net's numbers (``match_nnunet``), so their logs compare with nnU-Net's:

* ``nnUNetTrainerMedlossDiceCE`` — nnU-Net's default ``DC_and_CE_loss`` (``DC_and_BCE_loss`` for regions);
* ``nnUNetTrainerMedlossDiceTopK10`` — nnU-Net's ``DC_and_topk_loss`` (k = 10 %), except that voxels with the
  ignore label are left out of the top-k pool (nnU-Net counts them as zeros; see ``TopKLoss``).

``nnUNetTrainerMedlossDiceBoundary``'s region term is nnU-Net's ``DC_and_CE_loss`` too (its logged loss is that
term and the boundary term, weighted by the epoch's schedule).
"""
from __future__ import annotations

from medloss.nnunet.factory import Rebalance, make_trainer

nnUNetTrainerMedlossDiceCE = make_trainer(
    "DiceCELoss", name="nnUNetTrainerMedlossDiceCE", region_loss="BCEDiceLoss", match_nnunet=True)
nnUNetTrainerMedlossDiceTopK10 = make_trainer(
    "DiceTopKLoss", name="nnUNetTrainerMedlossDiceTopK10", k=10.0, match_nnunet=True)
nnUNetTrainerMedlossDiceFocal = make_trainer(
    "DiceFocalLoss", name="nnUNetTrainerMedlossDiceFocal", region_loss="DiceFocalLoss")
# alpha weighs false positives, beta false negatives: 0.3 / 0.7 is Salehi et al.'s best setting for lesions
nnUNetTrainerMedlossTverskyCE = make_trainer(
    "TverskyLoss", name="nnUNetTrainerMedlossTverskyCE", alpha=0.3, beta=0.7, ce=1.0, region_loss="TverskyLoss",
    region_options={"alpha": 0.3, "beta": 0.7})
nnUNetTrainerMedlossFocalTverskyCE = make_trainer(
    "FocalTverskyLoss", name="nnUNetTrainerMedlossFocalTverskyCE", ce=1.0, region_loss="FocalTverskyLoss")
nnUNetTrainerMedlossGDLCE = make_trainer(
    "GeneralizedDiceLoss", name="nnUNetTrainerMedlossGDLCE", ce=1.0, region_loss="GeneralizedDiceLoss")
# ExpLog's and Lovász-Softmax's sigmoid forms score one channel, AnatomyNet has none: no region-based variant;
# AnatomyNet's Dice is over the batch by definition (no `batch` option)
nnUNetTrainerMedlossExpLog = make_trainer("ExpLogLoss", name="nnUNetTrainerMedlossExpLog")
nnUNetTrainerMedlossAnatomyNet = make_trainer("AnatomyNetLoss", name="nnUNetTrainerMedlossAnatomyNet")
nnUNetTrainerMedlossLovaszSoftmax = make_trainer("LovaszSoftmaxLoss", name="nnUNetTrainerMedlossLovaszSoftmax")
# the soft skeleton of the reference is computed in the loss (clDice's own definition), not a map from the loader
nnUNetTrainerMedlossSoftDiceclDice = make_trainer(
    "SoftDiceclDiceLoss", name="nnUNetTrainerMedlossSoftDiceclDice", region_loss="SoftDiceclDiceLoss")
# maps from the label, computed in nnU-Net's data pipeline at every deep-supervision scale (MapTrainer); the
# skeleton and components are of a label map, so neither has a region-based variant
# Kirchhoff et al.'s trainer: CE + Dice + recall of the tubed skeleton, weights 1 / 1 / 1
nnUNetTrainerMedlossSkeletonRecall = make_trainer("SkeletonRecallLoss", name="nnUNetTrainerMedlossSkeletonRecall")
# Kofler et al.'s blob Dice: 2 x global Dice + 1 x mean Dice per reference component
nnUNetTrainerMedlossBlob = make_trainer("BlobLoss", name="nnUNetTrainerMedlossBlob")
# Kervadec et al.'s recipe: a region loss (here nnU-Net's Dice + CE, with nnU-Net's values) plus the boundary loss
# of the foreground classes, weighted max(0.1, 1 - 0.01 e) and 0.01 + 0.01 e at epoch e (the authors' schedule)
nnUNetTrainerMedlossDiceBoundary = make_trainer(
    "BoundaryLoss", name="nnUNetTrainerMedlossDiceBoundary", rebalance=Rebalance("DiceCELoss"), match_nnunet=True)
# Karimi & Salcudean's HD-DT losses, MONAI's definition and defaults (alpha 2, no background): the reference's
# distance field |phi| comes from the same signed distance maps; the prediction's is recomputed at every step
nnUNetTrainerMedlossHausdorffDT = make_trainer("HausdorffDTLoss", name="nnUNetTrainerMedlossHausdorffDT")
nnUNetTrainerMedlossLogHausdorffDT = make_trainer("LogHausdorffDTLoss", name="nnUNetTrainerMedlossLogHausdorffDT")

__all__ = [
    "nnUNetTrainerMedlossAnatomyNet",
    "nnUNetTrainerMedlossBlob",
    "nnUNetTrainerMedlossDiceBoundary",
    "nnUNetTrainerMedlossDiceCE",
    "nnUNetTrainerMedlossDiceFocal",
    "nnUNetTrainerMedlossDiceTopK10",
    "nnUNetTrainerMedlossExpLog",
    "nnUNetTrainerMedlossFocalTverskyCE",
    "nnUNetTrainerMedlossGDLCE",
    "nnUNetTrainerMedlossHausdorffDT",
    "nnUNetTrainerMedlossLogHausdorffDT",
    "nnUNetTrainerMedlossLovaszSoftmax",
    "nnUNetTrainerMedlossSkeletonRecall",
    "nnUNetTrainerMedlossSoftDiceclDice",
    "nnUNetTrainerMedlossTverskyCE",
]
#: the named trainers, in the order ``medloss nnunet trainers`` lists them (nnU-Net's baselines first)
TRAINERS: dict[str, type] = {trainer.__name__: trainer for trainer in (
    nnUNetTrainerMedlossDiceCE, nnUNetTrainerMedlossDiceTopK10, nnUNetTrainerMedlossDiceFocal,
    nnUNetTrainerMedlossTverskyCE, nnUNetTrainerMedlossFocalTverskyCE, nnUNetTrainerMedlossGDLCE,
    nnUNetTrainerMedlossExpLog, nnUNetTrainerMedlossAnatomyNet, nnUNetTrainerMedlossLovaszSoftmax,
    nnUNetTrainerMedlossSoftDiceclDice, nnUNetTrainerMedlossSkeletonRecall, nnUNetTrainerMedlossBlob,
    nnUNetTrainerMedlossDiceBoundary, nnUNetTrainerMedlossHausdorffDT, nnUNetTrainerMedlossLogHausdorffDT)}
