"""Softmax + cross-entropy by hand vs medloss.losses.CrossEntropyLoss on a 3-D volume; the gradient is p - y.

Run: python examples/01_softmax_ce_by_hand.py
"""
import torch

from medloss.losses import CrossEntropyLoss

torch.manual_seed(0)
logits = torch.randn(2, 3, 4, 4, 4, dtype=torch.float64, requires_grad=True)  # (B, C, D, H, W)
labels = torch.randint(0, 3, (2, 1, 4, 4, 4))  # (B, 1, D, H, W), as MONAI passes labels

# by hand: p = softmax over classes, loss = mean over voxels of -log p[label]
p = torch.exp(logits) / torch.exp(logits).sum(dim=1, keepdim=True)
onehot = torch.nn.functional.one_hot(labels[:, 0], 3).movedim(-1, 1).double()
by_hand = -(onehot * torch.log(p)).sum(dim=1).mean()

library = CrossEntropyLoss()(logits, labels)
(grad,) = torch.autograd.grad(library, logits)

n_voxels = labels.numel()
expected_grad = (p - onehot).detach() / n_voxels  # d(mean CE)/d logits = (p - y) / N
print(f"by hand {by_hand.item():.10f}  medloss {library.item():.10f}")
print(f"max |grad - (p - y)/N| = {(grad - expected_grad).abs().max().item():.2e}")
assert torch.allclose(by_hand, library, rtol=1e-12)
assert torch.allclose(grad, expected_grad, rtol=1e-10, atol=1e-14)
