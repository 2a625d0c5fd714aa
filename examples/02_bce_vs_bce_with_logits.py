"""BCE on sigmoid probabilities vs BCE with logits (medloss.losses.BCELoss): same value, but only the logit form
is stable for large logits.

Run: python examples/02_bce_vs_bce_with_logits.py
"""
import torch

from medloss.losses import BCELoss

torch.manual_seed(0)
logits = torch.randn(2, 1, 8, 8, 8, dtype=torch.float64)
target = (torch.rand(2, 1, 8, 8, 8) > 0.7).double()

p = torch.sigmoid(logits)
bce_on_probs = -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()
bce_with_logits = BCELoss()(logits, target)
print(f"BCE(sigmoid(x)) {bce_on_probs.item():.10f}  BCEWithLogits {bce_with_logits.item():.10f}")
assert torch.allclose(bce_on_probs, bce_with_logits, rtol=1e-12)

# far from zero, sigmoid saturates in float32 and the probability form returns inf; the logit form does not
big = torch.full((1, 1, 2, 2, 2), 40.0)
zero = torch.zeros_like(big)
p32 = torch.sigmoid(big)
naive = -(zero * torch.log(p32) + (1 - zero) * torch.log(1 - p32)).mean()
stable = BCELoss()(big, zero)
print(f"logit 40, target 0 (float32): naive {naive.item()}  with logits {stable.item():.4f}")
assert torch.isinf(naive) and torch.isfinite(stable) and abs(stable.item() - 40.0) < 1e-4
