"""The Triton kernels behind :mod:`medloss.backends.triton` (the math is in that module's docstring).

Imported on first use only (importing Triton costs ~0.4 s), with the interpreter setting in force at that time.
Only Triton features present in Triton 3.6 and 3.9 are used.
"""

import triton
import triton.language as tl

from medloss.backends import triton as _api

# jit code sees module globals only as compile-time constants
STATUS_NONFINITE = tl.constexpr(_api.STATUS_NONFINITE)
STATUS_LABEL = tl.constexpr(_api.STATUS_LABEL)


@triton.jit
def _pow(base, expo):
    """base^expo for base >= 0 (0^0 = 1, 0^expo = 0 for expo > 0)."""
    safe = tl.where(base > 0, base, 1.0)
    powered = tl.exp(expo * tl.log(safe))
    return tl.where(base > 0, powered, tl.where(expo == 0, 1.0, 0.0))


@triton.jit
def _tile(x_ptr, y_ptr, b, blk, N, C, ignore, lo, hi,
          HAS_IGNORE: tl.constexpr, FLOAT_LABELS: tl.constexpr, BLOCK_N: tl.constexpr,
          BLOCK_C: tl.constexpr, ACC: tl.constexpr):
    """Load one tile and recompute its softmax; returns what both passes need (see the module docstring)."""
    offs_n = blk * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_c = tl.arange(0, BLOCK_C)
    in_n = offs_n < N
    in_c = offs_c < C
    inside = in_c[:, None] & in_n[None, :]
    base = b.to(tl.int64) * C * N
    offsets = base + offs_c[:, None].to(tl.int64) * N + offs_n[None, :]
    x = tl.load(x_ptr + offsets, mask=inside, other=0.0).to(ACC)
    raw = tl.load(y_ptr + b.to(tl.int64) * N + offs_n, mask=in_n, other=0)
    y = raw.to(tl.int64)
    bad = tl.zeros([BLOCK_N], dtype=tl.int32)
    if FLOAT_LABELS:
        bad = tl.where(y.to(ACC) != raw.to(ACC), STATUS_LABEL, bad)
    valid = in_n
    if HAS_IGNORE:
        valid = valid & (y != ignore)
    out_of_range = valid & ((y < 0) | (y >= C))
    bad = tl.where(out_of_range, STATUS_LABEL, bad)
    valid = valid & (bad == 0)
    y = tl.where(valid, y, 0)
    finite = (x == x) & (tl.abs(x) < float("inf"))
    nonfinite = tl.max(tl.where(inside & ~finite, 1, 0), axis=0)
    bad = tl.where((nonfinite > 0) & in_n, bad | STATUS_NONFINITE, bad)
    xm = tl.where(in_c[:, None], x, float("-inf"))
    onehot = offs_c[:, None] == y[None, :]
    x_y = tl.sum(tl.where(onehot, x, 0.0), axis=0)
    top = tl.max(xm, axis=0)
    e = tl.exp(xm - top[None, :])
    total = tl.sum(e, axis=0)
    p = e / total[None, :]
    rest = tl.sum(tl.where(onehot, 0.0, e), axis=0)  # sum of the other classes' e
    q = rest / total  # 1 - p_y, without the cancellation of 1 - p_y
    # l = log p_y; where y is the arg-max, l = -log1p(rest) keeps the digits that log(total) would round away
    series = rest * (1.0 - rest * (0.5 - rest * (1.0 / 3.0 - rest * 0.25)))
    log1p_rest = tl.where(rest < 1e-4, series, tl.log(1.0 + rest))
    l = tl.where(x_y >= top, -log1p_rest, x_y - top - tl.log(total))
    lc = tl.minimum(tl.maximum(l, lo), hi)
    unclipped = (l >= lo) & (l <= hi)
    return offs_n, offs_c, inside, in_c, valid, bad, onehot, p, q, l, lc, unclipped


@triton.jit
def _phi(l, lc, q, gamma, VOXEL: tl.constexpr):
    """The voxel term at the clamped log-probability lc (q = 1 - p_y, accurate near p_y = 1)."""
    if VOXEL == 1:
        out = -lc
    elif VOXEL == 2:
        qc = tl.where(l == lc, q, 1.0 - tl.exp(lc))
        out = -_pow(qc, gamma) * lc
    elif VOXEL == 3:
        out = _pow(-lc, gamma)
    else:
        out = lc * 0.0
    return out


@triton.jit
def _slope(l, q, unclipped, gamma, VOXEL: tl.constexpr):
    """d phi / d l (0 where the clamp clips l)."""
    if VOXEL == 1:
        out = tl.where(unclipped, -1.0, 0.0)
    elif VOXEL == 2:
        focal = gamma * _pow(q, gamma - 1.0) * tl.exp(l) * l - _pow(q, gamma)
        out = tl.where(unclipped & (q > 0), focal, 0.0)
    elif VOXEL == 3:
        base = -l
        explog = -gamma * _pow(base, gamma - 1.0)
        out = tl.where(unclipped & (base > 0), explog, 0.0)
    else:
        out = l * 0.0
    return out


@triton.jit
def _forward_kernel(x_ptr, y_ptr, part_ptr, status_ptr, N, C, nblk, ignore, par_ptr,
                    HAS_IGNORE: tl.constexpr, FLOAT_LABELS: tl.constexpr, SQUARED: tl.constexpr,
                    VOXEL: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr, ACC: tl.constexpr):
    blk = tl.program_id(0)
    b = tl.program_id(1)
    lo, hi, gamma = tl.load(par_ptr), tl.load(par_ptr + 1), tl.load(par_ptr + 2)  # in ACC: exact for float64
    offs_n, offs_c, inside, in_c, valid, bad, onehot, p, q, l, lc, unclipped = _tile(
        x_ptr, y_ptr, b, blk, N, C, ignore, lo, hi, HAS_IGNORE, FLOAT_LABELS, BLOCK_N, BLOCK_C, ACC)
    v = valid.to(ACC)[None, :]
    tp = tl.sum(tl.where(onehot, p, 0.0) * v, axis=1)
    pv = p * v
    pred = tl.sum(pv * p, axis=1) if SQUARED else tl.sum(pv, axis=1)
    target = tl.sum(tl.where(onehot, v, 0.0), axis=1)
    phi = _phi(l, lc, q, gamma, VOXEL)
    vox = tl.sum(tl.where(onehot, phi[None, :] * v, 0.0), axis=1)
    row = part_ptr + (b.to(tl.int64) * nblk + blk) * 4 * BLOCK_C + offs_c
    tl.store(row, tp)
    tl.store(row + BLOCK_C, pred)
    tl.store(row + 2 * BLOCK_C, target)
    tl.store(row + 3 * BLOCK_C, vox)
    tl.store(status_ptr + b * nblk + blk, tl.max(bad, axis=0))


@triton.jit
def _backward_kernel(x_ptr, y_ptr, coef_ptr, grad_ptr, N, C, ignore, par_ptr,
                     HAS_IGNORE: tl.constexpr, FLOAT_LABELS: tl.constexpr, SQUARED: tl.constexpr,
                     VOXEL: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr, ACC: tl.constexpr):
    blk = tl.program_id(0)
    b = tl.program_id(1)
    lo, hi, gamma = tl.load(par_ptr), tl.load(par_ptr + 1), tl.load(par_ptr + 2)  # in ACC: exact for float64
    offs_n, offs_c, inside, in_c, valid, bad, onehot, p, q, l, lc, unclipped = _tile(
        x_ptr, y_ptr, b, blk, N, C, ignore, lo, hi, HAS_IGNORE, FLOAT_LABELS, BLOCK_N, BLOCK_C, ACC)
    crow = coef_ptr + b.to(tl.int64) * 3 * BLOCK_C + offs_c
    k = tl.load(crow)
    a = tl.load(crow + BLOCK_C)
    u = tl.load(crow + 2 * BLOCK_C)
    v = valid.to(ACC)
    g = (2.0 * k[:, None] * p if SQUARED else k[:, None] + p * 0.0) * v[None, :]
    big_k = tl.sum(g * p, axis=0)
    p_y = tl.sum(tl.where(onehot, p, 0.0), axis=0)
    a_y = tl.sum(tl.where(onehot, a[:, None], 0.0), axis=0)
    u_y = tl.sum(tl.where(onehot, u[:, None], 0.0), axis=0)
    s = v * (p_y * a_y + u_y * _slope(l, q, unclipped, gamma, VOXEL))
    dx = p * (g - big_k[None, :]) + tl.where(onehot, (s * q)[None, :], -p * s[None, :])
    base = b.to(tl.int64) * C * N
    offsets = base + offs_c[:, None].to(tl.int64) * N + offs_n[None, :]
    tl.store(grad_ptr + offsets, dx.to(grad_ptr.dtype.element_ty), mask=inside)
