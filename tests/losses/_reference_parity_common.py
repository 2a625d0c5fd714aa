"""Shared cases, helpers and conventions of the reference-parity tests (``test_reference_parity_*.py``).

float64 inputs, random 3-D volumes of shape (2, 3, 6, 5, 4), several seeds, tolerance 1e-6. The references in
``tests/reference`` are written from the papers (validated against MONAI 1.6.1 / torch in
``tests/reference/test_references.py``), never from medloss code. When a value disagrees, the assertion message
lists which alternative conventions (if any) the medloss value matches, to make the disagreement precise.
"""
from __future__ import annotations

import warnings
import zlib

import numpy as np
import pytest
import torch

from medloss import losses as medloss_losses
from tests.reference._common import one_hot_np, sigmoid_np, softmax_np

SHAPE = (2, 3, 6, 5, 4)
B, C = SHAPE[:2]
TOL = 1e-6
IGNORE = 255
SEEDS = (0, 1, 2)

# Conventions on which the brief ("MONAI semantics") and the medloss implementation were found to differ.
# Each affected test follows the value chosen here; flip a value once the intended behaviour is decided
# (the reference supports both sides).
#   FOCAL_SOFTMAX_NO_BG  FocalLoss(use_softmax=True, include_background=False)
#       "monai":            MONAI 1.6.1 - drop channel 0 first, softmax over the kept channels,
#                           a scalar alpha is ignored (with a warning)
#       "activation_first": softmax over all C classes, then drop channel 0 (the region-loss order);
#                           a scalar alpha gives weight alpha to every kept (foreground) class
#   PER_CLASS_ARGS_NO_BG  FocalLoss per-class ``alpha`` and AnatomyNetLoss ``class_weights`` / ``class_mask``
#                        with include_background=False
#       "kept_channels":    C-1 values, one per kept channel (MONAI 1.6.1 for alpha; like ``weight`` of
#                           DiceLoss / FocalLoss)
#       "all_channels":     C values; entry 0 is dropped together with the background channel
#   GDL_PENALIZE_ALL_ABSENT  GeneralizedDiceLoss(empty="penalize") on a sample without any present class
#       "unit_weights":     brief - all class weights 1, i.e. 1 - s_nr / (sum_c P_c + s_dr)  (~1)
#       "mean_probability": the mean predicted probability over the kept classes and valid voxels
FOCAL_SOFTMAX_NO_BG = "activation_first"  # medloss decision: softmax over all classes (docs/monai-differences.md)
PER_CLASS_ARGS_NO_BG = "kept_channels"
GDL_PENALIZE_ALL_ABSENT = "mean_probability"  # medloss decision: soft FP rate (GeneralizedDiceLoss doc)


# ----------------------------------------------------------------------------- helpers
def node_seeds(request, n: int = 1):
    """Deterministic per-test seeds (different tests see different random volumes)."""
    base = zlib.crc32(request.node.name.encode()) % 10_000
    return tuple(base + k for k in range(n))


def get_cls(name: str):
    cls = getattr(medloss_losses, name, None)
    if cls is None:
        pytest.skip(f"medloss.losses.{name} not implemented yet")
    return cls


def make_case(seed: int, *, ignore=None, ignore_frac: float = 0.25, soft: bool = False, shape=SHAPE):
    """logits (float64), int labels (B,*S) (ignore voxels = ``ignore`` when it is out of range),
    valid mask (B,*S) or None, soft targets (B,C,*S) when ``soft``."""
    gen = torch.Generator().manual_seed(1000 + seed)
    nb, nc = shape[:2]
    logits = torch.randn(shape, generator=gen, dtype=torch.float64) * 2.0
    labels = torch.randint(0, nc, (nb,) + tuple(shape[2:]), generator=gen)
    valid = None
    if ignore is not None:
        if not 0 <= ignore < nc:
            drop = torch.rand(labels.shape, generator=gen) < ignore_frac
            labels = torch.where(drop, torch.full_like(labels, ignore), labels)
        valid = (labels != ignore).double()
    softt = None
    if soft:
        raw = torch.rand(shape, generator=gen, dtype=torch.float64) + 3.0 * torch.from_numpy(
            one_hot_np(labels.numpy(), nc))
        softt = raw / raw.sum(1, keepdim=True)
    return logits, labels, valid, softt


def activate(logits, act):
    if act == "softmax":
        return softmax_np(logits)
    if act == "sigmoid":
        return sigmoid_np(logits)
    return softmax_np(logits)  # "none": the test feeds probabilities directly


def net_input(logits, act):
    """What medloss receives: logits when an activation flag is set, probabilities otherwise."""
    if act == "none":
        return torch.softmax(logits, 1)
    return logits


def act_kwargs(act):
    return {"softmax": act == "softmax", "sigmoid": act == "sigmoid"}


def reduce_pc(per, reduction):
    per = np.asarray(per, dtype=np.float64)
    if reduction == "mean":
        return per.mean()
    if reduction == "sum":
        return per.sum()
    return per


def as_np(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def matches(actual, expected, tol=TOL) -> bool:
    a = as_np(actual).reshape(-1)
    e = as_np(expected).reshape(-1)
    return a.shape == e.shape and bool(np.allclose(a, e, rtol=tol, atol=tol, equal_nan=False))


def check(actual, expected, what: str, candidates: dict | None = None, tol=TOL):
    a = as_np(actual).reshape(-1)
    e = as_np(expected).reshape(-1)
    if matches(a, e, tol):
        return
    alt = []
    for name, fn in (candidates or {}).items():
        try:
            v = fn() if callable(fn) else fn
        except Exception as exc:  # pragma: no cover - diagnostics only
            alt.append(f"{name}: <error {exc!r}>")
            continue
        if matches(a, v, tol):
            alt.append(name)
    shown_a = np.array2string(a[:8], precision=10)
    shown_e = np.array2string(e[:8], precision=10)
    msg = (f"{what}: medloss {shown_a} (shape {as_np(actual).shape}) vs reference {shown_e} "
           f"(max abs diff {np.max(np.abs(a - e)) if a.shape == e.shape else 'shape mismatch'})")
    if candidates:
        msg += f"; medloss matches alternative conventions: {alt or 'none of ' + str(list(candidates))}"
    pytest.fail(msg)


def run(loss, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return loss(*args, **kw)


def region_inputs(seed, act, to_onehot_y, ignore, soft=False):
    logits, labels, valid, softt = make_case(seed, ignore=ignore, soft=soft)
    x = net_input(logits, act)
    if to_onehot_y:
        y = labels[:, None].double()  # MONAI passes float label maps
        g = one_hot_np(labels.numpy(), C, ignore_value=ignore)
    elif soft:
        y = softt
        g = softt.numpy()
    else:
        g = one_hot_np(labels.numpy(), C)
        y = torch.from_numpy(g.copy())
    p = activate(logits, act)
    return x, y, p, g, valid


def drop_bg(p, g, include_background):
    if include_background:
        return p, g
    return p[:, 1:], g[:, 1:]


ACTS = ("softmax", "sigmoid", "none")
REDUCTIONS = ("mean", "sum", "none")
# (to_onehot_y, ignore_index): ignore only makes sense with label maps here
TARGETS = ((True, None), (True, IGNORE), (False, None))

