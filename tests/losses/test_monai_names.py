"""Every segmentation loss name of ``monai.losses`` 1.6.1 is importable from ``medloss.losses``, aliases included.

The list is read from MONAI's own ``monai/losses/__init__.py`` (its ``from .module import names`` lines), leaving
out the modules whose losses are not segmentation losses: registration, self-supervised, perceptual/adversarial,
image similarity, box and AUC losses, and the generic ``MaskedLoss`` wrapper.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

monai_losses = pytest.importorskip("monai.losses")

import medloss.losses as L  # noqa: E402

NOT_SEGMENTATION = {
    "deform", "image_dissimilarity", "multi_scale",  # registration
    "contrastive", "barlow_twins",  # self-supervised
    "perceptual", "adversarial_loss", "spectral_loss",  # perceptual / adversarial
    "ssim_loss", "sure_loss",  # image similarity
    "giou_loss",  # boxes
    "aucm_loss",  # classification AUC
    "spatial_mask",  # MaskedLoss: a wrapper around any loss, not a loss
}


def monai_segmentation_names() -> list[str]:
    tree = ast.parse(Path(monai_losses.__file__).read_text())
    names = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module not in NOT_SEGMENTATION:
            names += [alias.asname or alias.name for alias in node.names]
    return sorted(names)


def test_the_monai_list_is_read_and_complete():
    names = monai_segmentation_names()
    # a few names each kind of entry must produce; guards against parsing nothing
    assert {"DiceLoss", "Dice", "dice_ce", "MCCLoss", "NACLLoss", "GeneralizedWassersteinDiceLoss"} <= set(names)
    assert "SSIMLoss" not in names and "MaskedLoss" not in names


@pytest.mark.parametrize("name", monai_segmentation_names())
def test_medloss_exports_every_monai_segmentation_loss_name(name):
    assert hasattr(L, name), f"medloss.losses has no {name} (monai.losses has)"
    assert name in L.__all__


@pytest.mark.parametrize("alias,cls", [
    ("Dice", "DiceLoss"), ("dice_ce", "DiceCELoss"), ("dice_focal", "DiceFocalLoss"),
    ("generalized_dice", "GeneralizedDiceLoss"), ("generalized_dice_focal", "GeneralizedDiceFocalLoss"),
    ("generalized_wasserstein_dice", "GeneralizedWassersteinDiceLoss"),
])
def test_aliases_name_the_same_classes_as_monai(alias, cls):
    assert getattr(monai_losses, alias) is getattr(monai_losses, cls)
    assert getattr(L, alias) is getattr(L, cls)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("batch", [False, True])
def test_log_hausdorff_matches_monai(reduction, batch):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 7, 6, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 3, (2, 1, 7, 6, 5), generator=gen)
    kw = dict(softmax=True, to_onehot_y=True, reduction=reduction, batch=batch)
    ours, theirs = L.LogHausdorffDTLoss(**kw)(x, y), monai_losses.LogHausdorffDTLoss(**kw)(x, y)
    torch.testing.assert_close(ours, theirs.reshape(ours.shape), rtol=1e-5, atol=1e-8)
    g_ours, = torch.autograd.grad(ours.sum(), x)
    g_theirs, = torch.autograd.grad(theirs.sum(), x)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-5, atol=1e-9)


def test_log_hausdorff_is_log1p_of_hausdorff_per_entry():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 2, 8, 8, 8, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 2, (2, 1, 8, 8, 8), generator=gen)
    kw = dict(softmax=True, to_onehot_y=True, include_background=True, reduction="none")
    hd = L.HausdorffDTLoss(**kw)(x, y)
    assert hd.shape == (2, 2)
    torch.testing.assert_close(L.LogHausdorffDTLoss(**kw)(x, y), torch.log1p(hd))


@pytest.mark.parametrize("kwargs,activation", [
    ({}, "sigmoid"), ({"use_softmax": True}, "softmax"), ({"softmax": True}, "softmax"),
    ({"use_softmax": True, "softmax": False}, "sigmoid"),  # the alias, when given, decides
])
def test_focal_holds_one_activation_name_and_reads_back_monais_flag(kwargs, activation):
    loss = L.FocalLoss(**kwargs)
    assert loss.activation == activation
    assert loss.use_softmax is (activation == "softmax")
    assert monai_losses.FocalLoss(use_softmax=loss.use_softmax).use_softmax is loss.use_softmax
