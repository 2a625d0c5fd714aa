"""Validate the loop-based references against MONAI 1.6.1 and torch where they overlap.

Tolerance 1e-10 in float64, except MONAI's ``FocalLoss`` class, which casts to float32 internally
(its module-level ``sigmoid_focal_loss`` / ``softmax_focal_loss`` keep float64 and are compared at
1e-10; the class is compared at a float32 tolerance to pin its reduction conventions).
"""

from __future__ import annotations

import contextlib
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

monai_losses = pytest.importorskip("monai.losses")
from monai.losses import DiceLoss, FocalLoss, GeneralizedDiceLoss, TverskyLoss  # noqa: E402
from monai.losses.focal_loss import sigmoid_focal_loss, softmax_focal_loss  # noqa: E402

from . import anatomynet, explog, lovasz, region, voxel  # noqa: E402
from ._common import one_hot_np  # noqa: E402

SHAPE = (2, 3, 5, 4, 3)
TOL = 1e-10
IGNORE = 255


def make_case(seed: int, shape=SHAPE, ignore_frac: float = 0.0, soft: bool = False):
    """float64 logits, probabilities, int labels (B,*S), one-hot (B,C,*S), valid mask (B,*S)."""
    gen = torch.Generator().manual_seed(seed)
    B, C = shape[:2]
    logits = torch.randn(shape, generator=gen, dtype=torch.float64) * 2.0
    labels = torch.randint(0, C, (B,) + tuple(shape[2:]), generator=gen)
    valid = torch.ones_like(labels)
    if ignore_frac > 0:
        valid = (torch.rand(labels.shape, generator=gen) >= ignore_frac).long()
        labels = torch.where(valid == 1, labels, torch.full_like(labels, IGNORE))
    onehot = torch.from_numpy(one_hot_np(labels.numpy(), C))
    if soft:
        raw = torch.rand(shape, generator=gen, dtype=torch.float64) + 3.0 * onehot
        onehot = raw / raw.sum(1, keepdim=True)
    probs = torch.softmax(logits, 1)
    return logits, probs, labels, onehot, valid


def close(a, b, tol=TOL):
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


# ----------------------------------------------------------------------------- Dice / Jaccard
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("squared_pred,jaccard", list(itertools.product([False, True], [False, True])))
@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("smooth", [1e-5, 1.0])
def test_dice_vs_monai(seed, squared_pred, jaccard, batch, smooth):
    _, probs, _, onehot, _ = make_case(seed)
    m = DiceLoss(squared_pred=squared_pred, jaccard=jaccard, batch=batch, smooth_nr=smooth,
                 smooth_dr=smooth * 2, reduction="none")(probs, onehot)
    r = region.dice_loss(probs, onehot, squared_pred=squared_pred, jaccard=jaccard, batch=batch,
                         smooth_nr=smooth, smooth_dr=smooth * 2)
    close(m, r)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("jaccard", [False, True])
def test_dice_soft_label_vs_monai(seed, jaccard):
    _, probs, _, soft, _ = make_case(seed, soft=True)
    for soft_label in (False, True):
        m = DiceLoss(jaccard=jaccard, soft_label=soft_label, reduction="none", smooth_nr=0.5,
                     smooth_dr=0.5)(probs, soft)
        r = region.dice_loss(probs, soft, jaccard=jaccard, soft_label=soft_label, smooth_nr=0.5,
                             smooth_dr=0.5)
        close(m, r)


def test_jaccard_forms_differ_only_by_smoothing():
    _, probs, _, onehot, _ = make_case(3)
    a = region.dice_loss(probs, onehot, jaccard=True, smooth_nr=2.0, smooth_dr=2.0, jaccard_form="monai")
    b = region.dice_loss(probs, onehot, jaccard=True, smooth_nr=1.0, smooth_dr=1.0, jaccard_form="plain")
    close(a, b)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("batch", [False, True])
def test_dice_ignore_index_vs_monai(seed, include_background, batch):
    logits, probs, labels, _, valid = make_case(seed, ignore_frac=0.3)
    m = DiceLoss(softmax=True, to_onehot_y=True, include_background=include_background, batch=batch,
                 ignore_index=IGNORE, reduction="none")(logits, labels[:, None].double())
    g = one_hot_np(labels, SHAPE[1])
    p = probs.numpy()
    if not include_background:
        p, g = p[:, 1:], g[:, 1:]
    r = region.dice_loss(p, g, valid, batch=batch)
    close(m, r)


def test_dice_weight_vs_monai():
    _, probs, _, onehot, _ = make_case(4)
    w = [0.5, 2.0, 1.5]
    m = DiceLoss(weight=w, reduction="none")(probs, onehot)
    r = region.dice_loss(probs, onehot) * np.asarray(w)[None]
    close(m, r)


# ----------------------------------------------------------------------------- Tversky
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("alpha,beta", [(0.5, 0.5), (0.3, 0.7), (0.8, 0.1)])
@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("ignore", [False, True])
def test_tversky_vs_monai(seed, alpha, beta, batch, ignore):
    logits, probs, labels, _, valid = make_case(seed, ignore_frac=0.3 if ignore else 0.0)
    m = TverskyLoss(softmax=True, to_onehot_y=True, alpha=alpha, beta=beta, batch=batch, smooth_nr=0.1,
                    smooth_dr=0.2, ignore_index=IGNORE if ignore else None,
                    reduction="none")(logits, labels[:, None].double())
    r = region.tversky_loss(probs, one_hot_np(labels, SHAPE[1]), valid if ignore else None, alpha=alpha,
                            beta=beta, batch=batch, smooth_nr=0.1, smooth_dr=0.2)
    close(m, r)


def test_tversky_alpha_is_fp_weight():
    # all predictions confidently wrong on class 1 only as false positives -> alpha matters, beta not
    p = np.zeros((1, 2, 4))
    g = np.zeros((1, 2, 4))
    p[0, 1] = [1, 1, 0, 0]
    p[0, 0] = 1 - p[0, 1]
    g[0, 1] = [1, 0, 0, 0]
    g[0, 0] = 1 - g[0, 1]
    a = region.tversky_loss(p, g, alpha=0.9, beta=0.0, smooth_nr=0, smooth_dr=0)[0, 1]
    b = region.tversky_loss(p, g, alpha=0.1, beta=0.0, smooth_nr=0, smooth_dr=0)[0, 1]
    assert a == pytest.approx(1 - 1 / 1.9) and b == pytest.approx(1 - 1 / 1.1)


def test_focal_tversky_definition():
    _, probs, _, onehot, _ = make_case(5)
    ti = 1 - region.tversky_loss(probs, onehot, alpha=0.3, beta=0.7)
    ft = region.focal_tversky_loss(probs, onehot)
    close(ft, (1 - ti) ** 0.75)
    # gamma = 1 -> plain Tversky
    close(region.focal_tversky_loss(probs, onehot, gamma=1.0), 1 - ti)


# ----------------------------------------------------------------------------- Generalized Dice
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("w_type", ["square", "simple", "uniform"])
@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("absent", [False, True])
def test_gdl_vs_monai(seed, w_type, batch, absent):
    _, probs, labels, _, _ = make_case(seed)
    if absent:  # class 2 absent from every sample (>= 1 class still present)
        labels = torch.where(labels == 2, torch.zeros_like(labels), labels)
    g = torch.from_numpy(one_hot_np(labels, SHAPE[1]))
    m = GeneralizedDiceLoss(w_type=w_type, batch=batch, reduction="none")(probs, g)
    for empty in ("penalize", "monai"):  # identical while a class is present
        r = region.generalized_dice_loss(probs, g, w_type=w_type, batch=batch, empty=empty)
        # MONAI computes the class weights from ``ground_o.float()`` (float32), hence 1e-7
        close(m, r, 1e-7)


@pytest.mark.parametrize("w_type", ["square", "simple"])
def test_gdl_all_absent(w_type):
    _, probs, labels, _, _ = make_case(7)
    labels = torch.zeros_like(labels)  # only background; drop it -> no class present
    g = torch.from_numpy(one_hot_np(labels, SHAPE[1]))
    m = GeneralizedDiceLoss(w_type=w_type, include_background=False, reduction="none")(probs, g)
    r_monai = region.generalized_dice_loss(probs[:, 1:], g[:, 1:], w_type=w_type, empty="monai")
    close(m, r_monai, 1e-7)
    close(r_monai, [0.0, 0.0])
    r_pen = region.generalized_dice_loss(probs[:, 1:], g[:, 1:], w_type=w_type, empty="penalize")
    # penalize: all weights 1 -> 1 - s / (sum P + s) ~ 1
    assert np.all(r_pen > 0.99)


def test_gdl_weights_rule():
    assert list(region.gdl_weights(np.array([2.0, 0.0, 4.0]), "square")) == [0.25, 0.25, 1 / 16]
    assert list(region.gdl_weights(np.array([2.0, 0.0, 4.0]), "simple")) == [0.5, 0.5, 0.25]
    assert list(region.gdl_weights(np.array([0.0, 0.0]), "square", "penalize")) == [1.0, 1.0]
    assert list(region.gdl_weights(np.array([0.0, 0.0]), "square", "monai")) == [0.0, 0.0]


# ----------------------------------------------------------------------------- cross-entropy
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_ce_vs_torch(seed, weighted, ignore, smoothing, reduction):
    logits, _, labels, _, _ = make_case(seed, ignore_frac=0.3 if ignore else 0.0)
    w = torch.tensor([0.3, 1.7, 1.1], dtype=torch.float64) if weighted else None
    ii = IGNORE if ignore else -100
    t = F.cross_entropy(logits, labels, weight=w, ignore_index=ii, label_smoothing=smoothing,
                        reduction=reduction)
    r = voxel.cross_entropy(logits, labels, weight=w, ignore_index=ii, label_smoothing=smoothing,
                            reduction=reduction)
    close(t, r)
    # (B, 1, *S) float label map gives the same numbers
    r2 = voxel.cross_entropy(logits, labels[:, None].double(), weight=w, ignore_index=ii,
                             label_smoothing=smoothing, reduction=reduction)
    close(r, r2)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_ce_prob_targets_vs_torch(weighted, smoothing, reduction):
    logits, _, _, soft, _ = make_case(6, soft=True)
    w = torch.tensor([0.3, 1.7, 1.1], dtype=torch.float64) if weighted else None
    t = F.cross_entropy(logits, soft, weight=w, label_smoothing=smoothing, reduction=reduction)
    r = voxel.cross_entropy(logits, soft, weight=w, label_smoothing=smoothing, reduction=reduction)
    close(t, r)


# ----------------------------------------------------------------------------- BCE
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("pos_weight", [None, "vector", "scalar"])
@pytest.mark.parametrize("masked", [False, True])
def test_bce_vs_torch(seed, pos_weight, masked):
    logits, _, _, onehot, _ = make_case(seed)
    gen = torch.Generator().manual_seed(100 + seed)
    if pos_weight == "vector":
        pw = torch.tensor([0.5, 2.0, 3.0], dtype=torch.float64)
        pw_torch = pw.view(3, 1, 1, 1)  # torch broadcasts pos_weight from the right
    elif pos_weight == "scalar":
        pw = torch.tensor(2.5, dtype=torch.float64)
        pw_torch = pw
    else:
        pw = pw_torch = None
    elems = F.binary_cross_entropy_with_logits(logits, onehot, pos_weight=pw_torch, reduction="none")
    valid = (torch.rand(onehot.shape, generator=gen) > 0.3).double() if masked else None
    t_mean = (elems * valid).sum() / valid.sum() if masked else elems.mean()
    r = voxel.bce_with_logits(logits, onehot, pos_weight=pw, valid_elements=valid)
    close(t_mean, r)
    if not masked:
        close(elems, voxel.bce_with_logits(logits, onehot, pos_weight=pw, reduction="none"))


# ----------------------------------------------------------------------------- focal
ALPHAS = [None, 0.25, [0.2, 0.5, 0.9]]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("gamma", [0.0, 2.0, 1.5])
def test_focal_elementwise_vs_monai_functions(seed, alpha, gamma):
    logits, _, _, onehot, _ = make_case(seed)
    a = None if alpha is None else (alpha if np.ndim(alpha) == 0 else torch.tensor(alpha, dtype=torch.float64))
    m_sig = sigmoid_focal_loss(logits, onehot, gamma, a)
    r_sig = voxel.sigmoid_focal(logits, onehot, gamma=gamma, alpha=alpha, reduction="none")
    close(m_sig, r_sig)
    m_soft = softmax_focal_loss(logits, onehot, gamma, a)
    r_soft = voxel.softmax_focal(logits, onehot, gamma=gamma, alpha=alpha, reduction="none")
    close(m_soft, r_soft)


def test_sigmoid_focal_gamma0_is_bce():
    logits, _, _, onehot, _ = make_case(2)
    close(voxel.sigmoid_focal(logits, onehot, gamma=0.0),
          F.binary_cross_entropy_with_logits(logits, onehot))


F32 = 2e-6


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("use_softmax", [False, True])
@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_focal_class_vs_monai(seed, use_softmax, include_background, alpha, weighted, reduction):
    """MONAI FocalLoss (float32 inside) without ignore_index: conventions pinned at f32 tolerance."""
    logits, _, labels, onehot, _ = make_case(seed)
    alpha_c = alpha
    if alpha is not None and np.ndim(alpha) == 1 and not include_background:
        alpha_c = alpha[1:]
    w = [0.7, 1.3, 2.0] if weighted else None
    w_c = w if (w is None or include_background) else w[1:]
    loss = FocalLoss(include_background=include_background, to_onehot_y=True, use_softmax=use_softmax,
                     alpha=alpha_c, weight=w_c, reduction=reduction)
    drops_alpha = use_softmax and not include_background and alpha is not None and np.ndim(alpha) == 0
    with pytest.warns(UserWarning) if drops_alpha else contextlib.nullcontext():
        m = loss(logits, labels[:, None].double())
    lo = logits.numpy() if include_background else logits.numpy()[:, 1:]
    g = onehot.numpy() if include_background else onehot.numpy()[:, 1:]
    if use_softmax:
        a = alpha_c if (include_background or np.ndim(alpha) == 1) else None  # MONAI drops scalar alpha
        r = voxel.softmax_focal(lo, g, alpha=a, class_weight=w_c, reduction=reduction)
    else:
        r = voxel.sigmoid_focal(lo, g, alpha=alpha_c, class_weight=w_c, reduction=reduction)
    close(m.double(), r, F32)


@pytest.mark.parametrize("use_softmax", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_focal_class_ignore_vs_monai_conventions(use_softmax, reduction):
    """MONAI FocalLoss(ignore_index) divides 'mean' by valid voxels (no x C') and averages 'sum'
    per (b, c) over the valid voxels of the sample: the reference reproduces both with
    mask_mean="voxels" / sum_mode="monai"."""
    logits, _, labels, _, valid = make_case(3, ignore_frac=0.3)
    m = FocalLoss(to_onehot_y=True, use_softmax=use_softmax, ignore_index=IGNORE,
                  reduction=reduction)(logits, labels[:, None].double())
    g = one_hot_np(labels, SHAPE[1])
    fn = voxel.softmax_focal if use_softmax else voxel.sigmoid_focal
    r = fn(logits, g, valid, reduction=reduction, mask_mean="voxels", sum_mode="monai")
    close(m.double(), r, F32)
    if reduction == "mean":
        r_el = fn(logits, g, valid, reduction="mean")  # medloss convention
        close(r_el * SHAPE[1], r)


# ----------------------------------------------------------------------------- Lovász
@pytest.mark.parametrize("seed", range(4))
def test_lovasz_extension_matches_threshold_integral(seed):
    rng = np.random.default_rng(seed)
    n = 30
    fg = list((rng.random(n) < 0.4).astype(float))
    errors = list(rng.random(n))
    errors[3] = errors[5]  # a tie
    assert lovasz.lovasz_extension(errors, fg) == pytest.approx(
        lovasz.lovasz_extension_by_thresholds(errors, fg), abs=1e-12)
    big = [3.0 * e for e in errors]  # hinge errors may exceed 1
    assert lovasz.lovasz_extension(big, fg) == pytest.approx(
        lovasz.lovasz_extension_by_thresholds(big, fg), abs=1e-12)


def test_lovasz_softmax_hard_prediction_is_jaccard_loss():
    _, _, labels, _, _ = make_case(1)
    gen = torch.Generator().manual_seed(9)
    pred = torch.randint(0, 3, labels.shape, generator=gen)
    p = one_hot_np(pred, 3)
    for per_image in (False, True):
        got = lovasz.lovasz_softmax(p, labels, classes="all", per_image=per_image)
        groups = [[b] for b in range(2)] if per_image else [[0, 1]]
        vals = []
        for bs in groups:
            per_c = []
            for c in range(3):
                y = (labels[bs] == c).numpy()
                q = (pred[bs] == c).numpy()
                union = (y | q).sum()
                per_c.append(1 - (y & q).sum() / union if union else 0.0)
            vals.append(np.mean(per_c))
        assert got == pytest.approx(np.mean(vals), abs=1e-12)


def test_lovasz_present_and_ignore():
    _, probs, labels, _, valid = make_case(2, ignore_frac=0.4)
    lab = labels.clone()
    lab[lab == 2] = 1  # class 2 absent
    all_ = lovasz.lovasz_softmax(probs, lab, classes="all", ignore=IGNORE)
    present = lovasz.lovasz_softmax(probs, lab, classes="present", ignore=IGNORE)
    listed = lovasz.lovasz_softmax(probs, lab, classes=[0, 1], ignore=IGNORE)
    assert present == pytest.approx(listed, abs=1e-14)
    assert all_ != pytest.approx(present)
    # ignoring == dropping the voxels
    keep = valid.bool()
    sub_p = probs.permute(1, 0, 2, 3, 4)[:, keep].unsqueeze(0)  # (1, C, n_valid)
    sub_l = lab[keep].unsqueeze(0)
    assert present == pytest.approx(lovasz.lovasz_softmax(sub_p, sub_l), abs=1e-14)


def test_lovasz_hinge_basic():
    logits, _, labels, _, _ = make_case(0, shape=(2, 1, 4, 3, 3))
    gen = torch.Generator().manual_seed(1)
    y = torch.randint(0, 2, labels.shape, generator=gen)
    s = logits[:, 0]
    # perfectly separated with margin >= 1 -> zero loss
    assert lovasz.lovasz_hinge((2 * y - 1) * 1.5, y) == 0.0
    v = lovasz.lovasz_hinge(s, y)
    relu_e = [max(1 - float(s.reshape(2, -1)[0, i]) * (2 * float(y.reshape(2, -1)[0, i]) - 1), 0)
              for i in range(36)]
    fg = [float(v_) for v_ in y.reshape(2, -1)[0]]
    first = lovasz.lovasz_extension_by_thresholds(relu_e, fg)
    relu_e2 = [max(1 - float(s.reshape(2, -1)[1, i]) * (2 * float(y.reshape(2, -1)[1, i]) - 1), 0)
               for i in range(36)]
    fg2 = [float(v_) for v_ in y.reshape(2, -1)[1]]
    second = lovasz.lovasz_extension_by_thresholds(relu_e2, fg2)
    assert v == pytest.approx((first + second) / 2, abs=1e-12)


# ----------------------------------------------------------------------------- ExpLog / AnatomyNet
def test_explog_special_cases():
    _, probs, labels, onehot, valid = make_case(4)
    # gamma = 1, no clamp, w_cross = 0: mean over (b, c) of -ln Dice with eps = 1
    value = explog.explog_loss(probs, onehot, w_dice=1.0, w_cross=0.0, gamma_dice=1.0, clamp=None)
    p, g = probs.numpy(), onehot.numpy()
    inter = (p * g).sum(axis=(2, 3, 4))
    tot = (p + g).sum(axis=(2, 3, 4))
    assert value == pytest.approx(np.mean(-np.log((2 * inter + 1) / (tot + 1))), abs=1e-12)
    # gamma_cross = 1 and equal frequencies -> w_l = sqrt(C) times plain CE
    value = explog.explog_loss(probs, onehot, w_dice=0.0, w_cross=1.0, gamma_cross=1.0, clamp=None,
                               class_frequencies=[5.0, 5.0, 5.0])
    ce = F.nll_loss(torch.log(probs), labels).item()
    assert value == pytest.approx(math.sqrt(3) * ce, abs=1e-12)
    # clamping only matters near 0 / 1
    assert explog.explog_loss(probs, onehot) == pytest.approx(explog.explog_loss(probs, onehot, clamp=None),
                                                              abs=1e-12)


def test_anatomynet_vs_monai_pieces():
    logits, probs, labels, onehot, _ = make_case(5)
    l_dice, l_focal = anatomynet.anatomynet_terms(probs, onehot, alpha=0.3, beta=0.6, smooth_nr=1e-5)
    # Dice part = C * mean_c(1 - TI_c) with batch sums; AnatomyNet alpha (FN) = MONAI beta
    tv = TverskyLoss(alpha=0.6, beta=0.3, batch=True, smooth_nr=1e-5, smooth_dr=1e-5,
                     reduction="sum")(probs, onehot)
    close(l_dice, tv)
    fl = softmax_focal_loss(logits, onehot, 2.0, None).sum(1).mean()
    close(l_focal, fl)
    # class mask / weights
    w = [2.0, 1.0, 0.5]
    l_dice_w, l_focal_w = anatomynet.anatomynet_terms(probs, onehot, class_weights=w, class_mask=[1, 0, 1])
    l_dice_0, _ = anatomynet.anatomynet_terms(probs[:, [0, 2]], onehot[:, [0, 2]], class_weights=[2.0, 0.5])
    close(l_dice_w, l_dice_0)
    per_c = softmax_focal_loss(logits, onehot, 2.0, None).mean(dim=(0, 2, 3, 4))
    close(l_focal_w, 2.0 * per_c[0] + 0.5 * per_c[2])


def test_explog_cross_mean_conventions():
    full = dict(class_frequencies=[3.0, 2.0, 1.0], w_dice=0.0, w_cross=1.0)
    # no ignored voxels: per-image mean == batch mean
    _, probs, _, onehot, _ = make_case(6)
    a = explog.explog_loss(probs, onehot, cross_mean="sample", **full)
    b = explog.explog_loss(probs, onehot, cross_mean="batch", **full)
    assert a == pytest.approx(b, abs=1e-12)
    # with ignored voxels: per-image mean == mean of the single-image losses
    _, probs, labels, _, valid = make_case(6, ignore_frac=0.3)
    g = one_hot_np(labels, SHAPE[1], ignore_value=IGNORE)
    per = [explog.explog_loss(probs[i:i + 1], g[i:i + 1], valid[i:i + 1], **full) for i in range(2)]
    assert explog.explog_loss(probs, g, valid, **full) == pytest.approx(np.mean(per), abs=1e-12)
