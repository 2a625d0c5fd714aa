"""ReferenceSkeletond / ConnectedComponentsd: maps computed once per sample in a MONAI Compose, cached, packed."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import CacheDataset, MetaTensor
from monai.transforms import Compose, ConcatItemsd, RandFlipd

import medloss.losses as L
from medloss.errors import InvalidOptionError, ShapeMismatchError
from medloss.functional import maps
from medloss.transforms import ConnectedComponentsd, ReferenceSkeletond


def _tube_label():
    label = np.zeros((1, 16, 12, 12), dtype=np.int64)
    label[0, 2:14, 4:7, 4:7] = 1  # a 3-voxel-thick rod along x
    label[0, 3:6, 9:11, 9:11] = 2  # a small second-class blob
    return label


def test_skeleton_of_a_rod_is_its_centre_line_and_the_tube_stays_inside():
    label = _tube_label()[0]
    skel = maps.reference_skeleton(label, tube=False)
    rod = skel[:, 4:7, 4:7]
    assert set(np.unique(skel)) <= {0, 1, 2} and (rod > 0).sum() >= 8
    assert (skel[:, 5, 5] > 0).sum() >= 8  # the centre line
    tube = maps.reference_skeleton(label, tube=True)
    assert (tube > 0).sum() > (skel > 0).sum() and np.all(tube[label == 0] == 0)
    np.testing.assert_array_equal(tube[tube > 0], label[tube > 0])  # each tube voxel keeps its class


def test_components_are_per_class_and_skip_ignored_voxels():
    label = _tube_label()[0]
    comps = maps.component_map(label)
    assert comps.max() == 2 and len(np.unique(comps[label == 1])) == 1
    label[8, 4:7, 4:7] = 255  # cut the rod with ignored voxels
    assert maps.component_map(label, ignore_index=255).max() == 3
    with pytest.raises(InvalidOptionError, match="connectivity"):
        maps.component_map(label, connectivity=5)


def test_transforms_run_in_a_cached_compose_and_pack_into_the_label():
    data = [{"label": MetaTensor(torch.from_numpy(_tube_label()), affine=torch.eye(4) * 2)} for _ in range(2)]
    pipeline = Compose([
        ReferenceSkeletond(keys="label", tube=False),
        ConnectedComponentsd(keys="label"),
        RandFlipd(keys=["label", "label_skeleton", "label_components"], prob=1.0, spatial_axis=0),
        ConcatItemsd(keys=["label", "label_skeleton"], name="packed"),
    ])
    ds = CacheDataset(data, transform=pipeline, progress=False)
    item = ds[0]
    assert item["label_skeleton"].shape == (1, 16, 12, 12) and isinstance(item["label_skeleton"], MetaTensor)
    torch.testing.assert_close(item["label_skeleton"].affine, item["label"].affine)
    assert item["packed"].shape == (2, 16, 12, 12) and int(item["label_components"].max()) == 2
    flipped = torch.flip(torch.from_numpy(maps.reference_skeleton(_tube_label()[0], tube=False)), (0,))
    torch.testing.assert_close(item["label_skeleton"][0].as_tensor().long(), flipped.long())
    # the loss reads the packed channel as the skeleton
    logits = torch.randn(1, 3, 16, 12, 12, dtype=torch.float64)
    loss = L.SoftclDiceLoss(softmax=True, to_onehot_y=True)
    torch.testing.assert_close(loss(logits, item["packed"][None].as_tensor()),
                               loss(logits, item["label"][None].as_tensor(), skeleton=item["label_skeleton"][None]))


def test_transform_rejects_a_label_without_channel_axis():
    with pytest.raises(ShapeMismatchError, match="EnsureChannelFirstd"):
        ReferenceSkeletond(keys="label")({"label": np.zeros((4, 4), dtype=np.int64)})
