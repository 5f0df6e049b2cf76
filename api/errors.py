"""Render every error once: problem+json (RFC 9457) under /api, a small HTML page elsewhere.

No response ever carries a stack trace; what users see and what is logged are kept apart.
"""

from __future__ import annotations

import json
import logging

from flask import Flask, Response, current_app, render_template, request
from sqlalchemy import exc as sa_exc
from apiflask.exceptions import HTTPError as ApiFlaskHTTPError
from werkzeug.exceptions import HTTPException

from api.deps import rollback_session
from gis_platform.errors import PlatformError, Problem

log = logging.getLogger(__name__)

PROBLEM_MIMETYPE = "application/problem+json"
RETRY_AFTER_SECONDS = "5"

# Errors meaning "the database cannot be reached right now", which a client should retry.
# SQLAlchemy wraps psycopg's OperationalError; the raw one is listed for code that uses psycopg directly.
try:
    from psycopg import OperationalError as _PsycopgOperationalError
except ImportError:  # pragma: no cover - psycopg is a hard dependency
    _PsycopgOperationalError = sa_exc.OperationalError  # type: ignore[misc,assignment]

DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,  # connection pool exhausted
    _PsycopgOperationalError,
)

# Page titles for the HTML error page, Chinese first; unknown statuses fall back by class.
PAGE_TITLES: dict[int, tuple[str, str]] = {
    400: ("请求有误", "Bad request"),
    403: ("无权访问", "Forbidden"),
    404: ("页面不存在", "Page not found"),
    405: ("不支持该请求方法", "Method not allowed"),
    409: ("数据冲突", "Conflict"),
    413: ("上传内容过大", "Upload too large"),
    415: ("不支持的内容类型", "Unsupported media type"),
    500: ("服务器内部错误", "Internal server error"),
    503: ("服务暂时不可用", "Service unavailable"),
}


def init_app(app: Flask) -> None:
    """Register the error handlers on an app."""
    app.register_error_handler(PlatformError, handle_platform_error)
    app.register_error_handler(ApiFlaskHTTPError, handle_apiflask_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    for exc_type in DATABASE_UNAVAILABLE:
        app.register_error_handler(exc_type, handle_database_unavailable)
    app.register_error_handler(Exception, handle_unexpected)


def wants_problem_json() -> bool:
    """Return True when the request is for the API, which always answers problem+json."""
    return request.path == "/api" or request.path.startswith("/api/")


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response:
    """Return a problem document as an ``application/problem+json`` response."""
    body = json.dumps(problem.to_dict(), ensure_ascii=False)
    response = current_app.response_class(body, status=problem.status, mimetype=PROBLEM_MIMETYPE)
    response.headers.update(headers or {})
    return response


def render_error(problem: Problem, headers: dict[str, str] | None = None) -> Response:
    """Render a problem as problem+json for the API or as an HTML page for everything else."""
    if wants_problem_json():
        return problem_response(problem, headers)
    title_zh, title_en = PAGE_TITLES.get(problem.status) or PAGE_TITLES[500 if problem.status >= 500 else 400]
    html = render_template(
        "error.html", status=problem.status, title_zh=title_zh, title_en=title_en, detail=problem.detail
    )
    response = current_app.response_class(html, status=problem.status, mimetype="text/html")
    response.headers.update(headers or {})
    return response


def handle_platform_error(error: PlatformError) -> Response:
    """Render a platform error with its own status and user-facing message."""
    if error.status >= 500:
        rollback_session()
        log.error("%s %s: %s", request.method, request.path, error.log_detail)
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if error.status == 503 else None
    if "retry_after" in error.extra:
        headers = {"Retry-After": str(error.extra["retry_after"])}
    if error.status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="gis-platform"'}
    return render_error(Problem.from_error(error), headers)


def _flatten(detail: object, prefix: str = "") -> list[dict[str, str]]:
    """Flatten APIFlask's {location: {field: [messages]}} into field-level problems."""
    out: list[dict[str, str]] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = str(key) if key not in ("json", "query", "form", "files", "headers", "path", "cookies") else ""
            out += _flatten(value, f"{prefix}.{name}".strip(".") if name else prefix)
    elif isinstance(detail, list) and all(isinstance(v, str) for v in detail):
        out.append({"field": prefix or "body", "problem": "; ".join(detail)})
    elif isinstance(detail, list):
        for i, value in enumerate(detail):
            out += _flatten(value, f"{prefix}[{i}]")
    elif detail:
        out.append({"field": prefix or "body", "problem": str(detail)})
    return out


def handle_apiflask_error(error: ApiFlaskHTTPError) -> Response:
    """Render APIFlask's errors (input validation, auth) as problems with field-level messages."""
    errors = _flatten(error.detail)
    detail = "; ".join(f"{e['field']}: {e['problem']}" for e in errors) or str(error.message)
    problem = Problem(status=error.status_code, title=str(error.message), detail=detail,
                      type="/problems/validation" if error.status_code == 400 else "about:blank", errors=errors)
    return render_error(problem, dict(error.headers or {}))


def handle_http_exception(error: HTTPException) -> Response:
    """Render a werkzeug HTTP error (404, 405, 413 ...) keeping headers such as ``Allow``."""
    status = error.code or 500
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    problem = Problem(status=status, title=error.name, detail=error.description or error.name)
    return render_error(problem, headers)


def handle_database_unavailable(error: Exception) -> Response:
    """Answer 503 with Retry-After when the database cannot be reached."""
    rollback_session()
    # The driver's message names hosts and ports: it goes to the log, not to the client.
    log.warning("%s %s: database unavailable: %s", request.method, request.path, first_line(error))
    problem = Problem(
        status=503,
        title="Service unavailable",
        detail="数据库暂时无法连接，请稍后重试。The database is temporarily unreachable; retry shortly.",
        type="/problems/database-unavailable",
    )
    return render_error(problem, {"Retry-After": RETRY_AFTER_SECONDS})


def handle_unexpected(error: Exception) -> Response:
    """Log an unexpected exception and answer a bare 500."""
    rollback_session()
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=error)
    problem = Problem(
        status=500,
        title="Internal Server Error",
        detail="服务器内部错误，已记录。The server hit an unexpected error; it has been logged.",
        type="/problems/internal",
    )
    return render_error(problem)


def first_line(error: BaseException) -> str:
    """Return the first line of an exception's message, for a one-line log entry."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
