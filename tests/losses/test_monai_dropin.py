"""Same class name and arguments as MONAI 1.6.1 -> MONAI's numbers, shapes and warnings (issue 12, section 1).

Each test compares with MONAI live (skipped without MONAI) and with medloss's own components where that states
the rule more plainly. Deliberate differences are in docs/monai-differences.md and
``test_monai_published.DIFFERENCES``.
"""
from __future__ import annotations

import itertools
import warnings

import pytest
import torch

import medloss.losses as L

pytestmark = pytest.mark.usefixtures("table_engine")  # every engine is held to these numbers

M = pytest.importorskip("monai.losses")


def _sigmoid_case(seed=0, shape=(2, 3, 6, 5, 4)):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, shape, generator=g).double()
    return x, y


def _softmax_case(seed=0, shape=(2, 3, 6, 5, 4)):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    y = torch.randint(0, shape[1], (shape[0], 1, *shape[2:]), generator=g)
    return x, y


def _close(ours, theirs):
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    torch.testing.assert_close(ours.double(), theirs.double(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------- class weights

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weight", [None, [1.0, 1.0, 2.0], (3, 2.0, 1), 2.0])
def test_dice_focal_weight_weighs_both_terms_as_monai(weight, reduction):
    x, y = _sigmoid_case()
    kw = dict(sigmoid=True, gamma=1.0, weight=weight, reduction=reduction, lambda_focal=1.5)
    ours = L.DiceFocalLoss(**kw)(x, y)
    _close(ours, M.DiceFocalLoss(**kw)(x, y))
    dice = L.DiceLoss(sigmoid=True, weight=weight, reduction=reduction)(x, y)
    focal = L.FocalLoss(gamma=1.0, weight=weight, reduction=reduction)(x, y)
    if reduction == "none":
        dice = dice.reshape(*dice.shape, 1, 1, 1)
    _close(ours, dice + 1.5 * focal)


def test_dice_focal_weight_issue_figure():
    x, y = _sigmoid_case(seed=3)
    ours = L.DiceFocalLoss(sigmoid=True, gamma=1.0, weight=[1, 1, 2])(x, y)
    _close(ours, M.DiceFocalLoss(sigmoid=True, gamma=1.0, weight=[1, 1, 2])(x, y))
    assert not torch.allclose(ours, L.DiceFocalLoss(sigmoid=True, gamma=1.0)(x, y))


@pytest.mark.parametrize("name", ["DiceLoss", "DiceCELoss", "DiceFocalLoss"])
def test_dice_term_ignores_weight_with_one_scored_class(name):
    """MONAI's DiceLoss applies class weights only with more than one class; the voxel terms still use them."""
    x, y = _sigmoid_case(shape=(2, 1, 6, 5, 4))
    kw = dict(sigmoid=True, weight=3.0) if name != "DiceCELoss" else dict(sigmoid=True, weight=torch.tensor([3.0]))
    _close(getattr(L, name)(**kw)(x, y), getattr(M, name)(**kw)(x, y))
    if name == "DiceLoss":
        _close(L.DiceLoss(**kw)(x, y), L.DiceLoss(sigmoid=True)(x, y))


def test_dice_ce_scalar_weight_without_background():
    x, y = _softmax_case()
    for reduction in ("mean", "sum"):
        scalar = L.DiceCELoss(softmax=True, to_onehot_y=True, include_background=False, weight=2.0,
                              reduction=reduction)(x, y)
        vector = L.DiceCELoss(softmax=True, to_onehot_y=True, include_background=False, weight=[2.0, 2.0, 2.0],
                              reduction=reduction)(x, y)
        _close(scalar, vector)


# ------------------------------------------------------------------------------------------ reduction="none"

@pytest.mark.parametrize("weight", [None, [1.0, 2.0, 0.5]])
def test_dice_focal_and_gdfl_reduction_none_is_monais_elementwise_shape(weight):
    x, y = _sigmoid_case()
    for name in ("DiceFocalLoss", "GeneralizedDiceFocalLoss"):
        kw = dict(sigmoid=True, reduction="none", weight=weight)
        ours = getattr(L, name)(**kw)(x, y)
        assert ours.shape == x.shape
        _close(ours, getattr(M, name)(**kw)(x, y))
    x, y = _softmax_case()  # softmax: medloss's focal term is the softmax focal loss (docs); shapes agree
    ours = L.GeneralizedDiceFocalLoss(softmax=True, to_onehot_y=True, reduction="none")(x, y)
    assert ours.shape == M.GeneralizedDiceFocalLoss(softmax=True, to_onehot_y=True, reduction="none")(x, y).shape


def test_dice_ce_reduction_none_error_names_the_class():
    from medloss.errors import InvalidOptionError

    with pytest.raises(InvalidOptionError, match="DiceCELoss"):
        L.DiceCELoss(reduction="none")
    with pytest.raises(InvalidOptionError, match="not supported by GeneralizedDiceFocalLoss"):
        L.GeneralizedDiceFocalLoss(other_act=torch.tanh)


# ---------------------------------------------------------------------------------------------- focal loss

@pytest.mark.parametrize("use_softmax", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_focal_on_classification_input(use_softmax, reduction):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 5, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 5, (16, 1), generator=g)
    onehot = torch.nn.functional.one_hot(labels[:, 0], 5).double()
    kw = dict(use_softmax=use_softmax, reduction=reduction, alpha=0.25 if not use_softmax else None)
    ours = L.FocalLoss(**kw)(x, onehot)
    _close(L.FocalLoss(to_onehot_y=True, **kw)(x, labels), ours)
    if reduction == "sum":  # MONAI's "sum" is a sum of spatial means; with no spatial axis its mean(dim=[])
        # averages everything (so its "sum" equals its "mean"); medloss sums the elements (docs/monai-differences.md)
        elements = L.FocalLoss(**dict(kw, reduction="none"))(x, onehot)
        _close(ours, elements.sum())
        _close(M.FocalLoss(**kw)(x, onehot), elements.mean())
        return
    _close(ours, M.FocalLoss(**kw)(x, onehot))
    _close(ours, M.FocalLoss(to_onehot_y=True, **kw)(x, labels))
    if not use_softmax and reduction == "mean":  # gamma = 0: BCE with logits (MONAI's consistency test)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(x, onehot)
        _close(L.FocalLoss(gamma=0.0, to_onehot_y=True)(x, labels), bce)


def test_scalar_alpha_with_softmax_without_background_is_ignored_with_monais_warning():
    x, y = _softmax_case()
    kw = dict(use_softmax=True, include_background=False, to_onehot_y=True)
    with pytest.warns(UserWarning, match="scalar `alpha` ignored when using softmax"):
        with_alpha = L.FocalLoss(alpha=0.3, **kw)(x, y)
    _close(with_alpha, L.FocalLoss(**kw)(x, y))
    with pytest.warns(UserWarning, match="scalar `alpha` ignored"):
        with_alpha = L.DiceFocalLoss(softmax=True, to_onehot_y=True, include_background=False, alpha=0.3)(x, y)
    _close(with_alpha, L.DiceFocalLoss(softmax=True, to_onehot_y=True, include_background=False)(x, y))


# ----------------------------------------------------------------------------------------------- warnings

ONE_CHANNEL = {
    "DiceLoss": dict(sigmoid=True), "GeneralizedDiceLoss": dict(sigmoid=True), "TverskyLoss": dict(sigmoid=True),
    "FocalLoss": {}, "DiceFocalLoss": dict(sigmoid=True), "DiceCELoss": dict(sigmoid=True),
    "GeneralizedDiceFocalLoss": dict(sigmoid=True),
}


@pytest.mark.parametrize("name", sorted(ONE_CHANNEL))
@pytest.mark.parametrize("option", [{"to_onehot_y": True}, {"include_background": False}])
def test_monai_single_channel_warnings(name, option):
    x, y = _sigmoid_case(shape=(2, 1, 4, 4, 4))
    kw = dict(ONE_CHANNEL[name], **option)
    ignored = "to_onehot_y=True" if "to_onehot_y" in option else "include_background=False"
    text = f"single channel prediction, `{ignored}` ignored"
    with warnings.catch_warnings(record=True) as theirs:
        warnings.simplefilter("always")
        expected = getattr(M, name)(**kw)(x, y)
    assert any(text in str(w.message) for w in theirs)  # MONAI warns: so must medloss
    with pytest.warns(UserWarning, match=text.replace("`", ".").replace("(", r"\(")):
        ours = getattr(L, name)(**kw)(x, y)
    _close(ours, expected)


# ---------------------------------------------------------------------------------------- deep supervision

def _ds_case(spatial=(8, 8)):
    g = torch.Generator().manual_seed(0)
    sizes = [spatial, tuple(s // 2 for s in spatial), tuple(s // 4 for s in spatial)]
    outputs = [torch.randn(2, 3, *s, generator=g, dtype=torch.float64) for s in sizes]
    return outputs, torch.randint(0, 3, (2, 1, *spatial), generator=g)


@pytest.mark.parametrize("spatial", [(8, 8), (8, 8, 8)])
@pytest.mark.parametrize("mode", [None, "exp", "same", "two"])
def test_deep_supervision_defaults_and_modes_as_monai(spatial, mode):
    outputs, lab = _ds_case(spatial)
    args = () if mode is None else (mode,)  # MONAI's positional order: (loss, weight_mode, weights)
    ours = L.DeepSupervisionLoss(L.DiceLoss(softmax=True, to_onehot_y=True), *args)(outputs, lab)
    theirs = M.DeepSupervisionLoss(M.DiceLoss(softmax=True, to_onehot_y=True), *args)(outputs, lab.double())
    _close(ours, theirs)
    single = L.DeepSupervisionLoss(L.DiceLoss(softmax=True, to_onehot_y=True))(outputs[0], lab)  # one tensor
    _close(single, M.DeepSupervisionLoss(M.DiceLoss(softmax=True, to_onehot_y=True))(outputs[0], lab.double()))


def test_deep_supervision_extra_weights_are_unused_and_onehot_targets_stay_onehot():
    outputs, lab = _ds_case()
    weights = [0.1, 0.2, 0.3, 0.4]  # MONAI uses the first len(outputs)
    ours = L.DeepSupervisionLoss(L.DiceLoss(softmax=True, to_onehot_y=True), weights=weights)(outputs, lab)
    theirs = M.DeepSupervisionLoss(M.DiceLoss(softmax=True, to_onehot_y=True), weights=weights)(outputs, lab.double())
    _close(ours, theirs)
    onehot = torch.nn.functional.one_hot(lab[:, 0], 3).permute(0, 3, 1, 2).double()
    ours = L.DeepSupervisionLoss(L.DiceLoss(softmax=True))(outputs, onehot)
    _close(ours, M.DeepSupervisionLoss(M.DiceLoss(softmax=True))(outputs, onehot))


# ------------------------------------------------------------------------------- option grid against MONAI live

GRID_CLASSES = {  # class -> the options of the grid it takes besides activation, to_onehot_y, background, reduction
    "DiceLoss": {"squared_pred", "weight", "batch", "ignore_index"},
    "GeneralizedDiceLoss": {"batch"},
    "TverskyLoss": {"batch"},
    "DiceCELoss": {"squared_pred", "weight", "batch"},
    "DiceFocalLoss": {"squared_pred", "weight", "batch"},
    "GeneralizedDiceFocalLoss": {"weight", "batch"},
    "FocalLoss": {"weight", "ignore_index"},
}


def _grid(name):
    """Every combination of the shared options, minus the deliberate differences of docs/monai-differences.md."""
    extra = GRID_CLASSES[name]
    for act, onehot_y, background, reduction, batch, squared, weighted, ignore in itertools.product(
        ("sigmoid", "softmax"), (True, False), (True, False), ("mean", "sum", "none"), (False, True), (False, True),
        (False, True), (False, True),
    ):
        if (batch and "batch" not in extra) or (squared and "squared_pred" not in extra):
            continue
        if (weighted and "weight" not in extra) or (ignore and ("ignore_index" not in extra or not onehot_y)):
            continue
        if name == "DiceCELoss" and reduction == "none":  # refused by both
            continue
        if act == "softmax" and name in ("DiceFocalLoss", "GeneralizedDiceFocalLoss"):  # softmax focal (docs)
            continue
        if name == "FocalLoss" and act == "softmax" and not background:  # softmax before dropping class 0
            continue
        if name == "FocalLoss" and ignore and reduction == "mean":  # mean over C x valid voxels (docs)
            continue
        kw = dict(include_background=background, to_onehot_y=onehot_y, reduction=reduction)
        kw.update({"use_softmax": act == "softmax"} if name == "FocalLoss" else {act: True})
        if batch:
            kw["batch"] = True
        if squared:
            kw["squared_pred"] = True
        if weighted:  # DiceCE's weight covers every class (its Dice drops class 0), the others' the scored ones
            values = [1.0, 2.0, 0.5] if background or name == "DiceCELoss" else [2.0, 0.5]
            kw["weight"] = torch.tensor(values, dtype=torch.float64)
        if ignore:
            kw["ignore_index"] = 2
        yield kw


@pytest.mark.parametrize("name", sorted(GRID_CLASSES))
def test_option_grid_equals_monai(name):
    x, labels = _softmax_case(seed=1, shape=(2, 3, 5, 4, 3))
    onehot = torch.nn.functional.one_hot(labels[:, 0], 3).permute(0, 4, 1, 2, 3).double()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kw in _grid(name):
            target = labels.clone() if kw["to_onehot_y"] else onehot
            if "ignore_index" in kw:
                target[0, 0, 0, 0, :] = kw["ignore_index"]
            x_theirs, x_ours = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
            theirs = getattr(M, name)(**kw)(x_theirs, target if name == "DiceCELoss" else target.double())
            ours = getattr(L, name)(**kw)(x_ours, target)
            assert ours.numel() == theirs.numel(), kw
            torch.testing.assert_close(ours.double().reshape(-1), theirs.double().reshape(-1), rtol=1e-5, atol=1e-6,
                                       msg=lambda m, kw=kw: f"{name}({kw}): {m}")
            theirs.sum().backward()
            ours.sum().backward()
            torch.testing.assert_close(x_ours.grad, x_theirs.grad.double(), rtol=1e-5, atol=1e-7,
                                       msg=lambda m, kw=kw: f"gradient of {name}({kw}): {m}")
