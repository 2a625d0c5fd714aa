"""The Triton engine's deferred input checks (medloss/backends/triton/status.py): a checked CUDA forward queues its
status word in pinned memory and a later call reads it, raising the typed error with the call it came from; the
ring logic is tested here on CPU words (synchronous copies), the no-sync property on a CUDA device."""
from __future__ import annotations

import pytest
import torch

from medloss.backends import triton as api
from medloss.backends.triton import status
from medloss.errors import InputRangeError, LabelValueError

LABELS = dict(mask=api.STATUS_NONFINITE | api.STATUS_LABEL, classes=3, ignore_index=None, dense=False)


def _word(flags: int) -> torch.Tensor:
    return torch.tensor([flags], dtype=torch.int32)


def test_bad_labels_are_reported_at_the_next_call_naming_their_call():
    watch = status.StatusWatch(torch.device("cpu"))
    watch.submit(_word(0), LABELS)
    watch.submit(_word(api.STATUS_LABEL), LABELS)  # call 2 is bad: nothing raised yet (no waiting on the device)
    with pytest.raises(LabelValueError, match=r"call #2 .*reported at call #3.*integers in \[0, 3\)"):
        watch.submit(_word(0), LABELS)
    watch.submit(_word(0), LABELS)  # the ring was cleared: later good calls pass
    watch.poll(wait_all=True)


def test_nonfinite_logits_and_dense_targets_get_their_typed_errors():
    watch = status.StatusWatch(torch.device("cpu"))
    watch.submit(_word(api.STATUS_NONFINITE | api.STATUS_LABEL), LABELS)
    with pytest.raises(InputRangeError, match="NaN or infinite"):
        watch.poll()
    dense = dict(mask=api.STATUS_NONFINITE | api.STATUS_LABEL | api.STATUS_SOFT, classes=3, ignore_index=None,
                 dense=True)
    watch.submit(_word(api.STATUS_SOFT), dense)
    with pytest.raises(LabelValueError, match="fractional values"):
        watch.poll()
    soft = dict(dense, mask=api.STATUS_NONFINITE | api.STATUS_LABEL)  # soft targets: fractions are meant
    watch.submit(_word(api.STATUS_SOFT), soft)
    watch.poll(wait_all=True)


class _Slow:
    """An event the device has not reached until waited for."""

    waits = 0

    def record(self) -> None:
        self.done = False

    def query(self) -> bool:
        return self.done

    def synchronize(self) -> None:
        _Slow.waits += 1
        self.done = True


def test_unfinished_words_wait_only_when_the_ring_is_full():
    _Slow.waits = 0
    watch = status.StatusWatch(torch.device("cpu"), make_event=_Slow)
    for _ in range(status.SLOTS):
        watch.submit(_word(0), LABELS)
    assert _Slow.waits == 0 and len(watch.pending) == status.SLOTS
    watch.submit(_word(api.STATUS_LABEL), LABELS)  # the oldest is waited for, to free its slot
    assert _Slow.waits == 1 and len(watch.pending) == status.SLOTS
    with pytest.raises(LabelValueError, match=f"call #{status.SLOTS + 1}"):
        watch.poll(wait_all=True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or not api.available(), reason="needs a CUDA device and Triton")
def test_checked_cuda_step_never_synchronises_and_still_raises():
    import medloss.losses as L

    loss_fn = L.DiceCELoss(softmax=True, to_onehot_y=True)
    x = torch.randn(2, 3, 8, 8, 8, device="cuda", requires_grad=True)
    y = torch.randint(0, 3, (2, 1, 8, 8, 8), device="cuda")
    loss_fn(x, y).backward()  # compiles the kernels and makes the ring
    status.check_pending()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss_fn(x, y).backward()
        loss_fn(x, y.masked_fill(y == 2, 7)).backward()  # bad labels: queued, not raised here
    finally:
        torch.cuda.set_sync_debug_mode("default")
    with pytest.raises(LabelValueError, match="call #"):
        status.check_pending()
