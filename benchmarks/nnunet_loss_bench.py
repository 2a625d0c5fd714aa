#!/usr/bin/env python
"""medloss's nnU-Net trainer losses vs nnU-Net's own: forward+backward time and peak memory with deep supervision.

    python benchmarks/nnunet_loss_bench.py                               # benchmarks/README.md's CPU figures
    python benchmarks/nnunet_loss_bench.py --device cuda                 # on a GPU
    python benchmarks/nnunet_loss_bench.py --shapes 1x3x16 --levels 3 --repeats 1 --json out.json   # plumbing

Cases (each built as the trainers build them: batch Dice on, nnU-Net's deep-supervision weights 1/2^i with the
lowest scale 0, targets as nnU-Net's loader gives them, int16):

* ``dice_ce``: ``nnUNetTrainerMedlossDiceCE``'s loss vs nnU-Net's ``DC_and_CE_loss`` (label maps, C classes);
* ``dice_topk``: ``nnUNetTrainerMedlossDiceTopK10``'s loss vs ``DC_and_topk_loss`` (k = 10);
* ``dice_bce``: the region-based DiceCE loss vs ``DC_and_BCE_loss`` with C regions and nnU-Net's ignore channel
  (5 % of the voxels ignored);
* ``skeleton_recall``, ``blob`` and ``dice_boundary`` (``--maps``, on by default): the map trainers' losses
  (``nnUNetTrainerMedlossSkeletonRecall``, ``nnUNetTrainerMedlossBlob``, ``nnUNetTrainerMedlossDiceBoundary`` at
  epoch 0) given their maps, against nnU-Net's ``DC_and_CE_loss`` on the same batch as the cost of nnU-Net's
  default (different losses: no parity gate), and the time the trainers' ``LabelMapTransform`` takes for one
  sample's label at all scales (one loader worker; for Dice + boundary, C - 1 signed distance maps per scale).

Per case, value and gradients of every scale must agree (float32, rtol 1e-4, atol 1e-6) before timing. Time: median
of ``--repeats`` fwd+bwd after ``--warmup``, implementations interleaved (A B, then B A, ...), synchronised on CUDA.
Memory: CUDA ``max_memory_allocated`` during one fwd+bwd minus what was allocated before; on CPU the peak of live
torch-allocated bytes (torch.profiler memory events). Both include the logits' gradients (1x the logits).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F


def parse_shape(text: str) -> tuple[int, int, int]:
    b, c, s = (int(v) for v in text.lower().split("x"))
    return b, c, s


def make_batch(shape, levels: int, *, regions: bool, device, seed: int = 0):
    """Logits of a partly trained net at ``levels`` scales and nnU-Net-layout targets (smooth blobs)."""
    b, c, s = shape
    gen = torch.Generator().manual_seed(seed)
    field = torch.randn(b, c, *(max(2, s // 8),) * 3, generator=gen)
    field = F.interpolate(field, size=(s, s, s), mode="trilinear", align_corners=False)
    if regions:  # nested regions (as BraTS's whole tumour / core / enhancing) plus nnU-Net's ignore channel
        score = field[:, :1]
        masks = torch.cat([score > 0.3 * i for i in range(c)], 1)
        ignored = torch.rand(b, 1, s, s, s, generator=gen) < 0.05
        full_target = torch.cat([masks, ignored], 1).to(torch.int16)
        full_logits = 3.0 * (masks.float() - 0.5) + torch.randn(b, c, s, s, s, generator=gen)
    else:
        labels = field.argmax(1, keepdim=True)
        full_target = labels.to(torch.int16)
        full_logits = 3.0 * F.one_hot(labels[:, 0], c).movedim(-1, 1).float() + torch.randn(b, c, s, s, s,
                                                                                          generator=gen)
    outputs, targets = [], []
    for level in range(levels):
        step = 2**level
        outputs.append(full_logits[:, :, ::step, ::step, ::step].contiguous().to(device))
        targets.append(full_target[:, :, ::step, ::step, ::step].contiguous().to(device))
    return outputs, targets


def losses(levels: int, channels: int):
    """{case: (regions, {implementation: loss})} built with the trainers' conventions."""
    from nnunetv2.training.loss.compound_losses import DC_and_BCE_loss, DC_and_CE_loss, DC_and_topk_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    from medloss.nnunet.factory import build_loss, deep_supervision_weights
    from medloss.nnunet.trainers import nnUNetTrainerMedlossDiceCE, nnUNetTrainerMedlossDiceTopK10

    weights = deep_supervision_weights(levels, ddp_without_compile=False)
    dice = {"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False}

    def ds(loss):
        return DeepSupervisionWrapper(loss, weights)

    def ours(trainer, regions):
        ignore = 99 if regions else None  # regions: any label marks that the ignore channel is present
        return ds(build_loss(trainer.spec, regions=regions, batch_dice=True, ignore_label=ignore,
                             n_regions=channels))

    return {
        "dice_ce": (False, {
            "nnU-Net DC_and_CE_loss": ds(DC_and_CE_loss(dict(dice), {}, dice_class=MemoryEfficientSoftDiceLoss)),
            "medloss DiceCE trainer": ours(nnUNetTrainerMedlossDiceCE, False)}),
        "dice_topk": (False, {
            "nnU-Net DC_and_topk_loss": ds(DC_and_topk_loss(dict(dice), {"k": 10, "label_smoothing": 0.0})),
            "medloss DiceTopK10 trainer": ours(nnUNetTrainerMedlossDiceTopK10, False)}),
        "dice_bce": (True, {
            "nnU-Net DC_and_BCE_loss": ds(DC_and_BCE_loss({}, {**dice, "do_bg": True}, use_ignore_label=True,
                                                          dice_class=MemoryEfficientSoftDiceLoss)),
            "medloss DiceCE trainer (regions)": ours(nnUNetTrainerMedlossDiceCE, True)}),
    }


def map_losses(levels: int):
    """{case: (trainer, reference, trainer's loss)} for the map-based trainers."""
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    from medloss.nnunet.factory import build_loss, deep_supervision_weights
    from medloss.nnunet.trainers import (
        nnUNetTrainerMedlossBlob,
        nnUNetTrainerMedlossDiceBoundary,
        nnUNetTrainerMedlossSkeletonRecall,
    )

    weights = deep_supervision_weights(levels, ddp_without_compile=False)
    dice = {"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False}
    reference = DeepSupervisionWrapper(DC_and_CE_loss(dict(dice), {}, dice_class=MemoryEfficientSoftDiceLoss), weights)
    return {case: (trainer, reference, DeepSupervisionWrapper(
        build_loss(trainer.spec, regions=False, batch_dice=True, ignore_label=None, n_regions=0), weights))
        for case, trainer in (("skeleton_recall", nnUNetTrainerMedlossSkeletonRecall),
                              ("blob", nnUNetTrainerMedlossBlob),
                              ("dice_boundary", nnUNetTrainerMedlossDiceBoundary))}


def map_rows(shape, levels: int, device, where: str, warmup: int, repeats: int) -> list[dict]:
    """Rows for the map trainers: the reference, the trainer's loss given its maps, and the transform's time."""
    from medloss.nnunet.factory import map_transform
    from medloss.nnunet.maps import split_maps

    outputs, targets = make_batch(shape, levels, regions=False, device=device)
    cpu_targets = [t.cpu() for t in targets]
    rows = []
    for case, (trainer, reference, loss) in map_losses(levels).items():
        transform = map_transform(trainer.spec, ignore_label=None, num_classes=shape[1])
        t0 = time.perf_counter()
        per_sample = [transform(segmentation=[t[b] for t in cpu_targets])["segmentation"]
                      for b in range(shape[0])]
        transform_ms = 1e3 * (time.perf_counter() - t0) / shape[0]
        packed = [torch.stack([sample[level] for sample in per_sample]) for level in range(levels)]
        _, maps = split_maps(packed, transform.channels)
        maps = [m.to(device) for m in maps]

        def with_maps(xs, ts, loss=loss, maps=maps):
            return loss(xs, ts, maps)

        impls = {"nnU-Net DC_and_CE_loss (reference)": reference, f"medloss {trainer.__name__[20:]} trainer": with_maps}
        times = timed(impls, outputs, targets, device, warmup, repeats)
        for name, impl in impls.items():
            rows.append({"case": case, "shape": "x".join(map(str, shape)), "levels": levels, "impl": name,
                         "device": where, "agree": None, "ms": 1e3 * times[name],
                         "peak_mib": peak_bytes(impl, outputs, targets, device) / 2**20})
        rows[-1]["transform_ms_per_sample"] = transform_ms
    return rows


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fwd_bwd(loss, outputs, targets):
    xs = [x.detach().clone().requires_grad_() for x in outputs]
    value = loss(xs, targets)
    value.backward()
    return value.detach(), [x.grad for x in xs]


def agree(ref, cand, outputs, targets) -> bool:
    (a, ga), (b, gb) = fwd_bwd(ref, outputs, targets), fwd_bwd(cand, outputs, targets)
    same = torch.allclose(a, b, rtol=1e-4, atol=1e-6)
    for g, h in zip(ga, gb, strict=True):
        same = same and (g is None) == (h is None) and (g is None or torch.allclose(g, h, rtol=1e-4, atol=1e-6))
    return bool(same)


def peak_bytes(loss, outputs, targets, device) -> int:
    if device.type == "cuda":
        sync(device)
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fwd_bwd(loss, outputs, targets)
        sync(device)
        return torch.cuda.max_memory_allocated(device) - before
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fwd_bwd(loss, outputs, targets)
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.cpu_memory_usage
        peak = max(peak, live)
    return peak


def timed(impls: dict, outputs, targets, device, warmup: int, repeats: int) -> dict:
    names = list(impls)
    for _ in range(warmup):
        for name in names:
            fwd_bwd(impls[name], outputs, targets)
    times = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            sync(device)
            t0 = time.perf_counter()
            fwd_bwd(impls[name], outputs, targets)
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="2x2x128,2x14x96",
                    help="comma-separated BxCxS (S^3 patch, full resolution); empty: none")
    ap.add_argument("--levels", type=int, default=5, help="deep-supervision outputs (S, S/2, ...)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--json", default=None)
    ap.add_argument("--maps", default="2x3x128,2x14x96",
                    help="comma-separated BxCxS for the map trainers (C > 1: label maps); empty: none")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    from importlib.metadata import version

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    print(f"torch {torch.__version__}, nnunetv2 {version('nnunetv2')}, {where}")
    rows = []
    for shape in (parse_shape(s) for s in args.shapes.split(",") if s.strip()):
        for case, (regions, impls) in losses(args.levels, shape[1]).items():
            outputs, targets = make_batch(shape, args.levels, regions=regions, device=device)
            ref_name, ours_name = list(impls)
            ok = agree(impls[ref_name], impls[ours_name], outputs, targets)
            times = timed(impls if ok else {ref_name: impls[ref_name]}, outputs, targets, device, args.warmup,
                          args.repeats)
            for name in impls:
                row = {"case": case, "shape": "x".join(map(str, shape)), "levels": args.levels, "impl": name,
                       "device": where, "agree": ok}
                if name in times:
                    row.update(ms=1e3 * times[name], peak_mib=peak_bytes(impls[name], outputs, targets, device) / 2**20)
                rows.append(row)
    for shape in (parse_shape(s) for s in args.maps.split(",") if s.strip()):
        rows.extend(map_rows(shape, args.levels, device, where, args.warmup, args.repeats))
    print("| case | BxCxS | implementation | agrees | ms (median) | time / nnU-Net | peak MiB | memory / nnU-Net |")
    print("|---|---|---|---|---:|---:|---:|---:|")
    for i in range(0, len(rows), 2):
        ref = rows[i]
        for r in rows[i:i + 2]:
            if "ms" not in r:
                print(f"| {r['case']} | {r['shape']} | {r['impl']} | no | - | - | - | - |")
                continue
            agrees = "n/a" if r["agree"] is None else "yes" if r["agree"] else "no"
            print(f"| {r['case']} | {r['shape']} | {r['impl']} | {agrees} | {r['ms']:.1f} | "
                  f"{r['ms'] / ref['ms']:.2f}x | {r['peak_mib']:.1f} | {r['peak_mib'] / ref['peak_mib']:.2f}x |")
    for r in rows:
        if "transform_ms_per_sample" in r:
            print(f"{r['case']} {r['shape']}: LabelMapTransform {r['transform_ms_per_sample']:.1f} ms per sample "
                  f"({r['levels']} scales, one worker)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0 if all(r["agree"] is not False for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
