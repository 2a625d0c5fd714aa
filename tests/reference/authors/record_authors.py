"""Record the authors' published loss code on small fixed inputs, for the parity tests (CI cannot fetch GitHub).

Run once, by hand, with clones of the three repositories (any commit with the files below; the recorded commits
are stored in the output)::

    python tests/reference/authors/record_authors.py CLDICE_GIT SKELREC_GIT BLOB_GIT

where each argument is a git directory (``git show`` reads the files, nothing is installed). It writes
``authors_outputs.npz`` next to this script: the inputs, the authors' loss values and their gradients (float64).

* jocpae/clDice ``cldice_loss/pytorch``: ``soft_cldice`` and ``soft_dice_cldice`` on probabilities. Their
  ``SoftSkeletonize`` always runs 10 iterations (the ``iter_`` argument is unused) and sums over batch and channels.
* MIC-DKFZ/Skeleton-Recall: ``SkeletonTransform(do_tube=True)`` per sample, then ``DC_SkelREC_and_CE_loss`` with
  the trainer's arguments (smooth 1e-5, no background, weights 1/1/1, ddp off). Two one-line helpers their modules
  import from nnU-Net (``softmax_helper_dim1``, the DDP all-gather) and batchgeneratorsv2's transform base class are
  stubbed: none changes the numbers (softmax over dim 1; ddp is off; the base class only stores nothing).
* neuronflow/blob_loss: ``compute_loss`` with main weight 2, blob weight 1 and MONAI's ``DiceLoss`` as the
  criterion applied after the sigmoid (the paper's masking of probabilities), components from ``cc3d``.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

OUT = Path(__file__).with_name("authors_outputs.npz")


def _show(git_dir: str, path: str) -> str:
    return subprocess.run(["git", "--git-dir", git_dir, "show", f"HEAD:{path}"], check=True, capture_output=True,
                          text=True).stdout


def _commit(git_dir: str) -> str:
    return subprocess.run(["git", "--git-dir", git_dir, "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def structures(rng: np.random.Generator, shape, classes: int) -> np.ndarray:
    """A label map of smooth random blobs and tubes (classes 1..classes-1 on thresholded smoothed noise)."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), 1.2)
    labels = np.zeros(shape, dtype=np.int64)
    cuts = np.quantile(noise, np.linspace(0.6, 0.95, classes))
    for c in range(1, classes):
        labels[(noise > cuts[c - 1]) & (noise <= cuts[c])] = c
    return labels


def main(cldice_git: str, skelrec_git: str, blob_git: str) -> None:
    torch.set_default_dtype(torch.float64)
    rng = np.random.default_rng(13)
    out: dict[str, np.ndarray] = {}
    root = Path(tempfile.mkdtemp())
    for rel in ("cldice_loss/pytorch/cldice.py", "cldice_loss/pytorch/soft_skeleton.py"):
        _write(root / "cl", rel, _show(cldice_git, rel))
    _write(root / "cl", "cldice_loss/__init__.py", "")
    _write(root / "cl", "cldice_loss/pytorch/__init__.py", "")
    for rel in ("nnunetv2/training/loss/dice.py", "nnunetv2/training/loss/compound_losses.py",
                "nnunetv2/training/loss/robust_ce_loss.py",
                "nnunetv2/training/data_augmentation/custom_transforms/skeletonization.py"):
        _write(root / "sr", rel, _show(skelrec_git, rel))
    for pkg in ("nnunetv2", "nnunetv2/training", "nnunetv2/training/loss", "nnunetv2/training/data_augmentation",
                "nnunetv2/training/data_augmentation/custom_transforms", "nnunetv2/utilities",
                "batchgeneratorsv2", "batchgeneratorsv2/transforms", "batchgeneratorsv2/transforms/base"):
        _write(root / "sr", f"{pkg}/__init__.py", "")
    _write(root / "sr", "nnunetv2/utilities/helpers.py",
           "import torch\n\ndef softmax_helper_dim1(x):\n    return torch.softmax(x, 1)\n")
    _write(root / "sr", "nnunetv2/utilities/ddp_allgather.py", "class AllGatherGrad:\n    pass\n")
    _write(root / "sr", "batchgeneratorsv2/transforms/base/basic_transform.py",
           "class BasicTransform:\n    def __init__(self):\n        pass\n")
    _write(root / "bl", "blob_loss.py", _show(blob_git, "blob_loss.py"))
    sys.path[:0] = [str(root / "cl"), str(root / "sr"), str(root / "bl")]

    # clDice: probabilities (2, 1, 10, 10, 10) against a binary map
    from cldice_loss.pytorch.cldice import soft_cldice, soft_dice_cldice

    p = torch.sigmoid(torch.from_numpy(rng.standard_normal((2, 1, 10, 10, 10)) * 2))
    g = torch.from_numpy((structures(rng, (2, 1, 10, 10, 10), 2) > 0).astype(np.float64))
    out["cldice_p"], out["cldice_g"] = p.numpy(), g.numpy()
    for name, loss in (("cldice", soft_cldice(iter_=3, smooth=1.0)), ("dice_cldice", soft_dice_cldice(alpha=0.5))):
        x = p.clone().requires_grad_(True)
        value = loss(g, x)
        value.backward()
        out[f"{name}_value"], out[f"{name}_grad"] = value.detach().numpy(), x.grad.numpy()

    # Skeleton Recall: logits (2, 3, 10, 10, 10), label map with classes 0..2
    from nnunetv2.training.data_augmentation.custom_transforms.skeletonization import SkeletonTransform
    from nnunetv2.training.loss.compound_losses import DC_SkelREC_and_CE_loss
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    logits = torch.from_numpy(rng.standard_normal((2, 3, 10, 10, 10)))
    labels = structures(rng, (2, 1, 10, 10, 10), 3)
    skel = np.stack([SkeletonTransform(do_tube=True).apply({"segmentation": torch.from_numpy(labels[b])})["skel"]
                     .numpy() for b in range(2)])
    kwargs = {"batch_dice": False, "smooth": 1e-5, "do_bg": False, "ddp": False}
    loss = DC_SkelREC_and_CE_loss(soft_dice_kwargs=kwargs, soft_skelrec_kwargs=kwargs, ce_kwargs={}, weight_ce=1,
                                  weight_dice=1, weight_srec=1, dice_class=MemoryEfficientSoftDiceLoss)
    x = logits.clone().requires_grad_(True)
    value = loss(x, torch.from_numpy(labels).double(), torch.from_numpy(skel).double())
    value.backward()
    out.update(srec_logits=logits.numpy(), srec_labels=labels, srec_skeleton=skel,
               srec_value=value.detach().numpy(), srec_grad=x.grad.numpy())

    # blob loss: logits (2, 1, 12, 12, 12), binary label with several components
    import cc3d
    from blob_loss import compute_loss
    from monai.losses import DiceLoss

    logits = torch.from_numpy(rng.standard_normal((2, 1, 12, 12, 12)))
    binary = (structures(rng, (2, 1, 12, 12, 12), 2) > 0).astype(np.int64)
    binary[1, 0, :6] = 0  # fewer lesions in the second sample
    multi = np.stack([cc3d.connected_components(binary[b, 0], connectivity=26)[None] for b in range(2)])
    criterion = {"dice": {"name": "dice", "loss": DiceLoss(include_background=True, sigmoid=False), "weight": 1.0,
                          "sigmoid": True}}
    x = logits.clone().requires_grad_(True)
    value, _, _ = compute_loss({"main_weight": 2, "blob_weight": 1}, criterion, criterion, x,
                               torch.from_numpy(binary).double(), torch.from_numpy(multi.astype(np.int64)))
    value.backward()
    out.update(blob_logits=logits.numpy(), blob_binary=binary, blob_components=multi.astype(np.int64),
               blob_value=value.detach().numpy(), blob_grad=x.grad.numpy())

    out["commits"] = np.array([_commit(cldice_git), _commit(skelrec_git), _commit(blob_git)])
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT}: " + ", ".join(f"{k}={float(v):.6f}" for k, v in out.items() if k.endswith("_value")))


if __name__ == "__main__":
    main(*sys.argv[1:4])
