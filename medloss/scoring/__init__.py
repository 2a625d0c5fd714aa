"""Hard-label scoring of predicted volumes: overlap, exact surface distances (MONAI voxel or DeepMind surfel
convention), lesion-wise detection, and reports. Imports neither torch nor MONAI.

Main entry point: :func:`score_arrays`.
"""
from medloss.scoring.api import (
    BASE_COLUMNS,
    EMPTY_POLICIES,
    check_target_names,
    columns,
    default_labels,
    labels_in,
    resolve_regions,
    score_arrays,
    worst_distance_mm,
)
from medloss.scoring.coverage import UncoveredLabelWarning, coverage_summary
from medloss.scoring.lesion import LESION_COLUMNS, lesion_columns, lesion_scores
from medloss.scoring.presets import (
    LESION_PRESETS,
    MATCHING_RULES,
    LesionConfig,
    lesion_config,
    parse_label_list,
    parse_region,
)
from medloss.scoring.surface import SURFACE_CONVENTIONS, distance_metrics, surface_distances

__all__ = [
    "BASE_COLUMNS",
    "EMPTY_POLICIES",
    "LESION_COLUMNS",
    "LESION_PRESETS",
    "MATCHING_RULES",
    "SURFACE_CONVENTIONS",
    "LesionConfig",
    "UncoveredLabelWarning",
    "check_target_names",
    "columns",
    "coverage_summary",
    "default_labels",
    "distance_metrics",
    "labels_in",
    "lesion_columns",
    "lesion_config",
    "lesion_scores",
    "parse_label_list",
    "parse_region",
    "resolve_regions",
    "score_arrays",
    "surface_distances",
    "worst_distance_mm",
]
