"""Every registered loss trains a tiny 3-D net on synthetic lesions: the loss falls and foreground Dice > 0.5."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import medloss.losses as L
from medloss import registry

SOFTMAX = dict(softmax=True, to_onehot_y=True)
# name -> (factory, output channels, target kind: "labels" (B,1,*S) or "binary" (B,1,*S) float)
SETUPS = {
    "DiceLoss": (lambda: L.DiceLoss(**SOFTMAX), 2, "labels"),
    "JaccardLoss": (lambda: L.JaccardLoss(**SOFTMAX), 2, "labels"),
    "TverskyLoss": (lambda: L.TverskyLoss(**SOFTMAX, alpha=0.3, beta=0.7), 2, "labels"),
    "FocalTverskyLoss": (lambda: L.FocalTverskyLoss(**SOFTMAX), 2, "labels"),
    "GeneralizedDiceLoss": (lambda: L.GeneralizedDiceLoss(**SOFTMAX), 2, "labels"),
    "CrossEntropyLoss": (lambda: L.CrossEntropyLoss(), 2, "labels"),
    "BCELoss": (lambda: L.BCELoss(), 1, "binary"),
    "FocalLoss": (lambda: L.FocalLoss(to_onehot_y=True, use_softmax=True), 2, "labels"),
    "DiceCELoss": (lambda: L.DiceCELoss(**SOFTMAX), 2, "labels"),
    "DiceFocalLoss": (lambda: L.DiceFocalLoss(**SOFTMAX), 2, "labels"),
    "GeneralizedDiceFocalLoss": (lambda: L.GeneralizedDiceFocalLoss(**SOFTMAX), 2, "labels"),
    "BCEDiceLoss": (lambda: L.BCEDiceLoss(), 1, "binary"),
    "ExpLogLoss": (lambda: L.ExpLogLoss(**SOFTMAX), 2, "labels"),
    "AnatomyNetLoss": (lambda: L.AnatomyNetLoss(**SOFTMAX), 2, "labels"),
    "LovaszSoftmaxLoss": (lambda: L.LovaszSoftmaxLoss(**SOFTMAX), 2, "labels"),
    "LovaszHingeLoss": (lambda: L.LovaszHingeLoss(), 1, "labels"),
    # k=10 with this 2-layer net at lr 0.05 swings between all-background and all-foreground for 40 steps (it
    # segments at lr 0.01, and DiceTopK10 does); 30 % of the voxels here
    "TopKLoss": (lambda: L.TopKLoss(k=30.0), 2, "labels"),
    "DiceTopKLoss": (lambda: L.DiceTopKLoss(**SOFTMAX), 2, "labels"),
    "UnifiedFocalLoss": (lambda: L.UnifiedFocalLoss(**SOFTMAX), 2, "labels"),
    "AsymmetricUnifiedFocalLoss": (lambda: L.AsymmetricUnifiedFocalLoss(**SOFTMAX), 2, "labels"),
    # both papers train with a region loss added (alone, both reach their minimum by predicting no lesion here)
    "BoundaryLoss": (lambda: _with_dice(L.BoundaryLoss(**SOFTMAX, include_background=False), 0.1), 2, "labels"),
    "HausdorffDTLoss": (lambda: _with_dice(L.HausdorffDTLoss(**SOFTMAX), 0.1), 2, "labels"),
}


def _with_dice(loss, weight):
    """Dice + weight * loss: the boundary loss (Kervadec et al.) and HD-DT loss (Karimi & Salcudean) as trained."""
    dice = L.DiceLoss(**SOFTMAX)
    return lambda x, y: dice(x, y) + weight * loss(x, y)


def _data():
    from medloss.data.synthetic import make_lesion_volume

    cases = [make_lesion_volume(20, seed=s, radius_range=(3.5, 6.0), num_lesions=(2, 3)) for s in range(2)]
    image = torch.from_numpy(np.stack([c.image for c in cases])).float()
    image = (image - image.mean()) / image.std()
    labels = torch.from_numpy(np.stack([c.label for c in cases])[:, None].astype(np.int64))
    return image, labels


def _net(out_channels):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(4, out_channels, 1))


def test_every_registered_loss_has_a_setup():
    missing = set(registry.names()) - set(SETUPS)
    assert not missing, f"add a convergence setup for {sorted(missing)}"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SETUPS))
def test_training_reduces_the_loss_and_segments(name):
    factory, channels, kind = SETUPS[name]
    image, labels = _data()
    target = labels.float() if kind == "binary" else labels
    net, loss_fn = _net(channels), factory()
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = loss_fn(net(image), target)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        out = net(image)
        pred = out.argmax(1) if channels > 1 else (out[:, 0] > 0).long()
    fg, ref = pred == 1, labels[:, 0] == 1
    dice = 2 * (fg & ref).sum().item() / (fg.sum().item() + ref.sum().item())
    assert np.mean(losses[-5:]) < np.mean(losses[:5]), losses
    assert dice > 0.7, f"{name}: foreground Dice {dice:.3f}"  # the issue asks > 0.5; all reach ~0.9 here
