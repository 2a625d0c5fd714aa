"""The compiled CPU kernel (``medloss/backends/cpu/_kernels.c``): the ``native`` engine of the table operator.

:func:`forward` / :func:`backward` (called by :mod:`medloss.functional.tables`) compute exactly what
:func:`medloss.backends.eager.softmax.forward_tables` / ``backward_grad`` compute (the math is in that module's
docstring) in two passes over the data: forward reads logits and labels once and keeps nothing; backward reads
them again, recomputes the softmax per block of 512 voxels in cache and writes the gradient. :class:`NativeSigmoidTables` does the same for sigmoid region tables and the BCE / sigmoid
focal sums. Peak extra memory of forward + backward is the gradient itself (1x the logits), and the input checks
(non-finite logits, labels outside [0, C) other than ``ignore_index``, non-integer float labels, binary targets) are
done inside the same pass, for free.

The kernel (plain C, no torch headers) is compiled when the package is installed (``pip install -e .`` runs
``setup.py``); it is optional. It runs on torch's own OpenMP thread pool when it can find the runtime torch loaded
(else on POSIX threads of its own, ``MEDLOSS_NATIVE_PTHREADS=1`` forces that). It takes CPU float32/float64
logits; everything else (CUDA tensors, fp16/bf16 logits, a missing build) takes the eager torch path, which
computes the same tables. ``MEDLOSS_NATIVE=0`` in the environment disables it (the tests compare both paths);
:func:`available` says whether it is built.
"""
from __future__ import annotations

import os

import torch

from medloss.functional import prepare

try:  # built at install time by setup.py; optional
    from medloss.backends.cpu import _kernels  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - exercised only on installs without a C compiler
    _kernels = None


def _openmp_runtime() -> str | None:
    """Path of the OpenMP runtime torch loaded (Linux), so the kernel can run on torch's own thread pool."""
    if not torch.backends.openmp.is_available():
        return None
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps}
    except OSError:
        return None
    runtimes = sorted(p for p in paths if os.path.basename(p).startswith(("libgomp", "libiomp5", "libomp"))
                      and ".so" in os.path.basename(p))
    torch_dir = os.path.dirname(torch.__file__)
    runtimes.sort(key=lambda p: not p.startswith(torch_dir))  # torch's own copy first
    return runtimes[0] if runtimes else None


OPENMP = False  # whether the kernel shares torch's OpenMP thread pool (else: its own POSIX threads)
if _kernels is not None and os.environ.get("MEDLOSS_NATIVE_PTHREADS") != "1":
    _runtime = _openmp_runtime()
    OPENMP = bool(_runtime) and bool(_kernels.use_openmp(_runtime))

__all__ = ["available", "enabled", "supports", "supports_sigmoid", "forward", "backward", "NativeSigmoidTables"]

_LOGITS = {torch.float32: 0, torch.float64: 1}
_LABELS = {
    torch.int64: 0, torch.int32: 1, torch.int16: 2, torch.uint8: 3, torch.int8: 4,
    torch.float32: 5, torch.float64: 6,
}
_VOXEL = {None: 0, "ce": 1, "focal": 2, "explog": 3}
_STATUS_NONFINITE, _STATUS_LABEL, _STATUS_NOMEM, _STATUS_SOFT = 1, 2, 3, 5


def available() -> bool:
    """True when the compiled kernel was built at install time and imports."""
    return _kernels is not None


def enabled() -> bool:
    """True when the kernel is available and not disabled with ``MEDLOSS_NATIVE=0``."""
    return _kernels is not None and os.environ.get("MEDLOSS_NATIVE", "1") != "0"


def _takes(logits: torch.Tensor, target: object) -> bool:
    """What both kernels need: enabled, CPU float32/float64 non-empty contiguous logits, a CPU tensor target."""
    return (
        enabled()
        and isinstance(target, torch.Tensor)
        and logits.device.type == "cpu"
        and target.device.type == "cpu"
        and logits.dtype in _LOGITS
        and logits.numel() > 0
        and logits.is_contiguous()
    )


def supports(logits: torch.Tensor, labels: torch.Tensor) -> bool:
    """Whether the kernel takes these (B, C, *S) logits and (B, 1, *S) labels (else use the eager path)."""
    return _takes(logits, labels) and labels.dtype in _LABELS and logits.shape[1] > 1


def supports_sigmoid(logits: torch.Tensor, target: torch.Tensor, *, to_onehot_y: bool) -> bool:
    """Whether the sigmoid kernel takes these (B, C, N) logits and this target: a label map (``to_onehot_y``) of a
    supported dtype, or a dense (B, C, N)-shaped binary float32/float64 target that needs no gradient."""
    if not _takes(logits, target):
        return False
    if to_onehot_y:
        return target.dtype in _LABELS
    return target.dtype in (torch.float32, torch.float64) and not target.requires_grad


def _raise_for_status(status: int, logits: torch.Tensor, label_check) -> None:
    """Turn a kernel status into the typed error the eager path raises (its own check words the message)."""
    if status == _STATUS_NONFINITE:
        prepare.check_finite(logits)  # raises InputRangeError with min/max in the message
    if status == _STATUS_LABEL:
        label_check()  # raises LabelValueError naming the value
    if status == _STATUS_NOMEM:
        raise MemoryError("medloss native kernel: could not allocate its per-thread scratch buffers.")
    if status != 0:
        raise RuntimeError(f"medloss native kernel failed with status {status} (please report this).")


def _tables(rows: int, batch: int, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Zeroed outputs of a forward call: (rows, B, C) float64 sums and (B, C) int64 counts."""
    return (torch.zeros(rows, batch, num_classes, dtype=torch.float64),
            torch.zeros(batch, num_classes, dtype=torch.int64))


def _coefficients(batch: int, num_classes: int, grads) -> torch.Tensor:
    """(len(grads), B, C) float64 table of incoming gradients (None -> 0) for a backward call."""
    coef = torch.zeros(len(grads), batch, num_classes, dtype=torch.float64)
    for i, g in enumerate(grads):
        if g is not None:
            coef[i] = g
    return coef


def _run(backward, logits, labels, options, out, out2):
    batch, num_classes = logits.shape[:2]
    ignore_index, log_clamp = options.ignore_index, options.log_clamp
    status = _kernels.softmax_tables(
        int(backward), logits.data_ptr(), _LOGITS[logits.dtype], labels.data_ptr(), _LABELS[labels.dtype],
        batch, num_classes, logits[0, 0].numel(), int(ignore_index is not None),
        int(ignore_index) if ignore_index is not None else 0, int(options.squared), _VOXEL[options.voxel_term],
        float(options.gamma), float(log_clamp[0]), float(log_clamp[1]), out.data_ptr(), out2.data_ptr(),
        torch.get_num_threads(),
    )
    _raise_for_status(status, logits, lambda: prepare.check_labels(labels, num_classes, ignore_index))


def forward(logits, labels, options):
    """Engine entry (see :mod:`medloss.functional.tables`): (TP, PRED, TARGET, VOX), each (B, C) in the compute
    dtype, for contiguous (B, C, N) logits and a (B, 1, N) label map of any integer or float dtype. The kernel checks
    logits and labels inside its pass whatever ``options.check`` says (it costs nothing there)."""
    batch, num_classes = logits.shape[:2]
    labels = labels.contiguous()
    sums, counts = _tables(3, batch, num_classes)
    _run(False, logits, labels, options, sums, counts)
    dtype = prepare.compute_dtype(logits)
    tp, pred, vox = sums.to(dtype).unbind(0)
    return tp, pred, counts.to(dtype), vox


def backward(logits, labels, options, grad_tp, grad_pred, grad_vox):
    """Engine entry: dL/dlogits from the (B, C) gradients of TP, PRED and VOX."""
    coef = _coefficients(*logits.shape[:2], (grad_pred, grad_tp, grad_vox))
    grad = torch.empty_like(logits, memory_format=torch.contiguous_format)
    _run(True, logits, labels.contiguous(), options, coef, grad)
    return grad


class SoftTarget(Exception):
    """Internal: the sigmoid kernel met a fractional target where it needs binary ones (caller falls back)."""


class NativeSigmoidTables(torch.autograd.Function):
    """(logits (B, C, N) contiguous, target, dense, ignore_index, squared, check, voxel_term, gamma, soft)
    -> (TP, PRED, TARGET, VOXELS, VPOS, VNEG): (B, C) tables and (B, 1) voxel counts in the compute dtype, for
    p = sigmoid(x) and sp(z) = log(1 + e^z)::

        TP_c = sum_n v p_c g_c    PRED_c = sum_n v p_c^e    TARGET_c = sum_n v g_c^e    VOXELS = sum_n v
        voxel_term "bce":    VPOS_c = sum_n v g sp(-x)                 VNEG_c = sum_n v (1 - g) sp(x)
        voxel_term "focal":  VPOS_c = sum_n v g (1 - p)^gamma sp(-x)   VNEG_c = sum_n v (1 - g) p^gamma sp(x)

    ``dense=True``: ``target`` is (B, C, N) float32/float64 with values in {0, 1} ([0, 1] with ``soft``, for BCE);
    v = 0 where any channel equals ``ignore_index``. Else a (B, 1, N) label map whose one-hot is the target (for
    C = 1 the map itself, values {0, 1}), v = 0 where it equals ``ignore_index``. A fractional target without
    ``soft`` raises :class:`SoftTarget` (focal: the caller takes the eager path) or, with ``voxel_term=None``, the
    eager path's LabelValueError. Backward (the math is in ``_sigmoid_body.h``) is analytic.
    """

    @staticmethod
    def forward(ctx, logits, target, dense, ignore_index, squared, check, voxel_term, gamma, soft):  # type: ignore[override]
        batch, num_classes = logits.shape[:2]
        target = target.contiguous()
        sums, counts = _tables(5, batch, num_classes)
        options = (dense, ignore_index, squared, check, voxel_term, gamma, soft)
        _run_sigmoid(False, logits, target, options, sums, counts)
        dtype = prepare.compute_dtype(logits)
        tp, pred, tgt, vpos, vneg = sums.to(dtype).unbind(0)
        voxels = counts[:, :1].to(dtype)
        ctx.save_for_backward(logits, target)
        ctx.options = options
        ctx.mark_non_differentiable(tgt, voxels)
        return tp, pred, tgt, voxels, vpos, vneg

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_tp, grad_pred, _grad_target, _grad_voxels, grad_vpos, grad_vneg):  # type: ignore[override]
        logits, target = ctx.saved_tensors
        coef = _coefficients(*logits.shape[:2], (grad_pred, grad_tp, grad_vpos, grad_vneg))
        grad = torch.empty_like(logits, memory_format=torch.contiguous_format)
        _run_sigmoid(True, logits, target, ctx.options, coef, grad)
        return grad, None, None, None, None, None, None, None, None


_SIGMOID_VOXEL = {None: 0, "bce": 1, "focal": 2}


def _run_sigmoid(backward, logits, target, options, out, out2):
    dense, ignore_index, squared, check, voxel_term, gamma, soft = options
    batch, num_classes = logits.shape[:2]
    status = _kernels.sigmoid_tables(
        int(backward), logits.data_ptr(), _LOGITS[logits.dtype], target.data_ptr(), _LABELS[target.dtype],
        int(dense), batch, num_classes, logits[0, 0].numel(), int(ignore_index is not None),
        int(ignore_index) if ignore_index is not None else 0, int(squared), int(check),
        _SIGMOID_VOXEL[voxel_term], float(gamma), int(soft), out.data_ptr(), out2.data_ptr(),
        torch.get_num_threads(),
    )
    if status == _STATUS_SOFT and voxel_term is not None:
        raise SoftTarget()

    def label_check():  # the eager path's check and wording
        if dense and voxel_term == "bce":
            counted = target if ignore_index is None else target.masked_fill(target == ignore_index, 0.0)
            prepare.check_bce_target(counted)
        elif dense:
            prepare.dense_target(target, logits, to_onehot_y=False, ignore_index=ignore_index, soft_label=soft,
                                 check_input=True)
        else:
            prepare.check_labels(target, max(num_classes, 2), ignore_index)

    _raise_for_status(_STATUS_LABEL if status == _STATUS_SOFT else status, logits, label_check)
