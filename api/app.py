"""The application factory: build a Flask app for one Settings object and one database."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from apiflask import APIFlask
from flask import Flask

from api import (analytics, auth, briefing, cases, coordination, errors, events, guards, health, layers, open311,
                 pages, security, stats, tiles)
from api.deps import CALENDAR_KEY, DB_KEY, SETTINGS_KEY, close_session, get_session
from api.docs import configure_docs
from gis_platform.db import Database, open_database
from gis_platform.settings import Settings
from gis_platform.workcalendar import calendar_from_settings
from webmap import pages as webmap_pages

__all__ = ["create_app", "get_session", "load_secret_key"]

log = logging.getLogger(__name__)

SECRET_KEY_FILE = "secret_key"


def create_app(settings: Settings, *, database: Database | None = None) -> Flask:
    """Build the app: connect (unless given a database), configure, and register views and errors."""
    app = APIFlask(
        __name__,
        title="阳谷县数字城管平台 API · Yanggu digital city management API",
        version=health.app_version(),
        spec_path="/api/v1/openapi.json",
        docs_path="/api/v1/docs",
        docs_oauth2_redirect_path=None,
        json_errors=False,  # errors are rendered once, as problem+json, by api.errors
    )
    app.config.update(
        SECRET_KEY=load_secret_key(settings),
        MAX_CONTENT_LENGTH=int(settings.max_upload_mb * 1024 * 1024),
        VALIDATION_ERROR_STATUS_CODE=400,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        WTF_CSRF_CHECK_DEFAULT=False,  # checked in api.auth only for cookie-authenticated writes
        WTF_CSRF_TIME_LIMIT=None,
    )
    guards.init_app(app)  # first: it bounds the <int:…> converter before any route is added
    configure_docs(app)
    # Chinese text stays readable in JSON bodies; JSON is UTF-8 by definition.
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[SETTINGS_KEY] = settings
    app.extensions[CALENDAR_KEY] = calendar_from_settings(settings)
    app.extensions[DB_KEY] = database if database is not None else open_database(settings)

    security.init_app(app)
    auth.init_app(app)
    for blueprint in blueprints():
        app.register_blueprint(blueprint)
    errors.init_app(app)
    app.teardown_appcontext(close_session)
    return app


def blueprints() -> list:
    """Return every blueprint of the platform, one per area."""
    return [health.bp, auth.bp, cases.bp, layers.bp, stats.bp, coordination.bp, pages.bp, tiles.bp, events.bp,
            open311.bp, webmap_pages.bp, briefing.bp, analytics.bp]


def load_secret_key(settings: Settings) -> str:
    """Return GIS_SECRET_KEY, else a key kept in ``<data_dir>/secret_key`` (created with mode 600).

    A stored key is shared by every gunicorn worker and survives restarts; only when the data
    directory cannot be written does each process fall back to a random key of its own.
    """
    if settings.secret_key:
        return settings.secret_key
    path = settings.resolved_data_dir / SECRET_KEY_FILE
    try:
        key = _read_or_create_key(path)
    except OSError as exc:
        log.warning(
            "GIS_SECRET_KEY is unset and %s cannot be used (%s); using a random key for this "
            "process: sessions will not survive restarts or be shared between workers",
            path,
            exc.strerror or exc,
        )
        return secrets.token_urlsafe(32)
    log.info("GIS_SECRET_KEY is unset; using the key stored in %s", path)
    return key


def _read_or_create_key(path: Path) -> str:
    """Read the stored key, creating it atomically if absent (several workers may race here)."""
    try:
        key = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        key = ""
    if key:
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(secrets.token_urlsafe(48) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            # link() never replaces: the first process to get here decides the key for everyone.
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    key = path.read_text(encoding="ascii").strip()
    if not key:
        raise OSError(f"{path} is empty")
    return key
