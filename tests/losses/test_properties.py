"""Contracts every loss keeps: gradcheck, half precision, ignore invariance, class permutation, shapes."""
from __future__ import annotations

import pytest
import torch

import medloss.losses as L
from medloss import registry
from tests._helpers import loss_study, random_case, value_and_grad

pytestmark = pytest.mark.usefixtures("table_engine")  # every engine is held to these numbers

# (name, factory, target kind); target kinds: "labels" (B,1,*S) label map, "onehot", "soft", "binary" (B,C,*S).
CASES = [
    ("dice-softmax-labels", lambda **k: L.DiceLoss(softmax=True, to_onehot_y=True, **k), "labels"),
    ("dice-softmax-squared", lambda **k: L.DiceLoss(softmax=True, to_onehot_y=True, squared_pred=True, **k), "labels"),
    ("dice-sigmoid-onehot", lambda **k: L.DiceLoss(sigmoid=True, **k), "onehot"),
    ("dice-softmax-soft", lambda **k: L.DiceLoss(softmax=True, soft_label=True, **k), "soft"),
    ("dice-batch-nobg",
     lambda **k: L.DiceLoss(softmax=True, to_onehot_y=True, batch=True, include_background=False, **k), "labels"),
    ("jaccard", lambda **k: L.JaccardLoss(softmax=True, to_onehot_y=True, **k), "labels"),
    ("tversky", lambda **k: L.TverskyLoss(softmax=True, to_onehot_y=True, alpha=0.3, beta=0.7, **k), "labels"),
    ("tversky-sigmoid-batch", lambda **k: L.TverskyLoss(sigmoid=True, batch=True, **k), "onehot"),
    ("focal-tversky", lambda **k: L.FocalTverskyLoss(softmax=True, to_onehot_y=True, **k), "labels"),
    ("gdl-square", lambda **k: L.GeneralizedDiceLoss(softmax=True, to_onehot_y=True, **k), "labels"),
    ("gdl-simple-batch",
     lambda **k: L.GeneralizedDiceLoss(softmax=True, to_onehot_y=True, w_type="simple", batch=True, **k), "labels"),
    ("ce", lambda **k: L.CrossEntropyLoss(**k), "labels"),
    ("ce-smooth-weight", lambda **k: L.CrossEntropyLoss(label_smoothing=0.1, weight=[1.0, 2.0, 0.5], **k), "labels"),
    ("ce-soft", lambda **k: L.CrossEntropyLoss(**k), "soft"),
    ("bce", lambda **k: L.BCELoss(pos_weight=[2.0, 1.0, 0.5], **k), "binary"),
    ("focal-sigmoid", lambda **k: L.FocalLoss(to_onehot_y=True, alpha=0.25, **k), "labels"),
    ("focal-softmax", lambda **k: L.FocalLoss(to_onehot_y=True, use_softmax=True, alpha=[0.2, 0.3, 0.5], **k),
     "labels"),
    ("explog", lambda **k: L.ExpLogLoss(softmax=True, to_onehot_y=True, **k), "labels"),
    ("explog-batch-freqs",
     lambda **k: L.ExpLogLoss(softmax=True, to_onehot_y=True, batch=True, class_frequencies=[0.6, 0.3, 0.1], **k),
     "labels"),
    ("anatomynet", lambda **k: L.AnatomyNetLoss(softmax=True, to_onehot_y=True, class_weights=[1.0, 2.0, 1.5], **k),
     "labels"),
    ("dicece", lambda **k: L.DiceCELoss(softmax=True, to_onehot_y=True, **k), "labels"),
    ("dicefocal-softmax", lambda **k: L.DiceFocalLoss(softmax=True, to_onehot_y=True, **k), "labels"),
    ("gdl-focal", lambda **k: L.GeneralizedDiceFocalLoss(softmax=True, to_onehot_y=True, **k), "labels"),
    ("bcedice", lambda **k: L.BCEDiceLoss(**k), "binary"),
]
IDS = [c[0] for c in CASES]
IGNORABLE = {"labels", "binary"}  # target kinds that carry an ignore label


def make_target(kind, labels, num_classes, *, dtype=torch.float64):
    if kind == "labels":
        return labels
    onehot = torch.nn.functional.one_hot(labels[:, 0].clamp(0, num_classes - 1), num_classes).movedim(-1, 1)
    if kind in ("onehot", "binary"):
        out = onehot.to(dtype)
        if kind == "binary":
            out = out.masked_fill((labels == 255).expand_as(out), 255.0)
        return out
    gen = torch.Generator().manual_seed(1)
    return torch.softmax(torch.randn(onehot.shape, generator=gen, dtype=torch.float64), dim=1).to(dtype)


@pytest.mark.parametrize("name,factory,kind", CASES, ids=IDS)
def test_gradcheck_float64(name, factory, kind):
    logits, labels = random_case((1, 3, 3, 3, 2), scale=1.0, ignore_index=255 if kind in IGNORABLE else None)
    kw = {"ignore_index": 255} if kind in IGNORABLE else {}
    loss = factory(**kw)
    target = make_target(kind, labels, 3)
    assert torch.autograd.gradcheck(lambda x: loss(x, target), (logits,), eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("name,factory,kind", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_outside_autocast(name, factory, kind, dtype):
    """(1, 3, 64, 64, 64) fp16/bf16 input: finite, within 1e-2 of fp32, non-zero gradient."""
    logits32, labels = random_case((1, 3, 64, 64, 64), dtype=torch.float32)
    target32 = make_target(kind, labels, 3, dtype=torch.float32)
    loss = factory()
    ref = loss(logits32.detach(), target32)
    x = logits32.detach().to(dtype).requires_grad_()
    target = target32 if kind == "labels" else target32.to(dtype)
    out = loss(x, target)
    out.backward()
    assert out.dtype == dtype
    assert torch.isfinite(out) and torch.isfinite(x.grad).all()
    torch.testing.assert_close(out.float(), ref, rtol=1e-2, atol=0)
    assert float(x.grad.float().abs().max()) > 0


def test_monai_dice_fails_in_fp16_where_medloss_does_not():
    """The documented MONAI defect the fp32 accumulation fixes (docs/monai-differences.md)."""
    import monai.losses as M

    logits, labels = random_case((1, 2, 64, 64, 64), dtype=torch.float32)
    x = logits.detach().half()
    v_monai, g_monai = value_and_grad(M.DiceLoss(softmax=True, to_onehot_y=True), x, labels)
    v_ours, g_ours = value_and_grad(L.DiceLoss(softmax=True, to_onehot_y=True), x, labels)
    assert float(v_monai) == 1.0 and float(g_monai.float().abs().max()) == 0.0
    assert 0.3 < float(v_ours) < 0.7 and float(g_ours.float().abs().max()) > 0


@pytest.mark.parametrize("name,factory,kind", [c for c in CASES if c[2] in IGNORABLE],
                         ids=[c[0] for c in CASES if c[2] in IGNORABLE])
def test_ignored_voxels_change_nothing(name, factory, kind):
    logits, labels = random_case((2, 3, 5, 4, 3), ignore_index=255, ignore_fraction=0.3)
    ignored = labels == 255
    loss = factory(ignore_index=255)
    v1, g1 = value_and_grad(loss, logits, make_target(kind, labels, 3))
    # garbage logits at ignored voxels
    noisy = logits.detach() + 50.0 * torch.randn_like(logits) * ignored
    v2, g2 = value_and_grad(loss, noisy, make_target(kind, labels, 3))
    torch.testing.assert_close(v1, v2, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(g1, g2, rtol=1e-10, atol=1e-14)
    assert float(g1.masked_select(ignored.expand_as(g1)).abs().max()) == 0.0


@pytest.mark.parametrize("name,factory,kind", [c for c in CASES if c[2] in IGNORABLE],
                         ids=[c[0] for c in CASES if c[2] in IGNORABLE])
def test_ignored_voxels_are_in_no_denominator(name, factory, kind):
    """With ignore: equal to the same loss on the valid voxels only (B=1, voxels as one flat axis)."""
    logits, labels = random_case((1, 3, 5, 4, 3), ignore_index=255, ignore_fraction=0.3)
    valid = (labels != 255).flatten()
    x_valid = logits.detach().reshape(1, 3, -1)[:, :, valid]
    y_valid = labels.reshape(1, 1, -1)[:, :, valid]
    with_ignore = factory(ignore_index=255)(logits, make_target(kind, labels, 3))
    cropped = factory()(x_valid, make_target(kind, y_valid, 3))
    torch.testing.assert_close(with_ignore, cropped, rtol=1e-12, atol=1e-14)


# per-class region losses; class 0 must stay scored, or a permutation moving it changes the set of classes
PER_CLASS_NAMES = {"dice-softmax-labels", "dice-softmax-squared", "dice-sigmoid-onehot", "dice-softmax-soft", "jaccard",
                   "tversky", "tversky-sigmoid-batch", "focal-tversky"}
PER_CLASS = [c for c in CASES if c[0] in PER_CLASS_NAMES]


@pytest.mark.parametrize("name,factory,kind", PER_CLASS, ids=[c[0] for c in PER_CLASS])
def test_permuting_classes_permutes_per_class_outputs(name, factory, kind):
    logits, labels = random_case((2, 3, 5, 4, 3))
    perm = torch.tensor([2, 0, 1])
    inverse = torch.argsort(perm)
    loss = factory(reduction="none")
    base = loss(logits, make_target(kind, labels, 3))
    permuted_target = (make_target(kind, inverse[labels], 3) if kind == "labels"
                       else make_target(kind, labels, 3)[:, perm])
    out = loss(logits[:, perm], permuted_target)
    torch.testing.assert_close(out, base[:, perm], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "factory,shape",
    [
        (lambda: L.DiceLoss(softmax=True, to_onehot_y=True, reduction="none"), (2, 4)),
        (lambda: L.DiceLoss(softmax=True, to_onehot_y=True, reduction="none", include_background=False), (2, 3)),
        (lambda: L.DiceLoss(softmax=True, to_onehot_y=True, reduction="none", batch=True), (1, 4)),
        (lambda: L.TverskyLoss(softmax=True, to_onehot_y=True, reduction="none"), (2, 4)),
        (lambda: L.FocalTverskyLoss(softmax=True, to_onehot_y=True, reduction="none"), (2, 4)),
        (lambda: L.GeneralizedDiceLoss(softmax=True, to_onehot_y=True, reduction="none"), (2, 1)),
        (lambda: L.CrossEntropyLoss(reduction="none"), (2, 5, 4, 3)),
        (lambda: L.FocalLoss(to_onehot_y=True, reduction="none"), (2, 4, 5, 4, 3)),
        (lambda: L.ExpLogLoss(softmax=True, to_onehot_y=True, reduction="none"), (2,)),
        (lambda: L.ExpLogLoss(softmax=True, to_onehot_y=True, reduction="none", batch=True), (1,)),
        (lambda: L.AnatomyNetLoss(softmax=True, to_onehot_y=True, reduction="none"), (1, 4)),
        (lambda: L.AnatomyNetLoss(softmax=True, to_onehot_y=True, reduction="none", include_background=False), (1, 3)),
    ],
)
def test_reduction_none_shapes(factory, shape):
    logits, labels = random_case((2, 4, 5, 4, 3))
    assert tuple(factory()(logits, labels).shape) == shape


def test_fused_backward_is_reentrant():
    """The label-map softmax path recomputes its buffer: a retained graph gives the same gradient twice."""
    logits, labels = random_case((2, 3, 5, 4, 3))
    out = L.DiceLoss(softmax=True, to_onehot_y=True)(logits, labels)
    (g1,) = torch.autograd.grad(out, logits, retain_graph=True)
    (g2,) = torch.autograd.grad(out, logits)
    torch.testing.assert_close(g1, g2, rtol=0, atol=0)


@pytest.mark.parametrize("factory", [
    lambda: L.FocalTverskyLoss(softmax=True, to_onehot_y=True),
    lambda: L.ExpLogLoss(softmax=True, to_onehot_y=True),
    lambda: L.ExpLogLoss(softmax=True, to_onehot_y=True, smooth_nr=0.0, smooth_dr=1e-5),
    lambda: L.AnatomyNetLoss(softmax=True, to_onehot_y=True),
], ids=["focal-tversky", "explog", "explog-small-smoothing", "anatomynet"])
@pytest.mark.parametrize("scale", [60.0, 1000.0])
def test_gradient_finite_on_a_perfect_and_an_absent_class(factory, scale):
    """Class 1 predicted perfectly (saturated softmax), class 2 absent from the target and not predicted."""
    labels = torch.zeros(1, 1, 4, 4, 4, dtype=torch.long)
    labels[..., :2, :, :] = 1
    logits = (torch.nn.functional.one_hot(labels[:, 0], 3).movedim(-1, 1).double() * scale).requires_grad_()
    out = factory()(logits, labels)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("name,factory,kind", CASES, ids=IDS)
def test_state_dict_round_trip(name, factory, kind):
    a, b = factory(), factory()
    b.load_state_dict(a.state_dict())
    logits, labels = random_case((2, 3, 4, 4, 3))
    target = make_target(kind, labels, 3)
    torch.testing.assert_close(a(logits, target), b(logits, target))


@pytest.mark.parametrize("name", registry.names())
def test_bundle_config_instantiates_by_full_target(name):
    import inspect

    from monai.bundle import ConfigParser

    params = inspect.signature(registry.load(name).__init__).parameters
    # the options a loss cannot do without (e.g. GeneralizedWassersteinDiceLoss's dist_matrix), as the study sets them
    study = loss_study().SETUPS[name].kwargs
    required = {k: v for k, v in study.items() if k in params and params[k].default is inspect.Parameter.empty}
    config = {"_target_": registry.target(name), **required}
    if "reduction" in params:
        config["reduction"] = "sum"
    parser = ConfigParser({"loss": config})
    loss = parser.get_parsed_content("loss")
    assert type(loss).__name__ == name and isinstance(loss, torch.nn.modules.loss._Loss)
