"""region_stats against brute-force sums, and the one-hot-free label-map path against the dense path."""
from __future__ import annotations

import pytest
import torch

from medloss.functional import region_stats
from tests._helpers import random_case


def brute_force(p, g, valid, squared):
    """Explicit per-(b, c) sums over voxels of (B, C, N) tensors."""
    B, C, N = p.shape
    out = torch.zeros(4, B, C, dtype=torch.float64)
    for b in range(B):
        for c in range(C):
            for n in range(N):
                v = 1.0 if valid is None else float(valid[b, 0, n])
                pe = p[b, c, n] ** 2 if squared else p[b, c, n]
                out[0, b, c] += v * p[b, c, n] * g[b, c, n]
                out[1, b, c] += v * pe
                out[2, b, c] += v * g[b, c, n]
                out[3, b, c] += v
    return out


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("ignore_index", [None, 255])
def test_label_map_path_matches_brute_force(squared, ignore_index):
    logits, labels = random_case((2, 3, 4, 3, 2), ignore_index=ignore_index)
    stats = region_stats(logits, labels, softmax=True, to_onehot_y=True, squared_pred=squared,
                         ignore_index=ignore_index)
    p = torch.softmax(logits.detach(), 1).reshape(2, 3, -1)
    lab = labels.reshape(2, 1, -1)
    valid = None if ignore_index is None else (lab != ignore_index).double()
    g = torch.nn.functional.one_hot(lab[:, 0].clamp(max=2), 3).movedim(-1, 1).double()
    ref = brute_force(p, g, valid, squared)
    torch.testing.assert_close(stats.tp, ref[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(stats.pred, ref[1], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(stats.target, ref[2], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(stats.voxels, ref[3][:, :1], rtol=0, atol=0)


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("ignore_index", [None, 255])
@pytest.mark.parametrize("batch", [False, True])
def test_label_map_path_equals_dense_path_value_and_gradient(squared, ignore_index, batch):
    logits, labels = random_case((2, 4, 5, 4, 3), ignore_index=ignore_index)
    onehot = torch.nn.functional.one_hot(labels[:, 0].clamp(max=3), 4).movedim(-1, 1).double()
    if ignore_index is not None:  # mark ignored voxels in every channel of the one-hot target
        onehot = onehot.masked_fill((labels == ignore_index).expand_as(onehot), ignore_index)
    weights = torch.rand(4, 2, 4, dtype=torch.float64)

    def run(target, to_onehot_y):
        x = logits.detach().clone().requires_grad_()
        s = region_stats(x, target, softmax=True, to_onehot_y=to_onehot_y, squared_pred=squared, batch=batch,
                         ignore_index=ignore_index, check_input=False)
        total = sum((w[: t.shape[0], : t.shape[1]] * t).sum() for w, t in zip(weights, s, strict=True))
        total.backward()
        return torch.stack([t.detach() for t in s[:3]]), x.grad

    v1, g1 = run(labels, True)
    v2, g2 = run(onehot, False)
    torch.testing.assert_close(v1, v2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g1, g2, rtol=1e-10, atol=1e-12)


def test_float32_sums_are_accurate_on_large_volumes():
    """1M voxels of fp16 logits: the tables agree with float64 sums to 1e-6 relative."""
    logits, labels = random_case((1, 3, 100, 100, 100), dtype=torch.float16, seed=3)
    s16 = region_stats(logits, labels, softmax=True, to_onehot_y=True)
    s64 = region_stats(logits.detach().double(), labels, softmax=True, to_onehot_y=True)
    assert s16.tp.dtype == torch.float32
    for a, b in zip(s16, s64, strict=True):
        torch.testing.assert_close(a.double(), b, rtol=1e-6, atol=0)
