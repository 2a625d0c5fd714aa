"""Reference voxel-wise losses: cross-entropy, BCE-with-logits, sigmoid / softmax focal loss.

sources:
  * Cross-entropy: torch.nn.CrossEntropyLoss semantics (PyTorch docs), label smoothing from
    Szegedy et al., "Rethinking the Inception Architecture", CVPR 2016 (arXiv:1512.00567).
  * BCE with logits + pos_weight: torch.nn.BCEWithLogitsLoss semantics.
  * Focal loss: Lin, Goyal, Girshick, He, Dollar, "Focal Loss for Dense Object Detection",
    ICCV 2017 (arXiv:1708.02002).

All inputs are *logits* (as torch / MONAI take them); every voxel is evaluated on its own in a
Python loop over log-softmax / log-sigmoid values computed with ``math``.

Cross-entropy (class-index target y_n, C classes, smoothing eps, class weight w):
    l_n = (1-eps) * (-w_{y_n} log p_{y_n}) + (eps/C) * sum_c (-w_c log p_c)
    "mean" = sum_{valid n} l_n / sum_{valid n} w_{y_n}         (valid: y_n != ignore_index)
Cross-entropy (probability target t_{n,c}):
    t' = (1-eps) t + eps/C,   l_n = -sum_c w_c t'_{n,c} log p_{n,c},   "mean" = sum_n l_n / N
    (N = number of voxels x batch; no weight normalisation, as in PyTorch).

BCE with logits (per element (b, c, n), x logit, y target, pos_weight pw_c per channel):
    l = -[ pw_c y log sigmoid(x) + (1-y) log(1 - sigmoid(x)) ];   "mean" over valid elements.

Sigmoid focal loss (per element, y in {0, 1}, p = sigmoid(x)):
    p_t = p if y = 1 else 1-p
    l = -alpha_t (1-p_t)^gamma log p_t
    alpha scalar:     alpha_t = alpha if y = 1 else 1-alpha           (torchvision / MONAI)
    alpha per class:  alpha_t = alpha_c if y = 1 else 1               (MONAI 1.6.1 sigmoid_focal_loss;
                      ``per_class_alpha_negative="one_minus"`` gives 1-alpha_c instead)
Softmax focal loss (per voxel and class, y one-hot, p = softmax over the channels passed in):
    l_{n,c} = -alpha_c y_{n,c} (1-p_{n,c})^gamma log p_{n,c}
    alpha scalar: alpha_c = 1-alpha for channel 0, alpha for the others (MONAI 1.6.1);
    alpha per class: alpha_c.
Both focal forms: an optional per-class ``class_weight`` multiplies l (MONAI ``weight``).

Focal reduction over the (B, C', *S) element grid (C' = channels after include_background):
    "none": the element grid, ignored voxels set to 0.
    "mean": no ignore mask -> mean over all B*C'*N elements.
            with an ignore mask -> sum / (n_valid_voxels * C')   [``mask_mean="elements"``, default]
            *Choice documented here*: this is the mean over valid *elements*, consistent with the
            unmasked case.  MONAI 1.6.1 divides by n_valid_voxels only (no x C') when ignore_index is
            set (``mask_mean="voxels"`` reproduces that); medloss documents that as a MONAI
            inconsistency.
    "sum":  ``sum_mode="monai"`` (default, MONAI 1.6.1 FocalLoss): for every (b, c) the mean over the
            valid voxels of that sample (sum / n_valid_b), then summed over (b, c).
            ``sum_mode="plain"``: the plain total sum of all elements.
"""

from __future__ import annotations

import math

import numpy as np

from ._common import flat_bcn, flat_valid, log_sigmoid, log_softmax_vector, to_numpy


# --------------------------------------------------------------------------- cross-entropy
def cross_entropy(
    logits, target, *, weight=None, ignore_index: int = -100, label_smoothing: float = 0.0,
    reduction: str = "mean",
):
    """torch.nn.CrossEntropyLoss by a voxel loop.

    ``target``: integer labels (B, *S) (a (B, 1, *S) map is squeezed) or probabilities (B, C, *S).
    Returns a float for "mean"/"sum", a (B, *S) array for "none".
    """
    X = to_numpy(logits)
    B, C = X.shape[:2]
    spatial = X.shape[2:]
    Xf = X.reshape(B, C, -1)
    N = Xf.shape[2]
    w = [1.0] * C if weight is None else [float(v) for v in to_numpy(weight).reshape(-1)]
    eps = float(label_smoothing)
    T = to_numpy(target)
    if T.ndim == X.ndim and T.shape[1] == 1 and C != 1:
        T = T[:, 0]  # (B, 1, *S) label map -> (B, *S)
        prob_target = False
    elif T.shape == X.shape:
        prob_target = True  # (B, C, *S) class probabilities
    else:
        prob_target = False  # (B, *S) label map
    none = np.zeros((B, N))
    total = 0.0
    denom = 0.0
    for b in range(B):
        for n in range(N):
            logp = log_softmax_vector([float(Xf[b, c, n]) for c in range(C)])
            if prob_target:
                t = T.reshape(B, C, -1)[:, :, n][b]
                loss = 0.0
                for c in range(C):
                    tc = (1.0 - eps) * float(t[c]) + eps / C
                    loss += -w[c] * tc * logp[c]
                none[b, n] = loss
                total += loss
                denom += 1.0
            else:
                y = int(round(float(T.reshape(B, -1)[b, n])))
                if y == ignore_index:
                    continue  # ignored: zero loss, no weight in the denominator
                nll = -w[y] * logp[y]
                smooth = 0.0
                for c in range(C):
                    smooth += -w[c] * logp[c]
                loss = (1.0 - eps) * nll + (eps / C) * smooth
                none[b, n] = loss
                total += loss
                denom += w[y]
    if reduction == "none":
        return none.reshape((B,) + spatial)
    if reduction == "sum":
        return total
    if reduction == "mean":
        return total / denom
    raise ValueError(reduction)


# --------------------------------------------------------------------------- BCE with logits
def bce_with_logits(logits, target, *, pos_weight=None, valid_elements=None, reduction: str = "mean"):
    """Elementwise BCE-with-logits; ``pos_weight`` per channel (C,) or scalar; ``valid_elements``
    a 0/1 array of the full (B, C, *S) shape (None = all valid). Mean over valid elements."""
    X = flat_bcn(logits)
    Y = flat_bcn(target)
    B, C, N = X.shape
    V = np.ones_like(X) if valid_elements is None else flat_bcn(valid_elements)
    if pos_weight is None:
        pw = [1.0] * C
    else:
        a = to_numpy(pos_weight).reshape(-1)
        pw = [float(a[0])] * C if a.size == 1 else [float(v) for v in a]
    none = np.zeros_like(X)
    total = 0.0
    count = 0.0
    for b in range(B):
        for c in range(C):
            for n in range(N):
                if V[b, c, n] == 0:
                    continue
                x = float(X[b, c, n])
                y = float(Y[b, c, n])
                loss = -(pw[c] * y * log_sigmoid(x) + (1.0 - y) * log_sigmoid(-x))
                none[b, c, n] = loss
                total += loss
                count += 1.0
    if reduction == "none":
        return none.reshape(to_numpy(logits).shape)
    if reduction == "sum":
        return total
    if reduction == "mean":
        return total / count
    raise ValueError(reduction)


# --------------------------------------------------------------------------- focal
def _focal_reduce(elem: np.ndarray, V: np.ndarray, masked: bool, reduction: str, shape,
                  mask_mean: str, sum_mode: str):
    B, C, N = elem.shape
    if reduction == "none":
        return elem.reshape(shape)
    if reduction == "mean":
        total = 0.0
        for b in range(B):
            for c in range(C):
                for n in range(N):
                    total += elem[b, c, n]
        if not masked:
            return total / (B * C * N)
        n_valid = sum(V[b, n] for b in range(B) for n in range(N))
        if mask_mean == "elements":
            return total / (n_valid * C)
        if mask_mean == "voxels":
            return total / n_valid
        raise ValueError(mask_mean)
    if reduction == "sum":
        total = 0.0
        for b in range(B):
            n_valid_b = sum(V[b, n] for n in range(N))
            for c in range(C):
                s = 0.0
                for n in range(N):
                    s += elem[b, c, n]
                if sum_mode == "monai":
                    total += s / n_valid_b  # (n_valid_b == N when nothing is masked)
                elif sum_mode == "plain":
                    total += s
                else:
                    raise ValueError(sum_mode)
        return total
    raise ValueError(reduction)


def sigmoid_focal(
    logits, target, valid=None, *, gamma: float = 2.0, alpha=None, class_weight=None,
    reduction: str = "mean", mask_mean: str = "elements", sum_mode: str = "monai",
    per_class_alpha_negative: str = "one",
):
    """Sigmoid focal loss on logits (B, C', *S) with binary targets of the same shape.

    ``valid``: voxel mask (B, *S); the caller has already dropped channels if needed.
    """
    X = flat_bcn(logits)
    Y = flat_bcn(target)
    B, C, N = X.shape
    V = flat_valid(valid, B, N)
    if not np.all((Y == 0) | (Y == 1)):
        raise ValueError("reference sigmoid focal loss expects binary targets")
    a = None if alpha is None else to_numpy(alpha).reshape(-1)
    cw = None if class_weight is None else to_numpy(class_weight).reshape(-1)
    elem = np.zeros((B, C, N))
    for b in range(B):
        for c in range(C):
            for n in range(N):
                if V[b, n] == 0:
                    continue
                x = float(X[b, c, n])
                y = float(Y[b, c, n])
                log_pt = log_sigmoid(x) if y == 1.0 else log_sigmoid(-x)
                pt = math.exp(log_pt)
                loss = -((1.0 - pt) ** gamma) * log_pt
                if a is not None:
                    if a.size == 1 and np.ndim(alpha) == 0:
                        alpha_t = float(a[0]) if y == 1.0 else 1.0 - float(a[0])
                    else:
                        if y == 1.0:
                            alpha_t = float(a[c])
                        else:
                            alpha_t = 1.0 if per_class_alpha_negative == "one" else 1.0 - float(a[c])
                    loss *= alpha_t
                if cw is not None:
                    loss *= float(cw[0]) if cw.size == 1 and np.ndim(class_weight) == 0 else float(cw[c])
                elem[b, c, n] = loss
    return _focal_reduce(elem, V, valid is not None, reduction, to_numpy(logits).shape, mask_mean, sum_mode)


def softmax_focal(
    logits, target, valid=None, *, gamma: float = 2.0, alpha=None, class_weight=None,
    reduction: str = "mean", mask_mean: str = "elements", sum_mode: str = "monai",
):
    """Softmax focal loss: the softmax is taken over exactly the channels passed in.

    (MONAI 1.6.1 FocalLoss(use_softmax=True, include_background=False) drops channel 0 *before*
    the softmax and ignores a scalar alpha; the caller reproduces that by slicing the logits and
    passing alpha=None.)
    """
    X = flat_bcn(logits)
    Y = flat_bcn(target)
    B, C, N = X.shape
    V = flat_valid(valid, B, N)
    if alpha is None:
        a = None
    elif np.ndim(alpha) == 0:
        a = [1.0 - float(alpha)] + [float(alpha)] * (C - 1)
    else:
        a = [float(v) for v in to_numpy(alpha).reshape(-1)]
    cw = None if class_weight is None else to_numpy(class_weight).reshape(-1)
    elem = np.zeros((B, C, N))
    for b in range(B):
        for n in range(N):
            if V[b, n] == 0:
                continue
            logp = log_softmax_vector([float(X[b, c, n]) for c in range(C)])
            for c in range(C):
                y = float(Y[b, c, n])
                loss = -y * ((1.0 - math.exp(logp[c])) ** gamma) * logp[c]
                if a is not None:
                    loss *= a[c]
                if cw is not None:
                    loss *= float(cw[0]) if cw.size == 1 and np.ndim(class_weight) == 0 else float(cw[c])
                elem[b, c, n] = loss
    return _focal_reduce(elem, V, valid is not None, reduction, to_numpy(logits).shape, mask_mean, sum_mode)
