"""medloss.transforms: dataset scans, the counting transform, the trainer handler and a bundle config."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("monai")

from monai.data import DataLoader, Dataset, MetaTensor  # noqa: E402
from monai.transforms import Compose, Lambdad  # noqa: E402

from medloss.errors import InvalidOptionError, OptionTypeError, ShapeMismatchError  # noqa: E402
from medloss.functional.weights import RunningClassCounts, class_weights  # noqa: E402
from medloss.losses import CrossEntropyLoss, FocalLoss  # noqa: E402
from medloss.transforms import (  # noqa: E402
    ClassCountsd,
    ClassCountsHandler,
    compute_class_weights,
    dataset_class_counts,
)

NUM_CLASSES = 3


def _items(n=5, shape=(1, 6, 5, 4), ignore=None):
    gen = torch.Generator().manual_seed(0)
    items = []
    for i in range(n):
        lab = torch.multinomial(torch.tensor([0.8, 0.15, 0.05]), int(np.prod(shape)), True, generator=gen)
        lab = lab.reshape(shape).float()
        if ignore is not None:
            lab[..., 0] = ignore
        items.append({"image": torch.randn(shape, generator=gen), "label": MetaTensor(lab), "id": i})
    return items


def _brute(items, ignore=None):
    """Per-class counts by comparing every voxel with every class."""
    labels = torch.cat([torch.as_tensor(it["label"]).reshape(-1) for it in items])
    return [int(((labels == c) & (labels != (ignore if ignore is not None else -1))).sum()) for c in range(NUM_CLASSES)]


@pytest.mark.parametrize("ignore", [None, 255])
def test_dataset_scan_counts_every_voxel(ignore):
    items = _items(ignore=ignore)
    want = _brute(items, ignore)
    assert dataset_class_counts(Dataset(items), NUM_CLASSES, ignore_index=ignore).tolist() == want
    loader = DataLoader(Dataset(items), batch_size=2, num_workers=0)
    assert dataset_class_counts(loader, NUM_CLASSES, ignore_index=ignore).tolist() == want
    # a patch sampler returns a list of dicts per item
    assert dataset_class_counts([items[:2], items[2:]], NUM_CLASSES, ignore_index=ignore).tolist() == want
    arrays = [it["label"].numpy() for it in items]
    assert dataset_class_counts(arrays, NUM_CLASSES, ignore_index=ignore).tolist() == want


def test_compute_class_weights_feeds_the_losses():
    items = _items()
    w = compute_class_weights(Dataset(items), NUM_CLASSES, scheme="inverse_sqrt", normalize="mean")
    assert torch.equal(w, class_weights(_brute(items), "inverse_sqrt", normalize="mean"))
    assert w.shape == (NUM_CLASSES,) and w.dtype == torch.float32
    logits = torch.randn(2, NUM_CLASSES, 6, 5, 4)
    label = torch.stack([items[0]["label"].as_tensor(), items[1]["label"].as_tensor()])
    assert torch.isfinite(CrossEntropyLoss(weight=w)(logits, label))
    assert torch.isfinite(FocalLoss(weight=w, to_onehot_y=True, use_softmax=True)(logits, label))


def test_scan_errors_name_the_problem():
    with pytest.raises(InvalidOptionError, match=r"'seg'.*label_key"):
        dataset_class_counts(_items(), NUM_CLASSES, label_key="seg")
    with pytest.raises(OptionTypeError, match=r"file name.*LoadImaged"):
        dataset_class_counts([{"label": "case0.nii.gz"}], NUM_CLASSES)
    with pytest.raises(OptionTypeError, match="`data`"):
        dataset_class_counts(42, NUM_CLASSES)


def test_class_countsd_accumulates_and_leaves_data_unchanged():
    items = _items()
    counter = RunningClassCounts(NUM_CLASSES)
    transform = Compose([Lambdad("image", lambda x: x * 2), ClassCountsd("label", counter=counter)])
    for it in items:
        out = transform(dict(it))
        assert torch.equal(out["label"], it["label"]) and out["id"] == it["id"]
    assert counter.counts.tolist() == _brute(items)
    assert counter.num_updates == len(items)
    t = transform.transforms[-1]
    assert torch.equal(t.weights("log"), class_weights(counter.counts, "log"))


def test_class_countsd_warns_in_a_worker(monkeypatch):
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: object())
    t = ClassCountsd(num_classes=NUM_CLASSES)
    with pytest.warns(UserWarning, match="worker"):
        t(_items(1)[0])


def test_class_countsd_options():
    with pytest.raises(InvalidOptionError, match="num_classes"):
        ClassCountsd("label")
    with pytest.raises(ShapeMismatchError, match="num_classes"):
        ClassCountsd("label", num_classes=4, counter=RunningClassCounts(3))


def _trainer(items, handler, epochs=2):
    pytest.importorskip("ignite")
    from monai.engines import SupervisedTrainer

    net = torch.nn.Conv3d(1, NUM_CLASSES, 1)
    loader = DataLoader(Dataset(items), batch_size=2, num_workers=0, shuffle=False)
    trainer = SupervisedTrainer(
        device=torch.device("cpu"), max_epochs=epochs, train_data_loader=loader, network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.01), loss_function=handler.loss or CrossEntropyLoss(),
        train_handlers=[handler],
    )
    trainer.run()
    return trainer


def test_handler_counts_batches_and_refreshes_the_loss_weights():
    items = _items(n=4)
    loss = CrossEntropyLoss()
    handler = ClassCountsHandler(num_classes=NUM_CLASSES, loss=loss, scheme="inverse", normalize="mean")
    _trainer(items, handler, epochs=2)
    want = [2 * c for c in _brute(items)]  # every item seen once per epoch
    assert handler.counter.counts.tolist() == want
    # MONAI's trainer decollates engine.state.batch into a list of dicts: every item is one update
    assert handler.counter.num_updates == 8
    assert torch.allclose(loss.weight.float(), class_weights(want, "inverse", normalize="mean"))


def test_handler_drops_background_for_focal_and_checkpoints():
    items = _items(n=2)
    focal = FocalLoss(to_onehot_y=True, use_softmax=True, include_background=False)
    handler = ClassCountsHandler(num_classes=NUM_CLASSES, loss=focal, include_background=False, scheme="log")
    assert handler.weight_attr == "class_weight"
    _trainer(items, handler, epochs=1)
    assert torch.allclose(focal.class_weight.float(), class_weights(_brute(items), "log")[1:])
    other = ClassCountsHandler(num_classes=NUM_CLASSES)
    other.load_state_dict(handler.state_dict())
    assert torch.equal(other.counter.counts, handler.counter.counts)
    with pytest.raises(InvalidOptionError, match="weight_attr"):
        ClassCountsHandler(num_classes=NUM_CLASSES, loss=torch.nn.MSELoss())
    with pytest.raises(InvalidOptionError, match="interval"):
        ClassCountsHandler(num_classes=NUM_CLASSES, interval=0)
    with pytest.raises(InvalidOptionError, match="Did you mean"):
        ClassCountsHandler(num_classes=NUM_CLASSES, scheme="inverse-sqrt")


def test_bundle_config_wires_weights_into_the_loss():
    from monai.bundle import ConfigParser

    items = _items()
    parser = ConfigParser({
        "dataset": {"_target_": "monai.data.Dataset", "data": items},
        "class_weights": {"_target_": "medloss.transforms.compute_class_weights", "data": "@dataset",
                          "num_classes": NUM_CLASSES, "scheme": "inverse_sqrt", "normalize": "mean"},
        "loss": {"_target_": "medloss.losses.CrossEntropyLoss", "weight": "@class_weights"},
        "ds_loss": {"_target_": "medloss.losses.deep_supervision.DeepSupervisionLoss", "loss": "@loss"},
    })
    loss = parser.get_parsed_content("loss")
    assert torch.allclose(loss.weight.float(), class_weights(_brute(items), "inverse_sqrt", normalize="mean"))
    assert parser.get_parsed_content("ds_loss").loss is loss


def test_medloss_import_does_not_import_monai():
    code = (
        "import sys, medloss, medloss.functional.weights, medloss.losses.deep_supervision; "
        "assert 'monai' not in sys.modules, 'monai imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
