"""The boundary loss in a bundle: SignedDistanceMapd in the training Compose (after the random crop and flips),
maps stacked after the label channel, BoundaryLoss splitting them off; tversky_lesion trained for two epochs."""
from __future__ import annotations

import warnings

import pytest
import torch
from bundle_testing import config, run, workflow

NAME = "tversky_lesion"


def boundary_overrides() -> dict:
    """Config overrides: the loss, the transform at the end of the random transforms, and the train metric's
    postprocessing reading only the label channel (the maps ride along in ``label``)."""
    train = config(NAME, "train.json")["train"]
    distance = {"_target_": "medloss.transforms.SignedDistanceMapd", "keys": "label", "num_classes": "@num_classes"}
    label_only = {"_target_": "Lambdad", "keys": "label", "func": "$lambda x: x[:1]"}
    return {
        "loss": {"_target_": "medloss.losses.BoundaryLoss", "softmax": True, "to_onehot_y": True,
                 "include_background": False},
        "train#random_transforms": train["random_transforms"] + [distance],
        "train#postprocessing#transforms": [label_only] + train["postprocessing"]["transforms"],
    }


@pytest.mark.slow
def test_two_epochs_with_the_boundary_loss_and_loader_maps(tmp_path):
    wf = workflow(NAME, ["train.json"], "train", tmp_path, epochs=2, **boundary_overrides())
    seen = []

    def spy(wf):
        loss = wf.parser.get_parsed_content("loss")
        original = loss.forward
        loss.forward = lambda input, target, distance=None: seen.append(tuple(target.shape)) or original(
            input, target, distance)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(wf, before_run=spy)
    assert not [w for w in caught if "signed distance maps" in str(w.message)]  # the loader's maps were used
    assert seen and all(shape[1] == 1 + 2 for shape in seen)  # label + one map per class
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert trainer.state.epoch == 2 and torch.isfinite(torch.as_tensor(trainer.state.output[0]["loss"]))
