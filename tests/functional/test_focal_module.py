"""The focal loss lives in medloss.functional.focal; the names a user could import from medloss.functional.voxel
before the split still resolve there, to the same objects."""
from __future__ import annotations

from medloss.functional import focal, stats, voxel


def test_voxel_keeps_its_public_focal_names() -> None:
    assert voxel.focal_loss is focal.focal_loss
    assert voxel.voxel_tables_options is stats.voxel_tables_options

