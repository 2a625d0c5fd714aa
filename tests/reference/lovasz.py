"""Reference Lovász-Softmax and Lovász hinge losses.

source: Berman, Rannen Triki, Blaschko, "The Lovász-Softmax loss: A tractable surrogate for the
optimization of the intersection-over-union measure in neural networks", CVPR 2018
(arXiv:1705.08790); conventions of the authors' reference code (``pytorch/lovasz_losses.py``).

For a class c over the voxels i of one problem (one image, or the whole flattened batch):

    fg_i   = [y_i = c]
    m_i    = | fg_i - p_i(c) |                      (p = softmax probabilities, not logits)
    pi     = ordering of the voxels by decreasing m
    J_k    = 1 - (sum(fg) - sum_{j<=k} fg_pi(j)) / (sum(fg) + sum_{j<=k} (1 - fg_pi(j)))
    grad_1 = J_1,   grad_k = J_k - J_{k-1}          (gradient of the Lovász extension of the
                                                     Jaccard loss at m)
    loss_c = sum_k m_pi(k) * grad_k

    loss   = mean of loss_c over the selected classes:
             'present' = classes with at least one (valid) target voxel in the problem (default),
             'all' = every class, or an explicit list of class indices.
             An empty selection gives 0 (as the authors' ``mean(..., empty=0)``).
    per_image=False: one problem for the whole (flattened) batch;
    per_image=True:  mean over images of the per-image losses (an image whose voxels are all
                     ignored contributes 0 and still counts in the mean, as in the authors' code).
    ignore: voxels whose label equals ``ignore`` are removed before anything else.

Binary Lovász hinge (logits s, labels y in {0, 1}):
    e_i = 1 - s_i (2 y_i - 1);   loss = sum_k relu(e_pi(k)) grad_k  with pi sorting e decreasingly
    and grad computed from the labels as above; per_image=True is the authors' default.

The loss value does not depend on how ties in m are ordered (the Lovász extension is a function
of m), so Python's ``sorted`` is fine.  ``test_references.py`` checks the values against the
definition of the Lovász extension as an integral over thresholds of the set function.
"""

from __future__ import annotations

from ._common import to_numpy


def lovasz_grad(gt_sorted: list[float]) -> list[float]:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. sorted errors (loop form)."""
    n = len(gt_sorted)
    gts = sum(gt_sorted)
    jac = []
    cum_fg = 0.0
    cum_bg = 0.0
    for k in range(n):
        cum_fg += gt_sorted[k]
        cum_bg += 1.0 - gt_sorted[k]
        inter = gts - cum_fg
        union = gts + cum_bg
        jac.append(1.0 - inter / union)
    grad = [0.0] * n
    for k in range(n):
        grad[k] = jac[k] if k == 0 else jac[k] - jac[k - 1]
    return grad


def lovasz_extension(errors: list[float], fg: list[float]) -> float:
    """sum_k errors_sorted[k] * lovasz_grad(fg_sorted)[k] with errors sorted decreasingly."""
    if len(errors) == 0:
        return 0.0
    order = sorted(range(len(errors)), key=lambda i: -errors[i])
    e_sorted = [errors[i] for i in order]
    fg_sorted = [fg[i] for i in order]
    grad = lovasz_grad(fg_sorted)
    total = 0.0
    for k in range(len(order)):
        total += e_sorted[k] * grad[k]
    return total


def _softmax_problem(probs: list[list[float]], labels: list[int], C: int, classes) -> float:
    """probs: list over voxels of C-vectors; labels: ints. One flattened problem."""
    if len(labels) == 0:
        return 0.0
    if classes == "all":
        selected = list(range(C))
    elif classes == "present":
        selected = [c for c in range(C) if any(lab == c for lab in labels)]
    else:
        selected = list(classes)
    losses = []
    for c in selected:
        fg = [1.0 if lab == c else 0.0 for lab in labels]
        errors = [abs(fg[i] - probs[i][c]) for i in range(len(labels))]
        losses.append(lovasz_extension(errors, fg))
    if not losses:
        return 0.0
    return sum(losses) / len(losses)


def lovasz_softmax(p, labels, *, classes="present", per_image: bool = False, ignore=None) -> float:
    """p: (B, C, *S) probabilities; labels: (B, *S) or (B, 1, *S) integer map."""
    P = to_numpy(p)
    B, C = P.shape[:2]
    P = P.reshape(B, C, -1)
    L = to_numpy(labels)
    L = L.reshape(B, -1)
    if L.shape[1] != P.shape[2]:
        raise ValueError("labels and probabilities have different voxel counts")
    N = P.shape[2]

    def gather(bs):
        probs, labs = [], []
        for b in bs:
            for n in range(N):
                lab = int(round(float(L[b, n])))
                if ignore is not None and lab == ignore:
                    continue
                probs.append([float(P[b, c, n]) for c in range(C)])
                labs.append(lab)
        return probs, labs

    if per_image:
        vals = []
        for b in range(B):
            probs, labs = gather([b])
            vals.append(_softmax_problem(probs, labs, C, classes))
        return sum(vals) / len(vals)
    probs, labs = gather(range(B))
    return _softmax_problem(probs, labs, C, classes)


def lovasz_hinge(logits, labels, *, per_image: bool = True, ignore=None) -> float:
    """logits: (B, *S) or (B, 1, *S); labels: same voxel count, values in {0, 1} (or ``ignore``)."""
    X = to_numpy(logits)
    B = X.shape[0]
    X = X.reshape(B, -1)
    L = to_numpy(labels).reshape(B, -1)
    N = X.shape[1]

    def problem(bs):
        errs, fg = [], []
        for b in bs:
            for n in range(N):
                lab = float(L[b, n])
                if ignore is not None and lab == ignore:
                    continue
                sign = 2.0 * lab - 1.0
                errs.append(1.0 - float(X[b, n]) * sign)
                fg.append(lab)
        if not errs:
            return 0.0
        relu_errs = [max(e, 0.0) for e in errs]
        # sorting by e or by relu(e) gives the same order up to ties among the zeros,
        # which contribute 0 either way
        return lovasz_extension(relu_errs, fg)

    if per_image:
        return sum(problem([b]) for b in range(B)) / B
    return problem(range(B))


def jaccard_set_loss(error_set: set, fg: list[float]) -> float:
    """Delta_J(M) = |M| / |F u M| for the set M of mispredicted voxels (F = foreground set)."""
    n_fg = sum(fg)
    if not error_set and n_fg == 0:
        return 0.0
    extra = sum(1 for i in error_set if fg[i] == 0.0)
    return len(error_set) / (n_fg + extra)


def lovasz_extension_by_thresholds(errors: list[float], fg: list[float]) -> float:
    """Independent evaluation of the Lovász extension of Delta_J at errors >= 0:
    integral over t > 0 of Delta_J({i : errors_i >= t}) dt, exact for the piecewise-constant
    integrand (used only to validate ``lovasz_extension``)."""
    levels = sorted(set(e for e in errors if e > 0.0))
    total = 0.0
    prev = 0.0
    for t in levels:
        s = {i for i, e in enumerate(errors) if e >= t}
        total += (t - prev) * jaccard_set_loss(s, fg)
        prev = t
    return total
