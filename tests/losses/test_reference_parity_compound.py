"""Compound and paper losses (Dice+CE, ExpLog, AnatomyNet, Lovász) and the gradients against the paper references
(see tests/losses/_reference_parity_common.py for the cases and conventions).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from tests.losses._reference_parity_common import (
    IGNORE,
    PER_CLASS_ARGS_NO_BG,
    SEEDS,
    B,
    C,
    check,
    get_cls,
    make_case,
    reduce_pc,
    run,
)
from tests.reference import anatomynet, explog, lovasz, region, voxel
from tests.reference._common import one_hot_np, softmax_np

pytestmark = pytest.mark.usefixtures("table_engine")  # every engine is held to these numbers


# ----------------------------------------------------------------------------- compound: Dice + CE
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore", [None, IGNORE])
@pytest.mark.parametrize("lambdas", [(1.0, 1.0), (0.7, 0.3)])
@pytest.mark.parametrize("batch", [False, True])
def test_dice_ce_parity(weighted, ignore, lambdas, batch):
    """MONAI DiceCELoss composition: lambda_dice * Dice (class weights applied per class) +
    lambda_ce * torch CE (same class weights, mean over valid voxels), softmax, label-map target;
    with ignore_index both terms drop the ignored voxels."""
    DiceCE = get_cls("DiceCELoss")
    w = [0.3, 1.7, 1.1] if weighted else None
    for seed in SEEDS[:2]:
        logits, labels, valid, _ = make_case(seed, ignore=ignore)
        p = softmax_np(logits)
        g = one_hot_np(labels.numpy(), C, ignore_value=ignore)
        dice = region.dice_loss(p, g, valid, batch=batch)
        if w is not None:
            dice = dice * np.asarray(w)
        ce = voxel.cross_entropy(logits, labels, weight=w, ignore_index=-100 if ignore is None else ignore)
        exp = lambdas[0] * dice.mean() + lambdas[1] * ce
        kw = dict(softmax=True, to_onehot_y=True, lambda_dice=lambdas[0], lambda_ce=lambdas[1], batch=batch)
        if w is not None:
            kw["weight"] = torch.tensor(w, dtype=torch.float64)
        if ignore is not None:
            kw["ignore_index"] = ignore
        out = run(DiceCE(**kw), logits, labels[:, None].double())
        check(out, exp, f"DiceCELoss[weight={weighted}, ignore={ignore}, lambdas={lambdas}, batch={batch}, "
                        f"seed={seed}]", {"Dice term without class weights": lambda dice=dice, ce=ce: lambdas[0] * (
                            dice / (np.asarray(w) if w is not None else 1.0)).mean() + lambdas[1] * ce})


# ----------------------------------------------------------------------------- ExpLog (Wong 2018)
FREQS = [50.0, 30.0, 20.0]


def _explog_candidates(p, g, valid, kw):
    out = {}
    for bd, cl, cm in itertools.product([False, True], ["clip", "affine", "none"], ["sample", "batch"]):
        clamp = {"clip": explog.DEFAULT_CLAMP, "affine": ("affine", 0.01, 0.98), "none": None}[cl]
        out[f"batch_dice={bd}, clamp={cl}, cross_mean={cm}"] = (lambda bd=bd, clamp=clamp, cm=cm: explog.explog_loss(
            p, g, valid, batch_dice=bd, clamp=clamp, cross_mean=cm, **kw))
    return out


@pytest.mark.parametrize("freqs", ["given", "batch"])
@pytest.mark.parametrize("ignore", [None, IGNORE])
@pytest.mark.parametrize("params", [None, (0.5, 0.5, 1.0, 0.5)])
def test_explog_parity(freqs, ignore, params):
    ExpLogLoss = get_cls("ExpLogLoss")
    kw = {} if params is None else dict(w_dice=params[0], w_cross=params[1], gamma_dice=params[2],
                                        gamma_cross=params[3])
    for seed in SEEDS:
        logits, labels, valid, _ = make_case(seed, ignore=ignore)
        p = softmax_np(logits)
        g = one_hot_np(labels.numpy(), C, ignore_value=ignore)
        f = FREQS if freqs == "given" else None
        rkw = dict(kw, class_frequencies=f)
        exp = explog.explog_loss(p, g, valid, **rkw)
        out = run(ExpLogLoss(softmax=True, to_onehot_y=True, ignore_index=ignore, class_frequencies=f, **kw),
                  logits, labels[:, None].double())
        check(out, exp, f"ExpLogLoss[freqs={freqs}, ignore={ignore}, params={params}, seed={seed}] "
                        f"(reference: per-image Dice and CE mean, eps=1, clip [1e-5, 1-1e-5])",
              _explog_candidates(p, g, valid, rkw))


def test_explog_saturated_prediction_is_finite_and_clamped():
    """Near-perfect prediction: the clamp decides the value (gamma < 1)."""
    ExpLogLoss = get_cls("ExpLogLoss")
    logits, labels, _, _ = make_case(0)
    g = one_hot_np(labels.numpy(), C)
    sharp = torch.from_numpy(g * 40.0 - 20.0)
    p = softmax_np(sharp)
    loss = ExpLogLoss(softmax=True, to_onehot_y=True, class_frequencies=FREQS)
    x = sharp.clone().requires_grad_(True)
    out = run(loss, x, labels[:, None].double())
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(x.grad).all(), "non-finite loss/gradient at saturation"
    exp = explog.explog_loss(p, g, class_frequencies=FREQS)
    check(out, exp, "ExpLogLoss[saturated] (reference clip [1e-5, 1-1e-5])",
          _explog_candidates(p, g, None, {"class_frequencies": FREQS}))


def test_explog_without_background():
    """include_background=False (not fixed by the paper): the Dice term averages over the kept classes;
    the cross term stays the voxel-wise term over all voxels (softmax over all classes, w_l from all
    labels), as excluding background voxels from a cross-entropy would leave them unsupervised."""
    ExpLogLoss = get_cls("ExpLogLoss")
    for seed in SEEDS[:2]:
        logits, labels, _, _ = make_case(seed)
        p = softmax_np(logits)
        g = one_hot_np(labels.numpy(), C)
        l_dice_fg = explog.explog_dice_term(p[:, 1:], g[:, 1:])
        _, l_cross = explog.explog_terms(p, g, class_frequencies=FREQS)
        exp = 0.8 * l_dice_fg + 0.2 * l_cross
        out = run(ExpLogLoss(softmax=True, to_onehot_y=True, include_background=False, class_frequencies=FREQS),
                  logits, labels[:, None].double())
        check(out, exp, f"ExpLogLoss[include_background=False, seed={seed}]")


# ----------------------------------------------------------------------------- AnatomyNet
def _anatomy_candidates(p, g, valid, kw, lam):
    alt = {}
    alt["smooth_nr=smooth_dr=1e-5"] = lambda: anatomynet.anatomynet_loss(
        p, g, valid, lambda_focal=lam, **dict(kw, smooth_nr=1e-5, smooth_dr=1e-5))
    alt["no smoothing"] = lambda: anatomynet.anatomynet_loss(
        p, g, valid, lambda_focal=lam, **dict(kw, smooth_nr=0.0, smooth_dr=0.0))
    alt["alpha<->beta swapped"] = lambda: anatomynet.anatomynet_loss(
        p, g, valid, lambda_focal=lam, **dict(kw, alpha=kw.get("alpha", 0.5), beta=kw.get("beta", 0.5)) | {
            "alpha": kw.get("beta", 0.5), "beta": kw.get("alpha", 0.5)})
    if kw.get("class_weights") is not None:
        def unweighted_focal():
            d, _ = anatomynet.anatomynet_terms(p, g, valid, **kw)
            _, f = anatomynet.anatomynet_terms(p, g, valid, **dict(kw, class_weights=None))
            return d + lam * f
        alt["class weights on the Dice term only"] = unweighted_focal
    return alt


@pytest.mark.parametrize("params", [None, (0.3, 0.6, 1.5)])
@pytest.mark.parametrize("class_weights", [None, [2.0, 1.0, 0.5]])
@pytest.mark.parametrize("ignore", [None, IGNORE])
@pytest.mark.parametrize("lam", [0.5, 0.1])
def test_anatomynet_parity(params, class_weights, ignore, lam):
    AnatomyNetLoss = get_cls("AnatomyNetLoss")
    kw = {} if params is None else dict(alpha=params[0], beta=params[1], gamma=params[2])
    for seed in SEEDS:
        logits, labels, valid, _ = make_case(seed, ignore=ignore)
        p = softmax_np(logits)
        g = one_hot_np(labels.numpy(), C, ignore_value=ignore)
        rkw = dict(kw, class_weights=class_weights)
        exp = anatomynet.anatomynet_loss(p, g, valid, lambda_focal=lam, **rkw)
        ctor = dict(kw, lambda_focal=lam, class_weights=class_weights, softmax=True, to_onehot_y=True,
                    ignore_index=ignore)
        out = run(AnatomyNetLoss(**ctor), logits, labels[:, None].double())
        check(out, exp, f"AnatomyNetLoss[{params}, w={class_weights}, ignore={ignore}, lambda={lam}, seed={seed}] "
                        f"(reference: alpha on FN, beta on FP, smooth_dr=1e-5 only, batch-summed)",
              _anatomy_candidates(p, g, valid, rkw, lam))


def test_anatomynet_without_background():
    """include_background=False: both terms run over the kept classes (softmax over all classes);
    class weights / class mask per PER_CLASS_ARGS_NO_BG."""
    AnatomyNetLoss = get_cls("AnatomyNetLoss")
    w_kept = [1.0, 0.5]
    m_kept = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    if PER_CLASS_ARGS_NO_BG == "kept_channels":
        w_arg, m_arg = w_kept, m_kept
    else:
        w_arg, m_arg = [7.0] + w_kept, torch.cat([torch.ones(B, 1, dtype=torch.float64), m_kept], 1)
    for seed in SEEDS[:2]:
        logits, labels, _, _ = make_case(seed)
        p = softmax_np(logits)[:, 1:]
        g = one_hot_np(labels.numpy(), C)[:, 1:]
        for mask in (None, m_kept):
            exp = anatomynet.anatomynet_loss(p, g, lambda_focal=0.5, class_weights=w_kept, class_mask=mask)
            loss = AnatomyNetLoss(softmax=True, to_onehot_y=True, include_background=False, lambda_focal=0.5,
                                  class_weights=w_arg)
            what = (f"AnatomyNetLoss[include_background=False, class_weights={w_arg}, "
                    f"class_mask={None if mask is None else tuple(m_arg.shape)}, seed={seed}] "
                    f"(PER_CLASS_ARGS_NO_BG={PER_CLASS_ARGS_NO_BG!r})")
            try:
                out = run(loss, logits, labels[:, None].double(), class_mask=None if mask is None else m_arg)
            except Exception as exc:
                pytest.fail(f"{what} raised {exc!r}")
            check(out, exp, what)


@pytest.mark.parametrize("mask_kind", ["per_sample", "per_class"])
def test_anatomynet_class_mask(mask_kind):
    AnatomyNetLoss = get_cls("AnatomyNetLoss")
    for seed in SEEDS:
        logits, labels, _, _ = make_case(seed)
        p = softmax_np(logits)
        g = one_hot_np(labels.numpy(), C)
        if mask_kind == "per_sample":
            m = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]], dtype=torch.float64)
        else:
            m = torch.tensor([[1.0, 0.0, 1.0]] * B, dtype=torch.float64)
        exp = anatomynet.anatomynet_loss(p, g, lambda_focal=0.5, class_mask=m)
        out = run(AnatomyNetLoss(lambda_focal=0.5, softmax=True, to_onehot_y=True), logits,
                  labels[:, None].double(), class_mask=m)
        check(out, exp, f"AnatomyNetLoss[class_mask {mask_kind}, seed={seed}]",
              _anatomy_candidates(p, g, None, {"class_mask": m}, 0.5))


# ----------------------------------------------------------------------------- Lovász
@pytest.mark.parametrize("classes", ["present", "all", [1, 2]])
@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("ignore", [None, IGNORE])
@pytest.mark.parametrize("absent", [False, True])
def test_lovasz_softmax_parity(classes, per_image, ignore, absent):
    Lovasz = get_cls("LovaszSoftmaxLoss")
    for seed in SEEDS:
        logits, labels, _, _ = make_case(seed, ignore=ignore)
        if absent:  # class 2 absent from image 0 only
            labels[0] = torch.where(labels[0] == 2, torch.ones_like(labels[0]), labels[0])
        p = softmax_np(logits)
        exp = lovasz.lovasz_softmax(p, labels, classes=classes, per_image=per_image, ignore=ignore)
        out = run(Lovasz(classes=classes, per_image=per_image, ignore_index=ignore, softmax=True,
                         to_onehot_y=True), logits, labels[:, None].double())
        check(out, exp, f"LovaszSoftmaxLoss[classes={classes}, per_image={per_image}, ignore={ignore}, "
                        f"absent={absent}, seed={seed}]")


def test_lovasz_softmax_probability_input():
    Lovasz = get_cls("LovaszSoftmaxLoss")
    logits, labels, _, _ = make_case(4)
    p = torch.softmax(logits, 1)
    exp = lovasz.lovasz_softmax(p, labels)
    out = run(Lovasz(to_onehot_y=True), p, labels[:, None].double())
    check(out, exp, "LovaszSoftmaxLoss[softmax=False, probabilities in]")


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("ignore", [None, IGNORE])
def test_lovasz_hinge_parity(per_image, ignore):
    Hinge = get_cls("LovaszHingeLoss")
    try:
        loss = Hinge(per_image=per_image, ignore_index=ignore)
    except TypeError as exc:
        pytest.skip(f"LovaszHingeLoss signature differs from (per_image=, ignore_index=): {exc}")
    for seed in SEEDS:
        shape = (2, 1, 6, 5, 4)
        logits, labels, _, _ = make_case(seed, shape=shape)
        gen = torch.Generator().manual_seed(50 + seed)
        y = torch.randint(0, 2, labels.shape, generator=gen)
        if ignore is not None:
            y = torch.where(torch.rand(y.shape, generator=gen) < 0.25, torch.full_like(y, ignore), y)
        exp = lovasz.lovasz_hinge(logits[:, 0], y, per_image=per_image, ignore=ignore)
        out = run(loss, logits, y[:, None].double())
        check(out, exp, f"LovaszHingeLoss[per_image={per_image}, ignore={ignore}, seed={seed}]")


# ----------------------------------------------------------------------------- gradients
GRAD_SHAPE = (2, 3, 4, 3, 3)


def _grad_cases():
    """(class name, constructor kwargs, target kind, reference as a function of the logits)."""
    def region_ref(fn, reduce="mean", bg=True, **kw):
        def f(x, labels, valid):
            p = softmax_np(x)
            g = one_hot_np(labels, C, ignore_value=IGNORE)
            if not bg:
                p, g = p[:, 1:], g[:, 1:]
            return float(reduce_pc(fn(p, g, valid, **kw), reduce))
        return f

    def ce_ref(x, labels, valid):
        return voxel.cross_entropy(x, labels, weight=[0.3, 1.7, 1.1], ignore_index=IGNORE, label_smoothing=0.1)

    def focal_ref(x, labels, valid):
        return voxel.sigmoid_focal(x, one_hot_np(labels, C, ignore_value=IGNORE), valid, alpha=0.25)

    def focal_sm_ref(x, labels, valid):
        return voxel.softmax_focal(x, one_hot_np(labels, C, ignore_value=IGNORE), valid, gamma=1.5,
                                   alpha=[0.2, 0.5, 0.9])

    def explog_ref(x, labels, valid):
        return explog.explog_loss(softmax_np(x), one_hot_np(labels, C, ignore_value=IGNORE), valid,
                                  class_frequencies=FREQS)

    def anat_ref(x, labels, valid):
        return anatomynet.anatomynet_loss(softmax_np(x), one_hot_np(labels, C, ignore_value=IGNORE), valid,
                                          lambda_focal=0.5, class_weights=[2.0, 1.0, 0.5])

    def lovasz_ref(x, labels, valid):
        return lovasz.lovasz_softmax(softmax_np(x), labels, ignore=IGNORE, per_image=True)

    onehot = dict(softmax=True, to_onehot_y=True, ignore_index=IGNORE)
    return {
        "DiceLoss": ("DiceLoss", dict(onehot, include_background=False), region_ref(region.dice_loss, bg=False)),
        "DiceLoss-squared-batch": ("DiceLoss", dict(onehot, squared_pred=True, batch=True),
                                   region_ref(region.dice_loss, squared_pred=True, batch=True)),
        "TverskyLoss": ("TverskyLoss", dict(onehot, alpha=0.3, beta=0.7, reduction="sum"),
                        region_ref(region.tversky_loss, "sum", alpha=0.3, beta=0.7)),
        "FocalTverskyLoss": ("FocalTverskyLoss", onehot, region_ref(region.focal_tversky_loss)),
        "GeneralizedDiceLoss": ("GeneralizedDiceLoss", onehot, region_ref(region.generalized_dice_loss)),
        "CrossEntropyLoss": ("CrossEntropyLoss", dict(weight=torch.tensor([0.3, 1.7, 1.1], dtype=torch.float64),
                                                      ignore_index=IGNORE, label_smoothing=0.1), ce_ref),
        "FocalLoss-sigmoid": ("FocalLoss", dict(to_onehot_y=True, ignore_index=IGNORE, alpha=0.25), focal_ref),
        "FocalLoss-softmax": ("FocalLoss", dict(to_onehot_y=True, ignore_index=IGNORE, gamma=1.5,
                                                alpha=[0.2, 0.5, 0.9], use_softmax=True), focal_sm_ref),
        "ExpLogLoss": ("ExpLogLoss", dict(onehot, class_frequencies=FREQS), explog_ref),
        "AnatomyNetLoss": ("AnatomyNetLoss", dict(onehot, lambda_focal=0.5, class_weights=[2.0, 1.0, 0.5]),
                           anat_ref),
        "LovaszSoftmaxLoss": ("LovaszSoftmaxLoss", dict(onehot, per_image=True), lovasz_ref),
    }


@pytest.mark.parametrize("case", list(_grad_cases()))
def test_gradient_matches_reference_finite_differences(case):
    """d loss / d logits from autograd vs central differences of the reference (h = 1e-5) at a few
    random coordinates, ignored voxels included (their gradient must be 0)."""
    name, kw, ref = _grad_cases()[case]
    cls = get_cls(name)
    logits, labels, valid, _ = make_case(11, ignore=IGNORE, shape=GRAD_SHAPE)
    x = logits.clone().requires_grad_(True)
    target = labels[:, None].double() if name != "CrossEntropyLoss" else labels
    out = run(cls(**kw), x, target)
    out.backward()
    grad = x.grad.numpy()
    lab = labels.numpy()
    v = valid.numpy()
    rng = np.random.default_rng(0)
    flat = [tuple(int(i) for i in np.unravel_index(k, GRAD_SHAPE)) for k in rng.choice(x.numel(), 8, replace=False)]
    ignored = np.argwhere(np.broadcast_to(v[:, None] == 0, GRAD_SHAPE))
    flat += [tuple(int(i) for i in ignored[0]), tuple(int(i) for i in ignored[-1])]
    h = 1e-5
    base = logits.numpy()
    for idx in flat:
        xp = base.copy()
        xm = base.copy()
        xp[idx] += h
        xm[idx] -= h
        fd = (ref(xp, lab, valid) - ref(xm, lab, valid)) / (2 * h)
        assert abs(grad[idx] - fd) <= 1e-6 * max(1.0, abs(fd)), (
            f"{case}: d/dx{idx} autograd {grad[idx]:.10g} vs reference finite difference {fd:.10g}")
