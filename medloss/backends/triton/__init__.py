"""Triton kernels for the loss tables: the ``triton`` engine of the table operator (CUDA). This module holds the
softmax label-map side and the engine entries; :mod:`medloss.backends.triton.sigmoid` the sigmoid side.

They compute exactly what :func:`medloss.backends.eager.softmax.forward_tables` computes (the formulas are in that
module's docstring): for logits x (B, C, N), labels y (B, 1, N), validity v and p = softmax(x)::

    TP_c = sum_n v p_c [y = c]    PRED_c = sum_n v p_c^e    TARGET_c = sum_n v [y = c]    VOX_c = sum_n v phi(l) [y = c]

with l = log p_y (optionally clamped) and phi the voxel term (cross-entropy -l, focal -(1 - p)^gamma l, explog
(-l)^gamma), or the Wasserstein error phi = sum_c M[y, c] p_c under a cost matrix M (loaded as each voxel's label
row; only the variant with that term compiles it). Forward reads logits and labels once: each program walks tiles of
BLOCK_C x BLOCK_N logits of one sample (grid-stride, :data:`PROGRAMS` programs in all), recomputes the softmax in
registers, accumulates its tables there and writes one partial row; one finalize program sums the partials (at most
a few hundred kB) in float64 in a fixed order into the packed (B, ROWS, C) result that the operator's outputs view.
There are no float atomics, so results are deterministic run to run (``torch.use_deterministic_algorithms(True)``
needs nothing else).
Backward reads logits and labels again and writes the gradient (in the logits' dtype)::

    dx_c = p_c (g_c - K) - p_c s   (c != y)        dx_y = p_y (g_y - K) + s q
    g_c = v e k_c p_c^(e-1)    K = sum_c g_c p_c    s = v (p_y a_y + u_y dphi/dl)    q = 1 - p_y = sum_{c != y} p_c

(k, a, u: the incoming gradients of PRED, TP and VOX). ``q`` is summed from the other classes and l near p_y = 1 is
taken as -log1p(sum_{c != y} e^(x_c - x_y)), so neither loses precision where the network is confident.

Logits may be float16, bfloat16 (read natively, no float32 copy: autocast costs nothing extra), float32 or
float64 (computed in float64); labels any integer dtype or float holding integers. Invalid input (non-finite
logits, labels outside [0, C) other than ``ignore_index``, non-integer float labels) is flagged per program into a
small status tensor whose last word ORs them all. With ``options.check`` that word is read immediately on CPU
tensors (the interpreter) and, on CUDA, without a host sync at a later call (:mod:`medloss.backends.triton.status`);
``check_input=False`` reads nothing.

The kernels use only Triton features present in Triton 3.6 (torch 2.11) and 3.9 (torch 2.13). On a CPU they run
under the Triton interpreter (``TRITON_INTERPRET=1``), which is how the test suite checks them without a GPU.
"""
from __future__ import annotations

import functools
import importlib.util
import os

import torch

from medloss import checks

__all__ = ["available", "interpreted", "takes", "forward", "backward", "STATUS_NONFINITE", "STATUS_LABEL",
           "STATUS_SOFT"]

_VOXEL = {None: 0, "ce": 1, "focal": 2, "explog": 3, "wasserstein": 4}
STATUS_NONFINITE, STATUS_LABEL, STATUS_SOFT = 1, 2, 4  # status bits (STATUS_SOFT: fractional dense target)
ROWS = 6  # the packed result (B, ROWS, C): TP, PRED, TARGET, VOXELS (column 0), VPOS, VNEG
_LOGITS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
LABELS = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.float32, torch.float64)


@functools.cache
def available() -> bool:
    """True when Triton is installed (the kernels can run on CUDA, or on CPU under ``TRITON_INTERPRET=1``)."""
    return importlib.util.find_spec("triton") is not None


@functools.cache
def kernels(kind: str = "softmax"):
    """The kernel module of ``kind`` (``"softmax"``, ``"sigmoid"`` or ``"loss"``: the fused losses' finalize
    kernel), imported on first use."""
    if kind == "loss":
        from medloss.backends.triton import _loss_kernels

        return _loss_kernels
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


#: warps per program of the table kernels: with 4 warps (32 tile elements per thread) the sigmoid focal backward
#: spilled on sm_90 and the softmax kernels held 100-140 registers; with 8 none spills (benchmarks/README.md)
WARPS = 8


#: programs of a forward pass in all (per sample: PROGRAMS // B): each sums its share of the tiles in registers
#: (grid-stride), so the partial tables stay small whatever the volume, and a few waves keep every SM busy
PROGRAMS = 1024


def forward_programs(nblk: int, batch: int) -> int:
    """Programs per sample of a forward pass over ``nblk`` tiles per sample."""
    return max(1, min(nblk, PROGRAMS // batch))


def _capped(num_classes: int, options, dtype: torch.dtype) -> bool:
    """Whether a launch's forward kernel runs with at most 128 registers (:func:`launch_options`) on a halved tile
    (:func:`blocks`): a logarithmic voxel term (cross-entropy, focal, explog, BCE) on float64 logits or on half
    precision with more than 8 classes, and the Wasserstein term on float64 or on float32 with more than 8 classes.
    ptxas allocates these forward kernels at about 128 registers and, left to itself, fits them into 128 or 80 with
    4-48 B of spill stores."""
    if options is None or options.voxel_term is None:
        return False
    if options.voxel_term == "wasserstein":
        return dtype == torch.float64 or (dtype == torch.float32 and num_classes > 8)
    return dtype == torch.float64 or (dtype in (torch.float16, torch.bfloat16) and num_classes > 8)


def blocks(num_classes: int, options=None, dtype: torch.dtype = torch.float32) -> tuple[int, int]:
    """(BLOCK_N, BLOCK_C) of the table kernels: 4096 tile elements per program for float32 logits, 2048 for half
    precision (the conversions hold registers) and 1024 for float64 (two registers per value), halved again for a
    sigmoid voxel term (BCE and focal keep the most values alive per element), for the Wasserstein term on float32
    logits (its gathered cost rows are a second tile), and halved for the softmax launches that
    :func:`launch_options` caps at 128 registers (:func:`_capped`; at their previous tile they need 130-190): at
    8 warps ptxas compiles every variant for sm_90 without spilling (benchmarks/triton_resources.py)."""
    block_c = max(2, 1 << (num_classes - 1).bit_length())
    heavy = options is not None and options.voxel_term is not None and (
        options.activation == "sigmoid" or (options.voxel_term == "wasserstein" and dtype == torch.float32))
    # a capped launch halves the tile of its kind (the sigmoid voxel terms' is halved already)
    capped = _capped(num_classes, options, dtype) and options.activation != "sigmoid"
    elements = {torch.float32: 4096, torch.float64: 1024}.get(dtype, 2048) >> (int(heavy) + int(capped))
    block_n = max(16, min(1024, elements // block_c))
    return block_n, block_c


def launch_options(num_classes: int, options, dtype: torch.dtype, forward: bool) -> dict:
    """Compile options of a table kernel launch: :data:`WARPS` warps, and for the forward kernels of the launches
    that :func:`_capped` names a cap of 128 registers per thread (``maxnreg``, in Triton 3.6 and 3.9). Left to
    itself ptxas (12.8 under Triton 3.6, 13.x under 3.9) gives these 128 or 80 registers with 4-48 B of spill
    stores, or 130-190 registers (one program per SM); with the cap and the halved tile it fits them in 76-128
    registers without a spill, two programs per SM. benchmarks/triton_resources.py compiles with these options."""
    return dict(num_warps=WARPS, maxnreg=128) if forward and _capped(num_classes, options, dtype) else dict(
        num_warps=WARPS)


@functools.lru_cache(maxsize=256)
def _plan(shape: tuple, dtype: torch.dtype, float_labels: bool, options, device: torch.device) -> tuple:
    """(grid, scalar arguments, constexpr arguments) of a softmax launch, worked out once per shape and options:
    a training step repeats them, and the host time of a step is what this engine is short of."""
    batch, num_classes, n = shape
    block_n, block_c = blocks(num_classes, options, dtype)
    acc = kernels().tl.float64 if dtype == torch.float64 else kernels().tl.float32
    lo, hi = max(float(options.log_clamp[0]), -1e30), min(float(options.log_clamp[1]), 1e30)  # finite in any ACC
    acc_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    par = params((lo, hi, float(options.gamma)), acc_dtype, device)
    # the Wasserstein term's cost matrix, row by row in ACC (the parameters stand in for it elsewhere, never read)
    matrix = par if options.matrix is None else params(sum(options.matrix, ()), acc_dtype, device)
    grid = (-(-n // block_n), batch)
    grid_forward = (forward_programs(grid[0], batch), batch)
    ignore = int(options.ignore_index) if options.ignore_index is not None else 0
    common = dict(HAS_IGNORE=options.ignore_index is not None, FLOAT_LABELS=float_labels,
                  SQUARED=bool(options.squared), VOXEL=_VOXEL[options.voxel_term], BLOCK_N=block_n,
                  BLOCK_C=block_c, ACC=acc)
    launch = (launch_options(num_classes, options, dtype, True), launch_options(num_classes, options, dtype, False))
    return grid, grid_forward, (n, num_classes, ignore, par, matrix), common, launch


def _launch(backward: bool, logits, labels, options, out, status=None) -> None:
    grid, grid_forward, (n, num_classes, ignore, par, matrix), common, (fwd, bwd) = _plan(
        tuple(logits.shape), logits.dtype, labels.dtype.is_floating_point, options, logits.device)
    k = kernels()
    if backward:
        grads, grad = out
        ptrs, strides, has = coefficient_args(logits, grads)
        k._backward_kernel[grid](logits, labels, *ptrs, grad, n, num_classes, ignore, par, matrix, *strides, **common,
                                 **bwd, HAS_K=has[0], HAS_A=has[1], HAS_U=has[2])
    else:
        k._forward_kernel[grid_forward](logits, labels, out, status, n, num_classes, grid[0], grid_forward[0], ignore,
                                        par, matrix, **common, **fwd)


def coefficient_args(logits, grads) -> tuple[list, list, list]:
    """The backward kernels' view of the incoming (B, C) gradients: their tensors (the logits stand in for an
    absent one, never read), strides (any: expanded gradients are read as they are) and presence flags."""
    ptrs, strides, has = [], [], []
    for g in grads:
        ptrs.append(logits if g is None else g)
        strides += [0, 0] if g is None else list(g.stride())
        has.append(g is not None)
    return ptrs, strides, has


def check(status: torch.Tensor, logits: torch.Tensor, options, immediate) -> None:
    """The checks of a forward pass: on CUDA the status word goes to :mod:`medloss.backends.triton.status` (read at
    a later call, no host sync; skipped during CUDA graph capture); elsewhere ``immediate()`` reads it now."""
    if not logits.is_cuda:
        immediate()
        return
    if torch.cuda.is_current_stream_capturing():
        return
    from medloss.backends.triton import status as watch

    mask = STATUS_NONFINITE | STATUS_LABEL | (STATUS_SOFT if options.dense and not options.soft else 0)
    classes = max(logits.shape[1], 2) if options.activation == "sigmoid" else logits.shape[1]
    watch.watch_for(logits.device).submit(status[-1:], dict(mask=mask, classes=classes,
                                                            ignore_index=options.ignore_index, dense=options.dense))


def raise_for_status(status: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, ignore_index) -> None:
    """Read the forward pass's status flags (one host sync) and raise the eager path's typed error."""
    flags = int(status[-1])
    if flags & STATUS_NONFINITE:
        checks.check_finite(logits)
    if flags & STATUS_LABEL:
        checks.check_labels(labels, logits.shape[1], ignore_index)
    if flags:
        raise RuntimeError(f"medloss Triton kernel flagged invalid input (status {flags}) that the eager checks "
                           "accept (please report this).")


def forward(logits, labels, options):
    """Engine entry (see :mod:`medloss.backends.op`): (TP, PRED, TARGET, VOXELS, VPOS, VNEG)."""
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


def packed_tables(logits, options, launch):
    """Run a forward kernel through ``launch(part, status)`` (per-program partial tables and status words; programs
    per sample: :func:`forward_programs`), then the finalize kernel: returns the packed (B, ROWS, C) tables in the
    compute dtype (partial sums added in float64, in a fixed order) and the status words, whose last entry ORs them
    all. Nothing is created on the host."""
    batch, num_classes, n = logits.shape
    block_n, block_c = blocks(num_classes, options, logits.dtype)
    dtype = checks.compute_dtype(logits)
    nprog = forward_programs(-(-n // block_n), batch)
    part = torch.empty(batch, nprog, ROWS, block_c, dtype=dtype, device=logits.device)
    status = torch.empty(batch * nprog + 1, dtype=torch.int32, device=logits.device)
    launch(part, status)
    out = torch.empty(batch, ROWS, num_classes, dtype=dtype, device=logits.device)
    chunk = max(1, min(64, 512 // block_c))
    kernels()._finalize_kernel[(1,)](part, status, out, batch, num_classes, nprog, BLOCK_C=block_c, CHUNK=chunk)
    return out, status


def unpack(out: torch.Tensor) -> tuple:
    """The operator's six outputs as views of the packed (B, ROWS, C) result."""
    tp, pred, target, voxels, vpos, vneg = out.unbind(1)
    return tp, pred, target, voxels[:, :1], vpos, vneg


def _softmax_forward(logits, labels, options):
    """(TP, PRED, TARGET, VOXELS, VOX, 0): (B, C) tables and (B, 1) VOXELS in the compute dtype (float64 for
    float64 logits, else float32), views of one packed result. With ``options.check`` the status word is read once
    (a host sync) and invalid input raises the eager path's typed error; without it nothing is read back: invalid
    labels count nowhere and non-finite logits propagate (NaN tables)."""
    labels = labels.contiguous()
    out, status = packed_tables(logits, options, lambda part, st: _launch(False, logits, labels, options, part, st))
    if options.check:
        check(status, logits, options, lambda: raise_for_status(status, logits, labels, options.ignore_index))
    return unpack(out)


def _softmax_backward(logits, labels, options, grad_tp, grad_pred, grad_vox):
    """dL/dlogits (logits' dtype) from the (B, C) gradients of TP, PRED and VOX (None: no gradient)."""
    grad = torch.empty_like(logits, memory_format=torch.contiguous_format)
    _launch(True, logits, labels.contiguous(), options, ((grad_pred, grad_tp, grad_vox), grad))
    return grad
