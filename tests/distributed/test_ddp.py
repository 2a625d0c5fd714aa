"""DDP: with batch=True, region statistics are summed over ranks (with gradient) before the formula.

Two gloo processes on CPU each hold half of a batch; the loss on every rank must equal the single-process loss on
the concatenated batch, and the DDP-averaged parameter gradients of a small conv layer must equal the
single-process gradients.
"""
from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import medloss.losses as L

LOSSES = {
    "dice": lambda: L.DiceLoss(softmax=True, to_onehot_y=True, batch=True),
    "dice-sigmoid-squared": lambda: L.DiceLoss(sigmoid=True, to_onehot_y=True, batch=True, squared_pred=True),
    "tversky": lambda: L.TverskyLoss(softmax=True, to_onehot_y=True, batch=True, alpha=0.3, beta=0.7),
    "focal-tversky": lambda: L.FocalTverskyLoss(softmax=True, to_onehot_y=True, batch=True),
    "gdl": lambda: L.GeneralizedDiceLoss(softmax=True, to_onehot_y=True, batch=True),
    "explog": lambda: L.ExpLogLoss(softmax=True, to_onehot_y=True, batch=True),
    # running label counts: every rank must add the global batch's counts (else the cross-term weights differ)
    "explog-running": lambda: L.ExpLogLoss(softmax=True, to_onehot_y=True, batch=True, class_frequencies="running"),
    "anatomynet": lambda: L.AnatomyNetLoss(softmax=True, to_onehot_y=True),
    "dicece": lambda: L.DiceCELoss(softmax=True, to_onehot_y=True, batch=True, lambda_ce=0.0),
    # top-k over the global batch: the K-th largest voxel loss is found among every rank's candidates
    "topk": lambda: L.TopKLoss(k=10.0),
    "dicetopk": lambda: L.DiceTopKLoss(softmax=True, to_onehot_y=True, batch=True, include_background=False),
    "hausdorff-dt-batch": lambda: L.HausdorffDTLoss(softmax=True, to_onehot_y=True, batch=True, ignore_index=255),
    "cldice": lambda: L.SoftclDiceLoss(softmax=True, to_onehot_y=True, batch=True),
    "dice-cldice": lambda: L.SoftDiceclDiceLoss(softmax=True, to_onehot_y=True, batch=True, include_background=False),
    "skeleton-recall": lambda: L.SkeletonRecallLoss(softmax=True, to_onehot_y=True, batch=True, lambda_ce=0.0),
    # the Wasserstein sums and class counts of the table operator, pooled over the global batch
    "gwdl-batch": lambda: L.GeneralizedWassersteinDiceLoss([[0, 1, 0.5], [1, 0, 0.8], [0.5, 0.8, 0]], batch=True,
                                                           weighting_mode="GDL"),
}
WORLD = 2


def _data():
    gen = torch.Generator().manual_seed(0)
    image = torch.randn(4, 1, 6, 5, 4, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 3, (4, 1, 6, 5, 4), generator=gen)
    labels[1][labels[1] == 2] = 1  # class 2 absent from one sample
    return image, labels


def _model():
    torch.manual_seed(0)
    return torch.nn.Conv3d(1, 3, kernel_size=3, padding=1).double()


def _single_process(name):
    image, labels = _data()
    model = _model()
    loss = LOSSES[name]()(model(image), labels)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


def _worker(rank, port, results):
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        torch.set_num_threads(1)
        image, labels = _data()
        half = slice(rank * 2, rank * 2 + 2)
        out = {}
        for name in LOSSES:
            model = torch.nn.parallel.DistributedDataParallel(_model())
            loss = LOSSES[name]()(model(image[half]), labels[half])
            loss.backward()
            out[name] = (loss.detach(), [p.grad.clone() for p in model.parameters()])
        results[rank] = out
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_results():
    manager = mp.Manager()
    results = manager.dict()
    mp.start_processes(_worker, args=(_free_port(), results), nprocs=WORLD, start_method="spawn", join=True)
    return dict(results)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(LOSSES))
def test_ddp_equals_single_process_on_the_concatenated_batch(ddp_results, name):
    loss_ref, grads_ref = _single_process(name)
    for rank in range(WORLD):
        loss, grads = ddp_results[rank][name]
        torch.testing.assert_close(loss, loss_ref, rtol=1e-10, atol=1e-12)
        for g, g_ref in zip(grads, grads_ref, strict=True):
            torch.testing.assert_close(g, g_ref, rtol=1e-8, atol=1e-12)


def test_without_process_group_the_sum_is_a_no_op():
    from medloss.functional.stats import distributed_sum

    t = torch.randn(1, 3)
    assert distributed_sum(t) is t


class _TwoHeads(torch.nn.Module):
    """A full-resolution head and a half-resolution head (deep supervision), the latter weighted 0 by nnU-Net."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Conv3d(1, 4, kernel_size=3, padding=1).double()
        self.full = torch.nn.Conv3d(4, 3, kernel_size=1).double()
        self.low = torch.nn.Conv3d(4, 3, kernel_size=2, stride=2).double()

    def forward(self, x):
        h = self.body(x)
        return [self.full(h), self.low(h)]


def _deep_supervision_worker(rank, port, results):
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        torch.set_num_threads(1)
        torch.manual_seed(0)
        model = torch.nn.parallel.DistributedDataParallel(_TwoHeads())  # no find_unused_parameters
        loss_fn = L.DeepSupervisionLoss(L.DiceCELoss(softmax=True, to_onehot_y=True), weight_mode="nnunet")  # [1, 0]
        image = torch.randn(2, 1, 6, 6, 6, dtype=torch.float64)
        labels = torch.randint(0, 3, (2, 1, 6, 6, 6))
        for _ in range(3):  # DDP reports unused parameters at the start of the next iteration
            model.zero_grad()
            loss_fn(model(image), labels).backward()
        results[rank] = float(model.module.low.weight.grad.abs().sum())
    except Exception as err:  # noqa: BLE001 - reported to the test
        results[rank] = repr(err)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_deep_supervision_zero_weight_head_needs_no_find_unused_parameters():
    manager = mp.Manager()
    results = manager.dict()
    mp.start_processes(_deep_supervision_worker, args=(_free_port(), results), nprocs=WORLD, start_method="spawn",
                       join=True)
    assert dict(results) == {0: 0.0, 1: 0.0}
