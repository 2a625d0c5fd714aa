"""Reference maps that some losses need from the label map, computed once per sample on the CPU.

* :func:`reference_skeleton` — the (optionally tubed) skeleton of the foreground, carrying each voxel's class, as
  Skeleton Recall builds it in its data loader (Kirchhoff et al., ECCV 2024);
* :func:`component_map` — connected-component ids of each class's foreground (``cc3d``), for blob loss
  (Kofler et al., IPMI 2023).

The MONAI transforms in :mod:`medloss.data.topology` call these in the data loader (cached with the sample); a loss
that is not handed a map calls them itself, on the CPU, every step, and says so once (:func:`warn_once`).

A map reaches a loss in one of two ways: the ``forward`` keyword (``skeleton=`` / ``components=``), or packed as one
extra last channel of ``target`` (what a MONAI trainer can pass: it calls ``loss(pred, label)``), see
:func:`split_packed_target`.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from medloss.checks import check_labels
from medloss.errors import InvalidOptionError, OptionTypeError, ShapeMismatchError

_WARNED: set[str] = set()


def warn_once(key: str, message: str) -> None:
    """Warn about an expensive fallback once per process and ``key`` (a loss and the map it computes)."""
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(message, UserWarning, stacklevel=6)


def _foreground(labels: np.ndarray, ignore_index: int | None) -> np.ndarray:
    fg = labels > 0
    if ignore_index is not None:
        fg &= labels != ignore_index
    return fg


def reference_skeleton(labels: np.ndarray, *, tube: bool = True, ignore_index: int | None = None) -> np.ndarray:
    """Skeleton of the foreground of one label map (*S) (2-D or 3-D), each skeleton voxel holding its class.

    The union of all foreground classes is skeletonised (``skimage.morphology.skeletonize``: Zhang's method in 2-D,
    Lee's in 3-D); with ``tube`` the skeleton is dilated twice with the face-connected cross (a tube of radius 2, as
    Skeleton Recall's ``SkeletonTransform(do_tube=True)``), then multiplied by the label map, so the tube keeps
    only foreground voxels and each keeps its class. Voxels equal to ``ignore_index`` count as background.

    Returns an int16 array of the shape of ``labels``.
    """
    from scipy import ndimage
    from skimage.morphology import skeletonize

    labels = np.asarray(labels)
    fg = _foreground(labels, ignore_index)
    if not fg.any():
        return np.zeros(labels.shape, dtype=np.int16)
    skel = skeletonize(fg) > 0
    if tube:
        cross = ndimage.generate_binary_structure(labels.ndim, 1)
        skel = ndimage.binary_dilation(skel, structure=cross, iterations=2)
    return np.where(skel & fg, labels, 0).astype(np.int16)


def component_map(labels: np.ndarray, *, connectivity: int | None = None,
                  ignore_index: int | None = None) -> np.ndarray:
    """Connected components of each foreground class of one label map (*S): ids 1..K, 0 for background.

    Components never span two classes (``cc3d`` labels a multi-label map per label). ``connectivity`` defaults to
    the full neighbourhood (26 in 3-D, 8 in 2-D), the usual lesion definition. Returns an int32 array.
    """
    import cc3d

    labels = np.asarray(labels)
    if labels.ndim not in (2, 3):
        raise ShapeMismatchError(f"`labels` must be a 2-D or 3-D label map, got shape {labels.shape}.")
    full = 26 if labels.ndim == 3 else 8
    connectivity = full if connectivity is None else connectivity
    allowed = (6, 18, 26) if labels.ndim == 3 else (4, 8)
    if connectivity not in allowed:
        raise InvalidOptionError(
            f"`connectivity` must be one of {allowed} for {labels.ndim}-D maps, got {connectivity}.")
    work = np.where(_foreground(labels, ignore_index), labels, 0).astype(np.int32)
    # connectivity is one of `allowed` (checked above); cc3d's stubs want it as a Literal
    return cc3d.connected_components(work, connectivity=connectivity).astype(np.int32)  # type: ignore[call-overload]


def batch_map(labels: torch.Tensor, fn, **kwargs) -> torch.Tensor:
    """Apply a per-sample map function to a (B, 1, *S) label tensor; returns (B, 1, *S) int64 on its device."""
    arr = labels.detach().to("cpu").numpy()
    if arr.dtype.kind == "f":
        arr = np.rint(arr).astype(np.int64)
    out = np.stack([fn(arr[b, 0], **kwargs) for b in range(arr.shape[0])])[:, None]
    return torch.from_numpy(out.astype(np.int64)).to(labels.device)


def integer_map(values: torch.Tensor, name: str, *, upper: int | None, check: bool, fix: str) -> torch.Tensor:
    """A map whose values are integers (component ids, skeleton classes) as int64, by one rule for every map.

    Checked (``check``): NaN, inf, negative, non-integer values and values >= ``upper`` raise
    :class:`LabelValueError` naming ``name`` and saying ``fix`` (the labels' check,
    :func:`medloss.checks.check_labels`). Unchecked, a float map is rounded to the nearest integer (as the
    transforms do with float label maps), never truncated.
    """
    if check:
        check_labels(values, upper, None, arg=name, what=fix, non_integer_fix=None, range_fix=fix, noun="values")
    if values.is_floating_point():
        values = torch.round(values)
    return values.long()


def split_packed_target(
    target: torch.Tensor, input: torch.Tensor, given: torch.Tensor | None, *, to_onehot_y: bool, name: str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Separate a precomputed map packed as the extra last channel of ``target``.

    The target layout has 1 channel with ``to_onehot_y`` (or a single-channel input) and C channels otherwise; a
    target with exactly one channel more carries the map ``name`` in its last channel. Returns (target, map) with
    the map (B, 1, *S) or None; a map given by keyword (``given``) is used as is and must not be packed too.
    """
    if not isinstance(target, torch.Tensor):
        raise OptionTypeError(f"`target` must be a torch.Tensor, got {type(target).__name__}.")
    expected = 1 if (to_onehot_y or input.shape[1] == 1) else input.shape[1]
    packed = target.ndim == input.ndim and target.shape[1] == expected + 1
    if packed:
        if given is not None:
            raise InvalidOptionError(
                f"`{name}` was given by keyword and also packed as the last channel of `target`; pass it once."
            )
        return target[:, :expected], target[:, expected:]
    if given is not None:
        if not isinstance(given, torch.Tensor):
            raise OptionTypeError(f"`{name}` must be a torch.Tensor (B, 1, *S), got {type(given).__name__}.")
        if given.ndim == input.ndim - 1:
            given = given.unsqueeze(1)
        if given.ndim != input.ndim or given.shape[0] != input.shape[0] or given.shape[1] != 1 \
                or given.shape[2:] != input.shape[2:]:
            raise ShapeMismatchError(
                f"`{name}` has shape {tuple(given.shape)}; expected (B, 1, *S) = "
                f"({input.shape[0]}, 1, {', '.join(map(str, input.shape[2:]))})."
            )
    return target, given


def label_map_of(target: torch.Tensor, input: torch.Tensor, *, to_onehot_y: bool) -> torch.Tensor:
    """The (B, 1, *S) class-index map behind a label-map or one-hot target (to compute a missing map from)."""
    if to_onehot_y or input.shape[1] == 1:
        return target if target.ndim == input.ndim else target.unsqueeze(1)
    return target.argmax(dim=1, keepdim=True)
