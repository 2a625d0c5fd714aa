"""SoftclDiceLoss, SoftDiceclDiceLoss, SkeletonRecallLoss and BlobLoss: paper references, the authors' recorded
outputs, MONAI parity, gradcheck, half precision, ignore invariance, errors, shapes, precomputed maps."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import medloss.losses as L
from medloss.errors import InvalidOptionError, LabelValueError, OptionTypeError, ShapeMismatchError
from medloss.functional import maps
from medloss.functional.topology import soft_cldice_loss
from tests._helpers import random_case, value_and_grad
from tests.reference import topology as ref

AUTHORS = Path(__file__).resolve().parents[1] / "reference" / "authors" / "authors_outputs.npz"
IGNORE = 255
SHAPE = (2, 3, 6, 5, 4)


def _np(x):
    return x.detach().numpy()


def _softmax(x):
    return torch.softmax(x.detach(), 1).numpy()


def _onehot(labels, c):
    lab = labels[:, 0].clamp(0, c - 1)
    return torch.nn.functional.one_hot(lab, c).movedim(-1, 1).double().numpy()


def _valid(labels):
    return (labels[:, 0] != IGNORE).double().numpy()


def _blobby(shape=(2, 1, 8, 7, 6), classes=3, seed=0):
    """Label maps with a few small blobs per class (so components exist), and logits."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.nn.functional.avg_pool3d(torch.randn(shape, generator=gen, dtype=torch.float64), 3, 1, 1)
    labels = torch.zeros(shape, dtype=torch.long)
    labels[noise > 0.25] = 1
    if classes > 2:
        labels[noise < -0.3] = 2
    logits = torch.randn(shape[0], classes if classes > 2 else 1, *shape[2:], generator=gen, dtype=torch.float64)
    return logits.requires_grad_(), labels


# ---- paper references (float64, 1e-6) ------------------------------------------------------------------------

@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("alpha", [None, 0.3])
def test_cldice_matches_the_loop_reference(include_background, alpha):
    logits, labels = random_case(SHAPE, ignore_index=IGNORE, seed=3)
    kw = dict(softmax=True, to_onehot_y=True, include_background=include_background, ignore_index=IGNORE,
              reduction="none")
    loss = L.SoftclDiceLoss(**kw) if alpha is None else L.SoftDiceclDiceLoss(alpha=alpha, **kw)
    got = loss(logits, labels)
    p, g, v = _softmax(logits), _onehot(labels, 3), _valid(labels)
    if not include_background:
        p, g = p[:, 1:], g[:, 1:]
    want = ref.cldice(p, g, v, dice_alpha=alpha)
    np.testing.assert_allclose(_np(got), want, rtol=1e-6, atol=1e-9)


def test_cldice_with_a_given_reference_skeleton_matches_the_reference():
    logits, labels = random_case((2, 2, 6, 6, 5), seed=4)
    skel = torch.from_numpy(np.stack([maps.reference_skeleton(labels[b, 0].numpy(), tube=False)[None]
                                      for b in range(2)])).long()
    got = L.SoftclDiceLoss(softmax=True, to_onehot_y=True, reduction="none")(logits, labels, skeleton=skel)
    skel_onehot = _onehot(skel, 2)
    skel_onehot[:, 0] = 0
    want = ref.cldice(_softmax(logits), _onehot(labels, 2), skeleton=skel_onehot)
    np.testing.assert_allclose(_np(got), want, rtol=1e-6, atol=1e-9)
    packed = torch.cat([labels, skel], 1)  # the same map as the extra last channel of the target
    torch.testing.assert_close(L.SoftclDiceLoss(softmax=True, to_onehot_y=True, reduction="none")(logits, packed), got)


def test_skeleton_recall_term_matches_the_loop_reference():
    logits, labels = random_case(SHAPE, ignore_index=IGNORE, seed=5)
    skel = torch.randint(0, 3, labels.shape, generator=torch.Generator().manual_seed(1))
    got = L.SkeletonRecallLoss(softmax=True, to_onehot_y=True, lambda_dice=0, lambda_ce=0, ignore_index=IGNORE,
                               reduction="none")(logits, labels, skeleton=skel)
    want = ref.skeleton_recall(_softmax(logits)[:, 1:], _onehot(skel, 3)[:, 1:], _valid(labels))
    np.testing.assert_allclose(_np(got), want, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("include_background", [True, False])
def test_blob_loss_matches_the_loop_reference_softmax(include_background):
    logits, labels = _blobby()
    labels = labels.masked_fill(torch.rand(labels.shape, generator=torch.Generator().manual_seed(2)) < 0.1, IGNORE)
    comps = maps.batch_map(labels, maps.component_map, ignore_index=IGNORE)
    loss = L.BlobLoss(softmax=True, to_onehot_y=True, include_background=include_background, ignore_index=IGNORE)
    got = loss(logits, labels, components=comps)
    p = _softmax(logits) if include_background else _softmax(logits)[:, 1:]
    classes = [0, 1, 2] if include_background else [1, 2]
    want = ref.blob(p, labels[:, 0].numpy(), comps[:, 0].numpy(), _valid(labels), classes=classes)
    assert comps.max() >= 3
    np.testing.assert_allclose(float(got), want, rtol=1e-6)


def test_blob_loss_matches_the_loop_reference_sigmoid():
    logits, labels = _blobby(classes=2, seed=3)
    comps = maps.batch_map(labels, maps.component_map)
    got = L.BlobLoss(sigmoid=True, main_weight=1.5, blob_weight=0.5)(logits, labels.double(), components=comps)
    p = torch.sigmoid(logits.detach()).numpy()
    want = ref.blob(p, labels[:, 0].numpy(), comps[:, 0].numpy(), classes=[1], main_weight=1.5, blob_weight=0.5)
    np.testing.assert_allclose(float(got), want, rtol=1e-6)


# ---- the authors' code (recorded by tests/reference/authors/record_authors.py) -------------------------------

@pytest.fixture(scope="module")
def authors():
    return np.load(AUTHORS)


@pytest.mark.parametrize("name,alpha", [("cldice", None), ("dice_cldice", 0.5)])
def test_cldice_equals_the_authors_code(authors, name, alpha):
    # their SoftSkeletonize runs 10 iterations whatever iter_ says, pools batch and channels, no harmonic smooth
    p = torch.from_numpy(authors["cldice_p"]).requires_grad_()
    value = soft_cldice_loss(p, torch.from_numpy(authors["cldice_g"]), iter_=10, alpha=alpha, smooth=0.0, batch=True)
    (grad,) = torch.autograd.grad(value, p)
    np.testing.assert_allclose(float(value), float(authors[f"{name}_value"]), rtol=1e-10)
    np.testing.assert_allclose(grad.numpy(), authors[f"{name}_grad"], rtol=1e-8, atol=1e-14)


def test_reference_skeleton_equals_the_authors_transform(authors):
    labels = authors["srec_labels"]
    skel = np.stack([maps.reference_skeleton(labels[b, 0])[None] for b in range(len(labels))])
    assert (skel > 0).sum() > 50
    np.testing.assert_array_equal(skel, authors["srec_skeleton"])


@pytest.mark.usefixtures("table_engine")
def test_skeleton_recall_equals_the_authors_code(authors):
    logits = torch.from_numpy(authors["srec_logits"]).requires_grad_()
    loss = L.SkeletonRecallLoss(softmax=True, to_onehot_y=True)
    value = loss(logits, torch.from_numpy(authors["srec_labels"]), skeleton=torch.from_numpy(authors["srec_skeleton"]))
    (grad,) = torch.autograd.grad(value, logits)
    # theirs returns -Dice and -recall: ours is 1 - each, lambda_dice + weight_srec = 2 above, same gradient
    np.testing.assert_allclose(float(value) - 2.0, float(authors["srec_value"]), rtol=1e-10)
    np.testing.assert_allclose(grad.numpy(), authors["srec_grad"], rtol=1e-8, atol=1e-14)


def test_blob_loss_equals_the_authors_code(authors):
    logits = torch.from_numpy(authors["blob_logits"]).requires_grad_()
    value = L.BlobLoss(sigmoid=True)(logits, torch.from_numpy(authors["blob_binary"]).double(),
                                     components=torch.from_numpy(authors["blob_components"]))
    (grad,) = torch.autograd.grad(value, logits)
    np.testing.assert_allclose(float(value), float(authors["blob_value"]), rtol=1e-10)
    np.testing.assert_allclose(grad.numpy(), authors["blob_grad"], rtol=1e-8, atol=1e-14)


# ---- MONAI --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["SoftclDiceLoss", "SoftDiceclDiceLoss"])
@pytest.mark.parametrize("spatial", [(7, 6, 5), (9, 8)])
def test_monai_parity_on_one_channel(name, spatial):
    monai_losses = pytest.importorskip("monai.losses")
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, *spatial, generator=gen, dtype=torch.float64)
    target = (torch.rand(2, 1, *spatial, generator=gen) > 0.6).double()
    ours = value_and_grad(getattr(L, name)(sigmoid=True), logits, target)
    theirs = value_and_grad(getattr(monai_losses, name)(sigmoid=True), logits, target)
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-5, atol=1e-12)
    torch.testing.assert_close(ours[1], theirs[1], rtol=1e-5, atol=1e-12)


def test_monai_pools_channels_where_medloss_scores_each_class():
    """docs/monai-differences.md: MONAI's clDice is one ratio over all channels of a sample."""
    monai_losses = pytest.importorskip("monai.losses")
    logits, labels = random_case((2, 3, 6, 6, 5), seed=1)
    target = torch.from_numpy(_onehot(labels, 3))
    ours = L.SoftclDiceLoss(softmax=True, reduction="none")(logits, target)
    theirs = monai_losses.SoftclDiceLoss(softmax=True, reduction="none")(logits, target)
    assert ours.shape == (2, 3) and theirs.shape == (2,)
    assert not torch.allclose(ours.mean(1), theirs)


# ---- contracts ----------------------------------------------------------------------------------------------

FACTORIES = {
    "cldice": lambda **k: L.SoftclDiceLoss(softmax=True, to_onehot_y=True, **k),
    "dice-cldice": lambda **k: L.SoftDiceclDiceLoss(softmax=True, to_onehot_y=True, include_background=False, **k),
    "cldice-batch": lambda **k: L.SoftclDiceLoss(softmax=True, to_onehot_y=True, batch=True, **k),
    "skeleton-recall": lambda **k: L.SkeletonRecallLoss(softmax=True, to_onehot_y=True, **k),
    "blob": lambda **k: L.BlobLoss(softmax=True, to_onehot_y=True, **k),
}


def _maps_for(name, labels, ignore_index=None):
    """Precomputed maps, as the transforms give them, so the contracts do not hit the CPU fallback."""
    if name == "skeleton-recall":
        return {"skeleton": maps.batch_map(labels, maps.reference_skeleton, ignore_index=ignore_index)}
    if name == "blob":
        return {"components": maps.batch_map(labels, maps.component_map, ignore_index=ignore_index)}
    return {}


@pytest.mark.parametrize("name", list(FACTORIES))
def test_gradcheck_float64(name):
    logits, labels = _blobby((1, 1, 4, 4, 3), seed=1)
    logits = logits.detach()[:, :3].requires_grad_()
    extra = _maps_for(name, labels)
    loss = FACTORIES[name]()
    # fast mode compares a random projection of the Jacobian (which a wrong derivative anywhere fails) instead of
    # all of it: the full one takes two forwards per input, tens of seconds for each clDice loss
    assert torch.autograd.gradcheck(lambda x: loss(x, labels, **extra), (logits,), eps=1e-6, atol=1e-6,
                                    fast_mode=True)


@pytest.mark.parametrize("name", list(FACTORIES))
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_finite_and_close_to_fp32(name, dtype):
    logits, labels = _blobby((2, 1, 10, 9, 8), seed=2)
    extra = _maps_for(name, labels)
    loss = FACTORIES[name]()
    x32 = logits.detach().float()
    want = loss(x32, labels, **extra)
    xh = x32.to(dtype).requires_grad_()
    got = loss(xh, labels, **extra)
    got.backward()
    assert got.dtype == dtype and torch.isfinite(got) and torch.isfinite(xh.grad).all()
    # the inputs are rounded to fp16/bf16 first; everything after runs in fp32
    assert abs(float(got) - float(want)) < 1e-2 * max(1.0, abs(float(want)))


@pytest.mark.usefixtures("table_engine")
@pytest.mark.parametrize("name", list(FACTORIES))
def test_ignored_voxels_change_nothing(name):
    logits, labels = _blobby((2, 1, 8, 7, 6), seed=4)
    ignored = torch.rand(labels.shape, generator=torch.Generator().manual_seed(3)) < 0.2
    labels = labels.masked_fill(ignored, IGNORE)
    extra = _maps_for(name, labels, IGNORE)
    loss = FACTORIES[name](ignore_index=IGNORE)
    value, grad = value_and_grad(lambda x, y: loss(x, y, **extra), logits, labels)
    changed = logits.detach() + 5.0 * ignored.double() * torch.randn(logits.shape, dtype=torch.float64)
    value2, grad2 = value_and_grad(lambda x, y: loss(x, y, **extra), changed, labels)
    torch.testing.assert_close(value, value2, rtol=1e-12, atol=1e-12)
    if name != "skeleton-recall":  # its CE/Dice terms are other losses' (their own invariance tests)
        assert float(grad.abs().masked_select(ignored.expand_as(grad)).max()) == 0.0


@pytest.mark.parametrize("name,options,shape", [
    ("cldice", {}, (2, 3)),
    ("cldice", {"include_background": False}, (2, 2)),
    ("cldice-batch", {}, (1, 3)),
    ("skeleton-recall", {"lambda_dice": 0, "lambda_ce": 0}, (2, 2)),
    ("blob", {}, (2, 3)),
])
def test_reduction_none_shapes(name, options, shape):
    logits, labels = _blobby((2, 1, 6, 6, 5))
    loss = FACTORIES[name](reduction="none", **options)
    assert loss(logits, labels, **_maps_for(name, labels)).shape == shape


@pytest.mark.parametrize("make,kind,text", [
    (lambda: L.SoftclDiceLoss(iter_=-1), InvalidOptionError, "iter_"),
    (lambda: L.SoftclDiceLoss(iter_=2.5), OptionTypeError, "iter_"),
    (lambda: L.SoftclDiceLoss(smooth=0.0), InvalidOptionError, "smooth"),
    (lambda: L.SoftclDiceLoss(sigmoid=True, softmax=True), InvalidOptionError, "mutually exclusive"),
    (lambda: L.SoftDiceclDiceLoss(alpha=1.5), InvalidOptionError, "alpha"),
    (lambda: L.SoftclDiceLoss(reduction="meen"), InvalidOptionError, "mean"),
    (lambda: L.SkeletonRecallLoss(softmax=True, reduction="none"), InvalidOptionError, "lambda_dice=0"),
    (lambda: L.BlobLoss(connectivity=5), InvalidOptionError, "connectivity"),
    (lambda: L.BlobLoss(main_weight=-1), InvalidOptionError, "main_weight"),
    (lambda: L.BlobLoss(ignore_index=1.5), OptionTypeError, "ignore_index"),
])
def test_bad_options_are_typed_errors(make, kind, text):
    with pytest.raises(kind, match=text):
        make()


def test_bad_inputs_are_typed_errors():
    logits, labels = random_case((2, 3, 6, 5, 4))
    loss = L.SoftclDiceLoss(softmax=True, to_onehot_y=True)
    with pytest.raises(ShapeMismatchError, match="2-D or 3-D"):
        L.SoftclDiceLoss(softmax=True)(torch.randn(2, 3, 4, 4, 4, 4), torch.zeros(2, 3, 4, 4, 4, 4))
    with pytest.raises(ShapeMismatchError, match="skeleton"):
        loss(logits, labels, skeleton=torch.zeros(2, 1, 3, 3, 3))
    with pytest.raises(InvalidOptionError, match="once"):
        loss(logits, torch.cat([labels, labels], 1), skeleton=labels)
    with pytest.raises(ShapeMismatchError):
        loss(logits, torch.zeros(2, 3, 3, 5, 4, dtype=torch.long))
    with pytest.raises(OptionTypeError):
        L.BlobLoss(softmax=True, to_onehot_y=True)(logits, labels.numpy())
    with pytest.raises(ValueError, match="outside"):
        L.SoftclDiceLoss(softmax=True, to_onehot_y=True)(logits, labels + 3)
    blob_logits, blob_labels = _blobby()
    one_blob = (blob_labels > 0).long()  # a binary component map over two classes
    with pytest.raises(LabelValueError, match="spanning two classes"):
        L.BlobLoss(softmax=True, to_onehot_y=True, include_background=False)(blob_logits, blob_labels,
                                                                             components=one_blob)


@pytest.mark.usefixtures("table_engine")
def test_missing_maps_are_computed_with_one_warning():
    logits, labels = _blobby((2, 1, 8, 7, 6), seed=5)
    for loss, key, fn in ((L.SkeletonRecallLoss(softmax=True, to_onehot_y=True), "skeleton", maps.reference_skeleton),
                          (L.BlobLoss(softmax=True, to_onehot_y=True), "components", maps.component_map)):
        maps._WARNED.discard(f"{type(loss).__name__}.{key}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = loss(logits, labels)
            loss(logits, labels)
        costly = [w for w in caught if "every step" in str(w.message)]
        assert len(costly) == 1 and "medloss.transforms" in str(costly[0].message)
        torch.testing.assert_close(first, loss(logits, labels, **{key: maps.batch_map(labels, fn)}))


@pytest.mark.parametrize("snippet", [
    {"_target_": "medloss.losses.SoftclDiceLoss", "iter_": 5, "sigmoid": True, "batch": True},
    {"_target_": "medloss.losses.SoftDiceclDiceLoss", "softmax": True, "to_onehot_y": True, "alpha": 0.3,
     "include_background": False, "ignore_index": 255},
    {"_target_": "medloss.losses.SkeletonRecallLoss", "softmax": True, "to_onehot_y": True, "weight_srec": 2.0},
    {"_target_": "medloss.losses.BlobLoss", "softmax": True, "to_onehot_y": True, "main_weight": 2.0,
     "blob_weight": 1.0, "include_background": False},
])
def test_bundle_config_snippets_instantiate(snippet):
    from monai.bundle import ConfigParser

    loss = ConfigParser({"loss": snippet}).get_parsed_content("loss")
    assert type(loss).__name__ == snippet["_target_"].rsplit(".", 1)[1]
    for key, value in snippet.items():
        if key != "_target_":
            assert getattr(loss, key) == value


def test_blob_term_counts_each_lesion_once_whatever_its_size():
    labels = torch.zeros(1, 1, 12, 12, 12, dtype=torch.long)
    labels[0, 0, 1:9, 1:9, 1:9] = 1  # 512 voxels, found
    labels[0, 0, 10:12, 10:12, 10:12] = 1  # 8 voxels, missed
    probs = (labels > 0).double()
    probs[0, 0, 10:12, 10:12, 10:12] = 0.0
    comps = maps.batch_map(labels, maps.component_map)
    blob_only = L.BlobLoss(main_weight=0.0, blob_weight=1.0)(probs, labels.double(), components=comps)
    main_only = L.BlobLoss(main_weight=1.0, blob_weight=0.0)(probs, labels.double(), components=comps)
    assert abs(float(blob_only) - 0.5) < 1e-6  # one of two lesions missed: half the blob term
    assert float(main_only) < 0.01  # the global Dice barely sees it
