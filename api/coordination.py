"""County–township coordination over HTTP: requests, hazard notices and clue referrals.

Views parse the request, call the coordination service (``layers.coordination``), commit, and
serialise. What each side may see comes from that service (``visible_to``): an item outside it is
404, as if it did not exist. Which step a user may take, and from which state, is also the service's:
an illegal step is 409 and the problem document lists the steps allowed (``allowed``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, Float, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range
from flask import Response, current_app
from sqlalchemy.orm import Session

from api.auth import SECURITY, current_actor, require
from api.deps import get_calendar, get_session
from api.errors import PROBLEM_MIMETYPE
from gis_platform import models as m
from gis_platform import vocab
from gis_platform.errors import Conflict, NotFound, Problem
from gis_platform.workcalendar import WorkCalendar
from layers import coordination as co
from layers.cases import Actor

bp = APIBlueprint("coordination", __name__, url_prefix="/api/v1/coordination", tag="县乡联动 Coordination")

# Township-office staff are liaisons of a township_office agency; departments have liaisons; the
# bureau's side is the command centre. Which of them may take a given step is the service's decision.
ROLES = ("liaison", "supervisor", "operator", "admin")
ID = Range(1, 2**31 - 1)
CASE_ID = Range(1, 2**62)
REQUEST_ACTIONS = ("receive", "answer", "close")
REFERRAL_ACTIONS = ("accept", "mark_enforced", "feed_back", "close")
# Members of a platform error that clients may act on, sent as problem extension members (RFC 9457 §3.2).
PROBLEM_EXTENSIONS = ("allowed",)


# -- schemas -------------------------------------------------------------------------------------------
class RequestIn(Schema):
    kind = String(required=True, validate=OneOf(vocab.COORDINATION_KINDS),
                  metadata={"description": "determination 认定, appraisal 技术鉴定, advice 咨询意见, "
                                           "hazard_notice 重大隐患通报"})
    to_agency_id = Integer(strict=True, required=True, validate=ID,
                           metadata={"description": "a department or its team"})
    from_agency_id = Integer(strict=True, load_default=None, allow_none=True, validate=ID,
                             metadata={"description": "the sending township office; default: your own agency"})
    subject = String(required=True, validate=Length(1, 200))
    body = String(required=True, validate=Length(1, 20000))
    case_id = Integer(strict=True, load_default=None, allow_none=True, validate=CASE_ID)


class RequestStepIn(Schema):
    action = String(required=True, validate=OneOf(REQUEST_ACTIONS),
                    metadata={"description": "receive 签收, answer 书面反馈, close 办结"})
    answer_text = String(load_default=None, allow_none=True, validate=Length(0, 20000),
                         metadata={"description": "answer: the written answer (required)"})
    note = String(load_default=None, allow_none=True, validate=Length(0, 4000),
                  metadata={"description": "receive: a note kept with a hazard notice's acknowledgement"})


class ReferralIn(Schema):
    to_agency_id = Integer(strict=True, required=True, validate=ID,
                           metadata={"description": "the bureau, brigade or a squad"})
    from_agency_id = Integer(strict=True, load_default=None, allow_none=True, validate=ID,
                             metadata={"description": "the referring department or team; default: your own agency"})
    clue = String(required=True, validate=Length(1, 20000))
    case_id = Integer(strict=True, load_default=None, allow_none=True, validate=CASE_ID)


class PointIn(Schema):
    type = String(required=True, validate=OneOf(["Point"]))
    coordinates = List(Float(), required=True, validate=Length(2, 2),
                       metadata={"description": "[longitude, latitude], WGS-84"})


class ReferralStepIn(Schema):
    action = String(required=True, validate=OneOf(REFERRAL_ACTIONS),
                    metadata={"description": "accept 受理, mark_enforced 执法完毕, feed_back 反馈主管部门, close 办结"})
    category = String(load_default=None, allow_none=True, validate=Length(1, 32),
                      metadata={"description": "accept: open a case of this category (give geometry too)"})
    geometry = Nested(PointIn, load_default=None, allow_none=True,
                      metadata={"description": "accept: where the case is (give category too)"})
    urgency = String(load_default="normal", validate=OneOf(vocab.URGENCIES))
    address = String(load_default=None, allow_none=True, validate=Length(0, 500))
    case_id = Integer(strict=True, load_default=None, allow_none=True, validate=CASE_ID,
                      metadata={"description": "accept: link an existing case instead of opening one"})
    note = String(load_default=None, allow_none=True, validate=Length(0, 4000),
                  metadata={"description": "mark_enforced: what was enforced (required unless the linked "
                                           "case is closed)"})
    feedback_text = String(load_default=None, allow_none=True, validate=Length(0, 20000),
                           metadata={"description": "feed_back: the written result for the department (required)"})


class RequestQuery(Schema):
    status = String(load_default=None, validate=OneOf(vocab.COORDINATION_STATUSES))
    kind = String(load_default=None, validate=OneOf(vocab.COORDINATION_KINDS))
    overdue = Boolean(load_default=None)


class ReferralQuery(Schema):
    status = String(load_default=None, validate=OneOf(vocab.REFERRAL_STATUSES))
    overdue = Boolean(load_default=None)


class DeadlineOut(Schema):
    due_at = String(allow_none=True, metadata={"description": "end of office hours on the last working day"})
    remaining_hours = Float(allow_none=True, metadata={
        "description": "working hours left (negative when late); null once the addressee has responded"})
    overdue = Boolean(metadata={"description": "responded late, or still no response past the deadline"})


class RequestOut(DeadlineOut):
    id = Integer()
    kind = String()
    kind_label = String()
    status = String()
    status_label = String()
    from_agency_id = Integer()
    from_agency = String()
    to_agency_id = Integer()
    to_agency = String()
    subject = String()
    case_id = Integer(allow_none=True)
    sent_at = String()
    responded_at = String(allow_none=True, metadata={"description": "answered, or (a notice) received"})


class RequestDetailOut(RequestOut):
    body = String()
    answer = String(allow_none=True)
    answered_by = Integer(allow_none=True)
    allowed_steps = List(String(), metadata={"description": "steps the state allows next"})


class RequestsOut(Schema):
    count = Integer()
    items = List(Nested(RequestOut))


class ReferralOut(DeadlineOut):
    id = Integer()
    status = String()
    status_label = String()
    from_agency_id = Integer()
    from_agency = String()
    to_agency_id = Integer()
    to_agency = String()
    clue = String()
    case_id = Integer(allow_none=True)
    referred_at = String()
    enforced_at = String(allow_none=True)
    fed_back_at = String(allow_none=True)


class ReferralDetailOut(ReferralOut):
    feedback = String(allow_none=True)
    allowed_steps = List(String(), metadata={"description": "steps the state allows next"})


class ReferralsOut(Schema):
    count = Integer()
    items = List(Nested(ReferralOut))


# -- helpers --------------------------------------------------------------------------------------------
def _wire(values: dict[str, Any]) -> dict[str, Any]:
    """Return values fit for JSON: datetimes in UTC, ISO 8601."""
    return {k: v.astimezone(UTC).isoformat() if isinstance(v, datetime) else v for k, v in values.items()}


def _visible(db: Session, model: type[m.CoordinationRequest] | type[m.Referral], item_id: int, actor: Actor) -> Any:
    """Return the item if this actor may see it, else 404 (the other side's business is not disclosed)."""
    # The ids are PostgreSQL integers: a larger number names nothing (and would fail as a query).
    item = db.scalar(co.visible_to(db, actor, model).where(model.id == item_id)) if item_id <= ID.max else None
    if item is None:
        raise NotFound(f"{model.__tablename__.replace('_', ' ')} {item_id} does not exist")
    return item


def _remaining(item: Any, calendar: WorkCalendar) -> float | None:
    # The list rows' rule (layers.coordination.list_requests): hours left until the deadline, until answered.
    if item.due_at is None or co.responded_at(item) is not None:
        return None
    return round(calendar.working_hours_between(datetime.now(UTC), item.due_at), 2)


def _common(db: Session, item: Any) -> dict[str, Any]:
    return {"id": item.id, "status": item.status, "from_agency_id": item.from_agency_id,
            "from_agency": db.get(m.Agency, item.from_agency_id).name, "to_agency_id": item.to_agency_id,
            "to_agency": db.get(m.Agency, item.to_agency_id).name, "case_id": item.case_id,
            "due_at": item.due_at, "remaining_hours": _remaining(item, get_calendar()), "overdue": co.overdue(item),
            "allowed_steps": co.allowed_steps(co.steps_for(item), item.status)}


def request_json(db: Session, item: m.CoordinationRequest) -> dict[str, Any]:
    """Serialise one request or notice in full, with its deadline and the steps allowed next."""
    out = {**_common(db, item), "kind": item.kind, "kind_label": vocab.COORDINATION_KIND_LABELS[item.kind],
           "status_label": co.COORDINATION_STATUS_LABELS[item.status], "subject": item.subject, "body": item.body,
           "sent_at": item.sent_at, "responded_at": item.answered_at, "answer": item.answer,
           "answered_by": item.answered_by}
    return _wire(out)


def referral_json(db: Session, item: m.Referral) -> dict[str, Any]:
    """Serialise one referral in full, with its feedback deadline and the steps allowed next."""
    out = {**_common(db, item), "status_label": co.REFERRAL_STATUS_LABELS[item.status], "clue": item.clue,
           "referred_at": item.referred_at, "enforced_at": item.enforced_at, "fed_back_at": item.fed_back_at,
           "feedback": item.feedback}
    return _wire(out)


# Each step: the service function and the body fields it takes (the rest of the body is ignored).
Step = Callable[[Session, int, Actor, dict[str, Any]], Any]
REQUEST_STEPS: dict[str, Step] = {
    "receive": lambda db, i, actor, b: co.receive(db, i, actor=actor, note=b["note"]),
    "answer": lambda db, i, actor, b: co.answer(db, i, actor=actor, answer_text=b["answer_text"]),
    "close": lambda db, i, actor, b: co.close(db, i, actor=actor),
}
REFERRAL_STEPS: dict[str, Step] = {
    "accept": lambda db, i, actor, b: co.accept_referral(
        db, i, actor=actor, category=b["category"], geometry=b["geometry"], urgency=b["urgency"],
        address=b["address"], case_id=b["case_id"]),
    "mark_enforced": lambda db, i, actor, b: co.mark_enforced(db, i, actor=actor, note=b["note"]),
    "feed_back": lambda db, i, actor, b: co.feed_back(db, i, actor=actor, feedback_text=b["feedback_text"]),
    "close": lambda db, i, actor, b: co.close_referral(db, i, actor=actor),
}


@bp.errorhandler(Conflict)
def _conflict(error: Conflict) -> Response:
    """Render a conflict as problem+json, keeping what the client can act on (the steps allowed)."""
    body = Problem.from_error(error).to_dict()
    body.update({k: error.extra[k] for k in PROBLEM_EXTENSIONS if k in error.extra})
    return current_app.response_class(json.dumps(body, ensure_ascii=False), status=error.status,
                                      mimetype=PROBLEM_MIMETYPE)


# -- coordination requests and hazard notices -----------------------------------------------------------
@bp.get("/requests")
@require(*ROLES)
@bp.input(RequestQuery, location="query", arg_name="query")
@bp.output(RequestsOut)
@bp.doc(summary="Requests and hazard notices you sent or received, with deadlines (协作文书、隐患通报)",
        security=SECURITY)
def list_requests(query: dict) -> dict:
    rows = co.list_requests(get_session(), current_actor(), status=query["status"], kind=query["kind"],
                            overdue=query["overdue"], calendar=get_calendar())
    return {"count": len(rows), "items": [_wire(asdict(r)) for r in rows]}


@bp.post("/requests")
@require(*ROLES)
@bp.input(RequestIn, arg_name="body")
@bp.output(RequestDetailOut, status_code=201)
@bp.doc(summary="Send a coordination document or hazard notice to a county department", security=SECURITY,
        description="A township office's liaison sends; the department answers in writing within 3 working "
                    "days of receipt (a hazard notice is acknowledged within 1).",
        responses={400: "invalid input", 403: "your unit may not send this"})
def create_request(body: dict):
    db = get_session()
    actor = current_actor()
    item = co.send_request(db, from_agency_id=body["from_agency_id"] or actor.agency_id,
                           to_agency_id=body["to_agency_id"], kind=body["kind"], subject=body["subject"],
                           body=body["body"], case_id=body["case_id"], actor=actor, calendar=get_calendar())
    payload = request_json(db, item)
    db.commit()
    return payload, 201, {"Location": f"{bp.url_prefix}/requests/{item.id}"}


@bp.get("/requests/<int:request_id>")
@require(*ROLES)
@bp.output(RequestDetailOut)
@bp.doc(summary="One request or notice, with its text, answer and the steps allowed next", security=SECURITY)
def get_request(request_id: int) -> dict:
    db = get_session()
    return request_json(db, _visible(db, m.CoordinationRequest, request_id, current_actor()))


@bp.post("/requests/<int:request_id>/steps")
@require(*ROLES)
@bp.input(RequestStepIn, arg_name="body")
@bp.output(RequestDetailOut)
@bp.doc(summary="Take a step on a request or notice: receive (签收), answer (书面反馈), close (办结)",
        security=SECURITY, responses={403: "role or side not allowed", 409: "step not allowed from this state"})
def request_step(request_id: int, body: dict) -> dict:
    db = get_session()
    actor = current_actor()
    _visible(db, m.CoordinationRequest, request_id, actor)
    item = REQUEST_STEPS[body["action"]](db, request_id, actor, body)
    payload = request_json(db, item)
    db.commit()
    return payload


# -- clue referrals ---------------------------------------------------------------------------------------
@bp.get("/referrals")
@require(*ROLES)
@bp.input(ReferralQuery, location="query", arg_name="query")
@bp.output(ReferralsOut)
@bp.doc(summary="Clue referrals you made or received, with feedback deadlines (线索移交)", security=SECURITY)
def list_referrals(query: dict) -> dict:
    rows = co.list_referrals(get_session(), current_actor(), status=query["status"], overdue=query["overdue"],
                             calendar=get_calendar())
    return {"count": len(rows), "items": [_wire(asdict(r)) for r in rows]}


@bp.post("/referrals")
@require(*ROLES)
@bp.input(ReferralIn, arg_name="body")
@bp.output(ReferralDetailOut, status_code=201)
@bp.doc(summary="Refer a clue from a department's supervision to the bureau or a squad", security=SECURITY,
        responses={400: "invalid input", 403: "your unit may not refer"})
def create_referral(body: dict):
    db = get_session()
    actor = current_actor()
    item = co.refer_clue(db, from_agency_id=body["from_agency_id"] or actor.agency_id,
                         to_agency_id=body["to_agency_id"], clue=body["clue"], case_id=body["case_id"], actor=actor,
                         calendar=get_calendar())
    payload = referral_json(db, item)
    db.commit()
    return payload, 201, {"Location": f"{bp.url_prefix}/referrals/{item.id}"}


@bp.get("/referrals/<int:referral_id>")
@require(*ROLES)
@bp.output(ReferralDetailOut)
@bp.doc(summary="One referral, with its feedback and the steps allowed next", security=SECURITY)
def get_referral(referral_id: int) -> dict:
    db = get_session()
    return referral_json(db, _visible(db, m.Referral, referral_id, current_actor()))


@bp.post("/referrals/<int:referral_id>/steps")
@require(*ROLES)
@bp.input(ReferralStepIn, arg_name="body")
@bp.output(ReferralDetailOut)
@bp.doc(summary="Take a step on a referral: accept (受理, optionally opening a case), mark_enforced, "
                "feed_back, close", security=SECURITY,
        responses={400: "invalid input", 403: "role or side not allowed", 409: "step not allowed from this state"})
def referral_step(referral_id: int, body: dict) -> dict:
    db = get_session()
    actor = current_actor()
    _visible(db, m.Referral, referral_id, actor)
    item = REFERRAL_STEPS[body["action"]](db, referral_id, actor, body)
    payload = referral_json(db, item)
    db.commit()
    return payload
