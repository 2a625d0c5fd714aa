"""Reference region (overlap) losses: Dice / Jaccard, Tversky, Focal-Tversky, Generalized Dice.

sources:
  * Dice loss, squared denominator: Milletari, Navab, Ahmadi, "V-Net", 3DV 2016 (arXiv:1606.04797).
  * Soft-label TP/FP/FN (``soft_label=True``): Wang & Blaschko, "Dice Semimetric Losses" MICCAI 2023
    (arXiv:2303.16296) and "Jaccard Metric Losses" NeurIPS 2023 (arXiv:2302.05666).
  * Tversky loss: Salehi, Erdogmus, Gholipour, MLMI 2017 (arXiv:1706.05721).
  * Focal Tversky loss: Abraham & Khan, ISBI 2019 (arXiv:1810.07842).
  * Generalized Dice loss: Sudre, Li, Vercauteren, Ourselin, Cardoso, DLMIA 2017 (arXiv:1707.03237).

Notation (per sample b and class c, sums over the *valid* voxels n only):

    TP = sum_n p*g          FP = sum_n p*(1-g)         FN = sum_n (1-p)*g
    I  = TP                 U  = sum_n p + sum_n g     (squared_pred: U = sum_n p^2 + sum_n g^2)

With ``soft_label=True`` (and not squared_pred): TP = sum_n min(p, g),
FP = sum_n max(p-g, 0), FN = sum_n max(g-p, 0)   (identical to the above for g in {0, 1}).

Formulas (s_nr, s_dr = smooth_nr, smooth_dr):

    dice     f = 1 - (2 I + s_nr) / (U + s_dr)
    jaccard  MONAI 1.6.1 form (default, ``jaccard_form="monai"``):
             f = 1 - (2 I + s_nr) / (2 (U - I) + s_dr)
             i.e. the textbook  1 - (I + s_nr/2) / (U - I + s_dr/2);
             ``jaccard_form="plain"``: f = 1 - (I + s_nr) / (U - I + s_dr)
             (the two only differ through the smoothing constants).
    tversky  f = 1 - (TP + s_nr) / (TP + alpha*FP + beta*FN + s_dr)     (alpha on FP, beta on FN)
    focal-tversky  f_c = (1 - TI_c) ** (1/gamma),  TI_c = Tversky index above,
             defaults alpha=0.3 (FP), beta=0.7 (FN), gamma=4/3; the class mean is taken by the caller
             *after* the per-class exponent.
    generalized dice (one value per sample, or one per batch when pooled):
             G_c = sum_n g, P_c = sum_n p,
             w_c = 1/G_c^2 ('square') | 1/G_c ('simple') | 1 ('uniform')
             a class with G_c = 0 gets the largest weight among the classes with G_c > 0;
             if no class has G_c > 0: empty="penalize" -> all w_c = 1,
                                      empty="monai"    -> all w_c = 0 (MONAI 1.6.1: loss = 0)
             ('uniform' weights are 1 in every case.)
             f = 1 - (2 sum_c w_c TP_c + s_nr) / (sum_c w_c (G_c + P_c) + s_dr)

Batch pooling (``batch=True``): the per-(b, c) sums are added over b *before* any division;
the result then has shape (C,) (generalized dice: a scalar).
"""

from __future__ import annotations

import numpy as np

from ._common import flat_bcn, flat_valid


# --------------------------------------------------------------------------- statistics
def region_sums(p, g, valid=None, *, squared_pred: bool = False, soft_label: bool = False):
    """Per-(b, c) sums by explicit loops over b, c and voxels.

    Returns a dict of (B, C) float64 arrays: tp, fp, fn, sum_p, sum_g
    (sum_p / sum_g are sums of squares when ``squared_pred``).
    """
    P = flat_bcn(p)
    G = flat_bcn(g)
    if P.shape != G.shape:
        raise ValueError(f"prediction {P.shape} and target {G.shape} differ")
    B, C, N = P.shape
    V = flat_valid(valid, B, N)
    out = {k: np.zeros((B, C)) for k in ("tp", "fp", "fn", "sum_p", "sum_g")}
    for b in range(B):
        for c in range(C):
            tp = fp = fn = sp = sg = 0.0
            for n in range(N):
                if V[b, n] == 0:
                    continue  # ignored voxel: contributes to nothing
                pv = float(P[b, c, n])
                gv = float(G[b, c, n])
                if soft_label and not squared_pred:
                    tp += min(pv, gv)
                    fp += max(pv - gv, 0.0)
                    fn += max(gv - pv, 0.0)
                else:
                    tp += pv * gv
                    fp += pv * (1.0 - gv)
                    fn += (1.0 - pv) * gv
                if squared_pred:
                    sp += pv * pv
                    sg += gv * gv
                else:
                    sp += pv
                    sg += gv
            out["tp"][b, c] = tp
            out["fp"][b, c] = fp
            out["fn"][b, c] = fn
            out["sum_p"][b, c] = sp
            out["sum_g"][b, c] = sg
    return out


def tp_fp_fn(p, g, valid=None, *, soft_label: bool = False):
    """(TP, FP, FN), each (B, C)."""
    s = region_sums(p, g, valid, soft_label=soft_label)
    return s["tp"], s["fp"], s["fn"]


def _pool(stats: dict, batch: bool) -> dict:
    if not batch:
        return stats
    return {k: v.sum(axis=0) for k, v in stats.items()}  # sum over b first -> (C,)


# --------------------------------------------------------------------------- Dice / Jaccard
def dice_loss(
    p,
    g,
    valid=None,
    *,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    squared_pred: bool = False,
    jaccard: bool = False,
    batch: bool = False,
    soft_label: bool = False,
    jaccard_form: str = "monai",
) -> np.ndarray:
    """Soft Dice (or Jaccard) loss per (b, c) -> (B, C); per c -> (C,) when ``batch``."""
    s = _pool(region_sums(p, g, valid, squared_pred=squared_pred, soft_label=soft_label), batch)
    inter = s["tp"]
    union = s["sum_p"] + s["sum_g"]
    out = np.zeros_like(inter)
    for idx in np.ndindex(inter.shape):
        i = inter[idx]
        u = union[idx]
        if not jaccard:
            out[idx] = 1.0 - (2.0 * i + smooth_nr) / (u + smooth_dr)
        elif jaccard_form == "monai":
            out[idx] = 1.0 - (2.0 * i + smooth_nr) / (2.0 * (u - i) + smooth_dr)
        elif jaccard_form == "plain":
            out[idx] = 1.0 - (i + smooth_nr) / (u - i + smooth_dr)
        else:
            raise ValueError(jaccard_form)
    return out


# --------------------------------------------------------------------------- Tversky
def tversky_index(
    p, g, valid=None, *, alpha: float, beta: float, smooth_nr: float, smooth_dr: float,
    batch: bool = False, soft_label: bool = False,
) -> np.ndarray:
    """TI = (TP + s_nr) / (TP + alpha*FP + beta*FN + s_dr), alpha on FP, beta on FN."""
    s = _pool(region_sums(p, g, valid, soft_label=soft_label), batch)
    ti = np.zeros_like(s["tp"])
    for idx in np.ndindex(ti.shape):
        tp, fp, fn = s["tp"][idx], s["fp"][idx], s["fn"][idx]
        ti[idx] = (tp + smooth_nr) / (tp + alpha * fp + beta * fn + smooth_dr)
    return ti


def tversky_loss(
    p, g, valid=None, *, alpha: float = 0.5, beta: float = 0.5, smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5, batch: bool = False, soft_label: bool = False,
) -> np.ndarray:
    """1 - TI per (b, c) (or per c when ``batch``)."""
    ti = tversky_index(p, g, valid, alpha=alpha, beta=beta, smooth_nr=smooth_nr, smooth_dr=smooth_dr,
                       batch=batch, soft_label=soft_label)
    return 1.0 - ti


def focal_tversky_loss(
    p, g, valid=None, *, alpha: float = 0.3, beta: float = 0.7, gamma: float = 4.0 / 3.0,
    smooth_nr: float = 1e-5, smooth_dr: float = 1e-5, batch: bool = False, soft_label: bool = False,
) -> np.ndarray:
    """(1 - TI_c) ** (1/gamma) per (b, c) (Abraham & Khan 2019); class mean is the caller's job."""
    ti = tversky_index(p, g, valid, alpha=alpha, beta=beta, smooth_nr=smooth_nr, smooth_dr=smooth_dr,
                       batch=batch, soft_label=soft_label)
    out = np.zeros_like(ti)
    for idx in np.ndindex(ti.shape):
        out[idx] = max(1.0 - ti[idx], 0.0) ** (1.0 / gamma)
    return out


# --------------------------------------------------------------------------- Generalized Dice
def gdl_weights(ground: np.ndarray, w_type: str = "square", empty: str = "penalize") -> np.ndarray:
    """Class weights for one sample (or the pooled batch) from the per-class target sums G_c."""
    C = len(ground)
    w = [0.0] * C
    present = [ground[c] > 0 for c in range(C)]
    for c in range(C):
        if w_type == "uniform":
            w[c] = 1.0
        elif not present[c]:
            w[c] = float("inf")  # replaced below
        elif w_type == "square":
            w[c] = 1.0 / (ground[c] * ground[c])
        elif w_type == "simple":
            w[c] = 1.0 / ground[c]
        else:
            raise ValueError(w_type)
    if w_type == "uniform":
        return np.asarray(w)
    if any(present):
        wmax = max(w[c] for c in range(C) if present[c])
        for c in range(C):
            if not present[c]:
                w[c] = wmax
    else:
        fill = {"penalize": 1.0, "monai": 0.0}[empty]
        w = [fill] * C
    return np.asarray(w)


def generalized_dice_loss(
    p, g, valid=None, *, w_type: str = "square", smooth_nr: float = 1e-5, smooth_dr: float = 1e-5,
    batch: bool = False, soft_label: bool = False, empty: str = "penalize",
) -> np.ndarray:
    """Generalized Dice loss: (B,) per-sample values, or a 0-d array when ``batch``."""
    s = region_sums(p, g, valid, soft_label=soft_label)
    if batch:
        s = {k: v.sum(axis=0, keepdims=True) for k, v in s.items()}  # (1, C)
    n_rows, C = s["tp"].shape
    out = np.zeros(n_rows)
    for r in range(n_rows):
        w = gdl_weights(s["sum_g"][r], w_type, empty)
        num = 0.0
        den = 0.0
        for c in range(C):
            num += w[c] * s["tp"][r, c]
            den += w[c] * (s["sum_g"][r, c] + s["sum_p"][r, c])
        out[r] = 1.0 - (2.0 * num + smooth_nr) / (den + smooth_dr)
    return out[0] if batch else out
