"""Cross-entropy = LogSoftmax + NLL, with class weights and an ignore label.

Run: python examples/03_ce_is_logsoftmax_nll.py
"""
import torch

from medloss.losses import CrossEntropyLoss

torch.manual_seed(0)
logits = torch.randn(2, 4, 6, 6, 6, dtype=torch.float64)
labels = torch.randint(0, 4, (2, 6, 6, 6))
labels[:, :2] = 255  # unlabelled slab
weight = torch.tensor([0.5, 1.0, 2.0, 4.0], dtype=torch.float64)

nll = torch.nn.NLLLoss(weight=weight, ignore_index=255)(torch.log_softmax(logits, dim=1), labels)
ce = CrossEntropyLoss(weight=weight, ignore_index=255)(logits, labels)
print(f"LogSoftmax+NLL {nll.item():.10f}  medloss CE {ce.item():.10f}")
assert torch.allclose(nll, ce, rtol=1e-12)
