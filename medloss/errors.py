"""Typed errors of medloss.

Every error a user can trigger with bad input is a :class:`MedlossError` that also derives from the built-in
exception a caller would catch (``ValueError`` or ``TypeError``), so ``except ValueError`` keeps working.
Messages name the argument, the offending value and how to fix it.
"""
from __future__ import annotations

import difflib
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


def did_you_mean(value: object, allowed: Collection[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest allowed string, or ``""``."""
    if not isinstance(value, str):
        return ""
    folded = {str(a).lower(): str(a) for a in allowed}
    close = difflib.get_close_matches(value.lower(), list(folded), n=1, cutoff=0.5)
    return f" Did you mean {folded[close[0]]!r}?" if close else ""


def check_choice(arg: str, value: object, allowed: Collection[str]) -> str:
    """Return ``value`` if it is one of ``allowed``; otherwise raise :class:`InvalidOptionError` with a hint."""
    if isinstance(value, str) and value in allowed:
        return value
    raise InvalidOptionError(
        f"`{arg}` must be one of {sorted(allowed)}, got {value!r}.{did_you_mean(value, allowed)}"
    )
