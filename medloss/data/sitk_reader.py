"""A MONAI image reader over SimpleITK, so ``LoadImage``/``LoadImaged`` open NRRD and MetaImage without ``itk``.

MONAI's ``LoadImage`` reads NRRD only through the ``itk`` package (``ITKReader``) or ``pynrrd`` (``NrrdReader``),
neither of which medloss depends on. :class:`SimpleITKReader` fills that gap with the same conventions as MONAI's
readers: arrays are indexed ``(x, y, z)`` like NibabelReader, and the metadata carries ``affine`` and
``original_affine`` in RAS, ``spatial_shape``, ``spacing`` and ``original_channel_dim``, so ``SaveImage`` writes
predictions with the input's geometry.

Use it in a bundle config (NIfTI still goes to MONAI's nibabel reader, because this reader only claims the
suffixes in :data:`SITK_SUFFIXES`)::

    {"_target_": "LoadImaged", "keys": ["image", "label"],
     "reader": {"_target_": "medloss.data.sitk_reader.SimpleITKReader"}}
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.config import PathLike
from monai.data.image_reader import ImageReader
from monai.utils import MetaKeys, SpaceKeys, ensure_tuple

from medloss.errors import GeometryMismatchError, VolumeReadError

__all__ = ["SimpleITKReader", "SITK_SUFFIXES", "sitk_affine"]

#: file suffixes the reader claims by default (lower case); NIfTI is left to nibabel
SITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")


def sitk_affine(image: Any, lps_to_ras: bool = True) -> np.ndarray:
    """4x4 voxel-to-world affine of a 3-D SimpleITK image (RAS world coordinates unless ``lps_to_ras=False``)."""
    ndim = image.GetDimension()
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(ndim, ndim)
    affine = np.eye(4)
    nd = min(ndim, 3)
    affine[:nd, :nd] = direction[:nd, :nd] @ np.diag(np.asarray(image.GetSpacing(), dtype=np.float64)[:nd])
    affine[:nd, 3] = np.asarray(image.GetOrigin(), dtype=np.float64)[:nd]
    if lps_to_ras:  # ITK world space is LPS; nibabel and MONAI use RAS: flip the x and y world axes
        affine[:2, :] *= -1.0
    return affine


class SimpleITKReader(ImageReader):
    """Read NRRD / MetaImage (and optionally any SimpleITK format) for MONAI's ``LoadImage``.

    Args:
        suffixes: suffixes this reader accepts in :meth:`verify_suffix`; default :data:`SITK_SUFFIXES`. Pass e.g.
            ``SITK_SUFFIXES + (".nii", ".nii.gz")`` to read NIfTI through SimpleITK too.
        channel_dim: the channel axis of multi-component files; ``None`` means components (if any) are last.
        affine_lps_to_ras: convert ITK's LPS world coordinates to RAS (as MONAI's ``ITKReader`` does by default).
        dtype: cast the array to this dtype (``None`` keeps the file's type).

    When several files are given for one key (one per channel), they are stacked on a new first axis and must
    have the same size and affine; otherwise :class:`~medloss.errors.GeometryMismatchError` names both files.
    """

    def __init__(
        self,
        suffixes: Sequence[str] = SITK_SUFFIXES,
        channel_dim: int | None = None,
        affine_lps_to_ras: bool = True,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.suffixes = tuple(s.lower() for s in suffixes)
        self.channel_dim = channel_dim
        self.affine_lps_to_ras = affine_lps_to_ras
        self.dtype = dtype
        self._filenames: list[str] = []

    def verify_suffix(self, filename: Sequence[PathLike] | PathLike) -> bool:
        """True if every file name ends with one of ``self.suffixes`` (case-insensitive)."""
        names = [str(f).lower() for f in ensure_tuple(filename)]
        return bool(names) and all(n.endswith(self.suffixes) for n in names)

    def read(self, data: Sequence[PathLike] | PathLike, **kwargs: Any) -> Any:
        """Read one file (returns an image) or several (returns a list); unreadable files raise VolumeReadError."""
        import SimpleITK as sitk

        images = []
        self._filenames = [str(f) for f in ensure_tuple(data)]
        for name in self._filenames:
            if not Path(name).is_file():
                raise VolumeReadError(f"cannot read {name!r}: the file does not exist. Check the path in the datalist.")
            try:
                images.append(sitk.ReadImage(name, **kwargs))
            except RuntimeError as err:
                raise VolumeReadError(
                    f"SimpleITK cannot read {name!r}: {str(err).strip().splitlines()[-1]}. "
                    "Check that it is a valid NRRD/MetaImage file."
                ) from err
        return images if len(images) > 1 else images[0]

    def get_data(self, img: Any) -> tuple[np.ndarray, dict]:
        """Return the ``(x, y, z[, c])`` array (stacked channel-first for several files) and MONAI metadata."""
        import SimpleITK as sitk

        arrays: list[np.ndarray] = []
        meta: dict = {}
        images = list(img) if isinstance(img, (list, tuple)) else [img]  # an sitk.Image is itself iterable
        names = self._filenames if len(self._filenames) == len(images) else ["<image>"] * len(images)
        for image, name in zip(images, names, strict=True):
            array = sitk.GetArrayFromImage(image)  # (z, y, x) or (z, y, x, components)
            spatial = image.GetDimension()
            array = np.transpose(array, tuple(reversed(range(spatial))) + tuple(range(spatial, array.ndim)))
            if self.dtype is not None:
                array = array.astype(self.dtype, copy=False)
            header: dict[str, Any] = {
                "spacing": np.asarray(image.GetSpacing(), dtype=np.float64),
                MetaKeys.ORIGINAL_AFFINE: sitk_affine(image, self.affine_lps_to_ras),
                MetaKeys.SPACE: SpaceKeys.RAS if self.affine_lps_to_ras else SpaceKeys.LPS,
                MetaKeys.SPATIAL_SHAPE: np.asarray(image.GetSize()),
            }
            header[MetaKeys.AFFINE] = header[MetaKeys.ORIGINAL_AFFINE].copy()
            if self.channel_dim is not None:
                header[MetaKeys.ORIGINAL_CHANNEL_DIM] = self.channel_dim
            else:
                header[MetaKeys.ORIGINAL_CHANNEL_DIM] = -1 if array.ndim > spatial else float("nan")
            if meta:
                self._check_compatible(meta, header, names[0], name)
            else:
                meta = header
            arrays.append(array)
        if len(arrays) == 1:
            return arrays[0], meta
        meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = 0
        return np.stack(arrays, axis=0), meta

    @staticmethod
    def _check_compatible(first: dict, other: dict, first_name: str, other_name: str) -> None:
        same_shape = np.array_equal(first[MetaKeys.SPATIAL_SHAPE], other[MetaKeys.SPATIAL_SHAPE])
        if not same_shape or not np.allclose(first[MetaKeys.AFFINE], other[MetaKeys.AFFINE], atol=1e-4):
            raise GeometryMismatchError(
                f"channel files {first_name!r} and {other_name!r} differ in size or geometry "
                f"(sizes {first[MetaKeys.SPATIAL_SHAPE].tolist()} vs {other[MetaKeys.SPATIAL_SHAPE].tolist()}); "
                "resample them onto one grid before listing them as channels of one case."
            )
