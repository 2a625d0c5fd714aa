"""Triton kernels for the loss tables: the ``triton`` engine of the table operator (CUDA). This module holds the
softmax label-map side and the engine entries; :mod:`medloss.backends.triton.sigmoid` the sigmoid side.

They compute exactly what :func:`medloss.backends.eager.softmax.forward_tables` computes (the formulas are in that
module's docstring): for logits x (B, C, N), labels y (B, 1, N), validity v and p = softmax(x)::

    TP_c = sum_n v p_c [y = c]    PRED_c = sum_n v p_c^e    TARGET_c = sum_n v [y = c]    VOX_c = sum_n v phi(l) [y = c]

with l = log p_y (optionally clamped) and phi the voxel term (cross-entropy -l, focal -(1 - p)^gamma l, explog
(-l)^gamma). Forward reads logits and labels once: each program takes a tile of BLOCK_C x BLOCK_N logits of one
sample, recomputes the softmax in registers and writes its partial tables; the partials (a few hundred kB) are
summed in float64 by torch. There are no float atomics, so results are deterministic run to run
(``torch.use_deterministic_algorithms(True)`` needs nothing else). Backward reads logits and labels again and
writes the gradient (in the logits' dtype)::

    dx_c = p_c (g_c - K) - p_c s   (c != y)        dx_y = p_y (g_y - K) + s q
    g_c = v e k_c p_c^(e-1)    K = sum_c g_c p_c    s = v (p_y a_y + u_y dphi/dl)    q = 1 - p_y = sum_{c != y} p_c

(k, a, u: the incoming gradients of PRED, TP and VOX). ``q`` is summed from the other classes and l near p_y = 1 is
taken as -log1p(sum_{c != y} e^(x_c - x_y)), so neither loses precision where the network is confident.

Logits may be float16, bfloat16 (read natively, no float32 copy: autocast costs nothing extra), float32 or
float64 (computed in float64); labels any integer dtype or float holding integers. Invalid input (non-finite
logits, labels outside [0, C) other than ``ignore_index``, non-integer float labels) is flagged per program into a
small status tensor; :func:`forward` reads it once after the pass when ``options.check`` is set, so
``check_input=False`` has no host sync.

The kernels use only Triton features present in Triton 3.6 (torch 2.11) and 3.9 (torch 2.13). On a CPU they run
under the Triton interpreter (``TRITON_INTERPRET=1``), which is how the test suite checks them without a GPU.
"""
from __future__ import annotations

import functools
import importlib.util
import os

import torch

from medloss import backends
from medloss.functional import prepare


__all__ = ["available", "interpreted", "takes", "forward", "backward", "STATUS_NONFINITE", "STATUS_LABEL",
           "STATUS_SOFT"]

_VOXEL = {None: 0, "ce": 1, "focal": 2, "explog": 3}
STATUS_NONFINITE, STATUS_LABEL, STATUS_SOFT = 1, 2, 4  # status bits (STATUS_SOFT: fractional dense target)
_LOGITS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
LABELS = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.float32, torch.float64)


@functools.cache
def available() -> bool:
    """True when Triton is installed (the kernels can run on CUDA, or on CPU under ``TRITON_INTERPRET=1``)."""
    return importlib.util.find_spec("triton") is not None


@functools.cache
def kernels(kind: str = "softmax"):
    """The kernel module of ``kind`` (``"softmax"`` or ``"sigmoid"``), imported on first use."""
    if kind == "sigmoid":
        from medloss.backends.triton import _sigmoid_kernels

        return _sigmoid_kernels
    from medloss.backends.triton import _kernels

    return _kernels


def device_ok(logits: torch.Tensor, target: object) -> bool:
    """What every kernel needs: Triton present, (B, C, N) contiguous non-empty logits of a float dtype on a CUDA
    device (or on the CPU under the interpreter), and a tensor target on the same device."""
    if not isinstance(target, torch.Tensor) or not available():
        return False
    device = logits.is_cuda if not interpreted() else logits.device.type in ("cpu", "cuda")
    return (device and target.device == logits.device and logits.dtype in _LOGITS and logits.dim() == 3
            and logits.numel() > 0 and logits.is_contiguous())


def interpreted() -> bool:
    """True when Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1`` before triton was imported)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def takes(logits: torch.Tensor, target: torch.Tensor, options) -> bool:
    """Whether the kernels take these inputs: :func:`device_ok`, and for softmax C >= 2 with a (B, 1, N) label map
    of a supported dtype (sigmoid: :func:`medloss.backends.triton.sigmoid.takes`)."""
    if options.activation == "sigmoid":
        from medloss.backends.triton import sigmoid

        return sigmoid.takes(logits, target, options)
    return device_ok(logits, target) and target.dtype in LABELS and logits.shape[1] > 1


@functools.lru_cache(maxsize=64)
def params(values: tuple, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The float options of a launch (clamp bounds, gamma) as a small tensor in the compute dtype: Triton passes
    Python floats as float32, which would round them for float64 logits. Cached, so a training step makes no
    host-to-device copy (and no synchronisation) after its first call; never written to."""
    return torch.tensor(values, dtype=dtype, device=device)


def blocks(num_classes: int) -> tuple[int, int]:
    block_c = max(2, 1 << (num_classes - 1).bit_length())
    block_n = max(16, min(1024, 4096 // block_c))
    return block_n, block_c


def _launch(backward: bool, logits, labels, options, out, status=None) -> None:
    ignore_index, gamma, log_clamp = options.ignore_index, options.gamma, options.log_clamp
    batch, num_classes, n = logits.shape
    block_n, block_c = blocks(num_classes)
    k = kernels()
    acc = k.tl.float64 if logits.dtype == torch.float64 else k.tl.float32
    lo, hi = max(float(log_clamp[0]), -1e30), min(float(log_clamp[1]), 1e30)  # finite in any ACC dtype
    par = params((lo, hi, float(gamma)), prepare.compute_dtype(logits), logits.device)
    grid = (-(-n // block_n), batch)
    common = dict(HAS_IGNORE=ignore_index is not None, FLOAT_LABELS=labels.dtype.is_floating_point,
                  SQUARED=bool(options.squared), VOXEL=_VOXEL[options.voxel_term], BLOCK_N=block_n, BLOCK_C=block_c, ACC=acc)
    ignore = int(ignore_index) if ignore_index is not None else 0
    if backward:
        coef, grad = out
        k._backward_kernel[grid](logits, labels, coef, grad, n, num_classes, ignore, par, **common)
    else:
        k._forward_kernel[grid](logits, labels, out, status, n, num_classes, grid[0], ignore, par, **common)


def raise_for_status(status: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, ignore_index) -> None:
    """Read the forward pass's status flags (one host sync) and raise the eager path's typed error."""
    flags = int(status.max()) if status.numel() else 0
    if flags & STATUS_NONFINITE:
        prepare.check_finite(logits)
    if flags & STATUS_LABEL:
        prepare.check_labels(labels, logits.shape[1], ignore_index)
    if flags:
        raise RuntimeError(f"medloss Triton kernel flagged invalid input (status {flags}) that the eager checks "
                           "accept (please report this).")


def forward(logits, labels, options):
    """Engine entry (see :mod:`medloss.functional.tables`): (TP, PRED, TARGET, VOXELS, VPOS, VNEG)."""
    if options.activation == "sigmoid":
        from medloss.backends.triton import sigmoid

        return sigmoid.forward(logits, labels, options)
    return _softmax_forward(logits, labels, options)


def backward(logits, labels, options, grad_tp, grad_pred, grad_vpos, grad_vneg):
    """Engine entry: dL/dlogits (logits' dtype) from the (B, C) gradients of TP, PRED, VPOS and VNEG."""
    if options.activation == "sigmoid":
        from medloss.backends.triton import sigmoid

        return sigmoid.backward(logits, labels, options, grad_tp, grad_pred, grad_vpos, grad_vneg)
    return _softmax_backward(logits, labels, options, grad_tp, grad_pred, grad_vpos)


def partial_tables(logits, rows: int, launch):
    """Run a forward kernel through ``launch(part, status)`` and sum its per-program partial tables: returns
    ((B, rows, BLOCK_C) sums in the compute dtype, reduced in float64; the (programs,) int32 status flags)."""
    batch, num_classes, n = logits.shape
    block_n, block_c = blocks(num_classes)
    dtype = prepare.compute_dtype(logits)
    part = torch.empty(batch, -(-n // block_n), rows, block_c, dtype=dtype, device=logits.device)
    status = torch.empty(part.shape[0] * part.shape[1], dtype=torch.int32, device=logits.device)
    launch(part, status)
    return part.sum(dim=1, dtype=torch.float64).to(dtype), status


def coefficients(logits, grads) -> torch.Tensor:
    """(B, len(grads), BLOCK_C) table of the incoming (B, C) gradients, zero-padded to the kernels' class tile."""
    batch, num_classes, _ = logits.shape
    coef = logits.new_zeros(batch, len(grads), blocks(num_classes)[1], dtype=prepare.compute_dtype(logits))
    coef[:, :, :num_classes] = torch.stack(grads, dim=1)
    return coef


def _softmax_forward(logits, labels, options):
    """(TP, PRED, TARGET, VOXELS, VOX, 0): (B, C) tables and (B, 1) VOXELS in the compute dtype (float64 for
    float64 logits, else float32). With ``options.check`` the status flags are read once (a host sync) and invalid
    input raises the eager path's typed error; without it nothing is read back: invalid labels count nowhere and
    non-finite logits propagate (NaN tables)."""
    labels = labels.contiguous()
    sums, status = partial_tables(logits, 4, lambda part, st: _launch(False, logits, labels, options, part, st))
    if options.check:
        raise_for_status(status, logits, labels, options.ignore_index)
    tp, pred, target, vox = (sums[:, i, :logits.shape[1]].contiguous() for i in range(4))
    return backends.softmax_result(tp, pred, target, vox)


def _softmax_backward(logits, labels, options, grad_tp, grad_pred, grad_vox):
    """dL/dlogits (logits' dtype) from the (B, C) gradients of TP, PRED and VOX."""
    coef = coefficients(logits, (grad_pred, grad_tp, grad_vox))
    grad = torch.empty_like(logits, memory_format=torch.contiguous_format)
    _launch(True, logits, labels.contiguous(), options, (coef, grad))
    return grad
