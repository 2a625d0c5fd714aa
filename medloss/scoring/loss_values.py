"""The value of a registered medloss loss on saved probability / logit volumes against label volumes.

Used by ``medloss score --loss NAME PROB REF``: the loss is built from the registry with the label-map options a
saved volume needs (``to_onehot_y=True`` where the loss has it) plus the user's options, and evaluated with
``reduction="none"`` where that gives per-class values (region losses: one row per label), else once per case
(label ``"all"``). Imports torch (only this module of :mod:`medloss.scoring` does).
"""
from __future__ import annotations

import json

import numpy as np

from medloss.errors import InvalidOptionError, OptionTypeError, did_you_mean

ACTIVATIONS = ("none", "softmax", "sigmoid")


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


def build_loss(name: str, activation: str, options: dict):
    """Instantiate a registered loss for label-map targets; unknown options raise a typed error naming them."""
    from medloss import registry

    if activation not in ACTIVATIONS:
        raise InvalidOptionError(f"`--activation` must be one of {list(ACTIVATIONS)}, got {activation!r}.")
    info = registry.get(name)
    params = registry.defaults(info.name)
    kwargs: dict = {}
    if "to_onehot_y" in params:
        kwargs["to_onehot_y"] = True
    if activation == "softmax":
        kwargs["use_softmax" if "use_softmax" in params else "softmax"] = True
    elif activation == "sigmoid" and "sigmoid" in params:
        kwargs["sigmoid"] = True
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise InvalidOptionError(f"{info.name} has no option(s) {unknown}; its options: {sorted(params)}."
                                 f"{did_you_mean(unknown[0], params)}")
    kwargs.update(options)
    per_class = info.family == "region" and info.name != "GeneralizedDiceLoss"
    if "reduction" in params:
        kwargs["reduction"] = "none" if per_class else kwargs.get("reduction", "mean")
    try:
        return registry.load(info.name)(**kwargs), per_class
    except TypeError as exc:
        raise OptionTypeError(f"cannot build {info.name} with {kwargs}: {exc}") from exc


def loss_rows(prob: np.ndarray, ref: np.ndarray, loss, per_class: bool, *, case: str, name: str) -> list[dict]:
    """Rows ``{case, label, loss, value}`` for one case: ``prob`` (C, X, Y, Z), ``ref`` (X, Y, Z) integer labels."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(prob, dtype=np.float32))[None]
    y = torch.from_numpy(np.ascontiguousarray(ref).astype(np.int64))[None, None]
    with torch.no_grad():
        value = loss(x, y).double()
    if per_class:
        first = 0 if getattr(loss, "include_background", True) or x.shape[1] == 1 else 1
        values = value.reshape(-1).tolist()
        return [{"case": case, "label": first + i, "loss": name, "value": v} for i, v in enumerate(values)]
    return [{"case": case, "label": "all", "loss": name, "value": float(value.mean())}]
