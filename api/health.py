"""Health and summary endpoints: is the database there, and is the county's data served."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from apiflask import APIBlueprint
from flask import jsonify
from sqlalchemy import Engine, func, or_, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from api.auth import public
from api.deps import get_database, get_session, get_settings
from api.errors import RETRY_AFTER_SECONDS, first_line
from gis_platform import vocab
from gis_platform.models import AdminUnit, Agency, Case, Category, GridCell, Power

log = logging.getLogger(__name__)

bp = APIBlueprint("health", __name__, url_prefix="/api/v1", tag="系统 System")

# Names shown before any boundary is loaded, so an empty install still says where it is.
KNOWN_COUNTIES: dict[str, tuple[str, str]] = {"371521": ("阳谷县", "Yanggu County")}


@dataclass(frozen=True)
class DatabaseProbe:
    """The outcome of one round-trip to the database."""

    ok: bool
    latency_ms: float
    error: str | None
    postgis: str | None


@dataclass(frozen=True)
class CountySummary:
    """Row counts that show a county's data is loaded and served."""

    county_code: str
    name: str
    name_en: str
    admin_units: dict[str, int]
    agencies: dict[str, int]
    grid_cells: int
    categories: int
    powers: dict[str, int]
    cases: dict[str, int]


def probe_database(engine: Engine) -> DatabaseProbe:
    """Run one trivial query and read the PostGIS version, never raising."""
    started = time.perf_counter()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            latency_ms = (time.perf_counter() - started) * 1000
            installed = conn.execute(
                text("SELECT extversion FROM pg_extension WHERE extname = 'postgis'")
            ).scalar_one_or_none()
            postgis = conn.execute(text("SELECT postgis_lib_version()")).scalar_one() if installed else None
    except SQLAlchemyError as exc:
        latency_ms = (time.perf_counter() - started) * 1000
        cause = exc.orig if getattr(exc, "orig", None) is not None else exc
        log.warning("health check: database unavailable: %s", first_line(cause))
        # The driver's message names hosts and ports; the client gets the error class only.
        return DatabaseProbe(False, round(latency_ms, 2), f"database unreachable ({type(cause).__name__})", None)
    return DatabaseProbe(True, round(latency_ms, 2), None, postgis)


def county_name(session: Session, county_code: str) -> tuple[str, str]:
    """Return the county's Chinese and English names, from its boundary row when loaded."""
    row = session.execute(
        select(AdminUnit.name, AdminUnit.name_en)
        .where(AdminUnit.county_code == county_code, AdminUnit.level == "county")
        .limit(1)
    ).first()
    if row is not None:
        return row.name, row.name_en
    return KNOWN_COUNTIES.get(county_code, (f"县级行政区 {county_code}", f"County {county_code}"))


def county_summary(session: Session, county_code: str) -> CountySummary:
    """Count the county's units, agencies, grid cells, categories, powers and cases."""

    def grouped(column: Any, model: Any, keys: tuple[str, ...]) -> dict[str, int]:
        rows = session.execute(
            select(column, func.count()).where(model.county_code == county_code).group_by(column)
        ).all()
        counts = dict.fromkeys(keys, 0)
        counts.update({key: n for key, n in rows})
        return counts

    # Only cells in force now: retired versions are kept for old cases but are not the live grid.
    now = func.now()
    grid_cells = session.execute(
        select(func.count())
        .select_from(GridCell)
        .where(
            GridCell.county_code == county_code,
            GridCell.valid_from <= now,
            or_(GridCell.valid_to.is_(None), GridCell.valid_to > now),
        )
    ).scalar_one()
    categories = session.execute(
        select(func.count()).select_from(Category).where(Category.county_code == county_code)
    ).scalar_one()
    case_rows = session.execute(
        select(Category.theme, func.count())
        .select_from(Case)
        .join(Category, Case.category_id == Category.id)
        # Reports cancelled as invalid or merged into another case are not cases handled.
        .where(Case.county_code == county_code, Case.status.not_in(("cancelled", "merged")))
        .group_by(Category.theme)
    ).all()
    cases = dict.fromkeys(vocab.THEMES, 0)
    cases.update({theme: n for theme, n in case_rows})
    name, name_en = county_name(session, county_code)
    return CountySummary(
        county_code=county_code,
        name=name,
        name_en=name_en,
        admin_units=grouped(AdminUnit.level, AdminUnit, vocab.ADMIN_LEVELS),
        agencies=grouped(Agency.kind, Agency, vocab.AGENCY_KINDS),
        grid_cells=grid_cells,
        categories=categories,
        powers=grouped(Power.exercised_by, Power, vocab.POWER_HOLDERS),
        cases=cases,
    )


def app_version() -> str:
    """Return the installed package version."""
    try:
        return version("yanggu-gis-platform")
    except PackageNotFoundError:
        return "unknown"


@bp.get("/health")
@public
def health():
    """Report whether the app can reach PostGIS; 503 with Retry-After when it cannot."""
    probe = probe_database(get_database().engine)
    ok = probe.ok and probe.postgis is not None
    body = {
        "status": "ok" if ok else "degraded",
        "app": {"version": app_version()},
        "database": {"ok": probe.ok, "latency_ms": probe.latency_ms, "error": probe.error},
        "postgis": {"version": probe.postgis},
        "county_code": get_settings().county_code,
    }
    if ok:
        return jsonify(body)
    if probe.ok:
        body["database"]["error"] = "the PostGIS extension is not installed (run: gis-platform db upgrade)"
    response = jsonify(body)
    response.status_code = 503
    response.headers["Retry-After"] = RETRY_AFTER_SECONDS
    return response


@bp.get("/summary")
@public
def summary():
    """Return the demo county's row counts by level, kind, holder and theme."""
    return jsonify(asdict(county_summary(get_session(), get_settings().county_code)))
