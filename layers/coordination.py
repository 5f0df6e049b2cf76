"""County–township coordination (县乡联动): coordination requests, hazard notices and clue referrals.

Three kinds of paper travel between units, each with its own states and deadline, all visible to both
sides:

- **Coordination request** (执法协作文书; kinds ``determination`` 认定, ``appraisal`` 技术鉴定, ``advice``
  咨询意见): a township enforcement office asks a county department, which must answer in writing within
  3 working days of receipt (the seed report's rule). States: sent → received → answered → closed, or
  sent → answered directly. Answering late is allowed and flagged (``overdue``).
- **Hazard notice** (``hazard_notice`` 重大隐患通报): a township office tells a county department of a major
  hazard. States: sent → received → closed. The department acknowledges within
  ``HAZARD_ACK_WORKING_DAYS`` (*inferred*: the seed sets no limit). The coordination table has no
  column for the time of receipt, so a notice's acknowledgement is kept in ``answered_at`` /
  ``answered_by`` (with any note in ``answer``): for a notice the receipt *is* the reply.
- **Clue referral** (线索移交): a department (or its team) finds a clue in its routine supervision and
  refers it to the bureau (or a squad), which enforces and feeds back. States: referred → accepted →
  enforced → fed_back → closed. Feedback is due within ``REFERRAL_FEEDBACK_WORKING_DAYS``
  (*inferred*). Accepting may open a case (source ``referral``) through the case service.

Steps, states and who may take them are data (like ``gis_platform.workflow``); an illegal step is a
``Conflict`` that lists the steps allowed. Deadlines are whole working days on the official calendar
(holidays and make-up days, 调休): the end of office hours on the n-th working day after the day sent.

Who acts for whom: a user acts for their own agency, its parent, and every unit below it. So a
department's liaison and its team's liaison both see what is sent to either; the bureau's command
centre sees referrals to any squad; a squad sees referrals addressed to that squad only. Admins and
supervisors see everything in their county (``SEE_ALL_ROLES``).

Every function takes the caller's session, flushes, and never commits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, false, or_, select, text
from sqlalchemy.orm import Session, aliased

from gis_platform import models as m
from gis_platform import vocab
from gis_platform.errors import Conflict, FieldError, Forbidden, NotFound, ValidationError
from gis_platform.workcalendar import UnknownCalendarYear, WorkCalendar
from layers.cases import CALENDAR, Actor, report_case

log = logging.getLogger(__name__)

DOCUMENT_KINDS = ("determination", "appraisal", "advice")
# The seed: "县级业务主管部门自收到执法协作文书后3个工作日内书面反馈".
ANSWER_WORKING_DAYS = 3
# Inferred: the seed says townships report major hazards "及时" (promptly) and sets no limit.
HAZARD_ACK_WORKING_DAYS = 1
# Inferred: the seed describes the referral loop but sets no time limit for the feedback.
REFERRAL_FEEDBACK_WORKING_DAYS = 10

DEADLINE_WORKING_DAYS = {kind: ANSWER_WORKING_DAYS for kind in DOCUMENT_KINDS} | {
    "hazard_notice": HAZARD_ACK_WORKING_DAYS}

SEE_ALL_ROLES = ("admin", "supervisor")

COORDINATION_STATUS_LABELS = {"sent": "已发送", "received": "已签收", "answered": "已书面反馈", "closed": "已办结"}
REFERRAL_STATUS_LABELS = {"referred": "已移交", "accepted": "已受理", "enforced": "已执法", "fed_back": "已反馈",
                          "closed": "已办结"}

SENDER_AGENCY_KINDS = {"request": ("township_office",), "referral": ("department", "dept_team")}
ADDRESSEE_AGENCY_KINDS = {"request": ("department", "dept_team"), "referral": ("bureau", "brigade", "squad")}


@dataclass(frozen=True)
class Step:
    """One allowed step: name, label, source states, target state, which side takes it, and roles."""

    name: str
    label: str
    sources: tuple[str, ...]
    target: str
    side: str  # "sender" or "addressee"
    roles: tuple[str, ...]


DOCUMENT_STEPS: tuple[Step, ...] = (
    Step("send", "发送协作文书", (), "sent", "sender", ("liaison", "admin")),
    Step("receive", "签收", ("sent",), "received", "addressee", ("liaison", "admin")),
    Step("answer", "书面反馈", ("sent", "received"), "answered", "addressee", ("liaison", "admin")),
    Step("close", "办结", ("answered",), "closed", "sender", ("liaison", "admin")),
)
HAZARD_STEPS: tuple[Step, ...] = (
    Step("send", "通报重大隐患", (), "sent", "sender", ("liaison", "admin")),
    Step("receive", "签收", ("sent",), "received", "addressee", ("liaison", "admin")),
    Step("close", "办结", ("received",), "closed", "sender", ("liaison", "admin")),
)
REFERRAL_STEPS: tuple[Step, ...] = (
    Step("refer", "移交线索", (), "referred", "sender", ("liaison", "admin")),
    Step("accept", "受理", ("referred",), "accepted", "addressee", ("operator", "supervisor", "admin")),
    Step("mark_enforced", "执法完毕", ("accepted",), "enforced", "addressee",
         ("operator", "supervisor", "patroller", "admin")),
    Step("feed_back", "反馈主管部门", ("enforced",), "fed_back", "addressee", ("operator", "supervisor", "admin")),
    Step("close", "办结", ("fed_back",), "closed", "sender", ("liaison", "admin")),
)


@dataclass(frozen=True)
class RequestRow:
    """A coordination request or hazard notice as both sides list it, with its deadline."""

    id: int
    kind: str
    kind_label: str
    status: str
    status_label: str
    from_agency_id: int
    from_agency: str
    to_agency_id: int
    to_agency: str
    subject: str
    case_id: int | None
    sent_at: datetime
    due_at: datetime | None
    responded_at: datetime | None
    remaining_hours: float | None
    overdue: bool


@dataclass(frozen=True)
class ReferralRow:
    """A clue referral as both sides list it, with its feedback deadline."""

    id: int
    status: str
    status_label: str
    from_agency_id: int
    from_agency: str
    to_agency_id: int
    to_agency: str
    clue: str
    case_id: int | None
    referred_at: datetime
    due_at: datetime | None
    enforced_at: datetime | None
    fed_back_at: datetime | None
    remaining_hours: float | None
    overdue: bool


def steps_for(item: m.CoordinationRequest | m.Referral) -> tuple[Step, ...]:
    """Return the state machine that governs a request, a notice or a referral."""
    if isinstance(item, m.Referral):
        return REFERRAL_STEPS
    return HAZARD_STEPS if item.kind == "hazard_notice" else DOCUMENT_STEPS


def allowed_steps(steps: Sequence[Step], status: str) -> list[str]:
    """Return the steps that may be taken from a status."""
    return [s.name for s in steps if status in s.sources]


def _transition(steps: Sequence[Step], status: str, name: str) -> Step:
    step = next((s for s in steps if s.name == name), None)
    if step is None or status not in step.sources:
        allowed = allowed_steps(steps, status)
        raise Conflict(f"step {name!r} is not allowed from status {status!r}; allowed: {', '.join(allowed) or 'none'}",
                       allowed=allowed)
    return step


def _when(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    if at.tzinfo is None:
        raise ValidationError(FieldError("at", "must carry a time zone (ISO 8601 with offset)"))
    return at


def _text(name: str, value: str | None, limit: int) -> str:
    value = (value or "").strip()
    if not value:
        raise ValidationError(FieldError(name, "must not be empty"))
    if len(value) > limit:
        raise ValidationError(FieldError(name, f"at most {limit:,} characters"))
    return value


def _scope(session: Session, agency_id: int | None) -> set[int]:
    """Return the agencies a member of this agency acts for: itself, its parent and all units below."""
    if agency_id is None:
        return set()
    rows = session.execute(text("""
        WITH RECURSIVE below(id) AS (
            SELECT id FROM agency WHERE id = :a
            UNION SELECT a.id FROM agency a JOIN below b ON a.parent_id = b.id)
        SELECT id FROM below
        UNION SELECT parent_id FROM agency WHERE id = :a AND parent_id IS NOT NULL"""), {"a": agency_id}).scalars()
    return set(rows)


def _actor_county(session: Session, actor: Actor) -> str | None:
    if actor.agency_id is not None:
        return session.scalar(select(m.Agency.county_code).where(m.Agency.id == actor.agency_id))
    if actor.user_id is not None:
        return session.scalar(select(m.User.county_code).where(m.User.id == actor.user_id))
    return None


def _check(session: Session, step: Step, actor: Actor, item: m.CoordinationRequest | m.Referral) -> None:
    """Refuse a step to the wrong role, or to someone outside the side that takes it."""
    if actor.role not in step.roles:
        raise Forbidden(f"the {actor.role} role may not {step.label} ({step.name}); allowed: {', '.join(step.roles)}")
    if actor.role == "admin":
        county = _actor_county(session, actor)
        if county is not None and county != item.county_code:
            raise Forbidden("this item belongs to another county")
        return
    agency = item.from_agency_id if step.side == "sender" else item.to_agency_id
    if agency not in _scope(session, actor.agency_id):
        side = "sending" if step.side == "sender" else "addressed"
        raise Forbidden(f"only the {side} unit may {step.label} ({step.name})")


def _agency(session: Session, agency_id: int, field: str, kinds: tuple[str, ...]) -> m.Agency:
    agency = session.get(m.Agency, agency_id)
    if agency is None:
        raise ValidationError(FieldError(field, f"unknown agency {agency_id}"))
    if agency.kind not in kinds:
        raise ValidationError(FieldError(field, f"must be a {' or '.join(kinds)}, not a {agency.kind}"))
    return agency


def _parties(session: Session, what: str, from_agency_id: int, to_agency_id: int) -> tuple[m.Agency, m.Agency]:
    sender = _agency(session, from_agency_id, "from_agency_id", SENDER_AGENCY_KINDS[what])
    addressee = _agency(session, to_agency_id, "to_agency_id", ADDRESSEE_AGENCY_KINDS[what])
    if sender.county_code != addressee.county_code:
        raise ValidationError(FieldError("to_agency_id", "the addressed agency is in another county"))
    return sender, addressee


def _case_in(session: Session, case_id: int | None, county: str) -> None:
    if case_id is None:
        return
    found = session.scalar(select(m.Case.county_code).where(m.Case.id == case_id))
    if found != county:
        raise ValidationError(FieldError("case_id", f"case {case_id} does not exist"))


def _load(session: Session, model: type[m.CoordinationRequest] | type[m.Referral], item_id: int) -> Any:
    # Lock the row: two people taking a step on one item at once are serialised, and the second
    # then sees the new status and gets a Conflict instead of overwriting the first.
    item = session.scalar(select(model).where(model.id == item_id).with_for_update()
                          .execution_options(populate_existing=True))
    if item is None:
        raise NotFound(f"{model.__tablename__.replace('_', ' ')} {item_id} does not exist")
    return item


def responded_at(item: m.CoordinationRequest | m.Referral) -> datetime | None:
    """Return when the addressee met the deadline's obligation (answer, acknowledgement or feedback)."""
    return item.fed_back_at if isinstance(item, m.Referral) else item.answered_at


def overdue(item: m.CoordinationRequest | m.Referral, now: datetime | None = None) -> bool:
    """Return whether the response came after the deadline, or is still missing past it."""
    if item.due_at is None:
        return False
    done = responded_at(item)
    return (done if done is not None else _when(now)) > item.due_at


# -- coordination requests and hazard notices --------------------------------------------------

def send_request(session: Session, *, from_agency_id: int, to_agency_id: int, kind: str, subject: str, body: str,
                 actor: Actor, case_id: int | None = None, at: datetime | None = None,
                 calendar: WorkCalendar = CALENDAR) -> m.CoordinationRequest:
    """Send a coordination document or hazard notice from a township office to a county department."""
    if kind not in vocab.COORDINATION_KINDS:
        raise ValidationError(FieldError("kind", f"must be one of {', '.join(vocab.COORDINATION_KINDS)}"))
    at = _when(at)
    sender, _ = _parties(session, "request", from_agency_id, to_agency_id)
    subject, body = _text("subject", subject, 200), _text("body", body, 20000)
    _case_in(session, case_id, sender.county_code)
    request = m.CoordinationRequest(
        county_code=sender.county_code, kind=kind, from_agency_id=from_agency_id, to_agency_id=to_agency_id,
        case_id=case_id, subject=subject, body=body, status="sent", sent_at=at,
        due_at=deadline_days(calendar, at, DEADLINE_WORKING_DAYS[kind]))
    _check(session, steps_for(request)[0], actor, request)
    session.add(request)
    session.flush()
    return request


def send_hazard_notice(session: Session, *, from_agency_id: int, to_agency_id: int, subject: str, body: str,
                       actor: Actor, case_id: int | None = None, at: datetime | None = None,
                       calendar: WorkCalendar = CALENDAR) -> m.CoordinationRequest:
    """Notify a county department of a major hazard found by a township office."""
    return send_request(session, from_agency_id=from_agency_id, to_agency_id=to_agency_id, kind="hazard_notice",
                        subject=subject, body=body, actor=actor, case_id=case_id, at=at, calendar=calendar)


def _step(session: Session, item: Any, name: str, actor: Actor) -> Step:
    step = _transition(steps_for(item), item.status, name)
    _check(session, step, actor, item)
    return step


def receive(session: Session, request_id: int, *, actor: Actor, note: str | None = None,
            at: datetime | None = None) -> m.CoordinationRequest:
    """Acknowledge receipt on the department's side; for a hazard notice this meets its deadline."""
    at = _when(at)
    request = _load(session, m.CoordinationRequest, request_id)
    step = _step(session, request, "receive", actor)
    if request.kind == "hazard_notice":
        request.answered_at, request.answered_by = at, actor.user_id
        request.answer = (note or "").strip() or None
    request.status = step.target
    session.flush()
    return request


def answer(session: Session, request_id: int, *, answer_text: str, actor: Actor,
           at: datetime | None = None) -> m.CoordinationRequest:
    """Answer a coordination document in writing; a late answer is accepted and flagged overdue."""
    at = _when(at)
    request = _load(session, m.CoordinationRequest, request_id)
    step = _step(session, request, "answer", actor)
    request.answer = _text("answer_text", answer_text, 20000)
    request.answered_at, request.answered_by = at, actor.user_id
    request.status = step.target
    if overdue(request):
        log.info("coordination request %s answered after its deadline %s", request.id, request.due_at.isoformat())
    session.flush()
    return request


def close(session: Session, request_id: int, *, actor: Actor, at: datetime | None = None) -> m.CoordinationRequest:
    """Close a request or notice on the township's side once it has its answer or receipt."""
    _when(at)
    request = _load(session, m.CoordinationRequest, request_id)
    step = _step(session, request, "close", actor)
    request.status = step.target
    session.flush()
    return request


# -- clue referrals -----------------------------------------------------------------------------

def refer_clue(session: Session, *, from_agency_id: int, to_agency_id: int, clue: str, actor: Actor,
               case_id: int | None = None, at: datetime | None = None,
               calendar: WorkCalendar = CALENDAR) -> m.Referral:
    """Refer a clue found by a department's supervision to the bureau or a squad for enforcement."""
    at = _when(at)
    sender, _ = _parties(session, "referral", from_agency_id, to_agency_id)
    clue = _text("clue", clue, 20000)
    _case_in(session, case_id, sender.county_code)
    referral = m.Referral(county_code=sender.county_code, from_agency_id=from_agency_id, to_agency_id=to_agency_id,
                          case_id=case_id, clue=clue, status="referred", referred_at=at,
                          due_at=deadline_days(calendar, at, REFERRAL_FEEDBACK_WORKING_DAYS))
    _check(session, REFERRAL_STEPS[0], actor, referral)
    session.add(referral)
    session.flush()
    return referral


def accept_referral(session: Session, referral_id: int, *, actor: Actor, category: str | None = None,
                    geometry: Any = None, urgency: str = "normal", address: str | None = None,
                    case_id: int | None = None, at: datetime | None = None) -> m.Referral:
    """Accept a referral on the bureau's side; with a category and geometry, open a case for it.

    The case is reported through the case service (source ``referral``), so it is routed and then
    follows the closed loop like any other.
    """
    at = _when(at)
    referral = _load(session, m.Referral, referral_id)
    step = _step(session, referral, "accept", actor)
    if (category is None) != (geometry is None):
        raise ValidationError(FieldError("category" if category is None else "geometry",
                                         "give both a category and a geometry to open a case"))
    if (category is not None or case_id is not None) and referral.case_id is not None:
        raise Conflict(f"referral {referral.id} is already linked to case {referral.case_id}")
    if category is not None and case_id is not None:
        raise ValidationError(FieldError("case_id", "either open a case or link an existing one, not both"))
    if case_id is not None:
        _case_in(session, case_id, referral.county_code)
        referral.case_id = case_id
    elif category is not None:
        outcome = report_case(session, referral.county_code, category=category, geometry=geometry,
                              source="referral", reporter=actor, urgency=urgency, address=address,
                              description=referral.clue[:4000], reported_at=at)
        referral.case_id = outcome.case.id
    referral.status = step.target
    session.flush()
    return referral


def mark_enforced(session: Session, referral_id: int, *, actor: Actor, note: str | None = None,
                  at: datetime | None = None) -> m.Referral:
    """Record that the bureau has enforced: when the linked case is closed, or on the bureau's note.

    With a closed linked case the enforcement time is the case's close. Otherwise a note must say
    what was done; the referral table has no column of its own for it, so it opens the feedback text.
    """
    at = _when(at)
    referral = _load(session, m.Referral, referral_id)
    step = _step(session, referral, "mark_enforced", actor)
    case = session.get(m.Case, referral.case_id) if referral.case_id is not None else None
    if case is not None and case.status in ("closed", "evaluated") and case.closed_at is not None:
        referral.enforced_at = case.closed_at
    else:
        why = "the linked case is not closed yet" if case is not None else "no case is linked"
        if not (note or "").strip():
            raise ValidationError(FieldError("note", f"{why}: say what was enforced"))
        referral.feedback = f"执法情况：{_text('note', note, 4000)}"
        referral.enforced_at = at
    referral.status = step.target
    session.flush()
    return referral


def feed_back(session: Session, referral_id: int, *, feedback_text: str, actor: Actor,
              at: datetime | None = None) -> m.Referral:
    """Feed the enforcement result back to the referring department in writing."""
    at = _when(at)
    referral = _load(session, m.Referral, referral_id)
    step = _step(session, referral, "feed_back", actor)
    written = _text("feedback_text", feedback_text, 20000)
    referral.feedback = f"{referral.feedback}\n{written}" if referral.feedback else written
    referral.fed_back_at = at
    referral.status = step.target
    session.flush()
    return referral


def close_referral(session: Session, referral_id: int, *, actor: Actor, at: datetime | None = None) -> m.Referral:
    """Close a referral on the department's side once the feedback has arrived."""
    _when(at)
    referral = _load(session, m.Referral, referral_id)
    step = _step(session, referral, "close", actor)
    referral.status = step.target
    session.flush()
    return referral


# -- what each side sees --------------------------------------------------------------------------

def visible_to(session: Session, actor: Actor,
               model: type[m.CoordinationRequest] | type[m.Referral] = m.CoordinationRequest) -> Select[Any]:
    """Return a query of the requests (or referrals) this actor may see: sent by or to their units."""
    query = select(model)
    if actor.role in SEE_ALL_ROLES:
        county = _actor_county(session, actor)
        return query if county is None else query.where(model.county_code == county)
    scope = _scope(session, actor.agency_id)
    if not scope:
        return query.where(false())
    return query.where(or_(model.from_agency_id.in_(scope), model.to_agency_id.in_(scope)))


def _remaining(item: Any, now: datetime, calendar: WorkCalendar) -> float | None:
    if item.due_at is None or responded_at(item) is not None:
        return None
    try:
        return round(calendar.working_hours_between(now, item.due_at), 2)
    except UnknownCalendarYear:
        return None  # the year's official schedule is not configured: the remaining time is unknown


def deadline_days(calendar: WorkCalendar, at: datetime, days: int) -> datetime | None:
    """Return the deadline n working days on, or None when that year's official calendar is unknown.

    Never a weekends-only guess: an unknown deadline stays open until GIS_CALENDAR_FILE gives the year.
    """
    try:
        return calendar.add_working_days(at, days)
    except UnknownCalendarYear:
        return None


def list_requests(session: Session, actor: Actor, *, status: str | None = None, overdue: bool | None = None,
                  kind: str | None = None, now: datetime | None = None,
                  calendar: WorkCalendar = CALENDAR) -> list[RequestRow]:
    """List the requests and notices the actor may see, with deadline, working hours left and overdue flag."""
    now = _when(now)
    sender, addressee = aliased(m.Agency), aliased(m.Agency)
    item = m.CoordinationRequest
    stmt = (visible_to(session, actor).add_columns(sender.name, addressee.name)
            .join(sender, sender.id == item.from_agency_id).join(addressee, addressee.id == item.to_agency_id)
            .order_by(item.sent_at.desc(), item.id.desc()))
    if status is not None:
        stmt = stmt.where(item.status == status)
    if kind is not None:
        stmt = stmt.where(item.kind == kind)
    rows = []
    for r, from_name, to_name in session.execute(stmt).all():
        late = _is_overdue(r, now)
        if overdue is not None and late != overdue:
            continue
        rows.append(RequestRow(
            id=r.id, kind=r.kind, kind_label=vocab.COORDINATION_KIND_LABELS[r.kind], status=r.status,
            status_label=COORDINATION_STATUS_LABELS[r.status], from_agency_id=r.from_agency_id, from_agency=from_name,
            to_agency_id=r.to_agency_id, to_agency=to_name, subject=r.subject, case_id=r.case_id, sent_at=r.sent_at,
            due_at=r.due_at, responded_at=r.answered_at, remaining_hours=_remaining(r, now, calendar), overdue=late))
    return rows


def list_referrals(session: Session, actor: Actor, *, status: str | None = None, overdue: bool | None = None,
                   now: datetime | None = None, calendar: WorkCalendar = CALENDAR) -> list[ReferralRow]:
    """List the referrals the actor may see, with feedback deadline, working hours left and overdue flag."""
    now = _when(now)
    sender, addressee = aliased(m.Agency), aliased(m.Agency)
    item = m.Referral
    stmt = (visible_to(session, actor, item).add_columns(sender.name, addressee.name)
            .join(sender, sender.id == item.from_agency_id).join(addressee, addressee.id == item.to_agency_id)
            .order_by(item.referred_at.desc(), item.id.desc()))
    if status is not None:
        stmt = stmt.where(item.status == status)
    rows = []
    for r, from_name, to_name in session.execute(stmt).all():
        late = _is_overdue(r, now)
        if overdue is not None and late != overdue:
            continue
        rows.append(ReferralRow(
            id=r.id, status=r.status, status_label=REFERRAL_STATUS_LABELS[r.status], from_agency_id=r.from_agency_id,
            from_agency=from_name, to_agency_id=r.to_agency_id, to_agency=to_name, clue=r.clue, case_id=r.case_id,
            referred_at=r.referred_at, due_at=r.due_at, enforced_at=r.enforced_at, fed_back_at=r.fed_back_at,
            remaining_hours=_remaining(r, now, calendar), overdue=late))
    return rows


# The keyword ``overdue`` of the list functions shadows the module function inside them.
_is_overdue = overdue
