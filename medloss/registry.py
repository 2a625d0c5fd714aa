"""The registry of medloss losses: name -> class path, paper, one-line summary, defaults and bundle ``_target_``.

It is the index the CLI (``medloss losses list|show``), the docs and the contract tests iterate over; bundle configs
do not need it (they use the full dotted ``_target_``, see :func:`target`). Importing this module does not import
torch; :func:`defaults` and :func:`load` do.
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass

from medloss.errors import InvalidOptionError, did_you_mean


@dataclass(frozen=True)
class LossInfo:
    """One registered loss."""

    name: str
    module: str
    family: str  # "region", "voxel", "compound", "ranking" or "distance"
    summary: str
    paper: str
    #: the activations a caller sets on logits by the constructor flag of that name (``softmax=True``,
    #: ``sigmoid=True``); FocalLoss and AnatomyNetLoss: softmax only (sigmoid is FocalLoss's default, and
    #: ``softmax`` its alias of ``use_softmax``); () for a loss whose activation is fixed
    activations: tuple[str, ...] = ("sigmoid", "softmax")

    @property
    def target(self) -> str:
        """The ``_target_`` string for MONAI bundle configs."""
        return f"medloss.losses.{self.name}"


#: MONAI's option names that choose a loss's activation (the flags of :attr:`LossInfo.activations` among them)
ACTIVATION_OPTIONS = ("softmax", "sigmoid", "use_softmax", "other_act")
FIXED: tuple[str, ...] = ()  # a loss whose activation is fixed (or none): no activation flag
SOFTMAX_ONLY = ("softmax",)

_ENTRIES = [
    LossInfo("DiceLoss", "medloss.losses.dice", "region",
             "Soft Dice, MONAI-compatible (squared_pred, jaccard, batch, weight, ignore_index).",
             "Milletari et al., V-Net, 3DV 2016, arXiv:1606.04797"),
    LossInfo("JaccardLoss", "medloss.losses.dice", "region", "Soft Jaccard / IoU (DiceLoss with jaccard=True).",
             "Rahman & Wang, ISVC 2016"),
    LossInfo("TverskyLoss", "medloss.losses.tversky", "region",
             "Tversky index per class then averaged; alpha on FP, beta on FN.",
             "Salehi et al., MLMI 2017, arXiv:1706.05721"),
    LossInfo("FocalTverskyLoss", "medloss.losses.tversky", "region",
             "(1 - Tversky)^(1/gamma) per class; gamma 4/3, alpha 0.3 (FP), beta 0.7 (FN).",
             "Abraham & Khan, ISBI 2019, arXiv:1810.07842"),
    LossInfo("GeneralizedDiceLoss", "medloss.losses.dice", "region",
             "Class-weighted Dice (1/V^2, 1/V, uniform) with an explicit empty-patch policy.",
             "Sudre et al., DLMIA 2017, arXiv:1707.03237"),
    LossInfo("CrossEntropyLoss", "medloss.losses.voxel", "voxel",
             "torch's cross-entropy on MONAI label layouts: weights, ignore_index, smoothing, soft targets.",
             "Szegedy et al., CVPR 2016 (label smoothing), arXiv:1512.00567", FIXED),
    LossInfo("BCELoss", "medloss.losses.voxel", "voxel",
             "Binary cross-entropy on logits with pos_weight and an ignore mask.",
             "(standard)", FIXED),
    LossInfo("FocalLoss", "medloss.losses.voxel", "voxel",
             "Sigmoid or softmax focal loss, per-class alpha and weight, ignore_index.",
             "Lin et al., ICCV 2017, arXiv:1708.02002", SOFTMAX_ONLY),
    LossInfo("LovaszSoftmaxLoss", "medloss.losses.lovasz", "region",
             "Lovász extension of the per-class Jaccard loss (softmax); classes present/all/list, per_image.",
             "Berman et al., CVPR 2018, arXiv:1705.08790"),
    LossInfo("LovaszHingeLoss", "medloss.losses.lovasz", "ranking",
             "Binary Lovász hinge on logits (per image by default).",
             "Berman et al., CVPR 2018, arXiv:1705.08790", FIXED),
    LossInfo("DiceCELoss", "medloss.losses.compound", "compound",
             "Dice + cross-entropy (MONAI-compatible, with ignore_index).",
             "Isensee et al., nnU-Net, Nature Methods 2021"),
    LossInfo("DiceFocalLoss", "medloss.losses.compound", "compound",
             "Dice + focal; softmax focal when Dice uses softmax.",
             "Zhu et al., AnatomyNet, Med. Phys. 2019; Lin et al., ICCV 2017"),
    LossInfo("GeneralizedDiceFocalLoss", "medloss.losses.compound", "compound", "Generalized Dice + focal.",
             "Sudre et al., DLMIA 2017; Lin et al., ICCV 2017"),
    LossInfo("BCEDiceLoss", "medloss.losses.compound", "compound",
             "BCE + sigmoid Dice for binary / multi-label (region) targets.",
             "Isensee et al., nnU-Net, Nature Methods 2021", FIXED),
    LossInfo("ExpLogLoss", "medloss.losses.explog_anatomynet", "compound",
             "Exponential logarithmic: 0.8 (-ln Dice)^0.3 + 0.2 w_l (-ln p)^0.3, per class.",
             "Wong et al., MICCAI 2018, arXiv:1809.00076"),
    LossInfo("AnatomyNetLoss", "medloss.losses.explog_anatomynet", "compound",
             "Batch Dice summed over classes + lambda focal, with a class-availability mask.",
             "Zhu et al., AnatomyNet, Med. Phys. 2019, arXiv:1808.05238", SOFTMAX_ONLY),
    LossInfo("SoftclDiceLoss", "medloss.losses.topology", "region",
             "Soft clDice per class: harmonic mean of topology precision and sensitivity on soft skeletons.",
             "Shit et al., clDice, CVPR 2021, arXiv:2003.07311"),
    LossInfo("SoftDiceclDiceLoss", "medloss.losses.topology", "compound",
             "(1 - alpha) Dice + alpha soft clDice per class (MONAI's arguments).",
             "Shit et al., clDice, CVPR 2021, arXiv:2003.07311"),
    LossInfo("SkeletonRecallLoss", "medloss.losses.topology", "compound",
             "CE + Dice + recall of the tubed reference skeleton (precomputed in the loader).",
             "Kirchhoff et al., Skeleton Recall, ECCV 2024, arXiv:2404.03010"),
    LossInfo("BlobLoss", "medloss.losses.blob", "region",
             "Global Dice + mean Dice per reference lesion (connected component), each lesion counted once.",
             "Kofler et al., blob loss, IPMI 2023, arXiv:2205.08209"),
]
_ENTRIES += [
    LossInfo("TopKLoss", "medloss.losses.topk", "voxel",
             "Mean of the k% largest voxel cross-entropies (nnU-Net's TopK10), pooled over the (DDP) batch.",
             "Wu et al., arXiv:1605.06885; Ma et al., Loss Odyssey, MedIA 2021, arXiv:2005.13449", FIXED),
    LossInfo("DiceTopKLoss", "medloss.losses.topk", "compound",
             "Dice + top-k cross-entropy (nnU-Net's DC_and_topk_loss, DiceTopK10).",
             "Isensee et al., nnU-Net, Nature Methods 2021; Ma et al., MedIA 2021"),
    LossInfo("UnifiedFocalLoss", "medloss.losses.unified_focal", "compound",
             "Symmetric Unified Focal: focal + focal Tversky, any number of classes.",
             "Yeung et al., CMIG 2022, arXiv:2102.04525"),
    LossInfo("AsymmetricUnifiedFocalLoss", "medloss.losses.unified_focal", "compound",
             "Asymmetric Unified Focal (MONAI's name): background suppressed, foreground enhanced; multi-class.",
             "Yeung et al., CMIG 2022, arXiv:2102.04525"),
    LossInfo("BoundaryLoss", "medloss.losses.boundary", "distance",
             "mean(p * phi) with phi the reference's signed distance map (precomputed by SignedDistanceMapd).",
             "Kervadec et al., MIDL 2019 / MedIA 2021, arXiv:1812.07032"),
    LossInfo("HausdorffDTLoss", "medloss.losses.boundary", "distance",
             "(p - g)^2 (d_p^a + d_g^a), MONAI's numbers; reference field precomputed, edt on CPU.",
             "Karimi & Salcudean, IEEE TMI 2020, arXiv:1904.10030"),
]
_ENTRIES += [
    LossInfo("MaskedDiceLoss", "medloss.losses.dice", "region",
             "DiceLoss on input and target multiplied by a (B, 1, *S) mask passed to forward (MONAI's).",
             "Milletari et al., V-Net, 3DV 2016, arXiv:1606.04797"),
    LossInfo("MCCLoss", "medloss.losses.mcc", "region",
             "1 - Matthews correlation coefficient per class from TP, FP, FN and TN (background counts).",
             "Abhishek & Hamarneh, ISBI 2021, arXiv:2010.13454"),
    LossInfo("GeneralizedWassersteinDiceLoss", "medloss.losses.wasserstein", "region",
             "Dice on Wasserstein errors under a class distance matrix: cheap confusions of similar classes.",
             "Fidon et al., BrainLes 2017, arXiv:1707.00478", FIXED),
    LossInfo("NACLLoss", "medloss.losses.calibration", "compound",
             "CE + alpha |K * onehot(y) - logits|: logits pulled to the local class mix (calibration).",
             "Murugesan et al., MICCAI 2023, arXiv:2303.06268", FIXED),
    LossInfo("LogHausdorffDTLoss", "medloss.losses.boundary", "distance", "log(1 + HausdorffDTLoss), MONAI's numbers.",
             "Karimi & Salcudean, IEEE TMI 2020, arXiv:1904.10030"),
]
LOSSES: dict[str, LossInfo] = {entry.name: entry for entry in _ENTRIES}


def register(info: LossInfo) -> LossInfo:
    """Add a loss (e.g. from a new module of medloss); names are unique."""
    if info.name in LOSSES:
        raise InvalidOptionError(f"a loss named {info.name!r} is already registered.")
    LOSSES[info.name] = info
    return info


def names() -> list[str]:
    return list(LOSSES)


def get(name: str) -> LossInfo:
    """Look up a loss by class name (case-insensitive, with or without the ``Loss`` suffix)."""
    if name in LOSSES:
        return LOSSES[name]
    folded = {key.lower(): key for key in LOSSES}
    for candidate in (name.lower(), name.lower() + "loss"):
        if candidate in folded:
            return LOSSES[folded[candidate]]
    raise InvalidOptionError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}.{did_you_mean(name, LOSSES)}")


def target(name: str) -> str:
    """The ``_target_`` string of a loss for MONAI bundle configs, e.g. ``medloss.losses.ExpLogLoss``."""
    return get(name).target


def load(name: str) -> type:
    """Import and return the loss class."""
    info = get(name)
    return getattr(importlib.import_module(info.module), info.name)


def defaults(name: str) -> dict[str, object]:
    """Constructor keyword arguments and their defaults, read from the class signature; a constructor that passes
    ``**kwargs`` on (``JaccardLoss``) also has its base class's."""
    out: dict[str, object] = {}
    for cls in load(name).__mro__:
        if "__init__" not in vars(cls):
            continue
        params = inspect.signature(vars(cls)["__init__"]).parameters.values()
        for p in params:
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                out.setdefault(p.name, p.default)
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return out
