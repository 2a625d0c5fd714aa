"""Hard-label scoring of predicted volumes: overlap, exact surface distances (MONAI voxel or DeepMind surfel
convention), lesion-wise detection, and reports. Imports neither torch nor MONAI.

Main entry point: :func:`score_arrays`.
"""
from medloss.scoring.api import (
    BASE_COLUMNS,
    EMPTY_POLICIES,
    LESION_COLUMNS,
    columns,
    default_labels,
    score_arrays,
    worst_distance_mm,
)
from medloss.scoring.lesion import LESION_PRESETS, LesionConfig, lesion_config, lesion_scores
from medloss.scoring.surface import SURFACE_CONVENTIONS, distance_metrics, surface_distances

__all__ = [
    "BASE_COLUMNS",
    "EMPTY_POLICIES",
    "LESION_COLUMNS",
    "LESION_PRESETS",
    "SURFACE_CONVENTIONS",
    "LesionConfig",
    "columns",
    "default_labels",
    "distance_metrics",
    "lesion_config",
    "lesion_scores",
    "score_arrays",
    "surface_distances",
    "worst_distance_mm",
]
