"""The engines behind the table operator (:mod:`medloss.functional.tables`), and the one place that picks one.

Three engines compute the same (B, C) tables and the same analytic gradient (tested equal):

* ``native``: the compiled C kernel (:mod:`medloss.backends.cpu`), CPU float32/float64 logits;
* ``triton``: the Triton kernels (:mod:`medloss.backends.triton`), CUDA logits of any float dtype (on a
  CPU only under the Triton interpreter, ``TRITON_INTERPRET=1``, which is how the tests run them without a GPU);
* ``eager``: plain torch (:mod:`medloss.backends.eager`), everything else (other devices, no compiler, no
  Triton); it is also the reference the other two are tested against.

``MEDLOSS_BACKEND`` picks one: ``auto`` (default: native on CPU, triton on CUDA, eager otherwise), ``native``,
``triton`` or ``eager``; an engine that cannot take the inputs falls back to ``eager``. ``MEDLOSS_NATIVE=0``
(older switch) still turns the C kernel off.
"""
from __future__ import annotations

import os

import torch

from medloss.errors import InvalidOptionError
from medloss.backends import eager
from medloss.backends import cpu as native
from medloss.backends import triton as triton_tables

BACKENDS = ("auto", "native", "triton", "eager")

__all__ = ["BACKENDS", "ENGINES", "selected", "softmax_engine"]

#: engine name -> its module (or namespace) with forward(logits, labels, options) and
#: backward(logits, labels, options, grad_tp, grad_pred, grad_vox)
ENGINES = {"native": native, "triton": triton_tables, "eager": eager.Engine}


def selected() -> str:
    """The engine requested by ``MEDLOSS_BACKEND`` (``auto`` when unset)."""
    choice = os.environ.get("MEDLOSS_BACKEND", "auto").strip().lower() or "auto"
    if choice not in BACKENDS:
        raise InvalidOptionError(
            f"environment variable MEDLOSS_BACKEND={choice!r} is not one of {', '.join(BACKENDS)}; unset it or pick one."
        )
    return choice


def softmax_engine(logits: torch.Tensor, labels: torch.Tensor) -> str:
    """``"native"``, ``"triton"`` or ``"eager"`` for (B, C, N) logits and (B, 1, N) labels."""
    choice = selected()
    if choice in ("auto", "native") and native.supports(logits, labels):
        return "native"
    if choice == "triton" or (choice == "auto" and logits.is_cuda):
        if triton_tables.takes(logits, labels):
            return "triton"
    return "eager"
