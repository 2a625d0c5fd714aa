"""Which labels of a case no scored label or region covers, and which scored ones no case holds.

A label that is in no scored label or region is scored as background: BraTS 2021 files (enhancing tumour = 4)
under the BraTS 2023 regions (ET = {3}) give ET Dice 1 ("both empty") and smaller WT/TC, without a word. So
:func:`check_coverage` warns (:class:`UncoveredLabelWarning`, whose ``labels`` lists them) or raises
(:class:`~medloss.errors.LabelValueError`). ``score_arrays`` warns by default, since leaving labels out can be
deliberate (``labels=[1]`` on a multi-label case); ``medloss score`` raises when they fall outside a lesion preset's
regions, unless ``--allow-uncovered-labels``, and lists them under ``unscored_labels`` in the case's rows and in the
JSON summary. Across cases, :func:`coverage_summary` names the scored labels and regions that are empty in the
reference and the prediction of every case (their perfect scores mean nothing) and the cases with unscored labels.
"""
from __future__ import annotations

import warnings

from medloss.errors import LabelValueError

COVERAGE_POLICIES = ("error", "warn")


class UncoveredLabelWarning(UserWarning):
    """A case holds labels that no scored label or region covers (they were scored as background); ``labels``
    lists them.

    Args:
        message: the warning's text.
        labels: the uncovered labels.
    """

    def __init__(self, message: str, labels: list[int] | None = None) -> None:
        super().__init__(message)
        self.labels = list(labels or [])


def check_coverage(in_pred: set[int], in_ref: set[int], labels: list[int], regions: list, *, policy: str,
                   case: str = "", preset: str | None = None) -> list[int]:
    """Labels among ``in_ref`` / ``in_pred`` (the foreground labels of the two volumes) that no scored label or
    region covers, after applying ``policy`` (``"error"``: raise; ``"warn"``: warn). Returns them sorted (empty
    when all are covered)."""
    covered = set(labels).union(*(set(labs) for _, labs in regions))
    in_ref = in_ref - covered
    in_pred = in_pred - covered
    missing = sorted(in_ref | in_pred)
    if not missing:
        return []
    where = "reference and prediction" if in_ref and in_pred else "reference" if in_ref else "prediction"
    scored = [str(v) for v in labels] + [f"{name}={','.join(map(str, labs))}" for name, labs in regions]
    text = (f"{case + ': ' if case else ''}label(s) {missing} of the {where} are in no scored label or region "
            f"({', '.join(scored)}), so their voxels count as background")
    if preset and preset.startswith("brats23") and 4 in missing:
        text += (" (in BraTS 2021 and earlier files 4 is the enhancing tumour, which the BraTS 2023 regions call 3: "
                 "relabel 4 -> 3 there)")
    if policy == "error":
        raise LabelValueError(f"{text}. Score them with --region/--labels (`regions=`/`labels=`), or accept this with "
                              "--allow-uncovered-labels (`uncovered='warn'`).")
    warnings.warn(UncoveredLabelWarning(text + ".", missing), stacklevel=3)
    return missing


def coverage_summary(rows: list[dict]) -> dict:
    """The label-coverage part of a run's summary.

    Args:
        rows: the run's rows.

    Returns:
        ``{"unscored_labels": {case: [labels]}, "absent_everywhere": [labels and region names]}``: the cases with
        labels no scored label or region covers, and the scored labels/regions empty in both volumes of every case.
    """
    from medloss.scoring.summary import SummaryAccumulator

    acc = SummaryAccumulator()
    for r in rows:
        acc.add(r)
    return acc.coverage()
