"""Lovász-Softmax and Lovász hinge losses (Berman, Rannen Triki, Blaschko, CVPR 2018) for N-D volumes.

The math, options and shapes are documented on :class:`medloss.losses.LovaszSoftmaxLoss` and
:class:`medloss.losses.LovaszHingeLoss`. This module holds the computation.

Both losses are a table of *problems* (rows): one per (image, class) with ``per_image=True``, one per class over
the flattened batch otherwise (the hinge: one per image, or one). Each row is given as **signed errors** d: the
error is |d| and the voxel is foreground where d < 0, background where d > 0 (d = 0: no error, no gradient):

    Lovász-Softmax, class c:  d = p(c) - [y = c]                (|d| = the paper's m(c), d d / d p = 1)
    Lovász hinge:             d = s - t where 1 - s t > 0, else 0, t = 2y - 1
                              (|d| = relu(1 - s t) and d d / d s = 1 wherever d != 0)

Sorted by decreasing error, the Lovász extension of the Jaccard loss is ``sum_k |d|_(k) (J_k - J_(k-1))`` with
``J_k = k / (G + B_k)`` (G foreground voxels in the row, B_k background voxels among the k largest errors). Its
gradient with respect to |d_i| is closed-form in the counts up to i (F: foreground voxels ranked up to and including
i, U = G + B_k)::

    foreground voxel: 1 / U             background voxel: (G - F) / ((U - 1) U)

(a row without foreground has gradient 1 at rank 1, 0 elsewhere). These are the reference's ``lovasz_grad``
differences without their cancellation: the reference subtracts two numbers close to 1, which loses most digits
in float32 on large rows (its float32 gradient is off by up to ~5 % of the largest entry at 2 x 128^3 voxels).
The gradient with respect to d is that times sign(d), i.e. 0 at d = 0, as autograd gives for abs and relu.

Cost and memory: one sort per row, of integer keys: the IEEE bits of a float are monotone in its magnitude, so
``-signbit - 2 |bits|`` sorts by decreasing error with the foreground flag in the lowest bit: an int32 sort for
float32 compute (about twice as fast as a float sort on CPU) that also yields the sorted foreground flags without
a gather. Rows are processed in chunks of at most ``max(row length, CHUNK_ELEMENTS)`` elements whose buffers are
reused (:class:`Workspace`), so the temporaries (about 29 bytes per element of one chunk) do not grow with the
number of classes and large buffers are faulted in once per call. The gradient is computed in the forward pass
and stored (one tensor the size of the input); backward only scales it.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from medloss.errors import InputRangeError, InvalidOptionError, LabelValueError, ShapeMismatchError, check_choice
from medloss.functional import prepare, reduce

#: Most elements (rows x voxels) sorted at once; a single longer row is processed alone.
CHUNK_ELEMENTS = 1 << 21

CLASS_POLICIES = ("present", "all")

_ONE_BITS = {torch.float32: 0x3F800000, torch.float64: 0x3FF0000000000000}
_INT_OF = {torch.float32: torch.int32, torch.float64: torch.int64}


def check_classes(classes: object) -> str | tuple[int, ...]:
    """Validate the ``classes`` option: ``"present"``, ``"all"`` or a non-empty sequence of distinct class indices."""
    if isinstance(classes, str):
        return check_choice("classes", classes, CLASS_POLICIES)
    if isinstance(classes, torch.Tensor):
        classes = classes.tolist()
    if not isinstance(classes, Sequence) or isinstance(classes, (bytes, bytearray)):
        raise InvalidOptionError(
            f"`classes` must be 'present', 'all' or a list of class indices, got {classes!r}."
        )
    values = tuple(classes)
    if not values or any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in values):
        raise InvalidOptionError(f"`classes` must be a non-empty list of class indices >= 0, got {list(values)!r}.")
    if len(set(values)) != len(values):
        raise InvalidOptionError(f"`classes` lists a class twice: {list(values)!r}.")
    return values


class Workspace:
    """(k, M) buffers reused across the chunks of one call: a fresh large tensor costs page faults on CPU."""

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, k: int, m: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        buf = self._buffers.get(name)
        if buf is None or buf.shape[0] < k or buf.shape[1] != m or buf.dtype != dtype or buf.device != device:
            buf = self._buffers[name] = torch.empty(k, m, dtype=dtype, device=device)
        return buf[:k]

    def ranks(self, m: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """1, 2, ..., m in ``dtype`` (cached)."""
        buf = self._buffers.get("ranks")
        if buf is None or buf.shape[1] != m or buf.dtype != dtype or buf.device != device:
            buf = self._buffers["ranks"] = torch.arange(1, m + 1, dtype=dtype, device=device).unsqueeze(0)
        return buf


def lovasz_signed_rows(
    d: torch.Tensor, counts: torch.Tensor, *, bounded: bool = False, workspace: Workspace | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lovász extension of the Jaccard loss per row of signed errors, and its gradient.

    Args:
        d: (k, M) finite signed errors (float32 or float64): |d| is the error, d < 0 marks foreground (see the
            module docstring). Not modified.
        counts: (k,) number of foreground voxels G per row (including those with d = 0), integer.
        bounded: all |d| <= 1 (probabilities), which allows a shorter key computation.
        workspace: buffers to reuse across calls of one loss evaluation.

    Returns:
        (grad, loss): grad (k, M) = d loss_row / d d in voxel order (0 where d = 0), loss (k,). ``grad`` lives in
        the workspace: copy it before the next call with the same workspace.
    """
    ws = workspace if workspace is not None else Workspace()
    k, m = d.shape
    dtype, device = d.dtype, d.device
    idtype = _INT_OF[dtype]
    bits = d.view(idtype)
    # key = -signbit - 2 |bits| (+ 2 ONE unless bounded): ascending key = descending |d|, foreground flag in the
    # lowest bit. 2 bits == 2 |bits| modulo the integer range (the sign bit shifts out).
    key = ws.get("b", k, m, dtype, device).view(idtype)
    torch.bitwise_right_shift(bits, bits.element_size() * 8 - 1, out=key)
    key.add_(bits, alpha=-2)
    zero_key = -1  # smallest key of an error 0 (foreground -0.0: -1, background +0.0: 0)
    if not bounded:
        key.add_(2 * _ONE_BITS[dtype])
        zero_key += 2 * _ONE_BITS[dtype]
    srt, perm = torch.sort(
        key, dim=1, out=(ws.get("c", k, m, dtype, device).view(idtype), ws.get("perm", k, m, torch.int64, device))
    )
    zero_from = torch.searchsorted(srt, torch.full((k, 1), zero_key, dtype=idtype, device=device))
    fg = srt.bitwise_and_(1)
    is_fg = torch.ne(fg, 0, out=ws.get("fg", k, m, torch.bool, device))
    num = key.view(dtype).copy_(fg.cumsum_(dim=1))  # F: foreground up to and including each rank (exact)
    torch.sub(counts.to(device=device, dtype=dtype).unsqueeze(1), num, out=num)  # G - F
    u = torch.add(num, ws.ranks(m, dtype, device), out=fg.view(dtype))  # U = G + B_k = G - F + rank
    num.div_(u.sub_(1))  # background: (G - F) / (U - 1), then / U below
    u.add_(1)
    grad = num.masked_fill_(is_fg, -1.0)  # foreground: -1 / U (sign(d) = -1)
    grad.div_(u)
    empty = counts == 0
    if bool(empty.any()):  # no foreground: J_k = 1 for all k, gradient 1 at rank 1 (0/0 above)
        grad[empty.to(device), 0] = 1.0
    for row, start in enumerate(zero_from[:, 0].tolist()):  # d = 0: no gradient (nor loss)
        if start < m:
            grad[row, start:] = 0.0
    out = u.scatter_(1, perm, grad)
    # sum_i grad_i sign(d_i) d_i = sum_i grad_i |d_i|: torch's cascade sum (a BLAS dot loses ~1e-4 at 4M terms)
    loss = torch.mul(out, d, out=grad).sum(dim=1)
    return out, loss


class _LovaszTable(torch.autograd.Function):
    """table = f(x) with d table[r] / d x precomputed in forward (the loss is piecewise linear in x)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, compute, shape):
        table, dx = compute(x, ctx.needs_input_grad[0])
        ctx.save_for_backward(dx)
        ctx.shape = shape
        return table

    @staticmethod
    def backward(ctx, grad_table: torch.Tensor):
        (dx,) = ctx.saved_tensors
        if dx is None:
            return None, None, None
        return dx * grad_table.reshape(ctx.shape).to(dx.dtype), None, None


def _chunks(rows: list, length: int) -> list[list]:
    step = max(1, CHUNK_ELEMENTS // max(length, 1))
    return [rows[i : i + step] for i in range(0, len(rows), step)]


def _softmax_compute(labels, valid, rows, counts, per_image):
    """Closure computing the (B or 1, C) table and d table / d p for the selected (image, class) rows."""

    def compute(p: torch.Tensor, need_grad: bool):
        batch, num_classes, n = p.shape
        m = n if per_image else batch * n
        lab = labels.reshape(batch, n)
        ignored = None if valid is None else valid.reshape(batch, n) == 0
        table = p.new_zeros(counts.shape)
        dp = torch.empty_like(p) if need_grad else None
        ws = Workspace()
        for chunk in _chunks(rows, m):
            k = len(chunk)
            b_idx = torch.tensor([r[0] for r in chunk], device=p.device)
            c_idx = torch.tensor([r[1] for r in chunk], device=p.device)
            d = ws.get("a", k, m, p.dtype, p.device)
            if per_image:
                torch.index_select(p.reshape(batch * num_classes, n), 0, b_idx * num_classes + c_idx, out=d)
                lab_rows = lab[chunk[0][0]].unsqueeze(0) if k == 1 else lab.index_select(0, b_idx)
                ign_rows = None if ignored is None else ignored.index_select(0, b_idx)
            else:
                torch.index_select(p.transpose(0, 1), 0, c_idx, out=d.view(k, batch, n))
                lab_rows = lab.reshape(1, -1)
                ign_rows = None if ignored is None else ignored.reshape(1, -1)
            d.sub_(torch.eq(lab_rows, c_idx[:, None], out=ws.get("b", k, m, p.dtype, p.device)))  # p - [y = c]
            if ign_rows is not None:
                d.masked_fill_(ign_rows, 0.0)
            grad, loss = lovasz_signed_rows(d, counts[b_idx.cpu(), c_idx.cpu()], bounded=True, workspace=ws)
            table[b_idx, c_idx] = loss
            if dp is not None:
                if per_image:
                    dp[b_idx, c_idx] = grad
                else:
                    dp.transpose(0, 1)[c_idx] = grad.view(k, batch, n)
        del ws
        if dp is not None:  # classes not scored: no gradient
            scored = torch.zeros(counts.shape, dtype=torch.bool)
            scored[[r[0] for r in rows], [r[1] for r in rows]] = True
            for b, c in (~scored).nonzero().tolist():
                (dp[b, c] if per_image else dp[:, c]).zero_()
        return table, dp

    return compute


def _hinge_compute(labels, valid, per_image):
    def compute(x: torch.Tensor, need_grad: bool):
        rows = x.shape[0] if per_image else 1
        s = x.reshape(rows, -1)
        fg = labels.reshape(rows, -1) == 1  # ignored voxels hold label 0
        counts = fg.sum(dim=1).cpu()
        t = fg.to(x.dtype).mul_(2).sub_(1)  # t = 2y - 1
        del fg
        # signed error: s - t where the hinge 1 - s t is active (there |s - t| = 1 - s t), else 0
        d = torch.sub(s, t).masked_fill_(torch.mul(s, t, out=t) >= 1.0, 0.0)
        del t
        if valid is not None:
            d.masked_fill_(valid.reshape(rows, -1) == 0, 0.0)
        table = x.new_zeros(rows, 1)
        dx = torch.empty_like(s) if need_grad else None
        step = max(1, CHUNK_ELEMENTS // s.shape[1])
        ws = Workspace()
        for r0 in range(0, rows, step):
            r1 = min(rows, r0 + step)
            grad, loss = lovasz_signed_rows(d[r0:r1], counts[r0:r1], workspace=ws)
            table[r0:r1, 0] = loss
            if dx is not None:
                dx[r0:r1] = grad
        return table, None if dx is None else dx.reshape(x.shape)

    return compute


def _labels(target, input, *, to_onehot_y, ignore_index, check_input):
    """(labels (B, 1, N) int64, valid (B, 1, N) or None) from a label map, or from a hard one-hot by argmax."""
    if to_onehot_y:
        return prepare.labels_and_mask(target, input, ignore_index=ignore_index, check_input=check_input)
    onehot, valid = prepare.dense_target(
        target, input, to_onehot_y=False, ignore_index=ignore_index, soft_label=True, check_input=check_input
    )
    if check_input:
        hard = ((onehot == 0) | (onehot == 1)).all(dim=1, keepdim=True) & (onehot.sum(dim=1, keepdim=True) == 1)
        if valid is not None:
            hard |= valid == 0
        if not bool(hard.all()):
            raise LabelValueError(
                "`target` must be a hard one-hot (B, C, *S) target (exactly one channel = 1 per voxel): "
                "Lovász-Softmax needs one class per voxel. Pass a (B, 1, *S) label map with `to_onehot_y=True`."
            )
    return onehot.argmax(dim=1, keepdim=True), valid


def _class_counts(labels, valid, num_classes):
    """(B, C) int64 number of non-ignored voxels of each class per image (exact)."""
    batch = labels.shape[0]
    lab = labels.reshape(batch, -1)
    ones = torch.ones(1, 1, dtype=torch.int64, device=lab.device).expand_as(lab)
    counts = torch.zeros(batch, num_classes, dtype=torch.int64, device=lab.device).scatter_add_(1, lab, ones)
    if valid is not None:  # ignored voxels hold label 0
        counts[:, 0] -= (valid.reshape(batch, -1) == 0).sum(dim=1)
    return counts.cpu()


def _selected_rows(counts, classes, include_background):
    """(image, class) rows to score, row-major: image index b (0 for the pooled batch) and class c."""
    first = 0 if include_background else 1
    if classes == "present":
        present = counts > 0
        present[:, :first] = False
        return [tuple(rc) for rc in present.nonzero().tolist()]
    num_classes = counts.shape[1]
    if classes == "all":
        chosen = list(range(first, num_classes))
    else:
        bad = [c for c in classes if c >= num_classes]
        if bad:
            raise InvalidOptionError(
                f"`classes` lists {bad} but `input` has {num_classes} channels (classes 0..{num_classes - 1})."
            )
        if not include_background and 0 in classes:
            raise InvalidOptionError(
                "`classes` lists class 0 but `include_background=False` excludes it; drop one of the two."
            )
        chosen = sorted(classes)
    return [(b, c) for b in range(counts.shape[0]) for c in chosen]


def _reduce(table, selected, reduction):
    """mean: per image the mean over its scored classes (0 if none), then the mean over images; sum: table sum."""
    if reduction == "none":
        return table
    if reduction == "sum":
        return table.sum()
    count = selected.sum(dim=1).to(table.dtype)
    per_image = table.sum(dim=1) / count.clamp_min(1.0)
    return per_image.mean()


def lovasz_softmax_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    classes: str | Sequence[int] = "present",
    per_image: bool = False,
    ignore_index: int | None = None,
    include_background: bool = True,
    to_onehot_y: bool = False,
    sigmoid: bool = False,
    softmax: bool = False,
    other_act: prepare.Activation | None = None,
    reduction: str = "mean",
    check_input: bool = True,
) -> torch.Tensor:
    """Lovász-Softmax loss. See :class:`medloss.losses.LovaszSoftmaxLoss`, whose arguments these are.

    Returns:
        The loss: a scalar, or (B, C') per image / (1, C') pooled for ``reduction="none"``.
    """
    prepare.check_input_tensor(input)
    classes = check_classes(classes)
    reduce.check_reduction(reduction)
    num_classes = input.shape[1]
    if num_classes < 2:
        raise ShapeMismatchError(
            "`input` has 1 channel but Lovász-Softmax needs one channel per class (C >= 2); for binary "
            "segmentation with one logit channel use LovaszHingeLoss."
        )
    if check_input and (sigmoid or softmax or other_act is not None):
        prepare.check_finite(input)
    labels, valid = _labels(target, input, to_onehot_y=to_onehot_y, ignore_index=ignore_index, check_input=check_input)
    p = prepare.flatten(
        prepare.activate(input, activation=prepare.activation_of(sigmoid=sigmoid, softmax=softmax),
                         other_act=other_act, check_input=check_input)
    )
    if check_input and other_act is not None:
        lo, hi = prepare.check_finite(p, arg="other_act(input)")
        if lo < 0.0 or hi > 1.0:
            raise InputRangeError(
                f"`other_act` gives values outside [0, 1] (min {lo:.4g}, max {hi:.4g}); Lovász-Softmax needs "
                "probabilities: use `softmax=True` or an activation with outputs in [0, 1]."
            )
    counts = _class_counts(labels, valid, num_classes)
    if not per_image:
        counts = counts.sum(dim=0, keepdim=True)
    rows = _selected_rows(counts, classes, include_background)
    selected = torch.zeros(counts.shape, dtype=torch.bool)
    if rows:
        selected[[r[0] for r in rows], [r[1] for r in rows]] = True
    # |p - [y = c]| <= 1 holds for activated or checked probabilities (check_input=False: caller's promise)
    compute = _softmax_compute(labels, valid, rows, counts, per_image)
    table = _LovaszTable.apply(p, compute, (*counts.shape, 1))
    if not include_background:
        table, selected = table[:, 1:], selected[:, 1:]
    return _reduce(table, selected.to(table.device), reduction).to(input.dtype)


def lovasz_hinge_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    per_image: bool = True,
    ignore_index: int | None = None,
    reduction: str = "mean",
    check_input: bool = True,
) -> torch.Tensor:
    """Binary Lovász hinge loss on logits. See :class:`medloss.losses.LovaszHingeLoss`, whose arguments these are.

    Returns:
        The loss: a scalar, or (B, 1) per image / (1, 1) pooled for ``reduction="none"``.
    """
    prepare.check_input_tensor(input)
    reduce.check_reduction(reduction)
    if input.shape[1] != 1:
        raise ShapeMismatchError(
            f"`input` has {input.shape[1]} channels but the Lovász hinge is binary: pass (B, 1, *S) logits "
            "(for several classes use LovaszSoftmaxLoss)."
        )
    if check_input:
        prepare.check_finite(input)
    labels, valid = prepare.labels_and_mask(target, input, ignore_index=ignore_index, check_input=check_input)
    x = prepare.flatten(input.to(prepare.compute_dtype(input)))
    rows = input.shape[0] if per_image else 1
    table = _LovaszTable.apply(x, _hinge_compute(labels, valid, per_image), (rows, 1, 1))
    if reduction == "none":
        return table.to(input.dtype)
    return (table.sum() if reduction == "sum" else table.mean()).to(input.dtype)


__all__ = ["CHUNK_ELEMENTS", "Workspace", "check_classes", "lovasz_hinge_loss", "lovasz_signed_rows",
           "lovasz_softmax_loss"]
