"""medloss: correct, lean 3-D segmentation losses for MONAI, bundles that train on them, and volume scoring.

Importing medloss imports torch but neither monai, the I/O backends nor the CLI.
"""
from importlib.metadata import PackageNotFoundError, version

from medloss import functional
from medloss.losses import (
    BCELoss,
    CrossEntropyLoss,
    DiceLoss,
    FocalLoss,
    FocalTverskyLoss,
    GeneralizedDiceLoss,
    JaccardLoss,
    TverskyLoss,
)

try:
    __version__ = version("medloss")
except PackageNotFoundError:  # pragma: no cover - source tree without install
    __version__ = "0.0.0+unknown"

__all__ = [
    "BCELoss",
    "CrossEntropyLoss",
    "DiceLoss",
    "FocalLoss",
    "FocalTverskyLoss",
    "GeneralizedDiceLoss",
    "JaccardLoss",
    "TverskyLoss",
    "__version__",
    "functional",
]
