"""Precomputed skeleton and component maps: one validation and conversion rule, and component ids of any size
(issue 18, items 7 and 8)."""
from __future__ import annotations

import math
import time

import pytest
import torch

import medloss.losses as L
from medloss.errors import LabelValueError


def _case(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, 8, 8, 6, generator=g, dtype=torch.float64)
    labels = torch.zeros(2, 1, 8, 8, 6, dtype=torch.int64)
    labels[:, 0, 1:4, 1:4, 1:3] = 1
    labels[:, 0, 5:7, 5:7, 2:5] = 2
    labels[1, 0, 1:3, 5:7, 4:6] = 1
    comps = torch.zeros_like(labels)
    comps[:, 0, 1:4, 1:4, 1:3] = 1
    comps[:, 0, 5:7, 5:7, 2:5] = 2
    comps[1, 0, 1:3, 5:7, 4:6] = 3
    return logits, labels, comps


@pytest.mark.parametrize("big", [10**8, 10**12])
def test_blob_component_ids_of_any_size_cost_what_small_ids_do(big):
    """Ids are compacted: the tables follow the number of components (before: id 1e8 took 31 s and 8.3 GB, id
    1e12 an untyped allocation error)."""
    logits, labels, comps = _case()
    loss = L.BlobLoss(softmax=True, to_onehot_y=True)
    expected = loss(logits, labels, components=comps)
    renamed = torch.where(comps > 0, comps + big, comps)  # ids big+1, big+2, big+3
    start = time.perf_counter()
    value = loss(logits, labels, components=renamed)
    assert time.perf_counter() - start < 2.0
    torch.testing.assert_close(value, expected)
    gappy = torch.where(comps == 3, torch.full_like(comps, big), comps)  # ids 1, 2 and one huge id
    torch.testing.assert_close(loss(logits, labels, components=gappy), expected)


def test_blob_ids_shared_across_samples_stay_per_sample():
    logits, labels, comps = _case()
    loss = L.BlobLoss(softmax=True, to_onehot_y=True, reduction="none")
    separate = torch.cat([loss(logits[b:b + 1], labels[b:b + 1], components=comps[b:b + 1]) for b in range(2)])
    torch.testing.assert_close(loss(logits, labels, components=comps), separate)


@pytest.mark.parametrize("bad,text", [
    (math.nan, "NaN or infinite"), (math.inf, "NaN or infinite"), (-1.0, r"below 0"), (1.5, "non-integer"),
])
def test_bad_component_maps_are_refused_when_checking(bad, text):
    logits, labels, comps = _case()
    comps = comps.double()
    comps[0, 0, 2, 2, 1] = bad
    with pytest.raises(LabelValueError, match=rf"`components`.*{text}"):
        L.BlobLoss(softmax=True, to_onehot_y=True)(logits, labels, components=comps)


def _skeleton_case():
    logits, labels, _ = _case()
    skeleton = torch.zeros_like(labels)
    skeleton[:, 0, 2, 2, 1:3] = 1
    skeleton[:, 0, 6, 6, 2:5] = 2
    return logits, labels, skeleton


@pytest.mark.parametrize("cls", [L.SoftclDiceLoss, L.SkeletonRecallLoss])
@pytest.mark.parametrize("bad,text", [
    (math.nan, "NaN or infinite"), (-1.0, r"outside \[0, 3\)"), (3.0, r"outside \[0, 3\)"),
    (1.5, "non-integer"),
])
def test_bad_skeleton_maps_are_refused_when_checking(cls, bad, text):
    logits, labels, skeleton = _skeleton_case()
    skeleton = skeleton.double()
    skeleton[0, 0, 2, 2, 1] = bad
    with pytest.raises(LabelValueError, match=rf"`skeleton`.*{text}"):
        cls(softmax=True, to_onehot_y=True)(logits, labels, skeleton=skeleton)


@pytest.mark.usefixtures("table_engine")
@pytest.mark.parametrize("cls", [L.SoftclDiceLoss, L.SkeletonRecallLoss])
def test_unchecked_float_skeletons_are_rounded_as_component_maps(cls):
    """One conversion rule for float maps without checks: round (a skeleton of 1.7 was truncated to class 1)."""
    logits, labels, skeleton = _skeleton_case()
    loss = cls(softmax=True, to_onehot_y=True, check_input=False)
    nudged = skeleton.double() + torch.where(skeleton > 0, -0.3, 0.2).double()  # 1 -> 0.7, 2 -> 1.7, 0 -> 0.2
    torch.testing.assert_close(loss(logits, labels, skeleton=nudged), loss(logits, labels, skeleton=skeleton))
    logits_b, labels_b, comps = _case()
    blob = L.BlobLoss(softmax=True, to_onehot_y=True, check_input=False)
    torch.testing.assert_close(blob(logits_b, labels_b, components=comps.double() - 0.3 * (comps > 0)),
                               blob(logits_b, labels_b, components=comps))
