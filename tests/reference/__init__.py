"""Slow, loop-based reference implementations of the published loss formulas.

These modules are the independent correctness net for ``medloss``: they are written
from the papers (and, where the papers leave a convention open, from MONAI 1.6.1 /
PyTorch behaviour, which the tests in ``test_references.py`` pin down), never from
medloss code.  Everything is float64 NumPy / plain Python loops over voxels and
classes; clarity over speed.  Keep the inputs small.

Common conventions (all modules):

* ``p``: already-activated probabilities, shape (B, C, *S).
* ``g``: one-hot or soft target, shape (B, C, *S).
* ``valid``: optional valid-voxel mask, shape (B, *S), 1 = use the voxel, 0 = ignore.
  Ignored voxels are removed from *every* sum and from *every* denominator.
* Region losses return per-(b, c) arrays of shape (B, C) or, when pooled over the
  batch, per-class arrays of shape (C,), so that tests choose the reduction.
"""
