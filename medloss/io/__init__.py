"""Volume I/O for scoring: :func:`read_volume` over nibabel (NIfTI) and SimpleITK (NRRD, MHA/MHD, DICOM series),
atomic :func:`write_volume`, geometry checks and case pairing. Imports neither torch nor MONAI."""
from medloss.io.outputs import atomic_output, atomic_write_text, check_output_paths
from medloss.io.pairing import Pairing, case_id, list_cases, pair_folders, resolve_inputs
from medloss.io.readers import (
    VOLUME_SUFFIXES,
    Volume,
    as_label_array,
    check_geometry,
    geometry_mismatch,
    read_volume,
    volume_suffix,
    write_volume,
)

__all__ = [
    "VOLUME_SUFFIXES",
    "Pairing",
    "Volume",
    "as_label_array",
    "atomic_output",
    "atomic_write_text",
    "case_id",
    "check_geometry",
    "check_output_paths",
    "geometry_mismatch",
    "list_cases",
    "pair_folders",
    "read_volume",
    "resolve_inputs",
    "volume_suffix",
    "write_volume",
]
