"""Bad input gives the same typed error on the compiled-kernel path and the eager path (issue 12, section 2)."""
from __future__ import annotations

import pytest
import torch

import medloss.losses as L
from medloss.backends import cpu as native
from medloss.errors import InputRangeError, InvalidOptionError, LabelValueError, OptionTypeError, ShapeMismatchError
from medloss.registry import LOSSES
from tests._helpers import loss_study

PATHS = ["kernel", "eager"]
pytestmark = pytest.mark.filterwarnings("ignore:single channel prediction")  # MONAI's, for the 1-channel maps


@pytest.fixture(params=PATHS)
def path(request, monkeypatch):
    if request.param == "kernel" and not native.available():
        pytest.skip("kernel not built")
    monkeypatch.setenv("MEDLOSS_NATIVE", "1" if request.param == "kernel" else "0")
    return request.param


LABEL_LOSSES = {  # label-map losses: softmax (kernel: one-hot-free tables) and sigmoid on a one-channel map
    "dice-softmax": (lambda ii: L.DiceLoss(softmax=True, to_onehot_y=True, ignore_index=ii), 3),
    "ce": (lambda ii: L.CrossEntropyLoss(ignore_index=ii), 3),
    "dice-ce": (lambda ii: L.DiceCELoss(softmax=True, to_onehot_y=True, ignore_index=ii), 3),
    "focal-softmax": (lambda ii: L.FocalLoss(use_softmax=True, to_onehot_y=True, ignore_index=ii), 3),
    "dice-sigmoid": (lambda ii: L.DiceLoss(sigmoid=True, to_onehot_y=True, ignore_index=ii), 1),
    "dice-focal-sigmoid": (lambda ii: L.DiceFocalLoss(sigmoid=True, to_onehot_y=True, ignore_index=ii), 1),
}
UNHELD = [(torch.uint8, -100, 156), (torch.uint8, -1, 255), (torch.int8, 255, -1), (torch.float32, 16777217, 16777216)]


def _case(channels, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, channels, 4, 4, 4, generator=g)
    y = torch.randint(0, max(channels, 2), (2, 1, 4, 4, 4), generator=g)
    return x, y


@pytest.mark.parametrize("dtype,ignore_index,wrapped", UNHELD, ids=lambda v: str(v))
@pytest.mark.parametrize("name", sorted(LABEL_LOSSES))
def test_ignore_index_the_label_dtype_cannot_hold(path, name, dtype, ignore_index, wrapped):
    """No label of that dtype can equal ignore_index, so nothing is ignored; the value it would wrap to is an
    ordinary out-of-range label, reported with the dtype explained (was: kernel 'status 2 (please report this)',
    eager path silently ignoring the wrapped value)."""
    make, channels = LABEL_LOSSES[name]
    x, y = _case(channels)
    clean = make(ignore_index)(x, y.to(dtype))  # nothing to ignore: the loss without ignore_index
    torch.testing.assert_close(clean, make(None)(x, y))
    y_bad = y.to(dtype)
    y_bad[0, 0, 0, 0, 0] = wrapped
    with pytest.raises(LabelValueError, match=rf"cannot hold ignore_index={ignore_index}"):
        make(ignore_index)(x, y_bad)


def test_ignore_index_beyond_int64_is_refused():
    for cls in (L.DiceLoss, L.CrossEntropyLoss, L.FocalLoss, L.DiceCELoss, L.ExpLogLoss):
        with pytest.raises(InvalidOptionError, match="int64"):
            cls(ignore_index=2**63)


NONFINITE = {
    "dice-softmax": lambda c: L.DiceLoss(softmax=True, to_onehot_y=True, check_input=c),
    "ce": lambda c: L.CrossEntropyLoss(check_input=c),
    "dice-ce": lambda c: L.DiceCELoss(softmax=True, to_onehot_y=True, check_input=c),
    "dice-sigmoid": lambda c: L.DiceLoss(sigmoid=True, to_onehot_y=True, check_input=c),
    "focal-sigmoid": lambda c: L.FocalLoss(to_onehot_y=True, check_input=c),
}


@pytest.mark.parametrize("name", sorted(NONFINITE))
def test_non_finite_logits_same_behaviour_on_every_path(path, name):
    """check_input=True: InputRangeError. check_input=False: no check, torch's arithmetic (NaN here) on every path
    (the kernel hands such logits to the eager path instead of raising)."""
    x, y = _case(3)
    x[0, 1, 1, 1, 1] = float("nan")
    with pytest.raises(InputRangeError, match="NaN or infinite"):
        NONFINITE[name](True)(x, y)
    x.requires_grad_(True)
    value = NONFINITE[name](False)(x, y)
    assert torch.isnan(value)
    value.backward()
    assert torch.isnan(x.grad).any()


def _instance(name):
    """Every registered loss as trained in the loss study (one table: benchmarks/loss_study.py)."""
    return loss_study().make_loss(name)


def _target(name, shape, device="cpu"):
    if loss_study().SETUPS[name].channels == 1:
        return torch.zeros(shape, device=device)
    return torch.zeros(shape[0], 1, *shape[2:], dtype=torch.long, device=device)


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("shape", [(0, 3, 4, 4, 4), (2, 3, 0, 4, 4)], ids=["empty-batch", "zero-size-axis"])
def test_empty_input_is_a_typed_error(path, name, shape):
    x = torch.randn(*shape)
    with pytest.raises(ShapeMismatchError, match="no elements"):
        _instance(name)(x, _target(name, shape))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_meta_tensors_are_a_typed_error(name):
    x = torch.randn(2, 3, 4, 4, 4, device="meta")
    with pytest.raises(OptionTypeError, match="meta device"):
        _instance(name)(x, _target(name, x.shape, device="meta"))


def test_explog_running_counts_of_the_wrong_size():
    loss = L.ExpLogLoss(softmax=True, to_onehot_y=True, class_frequencies="running")
    loss.load_state_dict({"class_counts": torch.ones(4, dtype=torch.float64)})
    x, y = _case(3)
    with pytest.raises(ShapeMismatchError, match="4 entries but the labels have 3 classes"):
        loss(x, y)
    with pytest.raises(ShapeMismatchError, match="1-D tensor"):
        loss.load_state_dict({"class_counts": torch.ones(2, 2)})
    loss.load_state_dict({"class_counts": torch.ones(3, dtype=torch.float64)})
    assert torch.isfinite(loss(x, y))
