"""Versioned boundaries and re-routing of cases.

Jurisdictions and grid cells are never edited in place: a redraw closes the version in force
(``valid_to``) and opens a new one, so a case routed last year still shows the squad that held the
place then, and routing "as of" any moment gives the answer of that moment.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import shapely
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gis_platform import models as m
from gis_platform.errors import Conflict, FieldError, NotFound, ValidationError
from gis_platform.geometry import as_multipolygon, to_ewkt, validate_geometry
from gis_platform.workflow import transition
from grids.pg_engine import rebuild_lookup
from grids.routing import RouteResult, route_point


def redraw_jurisdiction(session: Session, agency_id: int, geom: shapely.Geometry, *, at: datetime | None = None,
                        note: str | None = None, reindex: bool = True) -> m.Jurisdiction:
    """Close the agency's jurisdiction in force and open a new version from ``at`` (default now)."""
    at = at or datetime.now(UTC)
    agency = session.get(m.Agency, agency_id)
    if agency is None:
        raise NotFound(f"agency {agency_id} does not exist")
    geom = as_multipolygon(validate_geometry(geom, field="geometry", types=("Polygon", "MultiPolygon")))
    current = session.scalars(select(m.Jurisdiction).where(
        m.Jurisdiction.agency_id == agency_id, m.Jurisdiction.valid_from <= at,
        (m.Jurisdiction.valid_to.is_(None)) | (m.Jurisdiction.valid_to > at),
    ).with_for_update()).first()
    version = 1
    if current is not None:
        if current.valid_from == at:
            raise Conflict("a version already starts at this moment; choose a later valid_from")
        current.valid_to = at
        version = current.version + 1
    later = session.scalar(select(func.count()).select_from(m.Jurisdiction).where(
        m.Jurisdiction.agency_id == agency_id, m.Jurisdiction.valid_from > at))
    if later:
        raise ValidationError(FieldError("valid_from", "a later version already exists; redraw from after it"))
    new = m.Jurisdiction(county_code=agency.county_code, agency_id=agency_id, version=version, valid_from=at,
                         geom=to_ewkt(geom), note=note)
    session.add(new)
    session.flush()
    if reindex:
        rebuild_lookup(session, agency.county_code)
    return new


def _route_columns(result: RouteResult) -> dict[str, Any]:
    return {
        "admin_unit_id": result.admin_unit.id,
        "grid_cell_id": result.grid_cell.id if result.grid_cell else None,
        "owner_agency_id": result.owner.id,
        "assigned_agency_id": result.assigned.id,
        "near_boundary": result.near_boundary,
        "fallback_township": result.fallback_township,
        "routing": result.as_record(),
    }


def apply_route(case: m.Case, result: RouteResult) -> None:
    """Copy a routing decision onto a case."""
    for key, value in _route_columns(result).items():
        setattr(case, key, value)


def reroute_case(session: Session, case_id: int, *, reason: str, expected_version: int | None = None,
                 category: str | None = None, lon: float | None = None, lat: float | None = None,
                 actor_id: int | None = None, actor_role: str | None = None,
                 metric_srid: int = 4548, at: datetime | None = None) -> RouteResult:
    """Change a case's category and/or point, route it again, and record why in its history."""
    if not reason or not reason.strip():
        raise ValidationError(FieldError("reason", "say why the case is re-routed"))
    if category is None and lon is None and lat is None:
        raise ValidationError(FieldError("category", "give a new category or a new location"))
    if (lon is None) != (lat is None):
        raise ValidationError(FieldError("location", "give both longitude and latitude"))
    case = session.get(m.Case, case_id)
    if case is None:
        raise NotFound(f"case {case_id} does not exist")
    if expected_version is not None and case.version != expected_version:
        raise Conflict(f"case {case.case_no} is at version {case.version}, not {expected_version}; reload it")
    transition(case.status, "reroute")
    old_category = session.get(m.Category, case.category_id)
    new_category = old_category
    if category is not None:
        new_category = session.scalar(select(m.Category).where(
            m.Category.county_code == case.county_code, m.Category.code == category))
        if new_category is None:
            raise ValidationError(FieldError("category", f"unknown category code {category!r}"))
    point = shapely.from_wkb(bytes(session.scalar(select(func.ST_AsBinary(m.Case.location)).where(
        m.Case.id == case.id))))
    moved = lon is not None
    x, y = (lon, lat) if moved else (point.x, point.y)
    result = route_point(session, case.county_code, x, y, new_category.code, at=at, metric_srid=metric_srid)
    before = dict(case.routing or {})
    apply_route(case, result)
    case.category_id = new_category.id
    new_point = to_ewkt(shapely.Point(result.lon, result.lat))
    if moved:
        case.location = new_point
        case.geom = new_point
    seq = session.scalar(select(func.coalesce(func.max(m.CaseEvent.seq), 0)).where(m.CaseEvent.case_id == case.id))
    session.add(m.CaseEvent(
        county_code=case.county_code, case_id=case.id, seq=seq + 1, action="reroute", from_status=case.status,
        to_status=case.status, actor_id=actor_id, actor_role=actor_role, at=at or datetime.now(UTC), note=reason,
        geom=new_point if moved else None,
        data={"reason": reason, "category": {"from": old_category.code, "to": new_category.code},
              "moved": moved, "before": before, "after": result.as_record()},
    ))
    session.flush()
    return result
