"""SignedDistanceMapd and the distance losses measure in the same unit by default, and given maps are checked
(issue 18, items 5 and 7)."""
from __future__ import annotations

import math
import warnings

import pytest
import torch
from monai.data import MetaTensor

import medloss.losses as L
from medloss.errors import InputRangeError, InvalidOptionError, OptionTypeError
from medloss.transforms import SignedDistanceMapd, signed_distance_maps


def _anisotropic_case():
    """A 1 x 1 x 3 mm label (MetaTensor with that pixdim) and logits for it."""
    label = torch.zeros(1, 12, 12, 6)
    label[0, 3:9, 2:8, 2:4] = 1
    meta = MetaTensor(label, affine=torch.diag(torch.tensor([1.0, 1.0, 3.0, 1.0])))
    logits = torch.randn(1, 2, 12, 12, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return meta, label, logits


@pytest.mark.parametrize("cls", [L.HausdorffDTLoss, L.BoundaryLoss])
def test_transform_defaults_measure_in_the_losses_unit(cls):
    """Before: the transform read pixdim (mm) while the loss's own fields were in voxels (6.78 against 2.56 here)."""
    meta, label, logits = _anisotropic_case()
    stacked = SignedDistanceMapd("label", num_classes=2)({"label": meta})["label"].as_tensor()[None].double()
    loss = cls(softmax=True, to_onehot_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the maps computed by the loss warn once
        computed = loss(logits, label[None])
    torch.testing.assert_close(loss(logits, stacked), computed)


def test_hausdorff_keeps_monai_numbers_without_maps_and_with_the_default_transform():
    monai = pytest.importorskip("monai.losses")
    meta, label, logits = _anisotropic_case()
    stacked = SignedDistanceMapd("label", num_classes=2)({"label": meta})["label"].as_tensor()[None].double()
    expected = monai.HausdorffDTLoss(softmax=True, to_onehot_y=True)(logits, label[None].double())
    ours = L.HausdorffDTLoss(softmax=True, to_onehot_y=True)(logits, stacked)
    assert float(ours) == pytest.approx(float(expected), rel=1e-6)


def test_physical_units_when_both_sides_are_given_the_spacing():
    meta, label, logits = _anisotropic_case()
    mm = SignedDistanceMapd("label", num_classes=2, spacing="pixdim")({"label": meta})["label"].as_tensor()
    torch.testing.assert_close(mm[1:], signed_distance_maps(label, 2, spacing=(1.0, 1.0, 3.0)))
    loss = L.HausdorffDTLoss(softmax=True, to_onehot_y=True, spacing=(1.0, 1.0, 3.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        computed = loss(logits, label[None])
    torch.testing.assert_close(loss(logits, mm[None].double()), computed)
    assert float(computed) != pytest.approx(float(L.HausdorffDTLoss(softmax=True, to_onehot_y=True)(
        logits, SignedDistanceMapd("label", num_classes=2)({"label": meta})["label"].as_tensor()[None].double())))


@pytest.mark.parametrize("call,error,text", [
    (lambda: SignedDistanceMapd("label", 2, spacing="mm"), InvalidOptionError, r"'pixdim'"),
    (lambda: SignedDistanceMapd("label", 2, spacing=(1.0, math.nan, 1.0)), InvalidOptionError, r"`spacing`"),
    (lambda: signed_distance_maps(torch.zeros(1, 4, 4, 4), 2, spacing="pixdim"), OptionTypeError, r"MetaTensor"),
])
def test_bad_spacing(call, error, text):
    with pytest.raises(error, match=text):
        call()


@pytest.mark.parametrize("cls", [L.HausdorffDTLoss, L.BoundaryLoss])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_nan_or_inf_maps_are_refused_when_checking(cls, bad):
    _, label, logits = _anisotropic_case()
    maps = signed_distance_maps(label, 2)[None].double()
    maps[0, 1, 0, 0, 0] = bad
    with pytest.raises(InputRangeError, match=r"`distance`.*NaN or infinite"):
        cls(softmax=True, to_onehot_y=True)(logits, label[None], distance=maps)
    with pytest.raises(InputRangeError, match=r"`distance`"):
        cls(softmax=True, to_onehot_y=True)(logits, torch.cat([label[None].double(), maps], 1))
