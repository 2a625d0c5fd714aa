#!/usr/bin/env python
"""Host side of the Triton engine, measured without a GPU: per forward+backward of a loss, the torch ops that would
launch a CUDA kernel, the host reads of a tensor value, the Triton launches and the host time, against MONAI's same
loss at the same shape in the same run.

    python benchmarks/host_overhead.py                    # 2x4x4^3, checks on and off, 200 timed steps
    python benchmarks/host_overhead.py --shape 2x4x16 --steps 500 --json out.json

The Triton engine runs on CPU tensors under the Triton interpreter (``TRITON_INTERPRET=1``, set here) with every
kernel launch replaced by a stub that counts it and runs nothing (it zeroes the int32 status words it is handed,
through numpy, so that checked losses see valid input). What is left is exactly the host work of a step on CUDA:
Python, torch dispatch and the ops around the kernels. The shape is tiny on purpose so that MONAI's kernels cost
next to nothing on the CPU either.

Counted per step (one ``torch.profiler`` record of forward + backward, one thread):

* launching ops: innermost aten ops that compute (an op none of whose descendants computes); views, metadata and
  allocation (``empty``, ``view``, ``as_strided``, ...) are left out; ops inside medloss's custom operator are
  included (the profiler sees below it, unlike a ``TorchDispatchMode``);
* host reads: ``aten::_local_scalar_dense`` (``.item()``, ``int(t)``, ``bool(t)``: a device sync on CUDA);
* Triton launches: the stubs' count;
* host us: wall time of a step without the profiler: the least of 5 interleaved rounds' medians.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import statistics
import sys
import time

os.environ["TRITON_INTERPRET"] = "1"
os.environ["MEDLOSS_BACKEND"] = "triton"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

#: aten ops that launch nothing on CUDA: views, metadata, allocation
NON_LAUNCHING = frozenset(
    "aten::" + name for name in (
        "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "view", "reshape", "_reshape_alias",
        "_unsafe_view", "as_strided", "alias", "detach", "detach_", "t", "transpose", "permute", "unsqueeze", "squeeze",
        "expand", "expand_as", "select", "slice", "narrow", "split", "unbind", "chunk", "flatten", "unflatten",
        "movedim", "contiguous", "lift_fresh", "resolve_conj", "resolve_neg", "set_", "resize_", "result_type",
        "is_nonzero", "item", "to", "_to_copy_noop", "numpy_T", "diagonal", "view_as", "unfold"
    )
)
HOST_READ = "aten::_local_scalar_dense"
#: reductions: one kernel each on CUDA, whatever helper ops the CPU implementation runs below them
REDUCTIONS = frozenset("aten::" + n for n in ("sum", "mean", "amax", "amin", "max", "min", "prod", "norm",
                                             "linalg_vector_norm", "all", "any"))


def _medloss_cases(check: bool) -> dict:
    import medloss.losses as L

    s = dict(softmax=True, to_onehot_y=True, check_input=check)
    return {
        "Dice": L.DiceLoss(**s),
        "GDL": L.GeneralizedDiceLoss(**s),
        "Tversky": L.TverskyLoss(**s),
        "focal": L.FocalLoss(use_softmax=True, to_onehot_y=True, check_input=check),
        "DiceCE": L.DiceCELoss(**s),
        "BCEDice": L.BCEDiceLoss(check_input=check),
    }


def _monai_cases() -> dict:
    import monai.losses as M

    s = dict(softmax=True, to_onehot_y=True)
    return {
        "Dice": M.DiceLoss(**s),
        "GDL": M.GeneralizedDiceLoss(**s),
        "Tversky": M.TverskyLoss(**s),
        "focal": M.FocalLoss(use_softmax=True, to_onehot_y=True),
        "DiceCE": M.DiceCELoss(**s),
        "BCEDice": M.DiceCELoss(sigmoid=True),  # BCE-with-logits + sigmoid Dice on a dense target
    }


class LaunchStubs:
    """Replaces every ``@triton.jit`` kernel of medloss's Triton modules by a counter that runs nothing."""

    def __init__(self) -> None:
        self.count = 0
        self._saved: list[tuple[object, str, object]] = []

    def __enter__(self) -> LaunchStubs:
        import triton

        from medloss.backends import triton as api

        for kind in ("softmax", "sigmoid", "loss"):
            module = api.kernels(kind)
            for name, value in vars(module).copy().items():
                if isinstance(value, triton.runtime.jit.KernelInterface):
                    self._saved.append((module, name, value))
                    setattr(module, name, _Stub(self))
        return self

    def __exit__(self, *exc) -> None:
        for module, name, value in self._saved:
            setattr(module, name, value)


class _Stub:
    def __init__(self, owner: LaunchStubs) -> None:
        self.owner = owner

    def __getitem__(self, grid):
        return self._launch

    def _launch(self, *args, **kwargs) -> None:
        self.owner.count += 1
        for arg in args:
            if isinstance(arg, torch.Tensor) and arg.dtype == torch.int32:
                arg.numpy()[...] = 0  # no torch op: the status words read "valid"


def _inputs(shape: tuple[int, ...], dense: bool):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen)
    y = torch.randint(0, shape[1], (shape[0], 1, *shape[2:]), generator=gen)
    if dense:
        y = torch.nn.functional.one_hot(y[:, 0], shape[1]).movedim(-1, 1).float()
    return x, y


def _step(loss_fn, x, y) -> None:
    x.grad = None
    loss_fn(x, y).backward()


def _launching(events) -> collections.Counter:
    """The computing aten ops of a profiler trace that would each be one CUDA kernel, counted by name: the innermost
    ones, where a reduction counts once (its CPU helpers, e.g. the ``fill_`` of its output, are not kernels on
    CUDA) and the conversion of a 0-dim CPU scalar operand (``2.0 * t``) counts nothing (CUDA passes it by value)."""
    counts: collections.Counter = collections.Counter()

    def scalar_copy(ev) -> bool:
        return ev.name == "aten::_to_copy" and bool(ev.input_shapes) and ev.input_shapes[0] == []

    def computes(ev) -> bool:
        if not ev.name.startswith("aten::") or ev.name in NON_LAUNCHING or ev.name == HOST_READ:
            return False
        return not scalar_copy(ev)

    def counted(ev) -> bool:
        return computes(ev) and (ev.name in REDUCTIONS or not any(computes(c) or below(c) for c in ev.cpu_children))

    def below(ev) -> bool:
        return ev.name not in REDUCTIONS and any(computes(c) or below(c) for c in ev.cpu_children)

    def inside_skipped(ev) -> bool:
        parent = ev.cpu_parent
        while parent is not None:
            if parent.name in REDUCTIONS or scalar_copy(parent):
                return True
            parent = parent.cpu_parent
        return False

    for ev in events:
        if counted(ev) and not inside_skipped(ev):
            counts[ev.name] += 1
    return counts


def count(loss_fn, x, y, stubs: LaunchStubs | None) -> dict:
    """Launching ops, host reads and Triton launches of one step (after warm-up)."""
    for _ in range(3):
        _step(loss_fn, x, y)
    before = stubs.count if stubs else 0
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        _step(loss_fn, x, y)
    launches = (stubs.count - before) if stubs else 0
    events = prof.events()
    ops = _launching(events)
    reads = sum(1 for ev in events if ev.name == HOST_READ)
    return {"ops": sum(ops.values()), "by_op": dict(ops.most_common()), "host_reads": reads,
            "triton_launches": launches}


def host_us(runners: list, x, y, steps: int, rounds: int = 5) -> list[float]:
    """Per runner (a loss and its stubs context), the least of ``rounds`` medians of ``steps // rounds`` steps, the
    runners interleaved round by round (the least median is the one least disturbed by other load)."""
    best = [float("inf")] * len(runners)
    for _ in range(rounds):
        for i, (loss_fn, stubs) in enumerate(runners):
            times = []
            with stubs or contextlib.nullcontext():
                for _ in range(max(1, steps // rounds)):
                    t0 = time.perf_counter()
                    _step(loss_fn, x, y)
                    times.append(time.perf_counter() - t0)
            best[i] = min(best[i], statistics.median(times) * 1e6)
    return [round(b, 1) for b in best]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="2x4x4", help="BxCxS: S^3 voxels (default 2x4x4)")
    parser.add_argument("--steps", type=int, default=500,
                        help="timed steps per case (5 interleaved rounds; the least median is reported)")
    parser.add_argument("--losses", default="Dice,GDL,Tversky,focal,DiceCE,BCEDice")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    b, c, s = (int(v) for v in args.shape.split("x"))
    shape = (b, c, s, s, s)
    torch.set_num_threads(1)
    keys = [k for k in args.losses.split(",") if k]
    monai = _monai_cases()
    results: dict = {}
    print(f"shape {'x'.join(map(str, shape))}, one thread, {args.steps} timed steps in 5 rounds; "
          "Triton launches stubbed")
    print(f"{'loss':8} {'impl':16} {'ops':>4} {'reads':>5} {'triton':>6} {'host us':>8} {'x MONAI':>7}  top ops")
    for key in keys:
        x, y = _inputs(shape, dense=key == "BCEDice")
        x.requires_grad_()
        runners = [("MONAI", monai[key], None)]
        runners += [(f"medloss check={'on' if c else 'off'}", _medloss_cases(c)[key], LaunchStubs())
                    for c in (True, False)]
        rows = []
        for impl, loss_fn, stubs in runners:
            with stubs or contextlib.nullcontext():
                rows.append((impl, count(loss_fn, x, y, stubs)))
        for (_impl, r), us in zip(rows, host_us([(f, s) for _, f, s in runners], x, y, args.steps), strict=True):
            r["host_us"] = us
        results[key] = dict(rows)
        ref = rows[0][1]["host_us"]
        for impl, r in rows:
            top = ", ".join(f"{n[6:]} {k}" for n, k in list(r["by_op"].items())[:5])
            print(f"{key:8} {impl:16} {r['ops']:4d} {r['host_reads']:5d} {r['triton_launches']:6d} "
                  f"{r['host_us']:8.1f} {r['host_us'] / ref:7.2f}  {top}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"shape": shape, "results": results}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
