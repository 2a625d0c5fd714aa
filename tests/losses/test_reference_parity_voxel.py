"""Voxel losses (cross-entropy, BCE, focal) against the paper references (see
tests/losses/_reference_parity_common.py for the cases and conventions).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.losses._reference_parity_common import (
    FOCAL_SOFTMAX_NO_BG,
    IGNORE,
    PER_CLASS_ARGS_NO_BG,
    REDUCTIONS,
    SEEDS,
    TARGETS,
    B,
    C,
    as_np,
    check,
    get_cls,
    make_case,
    node_seeds,
    run,
)
from tests.reference import voxel
from tests.reference._common import one_hot_np, softmax_np

pytestmark = pytest.mark.usefixtures("table_engine")  # every engine is held to these numbers


# ----------------------------------------------------------------------------- cross-entropy
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore", [None, IGNORE, 0])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("target_form", ["long_BS", "float_B1S", "probs"])
def test_cross_entropy_parity(weighted, ignore, smoothing, target_form):
    CE = get_cls("CrossEntropyLoss")
    if target_form == "probs" and ignore is not None:
        pytest.skip("probability targets have no ignore_index (torch semantics)")
    w = torch.tensor([0.3, 1.7, 1.1], dtype=torch.float64) if weighted else None
    ii = -100 if ignore is None else ignore
    for seed in SEEDS[:2]:
        logits, labels, _, softt = make_case(seed, ignore=ignore, soft=target_form == "probs")
        target = {"long_BS": labels, "float_B1S": labels[:, None].double(), "probs": softt}[target_form]
        ref_t = softt if target_form == "probs" else labels
        for reduction in REDUCTIONS:
            kw = {} if w is None else {"weight": w}
            out = run(CE(ignore_index=ii, reduction=reduction, label_smoothing=smoothing, **kw), logits, target)
            exp = voxel.cross_entropy(logits, ref_t, weight=w, ignore_index=ii, label_smoothing=smoothing,
                                      reduction=reduction)
            check(out, exp, f"CrossEntropyLoss[w={weighted}, ignore={ignore}, eps={smoothing}, "
                            f"target={target_form}, reduction={reduction}, seed={seed}]")


# ----------------------------------------------------------------------------- BCE
@pytest.mark.parametrize("pos_weight", [None, "per_channel", "scalar"])
@pytest.mark.parametrize("ignore", [None, IGNORE])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("soft", [False, True])
def test_bce_parity(pos_weight, ignore, reduction, soft):
    BCE = get_cls("BCELoss")
    pw = {None: None, "per_channel": torch.tensor([0.5, 2.0, 3.0], dtype=torch.float64),
          "scalar": torch.tensor(2.5, dtype=torch.float64)}[pos_weight]
    for seed in SEEDS:
        logits, labels, _, softt = make_case(seed, soft=soft)
        target = softt if soft else torch.from_numpy(one_hot_np(labels.numpy(), C))
        valid = None
        if ignore is not None:
            gen = torch.Generator().manual_seed(7 + seed)
            drop = torch.rand(target.shape, generator=gen) < 0.25
            target = torch.where(drop, torch.full_like(target, float(ignore)), target)
            valid = (~drop).double()
        kw = {} if pw is None else {"pos_weight": pw}
        out = run(BCE(reduction=reduction, ignore_index=ignore, **kw), logits, target)
        exp = voxel.bce_with_logits(logits, torch.where(target == IGNORE, torch.zeros_like(target), target),
                                    pos_weight=pw, valid_elements=valid, reduction=reduction)
        what = f"BCELoss[pos_weight={pos_weight}, ignore={ignore}, soft={soft}, reduction={reduction}, seed={seed}]"
        if reduction == "none" and valid is not None:
            sel = valid.bool().numpy()
            check(as_np(out)[sel], as_np(exp)[sel], what + " (valid elements)")
        else:
            cands = {}
            if pos_weight == "per_channel":
                def last_axis(logits=logits, target=target, valid=valid):
                    return voxel.bce_with_logits(
                        logits.permute(0, 4, 2, 3, 1), target.permute(0, 4, 2, 3, 1), pos_weight=pw,
                        valid_elements=None if valid is None else valid.permute(0, 4, 2, 3, 1), reduction=reduction)
                cands["torch broadcasting of pos_weight (C,) over the last axis"] = last_axis
            check(out, exp, what, cands)


# ----------------------------------------------------------------------------- focal
def _focal_alt_softmax_over_all(logits, g_full, include_background, gamma, alpha, w, valid, reduction):
    """Diagnostic: softmax over all channels, then drop background (region-loss order)."""
    logp = np.log(softmax_np(logits))
    g = g_full
    if not include_background:
        logp, g = logp[:, 1:], g[:, 1:]
    nc = logp.shape[1]
    el = -g * (1 - np.exp(logp)) ** gamma * logp
    if alpha is not None:
        a = np.asarray([1 - alpha] + [alpha] * (nc - 1) if np.ndim(alpha) == 0 else alpha, dtype=float)
        el = el * a.reshape(1, -1, 1, 1, 1)
    if w is not None:
        el = el * np.asarray(w, dtype=float).reshape(1, -1, 1, 1, 1)
    if valid is not None:
        el = el * as_np(valid)[:, None]
    if reduction == "none":
        return el
    if reduction == "sum":
        n = el.shape[2] * el.shape[3] * el.shape[4] if valid is None else as_np(valid).reshape(B, -1).sum(1)
        return (el.reshape(B, nc, -1).sum(-1) / np.reshape(n, (-1, 1))).sum()
    return el.sum() / (el.size if valid is None else as_np(valid).sum() * nc)


def _focal_expected(logits, labels, ignore, *, use_softmax, include_background, alpha, weight, gamma,
                    reduction, valid):
    """Reference value with MONAI 1.6.1 FocalLoss semantics (see tests/reference/voxel.py)."""
    g_full = one_hot_np(labels.numpy(), C, ignore_value=ignore)
    lo = logits.numpy() if include_background else logits.numpy()[:, 1:]
    g = g_full if include_background else g_full[:, 1:]
    common = dict(gamma=gamma, class_weight=weight, reduction=reduction)
    cands = {}
    if use_softmax:
        a_ref = None if (not include_background and np.ndim(alpha) == 0) else alpha  # MONAI drops scalar alpha
        exp = voxel.softmax_focal(lo, g, valid, alpha=a_ref, **common)
        a_full = alpha
        if alpha is not None and np.ndim(alpha) == 0 and not include_background:
            a_full = [alpha] * (C - 1)  # [1-a, a, a] over all classes, background dropped
        cands["softmax over all classes, then drop bg (scalar alpha -> alpha on every kept class)"] = (
            lambda: _focal_alt_softmax_over_all(logits.numpy(), g_full, include_background, gamma, a_full, weight,
                                                valid, reduction))
        if valid is not None:
            cands["MONAI mean: / n_valid voxels"] = lambda: voxel.softmax_focal(
                lo, g, valid, alpha=a_ref, mask_mean="voxels", **common)
        if reduction == "sum":
            cands["plain sum"] = lambda: voxel.softmax_focal(lo, g, valid, alpha=a_ref, sum_mode="plain", **common)
    else:
        exp = voxel.sigmoid_focal(lo, g, valid, alpha=alpha, **common)
        if alpha is not None and np.ndim(alpha) == 1:
            cands["per-class alpha: 1-alpha_c on negatives"] = lambda: voxel.sigmoid_focal(
                lo, g, valid, alpha=alpha, per_class_alpha_negative="one_minus", **common)
        if valid is not None:
            cands["MONAI mean: / n_valid voxels"] = lambda: voxel.sigmoid_focal(
                lo, g, valid, alpha=alpha, mask_mean="voxels", **common)
        if reduction == "sum":
            cands["plain sum"] = lambda: voxel.sigmoid_focal(lo, g, valid, alpha=alpha, sum_mode="plain", **common)
    return exp, cands


FOCAL_GRID = [(sm, bg, al) for sm in (False, True) for bg in (True, False) for al in (None, 0.25, "per_class")
              if bg or not (sm or al == "per_class")]


@pytest.mark.parametrize("use_softmax,include_background,alpha", FOCAL_GRID)
@pytest.mark.parametrize("weighted,gamma", [(False, 2.0), (True, 1.5)])
@pytest.mark.parametrize("to_onehot_y,ignore", TARGETS)
def test_focal_parity(use_softmax, include_background, alpha, weighted, gamma, to_onehot_y, ignore, request):
    """Everything except two MONAI corner cases that have their own tests below:
    softmax with include_background=False, and per-class alpha with include_background=False."""
    FocalLoss = get_cls("FocalLoss")
    nc = C if include_background else C - 1
    a = [0.2, 0.5, 0.9][-nc:] if alpha == "per_class" else alpha
    w = [0.7, 1.3, 2.0][-nc:] if weighted else None
    for seed in node_seeds(request):
        logits, labels, valid, _ = make_case(seed, ignore=ignore)
        y = labels[:, None].double() if to_onehot_y else torch.from_numpy(one_hot_np(labels.numpy(), C))
        for reduction in REDUCTIONS:
            out = run(FocalLoss(include_background=include_background, to_onehot_y=to_onehot_y, gamma=gamma,
                                alpha=a, weight=w, reduction=reduction, use_softmax=use_softmax,
                                ignore_index=ignore), logits, y)
            exp, cands = _focal_expected(logits, labels, ignore, use_softmax=use_softmax,
                                         include_background=include_background, alpha=a, weight=w, gamma=gamma,
                                         reduction=reduction, valid=valid)
            check(out, exp, f"FocalLoss[softmax={use_softmax}, bg={include_background}, alpha={alpha}, "
                            f"weight={weighted}, gamma={gamma}, onehot_y={to_onehot_y}, ignore={ignore}, "
                            f"reduction={reduction}, seed={seed}]", cands)


@pytest.mark.parametrize("alpha", [None, 0.25, "per_class"])
@pytest.mark.parametrize("ignore", [None, IGNORE])
def test_focal_softmax_without_background(alpha, ignore):
    """MONAI 1.6.1: FocalLoss(use_softmax=True, include_background=False) drops channel 0 *before* the
    softmax and ignores a scalar alpha (with a warning; medloss too); per-class alpha has C-1 entries."""
    FocalLoss = get_cls("FocalLoss")
    a = [0.5, 0.9] if alpha == "per_class" else alpha  # values for the kept channels
    a_arg = [0.2, 0.5, 0.9] if (alpha == "per_class" and PER_CLASS_ARGS_NO_BG == "all_channels") else a
    for seed in SEEDS[:2]:
        logits, labels, valid, _ = make_case(seed, ignore=ignore)
        for reduction in REDUCTIONS:
            out = run(FocalLoss(include_background=False, to_onehot_y=True, alpha=a_arg, reduction=reduction,
                                use_softmax=True, ignore_index=ignore), logits, labels[:, None].double())
            exp, cands = _focal_expected(logits, labels, ignore, use_softmax=True, include_background=False,
                                         alpha=None if alpha == 0.25 else a, weight=None, gamma=2.0,
                                         reduction=reduction, valid=valid)
            alt_name = "softmax over all classes, then drop bg (scalar alpha -> alpha on every kept class)"
            cands["MONAI order (drop bg, then softmax; scalar alpha ignored)"] = exp
            if FOCAL_SOFTMAX_NO_BG == "activation_first":
                exp = cands.pop(alt_name)()
            check(out, exp, f"FocalLoss[softmax, include_background=False, alpha={alpha}, ignore={ignore}, "
                            f"reduction={reduction}, seed={seed}] (FOCAL_SOFTMAX_NO_BG={FOCAL_SOFTMAX_NO_BG!r})",
                  cands)


@pytest.mark.parametrize("use_softmax", [False, True])
def test_focal_per_class_alpha_without_background(use_softmax):
    """MONAI 1.6.1: with include_background=False a per-class alpha (like ``weight``) has C-1 entries,
    one per kept channel."""
    FocalLoss = get_cls("FocalLoss")
    logits, labels, valid, _ = make_case(0)
    a_arg = [0.5, 0.9] if PER_CLASS_ARGS_NO_BG == "kept_channels" else [0.2, 0.5, 0.9]
    try:
        out = run(FocalLoss(include_background=False, to_onehot_y=True, alpha=a_arg, use_softmax=use_softmax),
                  logits, labels[:, None].double())
    except Exception as exc:
        pytest.fail(f"FocalLoss(include_background=False, alpha=<{len(a_arg)} values for C={C}>) raised {exc!r} "
                    f"(PER_CLASS_ARGS_NO_BG={PER_CLASS_ARGS_NO_BG!r}; MONAI 1.6.1 requires C-1 values, rejects C)")
    exp, cands = _focal_expected(logits, labels, None, use_softmax=use_softmax, include_background=False,
                                 alpha=[0.5, 0.9], weight=None, gamma=2.0, reduction="mean", valid=None)
    if use_softmax:
        alt_name = "softmax over all classes, then drop bg (scalar alpha -> alpha on every kept class)"
        cands["MONAI order (drop bg, then softmax)"] = exp
        if FOCAL_SOFTMAX_NO_BG == "activation_first":
            exp = cands.pop(alt_name)()
    check(out, exp, f"FocalLoss[softmax={use_softmax}, include_background=False, per-class alpha "
                    f"(PER_CLASS_ARGS_NO_BG={PER_CLASS_ARGS_NO_BG!r}, FOCAL_SOFTMAX_NO_BG={FOCAL_SOFTMAX_NO_BG!r})]",
                    cands)


@pytest.mark.parametrize("use_softmax", [False, True])
@pytest.mark.parametrize("ignore", [2, 0, -1])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_focal_ignore_index_values(use_softmax, ignore, reduction):
    FocalLoss = get_cls("FocalLoss")
    for seed in SEEDS[:2]:
        logits, labels, valid, _ = make_case(seed, ignore=ignore)
        out = run(FocalLoss(to_onehot_y=True, use_softmax=use_softmax, ignore_index=ignore, reduction=reduction),
                  logits, labels[:, None].double())
        exp, cands = _focal_expected(logits, labels, ignore, use_softmax=use_softmax, include_background=True,
                                     alpha=None, weight=None, gamma=2.0, reduction=reduction, valid=valid)
        check(out, exp, f"FocalLoss[softmax={use_softmax}, ignore_index={ignore}, reduction={reduction}, "
                        f"seed={seed}]", cands)
