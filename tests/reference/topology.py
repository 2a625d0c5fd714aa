"""Loop references of the topology and instance losses, written from the papers (float64, voxel by voxel).

* soft clDice (Shit et al., CVPR 2021, Algorithm 1 and Eq. 1-2): soft erosion = minimum over the voxel and its
  six face neighbours, soft dilation = maximum over the 3x3x3 cube (neighbours outside the volume are skipped);
  skeleton by the iterated opening difference; topology precision / sensitivity per sample and class.
* Skeleton Recall (Kirchhoff et al., ECCV 2024, Eq. 1): soft recall of the tubed reference skeleton per class.
* blob loss (Kofler et al., IPMI 2023, Eq. 2-3): for every component, the prediction with the other components of
  its class set to 0, its Dice against the component alone; mean per sample, plus the global Dice.

Inputs are NumPy arrays (B, C, X, Y, Z) of probabilities; nothing here imports medloss.
"""
from __future__ import annotations

import itertools

import numpy as np

FACE = [(0, 0, 0), (1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)]
CUBE = list(itertools.product((-1, 0, 1), repeat=3))


def _morph(img: np.ndarray, offsets, pick) -> np.ndarray:
    out = np.empty_like(img)
    X, Y, Z = img.shape
    for x, y, z in itertools.product(range(X), range(Y), range(Z)):
        values = [img[x + a, y + b, z + c] for a, b, c in offsets
                  if 0 <= x + a < X and 0 <= y + b < Y and 0 <= z + c < Z]
        out[x, y, z] = pick(values)
    return out


def erode(img):
    return _morph(img, FACE, min)


def dilate(img):
    return _morph(img, CUBE, max)


def soft_skel(img: np.ndarray, iters: int) -> np.ndarray:
    relu = lambda a: np.maximum(a, 0.0)  # noqa: E731
    skel = relu(img - dilate(erode(img)))
    for _ in range(iters):
        img = erode(img)
        delta = relu(img - dilate(erode(img)))
        skel = skel + relu(delta - skel * delta)
    return skel


def cldice(p, g, valid=None, *, iters=3, smooth_nr=1.0, smooth_dr=1.0, smooth=1e-4, dice_alpha=None,
           skeleton=None):
    """(B, C) table of 1 - clDice (or (1 - a) Dice + a clDice); ``valid`` (B, X, Y, Z) zeroes p and g and is
    left out of the sums; ``skeleton`` (B, C, X, Y, Z) replaces the soft skeleton of g."""
    B, C = p.shape[:2]
    out = np.zeros((B, C))
    for b, c in itertools.product(range(B), range(C)):
        v = np.ones(p.shape[2:]) if valid is None else valid[b]
        pc, gc = p[b, c] * v, g[b, c] * v
        sp = soft_skel(pc, iters)
        sg = soft_skel(gc, iters) if skeleton is None else skeleton[b, c] * v
        tprec = ((sp * gc * v).sum() + smooth_nr) / ((sp * v).sum() + smooth_dr)
        tsens = ((sg * pc * v).sum() + smooth_nr) / ((sg * v).sum() + smooth_dr)
        cl = 1.0 - 2.0 * tprec * tsens / (tprec + tsens + smooth)
        if dice_alpha is None:
            out[b, c] = cl
        else:
            dice = 1.0 - (2 * (pc * gc).sum() + smooth_nr) / (pc.sum() + gc.sum() + smooth_dr)
            out[b, c] = (1 - dice_alpha) * dice + dice_alpha * cl
    return out


def skeleton_recall(p, skel_onehot, valid=None, *, smooth=1e-5):
    """(B, C) table of 1 - recall of the reference skeleton (indicator per class) by p."""
    B, C = p.shape[:2]
    out = np.zeros((B, C))
    for b, c in itertools.product(range(B), range(C)):
        v = np.ones(p.shape[2:]) if valid is None else valid[b]
        num = sum(p[b, c][i] * skel_onehot[b, c][i] * v[i] for i in np.ndindex(*p.shape[2:]))
        den = sum(skel_onehot[b, c][i] * v[i] for i in np.ndindex(*p.shape[2:]))
        out[b, c] = 1.0 - (num + smooth) / (den + smooth)
    return out


def _dice(pred, target, v, smooth_nr, smooth_dr):
    return 1.0 - (2 * (pred * target * v).sum() + smooth_nr) / ((pred * v).sum() + (target * v).sum() + smooth_dr)


def blob(p, labels, comps, valid=None, *, main_weight=2.0, blob_weight=1.0, classes=None, smooth_nr=1e-5,
         smooth_dr=1e-5):
    """Blob loss value: ``labels`` and ``comps`` (B, X, Y, Z); channel ch of p scores class ``classes[ch]``.

    Returns main_weight mean_{b,ch} Dice + blob_weight mean over (b, ch) with components of the per-(b, ch) mean
    component Dice, each component on its own masked copy of the prediction.
    """
    B, C = p.shape[:2]
    classes = list(range(C)) if classes is None else classes
    mains, blobs = [], []
    for b, ch in itertools.product(range(B), range(C)):
        v = np.ones(p.shape[2:]) if valid is None else valid[b]
        cls = classes[ch]
        mains.append(_dice(p[b, ch] * v, (labels[b] == cls).astype(float), v, smooth_nr, smooth_dr))
        ids = [k for k in np.unique(comps[b]) if k > 0 and cls > 0 and np.all(labels[b][comps[b] == k] == cls)
               and np.any(v[comps[b] == k] > 0)]
        losses = []
        for k in ids:
            keep = np.ones(p.shape[2:])
            for x in np.ndindex(*p.shape[2:]):
                if comps[b][x] > 0 and comps[b][x] != k and labels[b][x] == cls:
                    keep[x] = 0.0
            losses.append(_dice(p[b, ch] * keep * v, (comps[b] == k).astype(float), v, smooth_nr, smooth_dr))
        if losses:
            blobs.append(sum(losses) / len(losses))
    blob_term = sum(blobs) / len(blobs) if blobs else 0.0
    return main_weight * float(np.mean(mains)) + blob_weight * blob_term
