"""The one-hot-free fused path (label maps + softmax) equals the plain path (one-hot targets) and MONAI.

The same loss object is called with a (B, 1, *S) label map (fused path) and with the equivalent one-hot target
(plain path, ``to_onehot_y=False``); values and gradients must agree (float64 rtol 1e-5, float32 rtol 1e-4).
Every test runs three times: with the compiled kernel (``native``), the eager torch implementation (``eager``) and
the Triton kernels (``triton``, under the interpreter on CPU), so every engine of the fused path is held to the
same references.
"""
from __future__ import annotations

import monai.losses as M
import pytest
import torch

import medloss.losses as L
from medloss.backends import cpu as native
from medloss.backends import triton as triton_tables
from tests._helpers import random_case, value_and_grad


@pytest.fixture(autouse=True, params=["cpu", "eager", "triton"])
def engine(request, monkeypatch):
    """Run each test with the compiled kernel, the eager torch path and the Triton kernels (interpreted on CPU)."""
    if request.param == "cpu" and not native.available():
        pytest.skip("the compiled kernel is not built here (tests/backends/test_native.py says why)")
    if request.param == "triton" and not (triton_tables.available() and triton_tables.interpreted()):
        pytest.skip("Triton (with TRITON_INTERPRET=1 on CPU) is not available here")
    monkeypatch.setenv("MEDLOSS_BACKEND", request.param)
    monkeypatch.setenv("MEDLOSS_NATIVE", "1" if request.param == "cpu" else "0")
    return request.param

SM = dict(softmax=True)
# name -> (factory(to_onehot_y, **kw), supports ignore on the plain path)
FUSED = {
    "dice": (lambda oh, **k: L.DiceLoss(to_onehot_y=oh, **SM, **k), True),
    "dice-squared-nobg-batch": (
        lambda oh, **k: L.DiceLoss(to_onehot_y=oh, squared_pred=True, include_background=False, batch=True, **SM, **k),
        True),
    "tversky": (lambda oh, **k: L.TverskyLoss(to_onehot_y=oh, alpha=0.3, beta=0.7, **SM, **k), True),
    "gdl": (lambda oh, **k: L.GeneralizedDiceLoss(to_onehot_y=oh, **SM, **k), True),
    "focal-softmax": (
        lambda oh, **k: L.FocalLoss(to_onehot_y=oh, use_softmax=True, gamma=2.0, alpha=[0.2, 0.3, 0.5],
                                    weight=[1.0, 2.0, 0.5], **k),
        True),
    "focal-softmax-nobg-sum": (
        lambda oh, **k: L.FocalLoss(to_onehot_y=oh, use_softmax=True, gamma=1.5, include_background=False,
                                    reduction="sum", **k),
        True),
    "dicefocal-softmax": (lambda oh, **k: L.DiceFocalLoss(to_onehot_y=oh, gamma=2.0, **SM, **k), True),
    "gdl-focal-softmax": (lambda oh, **k: L.GeneralizedDiceFocalLoss(to_onehot_y=oh, **SM, **k), True),
    # no class weights here: torch's weighted CE divides by sum of weights for labels but by N for probability
    # targets, so the one-hot path differs by design; weighted DiceCE is checked against MONAI below
    "dicece": (lambda oh, **k: L.DiceCELoss(to_onehot_y=oh, **SM, **k), False),
    "ce": (lambda oh, **k: L.CrossEntropyLoss(**k), False),
    "explog": (lambda oh, **k: L.ExpLogLoss(to_onehot_y=oh, **SM, **k), True),
    "explog-nobg-batch": (lambda oh, **k: L.ExpLogLoss(to_onehot_y=oh, include_background=False, batch=True,
                                                        gamma_cross=1.0, **SM, **k), True),
    "anatomynet": (lambda oh, **k: L.AnatomyNetLoss(to_onehot_y=oh, **SM, **k), True),
}


def _onehot(labels, num_classes, ignore_index=None, dtype=torch.float64):
    out = torch.nn.functional.one_hot(labels[:, 0].clamp(0, num_classes - 1), num_classes).movedim(-1, 1).to(dtype)
    if ignore_index is not None:
        out = out.masked_fill((labels == ignore_index).expand_as(out), float(ignore_index))
    return out


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-5), (torch.float32, 1e-4)], ids=["f64", "f32"])
@pytest.mark.parametrize("ignore", [False, True], ids=["no-ignore", "ignore"])
@pytest.mark.parametrize("name", list(FUSED))
def test_fused_equals_plain_path(name, ignore, dtype, rtol):
    factory, plain_ignores = FUSED[name]
    if ignore and not plain_ignores:
        pytest.skip("the plain path (probability targets) has no ignore_index, as torch")
    kw = {"ignore_index": 255} if ignore else {}
    logits, labels = random_case((2, 3, 6, 5, 4), dtype=dtype, ignore_index=255 if ignore else None)
    fused_loss = factory(True, **kw) if name != "ce" else factory(False, **kw)
    plain_loss = factory(False, **kw)
    v1, g1 = value_and_grad(fused_loss, logits, labels)
    v2, g2 = value_and_grad(plain_loss, logits, _onehot(labels, 3, 255 if ignore else None, dtype))
    torch.testing.assert_close(v1, v2, rtol=rtol, atol=1e-7 if dtype == torch.float32 else 1e-12)
    torch.testing.assert_close(g1, g2, rtol=rtol, atol=rtol * float(g2.abs().max()))


@pytest.mark.parametrize("kw", [
    dict(), dict(include_background=False, weight=[2.0, 0.5]), dict(squared_pred=True, batch=True),
    dict(jaccard=True, reduction="sum"), dict(lambda_dice=0.3, lambda_ce=1.7),
], ids=["default", "nobg-weight", "squared-batch", "jaccard-sum", "lambdas"])
def test_fused_dice_ce_matches_monai(kw):
    logits, labels = random_case((2, 3, 6, 5, 4))
    monai_kw = dict(kw)
    if "weight" in kw:  # MONAI takes the CE weight over all classes and drops class 0 for Dice
        monai_kw["weight"] = torch.tensor([1.0] + kw["weight"], dtype=torch.float64)
        kw = dict(kw, weight=[1.0] + kw["weight"])
    ours = L.DiceCELoss(softmax=True, to_onehot_y=True, **kw)
    theirs = M.DiceCELoss(softmax=True, to_onehot_y=True, **monai_kw)
    v1, g1 = value_and_grad(ours, logits, labels)
    v2, g2 = value_and_grad(theirs, logits, labels)
    torch.testing.assert_close(v1, v2, rtol=1e-5, atol=1e-12)
    torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-5 * float(g2.abs().max()))


def test_fused_focal_handles_saturated_logits():
    """p_y underflowing to 0 (and p_y = 1 exactly): finite values and gradients, as log_softmax would give."""
    labels = torch.zeros(1, 1, 2, 2, 2, dtype=torch.long)
    labels[..., 0, 0, 0] = 1
    logits = torch.zeros(1, 2, 2, 2, 2, dtype=torch.float32)
    logits[:, 0] = 120.0  # class 0 certain everywhere: p = 1 on the background, p ~ e^-120 on the one label-1 voxel
    for loss in (L.FocalLoss(to_onehot_y=True, use_softmax=True), L.CrossEntropyLoss(),
                 L.DiceFocalLoss(softmax=True, to_onehot_y=True)):
        v, g = value_and_grad(loss, logits, labels)
        assert torch.isfinite(v) and torch.isfinite(g).all(), type(loss).__name__
    ce = L.CrossEntropyLoss()(logits, labels)
    torch.testing.assert_close(ce, torch.nn.functional.cross_entropy(logits, labels[:, 0]))
