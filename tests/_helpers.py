"""Small factories shared by the loss tests."""
from __future__ import annotations

import torch


def random_case(
    shape=(2, 3, 6, 5, 4), *, dtype=torch.float64, ignore_index=None, ignore_fraction=0.2, seed=0, scale=2.0
):
    """Logits (B, C, *S) with requires_grad and a (B, 1, *S) int64 label map (some voxels set to ignore_index)."""
    gen = torch.Generator().manual_seed(seed)
    logits = (scale * torch.randn(shape, generator=gen, dtype=torch.float64)).to(dtype).requires_grad_()
    labels = torch.randint(0, shape[1], (shape[0], 1, *shape[2:]), generator=gen)
    if ignore_index is not None:
        ignored = torch.rand(labels.shape, generator=gen) < ignore_fraction
        labels = labels.masked_fill(ignored, ignore_index)
    return logits, labels


def value_and_grad(loss_fn, logits, target, reduce=True):
    x = logits.detach().clone().requires_grad_()
    out = loss_fn(x, target)
    (out.sum() if reduce else out).backward()
    return out.detach(), x.grad


def native_case(shape, dtype, label_dtype=torch.int64, ignore=None, scale=3.0, seed=0):
    """Logits (B, C, *S) of `dtype` and a (B, 1, *S) label map of `label_dtype` (a quarter set to `ignore`)."""
    gen = torch.Generator().manual_seed(seed)
    b, c = shape[:2]
    x = (scale * torch.randn(shape, generator=gen, dtype=torch.float64)).to(dtype)
    y = torch.randint(0, c, (b, 1, *shape[2:]), generator=gen)
    if ignore is not None:
        y = y.masked_fill(torch.rand(y.shape, generator=gen) < 0.25, ignore)
    return x, y.to(label_dtype)


def loss_study():
    """``benchmarks/loss_study.py`` as a module: its ``SETUPS`` say how to build and train every registered loss."""
    import importlib.util
    import sys
    from pathlib import Path

    if "loss_study" not in sys.modules:
        path = Path(__file__).parents[1] / "benchmarks" / "loss_study.py"
        spec = importlib.util.spec_from_file_location("loss_study", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
        spec.loader.exec_module(module)
    return sys.modules["loss_study"]


def softmax_tables(logits, labels, engine, options):
    """(TP, PRED, TARGET, VOX) of the table operator with softmax ``options``, computed by ``engine``."""
    from medloss.backends.op import tables

    out = tables(logits, labels, options, engine)
    return out.tp, out.pred, out.target, out.vpos
