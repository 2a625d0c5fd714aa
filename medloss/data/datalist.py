"""Data lists for the medloss bundles: synthetic by default, MSD-style JSON for real data, checked up front.

:func:`prepare_data` is what every bundle's ``train.json`` calls (ID ``data``). It returns
``{"training": [...], "validation": [...]}`` with absolute paths, after checking every case so that bad input
fails with one clear, typed error naming the file, before any network is built or any epoch runs:

* a missing ``dataset_dir`` or datalist file → :class:`~medloss.errors.InvalidOptionError`;
* a datalist entry whose file does not exist or cannot be read → :class:`~medloss.errors.VolumeReadError`;
* a label whose shape differs from its image → :class:`~medloss.errors.ShapeMismatchError`;
* a label value outside ``0..num_classes-1`` → :class:`~medloss.errors.LabelValueError`.

Volumes are read with nibabel (NIfTI) or SimpleITK (NRRD, MetaImage and anything else SimpleITK opens).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import numpy as np

from medloss.errors import InvalidOptionError, LabelValueError, ShapeMismatchError, VolumeReadError

__all__ = ["prepare_data", "load_datalist", "check_case", "volume_shape"]

_NIFTI = (".nii", ".nii.gz")


def _open(path: Path) -> tuple[tuple[int, ...], Any]:
    """Return (spatial shape in (x, y, z) order, loader of the array) without reading the voxels yet."""
    if not path.is_file():
        raise VolumeReadError(f"cannot read {str(path)!r}: the file does not exist. Fix the path in the datalist.")
    try:
        if str(path).lower().endswith(_NIFTI):
            import nibabel as nib
            from nibabel.spatialimages import SpatialImage

            img = cast(SpatialImage, nib.load(str(path)))  # a NIfTI suffix opens as a spatial image
            shape = tuple(int(s) for s in img.shape[:3])
            return shape, lambda: np.asanyarray(img.dataobj)
        import SimpleITK as sitk

        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        shape = tuple(int(s) for s in reader.GetSize()[:3])
        # GetArrayFromImage copies: a GetArrayViewFromImage view would outlive its temporary image (segfault)
        return shape, lambda: sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    except Exception as err:  # nibabel raises ImageFileError/OSError/EOFError, SimpleITK RuntimeError
        raise _read_error(path, err) from err


def _read_error(path: Path, err: Exception) -> VolumeReadError:
    text = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    return VolumeReadError(
        f"cannot read {str(path)!r}: {text}. Use a valid NIfTI (.nii/.nii.gz), NRRD (.nrrd) or MetaImage (.mha/.mhd)."
    )


def volume_shape(path: str | Path) -> tuple[int, ...]:
    """Spatial shape ``(x, y, z)`` of a volume file, read from its header only."""
    return _open(Path(path))[0]


def check_case(item: dict, num_classes: int, where: str = "") -> None:
    """Check that one case's files exist, image and label shapes agree and label values are in range.

    Args:
        item: ``{"image": path or [paths], "label": path}`` with absolute (or working-directory relative) paths.
        num_classes: number of label classes including background; values must be in ``0..num_classes-1``.
        where: text naming the source of the entry (e.g. ``"datalist.json, training[3]"``) for messages.
    """
    images = [item["image"]] if isinstance(item["image"], (str, Path)) else list(item["image"])
    label = Path(item["label"])
    shapes = {str(p): _open(Path(p))[0] for p in images}
    label_shape, load_label = _open(label)
    for image, shape in shapes.items():
        if shape != label_shape:
            raise ShapeMismatchError(
                f"label {str(label)!r} has shape {label_shape} but its image {image!r} has shape {shape}{where}. "
                "Image and label must be on the same voxel grid: resample the label onto the image."
            )
    try:
        values = np.unique(np.asarray(load_label()))
    except Exception as err:  # a truncated or corrupt voxel payload behind a valid header
        raise _read_error(label, err) from err
    if values.size and (not np.all(np.mod(values, 1) == 0) or values.min() < 0 or values.max() >= num_classes):
        bad = [v.item() for v in values if v < 0 or v >= num_classes or v % 1 != 0][:8]
        raise LabelValueError(
            f"label {str(label)!r} holds values {bad} outside the configured classes 0..{num_classes - 1}{where}. "
            f"Remap the label, or set num_classes (e.g. `--num_classes {int(values.max()) + 1}`) to match it."
        )


def _resolve(path: str | Path, base: Path) -> str:
    p = Path(path)
    return str(p if p.is_absolute() else (base / p))


def load_datalist(
    datalist: str | Path, dataset_dir: str | Path | None = None, val_fraction: float = 0.2
) -> dict[str, list[dict]]:
    """Read an MSD-style datalist JSON; return ``training`` and ``validation`` lists with absolute paths.

    Relative paths inside the JSON resolve against ``dataset_dir`` (or the JSON's folder when ``dataset_dir`` is
    ``None``). A ``testing`` list (paths or ``{"image": ...}``), if present, is returned as well. A relative
    ``datalist`` path that does not exist from the working directory is looked up in
    ``dataset_dir``. Without a ``validation`` key, the last ``val_fraction`` of ``training`` (at least one case)
    becomes the validation set; a single case serves as both.
    """
    if dataset_dir is not None and not Path(dataset_dir).is_dir():
        raise InvalidOptionError(
            f"`dataset_dir` {str(dataset_dir)!r} does not exist or is not a folder. Pass `--dataset_dir` an "
            "existing folder: the one that holds the images, where the datalist's relative paths start."
        )
    path = Path(datalist)
    if not path.is_file() and dataset_dir is not None and not path.is_absolute():
        path = Path(dataset_dir) / path
    if not path.is_file():
        raise InvalidOptionError(
            f"`datalist` {str(datalist)!r} not found (also looked in dataset_dir {str(dataset_dir)!r}). "
            "Pass `--datalist` an existing MSD-style JSON file with a 'training' list of {'image', 'label'} entries."
        )
    try:
        content = json.loads(path.read_text())
    except ValueError as err:
        raise InvalidOptionError(f"`datalist` {str(path)!r} is not valid JSON: {err}.") from err
    training = content.get("training") if isinstance(content, dict) else None
    if not isinstance(training, list) or not training:
        raise InvalidOptionError(
            f"`datalist` {str(path)!r} has no non-empty 'training' list of {{'image': ..., 'label': ...}} entries."
        )
    base = Path(dataset_dir) if dataset_dir is not None else path.parent
    out: dict[str, list[dict]] = {}
    validation = content.get("validation")
    if not validation:
        n_val = max(1, int(round(len(training) * val_fraction))) if len(training) > 1 else 0
        training, validation = (training[: len(training) - n_val], training[len(training) - n_val :]) if n_val else (
            training, list(training))
    for key, items in (("training", training), ("validation", validation)):
        cases = []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or "image" not in item or "label" not in item:
                raise InvalidOptionError(
                    f"`datalist` {str(path)!r}, {key}[{i}] must be an object with 'image' and 'label', got {item!r}."
                )
            image = item["image"]
            image = _resolve(image, base) if isinstance(image, (str, Path)) else [_resolve(p, base) for p in image]
            label = _resolve(item["label"], base)
            cases.append({**item, "image": image, "label": label, "_where": f"{path}, {key}[{i}]"})
        out[key] = cases
    testing = content.get("testing") or []
    tests = []
    for i, item in enumerate(testing):  # MSD style: plain paths, or objects with an 'image' (label optional)
        image = item.get("image") if isinstance(item, dict) else item
        if image is None:
            raise InvalidOptionError(f"`datalist` {str(path)!r}, testing[{i}] has no 'image': {item!r}.")
        image = _resolve(image, base) if isinstance(image, (str, Path)) else [_resolve(p, base) for p in image]
        tests.append({"image": image, "_where": f"{path}, testing[{i}]"})
    if tests:
        out["testing"] = tests
    return out


def _refuse_foreign_folder(folder: Path) -> None:
    """Synthetic data may only go to a new, empty or earlier synthetic folder, never over a user's data."""
    from medloss.data.synthetic import SYNTHETIC_KEY

    if not folder.is_dir() or not any(folder.iterdir()):
        return
    listing = folder / "datalist.json"
    try:
        ours = listing.is_file() and SYNTHETIC_KEY in json.loads(listing.read_text())
    except ValueError:
        ours = False
    if not ours:
        msd = (folder / "dataset.json").is_file()
        hint = " It has an MSD dataset.json: pass `--datalist dataset.json`." if msd else ""
        raise InvalidOptionError(
            f"no `datalist` was given, so synthetic data would be written to `dataset_dir` {str(folder)!r}, which "
            f"already holds other files.{hint} Pass `--datalist` to train on the data there, or point `--dataset_dir` "
            "at a new folder for synthetic data."
        )


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def prepare_data(
    datalist: str | Path | None = None,
    dataset_dir: str | Path = "data",
    *,
    num_samples: int = 16,
    size: int | list[int] = 64,
    num_channels: int = 1,
    num_classes: int = 2,
    seed: int = 0,
    val_fraction: float = 0.2,
    check: bool = True,
    synthetic_options: dict | None = None,
) -> dict[str, list[dict]]:
    """Return the bundle's ``{"training", "validation"[, "testing"]}`` case lists, generating synthetic data if needed.

    Args:
        datalist: path to an MSD-style JSON. Empty or ``None`` selects the synthetic lesion set, written to (or
            reused from) ``dataset_dir`` by :func:`medloss.data.make_lesion_dataset`.
        dataset_dir: base folder of the datalist's relative paths, or where the synthetic set lives.
        num_samples: synthetic cases to generate (a quarter of them, at least one, for validation).
        size: synthetic volume side or sides (voxels).
        num_channels: synthetic image channels.
        num_classes: label classes including background; also the range labels are checked against.
        seed: synthetic generator seed.
        val_fraction: validation share when a real datalist has no ``validation`` key.
        check: check every case (files, shapes, label values) before returning.
        synthetic_options: extra keyword arguments for :func:`medloss.data.make_lesion_dataset`.

    Under ``torch.distributed`` only rank 0 writes the synthetic set; the other ranks wait at a barrier.
    """
    if not datalist or str(datalist).lower() in ("none", "null"):
        from medloss.data.synthetic import make_lesion_dataset

        path = Path(dataset_dir) / "datalist.json"
        if _rank() == 0:  # other ranks wait at the barrier (checking here would race with rank 0's writing)
            _refuse_foreign_folder(Path(dataset_dir))
            path = make_lesion_dataset(dataset_dir, num_samples, size=size if isinstance(size, int) else tuple(size),
                                       num_channels=num_channels, num_classes=num_classes, seed=seed,
                                       **(synthetic_options or {}))
        _barrier()
        data = load_datalist(path, dataset_dir, val_fraction)
    else:
        data = load_datalist(datalist, dataset_dir, val_fraction)
    for items in data.values():
        for item in items:
            where = item.pop("_where")
            if not check:
                continue
            if "label" in item:
                check_case(item, num_classes, f" ({where})")
            else:
                for image in [item["image"]] if isinstance(item["image"], str) else item["image"]:
                    volume_shape(image)  # raises VolumeReadError naming the file
    return data
