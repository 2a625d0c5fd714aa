"""The finalize kernel of the fused losses (:mod:`medloss.backends.triton.fused`; the formulas are in that module's
docstring, and they are those of :mod:`medloss.functional.region` and :mod:`medloss.functional.voxel`, which remain
the reference the tests hold this kernel to).

Imported on first use only, as :mod:`medloss.backends.triton._kernels`; only Triton features present in Triton 3.6
and 3.9 are used.
"""

import triton
import triton.language as tl

from medloss.backends import triton as _api
from medloss.backends.triton._kernels import any_bits

ROWS = tl.constexpr(_api.ROWS)  # rows of a partial table: TP, PRED, TARGET, VOXELS, VPOS, VNEG
#: rows of the scratch buffer, per sample: the gradient coefficients dL/dPRED, dL/dTP, dL/dVPOS, dL/dVNEG that the
#: backward kernel reads (dL/dVPOS first for a voxel loss alone: the buffer itself is then the pointer to the one
#: coefficient read), then the tables TP, PRED, TARGET, VOXELS, VPOS, VNEG in the compute dtype
SCRATCH = tl.constexpr(10)
T = tl.constexpr(4)  # the first table row


@triton.jit
def _sum_rows(part_ptr, status_ptr, b, nblk, word, NEG: tl.constexpr, BLOCK_C: tl.constexpr, CHUNK: tl.constexpr):
    """Sample b's partial tables summed over its programs in float64, in a fixed order (deterministic), VNEG only
    with NEG (sigmoid BCE); the status words of its programs ORed into ``word``."""
    offs_c = tl.arange(0, BLOCK_C)
    offs_k = tl.arange(0, CHUNK)
    tp = tl.zeros([BLOCK_C], dtype=tl.float64)
    pred = tl.zeros([BLOCK_C], dtype=tl.float64)
    target = tl.zeros([BLOCK_C], dtype=tl.float64)
    voxels = tl.zeros([BLOCK_C], dtype=tl.float64)
    vpos = tl.zeros([BLOCK_C], dtype=tl.float64)
    vneg = tl.zeros([BLOCK_C], dtype=tl.float64)
    for start in range(0, nblk, CHUNK):
        blk = start + offs_k
        inside = (blk < nblk)[:, None]
        row = part_ptr + ((b * nblk + blk) * ROWS)[:, None] * BLOCK_C + offs_c[None, :]
        tp += tl.sum(tl.load(row, mask=inside, other=0.0).to(tl.float64), axis=0)
        pred += tl.sum(tl.load(row + BLOCK_C, mask=inside, other=0.0).to(tl.float64), axis=0)
        target += tl.sum(tl.load(row + 2 * BLOCK_C, mask=inside, other=0.0).to(tl.float64), axis=0)
        voxels += tl.sum(tl.load(row + 3 * BLOCK_C, mask=inside, other=0.0).to(tl.float64), axis=0)
        vpos += tl.sum(tl.load(row + 4 * BLOCK_C, mask=inside, other=0.0).to(tl.float64), axis=0)
        if NEG:
            vneg += tl.sum(tl.load(row + 5 * BLOCK_C, mask=inside, other=0.0).to(tl.float64), axis=0)
        word = word | tl.load(status_ptr + b * nblk + blk, mask=blk < nblk, other=0)
    return tp, pred, target, voxels, vpos, vneg, word


@triton.jit
def _gdl_weights(target, kept, W_TYPE: tl.constexpr):
    """Generalized Dice class weights of a row, in float64 (then the tables' dtype): 1/G^2, 1/G or 1; an absent
    class (infinite weight) gets the largest weight of the row's present classes; classes not kept get 0."""
    g = target.to(tl.float64)
    absent = g == 0  # G is a count of voxels: 1/G^2 and 1/G are infinite exactly there
    safe = tl.where(absent, 1.0, g)
    if W_TYPE == 0:
        w = 1.0 / (safe * safe)
    elif W_TYPE == 1:
        w = 1.0 / safe
    else:
        w = tl.full(g.shape, 1.0, tl.float64)
        absent = g != g  # uniform weights are never infinite
    w = tl.where(absent | ~kept, 0.0, w)
    w = w + tl.where(absent & kept, tl.max(w, axis=0), 0.0)
    return w.to(target.dtype)


@triton.jit
def _region(tp, pred, target, voxels, kept, nkept, par_ptr, REGION: tl.constexpr, W_TYPE: tl.constexpr,
            EMPTY_PENALIZE: tl.constexpr, FOCAL: tl.constexpr):
    """(the row's region loss summed over its kept classes, dL/dTP, dL/dPRED of that sum) for one row of tables;
    REGION 1: Dice, 2: k TP / (k TP + a FP + b FN) (Jaccard, Tversky), 3: Generalized Dice (one value per row)."""
    snr, sdr = tl.load(par_ptr), tl.load(par_ptr + 1)
    if REGION == 3:
        w = _gdl_weights(target, kept, W_TYPE)
        numer = 2.0 * tl.sum(w * tp, axis=0) + snr
        denom = tl.sum(w * (pred + target), axis=0) + sdr
        value = 1.0 - numer / denom
        d_tp = -2.0 * w / denom
        d_pred = numer / denom / denom * w
        if EMPTY_PENALIZE:  # no kept class in the target: the soft false-positive rate
            empty = tl.sum(tl.where(kept & (target != 0), 1, 0), axis=0) == 0
            per = 1.0 / (nkept * tl.maximum(voxels, 1.0))
            rate = tl.sum(tl.where(kept, pred, 0.0), axis=0) / (nkept * tl.maximum(voxels, 1.0))
            value = tl.where(empty, rate, value)
            d_tp = tl.where(empty, 0.0, d_tp)
            d_pred = tl.where(empty, tl.where(kept, per, 0.0), d_pred)
    else:
        if REGION == 1:
            numer = 2.0 * tp + snr
            denom = pred + target + sdr
            ratio = numer / denom
            d_tp = -2.0 / denom
            d_pred = ratio / denom
        else:
            k, a, b = tl.load(par_ptr + 2), tl.load(par_ptr + 3), tl.load(par_ptr + 4)
            numer = k * tp + snr
            denom = k * tp + a * (pred - tp) + b * (target - tp) + sdr
            ratio = numer / denom
            d_tp = -k / denom + ratio / denom * (k - a - b)
            d_pred = a * ratio / denom
        loss = 1.0 - ratio
        if FOCAL:  # (1 - TI) clamped below by eps, to the power 1/gamma, per class
            eps, inv_gamma = tl.load(par_ptr + 5), tl.load(par_ptr + 6)
            base = tl.maximum(loss, eps)
            slope = tl.where(loss >= eps, inv_gamma * tl.exp((inv_gamma - 1.0) * tl.log(base)), 0.0)
            loss = tl.exp(inv_gamma * tl.log(base))
            d_tp = d_tp * slope
            d_pred = d_pred * slope
        value = tl.sum(tl.where(kept, loss, 0.0), axis=0)
        d_tp = tl.where(kept, d_tp, 0.0)
        d_pred = tl.where(kept, d_pred, 0.0)
    return value, d_tp, d_pred


@triton.jit
def _loss_kernel(part_ptr, status_ptr, par_ptr, scratch_ptr, loss_ptr, B, C, nblk,
                 REGION: tl.constexpr, W_TYPE: tl.constexpr, EMPTY_PENALIZE: tl.constexpr, FOCAL: tl.constexpr,
                 VOXEL: tl.constexpr, BATCH: tl.constexpr, FIRST: tl.constexpr, MEAN: tl.constexpr,
                 BLOCK_C: tl.constexpr, CHUNK: tl.constexpr, ACC: tl.constexpr):
    """One program. Pass 1 sums each sample's partial tables (:func:`_sum_rows`), stores them in the tables' dtype
    into the scratch rows and gathers what every row needs (the batch-pooled tables, the label count, the voxel
    counts); pass 2 evaluates the loss (stored in ``loss_ptr``'s dtype) and writes the gradient coefficients of
    every sample. FIRST: the first kept class, MEAN: mean (else sum) reduction, VOXEL 0: none, 1: cross-entropy,
    2: softmax focal, 3: sigmoid BCE."""
    offs_c = tl.arange(0, BLOCK_C)
    kept = (offs_c >= FIRST) & (offs_c < C)
    # as tensors: Triton passes a size of 1 as a constant, which has no dtype
    nkept = tl.zeros([1], dtype=ACC) + (C - FIRST)
    nrows = tl.zeros([1], dtype=ACC) + B  # rows of the reduced region table
    if BATCH:
        nrows = tl.zeros([1], dtype=ACC) + 1.0
    word = tl.zeros([CHUNK], dtype=tl.int32)
    pooled_tp = tl.zeros([BLOCK_C], dtype=ACC)
    pooled_pred = tl.zeros([BLOCK_C], dtype=ACC)
    pooled_target = tl.zeros([BLOCK_C], dtype=ACC)
    pooled_voxels = tl.zeros([BLOCK_C], dtype=ACC)
    labelled = tl.zeros([BLOCK_C], dtype=ACC)
    counted = tl.zeros([BLOCK_C], dtype=ACC)
    for b in range(B):
        tp, pred, target, voxels, vpos, vneg, word = _sum_rows(part_ptr, status_ptr, b, nblk, word, VOXEL == 3,
                                                               BLOCK_C, CHUNK)
        row = scratch_ptr + (b * SCRATCH + T) * BLOCK_C + offs_c
        tl.store(row, tp.to(ACC))
        tl.store(row + BLOCK_C, pred.to(ACC))
        tl.store(row + 2 * BLOCK_C, target.to(ACC))
        tl.store(row + 3 * BLOCK_C, voxels.to(ACC))
        tl.store(row + 4 * BLOCK_C, vpos.to(ACC))
        tl.store(row + 5 * BLOCK_C, vneg.to(ACC))
        pooled_tp += tp.to(ACC)
        pooled_pred += pred.to(ACC)
        pooled_target += target.to(ACC)
        pooled_voxels += voxels.to(ACC)
        labelled += tl.where(offs_c < C, target.to(ACC), 0.0)
        counted += tl.maximum(tl.sum(voxels.to(ACC), axis=0), 1.0)
    tl.store(status_ptr + B * nblk, any_bits(word, 0))
    tl.debug_barrier()  # pass 2 reads the rows other threads of this program stored
    lam_region, lam_voxel = tl.load(par_ptr + 7), tl.load(par_ptr + 8)
    region = tl.zeros([BLOCK_C], dtype=ACC)
    voxel = tl.zeros([BLOCK_C], dtype=ACC)
    if REGION != 0 and BATCH:
        value, d_tp, d_pred = _region(pooled_tp, pooled_pred, pooled_target, tl.sum(pooled_voxels, axis=0), kept,
                                      nkept, par_ptr, REGION, W_TYPE, EMPTY_PENALIZE, FOCAL)
        region += tl.where(offs_c == 0, value, 0.0)
    count_all = tl.max(counted, axis=0)  # sum_b max(VOXELS_b, 1) (every entry of `counted` holds it)
    for b in range(B):
        coef = scratch_ptr + b * SCRATCH * BLOCK_C + offs_c
        row = coef + T * BLOCK_C
        if REGION != 0:
            if not BATCH:
                value, d_tp, d_pred = _region(tl.load(row), tl.load(row + BLOCK_C), tl.load(row + 2 * BLOCK_C),
                                              tl.sum(tl.load(row + 3 * BLOCK_C), axis=0), kept, nkept, par_ptr,
                                              REGION, W_TYPE, EMPTY_PENALIZE, FOCAL)
                region += tl.where(offs_c == 0, value, 0.0)
            scale = lam_region / nrows / (1.0 if REGION == 3 else nkept) if MEAN else lam_region + 0.0 * nrows
            tl.store(coef, scale * d_pred)
            tl.store(coef + BLOCK_C, scale * d_tp)
        if VOXEL != 0:
            vpos = tl.load(row + 4 * BLOCK_C)
            if VOXEL == 1:  # cross-entropy over every class: mean divides by the number of counted labels
                voxel += tl.where(offs_c < C, vpos, 0.0)
                u = lam_voxel / tl.sum(labelled, axis=0) if MEAN else lam_voxel
                u = tl.where(offs_c < C, u, 0.0)
            elif VOXEL == 3:  # sigmoid BCE: mean over C times the counted voxels of the batch
                voxel += tl.where(offs_c < C, vpos + tl.load(row + 5 * BLOCK_C), 0.0)
                u = lam_voxel / tl.maximum(tl.sum(pooled_voxels, axis=0) * C, 1.0) if MEAN else lam_voxel
                u = tl.where(offs_c < C, u, 0.0)
                tl.store(coef + 3 * BLOCK_C, u)
            elif MEAN:  # softmax focal, mean over C' times the counted voxels (MONAI's reduction)
                voxel += tl.where(kept, vpos, 0.0)
                u = tl.where(kept, lam_voxel / (count_all * nkept), 0.0)
            else:  # softmax focal, sum over (b, c) of the per-sample means
                count = tl.maximum(tl.sum(tl.load(row + 3 * BLOCK_C), axis=0), 1.0)
                voxel += tl.where(kept, vpos / count, 0.0)
                u = tl.where(kept, lam_voxel / count, 0.0)
            tl.store(coef + (2 if REGION != 0 else 0) * BLOCK_C, u)  # a voxel loss alone: the first row
    total = tl.zeros([1], dtype=ACC)
    if REGION != 0:
        reduced = tl.sum(region, axis=0)
        if MEAN:
            reduced = reduced / (nrows * (1.0 if REGION == 3 else nkept))
        total += lam_region * reduced
    if VOXEL != 0:
        reduced = tl.sum(voxel, axis=0)
        if MEAN:
            if VOXEL == 1:
                reduced = reduced / tl.sum(labelled, axis=0)
            elif VOXEL == 3:
                reduced = reduced / tl.maximum(tl.sum(pooled_voxels, axis=0) * C, 1.0)
            else:
                reduced = reduced / (count_all * nkept)
        total += lam_voxel * reduced
    tl.store(loss_ptr + tl.arange(0, 1), total.to(loss_ptr.dtype.element_ty))
