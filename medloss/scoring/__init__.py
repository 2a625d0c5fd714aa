"""Hard-label scoring of predicted volumes: overlap, exact surface distances (MONAI voxel or DeepMind surfel
convention), lesion-wise detection, and reports. Imports neither torch nor MONAI.

Entry points: :func:`score_arrays` (one case in memory), :func:`score_folders` / :func:`score_pairs` (a cohort of
files, on this machine or a Dask cluster, streamed to a resumable part file) with a :class:`ScoringConfig` from
:func:`scoring_config`.
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
from medloss.scoring.cohort import Progress, ScoringResult, score_case, score_folders, score_pairs
from medloss.scoring.config import LesionOverrides, ScoringConfig, scoring_config
from medloss.scoring.coverage import UncoveredLabelWarning, coverage_summary
from medloss.scoring.executors import DaskExecutor, LocalExecutor
from medloss.scoring.lesion import LESION_COLUMNS, lesion_columns, lesion_scores
from medloss.scoring.metrics import DEFAULT_METRICS, METRIC_NAMES, PER_LABEL_METRICS, MetricSpec
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
    "DEFAULT_METRICS",
    "EMPTY_POLICIES",
    "LESION_COLUMNS",
    "LESION_PRESETS",
    "MATCHING_RULES",
    "SURFACE_CONVENTIONS",
    "DaskExecutor",
    "LesionConfig",
    "LesionOverrides",
    "LocalExecutor",
    "METRIC_NAMES",
    "MetricSpec",
    "PER_LABEL_METRICS",
    "Progress",
    "ScoringConfig",
    "ScoringResult",
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
    "score_case",
    "score_folders",
    "score_pairs",
    "scoring_config",
    "surface_distances",
    "worst_distance_mm",
]
