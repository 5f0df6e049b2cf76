"""Rules of the thematic registries: illegal structures, fume sites, seized items, hotline tickets.

Each module follows the case service (``layers.cases``): the caller's session comes first, functions
flush and never commit, errors come from ``gis_platform.errors``, and every state machine is a table
of data whose violations raise ``Conflict`` listing what is allowed. Steps taken on a record that
belongs to a case (a structure's stage, a seizure and its outcome) are also appended to that case's
event log, which is where who did what, when and why is kept.

The small helpers below are shared by the four modules.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from numbers import Real
from typing import Any

from gis_platform.errors import FieldError, Forbidden, ValidationError

#: Roles that work the registries in the field or at the command centre (not planners, liaisons, citizens).
STAFF_ROLES = ("patroller", "operator", "supervisor", "admin")


def require_aware(value: Any, field: str) -> datetime:
    """Return a timezone-aware datetime, or raise naming the field."""
    if not isinstance(value, datetime):
        raise ValidationError(FieldError(field, "must be a date and time"))
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(FieldError(field, "must carry a time zone (ISO 8601 with offset)"))
    return value


def require_number(value: Any, field: str, *, minimum: float | None = None, maximum: float | None = None,
                   unit: str = "") -> float:
    """Return a finite number within bounds, or raise naming the field (NaN, infinity, booleans refused)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValidationError(FieldError(field, "must be a number"))
    number = float(value)
    if not math.isfinite(number):
        raise ValidationError(FieldError(field, "must be a finite number (no NaN or infinity)"))
    if minimum is not None and number < minimum:
        raise ValidationError(FieldError(field, f"must be at least {minimum:g}{unit}, got {number:g}{unit}"))
    if maximum is not None and number > maximum:
        raise ValidationError(FieldError(field, f"must be at most {maximum:g}{unit}, got {number:g}{unit}"))
    return number


def require_text(value: Any, field: str, *, max_length: int) -> str:
    """Return stripped, non-empty text no longer than max_length, or raise naming the field."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(FieldError(field, "must not be empty"))
    text = value.strip()
    if len(text) > max_length:
        raise ValidationError(FieldError(field, f"at most {max_length:,} characters"))
    return text


def require_role(role: str, allowed: tuple[str, ...], doing: str) -> None:
    """Raise Forbidden unless the role is among those allowed to do something."""
    if role not in allowed:
        raise Forbidden(f"the {role} role may not {doing}; allowed: {', '.join(allowed)}")


def collect(errors: list[FieldError], check: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one check, adding its field errors to the list instead of raising, so all are reported at once."""
    try:
        return check(*args, **kwargs)
    except ValidationError as exc:
        errors.extend(exc.errors)
        return None
