"""Hotline tickets (热线工单: 12345, 12319 …): receipt, reply by a deadline, and closure.

A ticket is known by the hotline centre's own number, unique in a county, so receiving the same
ticket twice (a retried push, a re-sent batch) returns the first one and creates nothing. With a
location and a category the ticket becomes a case (source ``hotline``) routed like any other.
A ticket moves open → replied → closed; it closes only once its case is finished (or it has none),
since telling the caller "done" before the squad is done is what the 100 % closure figure must not hide.

The reply deadline defaults to 5 working days (*inferred*: hotline centres set their own, commonly
3–5 working days for a 转办 ticket); pass ``reply_within_working_days`` to follow the centre's rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gis_platform import models as m
from gis_platform.errors import Conflict, FieldError, NotFound, ValidationError
from gis_platform.geometry import parse_geometry, to_ewkt, validate_geometry
from gis_platform.settings import Settings
from gis_platform.workcalendar import WorkCalendar
from layers.cases import CALENDAR, Actor, Duplicate, county_bounds, report_case
from layers.rules import collect, require_aware, require_role, require_text

DEFAULT_REPLY_WORKING_DAYS = 5  # inferred; see the module docstring

#: Step → (statuses it may be taken from, status it leads to).
TICKET_STEPS: dict[str, tuple[tuple[str, ...], str]] = {
    "reply": (("open",), "replied"),
    "close": (("replied",), "closed"),
}

#: The command centre answers and closes hotline tickets.
TICKET_ROLES = ("operator", "supervisor", "admin")

#: Case statuses that let a ticket close: the matter is finished, or was found invalid on verification.
FINISHED_CASE_STATUSES = ("closed", "evaluated", "cancelled")


@dataclass
class TicketOutcome:
    """What receiving did: the ticket, whether it was new, and the case it opened (with duplicates)."""

    ticket: m.HotlineTicket
    created: bool
    case: m.Case | None = None
    duplicates: list[Duplicate] = field(default_factory=list)


@dataclass(frozen=True)
class ReplyOutcome:
    """A reply and whether it came by the deadline."""

    ticket: m.HotlineTicket
    on_time: bool


class ClosureRate(NamedTuple):
    """Tickets received in a period that are closed: closed, total, and rate (None when there are none)."""

    closed: int
    total: int
    rate: float | None


def _existing(session: Session, county: str, external_no: str) -> m.HotlineTicket | None:
    return session.scalar(select(m.HotlineTicket).where(m.HotlineTicket.county_code == county,
                                                        m.HotlineTicket.external_no == external_no))


def allowed_steps(status: str) -> list[str]:
    """Return the steps that may be taken on a ticket in a status."""
    return [name for name, (sources, _) in TICKET_STEPS.items() if status in sources]


def _step(ticket: m.HotlineTicket, step: str) -> str:
    sources, target = TICKET_STEPS[step]
    if ticket.status not in sources:
        allowed = allowed_steps(ticket.status)
        raise Conflict(f"ticket {ticket.external_no} is {ticket.status}; {step!r} is not allowed, "
                       f"allowed: {', '.join(allowed) or 'none'}", allowed=allowed)
    return target


def receive_ticket(session: Session, settings: Settings, *, external_no: str, channel: str, content: str,
                   received_at: datetime, reply_within_working_days: int = DEFAULT_REPLY_WORKING_DAYS,
                   location: Any = None, category: str | None = None,
                   calendar: WorkCalendar = CALENDAR) -> TicketOutcome:
    """Take a hotline ticket; the same external number again returns the first ticket unchanged.

    With a location (WGS-84 point) and a category code, a case is reported (source ``hotline``) and
    linked. A category without a location is refused: a case cannot be routed without a place.
    """
    county = settings.county_code
    number = require_text(external_no, "external_no", max_length=64)
    existing = _existing(session, county, number)
    if existing is not None:
        return TicketOutcome(existing, False, session.get(m.Case, existing.case_id) if existing.case_id else None)
    errors: list[FieldError] = []
    collect(errors, require_text, channel, "channel", max_length=32)
    collect(errors, require_text, content, "content", max_length=4000)
    collect(errors, require_aware, received_at, "received_at")
    days = reply_within_working_days
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 60:
        errors.append(FieldError("reply_within_working_days", "must be a whole number of working days, 1–60"))
    if category is not None and location is None:
        errors.append(FieldError("location", f"needed to open a case of category {category}"))
    if errors:
        raise ValidationError(errors)
    point = None
    if location is not None:
        point = validate_geometry(parse_geometry(location, field="location"), field="location", types=("Point",),
                                  bounds=county_bounds(session, county))
    case, duplicates = None, []
    if point is not None and category is not None:
        # The key makes the case as idempotent as the ticket, should two deliveries race.
        outcome = report_case(session, county, category=category, geometry=point, source="hotline",
                              description=content.strip(), reported_at=received_at, external_ref=number,
                              idempotency_key=f"hotline:{number}", metric_srid=settings.metric_srid,
                              near_boundary_m=settings.near_boundary_m)
        case, duplicates = outcome.case, outcome.duplicates
    ticket = m.HotlineTicket(
        county_code=county, external_no=number, channel=channel.strip(), content=content.strip(),
        geom=to_ewkt(point) if point is not None else None, received_at=received_at,
        reply_due_at=calendar.add_working_days(received_at, days), case_id=case.id if case else None,
        status="open")
    try:
        with session.begin_nested():
            session.add(ticket)
            session.flush()
    except IntegrityError:
        # Another delivery of the same ticket won the race: return its row.
        first = _existing(session, county, number)
        if first is None:
            raise
        return TicketOutcome(first, False, session.get(m.Case, first.case_id) if first.case_id else None)
    return TicketOutcome(ticket, True, case, duplicates)


def _load(session: Session, ticket_id: int) -> m.HotlineTicket:
    ticket = session.get(m.HotlineTicket, ticket_id)
    if ticket is None:
        raise NotFound(f"hotline ticket {ticket_id} does not exist")
    return ticket


def reply(session: Session, ticket_id: int, *, reply_text: str, at: datetime, actor: Actor) -> ReplyOutcome:
    """Record the answer given to the hotline centre, and whether it met the reply deadline."""
    text = require_text(reply_text, "reply_text", max_length=4000)
    require_aware(at, "at")
    ticket = _load(session, ticket_id)
    target = _step(ticket, "reply")
    require_role(actor.role, TICKET_ROLES, "reply to hotline tickets")
    if at < ticket.received_at:
        raise ValidationError(FieldError("at", "a reply cannot precede the ticket's receipt"))
    ticket.reply, ticket.replied_at, ticket.status = text, at, target
    session.flush()
    return ReplyOutcome(ticket, at <= ticket.reply_due_at)


def _finishing_case(session: Session, case_id: int) -> m.Case | None:
    """Return the case that finishes the matter: the case itself, or the one it was merged into."""
    case = session.get(m.Case, case_id)
    seen: set[int] = set()
    while case is not None and case.status == "merged" and case.merged_into_id and case.id not in seen:
        seen.add(case.id)
        case = session.get(m.Case, case.merged_into_id)
    return case


def close_ticket(session: Session, ticket_id: int, *, at: datetime, actor: Actor) -> m.HotlineTicket:
    """Close a replied ticket once its case is closed or evaluated (or cancelled as invalid), or it has none."""
    require_aware(at, "at")
    ticket = _load(session, ticket_id)
    target = _step(ticket, "close")
    require_role(actor.role, TICKET_ROLES, "close hotline tickets")
    if ticket.replied_at is not None and at < ticket.replied_at:
        raise ValidationError(FieldError("at", "a ticket cannot close before its reply"))
    if ticket.case_id is not None:
        case = _finishing_case(session, ticket.case_id)
        if case is not None and case.status not in FINISHED_CASE_STATUSES:
            raise Conflict(f"ticket {ticket.external_no} cannot close: its case {case.case_no} is {case.status}, "
                           f"and a ticket closes only when its case is {' or '.join(FINISHED_CASE_STATUSES)}",
                           case_id=case.id, case_status=case.status)
    ticket.status, ticket.closed_at = target, at
    session.flush()
    return ticket


def closure_rate(session: Session, county_code: str, start: datetime, end: datetime, *,
                 as_of: datetime | None = None) -> ClosureRate:
    """Return how many tickets received in [start, end) are closed (by ``as_of`` when given)."""
    require_aware(start, "start")
    require_aware(end, "end")
    if end <= start:
        raise ValidationError(FieldError("end", "must be after start"))
    t = m.HotlineTicket
    closed = t.status == "closed"
    if as_of is not None:
        closed = closed & (t.closed_at <= require_aware(as_of, "as_of"))
    total, done = session.execute(select(func.count(), func.count().filter(closed)).where(
        t.county_code == county_code, t.received_at >= start, t.received_at < end)).one()
    return ClosureRate(int(done), int(total), (done / total) if total else None)
