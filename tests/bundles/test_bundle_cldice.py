"""A bundle trained with SoftDiceclDiceLoss and the reference skeleton computed in its cached training Compose.

The overrides below are the documented recipe (``medloss.data.topology``): skeleton after the deterministic
transforms (cached), its key in every spatial random transform, packed into the label last, and dropped again
before the training metric.
"""
from __future__ import annotations

import pytest
import torch
from bundle_testing import config, run, workflow

NAME = "tversky_lesion"
KEYS = ["image", "label", "label_skeleton"]


def cldice_overrides() -> dict:
    train = config(NAME, "train.json")["train"]
    random = []
    for t in train["random_transforms"]:
        t = dict(t)
        if t["keys"] == ["image", "label"]:
            t["keys"] = KEYS
        random.append(t)
    random.append({"_target_": "ConcatItemsd", "keys": ["label", "label_skeleton"], "name": "label"})
    post = train["postprocessing"]["transforms"]
    return {
        "loss": {"_target_": "medloss.losses.SoftDiceclDiceLoss", "softmax": True, "to_onehot_y": True,
                 "include_background": False, "alpha": 0.5},
        "train#deterministic_transforms": "$@preprocessing_common + [monai.transforms.SpatialPadd(keys=['image', "
                                          "'label'], spatial_size=@roi_size), medloss.transforms.ReferenceSkeletond("
                                          "keys='label', tube=False)]",
        "train#random_transforms": random,
        "train#postprocessing#transforms": [{"_target_": "Lambdad", "keys": "label", "func": "$lambda x: x[:1]"},
                                            *post],
    }


@pytest.mark.slow
def test_two_epochs_with_dice_cldice_and_the_skeleton_in_the_loader(tmp_path):
    calls = []

    def spy(wf):
        inner = wf.parser.get_parsed_content("loss")
        forward = inner.forward

        def recording(input, target, skeleton=None):
            calls.append(tuple(target.shape))
            return forward(input, target, skeleton)

        inner.forward = recording

    wf = run(workflow(NAME, ["train.json"], "train", tmp_path, epochs=2, **{"imports": ["$import os",
             "$import medloss", "$import medloss.data", "$import medloss.transforms", "$import monai"]},
             **cldice_overrides()), before_run=spy)
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert trainer.state.epoch == 2
    assert calls and all(shape[1] == 2 for shape in calls)  # [label, skeleton] reached the loss every step
    assert torch.isfinite(torch.as_tensor(trainer.state.output[0]["loss"]))
    assert type(wf.parser.get_parsed_content("loss")).__name__ == "SoftDiceclDiceLoss"
