"""The compiled CPU kernel (``medloss/backends/cpu/_kernels.c``): the ``cpu`` engine of the table operator.

:func:`forward` / :func:`backward` (called by :mod:`medloss.backends.op`) compute exactly what
:func:`medloss.backends.eager.softmax.forward_tables` / ``backward_grad`` compute (the math is in that module's
docstring) in two passes over the data: forward reads logits and labels once and keeps nothing; backward reads
them again, recomputes the softmax per block of 512 voxels in cache and writes the gradient. The sigmoid tables
(region sums, BCE and sigmoid focal sums against a label map or a dense target; math in
:mod:`medloss.backends.eager.sigmoid` and ``_sigmoid_body.h``) work the same way. Peak extra memory of
forward + backward is the gradient itself (1x the logits), and the input checks
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

from medloss import backends, checks
from medloss.backends.options import cost_matrix

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

__all__ = ["available", "enabled", "takes", "forward", "backward"]

_LOGITS = {torch.float32: 0, torch.float64: 1}
_LABELS = {
    torch.int64: 0, torch.int32: 1, torch.int16: 2, torch.uint8: 3, torch.int8: 4,
    torch.float32: 5, torch.float64: 6,
}
_VOXEL = {None: 0, "ce": 1, "focal": 2, "explog": 3, "wasserstein": 4}
_STATUS_NONFINITE, _STATUS_LABEL, _STATUS_NOMEM, _STATUS_SOFT = 1, 2, 3, 5


def available() -> bool:
    """True when the compiled kernel was built at install time and imports."""
    return _kernels is not None


def enabled() -> bool:
    """True when the kernel is available and not disabled with ``MEDLOSS_NATIVE=0``."""
    return _kernels is not None and os.environ.get("MEDLOSS_NATIVE", "1") != "0"


def takes(logits: torch.Tensor, target: object, options) -> bool:
    """Whether the kernel takes these inputs: enabled; CPU float32/float64 non-empty contiguous (B, C, N) logits;
    a CPU label map of a supported dtype (softmax: C >= 2), or for sigmoid a dense float32/float64 target."""
    if not (
        enabled()
        and isinstance(target, torch.Tensor)
        and logits.device.type == "cpu"
        and target.device.type == "cpu"
        and logits.dtype in _LOGITS
        and logits.numel() > 0
        and logits.is_contiguous()
    ):
        return False
    if options.activation == "softmax":
        return target.dtype in _LABELS and logits.shape[1] > 1
    if options.dense:  # the kernel reads float targets; integer and bool ones are read as such (_dense_target)
        return target.dtype in (torch.float32, torch.float64) or target.dtype in _INT_DENSE
    return target.dtype in _LABELS


def _raise_for_status(status: int, logits: torch.Tensor, label_check) -> None:
    """Turn a kernel status into the typed error the eager path raises (its own check words the message)."""
    if status == _STATUS_LABEL:
        label_check()  # raises LabelValueError naming the value
    if status == _STATUS_NOMEM:
        raise MemoryError("medloss native kernel: could not allocate its per-thread scratch buffers.")
    if status != 0:
        raise RuntimeError(f"medloss native kernel failed with status {status} (please report this).")


#: integer dense targets (e.g. nnU-Net's int16 region masks), converted for the kernel instead of sending the
#: whole loss to the eager engine (8x the time and 7x the memory at 2x14x96^3)
_INT_DENSE = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _dense_target(target: torch.Tensor, logits: torch.Tensor, options) -> torch.Tensor:
    """The target as the kernel reads it: contiguous, and a dense integer one in the logits' dtype (exact for the
    values a binary or ignore-marked target holds)."""
    if options.activation == "sigmoid" and options.dense and target.dtype in _INT_DENSE:
        return target.to(logits.dtype, memory_format=torch.contiguous_format)
    return target.contiguous()


def _tables(rows: int, batch: int, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Zeroed outputs of a forward call: (rows, B, C) float64 sums and (B, C) int64 counts."""
    return (torch.zeros(rows, batch, num_classes, dtype=torch.float64),
            torch.zeros(batch, num_classes, dtype=torch.int64))


def _coefficients(grads) -> torch.Tensor:
    """(len(grads), B, C) contiguous float64 table of the incoming (B, C) gradients for a backward call."""
    return torch.stack([g.to(torch.float64) for g in grads])


def _run(backward, logits, labels, options, out, out2) -> int:
    batch, num_classes = logits.shape[:2]
    ignore_index, log_clamp = options.ignore_index, options.log_clamp
    return _kernels.softmax_tables(
        int(backward), logits.data_ptr(), _LOGITS[logits.dtype], labels.data_ptr(), _LABELS[labels.dtype],
        batch, num_classes, logits[0, 0].numel(), int(ignore_index is not None),
        int(ignore_index) if ignore_index is not None else 0, int(options.squared), _VOXEL[options.voxel_term],
        float(options.gamma), float(log_clamp[0]), float(log_clamp[1]), _matrix_ptr(options), out.data_ptr(),
        out2.data_ptr(), torch.get_num_threads(),
    )


def _matrix_ptr(options) -> int:
    """Address of the Wasserstein term's (C, C) float64 cost matrix (cached, so a step creates no tensor), else 0."""
    if options.matrix is None:
        return 0
    return cost_matrix(options.matrix, torch.float64, torch.device("cpu")).data_ptr()


_SIGMOID_VOXEL = {None: 0, "bce": 1, "focal": 2}


def _kernel_soft(options) -> bool:
    """Whether the sigmoid kernel may take fractional targets: its BCE and region sums hold for any g in [0, 1]; its
    focal sums assume a binary g (a fractional one is reported, and the eager engine computes the general form)."""
    return options.voxel_term != "focal" and (options.soft or not options.check)


def _run_sigmoid(backward, logits, target, options, out, out2) -> int:
    batch, num_classes = logits.shape[:2]
    ignore_index = options.ignore_index
    return _kernels.sigmoid_tables(
        int(backward), logits.data_ptr(), _LOGITS[logits.dtype], target.data_ptr(), _LABELS[target.dtype],
        int(options.dense), batch, num_classes, logits[0, 0].numel(), int(ignore_index is not None),
        int(ignore_index) if ignore_index is not None else 0, int(options.squared), int(options.check),
        _SIGMOID_VOXEL[options.voxel_term], float(options.gamma), int(_kernel_soft(options)), out.data_ptr(),
        out2.data_ptr(), torch.get_num_threads(),
    )


def forward(logits, target, options):
    """Engine entry (see :mod:`medloss.backends.op`): (TP, PRED, TARGET, VOXELS, VPOS, VNEG) in the compute
    dtype. The kernel checks logits and targets inside its pass whatever ``options.check`` says (it costs nothing
    there): a bad label raises the eager path's typed error; non-finite logits and fractional targets its focal sums
    need binary are declined (:func:`medloss.backends.engine_for` says who takes them)."""
    batch, num_classes = logits.shape[:2]
    target = _dense_target(target, logits, options)
    sigmoid = options.activation == "sigmoid"
    sums, counts = _tables(5 if sigmoid else 3, batch, num_classes)
    status = (_run_sigmoid if sigmoid else _run)(False, logits, target, options, sums, counts)
    if status in (_STATUS_NONFINITE, _STATUS_SOFT):
        raise backends.Declined(status)
    _raise_for_status(status, logits, lambda: _eager().check_target(logits, target, options))
    dtype = checks.compute_dtype(logits)
    if sigmoid:
        tp, pred, tgt, vpos, vneg = sums.to(dtype).unbind(0)
        return tp, pred, tgt, counts[:, :1].to(dtype), vpos, vneg
    tp, pred, vox = sums.to(dtype).unbind(0)
    return backends.softmax_result(tp, pred, counts.to(dtype), vox)


def backward(logits, target, options, grad_tp, grad_pred, grad_vpos, grad_vneg):
    """Engine entry: dL/dlogits from the (B, C) gradients of TP, PRED, VPOS and VNEG; inputs the forward pass
    declined are declined again."""
    target = _dense_target(target, logits, options)
    grad = torch.empty_like(logits, memory_format=torch.contiguous_format)
    if options.activation == "sigmoid":
        coef = _coefficients((grad_pred, grad_tp, grad_vpos, grad_vneg))
        status = _run_sigmoid(True, logits, target, options, coef, grad)
    else:
        coef = _coefficients((grad_pred, grad_tp, grad_vpos))
        status = _run(True, logits, target, options, coef, grad)
    if status:
        raise backends.Declined(status)
    return grad


def _eager():
    from medloss.backends import eager

    return eager
