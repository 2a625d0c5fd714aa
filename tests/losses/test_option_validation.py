"""Every numeric constructor option of every loss is checked when the loss is built (issue 18, item 6).

The mechanical test reads the options from the signatures, so a loss or an option added later is covered without
editing this file: a NaN, an infinity or a string must raise a typed medloss error at construction, never a NaN
loss (or an untyped error) at the first step.
"""
from __future__ import annotations

import inspect
import math
import re

import pytest
import torch

import medloss.losses as L
from medloss.errors import InvalidOptionError, MedlossError, OptionTypeError

CLASSES = list(dict.fromkeys(getattr(L, name) for name in L.__all__))  # MONAI's aliases name the same classes
#: arguments without a default that a constructor needs
REQUIRED = {
    L.DeepSupervisionLoss: {"loss": L.DiceLoss(softmax=True, to_onehot_y=True)},
    L.GeneralizedWassersteinDiceLoss: {"dist_matrix": [[0.0, 1.0], [1.0, 0.0]]},
    L.NACLLoss: {"classes": 3, "dim": 3},
}
#: options that hold numbers but default to None and carry no annotation (MONAI's untyped signatures)
NUMERIC_BY_NAME = {"weight", "pos_weight", "alpha", "class_weights", "class_frequencies", "weights"}


def _signature(cls) -> inspect.Signature:
    """The first explicit signature up the MRO (JaccardLoss forwards ``*args, **kwargs`` to DiceLoss)."""
    for klass in cls.__mro__:
        sig = inspect.signature(klass.__init__)
        if not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            return sig
    raise AssertionError(f"no explicit signature for {cls.__name__}")


def numeric_options(cls) -> list[str]:
    out = []
    for p in _signature(cls).parameters.values():
        if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        number_default = isinstance(p.default, (int, float)) and not isinstance(p.default, bool)
        number_annotation = re.search(r"\b(int|float)\b", str(p.annotation)) is not None
        if number_default or number_annotation or (p.default is None and p.name in NUMERIC_BY_NAME):
            out.append(p.name)
    return out


CASES = [(cls, name) for cls in CLASSES for name in numeric_options(cls)]


def test_the_options_are_found():
    """The scan is not empty and finds the options of the issue (a guard for the parametrisation below)."""
    found = {(cls.__name__, name) for cls, name in CASES}
    for case in [("DiceLoss", "smooth_nr"), ("SoftclDiceLoss", "smooth"), ("HausdorffDTLoss", "alpha"),
                 ("SkeletonRecallLoss", "weight_srec"), ("BlobLoss", "main_weight"), ("BlobLoss", "blob_weight"),
                 ("UnifiedFocalLoss", "epsilon"), ("TopKLoss", "label_smoothing"), ("DiceTopKLoss", "smooth_nr"),
                 ("FocalLoss", "alpha"), ("DiceFocalLoss", "alpha"), ("BCELoss", "ignore_index"),
                 ("JaccardLoss", "smooth_dr"), ("DeepSupervisionLoss", "min_valid_fraction"),
                 ("NACLLoss", "classes"), ("NACLLoss", "sigma"), ("MCCLoss", "smooth_nr"),
                 ("GeneralizedWassersteinDiceLoss", "smooth_dr")]:
        assert case in found
    assert len(CASES) > 100


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_defaults_construct(cls):
    cls(**REQUIRED.get(cls, {}))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "x"], ids=["nan", "inf", "-inf", "str"])
@pytest.mark.parametrize("cls,name", CASES, ids=[f"{c.__name__}.{n}" for c, n in CASES])
def test_nan_inf_and_strings_are_refused_at_construction(cls, name, bad):
    with pytest.raises(MedlossError) as info:
        cls(**{**REQUIRED.get(cls, {}), name: bad})
    assert f"`{name}`" in str(info.value)


@pytest.mark.parametrize("call,error,text", [
    (lambda: L.UnifiedFocalLoss(epsilon=2), InvalidOptionError, r"`epsilon` must be a finite number in \(0, 0.5\)"),
    (lambda: L.AsymmetricUnifiedFocalLoss(epsilon=0.5), InvalidOptionError, r"`epsilon`"),
    (lambda: L.TopKLoss(label_smoothing=2), InvalidOptionError,
     r"`label_smoothing` must be a finite number in \[0, 1\]"),
    (lambda: L.DiceTopKLoss(label_smoothing=1.5), InvalidOptionError, r"`label_smoothing`"),
    (lambda: L.DiceCELoss(label_smoothing=1.5), InvalidOptionError, r"`label_smoothing`"),
    (lambda: L.DiceTopKLoss(smooth_nr="x"), OptionTypeError, r"`smooth_nr` must be a number, got 'x'"),
    (lambda: L.DiceCELoss(smooth_dr=math.nan), InvalidOptionError, r"`smooth_dr` must be a finite number >= 0"),
    (lambda: L.SoftclDiceLoss(smooth=math.nan), InvalidOptionError, r"`smooth` must be a finite number > 0"),
    (lambda: L.SkeletonRecallLoss(weight_srec=math.inf), InvalidOptionError, r"`weight_srec`"),
    (lambda: L.BlobLoss(main_weight=math.nan), InvalidOptionError, r"`main_weight`"),
    (lambda: L.HausdorffDTLoss(alpha=math.nan), InvalidOptionError, r"`alpha` must be a finite number > 0"),
    (lambda: L.FocalLoss(alpha=1.5), InvalidOptionError, r"`alpha` must be a finite number in \[0, 1\]"),
    (lambda: L.DiceFocalLoss(alpha=math.nan), InvalidOptionError, r"`alpha`"),
    (lambda: L.AnatomyNetLoss(smooth_dr=math.nan), InvalidOptionError, r"`smooth_dr`"),
    (lambda: L.TverskyLoss(alpha=True), OptionTypeError, r"`alpha` must be a number, got True"),
])
def test_messages_name_the_argument_and_the_range(call, error, text):
    with pytest.raises(error, match=text):
        call()


@pytest.mark.parametrize("call", [
    lambda: L.DiceLoss(smooth_nr=0, smooth_dr=0),  # MONAI accepts 0 smoothing (the loss may then be 0/0: caller's)
    lambda: L.DiceCELoss(lambda_dice=0, lambda_ce=0.0),
    lambda: L.FocalLoss(alpha=0.25, gamma=0),
    lambda: L.FocalLoss(alpha=[0.25, 0.75]),
    lambda: L.FocalLoss(alpha=1),
    lambda: L.TopKLoss(k=100, label_smoothing=1),
    lambda: L.UnifiedFocalLoss(epsilon=1e-3, gamma=0.0),
    lambda: L.HausdorffDTLoss(alpha=0.5),
    lambda: L.BCELoss(ignore_index=255),
    lambda: L.DeepSupervisionLoss(L.CrossEntropyLoss(ignore_index=255), ignore_index=255),
])
def test_monai_valid_values_stay_valid(call):
    call()


def test_the_values_are_kept_as_given():
    loss = L.FocalLoss(alpha=1)
    assert loss.alpha == 1.0 and isinstance(loss.alpha, float)
    assert L.DeepSupervisionLoss(L.CrossEntropyLoss(ignore_index=255), ignore_index=255).ignore_index == 255
    torch.testing.assert_close(L.FocalLoss(alpha=[0.25, 0.75]).alpha, torch.tensor([0.25, 0.75], dtype=torch.float64))
