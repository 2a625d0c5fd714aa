"""Small fixed BraTS-labelled cases for the official-tool agreement tests (built from boxes and balls, no RNG).

Labels follow BraTS 2023 GLI: 1 necrotic core (NETC), 2 oedema (SNFH), 3 enhancing tumour (ET); 4 (resection
cavity, BraTS 2025) appears in one case. Each case is ``(pred, ref, spacing)``; the shapes are small so the
official code (per-lesion full-volume loops) runs in seconds. What each case exercises:

* ``glioma``: a nested tumour (oedema around core around enhancing rim) predicted with a shift, a missed satellite,
  a tiny reference lesion below the BraTS 50 mm³ threshold, a false-positive blob; anisotropic spacing.
* ``merged``: seven small enhancing lesions in a row (3 voxels apart: the BraTS dilation merges neighbours) that
  the prediction covers with two blobs (overlap rule: all found; one-to-one rules: few pairs).
* ``split``: one long lesion predicted as three pieces, and two lesions predicted as one.
* ``near_miss``: shifted predictions with IoU just below and just above 0.5, and a touching sliver.
* ``empty_pred`` / ``empty_ref`` / ``both_empty``: the empty-mask conventions; ``rc``: label 4 and an ET-free case.
"""
from __future__ import annotations

import numpy as np

SHAPE = (40, 44, 36)


def _ball(shape, centre, radius, spacing=(1.0, 1.0, 1.0)):
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing, strict=True))
    return d2 <= radius ** 2


def _box(shape, lo, hi):
    m = np.zeros(shape, bool)
    m[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] = True
    return m


def _tumour(shape, centre, r_oedema, r_core, r_et_inner):
    """Oedema ball, core ball inside it, enhancing rim = core ball minus an inner necrotic ball."""
    lab = np.zeros(shape, np.uint8)
    lab[_ball(shape, centre, r_oedema)] = 2
    lab[_ball(shape, centre, r_core)] = 3
    lab[_ball(shape, centre, r_et_inner)] = 1
    return lab


def glioma():
    ref = _tumour(SHAPE, (18, 20, 17), 10, 7, 4)
    ref[_ball(SHAPE, (33, 34, 8), 3)] = 3          # satellite ET lesion (113 voxels), missed
    ref[_box(SHAPE, (4, 36, 28), (6, 38, 30))] = 3  # tiny ET lesion (8 voxels = 17 mm³ < 50)
    pred = _tumour(SHAPE, (19, 21, 17), 9, 7, 3)
    pred[_box(SHAPE, (30, 4, 26), (35, 9, 31))] = 3  # false-positive blob
    pred[_box(SHAPE, (5, 36, 28), (7, 38, 29))] = 3  # overlaps the tiny lesion
    return pred, ref, (0.9, 1.1, 2.2)


def merged():
    ref = np.zeros(SHAPE, np.uint8)
    for i in range(7):
        ref[_box(SHAPE, (10, 4 + 5 * i, 15), (14, 6 + 5 * i, 19))] = 3
    ref[_box(SHAPE, (9, 2, 13), (15, 40, 21)) & (ref == 0)] = 2
    pred = np.zeros(SHAPE, np.uint8)
    pred[_box(SHAPE, (10, 3, 15), (14, 17, 19))] = 3   # covers lesions 0-2
    pred[_box(SHAPE, (10, 18, 15), (14, 37, 19))] = 3  # covers lesions 3-6
    pred[_box(SHAPE, (9, 2, 14), (15, 40, 20)) & (pred == 0)] = 2
    return pred, ref, (1.0, 1.0, 1.0)


def split():
    ref = np.zeros(SHAPE, np.uint8)
    ref[_box(SHAPE, (8, 5, 10), (13, 35, 15))] = 1
    ref[_box(SHAPE, (25, 8, 20), (30, 14, 26))] = 3
    ref[_box(SHAPE, (25, 16, 20), (30, 22, 26))] = 3
    pred = np.zeros(SHAPE, np.uint8)
    pred[_box(SHAPE, (8, 5, 10), (13, 14, 15))] = 1
    pred[_box(SHAPE, (8, 16, 10), (13, 24, 15))] = 1
    pred[_box(SHAPE, (8, 26, 10), (13, 35, 15))] = 1
    pred[_box(SHAPE, (25, 8, 20), (30, 22, 26))] = 3
    return pred, ref, (1.0, 1.2, 1.5)


def near_miss():
    ref = np.zeros(SHAPE, np.uint8)
    pred = np.zeros(SHAPE, np.uint8)
    ref[_box(SHAPE, (5, 5, 5), (15, 15, 15))] = 3     # 1000 voxels
    pred[_box(SHAPE, (8, 5, 5), (18, 15, 15))] = 3    # shift 3: IoU 700/1300 = 0.538
    ref[_box(SHAPE, (22, 5, 5), (32, 15, 15))] = 3
    pred[_box(SHAPE, (22, 9, 5), (32, 19, 15))] = 3   # shift 4: IoU 600/1400 = 0.429
    ref[_box(SHAPE, (5, 25, 20), (12, 33, 28))] = 2
    pred[_box(SHAPE, (11, 25, 20), (14, 33, 28))] = 2  # touching sliver: IoU 8*8/(448+128) = 0.111
    ref[_box(SHAPE, (25, 28, 22), (31, 34, 28))] = 1
    pred[_box(SHAPE, (26, 28, 22), (31, 34, 28))] = 1  # IoU 180/216 = 0.833
    return pred, ref, (1.0, 1.0, 1.0)


def empty_pred():
    _, ref, spacing = glioma()
    return np.zeros_like(ref), ref, spacing


def empty_ref():
    pred, _, spacing = merged()
    return pred, np.zeros_like(pred), spacing


def both_empty():
    z = np.zeros(SHAPE, np.uint8)
    return z, z.copy(), (1.0, 1.0, 1.0)


def rc():
    ref = np.zeros(SHAPE, np.uint8)
    pred = np.zeros(SHAPE, np.uint8)
    ref[_ball(SHAPE, (12, 14, 12), 6)] = 4
    pred[_ball(SHAPE, (13, 14, 12), 6)] = 4
    ref[_box(SHAPE, (25, 25, 20), (33, 33, 28))] = 2
    ref[_box(SHAPE, (27, 27, 22), (31, 31, 26))] = 1
    pred[_box(SHAPE, (26, 25, 20), (34, 33, 28))] = 2
    pred[_box(SHAPE, (5, 30, 5), (8, 34, 9))] = 1  # core predicted elsewhere
    return pred, ref, (1.0, 1.0, 1.0)


CASES = {f.__name__: f for f in (glioma, merged, split, near_miss, empty_pred, empty_ref, both_empty, rc)}


def load(name: str):
    """``(pred, ref, spacing)`` of a case."""
    return CASES[name]()
