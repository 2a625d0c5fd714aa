"""The anatomynet_lesion bundle: what is specific to it (the AnatomyNet loss, three foreground classes).

Layout, metadata, config IDs, train/evaluate/infer from the bundle folder, resume, bad input and DDP are checked for
every bundle in ``bundle_cases.py``.
"""
from __future__ import annotations

import numpy as np
import torch
from bundle_testing import config

NAME = "anatomynet_lesion"


def test_anatomynet_loss_over_three_foreground_classes():
    from monai.bundle import ConfigParser

    from medloss.losses import AnatomyNetLoss

    train = config(NAME, "train.json")
    assert train["loss"]["_target_"] == "medloss.losses.AnatomyNetLoss"
    assert train["num_classes"] == 4  # background + 3 classes of small structures
    loss = ConfigParser(train).get_parsed_content("loss")
    assert isinstance(loss, AnatomyNetLoss)
    # background scored too: with a_c = 0 for a class missing from the batch, only background's Dice and focal
    # terms penalise predicting that class on background voxels
    expected = {"softmax": True, "to_onehot_y": True, "include_background": True, "alpha": 0.5, "beta": 0.5,
                "gamma": 2.0, "lambda_focal": 0.1}
    assert {k: train["loss"][k] for k in expected} == expected
    logits = torch.randn(2, 4, 8, 8, 8, requires_grad=True)
    label = torch.randint(0, 3, (2, 1, 8, 8, 8))  # class 3 absent from the batch: its Dice term is skipped
    value = loss(logits, label)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()
    options = {k: v for k, v in train["loss"].items() if k not in ("_target_", "reduction")}
    per_class = AnatomyNetLoss(**options, reduction="none")
    assert per_class(logits.detach(), label).shape == (1, 4)


def test_metadata_names_the_three_classes():
    meta = config(NAME, "metadata.json")
    channels = meta["network_data_format"]["outputs"]["pred"]["channel_def"]
    assert list(channels) == ["0", "1", "2", "3"] and channels["0"] == "background"
    assert all(f"{k}" in meta["label_classes"] for k in (1, 2, 3))


def test_synthetic_classes_are_told_apart_by_intensity_and_size():
    """The default data (generator's multi-class mode): three classes with distinct FLAIR levels and sizes."""
    from medloss.data import make_lesion_volume

    train = config(NAME, "train.json")
    options = {**train["synthetic_options"], "num_lesions": (6, 6)}
    means, radii = {k: [] for k in (1, 2, 3)}, {k: [] for k in (1, 2, 3)}
    for seed in range(3):
        case = make_lesion_volume(48, num_classes=train["num_classes"], seed=seed, **options)
        for k in means:
            if (case.label == k).any():
                means[k].append(float(case.image[0][case.label == k].mean()))
        for radius, k in case.lesion_radii:
            radii[k].append(radius)
    levels = [np.mean(means[k]) for k in (1, 2, 3)]
    assert all(means.values()) and levels[0] > levels[1] > levels[2]
    assert min(-np.diff(levels)) > 100  # well above the Rician noise (0.05 x 600 = 30)
    for k, (low, high) in enumerate(train["synthetic_options"]["class_radius"], start=1):
        assert radii[k] and low <= min(radii[k]) <= max(radii[k]) <= high
