"""The contracts of test_properties.py for the top-k, unified focal and distance losses (TopK, DiceTopK, Unified
Focal, Boundary, Hausdorff DT): gradcheck, half precision, ignore invariance, reduction="none" shapes, and a bundle
config that builds them with the distance-map transform."""
from __future__ import annotations

import warnings

import pytest
import torch

import medloss.losses as L
from tests._helpers import random_case, value_and_grad

SOFTMAX = dict(softmax=True, to_onehot_y=True)
# (id, factory(**kw), "none" shape for B=2, C=3 or None when "none" is undefined)
CASES = [
    ("topk", lambda **k: L.TopKLoss(**k), (1,)),
    ("topk-per-sample", lambda **k: L.TopKLoss(batch=False, k=20.0, **k), (2,)),
    ("dicetopk", lambda **k: L.DiceTopKLoss(**SOFTMAX, include_background=False, **k), None),
    ("asym-unified-focal", lambda **k: L.AsymmetricUnifiedFocalLoss(**SOFTMAX, **k), (2,)),
    ("unified-focal", lambda **k: L.UnifiedFocalLoss(**SOFTMAX, **k), (2,)),
    ("boundary", lambda **k: L.BoundaryLoss(**SOFTMAX, **k), (2, 3)),
    ("hausdorff-dt", lambda **k: L.HausdorffDTLoss(**SOFTMAX, **k), (2, 2)),
    ("hausdorff-dt-batch", lambda **k: L.HausdorffDTLoss(**SOFTMAX, batch=True, include_background=True, **k), (1, 3)),
]
IDS = [c[0] for c in CASES]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the one-time "computing distance maps" warning
        yield


@pytest.mark.parametrize("name,factory,shape", CASES, ids=IDS)
def test_gradcheck_float64(name, factory, shape):
    logits, labels = random_case((1, 3, 4, 3, 3), scale=1.0, ignore_index=255, seed=2)
    loss = factory(ignore_index=255)
    assert torch.autograd.gradcheck(lambda x: loss(x, labels), (logits,), eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("name,factory,shape", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_outside_autocast(name, factory, shape, dtype):
    """(1, 3, 48, 48, 48) fp16/bf16 input: finite, within 1e-2 of fp32, non-zero gradient."""
    logits32, labels = random_case((1, 3, 48, 48, 48), dtype=torch.float32)
    loss = factory()
    ref = loss(logits32.detach(), labels)
    x = logits32.detach().to(dtype).requires_grad_()
    out = loss(x, labels)
    out.backward()
    assert out.dtype == dtype
    assert torch.isfinite(out) and torch.isfinite(x.grad).all()
    torch.testing.assert_close(out.float(), ref, rtol=1e-2, atol=0)
    assert float(x.grad.float().abs().max()) > 0


@pytest.mark.usefixtures("table_engine")
@pytest.mark.parametrize("name,factory,shape", CASES, ids=IDS)
def test_ignored_voxels_change_nothing(name, factory, shape):
    logits, labels = random_case((2, 3, 6, 5, 4), ignore_index=255, seed=4)
    ignored = (labels == 255).expand_as(logits)
    other = logits.detach().clone()
    other[ignored] = torch.randn(int(ignored.sum()), dtype=torch.float64) * 5
    loss = factory(ignore_index=255)
    a, ga = value_and_grad(loss, logits, labels)
    b, gb = value_and_grad(loss, other, labels)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ga, gb, rtol=1e-12, atol=1e-12)
    assert float(ga[ignored].abs().max()) == 0.0


@pytest.mark.parametrize("name,factory,shape", CASES, ids=IDS)
def test_reduction_none_shape_and_mean(name, factory, shape):
    logits, labels = random_case((2, 3, 6, 5, 4))
    if shape is None:
        with pytest.raises(ValueError, match="reduction='none'"):
            factory(reduction="none")
        return
    table = factory(reduction="none")(logits, labels)
    assert table.shape == shape
    torch.testing.assert_close(factory()(logits, labels), table.mean())
    torch.testing.assert_close(factory(reduction="sum")(logits, labels), table.sum())


BUNDLE_SNIPPET = {
    "num_classes": 2,
    "train_transforms": {"_target_": "medloss.transforms.SignedDistanceMapd", "keys": "label",
                         "num_classes": "@num_classes"},
    "losses": {
        "topk": {"_target_": "medloss.losses.TopKLoss", "k": 10.0},
        "dicetopk": {"_target_": "medloss.losses.DiceTopKLoss", "softmax": True, "to_onehot_y": True,
                     "include_background": False, "batch": True},
        "aufl": {"_target_": "medloss.losses.AsymmetricUnifiedFocalLoss", "softmax": True, "to_onehot_y": True},
        "ufl": {"_target_": "medloss.losses.UnifiedFocalLoss", "softmax": True, "to_onehot_y": True},
        "boundary": {"_target_": "medloss.losses.BoundaryLoss", "softmax": True, "to_onehot_y": True,
                     "include_background": False},
        "hd": {"_target_": "medloss.losses.HausdorffDTLoss", "softmax": True, "to_onehot_y": True, "alpha": 2.0},
    },
}


@pytest.mark.usefixtures("table_engine")
def test_bundle_config_snippet_instantiates_and_runs_with_the_transform():
    from monai.bundle import ConfigParser

    parser = ConfigParser(BUNDLE_SNIPPET)
    transform = parser.get_parsed_content("train_transforms")
    labels = torch.randint(0, 2, (2, 1, 8, 8, 8))
    stacked = torch.stack([transform({"label": labels[b]})["label"] for b in range(2)])  # label + 2 maps
    logits = torch.randn(2, 2, 8, 8, 8, requires_grad=True)
    for name in BUNDLE_SNIPPET["losses"]:
        loss = parser.get_parsed_content(f"losses#{name}")
        target = stacked if name in ("boundary", "hd") else labels
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # maps given: no warning about computing them
            out = loss(logits, target)
        out.backward()
        assert torch.isfinite(out), name
