"""Region losses (Dice, Jaccard, Tversky, Focal-Tversky, Generalized Dice) against the paper references
(see tests/losses/_reference_parity_common.py for the cases and conventions).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.losses._reference_parity_common import (
    ACTS,
    GDL_PENALIZE_ALL_ABSENT,
    IGNORE,
    REDUCTIONS,
    SEEDS,
    TARGETS,
    B,
    C,
    act_kwargs,
    check,
    drop_bg,
    get_cls,
    make_case,
    node_seeds,
    reduce_pc,
    region_inputs,
    run,
)
from tests.reference import region, voxel
from tests.reference._common import one_hot_np, sigmoid_np, softmax_np

pytestmark = pytest.mark.usefixtures("table_engine")  # every engine is held to these numbers


# ----------------------------------------------------------------------------- Dice / Jaccard
DICE_VARIANTS = {
    "plain": {},
    "squared_pred": {"squared_pred": True},
    "jaccard": {"jaccard": True},
    "jaccard_smooth0.5": {"jaccard": True, "smooth_nr": 0.5, "smooth_dr": 0.5},
    "jaccard_squared": {"jaccard": True, "squared_pred": True, "smooth_nr": 0.1, "smooth_dr": 0.3},
    "smooth1": {"smooth_nr": 1.0, "smooth_dr": 1.0},
    "weight": {"weight": "W"},
    "weight_scalar": {"weight": 2.5},
    "soft_label": {"soft_label": True},
}


# activations are exercised by the "plain" variant; the other variants use softmax / probabilities
DICE_VARIANT_ACTS = [(v, a) for v in DICE_VARIANTS for a in ACTS if v == "plain" or a != "sigmoid"]


@pytest.mark.parametrize("variant,act", DICE_VARIANT_ACTS)
@pytest.mark.parametrize("to_onehot_y,ignore", TARGETS)
@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("batch", [False, True])
def test_dice_parity(variant, act, to_onehot_y, ignore, include_background, batch, request):
    DiceLoss = get_cls("DiceLoss")
    opts = dict(DICE_VARIANTS[variant])
    nc = C if include_background else C - 1
    weight = None
    if opts.get("weight") == "W":
        weight = [0.5, 2.0, 1.5][-nc:]
        opts["weight"] = weight
    elif "weight" in opts:
        weight = [opts["weight"]] * nc
    soft = variant == "soft_label" and not to_onehot_y
    ref_opts = {k: v for k, v in opts.items() if k != "weight"}
    for seed in node_seeds(request):
        x, y, p, g, valid = region_inputs(seed, act, to_onehot_y, ignore, soft=soft)
        p, g = drop_bg(p, g, include_background)
        per = region.dice_loss(p, g, valid, batch=batch, **ref_opts)
        plain_j = None
        if opts.get("jaccard"):
            plain_j = region.dice_loss(p, g, valid, batch=batch, **dict(ref_opts, jaccard_form="plain"))
        if weight is not None:
            per = per * np.asarray(weight)
            plain_j = None if plain_j is None else plain_j * np.asarray(weight)
        for reduction in REDUCTIONS:
            loss = DiceLoss(include_background=include_background, to_onehot_y=to_onehot_y,
                            ignore_index=ignore, batch=batch, reduction=reduction, **act_kwargs(act), **opts)
            out = run(loss, x, y)
            cands = {}
            if plain_j is not None:
                cands["jaccard 1-(I+s_nr)/(U-I+s_dr)"] = reduce_pc(plain_j, reduction)
            check(out, reduce_pc(per, reduction),
                  f"DiceLoss[{variant}, act={act}, onehot_y={to_onehot_y}, ignore={ignore}, "
                  f"bg={include_background}, batch={batch}, reduction={reduction}, seed={seed}]", cands)


@pytest.mark.parametrize("name", ["DiceLoss", "TverskyLoss", "FocalTverskyLoss"])
def test_other_act_equals_flag(name):
    cls = get_cls(name)
    x, y, _, _, _ = region_inputs(3, "sigmoid", True, IGNORE)
    a = run(cls(other_act=torch.sigmoid, to_onehot_y=True, ignore_index=IGNORE), x, y)
    b = run(cls(sigmoid=True, to_onehot_y=True, ignore_index=IGNORE), x, y)
    check(a, b, f"{name}: other_act=torch.sigmoid vs sigmoid=True")


def test_dice_reduction_none_shape():
    DiceLoss = get_cls("DiceLoss")
    x, y, _, _, _ = region_inputs(0, "softmax", True, None)
    out = run(DiceLoss(softmax=True, to_onehot_y=True, include_background=False, reduction="none"), x, y)
    assert tuple(out.shape) == (B, C - 1), f"reduction='none' gives {tuple(out.shape)}, brief says (B, C')"


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("to_onehot_y,ignore", TARGETS)
@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("smooth", [1e-5, 0.5])
def test_jaccard_loss_parity(act, to_onehot_y, ignore, batch, smooth, request):
    JaccardLoss = get_cls("JaccardLoss")
    for seed in node_seeds(request):
        x, y, p, g, valid = region_inputs(seed, act, to_onehot_y, ignore)
        per = region.dice_loss(p, g, valid, jaccard=True, batch=batch, smooth_nr=smooth, smooth_dr=smooth)
        plain = region.dice_loss(p, g, valid, jaccard=True, batch=batch, smooth_nr=smooth, smooth_dr=smooth,
                                 jaccard_form="plain")
        for reduction in ("mean", "sum"):
            out = run(JaccardLoss(to_onehot_y=to_onehot_y, ignore_index=ignore, batch=batch, reduction=reduction,
                                  smooth_nr=smooth, smooth_dr=smooth, **act_kwargs(act)), x, y)
            check(out, reduce_pc(per, reduction),
                  f"JaccardLoss[act={act}, onehot_y={to_onehot_y}, ignore={ignore}, batch={batch}, "
                  f"smooth={smooth}, reduction={reduction}, seed={seed}]",
                  {"jaccard 1-(I+s_nr)/(U-I+s_dr)": reduce_pc(plain, reduction)})


@pytest.mark.parametrize("name", ["DiceLoss", "TverskyLoss", "FocalTverskyLoss", "GeneralizedDiceLoss"])
@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("ignore", [2, 0, -1])
def test_region_ignore_index_values(name, include_background, ignore):
    """ignore_index = a real class index (2 or 0: voxels with that label leave every statistic) or a
    negative sentinel (-1)."""
    cls = get_cls(name)
    fn = {"DiceLoss": region.dice_loss, "TverskyLoss": region.tversky_loss,
          "FocalTverskyLoss": region.focal_tversky_loss, "GeneralizedDiceLoss": region.generalized_dice_loss}[name]
    for seed in SEEDS[:2]:
        logits, labels, valid, _ = make_case(seed, ignore=ignore)
        p, g = drop_bg(softmax_np(logits), one_hot_np(labels.numpy(), C, ignore_value=ignore), include_background)
        per = fn(p, g, valid)
        out = run(cls(softmax=True, to_onehot_y=True, ignore_index=ignore, include_background=include_background,
                      reduction="none"), logits, labels[:, None].double())
        check(out, per, f"{name}[ignore_index={ignore}, bg={include_background}, seed={seed}]")


def test_dice_ignored_logits_do_not_matter():
    DiceLoss = get_cls("DiceLoss")
    logits, labels, valid, _ = make_case(0, ignore=IGNORE)
    garbage = torch.where(valid.bool()[:, None], logits, logits * 0 + 50.0)
    loss = DiceLoss(softmax=True, to_onehot_y=True, ignore_index=IGNORE)
    y = labels[:, None].double()
    check(run(loss, garbage, y), run(loss, logits, y), "DiceLoss: logits inside the ignored region changed the loss")


# ----------------------------------------------------------------------------- Tversky / Focal-Tversky
TV_PARAMS = [(0.5, 0.5, 1e-5, 1e-5), (0.3, 0.7, 1e-5, 1e-5), (0.8, 0.1, 0.1, 0.2)]


# soft_label is exercised with alpha=0.3, beta=0.7 only
TV_PARAMS_SOFT = [(*prm, False) for prm in TV_PARAMS] + [(0.3, 0.7, 1e-5, 1e-5, True)]


@pytest.mark.parametrize("alpha,beta,snr,sdr,soft_label", TV_PARAMS_SOFT)
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("to_onehot_y,ignore", TARGETS)
@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("batch", [False, True])
def test_tversky_parity(alpha, beta, snr, sdr, act, to_onehot_y, ignore, include_background, batch, soft_label,
                        request):
    TverskyLoss = get_cls("TverskyLoss")
    soft = soft_label and not to_onehot_y
    for seed in node_seeds(request):
        x, y, p, g, valid = region_inputs(seed, act, to_onehot_y, ignore, soft=soft)
        p, g = drop_bg(p, g, include_background)
        kw = dict(alpha=alpha, beta=beta, smooth_nr=snr, smooth_dr=sdr, batch=batch)
        per = region.tversky_loss(p, g, valid, soft_label=soft_label, **kw)
        swapped = region.tversky_loss(p, g, valid, soft_label=soft_label, **dict(kw, alpha=beta, beta=alpha))
        for reduction in REDUCTIONS:
            out = run(TverskyLoss(include_background=include_background, to_onehot_y=to_onehot_y, ignore_index=ignore,
                                  reduction=reduction, soft_label=soft_label, **act_kwargs(act), **kw), x, y)
            check(out, reduce_pc(per, reduction),
                  f"TverskyLoss[a={alpha}, b={beta}, act={act}, onehot_y={to_onehot_y}, ignore={ignore}, "
                  f"bg={include_background}, batch={batch}, soft_label={soft_label}, reduction={reduction}, "
                  f"seed={seed}]", {"alpha on FN / beta on FP": reduce_pc(swapped, reduction)})


FT_PARAMS = [None, (0.5, 0.5, 1.0), (0.7, 0.2, 2.5)]


@pytest.mark.parametrize("params", FT_PARAMS)
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("to_onehot_y,ignore", TARGETS)
@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("batch", [False, True])
def test_focal_tversky_parity(params, act, to_onehot_y, ignore, include_background, batch, request):
    FocalTverskyLoss = get_cls("FocalTverskyLoss")
    kw = {} if params is None else dict(alpha=params[0], beta=params[1], gamma=params[2])
    a, b_, gm = (0.3, 0.7, 4.0 / 3.0) if params is None else params
    for seed in node_seeds(request):
        x, y, p, g, valid = region_inputs(seed, act, to_onehot_y, ignore)
        p, g = drop_bg(p, g, include_background)
        per = region.focal_tversky_loss(p, g, valid, alpha=a, beta=b_, gamma=gm, batch=batch)
        ti = 1.0 - region.tversky_loss(p, g, valid, alpha=a, beta=b_, batch=batch)
        for reduction in REDUCTIONS:
            out = run(FocalTverskyLoss(include_background=include_background, to_onehot_y=to_onehot_y,
                                       ignore_index=ignore, batch=batch, reduction=reduction, **act_kwargs(act),
                                       **kw), x, y)
            cands = {
                "exponent gamma instead of 1/gamma": reduce_pc((1 - ti) ** gm, reduction),
                "exponent after the class mean": (1 - ti.mean()) ** (1 / gm) if reduction == "mean" else None,
                "alpha on FN / beta on FP": reduce_pc(region.focal_tversky_loss(
                    p, g, valid, alpha=b_, beta=a, gamma=gm, batch=batch), reduction),
            }
            check(out, reduce_pc(per, reduction),
                  f"FocalTverskyLoss[{params}, act={act}, onehot_y={to_onehot_y}, ignore={ignore}, "
                  f"bg={include_background}, batch={batch}, reduction={reduction}, seed={seed}]",
                  {k: v for k, v in cands.items() if v is not None})


# ----------------------------------------------------------------------------- Generalized Dice
@pytest.mark.parametrize("w_type", ["square", "simple", "uniform"])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("to_onehot_y,ignore", TARGETS)
@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("batch", [False, True])
def test_generalized_dice_parity(w_type, act, to_onehot_y, ignore, include_background, batch, request):
    """Random targets: every class is present, so the empty policy is irrelevant (alternated)."""
    GDL = get_cls("GeneralizedDiceLoss")
    empty = "penalize" if batch else "monai"
    for seed in node_seeds(request):
        x, y, p, g, valid = region_inputs(seed, act, to_onehot_y, ignore)
        p, g = drop_bg(p, g, include_background)
        per = region.generalized_dice_loss(p, g, valid, w_type=w_type, batch=batch, empty=empty)
        for reduction in REDUCTIONS:
            out = run(GDL(include_background=include_background, to_onehot_y=to_onehot_y, ignore_index=ignore,
                          w_type=w_type, batch=batch, reduction=reduction, empty=empty, **act_kwargs(act)), x, y)
            check(out, reduce_pc(per, reduction),
                  f"GeneralizedDiceLoss[{w_type}, empty={empty}, act={act}, onehot_y={to_onehot_y}, "
                  f"ignore={ignore}, bg={include_background}, batch={batch}, reduction={reduction}, seed={seed}]")


@pytest.mark.parametrize("w_type", ["square", "simple", "uniform"])
@pytest.mark.parametrize("empty", ["penalize", "monai"])
@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("situation", ["one_class_absent", "sample_all_absent", "batch_all_absent"])
def test_generalized_dice_absent_classes(w_type, empty, batch, situation):
    """include_background=False so that 'no class present' can happen; softmax over all classes."""
    GDL = get_cls("GeneralizedDiceLoss")
    for seed in SEEDS:
        logits, labels, _, _ = make_case(seed)
        if situation == "one_class_absent":
            labels = torch.where(labels == 2, torch.zeros_like(labels), labels)
        elif situation == "sample_all_absent":
            labels[0] = 0
        else:
            labels = torch.zeros_like(labels)
        p, g = drop_bg(softmax_np(logits), one_hot_np(labels.numpy(), C), False)
        per = region.generalized_dice_loss(p, g, w_type=w_type, batch=batch, empty=empty)
        other = region.generalized_dice_loss(p, g, w_type=w_type, batch=batch,
                                             empty="monai" if empty == "penalize" else "penalize")
        out = run(GDL(softmax=True, to_onehot_y=True, include_background=False, w_type=w_type, batch=batch,
                      empty=empty, reduction="none"), logits, labels[:, None].double())
        pf = p.reshape(B, C - 1, -1)
        soft_fp = pf.mean(axis=(1, 2)) if not batch else pf.mean()
        if situation == "sample_all_absent" and not batch:
            soft_fp = np.where(np.arange(B) == 0, soft_fp, per)
        if situation == "one_class_absent" or (situation == "sample_all_absent" and batch):
            soft_fp = per  # some class is present in every problem
        cands = {"the other empty policy": other,
                 "all-absent sample -> mean predicted probability of the kept classes": soft_fp,
                 "all-absent sample -> unit weights (1 - s_nr / (sum P + s_dr))": per}
        if empty == "penalize" and GDL_PENALIZE_ALL_ABSENT == "mean_probability":
            per = soft_fp
        check(out, per, f"GeneralizedDiceLoss[{situation}, {w_type}, empty={empty}, batch={batch}, seed={seed}] "
                        f"(GDL_PENALIZE_ALL_ABSENT={GDL_PENALIZE_ALL_ABSENT!r})", cands)


# ----------------------------------------------------------------------------- single-channel (binary) inputs
SINGLE_CHANNEL = [(n, b) for n in ("DiceLoss", "JaccardLoss", "TverskyLoss", "FocalTverskyLoss",
                                    "GeneralizedDiceLoss") for b in (False, True)] + [("FocalLoss", False)]


@pytest.mark.parametrize("name,batch", SINGLE_CHANNEL)
def test_single_channel_sigmoid(name, batch):
    """C = 1: sigmoid probabilities against a (B, 1, *S) binary mask (MONAI: include_background is moot)."""
    cls = get_cls(name)
    for seed in SEEDS:
        logits, _, _, _ = make_case(seed, shape=(2, 1, 6, 5, 4))
        gen = torch.Generator().manual_seed(77 + seed)
        y = torch.randint(0, 2, logits.shape, generator=gen).double()
        p = sigmoid_np(logits)
        g = y.numpy()
        if name == "FocalLoss":
            exp = voxel.sigmoid_focal(logits, y)
            out = run(cls(), logits, y)
        else:
            out = run(cls(sigmoid=True, batch=batch), logits, y)
            if name == "DiceLoss":
                exp = region.dice_loss(p, g, batch=batch).mean()
            elif name == "JaccardLoss":
                exp = region.dice_loss(p, g, jaccard=True, batch=batch).mean()
            elif name == "TverskyLoss":
                exp = region.tversky_loss(p, g, batch=batch).mean()
            elif name == "FocalTverskyLoss":
                exp = region.focal_tversky_loss(p, g, batch=batch).mean()
            else:
                exp = np.mean(region.generalized_dice_loss(p, g, batch=batch))
        check(out, exp, f"{name}[C=1, sigmoid, batch={batch}, seed={seed}]")
