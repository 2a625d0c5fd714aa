"""ExpLog and AnatomyNet behaviours beyond the reference formulas: frequencies, availability masks, MONAI meta."""
from __future__ import annotations

import pytest
import torch

import medloss.losses as L
from medloss.errors import OptionTypeError, ShapeMismatchError
from tests._helpers import random_case

pytestmark = pytest.mark.usefixtures("table_engine")  # every engine is held to these numbers


def test_explog_running_frequencies_accumulate_in_training_only():
    logits, labels = random_case((2, 3, 5, 4, 3))
    loss = L.ExpLogLoss(softmax=True, to_onehot_y=True, class_frequencies="running")
    loss(logits, labels)
    loss(logits, labels)
    counts = torch.bincount(labels.flatten(), minlength=3).double()
    torch.testing.assert_close(loss.class_counts, 2 * counts)
    loss.eval()
    loss(logits, labels)
    torch.testing.assert_close(loss.class_counts, 2 * counts)
    # with counts proportional to the batch's, the loss equals the per-batch-frequency loss
    batch_freq = L.ExpLogLoss(softmax=True, to_onehot_y=True)
    torch.testing.assert_close(loss(logits, labels), batch_freq(logits, labels))
    restored = L.ExpLogLoss(softmax=True, to_onehot_y=True, class_frequencies="running")
    restored.load_state_dict(loss.state_dict())
    torch.testing.assert_close(restored.class_counts, loss.class_counts)


def test_explog_given_frequencies_scale_only_the_cross_term():
    logits, labels = random_case((2, 3, 5, 4, 3))
    uniform = L.ExpLogLoss(softmax=True, to_onehot_y=True, class_frequencies=[1.0, 1.0, 1.0], w_dice=0.0)
    skewed = L.ExpLogLoss(softmax=True, to_onehot_y=True, class_frequencies=[1.0, 1.0, 0.25], w_dice=0.0)
    cross_u, cross_s = uniform(logits, labels), skewed(logits, labels)
    # the rarer label 2 gets weight (2.25/0.25)^0.5 = 3 > 3^0.5
    assert float(cross_s.detach()) > float(cross_u.detach())
    dice_only = [L.ExpLogLoss(softmax=True, to_onehot_y=True, class_frequencies=f, w_cross=0.0) for f in
                 ([1.0, 1.0, 1.0], [1.0, 1.0, 0.25])]
    torch.testing.assert_close(dice_only[0](logits, labels), dice_only[1](logits, labels))


def test_anatomynet_unannotated_classes_contribute_nothing():
    """Masking class c in sample b == the loss computed as if sample b's class-c statistics did not exist."""
    logits, labels = random_case((2, 3, 5, 4, 3))
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    loss = L.AnatomyNetLoss(softmax=True, to_onehot_y=True, reduction="none")
    no_focal = L.AnatomyNetLoss(softmax=True, to_onehot_y=True, reduction="none", lambda_focal=0.0)
    # class 2 only sees sample 1's statistics: its Dice term equals the Dice term of sample 1 alone
    torch.testing.assert_close(no_focal(logits, labels, class_mask=mask)[0, 2], no_focal(logits[1:], labels[1:])[0, 2])
    # the available classes are untouched
    torch.testing.assert_close(no_focal(logits, labels, class_mask=mask)[0, :2], no_focal(logits, labels)[0, :2])
    # the focal term of class 2 drops sample 0's voxels from the sum (N still counts every voxel)
    focal_only = L.AnatomyNetLoss(softmax=True, to_onehot_y=True, reduction="none", lambda_focal=1.0, alpha=0.0,
                                  beta=0.0, smooth_dr=0.0)
    full, part = focal_only(logits, labels), focal_only(logits, labels, class_mask=mask)
    assert float(part[0, 2]) < float(full[0, 2])
    # a class annotated nowhere has a zero term and zero gradient
    x = logits.detach().clone().requires_grad_()
    out = loss(x, labels, class_mask=torch.tensor([1, 1, 0]))
    assert float(out[0, 2]) == 0.0
    out.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_anatomynet_reads_the_class_mask_from_monai_meta():
    from monai.data import MetaTensor

    logits, labels = random_case((2, 3, 5, 4, 3))
    mask = torch.tensor([[1, 0, 1], [1, 1, 1]])
    target = MetaTensor(labels, meta={"class_mask": mask})
    loss = L.AnatomyNetLoss(softmax=True, to_onehot_y=True)
    torch.testing.assert_close(loss(logits, target), loss(logits, labels, class_mask=mask))


def test_anatomynet_class_mask_errors():
    logits, labels = random_case((2, 3, 5, 4, 3))
    loss = L.AnatomyNetLoss(softmax=True, to_onehot_y=True)
    with pytest.raises(ShapeMismatchError, match="`class_mask`"):
        loss(logits, labels, class_mask=torch.ones(2, 4))
    with pytest.raises(ShapeMismatchError, match="`class_mask`"):
        loss(logits, labels, class_mask=torch.full((2, 3), 0.5))
    with pytest.raises(OptionTypeError, match="`class_mask`"):
        loss(logits, labels, class_mask="all")


def test_anatomynet_default_is_the_paper_sum_over_classes():
    """With all classes available and unit weights: C - sum_c Dice_c (batch-pooled) + lambda * focal."""
    logits, labels = random_case((2, 3, 5, 4, 3))
    dice_only = L.AnatomyNetLoss(softmax=True, to_onehot_y=True, lambda_focal=0.0)(logits, labels)
    batch_dice = L.DiceLoss(softmax=True, to_onehot_y=True, batch=True, smooth_nr=0.0, smooth_dr=2e-5, reduction="sum")
    torch.testing.assert_close(dice_only, batch_dice(logits, labels), rtol=1e-10, atol=1e-12)


def test_explog_one_channel_probabilities_are_binary_as_its_sigmoid_logits():
    import warnings

    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 1, 4, 4, 4, generator=gen, dtype=torch.float64)
    y = (torch.rand(2, 1, 4, 4, 4, generator=gen) > 0.5).long()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI's single-channel to_onehot_y warning
        from_probs = L.ExpLogLoss(to_onehot_y=True)(torch.sigmoid(x), y)
        from_logits = L.ExpLogLoss(to_onehot_y=True, sigmoid=True)(x, y)
    torch.testing.assert_close(from_probs, from_logits)


def test_anatomynet_one_channel_is_a_typed_error():
    with pytest.raises(ShapeMismatchError, match="1 channel: AnatomyNetLoss"):
        L.AnatomyNetLoss(to_onehot_y=True)(torch.rand(2, 1, 4, 4, 4), torch.zeros(2, 1, 4, 4, 4, dtype=torch.long))
