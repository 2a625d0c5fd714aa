"""Value and gradient parity with MONAI 1.6.1 (and torch for CE/BCE) in float64, rtol 1e-5.

Where MONAI is wrong or differs by design, the test checks medloss's documented behaviour instead (see
docs/monai-differences.md, "Where medloss differs from MONAI").
"""
from __future__ import annotations

import itertools

import monai.losses as M
import pytest
import torch
import torch.nn.functional as F

import medloss.losses as L
from tests._helpers import random_case, value_and_grad

pytestmark = pytest.mark.usefixtures("table_engine")  # every engine is held to these numbers

RTOL = 1e-5


def assert_parity(ours, theirs, logits, target, *, reshape_none=False, atol=1e-10):
    v1, g1 = value_and_grad(ours, logits, target)
    v2, g2 = value_and_grad(theirs, logits, target)
    if reshape_none:
        v2 = v2.reshape(v1.shape)
    torch.testing.assert_close(v1, v2.to(v1.dtype), rtol=RTOL, atol=atol)
    torch.testing.assert_close(g1, g2.to(g1.dtype), rtol=RTOL, atol=RTOL * float(g2.abs().max()) + 1e-12)


def _onehot(labels, num_classes):
    return F.one_hot(labels[:, 0], num_classes).movedim(-1, 1).double()


DICE_GRID = [
    dict(zip(("include_background", "act", "to_onehot_y", "squared_pred", "jaccard", "batch", "reduction"), v,
             strict=True))
    for v in itertools.product(
        (True, False), ("softmax", "sigmoid"), (True, False), (False, True), (False, True), (False, True),
        ("mean", "sum", "none"),
    )
]


@pytest.mark.parametrize("opts", DICE_GRID, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_dice_matches_monai(opts):
    opts = dict(opts)
    act = opts.pop("act")
    if opts["batch"] and opts["reduction"] == "none":
        pytest.skip("MONAI's reduction='none' with batch=True has no (B, C) layout to compare")
    logits, labels = random_case((2, 3, 5, 4, 3))
    target = labels if opts["to_onehot_y"] else _onehot(labels, 3)
    kw = dict(opts, **{act: True}, smooth_nr=1e-4, smooth_dr=2e-4)
    assert_parity(L.DiceLoss(**kw), M.DiceLoss(**kw), logits, target, reshape_none=True)


@pytest.mark.parametrize("ignore_index", [255, 1, -1])
@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("batch", [False, True])
def test_dice_ignore_index_matches_monai(ignore_index, include_background, batch):
    logits, labels = random_case((2, 3, 5, 4, 3), ignore_index=ignore_index)
    kw = dict(softmax=True, to_onehot_y=True, ignore_index=ignore_index, include_background=include_background,
              batch=batch)
    assert_parity(L.DiceLoss(**kw), M.DiceLoss(**kw), logits, labels)


@pytest.mark.parametrize("weight", [0.5, [1.0, 2.0, 0.5]])
def test_dice_class_weight_matches_monai(weight):
    logits, labels = random_case((2, 3, 5, 4, 3))
    kw = dict(softmax=True, to_onehot_y=True, weight=weight)
    assert_parity(L.DiceLoss(**kw), M.DiceLoss(**kw), logits, labels)


@pytest.mark.parametrize("squared_pred", [False, True])
def test_dice_soft_label_matches_monai(squared_pred):
    logits, _ = random_case((2, 3, 5, 4, 3))
    soft = torch.softmax(torch.randn(2, 3, 5, 4, 3, dtype=torch.float64), dim=1)
    kw = dict(softmax=True, soft_label=True, squared_pred=squared_pred)
    assert_parity(L.DiceLoss(**kw), M.DiceLoss(**kw), logits, soft)


def test_jaccard_loss_is_dice_with_jaccard():
    logits, labels = random_case()
    kw = dict(softmax=True, to_onehot_y=True)
    assert_parity(L.JaccardLoss(**kw), M.DiceLoss(jaccard=True, **kw), logits, labels)


TVERSKY_GRID = list(itertools.product((0.3, 0.5, 0.9), (0.7, 0.5, 0.2), (True, False), (False, True),
                                      ("softmax", "sigmoid")))


@pytest.mark.parametrize("alpha,beta,include_background,batch,act", TVERSKY_GRID)
def test_tversky_matches_monai(alpha, beta, include_background, batch, act):
    logits, labels = random_case((2, 3, 5, 4, 3))
    kw = {"alpha": alpha, "beta": beta, "include_background": include_background, "batch": batch, act: True,
          "to_onehot_y": True}
    assert_parity(L.TverskyLoss(**kw), M.TverskyLoss(**kw), logits, labels)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("ignore_index", [None, 255])
def test_tversky_reduction_and_ignore_match_monai(reduction, ignore_index):
    logits, labels = random_case((2, 3, 5, 4, 3), ignore_index=ignore_index)
    kw = dict(softmax=True, to_onehot_y=True, alpha=0.3, beta=0.7, reduction=reduction, ignore_index=ignore_index)
    assert_parity(L.TverskyLoss(**kw), M.TverskyLoss(**kw), logits, labels)


def test_tversky_soft_label_matches_monai():
    logits, _ = random_case((2, 3, 5, 4, 3))
    soft = torch.softmax(torch.randn(2, 3, 5, 4, 3, dtype=torch.float64), dim=1)
    kw = dict(softmax=True, soft_label=True, alpha=0.3, beta=0.7)
    assert_parity(L.TverskyLoss(**kw), M.TverskyLoss(**kw), logits, soft)


@pytest.mark.parametrize(
    "w_type,batch,include_background,reduction",
    list(itertools.product(("square", "simple", "uniform"), (False, True), (True, False), ("mean", "sum"))),
)
def test_generalized_dice_matches_monai(w_type, batch, include_background, reduction):
    logits, labels = random_case((2, 4, 5, 4, 3))
    labels[0][labels[0] == 2] = 3  # class 2 absent from sample 0: MONAI's max-weight rule
    kw = dict(softmax=True, to_onehot_y=True, w_type=w_type, batch=batch, include_background=include_background,
              reduction=reduction)
    assert_parity(L.GeneralizedDiceLoss(**kw), M.GeneralizedDiceLoss(**kw), logits, labels)


def test_generalized_dice_empty_patch_documented_behaviour():
    """MONAI: loss 0 and zero gradient on an all-background patch without background; medloss penalises FPs."""
    logits, _ = random_case((1, 3, 5, 4, 3))
    empty = torch.zeros(1, 1, 5, 4, 3, dtype=torch.long)
    kw = dict(softmax=True, to_onehot_y=True, include_background=False)
    v_monai, g_monai = value_and_grad(M.GeneralizedDiceLoss(**kw), logits, empty)
    assert float(v_monai) == 0.0 and float(g_monai.abs().max()) == 0.0
    assert_parity(L.GeneralizedDiceLoss(empty="monai", **kw), M.GeneralizedDiceLoss(**kw), logits, empty)
    v, g = value_and_grad(L.GeneralizedDiceLoss(**kw), logits, empty)
    p = torch.softmax(logits.detach(), 1)[:, 1:]
    torch.testing.assert_close(v, p.mean(), rtol=1e-10, atol=0)  # soft false-positive rate
    assert float(g.abs().max()) > 1e-3
    # descending that gradient lowers the predicted foreground
    assert float((torch.softmax(logits.detach() - 10 * g, 1)[:, 1:]).mean()) < float(p.mean())


FOCAL_GRID = list(itertools.product(
    (False, True), (0.0, 2.0, 1.5), (None, 0.25, [0.1, 0.3, 0.6]), (None, [1.0, 2.0, 0.5]), ("mean", "sum", "none"),
))


@pytest.mark.parametrize("use_softmax,gamma,alpha,weight,reduction", FOCAL_GRID)
def test_focal_matches_monai(use_softmax, gamma, alpha, weight, reduction):
    logits, labels = random_case((2, 3, 5, 4, 3))
    kw = dict(to_onehot_y=True, use_softmax=use_softmax, gamma=gamma, alpha=alpha, weight=weight, reduction=reduction)
    # MONAI computes focal terms in float32 even for float64 input: its element values carry up to ~2e-7 absolute
    # error (BCE cancellation)
    assert_parity(L.FocalLoss(**kw), M.FocalLoss(**kw), logits, labels, atol=1e-6)


def test_focal_sigmoid_without_background_matches_monai():
    logits, labels = random_case((2, 3, 5, 4, 3))
    kw = dict(to_onehot_y=True, include_background=False, alpha=0.25, weight=[2.0, 0.5])
    assert_parity(L.FocalLoss(**kw), M.FocalLoss(**kw), logits, labels)


@pytest.mark.parametrize("use_softmax", [False, True])
def test_focal_ignore_index_documented_normalisation(use_softmax):
    """sum/none equal MONAI; mean is MONAI's value divided by C (MONAI forgets the channel count)."""
    logits, labels = random_case((2, 3, 5, 4, 3), ignore_index=255)
    for reduction in ("sum", "none"):
        kw = dict(to_onehot_y=True, use_softmax=use_softmax, ignore_index=255, reduction=reduction)
        assert_parity(L.FocalLoss(**kw), M.FocalLoss(**kw), logits, labels, atol=1e-6)
    kw = dict(to_onehot_y=True, use_softmax=use_softmax, ignore_index=255)
    ours, theirs = L.FocalLoss(**kw)(logits, labels), M.FocalLoss(**kw)(logits, labels)
    torch.testing.assert_close(ours * 3, theirs.double(), rtol=RTOL, atol=0)


# --- torch parity for CE and BCE --------------------------------------------------------------------------------

CE_GRID = list(itertools.product((None, [1.0, 2.0, 0.5]), (-100, 2, 255), (0.0, 0.1), ("mean", "sum", "none")))


@pytest.mark.parametrize("weight,ignore_index,label_smoothing,reduction", CE_GRID)
@pytest.mark.parametrize("label_layout", ["B1S", "BS", "float"])
def test_cross_entropy_matches_torch(weight, ignore_index, label_smoothing, reduction, label_layout):
    logits, labels = random_case((2, 3, 5, 4, 3), ignore_index=ignore_index if ignore_index != -100 else None)
    kw = dict(weight=None if weight is None else torch.tensor(weight, dtype=torch.float64),
              ignore_index=ignore_index, label_smoothing=label_smoothing, reduction=reduction)
    target = {"B1S": labels, "BS": labels[:, 0], "float": labels.double()}[label_layout]

    def torch_ce(x, _t):
        return torch.nn.CrossEntropyLoss(**kw)(x, labels[:, 0])

    assert_parity(L.CrossEntropyLoss(**kw), torch_ce, logits, target)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy_soft_targets_match_torch(label_smoothing):
    logits, _ = random_case((2, 3, 5, 4, 3))
    soft = torch.softmax(torch.randn(2, 3, 5, 4, 3, dtype=torch.float64), dim=1)
    kw = dict(label_smoothing=label_smoothing)
    assert_parity(L.CrossEntropyLoss(**kw), torch.nn.CrossEntropyLoss(**kw), logits, soft)


@pytest.mark.parametrize("pos_weight", [None, [2.0, 0.5, 1.0]])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_matches_torch(pos_weight, reduction):
    logits, _ = random_case((2, 3, 5, 4, 3))
    target = (torch.rand(2, 3, 5, 4, 3, dtype=torch.float64) > 0.6).double()
    pw = None if pos_weight is None else torch.tensor(pos_weight, dtype=torch.float64).view(3, 1, 1, 1)
    theirs = torch.nn.BCEWithLogitsLoss(pos_weight=pw, reduction=reduction)
    assert_parity(L.BCELoss(pos_weight=pos_weight, reduction=reduction), theirs, logits, target)


def test_bce_ignore_equals_torch_on_valid_elements():
    logits, _ = random_case((2, 3, 5, 4, 3))
    target = (torch.rand(2, 3, 5, 4, 3, dtype=torch.float64) > 0.6).double()
    ignored = torch.rand(target.shape) < 0.3
    target_ign = target.masked_fill(ignored, 255.0)
    v, g = value_and_grad(L.BCELoss(ignore_index=255), logits, target_ign)

    def torch_valid(x, _t):
        return F.binary_cross_entropy_with_logits(x[~ignored], target[~ignored])

    v2, g2 = value_and_grad(torch_valid, logits, target)
    torch.testing.assert_close(v, v2, rtol=RTOL, atol=0)
    torch.testing.assert_close(g, g2, rtol=RTOL, atol=1e-12)
