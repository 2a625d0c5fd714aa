"""Volume I/O for scoring: :func:`read_volume` over nibabel (NIfTI) and SimpleITK (NRRD, MHA/MHD, DICOM series),
atomic :func:`write_volume`, geometry checks and case pairing. Imports neither torch nor MONAI."""
from medloss.io.outputs import (
    OutputSet,
    atomic_output,
    atomic_write_text,
    check_output_paths,
    current_umask,
    remove_stale_temporaries,
    signals_held,
)
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
    "OutputSet",
    "Pairing",
    "Volume",
    "as_label_array",
    "atomic_output",
    "atomic_write_text",
    "case_id",
    "check_geometry",
    "check_output_paths",
    "current_umask",
    "geometry_mismatch",
    "list_cases",
    "pair_folders",
    "read_volume",
    "remove_stale_temporaries",
    "resolve_inputs",
    "signals_held",
    "volume_suffix",
    "write_volume",
]
