"""BoundaryLoss, HausdorffDTLoss and SignedDistanceMapd: maps, references, MONAI, the authors' numbers, the API."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

import medloss.losses as L
from medloss.errors import InvalidOptionError, LabelValueError, ShapeMismatchError
from medloss.functional import distance as D
from medloss.transforms import SignedDistanceMapd, signed_distance_maps
from tests._helpers import value_and_grad
from tests.reference import distance as ref
from tests.reference._common import one_hot_np

RECORDED = Path(__file__).resolve().parents[1] / "reference" / "data" / "authors_recorded.json"


@pytest.fixture(autouse=True)
def _fresh_warnings():
    D._WARNED.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _blobs(shape=(2, 3, 6, 5, 4), seed=0):
    """Logits and a label map with compact regions (so the maps have real interiors)."""
    gen = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(shape, generator=gen, dtype=torch.float64)
    field = torch.from_numpy(ndi.gaussian_filter(torch.rand(shape[0], *shape[2:], generator=gen).numpy(), 1.0))
    labels = torch.zeros(shape[0], 1, *shape[2:], dtype=torch.int64)
    for c in range(1, shape[1]):
        labels[:, 0][field > torch.quantile(field, 1 - 0.3 / c)] = c
    return logits, labels


@pytest.mark.parametrize("spacing", [None, (0.7, 1.3, 2.0)])
def test_signed_map_equals_brute_force(spacing):
    _, labels = _blobs(seed=1)
    maps = signed_distance_maps(labels[0], 3, spacing)
    for c in range(3):
        expected = ref.brute_signed_distance((labels[0, 0] == c).numpy(), spacing)
        np.testing.assert_allclose(maps[c].numpy(), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kw", [
    dict(softmax=True, to_onehot_y=True),
    dict(softmax=True, to_onehot_y=True, include_background=True, batch=True, alpha=1.5),
    dict(sigmoid=True),
    dict(softmax=True, reduction="sum"),
])
def test_hausdorff_equals_monai_value_and_gradient(kw):
    from monai.losses import HausdorffDTLoss as MonaiHD

    logits, labels = _blobs(seed=2)
    target = labels if kw.get("to_onehot_y") else torch.from_numpy(one_hot_np(labels.numpy(), 3))
    a, ga = value_and_grad(L.HausdorffDTLoss(**kw), logits, target)
    b, gb = value_and_grad(MonaiHD(**kw), logits, target)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)  # MONAI and edt both hold distances in float32
    torch.testing.assert_close(ga, gb, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("batch,spacing", [(False, None), (True, (0.7, 1.3, 2.0))])
def test_hausdorff_matches_the_reference_with_spacing_and_ignore(batch, spacing):
    logits, labels = _blobs(seed=3)
    labels[0, 0, 0] = 255
    valid = (labels[:, 0] != 255).double()
    probs = torch.softmax(logits, 1)
    onehot = one_hot_np(labels.numpy(), 3, ignore_value=255)
    loss = L.HausdorffDTLoss(softmax=True, to_onehot_y=True, include_background=True, ignore_index=255,
                             batch=batch, spacing=spacing, reduction="none")(logits, labels)
    expected = ref.hausdorff_dt(probs.numpy(), onehot, valid=valid, spacing=spacing, batch=batch)
    torch.testing.assert_close(loss, torch.from_numpy(expected).reshape(loss.shape), rtol=1e-6, atol=1e-9)
    assert loss.shape == ((1, 3) if batch else (2, 3))


@pytest.mark.parametrize("spacing", [None, (0.7, 1.3, 2.0)])
def test_boundary_matches_the_reference(spacing):
    logits, labels = _blobs(seed=4)
    labels[1, 0, 1] = 255
    valid = (labels[:, 0] != 255).double()
    probs = torch.softmax(logits, 1)
    onehot = one_hot_np(labels.numpy(), 3, ignore_value=255)
    loss = L.BoundaryLoss(softmax=True, to_onehot_y=True, ignore_index=255, spacing=spacing,
                          reduction="none")(logits, labels)
    torch.testing.assert_close(loss,
                               torch.from_numpy(ref.boundary(probs.numpy(), onehot, valid=valid, spacing=spacing)),
                               rtol=1e-6, atol=1e-9)


def _authors():
    record = json.loads(RECORDED.read_text())
    shapes, inputs = record["shapes"], record["inputs"]
    probs = torch.tensor(inputs["probs2d"], dtype=torch.float64).reshape(shapes["probs2d"])
    labels = torch.tensor(inputs["labels2d"], dtype=torch.int64).reshape(shapes["labels2d"])[:, None]
    return record["boundary"], probs, labels


@pytest.mark.parametrize("name,spacing", [("unit", None), ("aniso", (0.8, 1.5))])
def test_boundary_equals_the_authors_surface_loss_on_their_maps(name, spacing):
    """LIVIAETS/boundary-loss: SurfaceLoss(idc=[1, 2]) on one_hot2dist maps, recorded (float32 in their code)."""
    record, probs, labels = _authors()
    entry = record[f"surface_{name}"]
    dist = torch.tensor(entry["dist"], dtype=torch.float64).reshape(probs.shape)
    value, grad = entry["value_grad"]
    loss = L.BoundaryLoss(to_onehot_y=True, include_background=False)
    out, g = value_and_grad(lambda p, t: loss(p, t, distance=dist), probs, labels)
    assert float(out) == pytest.approx(value, rel=1e-6)
    torch.testing.assert_close(g.flatten(), torch.tensor(grad, dtype=torch.float64), rtol=1e-6, atol=1e-9)
    # their map shifts the inside distances by one unit: phi_authors = phi + g (0 for an absent class)
    ours = torch.stack([signed_distance_maps(labels[b], 3, spacing) for b in range(2)]).double()
    onehot = torch.from_numpy(one_hot_np(labels.numpy(), 3))
    present = onehot.flatten(2).amax(2)[..., None, None]
    torch.testing.assert_close(ours + onehot * present, dist, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cls", [L.BoundaryLoss, L.HausdorffDTLoss])
def test_maps_stacked_by_the_transform_or_given_by_keyword_equal_maps_computed_by_the_loss(cls):
    logits, labels = _blobs(seed=5)
    maps = torch.stack([signed_distance_maps(labels[b], 3) for b in range(2)])
    stacked = torch.stack([SignedDistanceMapd("label", num_classes=3)({"label": labels[b]})["label"] for b in range(2)])
    assert stacked.shape == (2, 4, 6, 5, 4)
    loss = cls(softmax=True, to_onehot_y=True)
    computed, g0 = value_and_grad(loss, logits, labels)
    from_stack, g1 = value_and_grad(loss, logits, stacked)
    from_kw, g2 = value_and_grad(lambda x, t: loss(x, t, distance=maps), logits, labels)
    onehot = torch.from_numpy(one_hot_np(labels.numpy(), 3))  # one-hot target + C map channels
    from_onehot, g3 = value_and_grad(cls(softmax=True), logits, torch.cat([onehot, maps.double()], 1))
    for v, g in ((from_stack, g1), (from_kw, g2), (from_onehot, g3)):
        torch.testing.assert_close(v, computed)
        torch.testing.assert_close(g, g0)


def test_missing_maps_warn_once_and_given_maps_do_not_warn():
    logits, labels = _blobs(seed=6)
    maps = torch.stack([signed_distance_maps(labels[b], 3) for b in range(2)])
    loss = L.BoundaryLoss(softmax=True, to_onehot_y=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss(logits, labels, distance=maps)
        loss(logits, labels)
        loss(logits, labels)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "SignedDistanceMapd" in messages[0]


def test_empty_and_full_classes_have_zero_maps_and_finite_losses():
    labels = torch.zeros(1, 1, 4, 4, 3, dtype=torch.int64)  # class 1 absent, class 0 everywhere
    assert float(signed_distance_maps(labels[0], 2).abs().max()) == 0.0
    logits = torch.randn(1, 2, 4, 4, 3, dtype=torch.float64, requires_grad=True)
    for cls in (L.BoundaryLoss, L.HausdorffDTLoss):
        out = cls(softmax=True, to_onehot_y=True)(logits, labels)
        out.backward()
        assert torch.isfinite(out) and torch.isfinite(logits.grad).all()


def test_transform_reads_pixdim_keeps_metadata_and_stores_under_a_key():
    from monai.data import MetaTensor

    label = MetaTensor(torch.zeros(1, 8, 7, 6), affine=torch.diag(torch.tensor([2.0, 1.0, 1.5, 1.0])))
    label[0, 2:5, 2:6, 1:4] = 1
    out = SignedDistanceMapd("label", num_classes=2, spacing="pixdim")({"label": label})["label"]
    assert isinstance(out, MetaTensor) and out.shape == (3, 8, 7, 6)
    torch.testing.assert_close(out.affine, label.affine)
    torch.testing.assert_close(out[2].numpy(),
                               ref.brute_signed_distance(label[0].numpy() > 0, (2.0, 1.0, 1.5)).astype(np.float32))
    separate = SignedDistanceMapd("label", num_classes=2, output_key="{key}_dist", spacing=1.0)({"label": label})
    assert separate["label"] is label and separate["label_dist"].shape == (2, 8, 7, 6)
    one = signed_distance_maps(label, 1, spacing="pixdim")  # one sigmoid channel: the foreground's map
    torch.testing.assert_close(one[0], out[2])


def test_transform_in_a_cached_compose():
    from monai.data import CacheDataset
    from monai.transforms import Compose, EnsureChannelFirstd

    data = [{"label": np.pad(np.ones((3, 3, 3)), 2)} for _ in range(2)]
    pipeline = Compose([EnsureChannelFirstd("label", channel_dim="no_channel"), SignedDistanceMapd("label", 2)])
    ds = CacheDataset(data, pipeline, progress=False)
    assert ds[0]["label"].shape == (3, 7, 7, 7) and float(ds[1]["label"][2].min()) == -2.0


@pytest.mark.parametrize("call,error,text", [
    (lambda: SignedDistanceMapd("label", num_classes=0), InvalidOptionError, r"`num_classes`"),
    (lambda: signed_distance_maps(torch.full((1, 3, 3), 3.0), 2), LabelValueError, r"outside 0..1"),
    (lambda: signed_distance_maps(torch.zeros(4, 3, 3), 2), ShapeMismatchError, r"4 channels"),
    (lambda: signed_distance_maps(torch.zeros(1, 3, 3), 2, spacing=(1.0, -1.0)), InvalidOptionError, r"`spacing`"),
    (lambda: L.HausdorffDTLoss(alpha=0), InvalidOptionError, r"`alpha`"),
    (lambda: L.BoundaryLoss(spacing="x"), TypeError, r"`spacing`"),
    (lambda: L.BoundaryLoss(softmax=True)(torch.randn(1, 2, 4, 4), torch.zeros(1, 2, 4, 4),
                                          torch.zeros(1, 3, 4, 4)), ShapeMismatchError, r"`distance`"),
    (lambda: L.HausdorffDTLoss(softmax=True, to_onehot_y=True, spacing=(1.0, 1.0))(torch.randn(1, 2, 4, 4, 4),
                                                                                   torch.zeros(1, 1, 4, 4, 4)),
     InvalidOptionError, r"`spacing`"),
])
def test_bad_input(call, error, text):
    with pytest.raises(error, match=text):
        call()
