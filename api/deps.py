"""What a view needs from the app: settings, the database, and one session per request."""

from __future__ import annotations

import logging

from flask import current_app, g
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from gis_platform.db import Database
from gis_platform.settings import Settings

DB_KEY = "gis_platform.db"
SETTINGS_KEY = "gis_platform.settings"
CALENDAR_KEY = "gis_platform.calendar"

log = logging.getLogger(__name__)


def get_settings() -> Settings:
    """Return the settings the running app was built with."""
    return current_app.extensions[SETTINGS_KEY]


def get_calendar():
    """Return the working calendar of the running app (official schedule plus configured overrides)."""
    return current_app.extensions[CALENDAR_KEY]


def get_database() -> Database:
    """Return the process's database (engine and session factory)."""
    return current_app.extensions[DB_KEY]


def get_session() -> Session:
    """Return this request's session, opening it on first use.

    Views commit explicitly; anything left uncommitted is rolled back when the request ends.
    """
    if "db_session" not in g:
        g.db_session = get_database().sessions()
    return g.db_session


def rollback_session() -> None:
    """Roll back this request's session, if it has one, without raising."""
    session: Session | None = g.get("db_session")
    if session is None:
        return
    try:
        session.rollback()
    except SQLAlchemyError:
        # The connection may be the thing that failed; closing it at teardown is all that is left.
        log.warning("rollback failed after an error", exc_info=True)


def close_session(exc: BaseException | None = None) -> None:
    """Close this request's session at teardown, rolling back first if the request failed."""
    if exc is not None:
        rollback_session()
    session: Session | None = g.pop("db_session", None)
    if session is None:
        return
    try:
        session.close()
    except SQLAlchemyError:
        log.warning("closing the request session failed", exc_info=True)
