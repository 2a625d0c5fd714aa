"""Input checks of the Triton engine without a host sync: the status word of a checked CUDA forward is copied into
pinned host memory behind the kernels (``non_blocking``) and read at a later checked call, once the device has
written it; bad input then raises the same typed error class, naming the call it came from.

Why: reading the word at once (``int(status)``) blocks the host until the device has finished the forward, every
step, and stops the host from queueing the backward ahead of the device. A CUDA device-side assert is no
alternative (it poisons the context). The price is that an error surfaces one or more calls later;
:func:`check_pending` waits for every outstanding word and raises at once (e.g. at the end of an epoch or in a
test). On CPU tensors (the interpreter) the engine checks immediately instead.

Each device has a ring of :data:`SLOTS` pinned words and events, made once: a training step creates nothing on
the host. If the device lags :data:`SLOTS` checked calls behind, the oldest word is waited for (a sync only
then). During CUDA graph capture nothing is checked (a replay runs no Python): capture with ``check_input=False``.
"""
from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import torch

from medloss.backends.triton import STATUS_LABEL, STATUS_NONFINITE
from medloss.errors import InputRangeError, LabelValueError

__all__ = ["SLOTS", "StatusWatch", "check_pending", "watch_for"]

SLOTS = 8


class _Ready:
    """Stands in for a CUDA event where the copy is synchronous (CPU tensors: the tests of the ring itself)."""

    def record(self) -> None:
        pass

    def query(self) -> bool:
        return True

    def synchronize(self) -> None:
        pass


class StatusWatch:
    """The ring of status words of one device (see the module docstring)."""

    def __init__(self, device: torch.device, make_event: Callable[[], Any] | None = None) -> None:
        cuda = device.type == "cuda"
        self.words = torch.zeros(SLOTS, dtype=torch.int32, pin_memory=cuda)
        default = (lambda: torch.cuda.Event(enable_timing=False)) if cuda else _Ready
        self.events = [(make_event or default)() for _ in range(SLOTS)]
        self.pending: collections.deque = collections.deque()  # (slot, call number, what was checked)
        self.calls = 0

    def submit(self, word: torch.Tensor, what: dict) -> None:
        """Raise for any finished earlier call that flagged bad input, then queue this call's (1,) int32 device
        ``word``; ``what`` describes the call: ``mask`` (the status bits that are errors), ``classes``,
        ``ignore_index`` and ``dense`` (for the message)."""
        self.calls += 1
        self.poll()
        if len(self.pending) == SLOTS:
            self.poll(wait_oldest=True)
        slot = self.calls % SLOTS
        self.words[slot:slot + 1].copy_(word, non_blocking=True)
        self.events[slot].record()
        self.pending.append((slot, self.calls, what))

    def poll(self, wait_oldest: bool = False, wait_all: bool = False) -> None:
        """Read the words the device has written, oldest first; raise the typed error of the first bad one."""
        while self.pending:
            slot, call, what = self.pending[0]
            if wait_all or wait_oldest:
                self.events[slot].synchronize()
                wait_oldest = False
            elif not self.events[slot].query():
                return
            self.pending.popleft()
            flags = int(self.words[slot]) & what["mask"]  # pinned host memory the device has written: no sync
            if flags:
                self.pending.clear()
                raise _error(flags, call, "by check_pending()" if wait_all else f"at call #{self.calls}", what)


def _error(flags: int, call: int, when: str, what: dict) -> Exception:
    where = (f"checked loss call #{call} on this device (reported {when}: the Triton engine checks on the device "
             "without waiting for it)")
    if flags & STATUS_NONFINITE:
        return InputRangeError(f"`input` of {where} contains NaN or infinite values; check the network output "
                               "(e.g. a diverged training or fp16 overflow).")
    if what.get("dense"):
        kind = "values outside [0, 1]" if flags & STATUS_LABEL else "fractional values"
        return LabelValueError(f"`target` of {where} holds {kind}; a dense target must be binary in {{0, 1}} (pass "
                               "`soft_label=True` for soft targets) and ignore_index, if set, marks ignored voxels.")
    ignore = what.get("ignore_index")
    allowed = f"integers in [0, {what['classes']})" + (f" or ignore_index={ignore}" if ignore is not None else "")
    return LabelValueError(f"`target` of {where} holds labels other than {allowed}: the input has "
                           f"{what['classes']} channels: check the number of output channels, or set `ignore_index` "
                           "for unlabelled voxels.")


_WATCHES: dict = {}


def watch_for(device: torch.device) -> StatusWatch:
    """The ring of ``device`` (made on its first checked call)."""
    watch = _WATCHES.get(device)
    if watch is None:
        watch = _WATCHES[device] = StatusWatch(device)
    return watch


def check_pending() -> None:
    """Wait for every outstanding status word of every device and raise the typed error of the first bad one."""
    for watch in list(_WATCHES.values()):
        watch.poll(wait_all=True)
