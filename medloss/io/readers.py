"""Reading and writing label volumes with their geometry.

Conventions (the same whatever the reader):

* ``Volume.array`` is indexed ``[i, j, k]`` in the *file's index order* (NIfTI voxel order, ITK ``x, y, z`` index
  order). SimpleITK's ``GetArrayFromImage`` returns ``[k, j, i]``; we transpose it (a view) so that a NIfTI file and
  the same image saved as NRRD give the same array.
* ``spacing`` is in mm, in the array's axis order: ``spacing[a]`` is the physical step along ``array`` axis ``a``.
* ``origin`` is the physical position (mm) of voxel ``[0, 0, 0]`` and ``direction`` a 3x3 matrix whose column ``a``
  is the unit direction of array axis ``a``, both in the **LPS** (DICOM/ITK) frame. NIfTI affines are RAS, so
  nibabel geometry is converted with ``diag(-1, -1, 1)``.
* NIfTI is read through ``img.dataobj`` (no float64 ``get_fdata`` copy); other formats (``.nrrd``, ``.nhdr``,
  ``.mha``, ``.mhd``) and a folder holding one DICOM series are read with SimpleITK.

Only 3-D volumes are supported; trailing singleton dimensions (e.g. a 4-D NIfTI with one frame) are dropped.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np

from medloss.errors import GeometryMismatchError, InvalidOptionError, LabelValueError, VolumeReadError
from medloss.io.outputs import atomic_output

if TYPE_CHECKING:
    import SimpleITK as sitk

NIFTI_SUFFIXES = (".nii.gz", ".nii")
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
VOLUME_SUFFIXES = NIFTI_SUFFIXES + ITK_SUFFIXES
_LPS = np.diag([-1.0, -1.0, 1.0])  # RAS <-> LPS (its own inverse)


@dataclass
class Volume:
    """A 3-D array with its physical geometry (see the module docstring for the conventions)."""

    array: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray
    path: str = ""

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing))


def volume_suffix(path: str | os.PathLike) -> str:
    """Return the recognised volume suffix of ``path`` (lower case), ``""`` if none."""
    name = os.path.basename(str(path)).lower()
    for suf in VOLUME_SUFFIXES:
        if name.endswith(suf):
            return suf
    return ""


def _squeeze3d(arr: np.ndarray, path: str) -> np.ndarray:
    while arr.ndim > 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise VolumeReadError(f"{path}: expected a 3-D volume, got an array of shape {tuple(arr.shape)}.")
    return arr


def _read_nifti(path: str, channels: bool = False) -> Volume:
    import nibabel as nib
    from nibabel.spatialimages import SpatialImage

    img = cast(SpatialImage, nib.load(path))  # every format nib.load opens for a NIfTI suffix is a spatial image
    arr = np.asanyarray(img.dataobj)
    arr = _channels_first(arr, path) if channels else _squeeze3d(arr, path)
    aff = np.asarray(img.affine, dtype=np.float64)
    lin = aff[:3, :3]
    spacing = np.linalg.norm(lin, axis=0)
    if np.any(spacing <= 0) or not np.all(np.isfinite(aff)):
        raise VolumeReadError(f"{path}: the NIfTI affine is degenerate ({aff[:3].tolist()}).")
    direction = _LPS @ (lin / spacing)
    origin = _LPS @ aff[:3, 3]
    return Volume(arr, _triple(spacing), _triple(origin), direction, path)


def _triple(values: Iterable[float]) -> tuple[float, float, float]:
    """Three numbers (a 3-D spacing or origin) as floats."""
    x, y, z = (float(v) for v in values)
    return x, y, z


def _channels_first(arr: np.ndarray, path: str) -> np.ndarray:
    """A NIfTI probability/logit map -> (C, X, Y, Z): 3-D is one channel; channels are the 4th axis (X, Y, Z, C), or
    the 5th with a singleton 4th (the NIfTI vector convention)."""
    if arr.ndim == 5 and arr.shape[3] == 1:
        arr = arr[:, :, :, 0]
    if arr.ndim == 3:
        return arr[None]
    if arr.ndim == 4:
        return np.moveaxis(arr, -1, 0)
    raise VolumeReadError(
        f"{path}: expected a 3-D volume or a 4-D (X, Y, Z, C) channel volume, got shape {tuple(arr.shape)}."
    )


def _from_sitk(img: sitk.Image, path: str, channels: bool = False) -> Volume:
    import SimpleITK as sitk

    if img.GetDimension() != 3 or (img.GetNumberOfComponentsPerPixel() != 1 and not channels):
        raise VolumeReadError(
            f"{path}: expected a scalar 3-D image, got {img.GetDimension()}-D with "
            f"{img.GetNumberOfComponentsPerPixel()} component(s)."
        )
    arr = sitk.GetArrayFromImage(img)
    if channels:  # [k, j, i(, c)] -> [c, i, j, k]
        arr = arr.transpose(3, 2, 1, 0) if arr.ndim == 4 else arr.transpose(2, 1, 0)[None]
    else:
        arr = arr.transpose(2, 1, 0)  # [k,j,i] -> [i,j,k], a view
    direction = np.asarray(img.GetDirection(), dtype=np.float64).reshape(3, 3)
    return Volume(arr, _triple(img.GetSpacing()), _triple(img.GetOrigin()), direction, path)


def _read_dicom_dir(path: str) -> Volume:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    ids = reader.GetGDCMSeriesIDs(path)
    if not ids:
        raise VolumeReadError(f"{path}: folder holds no DICOM series (and is not a volume file).")
    if len(ids) > 1:
        raise VolumeReadError(f"{path}: folder holds {len(ids)} DICOM series; give a folder with exactly one.")
    files = reader.GetGDCMSeriesFileNames(path, ids[0])
    reader.SetFileNames(files)
    return _from_sitk(reader.Execute(), path)


def read_volume(path: str | os.PathLike, *, channels: bool = False) -> Volume:
    """Read a 3-D volume (NIfTI, NRRD/NHDR, MHA/MHD, or a DICOM series folder) with its geometry.

    With ``channels=True`` the array is (C, X, Y, Z) (probability or logit maps: a 4-D NIfTI with channels last, or a
    vector NRRD/MHA image; a 3-D volume gives C = 1) and the geometry is that of the spatial axes.

    Raises :class:`~medloss.errors.VolumeReadError` naming the file for a missing path, an unknown suffix or a file
    the reader rejects.
    """
    p = str(path)
    if not os.path.exists(p):
        raise VolumeReadError(f"{p}: no such file or folder.")
    try:
        if os.path.isdir(p):
            vol = _read_dicom_dir(p)
            if channels:
                vol.array = vol.array[None]
            return vol
        suf = volume_suffix(p)
        if suf in NIFTI_SUFFIXES:
            return _read_nifti(p, channels)
        if suf in ITK_SUFFIXES:
            import SimpleITK as sitk

            return _from_sitk(sitk.ReadImage(p), p, channels)
    except VolumeReadError:
        raise
    except Exception as exc:  # nibabel / SimpleITK / gzip errors: one message naming the file
        msg = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise VolumeReadError(f"{p}: cannot read volume ({type(exc).__name__}: {msg}).") from exc
    raise VolumeReadError(
        f"{p}: unsupported format; expected one of {', '.join(VOLUME_SUFFIXES)} or a DICOM series folder."
    )


def as_label_array(arr: np.ndarray, path: str = "", ignore_index: int | None = None) -> np.ndarray:
    """Return ``arr`` as an integer label array; reject non-integer, non-finite or negative values.

    Floating-point arrays whose values are all integers (labels saved as float32) are converted; bool becomes uint8.
    Negative values are allowed only if they equal ``ignore_index``.
    """
    where = f"{path}: " if path else ""
    if arr.dtype == bool:
        return arr.view(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise LabelValueError(f"{where}label volume holds NaN or infinite values.")
        if not np.array_equal(arr, np.round(arr)):
            raise LabelValueError(f"{where}label volume holds non-integer values (a probability map?); "
                                  "threshold it or give an integer label map.")
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if lo < np.iinfo(np.int32).min or hi > np.iinfo(np.int32).max:
            raise LabelValueError(f"{where}label values out of range [{lo}, {hi}].")
        arr = arr.astype(np.uint8 if lo >= 0 and hi < 256 else np.int32)
    elif not np.issubdtype(arr.dtype, np.integer):
        raise LabelValueError(f"{where}label volume has dtype {arr.dtype}; expected integers.")
    if arr.size and np.issubdtype(arr.dtype, np.signedinteger):
        lo = int(arr.min())
        if lo < 0 and not (ignore_index is not None and lo == ignore_index and
                           int(np.where(arr == ignore_index, 0, arr).min()) >= 0):
            raise LabelValueError(f"{where}label volume holds negative value {lo}; labels must be >= 0 "
                                  "(or equal to --ignore-index); is this an intensity image, not a label map?")
    return arr


def geometry_mismatch(a: Volume, b: Volume, tolerance: float = 1e-3) -> str:
    """Describe how the geometry of ``a`` and ``b`` differs, or return ``""`` if it agrees.

    Shape must be equal; spacing and origin may differ by at most ``tolerance`` mm per component, direction
    cosines by at most ``tolerance``.
    """
    if a.shape != b.shape:
        return f"shape {a.shape} vs {b.shape}"
    ds = np.abs(np.subtract(a.spacing, b.spacing))
    if np.any(ds > tolerance):
        return f"spacing {_fmt(a.spacing)} vs {_fmt(b.spacing)} mm"
    do = np.abs(np.subtract(a.origin, b.origin))
    if np.any(do > tolerance):
        return f"origin {_fmt(a.origin)} vs {_fmt(b.origin)} mm"
    dd = np.abs(np.asarray(a.direction) - np.asarray(b.direction))
    if np.any(dd > tolerance):
        return (f"direction {np.round(a.direction, 4).tolist()} vs {np.round(b.direction, 4).tolist()} "
                "(orientation differs: resample or reorient one of them)")
    return ""


def check_geometry(pred: Volume, ref: Volume, tolerance: float = 1e-3) -> None:
    """Raise :class:`GeometryMismatchError` (naming the prediction file) if the two grids differ."""
    if not (tolerance >= 0):
        raise InvalidOptionError(f"`geometry_tolerance` must be >= 0, got {tolerance!r}.")
    why = geometry_mismatch(pred, ref, tolerance)
    if why:
        # the tolerance applies to spacing, origin and direction; shapes must be equal whatever it is
        tol = "" if why.startswith("shape") else f" (tolerance {tolerance:g}; `--geometry-tolerance` to change it)"
        raise GeometryMismatchError(f"{pred.path or 'prediction'}: geometry differs from {ref.path or 'reference'}: "
                                    f"{why}{tol}.")


def _fmt(v: Iterable[float]) -> str:
    return "(" + ", ".join(f"{x:.6g}" for x in v) + ")"


def _nifti_affine(spacing: Sequence[float], origin: Sequence[float],
                  direction: np.ndarray | Sequence[float]) -> np.ndarray:
    aff = np.eye(4)
    aff[:3, :3] = _LPS @ np.asarray(direction, float).reshape(3, 3) @ np.diag(np.asarray(spacing, float))
    aff[:3, 3] = _LPS @ np.asarray(origin, float)
    return aff


def write_volume(path: str | os.PathLike, array: np.ndarray, like: Volume | None = None, *,
                 spacing: Sequence[float] | None = None, origin: Sequence[float] | None = None,
                 direction: np.ndarray | Sequence[float] | None = None) -> str:
    """Write ``array`` (indexed ``[i, j, k]``) atomically, with the geometry of ``like`` or the given one.

    NIfTI is written with nibabel, other suffixes with SimpleITK. The file (except the two-file ``.mhd``/``.nhdr``
    formats) is written to a temporary name in the destination folder and moved into place with :func:`os.replace`,
    so a reader never sees a partial file.
    Defaults: spacing 1 mm, origin 0, identity direction.
    """
    p = str(path)
    suf = volume_suffix(p)
    if not suf:
        raise InvalidOptionError(f"{p}: cannot write this format; use one of {', '.join(VOLUME_SUFFIXES)}.")
    arr = np.asarray(array)
    if arr.ndim != 3:
        raise InvalidOptionError(f"write_volume expects a 3-D array, got shape {arr.shape}.")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    sp = spacing if spacing is not None else (like.spacing if like is not None else (1.0, 1.0, 1.0))
    org = origin if origin is not None else (like.origin if like is not None else (0.0, 0.0, 0.0))
    dr = direction if direction is not None else (like.direction if like is not None else np.eye(3))
    if suf in (".mhd", ".nhdr"):  # header + separate data file: cannot be moved atomically as one file
        return _write_sitk(p, arr, sp, org, dr)
    with atomic_output(p, suffix=suf) as tmp:
        if suf in NIFTI_SUFFIXES:
            import nibabel as nib

            img = nib.Nifti1Image(arr, _nifti_affine(sp, org, dr))
            img.set_qform(img.affine, code=1)
            img.set_sform(img.affine, code=1)
            nib.save(img, tmp)
        else:
            _write_sitk(tmp, arr, sp, org, dr)
    return p


def _write_sitk(path: str, arr: np.ndarray, spacing: Sequence[float], origin: Sequence[float],
                direction: np.ndarray | Sequence[float]) -> str:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(arr.transpose(2, 1, 0)))
    img.SetSpacing([float(s) for s in spacing])
    img.SetOrigin([float(o) for o in origin])
    img.SetDirection([float(d) for d in np.asarray(direction, float).reshape(9)])
    sitk.WriteImage(img, path, useCompression=True)
    return path
