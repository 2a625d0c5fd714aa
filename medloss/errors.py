"""Typed errors of medloss.

Every error a user can trigger with bad input is a :class:`MedlossError` that also derives from the built-in
exception a caller would catch (``ValueError`` or ``TypeError``), so ``except ValueError`` keeps working.
Messages name the argument, the offending value and how to fix it.
"""
from __future__ import annotations

from collections.abc import Collection


class MedlossError(Exception):
    """Base class of every error raised by medloss on bad input."""


class InvalidOptionError(MedlossError, ValueError):
    """An option (constructor argument or CLI flag) has an unknown or inconsistent value."""


class OptionTypeError(MedlossError, TypeError):
    """An option or input has the wrong Python or tensor type."""


class ShapeMismatchError(MedlossError, ValueError):
    """Input and target shapes (or channel counts) are incompatible."""


class LabelValueError(MedlossError, ValueError):
    """A label map holds values outside ``[0, C)`` that are not the ``ignore_index``."""


class InputRangeError(MedlossError, ValueError):
    """Input values are outside the range the options imply (e.g. logits where probabilities are expected, NaN)."""


class VolumeReadError(MedlossError, ValueError):
    """A volume file is missing, unreadable or of an unsupported format."""


class GeometryMismatchError(MedlossError, ValueError):
    """Two volumes that must be aligned differ in shape, spacing, origin or direction."""


class OutputPathError(MedlossError, ValueError):
    """An output file cannot be written, or would replace an input or another output of the same run."""


def _edit_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance: insertions, deletions, substitutions and adjacent transpositions."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def _stem(name: str) -> str:
    name = name.lower().replace("_", "").replace("-", "")
    return name[:-4] if name.endswith("loss") and len(name) > 4 else name


def did_you_mean(value: object, allowed: Collection[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest allowed string, or ``""``.

    Closest = fewest typing edits (case, ``_``/``-`` and a ``Loss`` suffix ignored; a name the value begins, with
    at least 3 letters, counts as one edit); among equally close names the shorter one (``Dicee`` -> ``DiceLoss``,
    not ``DiceCELoss``). Names further than 1 edit (names up to 3 letters), 2 (up to 6) or 3 edits are not
    suggested.
    """
    if not isinstance(value, str) or not allowed:
        return ""
    typed = _stem(value)

    def distance(name: str) -> int:
        stem = _stem(name)
        return 1 if len(typed) >= 3 and stem.startswith(typed) and stem != typed else _edit_distance(typed, stem)

    ranked = sorted((distance(str(a)), len(str(a)), str(a)) for a in allowed)
    distance, _, best = ranked[0]
    stem = _stem(best)
    limit = 1 if len(stem) <= 3 else 2 if len(stem) <= 6 else 3
    return f" Did you mean {best!r}?" if distance <= limit else ""


def check_choice(arg: str, value: object, allowed: Collection[str]) -> str:
    """Return ``value`` if it is one of ``allowed``; otherwise raise :class:`InvalidOptionError` with a hint."""
    if isinstance(value, str) and value in allowed:
        return value
    raise InvalidOptionError(
        f"`{arg}` must be one of {sorted(allowed)}, got {value!r}.{did_you_mean(value, allowed)}"
    )
