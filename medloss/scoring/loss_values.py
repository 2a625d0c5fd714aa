"""The value of a registered medloss loss on saved probability / logit volumes against label volumes.

Used by ``medloss score --loss NAME PROB REF``: the loss is built from the registry with the label-map options a
saved volume needs (``to_onehot_y=True`` where the loss has it) plus the user's options, and evaluated with
``reduction="none"`` where that gives per-class values (region and distance losses: one row per class), else once
per case (label ``"all"``). Imports torch (only this module of :mod:`medloss.scoring` does).

``activation`` means the same for every loss:

* ``"softmax"`` / ``"sigmoid"``: PRED holds logits, and every term of the loss sees that activation of them (the
  loss's activation flag is set; a term on logits gets them as they are). A loss whose logit term applies the
  other activation is refused (e.g. ``CrossEntropyLoss`` with ``"sigmoid"``).
* ``"none"``: PRED holds probabilities. Terms on probabilities get them as they are; a loss with a term on logits
  (cross-entropy, top-k, focal, BCE, Lovász hinge and their compounds, :data:`LOGIT_TERMS`) is given the logits
  whose activation gives PRED back, and runs with that activation for every term: ``log p`` for softmax
  probabilities (``softmax(log p) = p``), ``log p - log(1 - p)`` for sigmoid ones (``sigmoid`` of it is ``p``).
  Each logarithm is clamped at -100, as ``torch.nn.BCELoss`` does, so a true class of probability 0 costs 100 nats
  instead of inf. Softmax probabilities must sum to 1 over the channels (within 1e-3); a loss whose logit term is a
  softmax refuses channels that do not. Which form a case got is in its rows (``"logits"``).
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from medloss.errors import InputRangeError, InvalidOptionError, OptionTypeError, did_you_mean

if TYPE_CHECKING:
    import torch

ACTIVATIONS = ("none", "softmax", "sigmoid")
# Losses with a term on logits, and the activation that term applies: "softmax", "sigmoid", "channels" (softmax
# cross-entropy for C >= 2 channels, BCE for one) or "either" (the focal term follows the softmax/sigmoid flag).
# Every other registered loss takes probabilities, or logits through its activation flags (a test checks, for every
# registered loss, that probabilities with "none" and their logits with "softmax" give the same value).
LOGIT_TERMS = {
    "CrossEntropyLoss": "softmax", "TopKLoss": "softmax", "DiceTopKLoss": "softmax",
    "BCELoss": "sigmoid", "BCEDiceLoss": "sigmoid", "LovaszHingeLoss": "sigmoid",
    "DiceCELoss": "channels", "SkeletonRecallLoss": "channels",
    "FocalLoss": "either", "DiceFocalLoss": "either", "GeneralizedDiceFocalLoss": "either",
    "GeneralizedWassersteinDiceLoss": "softmax", "NACLLoss": "softmax",
}
# losses whose value depends on the logits themselves, not only on their softmax (NACL's penalty pulls the raw
# logits towards the neighbourhood's class mix): probabilities cannot stand in for them
RAW_LOGITS = ("NACLLoss",)
# region losses that pool their classes into one value per case
POOLED_REGION = ("GeneralizedDiceLoss", "GeneralizedWassersteinDiceLoss")
LOG_FLOOR = -100.0  # torch.nn.BCELoss's clamp of log(p)
SUM_TOLERANCE = 1e-3


def parse_loss_options(items: tuple[str, ...] | list[str]) -> dict:
    """``["alpha=0.3", "include_background=false"]`` -> {"alpha": 0.3, "include_background": False} (JSON values,
    bare words kept as strings)."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise InvalidOptionError(f"`--loss-option` must look like KEY=VALUE, got {item!r}.")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


@dataclass
class LossScorer:
    """A registered loss set up for saved volumes; :func:`loss_rows` evaluates it (one instance per activation
    form the cases need, built on first use)."""

    name: str
    activation: str
    options: dict
    params: dict
    kind: str | None
    per_class: bool
    reduction: str
    activations: tuple[str, ...]  # the registry's: the activations set by the constructor flag of that name
    _built: dict = field(default_factory=dict)
    warned: list[str] = field(default_factory=list)  # the loss's warnings, each once

    def module(self, form: str | None) -> torch.nn.Module:
        """The loss instance whose activation flags match ``form`` (None: no activation)."""
        if form not in self._built:
            self._built[form] = _instantiate(self, form)
        return self._built[form]

    def form_for(self, channels: int, softmax_probabilities: bool | None) -> str | None:
        """The activation every term applies for a case with ``channels`` channels (see the module docstring)."""
        kind = self.kind
        if kind == "channels":
            kind = "softmax" if channels >= 2 else "sigmoid"
        if self.activation != "none":
            if kind in ("softmax", "sigmoid") and kind != self.activation:
                raise _mismatch(self.name, kind, self.activation, channels if self.kind == "channels" else None)
            return self.activation
        if kind == "either":
            return "softmax" if channels >= 2 and softmax_probabilities else "sigmoid"
        if kind == "softmax" and channels >= 2 and not softmax_probabilities:  # one channel: the loss's own error
            raise InputRangeError(
                f"PRED's {channels} channel(s) do not sum to 1 at every voxel, so they are not the softmax "
                f"probabilities {self.name}'s cross-entropy needs; give the logits with `--activation softmax`.")
        return kind


def _mismatch(name: str, kind: str, activation: str, channels: int | None) -> InvalidOptionError:
    where = f" to {channels} channels" if channels is not None else ""
    return InvalidOptionError(f"{name} applies a {kind}{where} in its cross-entropy/logit term, so "
                              f"`--activation {activation}` would not hold for every term: give {kind} logits with "
                              f"`--activation {kind}`, or probabilities with `--activation none`.")


def build_loss(name: str, activation: str, options: dict) -> tuple[LossScorer, bool]:
    """Check a registered loss and the options for label-map targets; unknown options raise a typed error naming
    them. Returns the scorer and whether it gives one value per class."""
    from medloss import registry

    if activation not in ACTIVATIONS:
        raise InvalidOptionError(f"`--activation` must be one of {list(ACTIVATIONS)}, got {activation!r}.")
    info = registry.get(name)
    params = registry.defaults(info.name)
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise InvalidOptionError(f"{info.name} has no option(s) {unknown}; its options: {sorted(params)}."
                                 f"{did_you_mean(unknown[0], params)}")
    flags = sorted(set(options) & set(registry.ACTIVATION_OPTIONS))
    if flags:
        raise InvalidOptionError(f"set the activation with `--activation none|softmax|sigmoid`, not with "
                                 f"`--loss-option {flags[0]}=...` (it must mean the same for every term).")
    kind = LOGIT_TERMS.get(info.name)
    if info.name in RAW_LOGITS and activation == "none":
        raise InvalidOptionError(f"{info.name} scores the logits themselves (not only their softmax), so it cannot be "
                                 "computed from probabilities: give the network's logits with `--activation softmax`.")
    if kind in ("softmax", "sigmoid") and activation not in ("none", kind):
        raise _mismatch(info.name, kind, activation, None)
    if kind is None and activation != "none" and activation not in info.activations:
        raise InvalidOptionError(f"{info.name} has no `{activation}` option: give probabilities with "
                                 "`--activation none`.")
    per_class = info.family in ("region", "distance") and info.name not in POOLED_REGION
    reduction = "none" if per_class else options.get("reduction", "mean")
    scorer = LossScorer(info.name, activation, options, params, kind, per_class, reduction, info.activations)
    if kind in ("either", "channels"):
        forms: tuple[str | None, ...] = ("softmax", "sigmoid") if activation == "none" else (activation,)
    else:
        forms = (kind if activation == "none" else activation,)
    for form in forms:
        scorer.module(form)  # bad option values fail here, before any case is read
    return scorer, per_class


def _instantiate(scorer: LossScorer, form: str | None) -> torch.nn.Module:
    """The loss with label-map targets, the activation ``form`` set by its registered flag, and the user's options."""
    from medloss import registry

    kwargs: dict = {}
    if "to_onehot_y" in scorer.params:
        kwargs["to_onehot_y"] = True
    if form in scorer.activations:
        kwargs[form] = True
    kwargs.update(scorer.options)
    if "reduction" in scorer.params:
        kwargs["reduction"] = scorer.reduction
    try:
        return registry.load(scorer.name)(**kwargs)
    except TypeError as exc:
        raise OptionTypeError(f"cannot build {scorer.name} with {kwargs}: {exc}") from exc


def _logits_of(prob: torch.Tensor, form: str | None) -> torch.Tensor:
    """The logits whose ``form`` activation gives ``prob`` back, logarithms clamped at :data:`LOG_FLOOR`."""
    import torch

    p = prob.double()
    log_p = torch.log(p).clamp_min(LOG_FLOOR)
    if form == "softmax":
        return log_p.float()
    return (log_p - torch.log1p(-p).clamp_min(LOG_FLOOR)).float()


def _check_probabilities(x: torch.Tensor) -> bool:
    """Raise unless ``x`` (1, C, *S) holds probabilities; return whether its channels sum to 1 (softmax)."""
    lo, hi = float(x.min()), float(x.max())
    if not (lo >= 0.0 and hi <= 1.0):  # NaN fails both
        raise InputRangeError(f"PRED holds values outside [0, 1] (min {lo:.4g}, max {hi:.4g}) but `--activation none` "
                              "says probabilities: for logits pass `--activation softmax` (or `sigmoid`).")
    if x.shape[1] < 2 or x.numel() == 0:
        return False
    return float((x.double().sum(dim=1) - 1.0).abs().max()) <= SUM_TOLERANCE


def loss_rows(prob: np.ndarray, ref: np.ndarray, loss: LossScorer, per_class: bool, *, case: str,
              name: str) -> list[dict]:
    """Rows ``{case, label, loss, value, logits}`` for one case: ``prob`` (C, X, Y, Z), ``ref`` (X, Y, Z) labels.

    ``logits`` says what a term on logits got: ``"given"`` (PRED, with ``--activation softmax|sigmoid``),
    ``"log(p)"`` or ``"log(p/(1-p))"`` (PRED's probabilities turned into logits), or None (the loss takes none).
    """
    import torch

    x = torch.from_numpy(np.ascontiguousarray(prob, dtype=np.float32))[None]
    y = torch.from_numpy(np.ascontiguousarray(ref).astype(np.int64))[None, None]
    softmax_probabilities = _check_probabilities(x) if loss.activation == "none" else None
    form = loss.form_for(x.shape[1], softmax_probabilities) if loss.kind else (
        None if loss.activation == "none" else loss.activation)
    logits = None
    if loss.kind and loss.activation == "none":
        x = _logits_of(x, form)
        logits = "log(p)" if form == "softmax" else "log(p/(1-p))"
    elif loss.kind:
        logits = "given"
    module = loss.module(form)
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = module(x, y).double()
    for w in caught:
        text = " ".join(str(w.message).split())
        if text not in loss.warned:
            loss.warned.append(text)
    if per_class:
        first = 0 if getattr(module, "include_background", True) or x.shape[1] == 1 else 1
        values = value.reshape(-1).tolist()
        return [{"case": case, "label": first + i, "loss": name, "value": v, "logits": logits}
                for i, v in enumerate(values)]
    return [{"case": case, "label": "all", "loss": name, "value": float(value.mean()), "logits": logits}]
