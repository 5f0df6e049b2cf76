"""Illegal structures (违法建设): footprint, area in the metric CRS, stages, and demolished totals.

A structure moves discovered → filed → order_served → self_demolished | forced_demolished → closed
(发现 → 立案 → 下达限拆通知 → 自行拆除 | 强制拆除 → 结案). The stage machine is the table below; the
structure's case keeps its own closed loop (``layers.cases``), and every stage change is appended
to that case's event log with its actor and note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import shapely
from sqlalchemy import Numeric, cast, func, select, text
from sqlalchemy.orm import Session

from gis_platform import models as m
from gis_platform import vocab
from gis_platform.errors import Conflict, FieldError, Forbidden, NotFound, ValidationError
from gis_platform.geometry import POLYGONAL, as_multipolygon, parse_geometry, to_ewkt, validate_geometry
from gis_platform.settings import Settings
from gis_platform.workcalendar import SHANGHAI
from layers.cases import Actor, append_event, county_bounds, report_case
from layers.rules import STAFF_ROLES, require_aware, require_role, require_text

#: The category a newly registered structure's case is opened under (theme ``illegal_structures``).
STRUCTURE_CATEGORY = "IS01"

#: Stage → the stages that may follow it.
STAGE_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "discovered": ("filed",),
    "filed": ("order_served",),
    "order_served": ("self_demolished", "forced_demolished"),
    "self_demolished": ("closed",),
    "forced_demolished": ("closed",),
    "closed": (),
}

#: Target stage → roles that may move a structure into it. Filing and closing are supervisors'
#: steps, as in the case loop; the field steps may be recorded by the squad or the command centre.
STAGE_ROLES: dict[str, tuple[str, ...]] = {
    "filed": ("supervisor", "admin"),
    "order_served": STAFF_ROLES,
    "self_demolished": STAFF_ROLES,
    "forced_demolished": STAFF_ROLES,
    "closed": ("supervisor", "admin"),
}

DEMOLISHED_STAGES = ("self_demolished", "forced_demolished")
GROUPINGS = ("month", "township", None)


@dataclass(frozen=True)
class DemolishedGroup:
    """Demolitions in one month (key ``YYYY-MM``) or one township (key = unit code)."""

    key: str | None
    label: str | None
    count: int
    area_m2: Decimal


@dataclass(frozen=True)
class DemolishedTotals:
    """Structures demolished in [start, end): count, total area (0.1 m²), and groups when asked."""

    start: datetime
    end: datetime
    count: int
    area_m2: Decimal
    group_by: str | None = None
    groups: list[DemolishedGroup] = field(default_factory=list)


def allowed_stages(stage: str) -> list[str]:
    """Return the stages that may follow a stage."""
    return list(STAGE_TRANSITIONS.get(stage, ()))


def measure_area(session: Session, geom: shapely.Geometry, metric_srid: int) -> Decimal:
    """Return a lon/lat polygon's area in m², measured in the metric CRS and kept to 0.1 m²."""
    value = session.scalar(text("SELECT round(ST_Area(ST_Transform(ST_GeomFromEWKT(:g), :srid))::numeric, 1)"),
                           {"g": to_ewkt(geom), "srid": metric_srid})
    return Decimal(value)


def register_structure(session: Session, settings: Settings, *, footprint: Any, address: str | None,
                       builder: str | None, discovered_at: datetime, actor: Actor, case_id: int | None = None,
                       repair: bool = False, source: str = "patroller",
                       category: str = STRUCTURE_CATEGORY) -> m.IllegalStructure:
    """Register an illegal structure: validate the footprint, measure it, and open its case unless given.

    The footprint is GeoJSON, WKT or a shapely (multi)polygon in WGS-84 lon/lat inside the county; an
    invalid one is refused unless ``repair`` is set. Without ``case_id`` a case of ``category`` (IS01)
    is reported with the footprint as its geometry, and the structure takes the case's unit and squad.
    """
    require_role(actor.role, STAFF_ROLES, "register illegal structures")
    require_aware(discovered_at, "discovered_at")
    if builder is not None:
        builder = require_text(builder, "builder", max_length=100)
    county = settings.county_code
    geom = validate_geometry(parse_geometry(footprint, field="footprint"), field="footprint", types=POLYGONAL,
                             bounds=county_bounds(session, county), repair=repair)
    geom = as_multipolygon(geom, field="footprint")
    area = measure_area(session, geom, settings.metric_srid)
    if area <= 0:
        raise ValidationError(FieldError("footprint", "the footprint's area is less than 0.1 m²"))
    if case_id is not None:
        case = _structure_case(session, county, case_id)
    else:
        theme = session.scalar(select(m.Category.theme).where(m.Category.county_code == county,
                                                              m.Category.code == category))
        if theme is not None and theme != "illegal_structures":
            raise ValidationError(FieldError("category", f"{category} is of theme {theme}, not illegal_structures"))
        # The builder's name stays on the structure: a case description may be shown to the public (Open311).
        case = report_case(session, county, category=category, geometry=geom, source=source, reporter=actor,
                           description=f"违法建设：{address or '地址未详'}，占地约 {area} m²", address=address,
                           reported_at=discovered_at, metric_srid=settings.metric_srid,
                           near_boundary_m=settings.near_boundary_m).case
    structure = m.IllegalStructure(
        county_code=county, case_id=case.id, address=address, builder=builder, footprint=to_ewkt(geom),
        area_m2=float(area), stage="discovered", discovered_at=discovered_at,
        admin_unit_id=case.admin_unit_id, squad_id=case.assigned_agency_id)
    session.add(structure)
    session.flush()
    return structure


def _structure_case(session: Session, county: str, case_id: int) -> m.Case:
    case = session.get(m.Case, case_id)
    if case is None or case.county_code != county:
        raise ValidationError(FieldError("case_id", f"case {case_id} does not exist in county {county}"))
    theme = session.scalar(select(m.Category.theme).where(m.Category.id == case.category_id))
    if theme != "illegal_structures":
        raise ValidationError(FieldError("case_id", f"case {case.case_no} is of theme {theme}, not illegal_structures"))
    return case


def advance(session: Session, structure_id: int, stage: str, *, actor: Actor, at: datetime,
            note: str | None = None) -> m.IllegalStructure:
    """Move a structure to its next stage, stamping the order and demolition times; flush, never commit."""
    if stage not in vocab.STRUCTURE_STAGES:
        raise ValidationError(FieldError("stage", f"must be one of {', '.join(vocab.STRUCTURE_STAGES)}"))
    require_aware(at, "at")
    structure = session.get(m.IllegalStructure, structure_id)
    if structure is None:
        raise NotFound(f"illegal structure {structure_id} does not exist")
    before = structure.stage
    allowed = allowed_stages(before)
    if stage not in allowed:
        raise Conflict(f"an illegal structure cannot go from stage {before!r} to {stage!r}; "
                       f"allowed: {', '.join(allowed) or 'none'}", allowed=allowed)
    require_role(actor.role, STAGE_ROLES[stage], f"move an illegal structure to {stage}")
    if actor.role == "patroller" and structure.squad_id is not None and actor.agency_id != structure.squad_id:
        raise Forbidden("this structure is in another squad's jurisdiction")
    # A stage cannot be dated before the step it follows.
    previous = structure.order_served_at if stage in DEMOLISHED_STAGES else (
        structure.demolished_at if stage == "closed" else structure.discovered_at)
    if previous is not None and at < previous:
        raise ValidationError(FieldError("at", f"{at.isoformat()} is before the previous stage "
                                               f"({previous.isoformat()})"))
    if stage == "order_served":
        structure.order_served_at = at
    elif stage in DEMOLISHED_STAGES:
        structure.demolished_at = at
    structure.stage = stage
    if structure.case_id is not None:
        case = session.get(m.Case, structure.case_id)
        if case is not None:
            append_event(session, case, "structure_stage", case.status, case.status, actor, at, note=note,
                          data={"structure_id": structure.id, "from_stage": before, "to_stage": stage,
                                "label": vocab.STRUCTURE_STAGE_LABELS[stage]})
    session.flush()
    return structure


def demolished_totals(session: Session, county_code: str, start: datetime, end: datetime,
                      group_by: str | None = "month") -> DemolishedTotals:
    """Return how many structures were demolished in [start, end) and their area, optionally grouped.

    A structure counts in the period of its demolition (``demolished_at``), whether it was demolished by
    its builder or by force, and stays counted once its file is closed. Months are calendar months in
    Asia/Shanghai; only months and townships with demolitions are listed.
    """
    require_aware(start, "start")
    require_aware(end, "end")
    if end <= start:
        raise ValidationError(FieldError("end", "must be after start"))
    if group_by not in GROUPINGS:
        raise ValidationError(FieldError("group_by", "must be month, township or none"))
    s = m.IllegalStructure
    # Rounding each area before summing keeps the total exact to 0.1 m² (floats would drift).
    area = func.coalesce(func.sum(func.round(cast(s.area_m2, Numeric), 1)), 0)
    where = (s.county_code == county_code, s.demolished_at.is_not(None), s.demolished_at >= start,
             s.demolished_at < end)
    count, total = session.execute(select(func.count(), area).where(*where)).one()
    groups: list[DemolishedGroup] = []
    if group_by == "month":
        month = func.to_char(func.timezone(SHANGHAI.key, s.demolished_at), "YYYY-MM")
        rows = session.execute(select(month, func.count(), area).where(*where).group_by(month).order_by(month))
        groups = [DemolishedGroup(k, k, n, Decimal(a)) for k, n, a in rows]
    elif group_by == "township":
        u = m.AdminUnit
        rows = session.execute(select(u.code, u.name, func.count(), area).select_from(s)
                               .outerjoin(u, u.id == s.admin_unit_id).where(*where)
                               .group_by(u.code, u.name).order_by(u.code))
        groups = [DemolishedGroup(k, label, n, Decimal(a)) for k, label, n, a in rows]
    return DemolishedTotals(start, end, int(count), Decimal(total), group_by, groups)
