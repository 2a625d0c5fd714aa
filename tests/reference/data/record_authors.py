"""Record the authors' loss code on small fixed inputs (values, gradients, distance maps) as JSON.

Not a test: run by hand where the authors' repositories are available (git mirrors or checkouts; the slow test
``test_live_authors_code_reproduces_the_recorded_numbers`` runs it when MEDLOSS_NNUNET_SRC and
MEDLOSS_BOUNDARY_LOSS_SRC name them), e.g.

    python tests/reference/data/record_authors.py --nnunet /path/to/nnUNet --boundary /path/to/boundary-loss

Each path is a git directory or a work tree; the files are read at HEAD (the recorded commit is stored). Their code
runs as published, with only unrelated imports stubbed (medpy in boundary-loss's utils.py, used by its metrics)
and NumPy's removed ``np.bool`` alias restored for ``one_hot2dist``. The tests in
``tests/losses/test_authors_recorded.py`` compare medloss with the stored numbers on the same inputs (rebuilt here
by :func:`inputs`, also stored). mlyg/unified-focal-loss is TensorFlow code whose ``asymmetric_focal_loss`` does
not compile (IndentationError at commit 411c9c5), so it is not recorded; its formulas are checked through the
reference in ``tests/reference/unified_focal.py``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
NNUNET_FILES = ["nnunetv2/training/loss/robust_ce_loss.py", "nnunetv2/training/loss/dice.py",
                "nnunetv2/training/loss/compound_losses.py", "nnunetv2/utilities/helpers.py",
                "nnunetv2/utilities/ddp_allgather.py"]


def inputs() -> dict:
    """The fixed inputs: 3-D logits/labels for top-k, 2-D probabilities/labels for the boundary loss."""
    gen = torch.Generator().manual_seed(13)
    logits = 2.0 * torch.randn(2, 3, 6, 5, 4, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 1, 6, 5, 4), generator=gen)
    probs2d = torch.softmax(2.0 * torch.randn(2, 3, 9, 8, generator=gen, dtype=torch.float64), dim=1)
    labels2d = torch.zeros(2, 9, 8, dtype=torch.int64)
    labels2d[0, 2:6, 1:5] = 1
    labels2d[0, 6:8, 5:7] = 2
    labels2d[1, 1:4, 2:7] = 2  # class 1 absent from sample 1
    return {"logits": logits, "labels": labels, "probs2d": probs2d, "labels2d": labels2d}


def _git_files(repo: str, files: list[str], dest: Path) -> str:
    git = ["git", "-C", repo]
    for f in files:
        out = dest / f
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(subprocess.run([*git, "show", f"HEAD:{f}"], check=True, capture_output=True, text=True).stdout)
    return subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()


def _value_grad(fn, x):
    x = x.detach().clone().requires_grad_()
    out = fn(x)
    out.backward()
    return float(out), x.grad.flatten().tolist()


def record_nnunet(repo: str, data: dict, tmp: Path) -> dict:
    commit = _git_files(repo, NNUNET_FILES, tmp)
    for pkg in ["nnunetv2", "nnunetv2/training", "nnunetv2/training/loss", "nnunetv2/utilities"]:
        (tmp / pkg / "__init__.py").touch()
    sys.path.insert(0, str(tmp))
    from nnunetv2.training.loss.compound_losses import DC_and_topk_loss
    from nnunetv2.training.loss.robust_ce_loss import TopKLoss

    x, y = data["logits"], data["labels"]
    out = {"commit": commit}
    for k in (10, 25):
        out[f"topk_k{k}"] = _value_grad(lambda z, k=k: TopKLoss(k=k)(z, y), x)
    for batch_dice in (False, True):
        loss = DC_and_topk_loss({"batch_dice": batch_dice, "smooth": 1e-5, "do_bg": False, "ddp": False},
                                {"k": 10, "label_smoothing": 0.0}, weight_ce=1, weight_dice=1)
        out[f"dc_topk_batch{int(batch_dice)}"] = _value_grad(lambda z, loss=loss: loss(z, y), x)
    return out


def record_boundary(repo: str, data: dict, tmp: Path) -> dict:
    commit = _git_files(repo, ["utils.py", "losses.py"], tmp)
    import scipy.ndimage  # noqa: F401  (imported before the alias below, which numpy.ma would trip on)
    import skimage.io  # noqa: F401

    np.bool = bool  # removed from NumPy 1.24; one_hot2dist still uses it
    medpy = types.ModuleType("medpy")
    medpy.metric = types.ModuleType("medpy.metric")
    medpy.metric.binary = types.ModuleType("medpy.metric.binary")
    medpy.metric.binary.hd = None
    sys.modules.update({"medpy": medpy, "medpy.metric": medpy.metric, "medpy.metric.binary": medpy.metric.binary})
    sys.path.insert(0, str(tmp))
    import losses
    import utils

    probs, labels = data["probs2d"], data["labels2d"]
    onehot = torch.nn.functional.one_hot(labels, 3).movedim(-1, 1).numpy()
    out = {"commit": commit}
    for name, resolution in (("unit", None), ("aniso", (0.8, 1.5))):
        dist = np.stack([utils.one_hot2dist(onehot[b], resolution=resolution, dtype=np.float64) for b in range(2)])
        dist_t = torch.from_numpy(dist)
        loss = losses.SurfaceLoss(idc=[1, 2])
        out[f"surface_{name}"] = {"dist": dist.flatten().tolist(),
                                  "value_grad": _value_grad(lambda p, loss=loss, dist_t=dist_t: loss(p, dist_t), probs)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nnunet", help="MIC-DKFZ/nnUNet git directory")
    parser.add_argument("--boundary", help="LIVIAETS/boundary-loss git directory")
    parser.add_argument("--out", default=str(HERE / "authors_recorded.json"))
    args = parser.parse_args()
    data = inputs()
    record = {"inputs": {k: v.flatten().tolist() for k, v in data.items()},
              "shapes": {k: list(v.shape) for k, v in data.items()}}
    with tempfile.TemporaryDirectory() as tmp:
        if args.nnunet:
            record["nnunet"] = record_nnunet(args.nnunet, data, Path(tmp) / "nnunet")
        if args.boundary:
            record["boundary"] = record_boundary(args.boundary, data, Path(tmp) / "boundary")
    Path(args.out).write_text(json.dumps(record))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
