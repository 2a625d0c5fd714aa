"""The map transforms read labels channel-first, one rule for all three (issue 18, item 14): a channel-less
(H, W, D) label is refused with the fix, never read as H two-dimensional slices."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.transforms import Compose, EnsureChannelFirstd

from medloss.errors import ShapeMismatchError
from medloss.transforms import ConnectedComponentsd, ReferenceSkeletond, SignedDistanceMapd


def _volume() -> np.ndarray:
    label = np.zeros((6, 7, 5), dtype=np.int64)
    label[1:5, 2:5, 1:4] = 1
    return label


@pytest.mark.parametrize("transform", [
    ReferenceSkeletond(keys="label"), ConnectedComponentsd(keys="label"), SignedDistanceMapd("label", num_classes=2),
], ids=["skeleton", "components", "distance"])
def test_channel_less_labels_are_refused_by_every_map_transform(transform):
    with pytest.raises(ShapeMismatchError, match=r"EnsureChannelFirstd"):
        transform({"label": _volume()})
    with pytest.raises(ShapeMismatchError, match=r"EnsureChannelFirstd"):
        transform({"label": torch.from_numpy(_volume())})


@pytest.mark.parametrize("transform,key,shape", [
    (ReferenceSkeletond(keys="label"), "label_skeleton", (1, 6, 7, 5)),
    (ConnectedComponentsd(keys="label"), "label_components", (1, 6, 7, 5)),
    (SignedDistanceMapd("label", num_classes=2), "label", (3, 6, 7, 5)),
], ids=["skeleton", "components", "distance"])
def test_with_a_channel_axis_every_transform_reads_one_3d_volume(transform, key, shape):
    out = Compose([EnsureChannelFirstd("label", channel_dim="no_channel"), transform])({"label": _volume()})
    assert tuple(out[key].shape) == shape


def test_a_multi_channel_label_is_not_split_into_channel_maps():
    """A one-hot (C, *S) label has no class per voxel for a skeleton or component map: refused."""
    onehot = np.stack([_volume() == 0, _volume() == 1]).astype(np.int64)
    for transform in (ReferenceSkeletond(keys="label"), ConnectedComponentsd(keys="label")):
        with pytest.raises(ShapeMismatchError, match=r"argmax"):
            transform({"label": onehot})
    assert SignedDistanceMapd("label", num_classes=2)({"label": onehot})["label"].shape == (4, 6, 7, 5)
