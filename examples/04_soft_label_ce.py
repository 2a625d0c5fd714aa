"""Cross-entropy with soft (probability) targets, e.g. from label smoothing or averaged annotators.

Run: python examples/04_soft_label_ce.py
"""
import torch

from medloss.losses import CrossEntropyLoss

torch.manual_seed(0)
logits = torch.randn(1, 3, 4, 4, 4, dtype=torch.float64)
labels = torch.randint(0, 3, (1, 4, 4, 4))
eps = 0.1
onehot = torch.nn.functional.one_hot(labels, 3).movedim(-1, 1).double()
soft = (1 - eps) * onehot + eps / 3  # label smoothing written as a soft target

by_hand = -(soft * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
soft_ce = CrossEntropyLoss()(logits, soft)
smoothed = CrossEntropyLoss(label_smoothing=eps)(logits, labels)
print(f"by hand {by_hand.item():.10f}  soft target {soft_ce.item():.10f}  label_smoothing {smoothed.item():.10f}")
assert torch.allclose(by_hand, soft_ce, rtol=1e-12) and torch.allclose(soft_ce, smoothed, rtol=1e-12)
