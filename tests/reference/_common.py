"""Small helpers shared by the reference modules (conversion, flattening, activations).

Nothing here implements a loss; it only turns tensors into float64 NumPy arrays of
shape (B, C, N) / (B, N) so that the loss modules can loop over b, c, n.
"""

from __future__ import annotations

import math

import numpy as np


def to_numpy(x) -> np.ndarray:
    """Tensor / array / list -> float64 NumPy array (detached, on CPU)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def flat_bcn(x) -> np.ndarray:
    """(B, C, *S) -> (B, C, N) float64."""
    a = to_numpy(x)
    if a.ndim < 2:
        raise ValueError(f"expected (B, C, *S), got shape {a.shape}")
    return a.reshape(a.shape[0], a.shape[1], -1)


def flat_valid(valid, batch: int, n: int) -> np.ndarray:
    """Valid-voxel mask (B, *S) or (B, 1, *S) -> (B, N) float64 of 0/1; None -> all ones."""
    if valid is None:
        return np.ones((batch, n), dtype=np.float64)
    v = to_numpy(valid).reshape(batch, -1)
    if v.shape[1] != n:
        raise ValueError(f"valid mask has {v.shape[1]} voxels per sample, expected {n}")
    if not np.all((v == 0) | (v == 1)):
        raise ValueError("valid mask must contain only 0 and 1")
    return v


def sigmoid(x: float) -> float:
    """Numerically stable logistic function of one float."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def log_sigmoid(x: float) -> float:
    """log(sigmoid(x)) for one float, stable for large |x|."""
    if x >= 0:
        return -math.log1p(math.exp(-x))
    return x - math.log1p(math.exp(x))


def log_softmax_vector(z: list[float]) -> list[float]:
    """log-softmax of one voxel's logit vector (max-shifted log-sum-exp)."""
    m = max(z)
    s = 0.0
    for v in z:
        s += math.exp(v - m)
    lse = m + math.log(s)
    return [v - lse for v in z]


def softmax_np(logits, axis: int = 1) -> np.ndarray:
    """Channel softmax of a whole array (float64), used by tests to build probabilities."""
    a = to_numpy(logits)
    a = a - a.max(axis=axis, keepdims=True)
    e = np.exp(a)
    return e / e.sum(axis=axis, keepdims=True)


def sigmoid_np(logits) -> np.ndarray:
    a = to_numpy(logits)
    return 1.0 / (1.0 + np.exp(-a))


def one_hot_np(labels, num_classes: int, ignore_value=None) -> np.ndarray:
    """Integer label map (B, *S) or (B, 1, *S) -> one-hot (B, C, *S) float64.

    Voxels whose label is ``ignore_value`` (or outside [0, C)) get an all-zero vector.
    """
    lab = to_numpy(labels)
    if lab.ndim >= 2 and lab.shape[1] == 1:
        lab = lab[:, 0]
    out = np.zeros((lab.shape[0], num_classes) + lab.shape[1:], dtype=np.float64)
    for c in range(num_classes):
        out[:, c] = (lab == c).astype(np.float64)
    if ignore_value is not None:
        out[:, :, ...] *= (lab != ignore_value)[:, None].astype(np.float64)
    return out


def mean_or(values, empty: float = 0.0) -> float:
    values = list(values)
    if not values:
        return empty
    return sum(values) / len(values)
