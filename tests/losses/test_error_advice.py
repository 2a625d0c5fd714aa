"""Every option an error message tells the user to set exists on the loss that raised it (issue 18, item 9).

Mechanical: every registered loss, in each configuration its signature allows (no activation, softmax, sigmoid,
label-map targets), is fed a fixed set of bad inputs; every typed error it raises is parsed for advice — a
backticked option after "set", "pass" or "use" (``set `soft_label=True` ``), and any backticked ``name=value`` —
and each option named must be a parameter of that loss's constructor or ``forward``. A message that sends the user
into a ``TypeError`` ("unexpected keyword argument") fails here.
"""
from __future__ import annotations

import inspect
import re
import warnings

import pytest
import torch

import medloss.losses as L
from medloss import registry
from medloss.errors import MedlossError

ADVICE = re.compile(r"\b(?:set|pass|use)\s+(?:only\s+)?`([A-Za-z_]\w*)", re.IGNORECASE)
ASSIGNMENT = re.compile(r"`([A-Za-z_]\w*)=[^`]*`")


def advised_options(message: str) -> set[str]:
    return set(ADVICE.findall(message)) | set(ASSIGNMENT.findall(message))


def _parameters(cls) -> set[str]:
    """The constructor's parameters (the first explicit signature up the MRO: JaccardLoss forwards ``**kwargs`` to
    DiceLoss) and ``forward``'s; a wrapper's advice may also name its inner loss's options."""
    for klass in cls.__mro__:
        names = inspect.signature(klass.__init__).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in names.values()):
            break
    inner = REQUIRED.get(cls, {}).get("loss")
    return set(names) | set(inspect.signature(cls.forward).parameters) | (set() if inner is None else
                                                                          _parameters(type(inner)))


def _configs(cls) -> list[dict]:
    params = set(inspect.signature(cls.__init__).parameters) if cls in REQUIRED else _parameters(cls)
    configs = [{}]
    for extra in ({"to_onehot_y": True}, {"softmax": True}, {"softmax": True, "to_onehot_y": True},
                  {"sigmoid": True}, {"sigmoid": True, "to_onehot_y": True}):
        if set(extra) <= params:
            configs.append(extra)
    return configs


def _bad_inputs() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    shape = (2, 3, 5, 5, 4)
    logits = torch.randn(shape, generator=g) * 4
    probs = torch.softmax(logits, 1)
    labels = torch.randint(0, 3, (2, 1, *shape[2:]), generator=g)
    onehot = torch.nn.functional.one_hot(labels[:, 0], 3).permute(0, 4, 1, 2, 3).float()
    soft = torch.softmax(torch.randn(shape, generator=g), 1)
    return {
        "logits, labels": (logits, labels),
        "probs, labels": (probs, labels),
        "probs, one-hot": (probs, onehot),
        "logits, one-hot": (logits, onehot),
        "probs, soft": (probs, soft),
        "logits, soft": (logits, soft),
        "logits, two-channel labels": (logits, labels.repeat(1, 2, 1, 1, 1)),
        "logits, labels out of range": (logits, labels + 3),
        "logits, fractional labels": (logits, labels.float() + 0.5),
        "logits, one-hot times 2": (logits, onehot * 2),
        "logits, multi-hot": (logits, torch.ones(shape)),
        "one channel, labels": (logits[:, :1], labels.clamp_max(1)),
        "one channel, soft": (logits[:, :1], soft[:, :1]),
        "integer input": (labels.repeat(1, 3, 1, 1, 1), labels),
        "logits, NaN target": (logits, torch.full_like(onehot, float("nan"))),
        "logits, wrong spatial shape": (logits, labels[..., :3]),
    }


LOSSES = [registry.load(name) for name in registry.names()] + [L.DeepSupervisionLoss]
REQUIRED = {
    L.DeepSupervisionLoss: {"loss": L.DiceLoss(softmax=True, to_onehot_y=True)},
    L.GeneralizedWassersteinDiceLoss: {"dist_matrix": [[0.0, 1.0, 1.0], [1.0, 0.0, 0.5], [1.0, 0.5, 0.0]]},
    L.NACLLoss: {"classes": 3, "dim": 3},
}


def _messages(cls) -> list[tuple[str, str]]:
    found = []
    for config in _configs(cls):
        try:
            loss = cls(**REQUIRED.get(cls, {}), **config)
        except MedlossError as exc:
            found.append((f"{config}", str(exc)))
            continue
        for case, (x, t) in _bad_inputs().items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    loss(x, t)
                except MedlossError as exc:
                    found.append((f"{config} {case}", str(exc)))
    return found


@pytest.mark.usefixtures("table_engine")
def test_the_provocations_reach_the_advice():
    """The bad inputs do provoke advice (a guard: a provocation set that raises nothing would test nothing)."""
    advised = [opts for cls in (L.DiceLoss, L.BoundaryLoss, L.TopKLoss, L.CrossEntropyLoss)
               for _, message in _messages(cls) if (opts := advised_options(message))]
    assert len(advised) >= 8
    assert {"soft_label", "to_onehot_y", "softmax", "ignore_index"} <= set().union(*advised)


@pytest.mark.usefixtures("table_engine")
@pytest.mark.parametrize("cls", LOSSES, ids=lambda c: c.__name__)
def test_every_advised_option_exists(cls):
    params = _parameters(cls)
    wrong = [f"{where}: {message}" for where, message in _messages(cls)
             if advised_options(message) - params]
    assert not wrong, f"{cls.__name__} advises options it does not have:\n" + "\n".join(wrong)


@pytest.mark.parametrize("cls", [L.CrossEntropyLoss, L.TopKLoss, L.DiceTopKLoss])
def test_cross_entropy_layout_check_keeps_the_typed_error_for_a_non_tensor_target(cls):
    from medloss.errors import OptionTypeError

    with pytest.raises(OptionTypeError, match=r"`target` must be a torch.Tensor"):
        cls()(torch.randn(1, 3, 4, 4), [[1, 2]])
