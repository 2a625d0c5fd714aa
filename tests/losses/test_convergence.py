"""Every registered loss trains a tiny 3-D net on synthetic lesions: the loss falls and foreground Dice > 0.5."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from medloss import registry
from tests._helpers import loss_study

STUDY = loss_study()
SETUPS = STUDY.SETUPS
# k=10 with this 2-layer net at lr 0.05 swings between all-background and all-foreground for 40 steps (it
# segments at lr 0.01, and DiceTopK10 does); 30 % of the voxels here
CONVERGENCE_OVERRIDES = {"TopKLoss": {"k": 30.0}}


def _data():
    from medloss.data.synthetic import make_lesion_volume

    cases = [make_lesion_volume(20, seed=s, radius_range=(3.5, 6.0), num_lesions=(2, 3)) for s in range(2)]
    image = torch.from_numpy(np.stack([c.image for c in cases])).float()
    image = (image - image.mean()) / image.std()
    labels = torch.from_numpy(np.stack([c.label for c in cases])[:, None].astype(np.int64))
    return image, labels


def _net(out_channels):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv3d(4, out_channels, 1))


def test_every_registered_loss_has_a_setup():
    missing = set(registry.names()) - set(SETUPS)
    assert not missing, f"add a convergence setup for {sorted(missing)}"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SETUPS))
def test_training_reduces_the_loss_and_segments(name):
    setup = SETUPS[name]
    channels = setup.channels
    image, labels = _data()
    target = labels.float() if setup.target == "binary" else labels
    net, loss_fn = _net(channels), STUDY.make_loss(name, **CONVERGENCE_OVERRIDES.get(name, {}))
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
