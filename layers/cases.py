"""The case service: report, route, move through the closed loop, and keep everyone informed.

Every function takes the caller's session, flushes, and never commits. Each step appends one event
(who, when, from, to, note, geometry change); the table refuses updates and deletes. Optimistic locking
on ``case.version`` makes concurrent steps safe: of two operators dispatching the same case at once,
exactly one wins and the other gets a conflict naming the current version.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import shapely
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.exc import StaleDataError

from gis_platform import models as m
from gis_platform import vocab
from gis_platform.coords import Conversion, geometry_to_wgs84
from gis_platform.errors import Conflict, FieldError, Forbidden, NotFound, ValidationError
from gis_platform.geometry import parse_geometry, to_ewkt, validate_geometry
from gis_platform.workcalendar import SHANGHAI, UnknownCalendarYear, WorkCalendar, overrun_multiple
from gis_platform.workflow import ACTIONS_BY_NAME, allowed_actions, transition
from grids.routing import Catalogue, cached_catalogue, current_catalogue, route_report
from grids.versions import reroute_case

CALENDAR = WorkCalendar()
METRES_PER_DEGREE = 111_320.0  # of latitude, near enough everywhere for a search box


@dataclass(frozen=True)
class Actor:
    """Who takes a step: a user with a role and an agency, or an outside citizen."""

    role: str
    user_id: int | None = None
    agency_id: int | None = None
    name: str | None = None

    @classmethod
    def of(cls, user: m.User) -> Actor:
        """Return the actor for a signed-in user."""
        return cls(role=user.role, user_id=user.id, agency_id=user.agency_id, name=user.display_name)


CITIZEN = Actor(role="citizen")


@dataclass(frozen=True)
class Duplicate:
    """An open case of the same category reported nearby and recently."""

    case_id: int
    case_no: str
    distance_m: float
    reported_at: datetime
    status: str


@dataclass
class ReportOutcome:
    """What reporting did: the case, whether it was new, its routing and suggested duplicates."""

    case: m.Case
    created: bool
    route: dict[str, Any] | None
    duplicates: list[Duplicate] = field(default_factory=list)
    # The routing catalogue the report was checked against (None for a replayed report).
    catalogue: Catalogue | None = None


@dataclass(frozen=True)
class CaseClock:
    """A case's clock: limit, due time, working hours used, overdue flag and overrun multiple."""

    limit_hours: float | None
    due_at: datetime | None
    elapsed_hours: float | None
    remaining_hours: float | None
    overdue: bool
    overrun_multiple: float
    # Set when the official calendar of a year involved is unknown: the clock cannot be read.
    calendar_note: str | None = None


def county_bounds(session: Session, county: str) -> tuple[float, float, float, float]:
    row = session.execute(text(
        "SELECT ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) FROM admin_unit "
        "WHERE county_code = :c AND level = 'county'"), {"c": county}).first()
    if row is None:
        raise ValidationError(FieldError("county_code", f"county {county} has no boundary loaded"))
    return tuple(row)  # type: ignore[return-value]


def append_event(session: Session, case: m.Case, action: str, from_status: str | None, to_status: str,
                  actor: Actor, at: datetime, *, note: str | None = None, geom: str | None = None,
                  data: dict[str, Any] | None = None) -> m.CaseEvent:
    seq = session.scalar(select(func.coalesce(func.max(m.CaseEvent.seq), 0)).where(m.CaseEvent.case_id == case.id))
    event = m.CaseEvent(county_code=case.county_code, case_id=case.id, seq=seq + 1, action=action,
                        from_status=from_status, to_status=to_status, actor_id=actor.user_id,
                        actor_role=actor.role, at=at, note=note, geom=geom, data=data)
    session.add(event)
    return event


def _notify(session: Session, case: m.Case, message: str, *, skip_user: int | None = None) -> int:
    """Tell the case's followers what happened; return how many were told."""
    followers = session.scalars(select(m.CaseFollower).where(m.CaseFollower.case_id == case.id)).all()
    told = 0
    for f in followers:
        if f.user_id is not None and f.user_id == skip_user:
            continue
        session.add(m.Notification(county_code=case.county_code, case_id=case.id, user_id=f.user_id,
                                   contact=f.contact, message=message))
        told += 1
    return told


def find_duplicates(session: Session, case: m.Case, category: m.Category, *, at: datetime) -> list[Duplicate]:
    """Return open cases of the same category within the category's radius and time window."""
    rows = session.execute(text("""
        SELECT k.id, k.case_no, ST_Distance(k.location::geography, c.location::geography) AS d, k.reported_at,
               k.status
        FROM "case" k, "case" c
        WHERE c.id = :id AND k.id <> c.id AND k.county_code = c.county_code AND k.category_id = c.category_id
          AND k.status = ANY(:open) AND k.reported_at >= :since AND k.reported_at <= :until
          AND ST_DWithin(k.location::geography, c.location::geography, :r)
        ORDER BY d, k.reported_at DESC LIMIT 10"""),
        {"id": case.id, "open": list(vocab.OPEN_STATUSES), "r": category.dup_radius_m,
         "since": at - timedelta(hours=category.dup_window_h), "until": at}).all()
    return [Duplicate(r[0], r[1], round(float(r[2]), 1), r[3], r[4]) for r in rows]


# A report is stored by one statement: the case, its first event and its reporter as follower, with the
# nearby open cases of the same category found in the same snapshot (so the new case is not among them).
# ``ON CONFLICT`` on the idempotency key makes a concurrent retry a no-op that returns no row: the caller
# then reads the case that won. The number of a case comes from its id, drawn in the same statement.
REPORT_SQL = text("""
WITH n AS (SELECT nextval(pg_get_serial_sequence('"case"', 'id')) AS id),
d AS (
    SELECT k.id, k.case_no, ST_Distance(k.location::geography, p.g::geography) AS dist, k.reported_at, k.status
    FROM "case" k, (SELECT ST_GeomFromEWKT(:location) AS g) p
    WHERE k.county_code = :county AND k.category_id = :category_id AND k.status = ANY(CAST(:open AS text[]))
      AND k.reported_at >= :since AND k.reported_at <= :at
      AND k.location && ST_Expand(p.g, :radius_deg)  -- the location index narrows; geography decides
      AND ST_DWithin(k.location::geography, p.g::geography, :radius)
    ORDER BY dist, k.reported_at DESC LIMIT 10),
ins AS (
    INSERT INTO "case" (id, county_code, case_no, category_id, source, status, urgency, description, address, geom,
                        location, coord_system, coord_original, reporter_id, reporter_name, reporter_contact,
                        admin_unit_id, grid_cell_id, owner_agency_id, assigned_agency_id, near_boundary,
                        fallback_township, routing, idempotency_key, external_ref, reported_at, version)
    SELECT n.id, :county,
           'AJ' || :year || CASE WHEN n.id < 10000000 THEN lpad(n.id::text, 7, '0') ELSE n.id::text END,
           :category_id, :source, 'reported', :urgency, :description, :address, ST_GeomFromEWKT(:geom),
           ST_GeomFromEWKT(:location), :coord_system, CAST(:coord_original AS jsonb), :reporter_id,
           :reporter_name, :reporter_contact, :admin_unit_id, :grid_cell_id, :owner_agency_id,
           :assigned_agency_id, :near_boundary, :fallback_township, CAST(:routing AS jsonb), :idempotency_key,
           :external_ref, :at, 1
    FROM n
    ON CONFLICT (county_code, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id, case_no, created_at, updated_at),
ev AS (
    INSERT INTO case_event (county_code, case_id, seq, action, from_status, to_status, actor_id, actor_role, at,
                            note, data)
    SELECT :county, ins.id, 1, 'report', NULL, 'reported', :reporter_id, :actor_role, :at, :note,
           jsonb_build_object('route', CAST(:routing AS jsonb),
                              'duplicates', COALESCE((SELECT jsonb_agg(d.case_no ORDER BY d.dist, d.reported_at DESC)
                                                      FROM d), '[]'::jsonb))
    FROM ins RETURNING 1),
fo AS (
    INSERT INTO case_follower (county_code, case_id, user_id, contact, reason)
    SELECT :county, ins.id, :reporter_id, :follow_contact, 'reporter' FROM ins WHERE :follow RETURNING 1)
SELECT ins.id, ins.case_no, ins.created_at, ins.updated_at,
       (SELECT json_agg(json_build_array(d.id, d.case_no, d.dist, d.reported_at, d.status)
                        ORDER BY d.dist, d.reported_at DESC) FROM d) AS duplicates,
       (SELECT count(*) FROM ev) + (SELECT count(*) FROM fo) AS written
FROM ins
""")


def _existing_report(session: Session, county: str, idempotency_key: str) -> m.Case | None:
    return session.scalar(select(m.Case).where(m.Case.county_code == county, m.Case.idempotency_key == idempotency_key))


def report_case(session: Session, county: str, *, category: str, geometry: Any, source: str,
                reporter: Actor = CITIZEN, urgency: str = "normal", description: str = "",
                address: str | None = None, coord_system: str = "wgs84", reporter_name: str | None = None,
                reporter_contact: str | None = None, idempotency_key: str | None = None,
                reported_at: datetime | None = None, external_ref: str | None = None,
                metric_srid: int = 4548, near_boundary_m: float = 30.0) -> ReportOutcome:
    """Take a report: validate, convert, route, store with its first event, and suggest duplicates.

    A retried submission with the same idempotency key returns the original case and creates nothing.
    Routing takes one query and storing one statement (``REPORT_SQL``); the catalogue of units,
    agencies and categories comes from the process's copy, confirmed current by the routing query.
    """
    if idempotency_key is not None and not (1 <= len(idempotency_key) <= 128):
        raise ValidationError(FieldError("idempotency_key", "must be 1–128 characters"))
    try:
        return _report(session, county, category=category, geometry=geometry, source=source, reporter=reporter,
                       urgency=urgency, description=description, address=address, coord_system=coord_system,
                       reporter_name=reporter_name, reporter_contact=reporter_contact,
                       idempotency_key=idempotency_key, reported_at=reported_at, external_ref=external_ref,
                       metric_srid=metric_srid, near_boundary_m=near_boundary_m)
    except ValidationError:
        # A retry of a report that was accepted before the catalogue changed still gets its case.
        existing = _existing_report(session, county, idempotency_key) if idempotency_key is not None else None
        if existing is None:
            raise
        return ReportOutcome(existing, False, existing.routing)


def _report(session: Session, county: str, *, category: str, geometry: Any, source: str, reporter: Actor,
            urgency: str, description: str, address: str | None, coord_system: str, reporter_name: str | None,
            reporter_contact: str | None, idempotency_key: str | None, reported_at: datetime | None,
            external_ref: str | None, metric_srid: int, near_boundary_m: float) -> ReportOutcome:
    errors: list[FieldError] = []
    if source not in vocab.CASE_SOURCES:
        errors.append(FieldError("source", f"must be one of {', '.join(vocab.CASE_SOURCES)}"))
    if urgency not in vocab.URGENCIES:
        errors.append(FieldError("urgency", f"must be one of {', '.join(vocab.URGENCIES)}"))
    if coord_system not in vocab.COORD_SYSTEMS:
        errors.append(FieldError("coord_system", f"must be one of {', '.join(vocab.COORD_SYSTEMS)}"))
    if len(description) > 4000:
        errors.append(FieldError("description", "at most 4,000 characters"))
    if reported_at is not None and reported_at.tzinfo is None:
        errors.append(FieldError("reported_at", "must carry a time zone (ISO 8601 with offset)"))
    if errors:
        raise ValidationError(errors)
    catalogue = current_catalogue(session, county)
    if category not in catalogue.categories:
        catalogue = cached_catalogue(session, county)  # perhaps added since this process read it
    if category not in catalogue.categories:
        raise ValidationError(FieldError("category", f"unknown category code {category!r}"))
    raw = parse_geometry(geometry, field="geometry")
    original = shapely.to_geojson(raw) if coord_system in ("gcj02", "bd09") else None
    geom = geometry_to_wgs84(raw, coord_system)
    geom = validate_geometry(geom, field="geometry", bounds=catalogue.bounds)
    location = geom if geom.geom_type == "Point" else shapely.point_on_surface(geom)
    at = reported_at or datetime.now(UTC)
    route, catalogue = route_report(session, county, location.x, location.y, category, at=at,
                                    metric_srid=metric_srid, near_boundary_m=near_boundary_m, catalogue=catalogue)
    rule = catalogue.rule(category)
    stored = geom if geom.geom_type != "Polygon" else shapely.MultiPolygon([geom])
    coord_original = Conversion(coord_system, original is not None, original).as_record()
    routing = route.as_record()
    follow = reporter.user_id is not None or bool(reporter_contact)
    values: dict[str, Any] = dict(
        county_code=county, category_id=rule.id, source=source, status="reported", urgency=urgency,
        description=description, address=address, geom=to_ewkt(stored), location=to_ewkt(location),
        coord_system=coord_system, coord_original=coord_original, reporter_id=reporter.user_id,
        reporter_name=reporter_name, reporter_contact=reporter_contact, admin_unit_id=route.admin_unit.id,
        grid_cell_id=route.grid_cell.id if route.grid_cell else None, owner_agency_id=route.owner.id,
        assigned_agency_id=route.assigned.id, near_boundary=route.near_boundary,
        fallback_township=route.fallback_township, routing=routing, idempotency_key=idempotency_key,
        external_ref=external_ref, reported_at=at)
    row = session.execute(REPORT_SQL, {
        **values, "county": county, "year": str(at.astimezone(SHANGHAI).year),
        "coord_original": None if coord_original is None else json.dumps(coord_original),
        "routing": json.dumps(routing), "at": at, "actor_role": reporter.role, "note": description[:200] or None,
        "follow": follow, "follow_contact": None if reporter.user_id else reporter_contact,
        "open": list(vocab.OPEN_STATUSES), "radius": rule.dup_radius_m,
        # Degrees of longitude are the shorter ones here: a box this wide holds every point within the radius.
        "radius_deg": rule.dup_radius_m / (METRES_PER_DEGREE * math.cos(math.radians(min(abs(location.y), 89.0))))
        * 1.01,
        "since": at - timedelta(hours=rule.dup_window_h)}).one_or_none()
    if row is None:
        # Another request with the same key was stored first (now, or before): return its case.
        existing = _existing_report(session, county, idempotency_key) if idempotency_key is not None else None
        if existing is None:
            raise Conflict("the report could not be stored; send it again")
        return ReportOutcome(existing, False, existing.routing)
    case = m.Case(
        id=row.id, case_no=row.case_no, created_at=row.created_at, updated_at=row.updated_at, version=1,
        merged_into_id=None, filed_at=None, dispatched_at=None, due_at=None, handled_at=None, closed_at=None,
        extended_hours=Decimal(0), rework_count=0, evaluation=None, **values)
    # The row is in the table: make the object persistent without reading it back.
    make_transient_to_detached(case)
    session.add(case)
    duplicates = [Duplicate(d[0], d[1], round(float(d[2]), 1), datetime.fromisoformat(d[3]), d[4])
                  for d in row.duplicates or []]
    return ReportOutcome(case, True, routing, duplicates, catalogue)


def limit_hours(session: Session, case: m.Case) -> float | None:
    """Return the working-hour limit for the case's category and urgency."""
    value = session.scalar(select(m.TimeLimit.working_hours).where(
        m.TimeLimit.category_id == case.category_id, m.TimeLimit.urgency == case.urgency))
    return None if value is None else float(value)


def clock(case: m.Case, limit: float | None, *, now: datetime | None = None,
          calendar: WorkCalendar = CALENDAR) -> CaseClock:
    """Return the case's clock: overdue flag and overrun multiple in working hours."""
    now = now or datetime.now(UTC)
    if case.dispatched_at is None or limit is None:
        return CaseClock(limit, case.due_at, None, None, False, 0.0)
    allowed = limit + float(case.extended_hours or 0)
    end = case.handled_at or now
    try:
        elapsed = calendar.working_hours_between(case.dispatched_at, end)
    except UnknownCalendarYear as exc:
        return CaseClock(limit, case.due_at, None, None, False, 0.0, exc.detail)
    return CaseClock(limit, case.due_at, round(elapsed, 2), round(allowed - elapsed, 2), elapsed > allowed,
                     overrun_multiple(elapsed, allowed))


def _deadline(calendar: WorkCalendar, start: datetime, hours: float, data: dict[str, Any]) -> datetime | None:
    """Return start + working hours, or None (noted in the event) when the year's calendar is unknown."""
    try:
        return calendar.add_working_hours(start, hours)
    except UnknownCalendarYear as exc:
        # Never a weekends-only guess: the deadline stays open and the history says why.
        data["deadline_unknown"] = exc.detail
        return None


def _load(session: Session, case_id: int, expected_version: int | None) -> m.Case:
    case = session.get(m.Case, case_id, with_for_update=False)
    if case is None:
        raise NotFound(f"case {case_id} does not exist")
    if expected_version is not None and case.version != expected_version:
        raise Conflict(f"case {case.case_no} is at version {case.version}, not {expected_version}; reload it",
                       current_version=case.version)
    return case


def _check_role(actor: Actor, action_name: str) -> None:
    action = ACTIONS_BY_NAME[action_name]
    if actor.role not in action.roles:
        raise Forbidden(f"the {actor.role} role may not {action.label} ({action_name}); "
                        f"allowed: {', '.join(action.roles)}")


def _check_unit(actor: Actor, case: m.Case) -> None:
    """Squad and department staff act only on cases assigned to their own unit."""
    if actor.role in ("patroller", "liaison") and actor.agency_id != case.assigned_agency_id:
        raise Forbidden("this case is assigned to another unit")


def act(session: Session, case_id: int, action: str, actor: Actor, **kwargs: Any) -> m.Case:
    """Take one step of the closed loop on a case, with the rules of that step; flush, never commit.

    A concurrent change (the version moved under us, whenever the ORM flushes) becomes a Conflict.
    """
    try:
        return _act(session, case_id, action, actor, **kwargs)
    except StaleDataError:
        raise Conflict(f"case {case_id} was changed by someone else at the same time; reload it") from None


def _act(session: Session, case_id: int, action: str, actor: Actor, *, expected_version: int | None = None,
         note: str | None = None, at: datetime | None = None, target_agency_id: int | None = None,
         hours: float | None = None, score: int | None = None, merge_into: int | None = None,
         attachment_ids: list[int] | None = None, category: str | None = None,
         calendar: WorkCalendar = CALENDAR) -> m.Case:
    if action not in ACTIONS_BY_NAME or action == "report":
        raise ValidationError(FieldError("action", f"unknown action {action!r}"))
    if action == "reroute":
        raise ValidationError(FieldError("action", "use grids.versions.reroute_case to re-route"))
    at = at or datetime.now(UTC)
    case = _load(session, case_id, expected_version)
    _check_role(actor, action)
    before = case.status
    after = transition(before, action)  # raises Conflict listing the allowed actions
    data: dict[str, Any] = {}
    if action in ("accept", "feedback", "return", "request_extension"):
        _check_unit(actor, case)
    if action == "file":
        data["filed_by"] = actor.user_id
        case.filed_at = at
    elif action == "cancel":
        if not note:
            raise ValidationError(FieldError("note", "say why the report is invalid"))
    elif action == "dispatch":
        routed = case.assigned_agency_id
        if target_agency_id is not None and target_agency_id != routed:
            if not note:
                raise ValidationError(FieldError("note", "an override of the routed unit needs a reason"))
            target = session.get(m.Agency, target_agency_id)
            if target is None or target.county_code != case.county_code:
                raise ValidationError(FieldError("target_agency_id", f"unknown agency {target_agency_id}"))
            case.assigned_agency_id = target.id
            data.update(override=True, routed_agency_id=routed, assigned_agency_id=target.id)
        limit = limit_hours(session, case)
        if limit is None:
            raise ValidationError(FieldError("category", "no time limit configured for this category and urgency"))
        case.dispatched_at = at
        case.due_at = _deadline(calendar, at, limit + float(case.extended_hours or 0), data)
        data["due_at"] = case.due_at.isoformat() if case.due_at else None
    elif action == "return":
        if not note:
            raise ValidationError(FieldError("note", "say why the case is not this unit's"))
        data["returned_by_agency"] = actor.agency_id
        if category is not None:
            data["suggested_category"] = category
    elif action == "feedback":
        ids = attachment_ids or []
        photos = session.scalars(select(m.Attachment).where(
            m.Attachment.id.in_(ids), m.Attachment.case_id == case.id, m.Attachment.stage == "after")).all() if ids else []
        if not photos:
            raise ValidationError(FieldError("attachment_ids", "feedback needs at least one after-photo of this case"))
        case.handled_at = at
        data["attachments"] = [p.id for p in photos]
    elif action == "rework":
        if not note:
            raise ValidationError(FieldError("note", "say what must be reworked"))
        case.rework_count = (case.rework_count or 0) + 1
        case.handled_at = None
    elif action == "close":
        filed_by = session.scalar(select(m.CaseEvent.actor_id).where(
            m.CaseEvent.case_id == case.id, m.CaseEvent.action == "file").order_by(m.CaseEvent.seq.desc()).limit(1))
        if filed_by is not None and filed_by == actor.user_id:
            raise Forbidden("the check before closing must be done by a different supervisor than the one who filed")
        case.closed_at = at
    elif action == "evaluate":
        if score is None or not 1 <= int(score) <= 5:
            raise ValidationError(FieldError("score", "give a score from 1 to 5"))
        case.evaluation = int(score)
        data["score"] = int(score)
    elif action in ("request_extension", "approve_extension"):
        if hours is None or not 0 < float(hours) <= 400:
            raise ValidationError(FieldError("hours", "give the working hours to add (0–400)"))
        data["hours"] = float(hours)
        if action == "approve_extension":
            requested = session.scalar(select(func.count()).select_from(m.CaseEvent).where(
                m.CaseEvent.case_id == case.id, m.CaseEvent.action == "request_extension"))
            if not requested:
                raise Conflict("no extension was requested for this case")
            case.extended_hours = Decimal(str(float(case.extended_hours or 0) + float(hours)))
            if case.dispatched_at is not None:
                limit = limit_hours(session, case) or 0.0
                case.due_at = _deadline(calendar, case.dispatched_at, limit + float(case.extended_hours), data)
                data["due_at"] = case.due_at.isoformat() if case.due_at else None
    elif action == "defer":
        if not note:
            raise ValidationError(FieldError("note", "say why the case is deferred"))
        data["paused_at"] = at.isoformat()
    elif action == "resume":
        paused = session.scalar(select(m.CaseEvent.at).where(
            m.CaseEvent.case_id == case.id, m.CaseEvent.action == "defer").order_by(m.CaseEvent.seq.desc()).limit(1))
        if paused is not None and case.dispatched_at is not None:
            # The clock stood still while the case was deferred: the paused working hours are added.
            try:
                paused_hours = calendar.working_hours_between(paused, at)
            except UnknownCalendarYear as exc:
                paused_hours = 0.0
                data["deadline_unknown"] = exc.detail
            case.extended_hours = Decimal(str(round(float(case.extended_hours or 0) + paused_hours, 2)))
            limit = limit_hours(session, case) or 0.0
            case.due_at = _deadline(calendar, case.dispatched_at, limit + float(case.extended_hours), data)
            data.update(paused_hours=round(paused_hours, 2), due_at=case.due_at.isoformat() if case.due_at else None)
    elif action == "supervise":
        data["clock"] = asdict(clock(case, limit_hours(session, case), now=at, calendar=calendar)) | {
            "due_at": case.due_at.isoformat() if case.due_at else None}
    elif action == "merge":
        target = _merge_target(session, case, merge_into)
        case.merged_into_id = target.id
        data["merged_into"] = target.case_no
        _link_duplicate(session, case, target, actor, at)
    case.status = after
    case.updated_at = at
    append_event(session, case, action, before, after, actor, at, note=note, data=data or None)
    session.flush()
    label = ACTIONS_BY_NAME[action].label
    _notify(session, case, f"案件 {case.case_no}：{label}（{vocab.CASE_STATUS_LABELS[after]}）",
            skip_user=actor.user_id)
    session.flush()
    if action == "return" and category is not None:
        # The unit says the matter is of another kind: route it again under that category.
        reroute_case(session, case.id, category=category, reason=note or "", actor_id=actor.user_id,
                     actor_role=actor.role, at=at)
    return case


def _merge_target(session: Session, case: m.Case, merge_into: int | None) -> m.Case:
    if merge_into is None:
        raise ValidationError(FieldError("merge_into", "name the case this one duplicates"))
    target = session.get(m.Case, merge_into)
    if target is None or target.county_code != case.county_code:
        raise ValidationError(FieldError("merge_into", f"case {merge_into} does not exist"))
    if target.id == case.id:
        raise ValidationError(FieldError("merge_into", "a case cannot be merged into itself"))
    if target.status not in vocab.OPEN_STATUSES:
        raise Conflict(f"case {target.case_no} is {target.status}; merge into an open case")
    if target.category_id != case.category_id:
        raise ValidationError(FieldError("merge_into", "a duplicate must have the same category"))
    return target


def _link_duplicate(session: Session, dup: m.Case, target: m.Case, actor: Actor, at: datetime) -> None:
    """Make the duplicate's followers follow the surviving case and record the link on it."""
    for f in session.scalars(select(m.CaseFollower).where(m.CaseFollower.case_id == dup.id)).all():
        exists = session.scalar(select(func.count()).select_from(m.CaseFollower).where(
            m.CaseFollower.case_id == target.id, m.CaseFollower.user_id.is_not_distinct_from(f.user_id),
            m.CaseFollower.contact.is_not_distinct_from(f.contact)))
        if not exists:
            session.add(m.CaseFollower(county_code=target.county_code, case_id=target.id, user_id=f.user_id,
                                       contact=f.contact, reason="merged_duplicate"))
    append_event(session, target, "link_duplicate", target.status, target.status, actor, at,
                  note=f"合并重复案件 {dup.case_no}", data={"duplicate": dup.case_no})
    _notify(session, target, f"案件 {target.case_no}：已合并重复上报 {dup.case_no}")


def allowed_for(case: m.Case, actor: Actor) -> list[str]:
    """Return the actions this actor may take on this case now."""
    return [a for a in allowed_actions(case.status) if actor.role in ACTIONS_BY_NAME[a].roles]
