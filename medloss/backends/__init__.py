"""The engines behind the table operator (:mod:`medloss.functional.tables`), and the one place that picks one.

Three engines compute the same tables and the same analytic gradient (tested equal), for softmax (label maps) and
sigmoid (label maps or dense targets) alike:

* ``native``: the compiled C kernel (:mod:`medloss.backends.cpu`), CPU float32/float64 logits;
* ``triton``: the Triton kernels (:mod:`medloss.backends.triton`), CUDA logits of any float dtype (on a
  CPU only under the Triton interpreter, ``TRITON_INTERPRET=1``, which is how the tests run them without a GPU);
* ``eager``: plain torch (:mod:`medloss.backends.eager`), everything else (other devices, no compiler, no
  Triton); it is also the reference the other two are tested against.

``MEDLOSS_BACKEND`` picks one: ``auto`` (default: native on CPU, triton on CUDA, eager otherwise), ``native``,
``triton`` or ``eager``; an engine that cannot take the inputs falls back to ``eager``. ``MEDLOSS_NATIVE=0``
(older switch) still turns the C kernel off.

Each engine module (or namespace) has ``takes(logits, target, options)`` (except eager, which takes anything),
``forward(logits, target, options)`` -> (TP, PRED, TARGET, VOXELS, VPOS, VNEG) and
``backward(logits, target, options, grad_tp, grad_pred, grad_vpos, grad_vneg)`` -> dL/dlogits. The engines are
imported at the end of this module, after the functions the formulas call, so that either side may be imported
first.
"""
from __future__ import annotations

import os

import torch

from medloss.errors import InvalidOptionError

BACKENDS = ("auto", "native", "triton", "eager")

__all__ = ["BACKENDS", "ENGINES", "engine_for", "selected", "softmax_result"]


def selected() -> str:
    """The engine requested by ``MEDLOSS_BACKEND`` (``auto`` when unset)."""
    choice = os.environ.get("MEDLOSS_BACKEND", "auto").strip().lower() or "auto"
    if choice not in BACKENDS:
        raise InvalidOptionError(
            f"environment variable MEDLOSS_BACKEND={choice!r} is not one of {', '.join(BACKENDS)}; "
            "unset it or pick one."
        )
    return choice


def engine_for(logits: torch.Tensor, target: torch.Tensor, options) -> str:
    """``"native"``, ``"triton"`` or ``"eager"`` for (B, C, N) logits, a (B, 1, N) label map or (B, C, N) dense
    target, and the :class:`~medloss.functional.options.TableOptions`: the one place the engine is chosen."""
    choice = selected()
    if choice in ("auto", "native") and ENGINES["native"].takes(logits, target, options):
        return "native"
    wants_triton = choice == "triton" or (choice == "auto" and logits.is_cuda)
    if wants_triton and ENGINES["triton"].takes(logits, target, options):
        return "triton"
    return "eager"


def softmax_result(tp: torch.Tensor, pred: torch.Tensor, target: torch.Tensor, vox: torch.Tensor):
    """The operator's six outputs from a softmax engine's four (B, C) tables: every counted voxel has exactly one
    label, so VOXELS is TARGET summed over the classes; the voxel term sits in VPOS and VNEG is 0."""
    return tp, pred, target, target.sum(dim=1, keepdim=True), vox, torch.zeros_like(vox)


from medloss.backends import cpu, eager, triton  # noqa: E402  (see the module docstring)

#: engine name -> its module
ENGINES = {"native": cpu, "triton": triton, "eager": eager}
