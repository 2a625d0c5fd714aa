"""Typed errors of medloss.

Every error a user can trigger with bad input is a :class:`MedlossError` that also derives from the built-in
exception a caller would catch (``ValueError`` or ``TypeError``), so ``except ValueError`` keeps working.
Messages name the argument, the offending value and how to fix it.
"""
from __future__ import annotations

import math
from collections.abc import Collection
from numbers import Integral, Real
from typing import cast


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
    best_distance, _, best = ranked[0]
    stem = _stem(best)
    limit = 1 if len(stem) <= 3 else 2 if len(stem) <= 6 else 3
    return f" Did you mean {best!r}?" if best_distance <= limit else ""


def check_choice(arg: str, value: object, allowed: Collection[str]) -> str:
    """Return ``value`` if it is one of ``allowed``; otherwise raise :class:`InvalidOptionError` with a hint."""
    if isinstance(value, str) and value in allowed:
        return value
    raise InvalidOptionError(
        f"`{arg}` must be one of {sorted(allowed)}, got {value!r}.{did_you_mean(value, allowed)}"
    )


def check_number(
    arg: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
) -> float | int:
    """Return ``value`` as a float (an int with ``integer``) if it is a finite real number in the given range.

    Every numeric constructor option of medloss goes through here, so a NaN, an infinity or a string is refused
    when the object is built, with the same message, instead of turning the loss into NaN at the first step.
    ``low``/``high`` are inclusive bounds unless ``low_open``/``high_open``. Raises :class:`OptionTypeError` for a
    non-number (``bool`` included) and :class:`InvalidOptionError` for NaN, inf or a value out of range.
    """
    kind = Integral if integer else Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise OptionTypeError(f"`{arg}` must be {'an integer' if integer else 'a number'}, got {value!r}.")
    value = cast(float, value)  # typeshed gives numbers.Real no operators; every Real compares like a float
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value) or below or above:
        raise InvalidOptionError(
            f"`{arg}` must be a finite number{_range_text(low, high, low_open, high_open)}, got {value!r}."
        )
    return int(value) if integer else float(value)


def _range_text(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high:g}"
    return ""
