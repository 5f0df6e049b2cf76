"""County–township coordination over HTTP: requests, hazard notices and referrals on a committed mini county."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from werkzeug.security import generate_password_hash

from gis_platform import models as m
from tests.api.conftest import PASSWORD
from tests.factories import add_coordination_parties

BASE = "/api/v1/coordination"
WEST = [115.72, 36.02]
PROBLEM = "application/problem+json"


@pytest.fixture(scope="session")
def coord_world(api_world):
    """The API world with township-office liaisons ow/oe, department liaison ld and another department's lnr."""
    with api_world.database.sessions() as session, session.begin():
        add_coordination_parties(session, api_world.county)
        session.execute(update(m.User).where(m.User.county_code == api_world.county.code,
                                             m.User.username.in_(("ow", "oe", "ld", "lnr")))
                        .values(password_hash=generate_password_hash(PASSWORD)))
    return api_world


@pytest.fixture(scope="module")
def tokens(coord_world):
    """Sign each user in once for this module."""
    return {u: coord_world.token(u) for u in ("ow", "oe", "li", "ld", "lnr", "op", "sup1", "ad", "pw", "pl")}


def call(world, tokens, who, method, path, body=None, **params):
    send = getattr(world.client(), method)
    kwargs = {"json": body} if body is not None else {}
    return send(f"{BASE}{path}", headers=tokens[who], query_string=params, **kwargs)


def send_request(world, tokens, who="ow", office="office_west", to="dept", kind="determination"):
    r = call(world, tokens, who, "post", "/requests", {
        "kind": kind, "to_agency_id": world.county.agencies[to], "from_agency_id": world.county.agencies[office],
        "subject": "无照经营认定", "body": "请认定该店铺是否取得营业执照。"})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def refer(world, tokens, to="bureau"):
    r = call(world, tokens, "li", "post", "/referrals",
             {"to_agency_id": world.county.agencies[to], "clue": "日常检查发现某餐馆占道经营，移交综合执法局查处。"})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def step(world, tokens, who, what, item, action, **body):
    return call(world, tokens, who, "post", f"/{what}/{item['id']}/steps", {"action": action, **body})


def ids(response):
    assert response.status_code == 200, response.get_json()
    return {row["id"] for row in response.get_json()["items"]}


def fields(response):
    assert response.status_code == 400 and response.mimetype == PROBLEM, response.get_json()
    return {e["field"] for e in response.get_json()["errors"]}


def test_request_lifecycle_over_http(coord_world, tokens):
    w = coord_world
    req = send_request(w, tokens)
    assert (req["status"], req["kind_label"], req["from_agency"], req["to_agency"]) == (
        "sent", "认定", "west镇执法办", "市场监管局")
    assert req["due_at"] and req["remaining_hours"] > 0 and req["overdue"] is False
    assert req["allowed_steps"] == ["receive", "answer"] and req["responded_at"] is None
    for side in ("ow", "li", "ld"):
        [row] = [r for r in call(w, tokens, side, "get", "/requests").get_json()["items"] if r["id"] == req["id"]]
        assert (row["due_at"], row["overdue"]) == (req["due_at"], False) and row["remaining_hours"] > 0
        assert "body" not in row
    r = step(w, tokens, "li", "requests", req, "receive")
    assert r.status_code == 200 and r.get_json()["status"] == "received"
    r = step(w, tokens, "li", "requests", req, "answer", answer_text="经核查，该店铺未取得营业执照。")
    answered = r.get_json()
    assert r.status_code == 200 and answered["status"] == "answered" and answered["responded_at"]
    assert answered["remaining_hours"] is None and answered["answer"] == "经核查，该店铺未取得营业执照。"
    li = w.client().get("/api/v1/auth/me", headers=tokens["li"]).get_json()["id"]
    assert answered["answered_by"] == li and answered["allowed_steps"] == ["close"]
    r = step(w, tokens, "ow", "requests", req, "close")
    assert r.status_code == 200 and r.get_json()["status_label"] == "已办结"
    detail = call(w, tokens, "ow", "get", f"/requests/{req['id']}").get_json()
    assert detail["body"] == "请认定该店铺是否取得营业执照。" and detail["allowed_steps"] == []
    assert req["id"] in ids(call(w, tokens, "ld", "get", "/requests", status="closed", kind="determination"))


def test_hazard_notice_lifecycle_over_http(coord_world, tokens):
    w = coord_world
    notice = send_request(w, tokens, who="oe", office="office_east", to="team", kind="hazard_notice")
    assert notice["kind_label"] == "重大隐患通报" and notice["allowed_steps"] == ["receive"]
    r = step(w, tokens, "ld", "requests", notice, "receive", note="已收悉，联合执法")
    acked = r.get_json()
    assert r.status_code == 200 and acked["status"] == "received" and acked["answer"] == "已收悉，联合执法"
    assert acked["responded_at"] and acked["remaining_hours"] is None and acked["overdue"] is False
    r = step(w, tokens, "oe", "requests", notice, "close")
    assert r.status_code == 200 and r.get_json()["status"] == "closed"
    assert notice["id"] in ids(call(w, tokens, "li", "get", "/requests", kind="hazard_notice"))


def test_referral_lifecycle_over_http_opening_a_case(coord_world, tokens):
    w = coord_world
    ref = refer(w, tokens)
    assert (ref["status"], ref["from_agency"], ref["to_agency"]) == ("referred", "市场监管执法大队", "执法局")
    assert ref["due_at"] and ref["overdue"] is False and ref["allowed_steps"] == ["accept"]
    for side in ("li", "ld", "op"):
        assert ref["id"] in ids(call(w, tokens, side, "get", "/referrals"))
    r = step(w, tokens, "op", "referrals", ref, "accept", category="TD02",
             geometry={"type": "Point", "coordinates": WEST}, address="west镇某餐馆")
    accepted = r.get_json()
    assert r.status_code == 200 and accepted["status"] == "accepted" and accepted["case_id"]
    case = w.client().get(f"/api/v1/cases/{accepted['case_id']}", headers=tokens["op"]).get_json()
    assert (case["source"], case["assigned"]["code"]) == ("referral", "SQ-west")
    assert fields(step(w, tokens, "op", "referrals", ref, "mark_enforced")) == {"note"}  # the case is still open
    r = step(w, tokens, "op", "referrals", ref, "mark_enforced", note="已责令整改并处罚款")
    assert r.status_code == 200 and r.get_json()["enforced_at"]
    r = step(w, tokens, "sup1", "referrals", ref, "feed_back", feedback_text="已依法查处，详见处罚决定书。")
    fed = r.get_json()
    assert r.status_code == 200 and fed["status"] == "fed_back" and fed["remaining_hours"] is None
    assert fed["feedback"].endswith("已依法查处，详见处罚决定书。")
    r = step(w, tokens, "li", "referrals", ref, "close")
    assert r.status_code == 200 and r.get_json()["status"] == "closed"
    assert ref["id"] in ids(call(w, tokens, "ld", "get", "/referrals", status="closed"))


def test_referral_accepted_without_a_case(coord_world, tokens):
    w = coord_world
    ref = refer(w, tokens, to="squad_east")
    r = step(w, tokens, "op", "referrals", ref, "accept")
    assert r.status_code == 200 and r.get_json()["case_id"] is None


def test_the_other_department_sees_nothing(coord_world, tokens):
    w = coord_world
    req, ref = send_request(w, tokens), refer(w, tokens)
    assert call(w, tokens, "lnr", "get", "/requests").get_json() == {"count": 0, "items": []}
    assert call(w, tokens, "lnr", "get", "/referrals").get_json() == {"count": 0, "items": []}
    for what, item in (("requests", req), ("referrals", ref)):
        assert call(w, tokens, "lnr", "get", f"/{what}/{item['id']}").status_code == 404
    assert step(w, tokens, "lnr", "requests", req, "answer", answer_text="x").status_code == 404
    assert step(w, tokens, "lnr", "referrals", ref, "close").status_code == 404
    # Neither township office sees the other's paper, nor the referrals between department and bureau.
    assert req["id"] not in ids(call(w, tokens, "oe", "get", "/requests"))
    assert call(w, tokens, "oe", "get", f"/requests/{req['id']}").status_code == 404
    assert ref["id"] not in ids(call(w, tokens, "ow", "get", "/referrals"))
    # Supervisors and admins see all of their county.
    for who in ("sup1", "ad"):
        assert req["id"] in ids(call(w, tokens, who, "get", "/requests"))
        assert ref["id"] in ids(call(w, tokens, who, "get", "/referrals"))


def test_illegal_steps_are_409_with_the_allowed_list(coord_world, tokens):
    w = coord_world
    req = send_request(w, tokens)
    r = step(w, tokens, "ow", "requests", req, "close")
    assert r.status_code == 409 and r.mimetype == PROBLEM
    assert r.get_json()["allowed"] == ["receive", "answer"] and "allowed: receive, answer" in r.get_json()["detail"]
    notice = send_request(w, tokens, kind="hazard_notice")
    r = step(w, tokens, "li", "requests", notice, "answer", answer_text="x")
    assert r.status_code == 409 and r.get_json()["allowed"] == ["receive"]
    ref = refer(w, tokens)
    r = step(w, tokens, "op", "referrals", ref, "feed_back", feedback_text="x")
    assert r.status_code == 409 and r.get_json()["allowed"] == ["accept"]
    assert step(w, tokens, "op", "referrals", ref, "accept").status_code == 200
    r = step(w, tokens, "op", "referrals", ref, "accept")
    assert r.status_code == 409 and r.get_json()["allowed"] == ["mark_enforced"]


def test_wrong_roles_and_wrong_sides_are_403(coord_world, tokens):
    w = coord_world
    for who in ("pw", "pl"):
        for path in ("/requests", "/referrals"):
            r = call(w, tokens, who, "get", path)
            assert r.status_code == 403 and r.mimetype == PROBLEM
        assert call(w, tokens, who, "post", "/requests", {}).status_code == 403
    req = send_request(w, tokens)
    # The east office may not write for the west office, nor close what the west office sent.
    r = call(w, tokens, "oe", "post", "/requests", {
        "kind": "advice", "to_agency_id": w.county.agencies["dept"],
        "from_agency_id": w.county.agencies["office_west"], "subject": "s", "body": "b"})
    assert r.status_code == 403
    # Supervisors see requests but only liaisons (and admins) answer them; the sender may not answer.
    assert step(w, tokens, "sup1", "requests", req, "answer", answer_text="x").status_code == 403
    assert step(w, tokens, "ow", "requests", req, "answer", answer_text="x").status_code == 403
    ref = refer(w, tokens)
    # Liaisons do not accept referrals: the bureau's command centre does.
    r = step(w, tokens, "li", "referrals", ref, "accept")
    assert r.status_code == 403 and "operator" in r.get_json()["detail"]
    # Only departments refer clues: a command-centre operator cannot, even naming the team.
    r = call(w, tokens, "op", "post", "/referrals", {"to_agency_id": w.county.agencies["bureau"],
                                                     "from_agency_id": w.county.agencies["team"], "clue": "c"})
    assert r.status_code == 403


def test_validation_errors_name_the_fields(coord_world, tokens):
    w = coord_world
    assert fields(call(w, tokens, "ow", "post", "/requests", {})) == {"kind", "to_agency_id", "subject", "body"}
    body = {"kind": "gossip", "to_agency_id": w.county.agencies["dept"], "subject": "s", "body": "b"}
    assert fields(call(w, tokens, "ow", "post", "/requests", body)) == {"kind"}
    body["kind"] = "advice"
    assert fields(call(w, tokens, "ow", "post", "/requests", {**body, "to_agency_id": 0})) == {"to_agency_id"}
    assert fields(call(w, tokens, "ow", "post", "/requests",
                       {**body, "to_agency_id": w.county.agencies["squad_west"]})) == {"to_agency_id"}
    # The liaison's own agency is the sender by default: a team is no township office.
    assert fields(call(w, tokens, "li", "post", "/requests", body)) == {"from_agency_id"}
    assert fields(call(w, tokens, "ow", "post", "/requests", {**body, "subject": "   "})) == {"subject"}
    req = send_request(w, tokens)
    assert fields(step(w, tokens, "li", "requests", req, "answer")) == {"answer_text"}
    assert fields(step(w, tokens, "li", "requests", req, "fly")) == {"action"}
    assert fields(call(w, tokens, "li", "get", "/requests", status="lost")) == {"status"}
    assert fields(call(w, tokens, "li", "post", "/referrals", {})) == {"to_agency_id", "clue"}
    ref = refer(w, tokens)
    assert fields(step(w, tokens, "op", "referrals", ref, "accept", category="TD02")) == {"geometry"}
    polygon = {"type": "Polygon", "coordinates": [[WEST, WEST, WEST]]}
    assert "geometry.type" in fields(step(w, tokens, "op", "referrals", ref, "accept", category="TD02",
                                          geometry=polygon))
    assert fields(step(w, tokens, "op", "referrals", ref, "accept", category="NOPE",
                       geometry={"type": "Point", "coordinates": WEST})) == {"category"}
    assert call(w, tokens, "op", "get", f"/referrals/{ref['id']}").get_json()["status"] == "referred"


def test_overdue_items_are_flagged_in_the_lists(coord_world, tokens):
    w = coord_world
    req, ref = send_request(w, tokens), refer(w, tokens)
    past = datetime.now(UTC) - timedelta(days=30)
    with w.database.sessions() as session, session.begin():
        for model, item in ((m.CoordinationRequest, req), (m.Referral, ref)):
            session.execute(update(model).where(model.id == item["id"]).values(due_at=past))
    [row] = [r for r in call(w, tokens, "li", "get", "/requests", overdue="true").get_json()["items"]
             if r["id"] == req["id"]]
    assert row["overdue"] is True and row["remaining_hours"] < 0
    assert req["id"] not in ids(call(w, tokens, "li", "get", "/requests", overdue="false"))
    [row] = [r for r in call(w, tokens, "op", "get", "/referrals", overdue="true").get_json()["items"]
             if r["id"] == ref["id"]]
    assert row["overdue"] is True and row["remaining_hours"] < 0
    assert call(w, tokens, "ld", "get", f"/referrals/{ref['id']}").get_json()["overdue"] is True
