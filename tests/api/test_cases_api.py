"""Cases over HTTP on a committed mini county: the whole loop, guards, photos and visibility."""

import io
import uuid

import pytest
from PIL import Image

WEST = [115.72, 36.02]
EAST = [115.78, 36.02]


def png() -> io.BytesIO:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buf, "PNG")
    buf.seek(0)
    return buf


def new_case(world, who="pw", where=WEST, **extra):
    body = {"category": "TD02", "geometry": {"type": "Point", "coordinates": where}, "description": "占道经营",
            **extra}
    r = world.client().post("/api/v1/cases", json=body, headers={**world.token(who),
                                                                 "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def step(world, who, case, action, **body):
    r = world.client().post(f"/api/v1/cases/{case['id']}/transitions",
                            json={"action": action, "version": case["version"], **body}, headers=world.token(who))
    return r


def test_closed_loop_over_http(api_world):
    w = api_world
    case = new_case(w)
    assert case["status"] == "reported" and case["assigned"]["code"] == "SQ-west"
    assert case["routing"]["assigned"] == "SQ-west" and "file" not in case["allowed_actions"]
    for who, action, extra in (("sup1", "file", {}), ("op", "dispatch", {}), ("pw", "accept", {})):
        r = step(w, who, case, action, **extra)
        assert r.status_code == 200, r.get_json()
        case = r.get_json()
    assert case["clock"]["due_at"] and case["clock"]["limit_hours"] == 16
    photo = w.client().post(f"/api/v1/cases/{case['id']}/attachments", data={"file": (png(), "x.png"),
                            "stage": "after"}, headers=w.token("pw"), content_type="multipart/form-data")
    assert photo.status_code == 201
    case = step(w, "pw", case, "feedback", attachment_ids=[photo.get_json()["id"]]).get_json()
    case = step(w, "sup2", case, "close").get_json()
    case = step(w, "op", case, "evaluate", score=4).get_json()
    assert case["status"] == "evaluated"
    events = w.client().get(f"/api/v1/cases/{case['id']}/events", headers=w.token("op")).get_json()
    assert [e["action"] for e in events["events"]] == ["report", "file", "dispatch", "accept", "feedback",
                                                      "close", "evaluate"]
    assert events["events"][1]["action_zh"] == "核实立案"


def test_idempotency_key_returns_the_original(api_world):
    w = api_world
    headers = {**w.token("pw"), "Idempotency-Key": "retry-" + uuid.uuid4().hex}
    body = {"category": "TD02", "geometry": {"type": "Point", "coordinates": WEST}}
    first = w.client().post("/api/v1/cases", json=body, headers=headers)
    again = w.client().post("/api/v1/cases", json=body, headers=headers)
    assert first.status_code == 201 and again.status_code == 200
    assert again.get_json()["id"] == first.get_json()["id"] and again.headers["Idempotent-Replayed"] == "true"


def test_transitions_need_a_version_and_reject_stale_ones(api_world):
    w = api_world
    case = new_case(w)
    r = w.client().post(f"/api/v1/cases/{case['id']}/transitions", json={"action": "file"},
                        headers=w.token("sup1"))
    assert r.status_code == 428 and r.mimetype == "application/problem+json"
    r = w.client().post(f"/api/v1/cases/{case['id']}/transitions", json={"action": "file"},
                        headers={**w.token("sup1"), "If-Match": 'W/"1"'})
    assert r.status_code == 200 and r.headers["ETag"] == 'W/"2"'
    stale = w.client().post(f"/api/v1/cases/{case['id']}/transitions", json={"action": "dispatch"},
                            headers={**w.token("op"), "If-Match": 'W/"1"'})
    assert stale.status_code == 409 and "version" in stale.get_json()["detail"]


def test_illegal_transition_lists_allowed(api_world):
    w = api_world
    case = new_case(w)
    r = step(w, "ad", case, "close")
    assert r.status_code == 409
    assert "allowed: file, cancel" in r.get_json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"category": "TD02", "geometry": {"type": "Point", "coordinates": [36.02, 115.72]}}, "geometry"),
        ({"category": "NOPE", "geometry": {"type": "Point", "coordinates": WEST}}, "category"),
        ({"category": "TD02", "geometry": {"type": "LineString", "coordinates": [WEST, EAST]}}, "geometry.type"),
        ({"category": "TD02"}, "geometry"),
        ({"category": "TD02", "geometry": {"type": "Point", "coordinates": WEST}, "urgency": "now"}, "urgency"),
        ({"category": "TD02", "geometry": {"type": "Point", "coordinates": WEST}, "description": "x" * 4001},
         "description"),
    ],
)
def test_bad_reports_name_the_field_and_write_nothing(api_world, body, field):
    w = api_world
    r = w.client().post("/api/v1/cases", json=body, headers=w.token("pw"))
    assert r.status_code == 400 and r.mimetype == "application/problem+json"
    assert field in [e["field"] for e in r.get_json()["errors"]]


def test_photos_are_checked_from_their_bytes(api_world):
    w = api_world
    case = new_case(w)
    fake = w.client().post(f"/api/v1/cases/{case['id']}/attachments",
                           data={"file": (io.BytesIO(b"<html><script>alert(1)</script></html>"), "photo.jpg")},
                           headers=w.token("pw"), content_type="multipart/form-data")
    assert fake.status_code == 415
    truncated = w.client().post(f"/api/v1/cases/{case['id']}/attachments",
                                data={"file": (io.BytesIO(png().read()[:40]), "p.png")},
                                headers=w.token("pw"), content_type="multipart/form-data")
    assert truncated.status_code == 400 and truncated.get_json()["errors"][0]["field"] == "file"
    good = w.client().post(f"/api/v1/cases/{case['id']}/attachments", data={"file": (png(), "../../etc/passwd")},
                           headers=w.token("pw"), content_type="multipart/form-data")
    assert good.status_code == 201
    got = w.client().get(good.get_json()["url"], headers=w.token("pw"))
    got.close()
    assert got.status_code == 200 and got.mimetype == "image/png"
    assert got.headers["X-Content-Type-Options"] == "nosniff" and "sandbox" in got.headers["Content-Security-Policy"]
    stored = list((w.app.extensions["gis_platform.settings"].resolved_data_dir / "attachments").rglob("*.png"))
    assert stored and all(".." not in p.name and "passwd" not in p.name for p in stored)


def test_patrollers_see_only_their_squad(api_world):
    w = api_world
    case = new_case(w, who="op", where=WEST)
    assert w.client().get(f"/api/v1/cases/{case['id']}", headers=w.token("pw")).status_code == 200
    assert w.client().get(f"/api/v1/cases/{case['id']}", headers=w.token("pe")).status_code == 404
    assert w.client().get(f"/api/v1/cases/{case['id']}/events", headers=w.token("pe")).status_code == 404


def test_roles_are_enforced(api_world):
    w = api_world
    assert w.client().get("/api/v1/route?lon=115.72&lat=36.02&category=TD02").status_code == 401
    r = w.client().post("/api/v1/cases", json={"category": "TD02", "geometry": {"type": "Point",
                        "coordinates": WEST}}, headers=w.token("pl"))
    assert r.status_code == 403
    case = new_case(w)
    assert step(w, "pw", case, "file").status_code == 403


def test_route_endpoint_explains(api_world):
    w = api_world
    r = w.client().get("/api/v1/route?lon=115.75&lat=36.02&category=TD02", headers=w.token("op"))
    body = r.get_json()
    assert r.status_code == 200 and body["assigned"]["code"] == "SQ-east" and body["near_boundary"]
    assert any("lowest code wins" in line for line in body["trace"])
    r = w.client().get("/api/v1/route?lon=36.02&lat=115.72&category=TD02", headers=w.token("op"))
    assert r.status_code == 400 and "swapped" in r.get_json()["detail"]


def test_conflict_problem_lists_allowed_actions(api_world):
    w = api_world
    case = new_case(w)
    body = step(w, "ad", case, "close").get_json()
    assert body["allowed"] == ["file", "cancel", "merge", "reroute"]
