"""A loss holds its activation as one value, ``activation``; MONAI's flags are read back from it, never stored."""
from __future__ import annotations

import inspect

import pytest

import medloss.losses as L
from medloss.losses._base import MedlossLoss

FLAGS = ("sigmoid", "softmax")
#: every loss class whose constructor takes MONAI's activation flags, built with no arguments where possible
CLASSES = sorted(name for name in L.__all__ if isinstance(getattr(L, name), type)
                 and issubclass(getattr(L, name), MedlossLoss)
                 and set(FLAGS) <= set(inspect.signature(getattr(L, name)).parameters))
REQUIRED = {"GeneralizedWassersteinDiceLoss": {"dist_matrix": [[0.0, 1.0], [1.0, 0.0]]}}


@pytest.mark.parametrize("name", CLASSES)
@pytest.mark.parametrize("flag", [None, *FLAGS])
def test_the_activation_is_one_value_and_the_flags_read_it_back(name, flag):
    cls = getattr(L, name)
    loss = cls(**REQUIRED.get(name, {}), **({flag: True} if flag else {}))
    assert loss.activation == flag
    assert {f: getattr(loss, f) for f in FLAGS} == {f: f == flag for f in FLAGS}
    for f in FLAGS:  # read-only: a second copy of the flag cannot drift from the activation
        assert isinstance(inspect.getattr_static(cls, f), property)
        with pytest.raises(AttributeError):
            setattr(loss, f, True)


def test_the_classes_with_flags_are_found():
    assert {"DiceLoss", "ExpLogLoss", "UnifiedFocalLoss", "SkeletonRecallLoss", "BlobLoss"} <= set(CLASSES)
