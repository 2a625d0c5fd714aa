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
STATUS_SOFT = tl.constexpr(_api.STATUS_SOFT)
ROWS = tl.constexpr(_api.ROWS)  # rows of the packed result: TP, PRED, TARGET, VOXELS, VPOS, VNEG


@triton.jit
def _pow(base, expo):
    """base^expo for base >= 0 (0^0 = 1, 0^expo = 0 for expo > 0)."""
    safe = tl.where(base > 0, base, 1.0)
    powered = tl.exp(expo * tl.log(safe))
    return tl.where(base > 0, powered, tl.where(expo == 0, 1.0, 0.0))


@triton.jit
def _bit_or(a, b):
    return a | b


@triton.jit
def any_bits(flags, axis: tl.constexpr):
    """The OR of status words along ``axis``, one max per status bit. Same word as a reduction with a bitwise-OR
    combine function, but made of built-in reductions: Triton's interpreter runs a custom combine function in
    Python loops (about 0.2 s a call, most of an interpreted step), the built-ins in numpy."""
    return tl.max(flags & STATUS_NONFINITE, axis) | tl.max(flags & STATUS_LABEL, axis) | tl.max(
        flags & STATUS_SOFT, axis)


@triton.jit
def labels(raw, in_n, ignore, ncls, HAS_IGNORE: tl.constexpr, FLOAT_LABELS: tl.constexpr, ACC: tl.constexpr):
    """Decode a row of labels in their own dtype (integer) or ACC (float): (int32 labels, 0 where not valid;
    validity; status bits). Integer labels are range-checked before the narrowing, so no value wraps into range."""
    bad = tl.zeros(raw.shape, dtype=tl.int32)
    if FLOAT_LABELS:
        yf = raw.to(ACC)
        valid = in_n
        if HAS_IGNORE:
            valid = valid & (yf != ignore)
        in_range = (yf >= 0) & (yf < ncls)
        yi = tl.where(in_range, yf, 0.0).to(tl.int32)
        ok = in_range & (yi.to(ACC) == yf)
    else:
        valid = in_n
        if HAS_IGNORE:
            valid = valid & (raw != ignore)
        ok = (raw >= 0) & (raw < ncls)
        yi = tl.where(ok, raw, 0).to(tl.int32)
    bad = tl.where(valid & ~ok, STATUS_LABEL, bad)
    valid = valid & ok
    return tl.where(valid, yi, 0), valid, bad


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
    y, valid, bad = labels(raw, in_n, ignore, C, HAS_IGNORE, FLOAT_LABELS, ACC)
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
    # lp = log p_y; where y is the arg-max, lp = -log1p(rest) keeps the digits that log(total) would round away
    series = rest * (1.0 - rest * (0.5 - rest * (1.0 / 3.0 - rest * 0.25)))
    log1p_rest = tl.where(rest < 1e-4, series, tl.log(1.0 + rest))
    lp = tl.where(x_y >= top, -log1p_rest, x_y - top - tl.log(total))
    lc = tl.minimum(tl.maximum(lp, lo), hi)
    unclipped = (lp >= lo) & (lp <= hi)
    return offs_n, offs_c, inside, in_c, y, valid, bad, onehot, p, q, lp, lc, unclipped


@triton.jit
def _phi(lp, lc, q, gamma, VOXEL: tl.constexpr):
    """The voxel term at the clamped log-probability lc (q = 1 - p_y, accurate near p_y = 1)."""
    if VOXEL == 1:
        out = -lc
    elif VOXEL == 2:
        qc = tl.where(lp == lc, q, 1.0 - tl.exp(lc))
        out = -_pow(qc, gamma) * lc
    elif VOXEL == 3:
        out = _pow(-lc, gamma)
    else:
        out = tl.zeros_like(lc)
    return out


@triton.jit
def _slope(lp, q, unclipped, gamma, VOXEL: tl.constexpr):
    """d phi / d lp (0 where the clamp clips lp)."""
    if VOXEL == 1:
        out = tl.where(unclipped, -1.0, 0.0)
    elif VOXEL == 2:
        focal = gamma * _pow(q, gamma - 1.0) * tl.exp(lp) * lp - _pow(q, gamma)
        out = tl.where(unclipped & (q > 0), focal, 0.0)
    elif VOXEL == 3:
        base = -lp
        explog = -gamma * _pow(base, gamma - 1.0)
        out = tl.where(unclipped & (base > 0), explog, 0.0)
    else:
        out = tl.zeros_like(lp)
    return out


@triton.jit
def _label_rows(m_ptr, y, offs_c, inside, C, ACC: tl.constexpr):
    """M[y_n, c] as a (BLOCK_C, BLOCK_N) tile: the Wasserstein term's cost row of each voxel's label (row 0 for an
    uncounted voxel, whose validity zeroes its use)."""
    return tl.load(m_ptr + y[None, :] * C + offs_c[:, None], mask=inside, other=0.0).to(ACC)


@triton.jit
def _forward_kernel(x_ptr, y_ptr, part_ptr, status_ptr, N, C, nblk, nprog, ignore, par_ptr, m_ptr,
                    HAS_IGNORE: tl.constexpr, FLOAT_LABELS: tl.constexpr, SQUARED: tl.constexpr,
                    VOXEL: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr, ACC: tl.constexpr):
    """Program (pid, b) sums the tiles pid, pid + nprog, ... of sample b in registers and writes one partial row."""
    pid = tl.program_id(0)
    b = tl.program_id(1)
    lo, hi, gamma = tl.load(par_ptr), tl.load(par_ptr + 1), tl.load(par_ptr + 2)  # in ACC: exact for float64
    offs_c = tl.arange(0, BLOCK_C)
    tp = tl.zeros([BLOCK_C], dtype=ACC)
    pred = tl.zeros([BLOCK_C], dtype=ACC)
    target = tl.zeros([BLOCK_C], dtype=ACC)
    vox = tl.zeros([BLOCK_C], dtype=ACC)
    voxels = tl.zeros([BLOCK_N], dtype=ACC)
    flags = tl.zeros([BLOCK_N], dtype=tl.int32)
    for blk in range(pid, nblk, nprog):
        offs_n, offs_c, inside, in_c, y, valid, bad, onehot, p, q, lp, lc, unclipped = _tile(
            x_ptr, y_ptr, b, blk, N, C, ignore, lo, hi, HAS_IGNORE, FLOAT_LABELS, BLOCK_N, BLOCK_C, ACC)
        v = valid.to(ACC)[None, :]
        tp += tl.sum(tl.where(onehot, p, 0.0) * v, axis=1)
        pv = p * v
        pred += tl.sum(pv * p, axis=1) if SQUARED else tl.sum(pv, axis=1)
        target += tl.sum(tl.where(onehot, v, 0.0), axis=1)
        voxels += valid.to(ACC)
        flags = flags | bad
        if VOXEL == 4:  # the Wasserstein error WE = sum_c M[y, c] p_c
            we = tl.sum(_label_rows(m_ptr, y, offs_c, inside, C, ACC) * p, axis=0)
            vox += tl.sum(tl.where(onehot, we[None, :] * v, 0.0), axis=1)
        elif VOXEL != 0:
            phi = _phi(lp, lc, q, gamma, VOXEL)
            vox += tl.sum(tl.where(onehot, phi[None, :] * v, 0.0), axis=1)
    row = part_ptr + (b.to(tl.int64) * nprog + pid) * ROWS * BLOCK_C + offs_c
    tl.store(row, tp)
    tl.store(row + BLOCK_C, pred)
    tl.store(row + 2 * BLOCK_C, target)
    tl.store(row + 3 * BLOCK_C, tl.where(offs_c == 0, tl.sum(voxels, axis=0), 0.0))
    tl.store(row + 4 * BLOCK_C, vox)
    tl.store(row + 5 * BLOCK_C, tl.zeros([BLOCK_C], dtype=ACC))
    tl.store(status_ptr + b * nprog + pid, any_bits(flags, 0))


@triton.jit
def _finalize_kernel(part_ptr, status_ptr, out_ptr, B, C, nblk, BLOCK_C: tl.constexpr, CHUNK: tl.constexpr):
    """One program: sums the (B, nblk, ROWS, BLOCK_C) partial tables over the blocks in float64, in a fixed order
    (deterministic), into the packed (B, ROWS, C) result (its dtype), and ORs the blocks' status words into the word
    after them (status_ptr[B * nblk])."""
    rows = tl.arange(0, 8)
    offs_c = tl.arange(0, BLOCK_C)
    offs_k = tl.arange(0, CHUNK)
    word = tl.zeros([CHUNK], dtype=tl.int32)
    for b in range(B):
        acc = tl.zeros([8, BLOCK_C], dtype=tl.float64)
        for start in range(0, nblk, CHUNK):
            blk = start + offs_k
            inside = blk < nblk
            where = (b * nblk + blk)[:, None, None] * ROWS + rows[None, :, None]
            mask = inside[:, None, None] & (rows < ROWS)[None, :, None]
            part = tl.load(part_ptr + where * BLOCK_C + offs_c[None, None, :], mask=mask, other=0.0)
            acc += tl.sum(part.to(tl.float64), axis=0)
            word = word | tl.load(status_ptr + b * nblk + blk, mask=inside, other=0)
        dest = out_ptr + (b * ROWS + rows[:, None]) * C + offs_c[None, :]
        tl.store(dest, acc.to(out_ptr.dtype.element_ty), mask=(rows < ROWS)[:, None] & (offs_c < C)[None, :])
    tl.store(status_ptr + B * nblk, any_bits(word, 0))


@triton.jit
def _coef(ptr, b, stride_b, stride_c, offs_c, C, HAS: tl.constexpr, BLOCK_C: tl.constexpr, ACC: tl.constexpr):
    """Row b of a (B, C) incoming gradient of any strides (zeros where padded or where the table got none)."""
    if HAS:
        out = tl.load(ptr + b.to(tl.int64) * stride_b + offs_c * stride_c, mask=offs_c < C, other=0.0).to(ACC)
    else:
        out = tl.zeros([BLOCK_C], dtype=ACC)
    return out


@triton.jit
def _backward_kernel(x_ptr, y_ptr, k_ptr, a_ptr, u_ptr, grad_ptr, N, C, ignore, par_ptr, m_ptr, kb, kc, ab, ac, ub,
                     uc,
                     HAS_IGNORE: tl.constexpr, FLOAT_LABELS: tl.constexpr, SQUARED: tl.constexpr,
                     VOXEL: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr, ACC: tl.constexpr,
                     HAS_K: tl.constexpr, HAS_A: tl.constexpr, HAS_U: tl.constexpr, gout_ptr=None,
                     SCALE: tl.constexpr = False):
    blk = tl.program_id(0)
    b = tl.program_id(1)
    lo, hi, gamma = tl.load(par_ptr), tl.load(par_ptr + 1), tl.load(par_ptr + 2)  # in ACC: exact for float64
    offs_n, offs_c, inside, in_c, y, valid, bad, onehot, p, q, lp, lc, unclipped = _tile(
        x_ptr, y_ptr, b, blk, N, C, ignore, lo, hi, HAS_IGNORE, FLOAT_LABELS, BLOCK_N, BLOCK_C, ACC)
    k = _coef(k_ptr, b, kb, kc, offs_c, C, HAS_K, BLOCK_C, ACC)
    a = _coef(a_ptr, b, ab, ac, offs_c, C, HAS_A, BLOCK_C, ACC)
    u = _coef(u_ptr, b, ub, uc, offs_c, C, HAS_U, BLOCK_C, ACC)
    if SCALE:  # a fused loss's coefficients, times its incoming gradient (read here: no host read)
        scale = tl.load(gout_ptr).to(ACC)
        k, a, u = k * scale, a * scale, u * scale
    v = valid.to(ACC)
    g = 2.0 * k[:, None] * p * v[None, :] if SQUARED else tl.broadcast_to(k[:, None], (BLOCK_C, BLOCK_N)) * v[None, :]
    if VOXEL == 4:  # Wasserstein: dWE/dx_c = p_c (M[y, c] - WE), i.e. v u_y M[y, c] joins g (and so K)
        u_y = tl.sum(tl.where(onehot, u[:, None], 0.0), axis=0)
        g += (u_y * v)[None, :] * _label_rows(m_ptr, y, offs_c, inside, C, ACC)
    big_k = tl.sum(g * p, axis=0)
    p_y = tl.sum(tl.where(onehot, p, 0.0), axis=0)
    a_y = tl.sum(tl.where(onehot, a[:, None], 0.0), axis=0)
    s = p_y * a_y
    if VOXEL != 0 and VOXEL != 4:
        u_y = tl.sum(tl.where(onehot, u[:, None], 0.0), axis=0)
        s += u_y * _slope(lp, q, unclipped, gamma, VOXEL)
    s = v * s
    dx = p * (g - big_k[None, :]) + tl.where(onehot, (s * q)[None, :], -p * s[None, :])
    base = b.to(tl.int64) * C * N
    offsets = base + offs_c[:, None].to(tl.int64) * N + offs_n[None, :]
    tl.store(grad_ptr + offsets, dx.to(grad_ptr.dtype.element_ty), mask=inside)
