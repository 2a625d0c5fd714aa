"""The synthetic lesion generator: seeded, several lesions of different sizes, realistic intensities, valid files."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from medloss.data import make_lesion_dataset, make_lesion_volume
from medloss.errors import InvalidOptionError


def test_same_seed_same_volume_and_different_seed_differs():
    a = make_lesion_volume(32, seed=7)
    b = make_lesion_volume(32, seed=7)
    c = make_lesion_volume(32, seed=8)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.label, b.label)
    assert not np.array_equal(a.label, c.label)


def test_several_lesions_of_different_sizes():
    case = make_lesion_volume(64, num_lesions=(4, 4), radius_range=(2.0, 8.0), seed=3)
    assert case.image.shape == (1, 64, 64, 64) and case.image.dtype == np.float32
    assert case.label.shape == (64, 64, 64) and case.label.dtype == np.uint8
    assert len(case.lesion_radii) == 4
    radii = [r for r, _ in case.lesion_radii]
    assert max(radii) / min(radii) > 1.3  # sizes differ
    _, n_components = ndimage.label(case.label > 0)
    assert 2 <= n_components <= 4  # lesions may touch, but the mask is not one blob
    sizes = np.bincount(ndimage.label(case.label > 0)[0].ravel())[1:]
    assert sizes.max() > 3 * sizes.min()


def test_lesion_free_cases_are_possible():
    empty = make_lesion_volume(32, num_lesions=(0, 0), seed=5)
    assert not empty.label.any() and empty.lesion_radii == []
    assert empty.image.max() > 100  # still a head
    counts = {len(make_lesion_volume(20, num_lesions=(0, 2), seed=s).lesion_radii) for s in range(12)}
    assert 0 in counts and max(counts) > 0


def test_intensities_are_mr_like_with_lesion_contrast_and_noise():
    case = make_lesion_volume(48, num_channels=3, noise=0.05, seed=1)
    flair, t1, _ = case.image
    lesion, head = case.label > 0, flair > 100
    assert 300 < flair[lesion].mean() < 900  # an MR-like scale, not 0..1
    assert flair[lesion].mean() > 1.3 * flair[head & ~lesion].mean()  # FLAIR: bright lesions
    assert t1[lesion].mean() < t1[head & ~lesion].mean()  # T1: dark lesions
    background = flair[:4, :4, :4]
    assert background.std() > 5.0 and background.min() >= 0.0  # Rician noise floor, never negative


def test_multi_class_labels():
    case = make_lesion_volume(48, num_classes=3, num_lesions=(6, 6), seed=2)
    assert set(np.unique(case.label)) <= {0, 1, 2}
    assert {cls for _, cls in case.lesion_radii} == {1, 2}


@pytest.mark.parametrize("kwargs",
                         [{"size": 8}, {"num_lesions": (3, 2)}, {"num_lesions": (-1, 2)}, {"radius_range": (0.5, 2.0)},
                                    {"num_channels": 4}, {"num_classes": 1}, {"noise": 0.9}])
def test_bad_options_raise_typed_error(kwargs):
    with pytest.raises(InvalidOptionError):
        make_lesion_volume(**{"size": 32, **kwargs})


def test_dataset_files_datalist_and_reuse(tmp_path):
    path = make_lesion_dataset(tmp_path, 5, size=32, num_channels=2, seed=4)
    content = json.loads(path.read_text(encoding="utf-8"))
    assert len(content["training"]) == 4 and len(content["validation"]) == 1
    item = content["validation"][0]
    assert isinstance(item["image"], list) and len(item["image"]) == 2
    img = nib.load(str(tmp_path / item["image"][0]))
    lab = nib.load(str(tmp_path / item["label"]))
    assert img.shape == lab.shape == (32, 32, 32)
    assert np.asarray(lab.dataobj).max() >= 1
    stamp = (tmp_path / item["label"]).stat().st_mtime_ns
    make_lesion_dataset(tmp_path, 5, size=32, num_channels=2, seed=4)  # same arguments: reused, not rewritten
    assert (tmp_path / item["label"]).stat().st_mtime_ns == stamp
    # a larger set extends the smaller one: case i depends only on (seed, i)
    other = make_lesion_dataset(tmp_path / "more", 6, size=32, num_channels=2, seed=4)
    first = json.loads(other.read_text(encoding="utf-8"))["training"][0]
    np.testing.assert_array_equal(np.asarray(nib.load(str(tmp_path / "more" / first["label"])).dataobj),
                                  np.asarray(nib.load(str(tmp_path / content["training"][0]["label"])).dataobj))


def test_dataset_rejects_too_few_samples(tmp_path):
    with pytest.raises(InvalidOptionError, match="num_samples"):
        make_lesion_dataset(tmp_path, 1)


def test_class_contrast_orders_the_class_intensities():
    case = make_lesion_volume(48, num_classes=4, num_lesions=(6, 6), class_contrast=[0.0, 0.5, 1.5], seed=2)
    flair = case.image[0]
    means = [flair[case.label == k].mean() for k in (1, 2, 3)]
    white_matter = np.median(flair[(flair > 200) & (case.label == 0)])
    assert means[0] > means[1] > white_matter > means[2]  # class 3 darker than white matter
    default = make_lesion_volume(48, num_classes=3, seed=2)
    assert np.array_equal(default.image, make_lesion_volume(48, num_classes=3, seed=2, class_contrast=0.18).image)


@pytest.mark.parametrize("class_contrast", [-0.1, 0.9, [0.0, 0.5], [0.0, 0.5, 2.0]])
def test_bad_class_contrast_raises_typed_error(class_contrast):
    with pytest.raises(InvalidOptionError, match="class_contrast"):
        make_lesion_volume(32, num_classes=4, class_contrast=class_contrast)


def test_class_radius_gives_each_class_its_own_size_range():
    ranges = [[2.0, 3.0], [6.0, 8.0]]
    case = make_lesion_volume(48, num_classes=3, num_lesions=(6, 6), class_radius=ranges, seed=4)
    for radius, cls in case.lesion_radii:
        assert ranges[cls - 1][0] <= radius <= ranges[cls - 1][1]
    with pytest.raises(InvalidOptionError, match="class_radius"):
        make_lesion_volume(32, num_classes=3, class_radius=[[2.0, 3.0]])
