"""Triton kernels for the sigmoid tables (the math is in :mod:`medloss.backends.eager.sigmoid`).

A forward program walks BLOCK_C x BLOCK_N tiles of one sample's logits and target (a label map row, or the dense
tile; grid-stride), recomputes p = sigmoid(x) in registers and accumulates one partial row (TP, PRED, TARGET, the
voxel count, VPOS, VNEG) that the finalize kernel sums; a backward program reads one tile and writes its
gradient. Imported on first use; only Triton features present in Triton 3.6 and 3.9.
"""

import triton
import triton.language as tl

from medloss.backends import triton as _api
from medloss.backends.triton._kernels import _bit_or, _coef, any_bits, labels

STATUS_NONFINITE = tl.constexpr(_api.STATUS_NONFINITE)
STATUS_LABEL = tl.constexpr(_api.STATUS_LABEL)
STATUS_SOFT = tl.constexpr(_api.STATUS_SOFT)
ROWS = tl.constexpr(_api.ROWS)


@triton.jit
def _log1p(u):
    """log(1 + u) for u >= 0, without losing the digits of a small u."""
    series = u * (1.0 - u * (0.5 - u * (1.0 / 3.0 - u * 0.25)))
    return tl.where(u < 1e-4, series, tl.log(1.0 + u))


@triton.jit
def _softplus(z):
    """log(1 + e^z), stable for any z."""
    return tl.maximum(z, 0.0) + _log1p(tl.exp(-tl.abs(z)))


@triton.jit
def _softplus_pair(x):
    """(softplus(x), softplus(-x)) with one exp and one log: they share log1p(e^-|x|)."""
    tail = _log1p(tl.exp(-tl.abs(x)))
    return tl.maximum(x, 0.0) + tail, tl.maximum(-x, 0.0) + tail


@triton.jit
def _softplus_signed(x, g, sp_pos, sp_neg, DENSE: tl.constexpr):
    """softplus(x (2g - 1)) given sp_pos = softplus(x) and sp_neg = softplus(-x): a label map's g is 0 or 1, so it
    is one of them (the same bits); a dense target's g may lie between, so it is computed."""
    return _softplus(x * (2.0 * g - 1.0)) if DENSE else tl.where(g > 0.0, sp_pos, sp_neg)


@triton.jit
def _tile(x_ptr, t_ptr, b, blk, N, C, NCLS, ignore,
          DENSE: tl.constexpr, HAS_IGNORE: tl.constexpr, FLOAT_LABELS: tl.constexpr, BLOCK_N: tl.constexpr,
          BLOCK_C: tl.constexpr, ACC: tl.constexpr):
    """Load one tile: logits x, target g (0 where the voxel does not count), validity v (C x N, 0 on padding) and
    the status bits of the tile."""
    offs_n = blk * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_c = tl.arange(0, BLOCK_C)
    in_n = offs_n < N
    in_c = offs_c < C
    inside = in_c[:, None] & in_n[None, :]
    offsets = b.to(tl.int64) * C * N + offs_c[:, None].to(tl.int64) * N + offs_n[None, :]
    x = tl.load(x_ptr + offsets, mask=inside, other=0.0).to(ACC)
    finite = (x == x) & (tl.abs(x) < float("inf"))
    bits = tl.where(inside & ~finite, STATUS_NONFINITE, 0)  # the tile's status bits, OR-ed over classes once
    if DENSE:
        t = tl.load(t_ptr + offsets, mask=inside, other=0.0).to(ACC)
        valid = in_n
        if HAS_IGNORE:
            ignored = tl.max(tl.where(inside & (t == ignore), 1, 0), axis=0)
            valid = valid & (ignored == 0)
        counted = inside & valid[None, :]
        bits = bits | tl.where(counted & ~((t >= 0.0) & (t <= 1.0)), STATUS_LABEL, 0)
        bits = bits | tl.where(counted & (t != 0.0) & (t != 1.0), STATUS_SOFT, 0)
        bad = tl.reduce(bits, 0, _bit_or)  # in the tile loop: one reduction holds fewer registers than any_bits
        g = tl.where(counted, t, 0.0)
    else:
        raw = tl.load(t_ptr + b.to(tl.int64) * N + offs_n, mask=in_n, other=0)
        y, valid, bad = labels(raw, in_n, ignore, NCLS, HAS_IGNORE, FLOAT_LABELS, ACC)
        bad = bad | tl.reduce(bits, 0, _bit_or)
        hot = tl.where(C == 1, 1, offs_c)
        g = tl.where((hot[:, None] == y[None, :]) & inside & valid[None, :], 1.0, 0.0).to(ACC)
    v = tl.where(inside & valid[None, :], 1.0, 0.0).to(ACC)
    return offs_n, offs_c, inside, valid, bad, x, g, v


@triton.jit
def _forward_kernel(x_ptr, t_ptr, part_ptr, status_ptr, N, C, NCLS, nblk, nprog, ignore, par_ptr,
                    DENSE: tl.constexpr, HAS_IGNORE: tl.constexpr, FLOAT_LABELS: tl.constexpr,
                    SQUARED: tl.constexpr, VOXEL: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr,
                    ACC: tl.constexpr):
    """Program (pid, b) sums the tiles pid, pid + nprog, ... of sample b in registers and writes one partial row."""
    pid = tl.program_id(0)
    b = tl.program_id(1)
    gamma = tl.load(par_ptr)  # in ACC: exact for float64
    offs_c = tl.arange(0, BLOCK_C)
    tp = tl.zeros([BLOCK_C], dtype=ACC)
    pred = tl.zeros([BLOCK_C], dtype=ACC)
    target = tl.zeros([BLOCK_C], dtype=ACC)
    pos_sum = tl.zeros([BLOCK_C], dtype=ACC)
    neg_sum = tl.zeros([BLOCK_C], dtype=ACC)
    voxels = tl.zeros([BLOCK_N], dtype=tl.int32)  # counts: exact in int32, and one register a lane in float64
    flags = tl.zeros([BLOCK_N], dtype=tl.int32)
    for blk in range(pid, nblk, nprog):
        offs_n, offs_c, inside, valid, bad, x, g, v = _tile(
            x_ptr, t_ptr, b, blk, N, C, NCLS, ignore, DENSE, HAS_IGNORE, FLOAT_LABELS, BLOCK_N, BLOCK_C, ACC)
        p = 1.0 / (1.0 + tl.exp(-x))
        pv = p * v
        gv = g * v
        tp += tl.sum(pv * g, axis=1)
        pred += tl.sum(pv * p, axis=1) if SQUARED else tl.sum(pv, axis=1)
        target += tl.sum(gv * g, axis=1) if SQUARED else tl.sum(gv, axis=1)
        voxels += valid.to(tl.int32)
        flags = flags | bad
        if VOXEL != 0:
            sp_pos, sp_neg = _softplus_pair(x)  # -log(1 - p), -log p
            if VOXEL == 1:
                pos = gv * sp_neg
                neg = (v - gv) * sp_pos
            else:
                bce = g * sp_neg + (1.0 - g) * sp_pos
                # sigmoid(x (1 - 2g))^gamma * bce
                focal = tl.exp(-gamma * _softplus_signed(x, g, sp_pos, sp_neg, DENSE)) * bce
                pos = gv * focal
                neg = (v - gv) * focal
            pos_sum += tl.sum(pos, axis=1)
            neg_sum += tl.sum(neg, axis=1)
    row = part_ptr + (b.to(tl.int64) * nprog + pid) * ROWS * BLOCK_C + offs_c
    tl.store(row, tp)
    tl.store(row + BLOCK_C, pred)
    tl.store(row + 2 * BLOCK_C, target)
    tl.store(row + 3 * BLOCK_C, tl.where(offs_c == 0, tl.sum(voxels, axis=0).to(ACC), 0.0))
    tl.store(row + 4 * BLOCK_C, pos_sum)
    tl.store(row + 5 * BLOCK_C, neg_sum)
    tl.store(status_ptr + b * nprog + pid, any_bits(flags, 0))


@triton.jit
def _backward_kernel(x_ptr, t_ptr, k_ptr, a_ptr, upos_ptr, uneg_ptr, grad_ptr, N, C, NCLS, ignore, par_ptr,
                     kb, kc, ab, ac, pb, pc, nb, nc,
                     DENSE: tl.constexpr, HAS_IGNORE: tl.constexpr, FLOAT_LABELS: tl.constexpr,
                     SQUARED: tl.constexpr, VOXEL: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr,
                     ACC: tl.constexpr, HAS_K: tl.constexpr, HAS_A: tl.constexpr, HAS_P: tl.constexpr,
                     HAS_N: tl.constexpr, gout_ptr=None, SCALE: tl.constexpr = False):
    blk = tl.program_id(0)
    b = tl.program_id(1)
    gamma = tl.load(par_ptr)  # in ACC: exact for float64
    offs_n, offs_c, inside, valid, bad, x, g, v = _tile(
        x_ptr, t_ptr, b, blk, N, C, NCLS, ignore, DENSE, HAS_IGNORE, FLOAT_LABELS, BLOCK_N, BLOCK_C, ACC)
    k = _coef(k_ptr, b, kb, kc, offs_c, C, HAS_K, BLOCK_C, ACC)[:, None]
    a = _coef(a_ptr, b, ab, ac, offs_c, C, HAS_A, BLOCK_C, ACC)[:, None]
    upos = _coef(upos_ptr, b, pb, pc, offs_c, C, HAS_P, BLOCK_C, ACC)[:, None]
    uneg = _coef(uneg_ptr, b, nb, nc, offs_c, C, HAS_N, BLOCK_C, ACC)[:, None]
    if SCALE:  # a fused loss's coefficients, times its incoming gradient (read here: no host read)
        scale = tl.load(gout_ptr).to(ACC)
        k, a, upos, uneg = k * scale, a * scale, upos * scale, uneg * scale
    p = 1.0 / (1.0 + tl.exp(-x))
    q = 1.0 / (1.0 + tl.exp(x))  # 1 - p, accurate where p is near 1
    dp = a * g + (2.0 * k * p if SQUARED else k)
    dx = p * q * dp
    if VOXEL == 1:
        dx += upos * g * (-q) + uneg * (1.0 - g) * p
    elif VOXEL == 2:
        sp_pos, sp_neg = _softplus_pair(x)
        bce = g * sp_neg + (1.0 - g) * sp_pos
        w = tl.exp(-gamma * _softplus_signed(x, g, sp_pos, sp_neg, DENSE))
        # sigmoid(x (2g - 1)): p or q for a label map's g (0 or 1)
        sig_z = 1.0 / (1.0 + tl.exp(-x * (2.0 * g - 1.0))) if DENSE else tl.where(g > 0.0, p, q)
        slope = w * (gamma * sig_z * (1.0 - 2.0 * g) * bce + p - g)
        dx += (upos * g + uneg * (1.0 - g)) * slope
    dx = dx * v
    offsets = b.to(tl.int64) * C * N + offs_c[:, None].to(tl.int64) * N + offs_n[None, :]
    tl.store(grad_ptr + offsets, dx.to(grad_ptr.dtype.element_ty), mask=inside)
