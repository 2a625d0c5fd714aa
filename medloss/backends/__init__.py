"""The engines behind the table operator (:mod:`medloss.backends.op`), and the one place that picks one.

Three engines compute the same tables and the same analytic gradient (tested equal), for softmax (label maps) and
sigmoid (label maps or dense targets) alike:

* ``cpu``: the compiled C kernel (:mod:`medloss.backends.cpu`), CPU float32/float64 logits;
* ``triton``: the Triton kernels (:mod:`medloss.backends.triton`), CUDA logits of any float dtype (on a
  CPU only under the Triton interpreter, ``TRITON_INTERPRET=1``, which is how the tests run them without a GPU);
* ``eager``: plain torch (:mod:`medloss.backends.eager`), everything else (other devices, no compiler, no
  Triton); it is also the reference the other two are tested against.

``MEDLOSS_BACKEND`` picks one: ``auto`` (default: cpu on CPU, triton on CUDA, eager otherwise), ``cpu``, ``triton``
or ``eager`` (``native``, the C kernel's former name, still means ``cpu`` for one release); an engine that cannot
take the inputs falls back to ``eager``, and so do inputs an engine declines inside its pass (:class:`Declined`):
:func:`engine_for` decides both. ``MEDLOSS_NATIVE=0`` (older switch) still turns the C kernel off.

Each engine module (or namespace) has ``takes(logits, target, options)`` (except eager, which takes anything),
``forward(logits, target, options)`` -> (TP, PRED, TARGET, VOXELS, VPOS, VNEG) and
``backward(logits, target, options, grad_tp, grad_pred, grad_vpos, grad_vneg)`` -> dL/dlogits; the operator
(:mod:`medloss.backends.op`) runs them through :func:`forward` and :func:`backward` here. The engines are imported
at the end of this module, after the names they use from it.
"""
from __future__ import annotations

import os
import warnings

import torch

from medloss.errors import InvalidOptionError, ShapeMismatchError

BACKENDS = ("auto", "cpu", "triton", "eager")
_RENAMED = {"native": "cpu"}  # former engine names, accepted with a DeprecationWarning for one release

__all__ = ["BACKENDS", "ENGINES", "Declined", "backward", "engine_for", "forward", "selected", "softmax_result"]


def selected() -> str:
    """The engine requested by ``MEDLOSS_BACKEND`` (``auto`` when unset)."""
    choice = os.environ.get("MEDLOSS_BACKEND", "auto").strip().lower() or "auto"
    if choice in _RENAMED:
        warnings.warn(f"MEDLOSS_BACKEND={choice} is now called {_RENAMED[choice]!r}; set that instead.",
                      DeprecationWarning, stacklevel=3)
        choice = _RENAMED[choice]
    if choice not in BACKENDS:
        raise InvalidOptionError(
            f"environment variable MEDLOSS_BACKEND={choice!r} is not one of {', '.join(BACKENDS)}; "
            "unset it or pick one."
        )
    return choice


class Declined(Exception):  # noqa: N818  (a signal between an engine and the dispatcher, never seen by a user)
    """Raised by an engine whose pass found inputs it leaves to another engine: non-finite logits, fractional
    targets its sums need binary, a backward it could not finish."""


def engine_for(logits: torch.Tensor, target: torch.Tensor, options, *, declined_by: str | None = None) -> str:
    """``"cpu"``, ``"triton"`` or ``"eager"`` for (B, C, N) logits, a (B, 1, N) label map or (B, C, N) dense
    target, and the :class:`~medloss.backends.options.TableOptions`: the one place the engine is chosen.

    ``declined_by``: the engine that declined these inputs in its pass. The eager engine takes them: with
    ``options.check`` its checks raise the typed error; without, its torch arithmetic defines the result (NaN
    tables for non-finite logits, the general focal form for fractional targets)."""
    if declined_by is not None:
        return "eager"
    choice = selected()
    if choice in ("auto", "cpu") and ENGINES["cpu"].takes(logits, target, options):
        return "cpu"
    wants_triton = choice == "triton" or (choice == "auto" and logits.is_cuda)
    if wants_triton and ENGINES["triton"].takes(logits, target, options):
        return "triton"
    return "eager"


def softmax_result(tp: torch.Tensor, pred: torch.Tensor, target: torch.Tensor, vox: torch.Tensor):
    """The operator's six outputs from a softmax engine's four (B, C) tables: every counted voxel has exactly one
    label, so VOXELS is TARGET summed over the classes; the voxel term sits in VPOS and VNEG is 0."""
    return tp, pred, target, target.sum(dim=1, keepdim=True), vox, torch.zeros_like(vox)


def forward(engine: str, logits: torch.Tensor, target: torch.Tensor, options) -> tuple[str, tuple]:
    """(the engine that answered, its six tables): ``engine``'s forward, or the one :func:`engine_for` picks when it
    declines the inputs."""
    if options.matrix is not None and len(options.matrix) != logits.shape[1]:
        size = len(options.matrix)
        raise ShapeMismatchError(f"the cost matrix is {size} x {size} but the logits have {logits.shape[1]} "
                                 "channels: the matrix needs one row and column per class.")
    try:
        return engine, ENGINES[engine].forward(logits, target, options)
    except Declined:
        engine = engine_for(logits, target, options, declined_by=engine)
        return engine, ENGINES[engine].forward(logits, target, options)


def backward(engine: str, logits: torch.Tensor, target: torch.Tensor, options, *grads: torch.Tensor) -> torch.Tensor:
    """dL/dlogits from ``engine``'s backward, or the one :func:`engine_for` picks when it declines the inputs."""
    try:
        return ENGINES[engine].backward(logits, target, options, *grads)
    except Declined:
        engine = engine_for(logits, target, options, declined_by=engine)
        return ENGINES[engine].backward(logits, target, options, *grads)


from medloss.backends import cpu, eager, triton  # noqa: E402  (see the module docstring)

#: engine name -> its module
ENGINES = {"cpu": cpu, "triton": triton, "eager": eager}
