"""score_arrays: brute-force references on small volumes, the empty-mask policy, labels, ignore_index, errors."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from medloss.errors import InvalidOptionError, LabelValueError, OptionTypeError, ShapeMismatchError
from medloss.scoring import columns, score_arrays, worst_distance_mm

FIXED = ["case", "label", "dice", "iou", "precision", "recall", "vol_ref_ml", "vol_pred_ml", "hd", "hd95", "assd",
         "nsd"]
LESION_FIXED = ["lesions_ref", "lesions_detected", "lesions_fp", "lesion_f1", "fp_volume_ml", "fn_volume_ml"]


def brute_voxel(ref, pred, spacing, tol):
    """Definitions spelled out: a surface voxel has a face neighbour outside (outside the array counts as outside);
    all pairwise distances; linear percentiles per direction."""
    def surface(m):
        pts = []
        for idx in zip(*np.nonzero(m), strict=True):
            for ax, step in itertools.product(range(3), (-1, 1)):
                nb = list(idx)
                nb[ax] += step
                if not (0 <= nb[ax] < m.shape[ax]) or not m[tuple(nb)]:
                    pts.append(idx)
                    break
        return np.asarray(pts, float) * np.asarray(spacing)

    sr, sp_ = surface(ref), surface(pred)
    dist = np.sqrt(((sr[:, None, :] - sp_[None, :, :]) ** 2).sum(-1))
    drp, dpr = dist.min(1), dist.min(0)
    n_r, n_p, n_t = ref.sum(), pred.sum(), (ref & pred).sum()
    return {"dice": 2 * n_t / (n_r + n_p), "iou": n_t / (n_r + n_p - n_t), "precision": n_t / n_p,
            "recall": n_t / n_r, "hd": max(drp.max(), dpr.max()),
            "hd95": max(np.percentile(drp, 95), np.percentile(dpr, 95)),
            "assd": (drp.sum() + dpr.sum()) / (drp.size + dpr.size),
            "nsd": ((drp <= tol).sum() + (dpr <= tol).sum()) / (drp.size + dpr.size),
            "vol_ref_ml": n_r * np.prod(spacing) / 1000, "vol_pred_ml": n_p * np.prod(spacing) / 1000}


@pytest.mark.parametrize("seed", range(6))
def test_voxel_convention_brute_force(seed):
    rng = np.random.default_rng(seed)
    shape = (9, 11, 7)
    ref = rng.random(shape) < 0.35
    pred = rng.random(shape) < 0.35  # random sets, touching the array border
    spacing = tuple(rng.uniform(0.4, 3.0, 3))
    row = score_arrays(pred.astype(np.int16), ref.astype(np.int16), spacing, tolerance=1.3)[0]
    want = brute_voxel(ref, pred, spacing, 1.3)
    for key, val in want.items():
        assert math.isclose(row[key], val, rel_tol=1e-9, abs_tol=1e-12), (key, row[key], val)


def test_columns_fixed_names():
    assert columns()[: len(FIXED)] == FIXED
    assert all(c in columns(lesions=True) for c in LESION_FIXED)
    ref = np.zeros((6, 6, 6), np.uint8)
    ref[2:4, 2:4, 2:4] = 1
    row = score_arrays(ref, ref, (1, 1, 1), lesions=True, case="c1")[0]
    assert list(row)[: len(FIXED)] == FIXED and all(c in row for c in LESION_FIXED)
    assert row["case"] == "c1" and row["dice"] == 1.0 and row["hd95"] == 0.0 and row["nsd"] == 1.0


SHAPE, SPACING = (10, 12, 8), (0.5, 1.0, 2.5)
DIAG = math.sqrt(5.0 ** 2 + 12.0 ** 2 + 20.0 ** 2)


def _pair(which):
    blob = np.zeros(SHAPE, np.uint8)
    blob[3:6, 3:7, 2:5] = 1
    empty = np.zeros(SHAPE, np.uint8)
    return {"ref": (blob, empty), "pred": (empty, blob), "both": (empty, empty)}[which]  # (ref, pred)


@pytest.mark.parametrize("which", ["ref", "pred", "both"])
def test_empty_worst_policy(which):
    ref, pred = _pair(which)
    row = score_arrays(pred, ref, SPACING, labels=[1], lesions=True)[0]
    values = [v for v in row.values() if isinstance(v, float)]
    assert not any(math.isnan(v) for v in values)  # no NaN surprises
    assert row["empty"] == {"ref": "pred", "pred": "ref", "both": "both"}[which]  # which mask was empty
    if which == "both":
        assert (row["dice"], row["iou"], row["nsd"], row["hd"], row["hd95"], row["assd"]) == (1, 1, 1, 0, 0, 0)
        assert row["lesion_f1"] == 1.0
    else:
        assert (row["dice"], row["iou"], row["precision"], row["recall"], row["nsd"]) == (0, 0, 0, 0, 0)
        assert row["hd"] == row["hd95"] == row["assd"] == pytest.approx(DIAG)
        assert row["lesion_f1"] == 0.0


@pytest.mark.parametrize("which", ["ref", "pred", "both"])
def test_empty_nan_policy(which):
    ref, pred = _pair(which)
    row = score_arrays(pred, ref, SPACING, labels=[1], empty="nan")[0]
    if which == "both":
        assert all(math.isnan(row[k]) for k in ("dice", "iou", "precision", "recall", "nsd", "hd", "hd95", "assd"))
    else:
        assert row["dice"] == 0.0 and row["nsd"] == 0.0 and math.isnan(row["hd95"])
        undefined = "precision" if which == "ref" else "recall"  # pred empty -> TP/|P| is 0/0
        assert math.isnan(row[undefined])


def test_worst_distance_number_and_diagonal():
    ref, pred = _pair("ref")
    assert score_arrays(pred, ref, SPACING, labels=[1], worst_distance=374)[0]["hd95"] == 374.0
    assert worst_distance_mm(SHAPE, SPACING) == pytest.approx(DIAG)
    with pytest.raises(InvalidOptionError):
        worst_distance_mm(SHAPE, SPACING, "far")


def test_default_labels_include_false_positive_label_and_both_empty():
    ref = np.zeros((6, 6, 6), np.uint8)
    ref[1:3, 1:3, 1:3] = 1
    pred = ref.copy()
    pred[4:6, 4:6, 4:6] = 3  # a label the reference does not have
    rows = score_arrays(pred, ref, (1, 1, 1))
    assert [r["label"] for r in rows] == [1, 3]
    assert rows[1]["dice"] == 0.0 and rows[1]["empty"] == "ref"
    z = np.zeros((4, 4, 4), np.uint8)
    assert [r["label"] for r in score_arrays(z, z, (1, 1, 1))] == [1]


def test_ignore_index_removes_voxels_from_both():
    rng = np.random.default_rng(3)
    ref = (rng.random((12, 12, 12)) < 0.4).astype(np.int16)
    pred = (rng.random((12, 12, 12)) < 0.4).astype(np.int16)
    ref[:, :, 8:] = 255
    got = score_arrays(pred, ref, (1, 1, 1), ignore_index=255)
    assert [r["label"] for r in got] == [1]
    pred2, ref2 = pred.copy(), ref.copy()
    pred2[ref == 255] = 0
    ref2[ref == 255] = 0
    want = score_arrays(pred2, ref2, (1, 1, 1), labels=[1])
    assert got[0]["dice"] == want[0]["dice"] and got[0]["hd95"] == want[0]["hd95"]
    with pytest.raises(InvalidOptionError):
        score_arrays(pred, ref, (1, 1, 1), labels=[1, 255], ignore_index=255)


def test_bad_inputs():
    a = np.zeros((4, 4, 4), np.uint8)
    with pytest.raises(ShapeMismatchError):
        score_arrays(a, np.zeros((4, 4, 5), np.uint8), (1, 1, 1))
    with pytest.raises(LabelValueError):
        score_arrays(a.astype(np.float32), a, (1, 1, 1))
    with pytest.raises(OptionTypeError):
        score_arrays(a.tolist(), a, (1, 1, 1))
    with pytest.raises(InvalidOptionError, match="Did you mean 'surfel'"):
        score_arrays(a, a, (1, 1, 1), surface="surfels")
    with pytest.raises(InvalidOptionError):
        score_arrays(a, a, (1, 1, 0))
    with pytest.raises(InvalidOptionError):
        score_arrays(a, a, (1, 1, 1), tolerance=-1)
    with pytest.raises(InvalidOptionError, match="Did you mean 'brats23'"):
        score_arrays(a, a, (1, 1, 1), lesions="brats-23")


# Load the medloss sub-packages without running medloss/__init__.py (which may import torch for the losses), so
# this checks the imports of medloss.io / medloss.scoring themselves; tests/cli checks the whole `medloss score`.
BARE_PACKAGE = ("import sys, types, importlib.util; spec = importlib.util.find_spec('medloss'); "
                "pkg = types.ModuleType('medloss'); pkg.__path__ = list(spec.submodule_search_locations); "
                "sys.modules['medloss'] = pkg; ")


def test_scoring_modules_do_not_import_torch():
    import subprocess
    import sys

    code = BARE_PACKAGE + (
        "import numpy as np; from medloss.scoring import score_arrays; import medloss.io, medloss.scoring.report; "
        "a = np.zeros((5,5,5), np.uint8); a[1:3,1:3,1:3] = 1; "
        "score_arrays(a, a, (1,1,1), lesions='brats23', surface='surfel'); "
        "bad = [m for m in ('torch', 'monai') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("convention", ["voxel", "surfel"])
@pytest.mark.parametrize("density", [0.02, 0.3, 0.9])
def test_sparse_and_dense_surface_paths_agree(convention, density):
    from medloss.scoring.overlap import bounding_box
    from medloss.scoring.surface import surface_points

    rng = np.random.default_rng(int(density * 100))
    mask = rng.random((13, 9, 11)) < density
    mask[0, 0, 0] = mask[-1, -1, -1] = True  # touches the array border
    box = bounding_box(mask)
    (pa, wa), (pb, wb) = (surface_points(mask, box, (0.6, 1.2, 2.2), convention, sparse=s) for s in (False, True))
    oa, ob = np.lexsort(pa.T), np.lexsort(pb.T)
    assert len(pa) > 0 and np.array_equal(pa[oa], pb[ob])
    if convention == "surfel":
        assert np.array_equal(wa[oa], wb[ob])


@pytest.mark.parametrize("where", ["pred", "ref"])
def test_negative_labels_rejected_like_the_cli(where):
    """Issue 12: score_arrays raised nothing on a negative label (the CLI's reader refuses it) and scored the rest."""
    from medloss.errors import LabelValueError

    a = np.zeros((6, 6, 6), np.int16)
    a[1:3, 1:3, 1:3] = 1
    b = a.copy()
    (a if where == "pred" else b)[4, 4, 4] = -3
    with pytest.raises(LabelValueError, match=f"`{where}` holds negative label -3"):
        score_arrays(a, b, (1, 1, 1))
    c = np.where(b < 0, 0, b)
    c[5, 5, 5] = -1  # the ignore_index itself is allowed in the reference
    assert score_arrays(c.clip(0), c, (1, 1, 1), ignore_index=-1)[0]["dice"] == 1.0
