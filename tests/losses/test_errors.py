"""Bad input gets a typed error that names the argument (table-driven)."""
from __future__ import annotations

import pytest
import torch

import medloss.losses as L
from medloss.errors import (
    InputRangeError,
    InvalidOptionError,
    LabelValueError,
    MedlossError,
    OptionTypeError,
    ShapeMismatchError,
)

X = torch.randn(2, 3, 4, 4, 4)
Y = torch.randint(0, 3, (2, 1, 4, 4, 4))
ONEHOT = torch.nn.functional.one_hot(Y[:, 0], 3).movedim(-1, 1).float()

# (id, constructor, input, target, error type, regex the message must match)
CALL_CASES = [
    ("shape-spatial", lambda: L.DiceLoss(softmax=True, to_onehot_y=True), X, Y[..., :3], ShapeMismatchError,
     r"`target`.*shape"),
    ("shape-batch", lambda: L.TverskyLoss(softmax=True, to_onehot_y=True), X, Y[:1], ShapeMismatchError, r"`target`"),
    ("label-map-without-onehot", lambda: L.DiceLoss(softmax=True), X, Y, ShapeMismatchError, r"to_onehot_y=True"),
    ("onehot-wrong-channels", lambda: L.DiceLoss(softmax=True), X, ONEHOT[:, :2], ShapeMismatchError,
     r"`target`.*3 channels"),
    ("onehot-given-with-to_onehot_y", lambda: L.DiceLoss(softmax=True, to_onehot_y=True), X, ONEHOT, ShapeMismatchError,
     r"to_onehot_y=False"),
    ("label-too-large", lambda: L.DiceLoss(softmax=True, to_onehot_y=True), X, Y + 1, LabelValueError,
     r"`target`.*\[3\]"),
    ("label-negative", lambda: L.GeneralizedDiceLoss(softmax=True, to_onehot_y=True), X, Y - 1, LabelValueError,
     r"`target`.*-1"),
    ("label-non-integer", lambda: L.DiceLoss(softmax=True, to_onehot_y=True), X, Y.float() + 0.5, LabelValueError,
     r"`target`.*non-integer"),
    ("label-beyond-ignore", lambda: L.DiceLoss(softmax=True, to_onehot_y=True, ignore_index=255), X,
     Y.masked_fill(Y == 1, 7), LabelValueError, r"ignore_index=255"),
    ("logits-without-activation", lambda: L.DiceLoss(to_onehot_y=True), X, Y, InputRangeError,
     r"`input`.*softmax=True"),
    ("logits-without-activation-tversky", lambda: L.TverskyLoss(to_onehot_y=True), X, Y, InputRangeError,
     r"`input`.*sigmoid=True"),
    ("nan-input", lambda: L.DiceLoss(softmax=True, to_onehot_y=True),
     X.masked_fill(Y.bool().expand_as(X), float("nan")), Y, InputRangeError, r"`input`.*NaN"),
    ("nan-input-ce", lambda: L.CrossEntropyLoss(), X * float("nan"), Y, InputRangeError, r"`input`.*NaN"),
    ("softmax-one-channel", lambda: L.DiceLoss(softmax=True), X[:, :1], ONEHOT[:, :1], InvalidOptionError,
     r"`softmax=True`.*sigmoid"),
    ("onehot-values-outside", lambda: L.DiceLoss(softmax=True), X, ONEHOT * 2, LabelValueError, r"`target`.*\[0, 1\]"),
    ("soft-values-without-soft_label", lambda: L.DiceLoss(softmax=True), X, ONEHOT * 0.5, LabelValueError,
     r"soft_label=True"),
    ("ce-argmax-int-input", lambda: L.CrossEntropyLoss(), X.argmax(1, keepdim=True), Y, OptionTypeError,
     r"`input`.*argmax"),
    ("ce-argmax-float-input", lambda: L.CrossEntropyLoss(), X.argmax(1, keepdim=True).float(), Y, ShapeMismatchError,
     r"`input`.*argmax"),
    ("ce-label-too-large", lambda: L.CrossEntropyLoss(), X, Y + 1, LabelValueError, r"`target`"),
    ("ce-weight-length", lambda: L.CrossEntropyLoss(weight=[1.0, 2.0]), X, Y, ShapeMismatchError, r"`weight`"),
    ("bce-shape", lambda: L.BCELoss(), X, Y, ShapeMismatchError, r"`target`.*CrossEntropyLoss"),
    ("bce-target-range", lambda: L.BCELoss(), X, ONEHOT * 3, LabelValueError, r"`target`.*ignore_index"),
    ("focal-alpha-length", lambda: L.FocalLoss(to_onehot_y=True, alpha=[0.1, 0.9]), X, Y, ShapeMismatchError,
     r"`alpha`"),
    ("focal-label-too-large", lambda: L.FocalLoss(to_onehot_y=True), X, Y + 1, LabelValueError, r"`target`"),
    ("dice-weight-length", lambda: L.DiceLoss(softmax=True, to_onehot_y=True, weight=[1.0, 2.0]), X, Y,
     ShapeMismatchError, r"`weight`.*include_background"),
    ("input-not-tensor", lambda: L.DiceLoss(softmax=True, to_onehot_y=True), X.numpy(), Y, OptionTypeError,
     r"`input`.*torch.Tensor"),
    ("input-2d", lambda: L.DiceLoss(softmax=True, to_onehot_y=True), X[:, :, 0, 0, 0], Y[:, :, 0, 0, 0],
     ShapeMismatchError, r"`input`.*spatial"),
]


@pytest.mark.usefixtures("table_engine")
@pytest.mark.parametrize("case_id,make,inp,target,exc,pattern", CALL_CASES, ids=[c[0] for c in CALL_CASES])
def test_bad_input_raises_typed_error(case_id, make, inp, target, exc, pattern):
    with pytest.raises(exc, match=pattern) as info:
        make()(inp, target)
    assert isinstance(info.value, MedlossError)
    assert isinstance(info.value, (ValueError, TypeError))


INIT_CASES = [
    ("reduction-typo", lambda: L.DiceLoss(reduction="meen"), InvalidOptionError, r"`reduction`.*Did you mean 'mean'"),
    ("w_type-typo", lambda: L.GeneralizedDiceLoss(w_type="sqare"), InvalidOptionError,
     r"`w_type`.*Did you mean 'square'"),
    ("empty-typo", lambda: L.GeneralizedDiceLoss(empty="penalise"), InvalidOptionError,
     r"`empty`.*Did you mean 'penalize'"),
    ("two-activations", lambda: L.DiceLoss(sigmoid=True, softmax=True), InvalidOptionError, r"`sigmoid`.*`softmax`"),
    ("other_act-not-callable", lambda: L.TverskyLoss(other_act="tanh"), OptionTypeError, r"`other_act`"),
    ("negative-smooth", lambda: L.DiceLoss(smooth_nr=-1.0), InvalidOptionError, r"`smooth_nr`"),
    ("negative-weight", lambda: L.DiceLoss(weight=[1.0, -1.0]), InvalidOptionError, r"`weight`"),
    ("ignore-index-float", lambda: L.DiceLoss(ignore_index=1.5), OptionTypeError, r"`ignore_index`"),
    ("gamma-zero", lambda: L.FocalTverskyLoss(gamma=0.0), InvalidOptionError, r"`gamma`"),
    ("alpha-negative", lambda: L.TverskyLoss(alpha=-0.1), InvalidOptionError, r"`alpha`"),
    ("label-smoothing", lambda: L.CrossEntropyLoss(label_smoothing=1.5), InvalidOptionError, r"`label_smoothing`"),
    ("focal-reduction", lambda: L.FocalLoss(reduction="avg"), InvalidOptionError, r"`reduction`"),
    ("explog-no-smoothing", lambda: L.ExpLogLoss(smooth_dr=0.0), InvalidOptionError, r"`smooth_dr`"),
    ("explog-frequencies-string", lambda: L.ExpLogLoss(class_frequencies="dataset"), InvalidOptionError,
     r"`class_frequencies`"),
    ("explog-frequencies-zero", lambda: L.ExpLogLoss(class_frequencies=[0.5, 0.0]), InvalidOptionError,
     r"`class_frequencies`"),
    ("explog-clamp", lambda: L.ExpLogLoss(clamp=0.7), InvalidOptionError, r"`clamp`"),
    ("dicece-none", lambda: L.DiceCELoss(reduction="none"), InvalidOptionError, r"`reduction='none'`.*DiceCELoss"),
    ("dicefocal-lambda", lambda: L.DiceFocalLoss(lambda_focal=-1.0), InvalidOptionError, r"`lambda_focal`"),
    ("anatomynet-weights", lambda: L.AnatomyNetLoss(class_weights=[1.0, -2.0]), InvalidOptionError, r"`class_weights`"),
]


@pytest.mark.parametrize("case_id,make,exc,pattern", INIT_CASES, ids=[c[0] for c in INIT_CASES])
def test_bad_option_raises_typed_error(case_id, make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


def test_value_checks_can_be_switched_off():
    """check_input=False skips value checks (for speed); shape checks stay on."""
    loss = L.DiceLoss(to_onehot_y=True, check_input=False)
    assert torch.isfinite(loss(X, Y))  # logits without activation: not checked
    with pytest.raises(ShapeMismatchError):
        loss(X, Y[..., :3])
