"""NnunetLoss: nnU-Net's targets turned into medloss's (needs torch only, runs without nnU-Net)."""
from __future__ import annotations

import torch
from torch import nn

from medloss.nnunet.adapter import REGION_IGNORE, NnunetLoss, WeightedSum


class _Spy(nn.Module):
    """Records the target it is given; returns a loss whose gradient is 1 everywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[torch.Tensor] = []

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.targets.append(target)
        return input.sum()


def test_region_target_loses_the_ignore_channel_and_comes_in_the_logits_dtype():
    """A floating target keeps medloss's fused sigmoid path (an int16 one takes the eager path: 8x the time)."""
    spy = _Spy()
    x = torch.zeros(1, 2, 2, 2, 2)
    regions = torch.tensor([1, 0, 1, 1, 0, 0, 1, 0], dtype=torch.int16).view(1, 1, 2, 2, 2).repeat(1, 2, 1, 1, 1)
    ignored = torch.zeros(1, 1, 2, 2, 2, dtype=torch.int16)
    ignored.view(-1)[:3] = 1
    NnunetLoss(spy, ignore_label=4, regions=True)(x, torch.cat([regions, ignored], 1))
    (target,) = spy.targets
    assert target.dtype == torch.float32 and target.shape == (1, 2, 2, 2, 2)
    expected = regions.float().masked_fill(ignored.bool(), REGION_IGNORE)
    assert torch.equal(target, expected)


def test_offset_is_subtracted_and_an_unsupervised_patch_has_no_gradient():
    spy = _Spy()
    x = torch.ones(1, 3, 2, 2, 2, requires_grad=True)
    loss = NnunetLoss(spy, ignore_label=3, regions=False, offset=1.0)
    assert loss(x, torch.zeros(1, 1, 2, 2, 2, dtype=torch.int16)).item() == 24.0 - 1.0
    value = loss(x, torch.full((1, 1, 2, 2, 2), 3, dtype=torch.int16))
    (grad,) = torch.autograd.grad(value, x)
    assert value.item() == -1.0 and torch.count_nonzero(grad) == 0
    assert len(spy.targets) == 1  # the fully ignored patch never reached the loss


def test_weighted_sum_skips_zero_weights():
    spy = _Spy()
    x = torch.ones(1, 2, 2, 2, 2)
    total = WeightedSum([(1.0, spy), (0.5, spy), (0.0, spy)])(x, torch.zeros(1, 1, 2, 2, 2))
    assert total.item() == 1.5 * 16 and len(spy.targets) == 2
