"""Passing argmax'd predictions to cross-entropy is a mistake medloss refuses with a clear error.

Run: python examples/05_argmax_misuse_error.py
"""
import torch

from medloss.errors import MedlossError
from medloss.losses import CrossEntropyLoss

torch.manual_seed(0)
logits = torch.randn(1, 3, 4, 4, 4)
labels = torch.randint(0, 3, (1, 1, 4, 4, 4))
prediction = logits.argmax(dim=1, keepdim=True)  # hard labels: the gradient is gone, CE is meaningless

for wrong in (prediction, prediction.float()):
    try:
        CrossEntropyLoss()(wrong, labels)
    except MedlossError as exc:
        print(f"{type(exc).__name__}: {exc}")
    else:
        raise SystemExit("argmax'd predictions were accepted")
