"""One error hierarchy for the whole platform, rendered once at each edge (CLI, API, pages)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """A problem with one named input field."""

    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}"


class PlatformError(Exception):
    """Base error: carries an HTTP status and a message safe to show to users."""

    status: int = 500
    title: str = "Internal error"
    type_slug: str = "internal"

    def __init__(self, detail: str, *, log_detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        # What goes to the log may carry more than what is shown to a user.
        self.log_detail = log_detail or detail
        self.extra = extra


class ValidationError(PlatformError):
    """Input failed validation; lists the fields and their problems."""

    status = 400
    title = "Invalid input"
    type_slug = "validation"

    def __init__(self, errors: list[FieldError] | FieldError, detail: str | None = None) -> None:
        self.errors = [errors] if isinstance(errors, FieldError) else list(errors)
        super().__init__(detail or "; ".join(str(e) for e in self.errors))


class NotFound(PlatformError):
    status = 404
    title = "Not found"
    type_slug = "not-found"


class Unauthorized(PlatformError):
    status = 401
    title = "Authentication required"
    type_slug = "unauthorized"


class Forbidden(PlatformError):
    status = 403
    title = "Forbidden"
    type_slug = "forbidden"


class Conflict(PlatformError):
    status = 409
    title = "Conflict"
    type_slug = "conflict"


class Unavailable(PlatformError):
    status = 503
    title = "Service unavailable"
    type_slug = "unavailable"


class ConfigurationError(PlatformError):
    """The platform cannot start as configured; the message says what to do."""

    status = 500
    title = "Configuration error"
    type_slug = "configuration"


@dataclass
class Problem:
    """An RFC 9457 problem document built from a PlatformError."""

    status: int
    title: str
    detail: str
    type: str = "about:blank"
    errors: list[dict[str, str]] = field(default_factory=list)
    # RFC 9457 extension members, e.g. the allowed actions of a 409 or the current version.
    extensions: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_error(cls, error: PlatformError) -> "Problem":
        errors = [{"field": e.field, "problem": e.problem} for e in getattr(error, "errors", [])]
        extensions = {k: v for k, v in error.extra.items()
                      if k in ("allowed", "current_version") and isinstance(v, (list, int, str))}
        return cls(
            status=error.status,
            title=error.title,
            detail=error.detail,
            type=f"/problems/{error.type_slug}",
            errors=errors,
            extensions=extensions,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status, "detail": self.detail}
        out.update({k: v for k, v in self.extensions.items() if k not in out})
        if self.errors:
            out["errors"] = self.errors
        return out
