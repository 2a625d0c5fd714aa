"""Reference Exponential Logarithmic loss.

source: Wong, Moradi, Tang, Syeda-Mahmood, "3D Segmentation with Exponential Logarithmic Loss for
Highly Unbalanced Object Sizes", MICCAI 2018 (arXiv:1809.00076).

    L_Exp   = w_dice * L_Dice + w_cross * L_Cross
    L_Dice  = E_i[ (-ln Dice_i)^gamma_dice ]                   mean over labels i (exponent per class,
                                                               *before* the mean)
    Dice_i  = (2 sum_x delta_il(x) p_i(x) + eps) / (sum_x (delta_il(x) + p_i(x)) + eps),  eps = 1
    L_Cross = E_x[ w_l (-ln p_l(x))^gamma_cross ]              mean over (valid) voxels x of an image,
                                                               l = label at x
    w_l     = ((sum_k f_k) / f_l)^0.5                          f_k = frequency of label k
    defaults: w_dice = 0.8, w_cross = 0.2, gamma_dice = gamma_cross = 0.3

Conventions the paper leaves open (parameters of the reference, see loss-anchors §2.1):
  * ``batch_dice``: False (default) -> Dice_i per sample, L_Dice = mean over (b, i);
    True -> sums pooled over the batch (PyMIC does this), L_Dice = mean over i.
  * ``cross_mean``: "sample" (default) -> E_x over the valid voxels of each image, then the mean over
    the images (the loss is defined per image, as the Dice term); "batch" -> one mean over all valid
    voxels of the batch.  The two differ only when images have different numbers of valid voxels
    (ignore_index).
  * ``clamp``: gamma < 1 makes the gradient of (-ln D)^gamma infinite at D = 1 (and of the CE term at
    p = 1), so implementations clamp.  ("clip", lo, hi) clips Dice_i and p_l to [lo, hi] (AnatomyNet
    authors' code: lo = 1e-5, hi = 1 - 1e-5; default here); ("affine", a, b) maps x -> a + b x
    (PyMIC: a = 0.01, b = 0.98); None = no clamp.
  * ``class_frequencies``: given f_k (dataset statistics); None -> counts of each label over the valid
    voxels of the batch.  A label that never occurs has no weight (it never is l).
  * classes: all channels passed in are used (include_background handling is the caller's job);
    the target must be one-hot (l = the channel with g = 1).
"""

from __future__ import annotations

import math

from ._common import flat_bcn, flat_valid, to_numpy

DEFAULT_CLAMP = ("clip", 1e-5, 1.0 - 1e-5)


def _clamp(x: float, clamp) -> float:
    if clamp is None:
        return x
    kind = clamp[0]
    if kind == "clip":
        return min(max(x, clamp[1]), clamp[2])
    if kind == "affine":
        return clamp[1] + clamp[2] * x
    raise ValueError(clamp)


def explog_dice_term(p, g, valid=None, *, gamma_dice: float = 0.3, smooth: float = 1.0, batch_dice: bool = False,
                     clamp=DEFAULT_CLAMP) -> float:
    """L_Dice alone (any subset of channels may be passed)."""
    return explog_terms(p, g, valid, gamma_dice=gamma_dice, smooth=smooth, batch_dice=batch_dice, clamp=clamp,
                        with_cross=False)[0]


def explog_terms(
    p, g, valid=None, *, gamma_dice: float = 0.3, gamma_cross: float = 0.3, class_frequencies=None,
    smooth: float = 1.0, batch_dice: bool = False, clamp=DEFAULT_CLAMP, cross_mean: str = "sample",
    with_cross: bool = True,
):
    """Returns (L_Dice, L_Cross) as floats (L_Cross is None when ``with_cross`` is False)."""
    P = flat_bcn(p)
    G = flat_bcn(g)
    B, C, N = P.shape
    V = flat_valid(valid, B, N)

    # ---- Dice term: per-class Dice, then -ln, then ^gamma, then the mean
    rows = [list(range(B))] if batch_dice else [[b] for b in range(B)]
    dice_terms = []
    for bs in rows:
        for c in range(C):
            inter = 0.0
            total = 0.0
            for b in bs:
                for n in range(N):
                    if V[b, n] == 0:
                        continue
                    inter += G[b, c, n] * P[b, c, n]
                    total += G[b, c, n] + P[b, c, n]
            dice = (2.0 * inter + smooth) / (total + smooth)
            dice = _clamp(dice, clamp)
            dice_terms.append((-math.log(dice)) ** gamma_dice)
    l_dice = sum(dice_terms) / len(dice_terms)
    if not with_cross:
        return l_dice, None

    # ---- label frequencies and weights
    if class_frequencies is None:
        f = [0.0] * C
        for b in range(B):
            for n in range(N):
                if V[b, n] == 0:
                    continue
                for c in range(C):
                    if G[b, c, n] == 1.0:
                        f[c] += 1.0
    else:
        f = [float(v) for v in to_numpy(class_frequencies).reshape(-1)]
    f_sum = sum(f)
    w = [((f_sum / f[c]) ** 0.5) if f[c] > 0 else 0.0 for c in range(C)]

    # ---- cross term: mean over valid voxels of w_l (-ln p_l)^gamma_cross
    per_image = []
    total = 0.0
    count = 0
    for b in range(B):
        total_b = 0.0
        count_b = 0
        for n in range(N):
            if V[b, n] == 0:
                continue
            labels = [c for c in range(C) if G[b, c, n] == 1.0]
            if len(labels) != 1:
                raise ValueError("explog reference needs a one-hot target at every valid voxel")
            lab = labels[0]
            pl = _clamp(float(P[b, lab, n]), clamp)
            term = w[lab] * (-math.log(pl)) ** gamma_cross
            total += term
            count += 1
            total_b += term
            count_b += 1
        if count_b:
            per_image.append(total_b / count_b)
    if cross_mean == "sample":
        l_cross = sum(per_image) / len(per_image)
    elif cross_mean == "batch":
        l_cross = total / count
    else:
        raise ValueError(cross_mean)
    return l_dice, l_cross


def explog_loss(
    p, g, valid=None, *, w_dice: float = 0.8, w_cross: float = 0.2, gamma_dice: float = 0.3,
    gamma_cross: float = 0.3, class_frequencies=None, smooth: float = 1.0, batch_dice: bool = False,
    clamp=DEFAULT_CLAMP, cross_mean: str = "sample",
) -> float:
    l_dice, l_cross = explog_terms(
        p, g, valid, gamma_dice=gamma_dice, gamma_cross=gamma_cross, class_frequencies=class_frequencies,
        smooth=smooth, batch_dice=batch_dice, clamp=clamp, cross_mean=cross_mean,
    )
    return w_dice * l_dice + w_cross * l_cross
