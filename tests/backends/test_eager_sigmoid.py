"""The eager engine's sigmoid tables (medloss/backends/eager/sigmoid.py) against plainly written per-voxel sums, and
their analytic gradient against autograd (gradcheck, float64): label maps (C = 1 and C = 3), dense binary and soft
targets, voxel-wise ignore, squared denominators, BCE and the general sigmoid focal term."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medloss.backends.op import TableOptions, tables

B, N = 2, 16  # 13 counted voxels a sample reach every label and target value; gradcheck costs grow with B * C * N


def _case(channels, layout, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, channels, N, generator=gen, dtype=torch.float64) * 3
    if layout == "map":
        target = torch.randint(0, max(channels, 2), (B, 1, N), generator=gen)
        target[:, :, :3] = 255
        hot = (target == (torch.arange(channels).view(1, -1, 1) if channels > 1 else 1)).double()
        valid = (target != 255).double()
        return x, target, hot * valid, valid
    g = torch.rand(B, channels, N, generator=gen, dtype=torch.float64)
    g = g if layout == "soft" else (g > 0.6).double()
    target = g.clone()
    target[:, :, :3] = 255.0  # every channel of the first voxels: ignored voxel-wise
    valid = torch.ones(B, 1, N, dtype=torch.float64)
    valid[:, :, :3] = 0
    return x, target, g * valid, valid


def _reference(x, g, valid, squared, voxel_term, gamma):
    """Plain per-voxel sums (the module docstring's formulas, written without the engine's factoring)."""
    p = torch.sigmoid(x)
    e = 2 if squared else 1
    tp = (valid * p * g).sum(2)
    pred = (valid * p**e).sum(2)
    target = (valid * g**e).sum(2)
    if voxel_term is None:
        return tp, pred, target, None, None
    bce_pos = -F.logsigmoid(x)  # -log p
    bce_neg = -F.logsigmoid(-x)  # -log(1 - p)
    if voxel_term == "bce":
        return tp, pred, target, (valid * g * bce_pos).sum(2), (valid * (1 - g) * bce_neg).sum(2)
    weight = torch.exp(gamma * F.logsigmoid(-x * (2 * g - 1)))
    elem = weight * F.binary_cross_entropy_with_logits(x, g, reduction="none")
    return tp, pred, target, (valid * g * elem).sum(2), (valid * (1 - g) * elem).sum(2)


@pytest.mark.parametrize("squared", [False, True], ids=["linear", "squared"])
@pytest.mark.parametrize("voxel_term,gamma", [(None, 0.0), ("bce", 0.0), ("focal", 2.0), ("focal", 0.5)])
@pytest.mark.parametrize("channels,layout", [(1, "map"), (3, "map"), (3, "dense"), (2, "soft")])
def test_eager_sigmoid_tables_equal_plain_sums_and_gradcheck(channels, layout, voxel_term, gamma, squared):
    x, target, g, valid = _case(channels, layout)
    options = TableOptions(ignore_index=255, squared=squared, voxel_term=voxel_term, gamma=gamma, check=True,
                           activation="sigmoid", dense=layout != "map", soft=layout == "soft")
    out = tables(x, target, options, "eager")
    ref = _reference(x, g, valid, squared, voxel_term, gamma)
    for name, got, exp in zip(("TP", "PRED", "TARGET", "VPOS", "VNEG"), (*out[:3], out.vpos, out.vneg), ref,
                              strict=True):
        if exp is not None:
            torch.testing.assert_close(got, exp, rtol=1e-12, atol=1e-12, msg=name)
    torch.testing.assert_close(out.voxels, valid.sum(2))

    def f(logits):
        t = tables(logits, target, options, "eager")
        return t.tp, t.pred, t.vpos, t.vneg

    assert torch.autograd.gradcheck(f, (x.clone().requires_grad_(),), fast_mode=True)
