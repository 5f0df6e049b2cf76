"""Layers as GeoJSON over HTTP, and the case list: structure, parameters, paging, errors and visibility.

The committed mini county is shared with other API tests, so these cases sit in a box of their own
(``BOX``, away from the points other tests use) and in March 2025; assertions look only there.
"""

import uuid
from datetime import datetime, timedelta
from urllib.parse import quote

import pytest
from sqlalchemy import select

from gis_platform import models as m
from gis_platform.workcalendar import SHANGHAI
from layers.base import ASSIGNED_FILTER
from layers.cases import Actor
from layers.rules.hotline import receive_ticket
from layers.rules.seized import seize
from tests.factories import add_categories

BOX = "115.705,36.035,115.795,36.045"
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=SHANGHAI)
CASE_LAYERS = ("cases", "ten_disorders", "illegal_operation", "promotion", "seized_items", "hotline_tickets")
# Which layer shows each seeded case of the east squad.
EAST_LAYER = {"td": "ten_disorders", "io": "illegal_operation", "pr": "promotion"}


def report(world, who, category, lon, lat, day):
    body = {"category": category, "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "description": "图层测试", "reported_at": (T0 + timedelta(days=day)).isoformat()}
    r = world.client().post("/api/v1/cases", json=body,
                            headers={**auth(world, who), "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


@pytest.fixture(scope="module")
def seeded(api_world):
    """Seven cases in BOX (two west, four east, one for the market team), a seizure and two tickets."""
    w = api_world
    county = w.county.code
    with w.database.sessions() as s, s.begin():
        have = set(s.scalars(select(m.Category.code).where(m.Category.county_code == county)))
        missing = tuple(code for code in ("IO01", "PR01") if code not in have)
        if missing:
            add_categories(s, w.county, missing)
    cases = {
        "w1": report(w, "pw", "TD02", 115.710, 36.040, 0),
        "w2": report(w, "pw", "TD02", 115.712, 36.041, 1),
        "td": report(w, "op", "TD02", 115.790, 36.040, 2),
        "io": report(w, "op", "IO01", 115.792, 36.041, 3),
        "pr": report(w, "op", "PR01", 115.788, 36.042, 4),
        "ms": report(w, "op", "MS03", 115.714, 36.042, 5),
    }
    assert {k: c["assigned"]["code"] for k, c in cases.items()} == {
        "w1": "SQ-west", "w2": "SQ-west", "td": "SQ-east", "io": "SQ-east", "pr": "SQ-east", "ms": "SCJG"}
    settings = w.app.extensions["gis_platform.settings"]
    with w.database.sessions() as s, s.begin():
        op_id = s.scalar(select(m.User.id).where(m.User.county_code == county, m.User.username == "op"))
        operator = Actor(role="operator", user_id=op_id, agency_id=w.county.agencies["bureau"])
        item = seize(s, cases["td"]["id"], description="三轮车", quantity=1,
                     seized_at=T0 + timedelta(days=2, hours=1), actor=operator)
        linked = receive_ticket(s, settings, external_no=f"L-{uuid.uuid4().hex[:12]}", channel="12345",
                                content="东边占道", received_at=T0 + timedelta(days=6),
                                location={"type": "Point", "coordinates": [115.794, 36.043]}, category="TD02")
        unlinked = receive_ticket(s, settings, external_no=f"U-{uuid.uuid4().hex[:12]}", channel="12345",
                                  content="咨询", received_at=T0 + timedelta(days=6))
        ids = {"seized": item.id, "ticket": linked.ticket.id, "ticket_case": linked.case.id,
               "unlinked_ticket": unlinked.ticket.id}
    assert w.client().get(f"/api/v1/cases/{ids['ticket_case']}", headers=auth(w, "op")).get_json()[
        "assigned"]["code"] == "SQ-east"
    return {"cases": cases, **ids}


_tokens: dict[str, dict[str, str]] = {}


def auth(world, who):
    """Return a bearer header for a user, signing in once per user (password hashing is slow on purpose)."""
    if who not in _tokens:
        _tokens[who] = world.token(who)
    return _tokens[who]


def items(world, who, layer="cases", query="", status=200):
    r = world.client().get(f"/api/v1/layers/{layer}/items?{query}", headers=auth(world, who))
    assert r.status_code == status, r.get_json()
    return r


def ids_of(response):
    return [f["id"] for f in response.get_json()["features"]]


def problem(response, status):
    assert response.status_code == status and response.mimetype == "application/problem+json", response.data
    return response.get_json()


# -- the list of layers ------------------------------------------------------------------------------------

def test_layer_list_describes_every_layer(api_world):
    w = api_world
    r = w.client().get("/api/v1/layers", headers=auth(w, "pl"))
    layers = {layer["name"]: layer for layer in r.get_json()["layers"]}
    assert r.status_code == 200 and len(layers) == 11
    cases = layers["cases"]
    assert cases["title_zh"] == "全部案件" and cases["geometry_type"] == "Point" and cases["temporal"]
    assert cases["temporal_field"] == "reported_at" and not layers["admin_units"]["temporal"]
    assert {"category", "status", "squad", "overdue"} <= {f["name"] for f in cases["filters"]}
    assert all(f["description"] for layer in layers.values() for f in layer["filters"])
    assert all(f["name"] != ASSIGNED_FILTER for layer in layers.values() for f in layer["filters"])
    assert cases["style"]["options"]["radius"] and cases["style"]["by_property"]["status"]["closed"]["color"]
    assert cases["legend"][0]["label_zh"] and cases["legend"][0]["label_en"]
    assert cases["links"][0]["rel"] == "items" and cases["links"][0]["href"].endswith("/api/v1/layers/cases/items")
    one = w.client().get("/api/v1/layers/ten_disorders", headers=auth(w, "op")).get_json()
    assert one["title_zh"] == "十乱" and "theme" not in {f["name"] for f in one["filters"]}


# -- GeoJSON structure, parameters and paging ----------------------------------------------------------------

def test_items_are_a_geojson_feature_collection(api_world, seeded):
    r = items(api_world, "op", query=f"bbox={BOX}")
    body = r.get_json(force=True)
    assert r.mimetype == "application/geo+json"
    assert body["type"] == "FeatureCollection" and body["numberMatched"] == body["numberReturned"] == 7
    assert body["timeStamp"].endswith("Z") and [link["rel"] for link in body["links"]] == ["self"]
    assert "bbox=" in body["links"][0]["href"]
    by_id = {f["id"]: f for f in body["features"]}
    w1 = by_id[seeded["cases"]["w1"]["id"]]
    assert w1["type"] == "Feature" and w1["geometry"] == {"type": "Point", "coordinates": [115.71, 36.04]}
    assert w1["properties"]["case_no"] == seeded["cases"]["w1"]["case_no"]
    assert w1["properties"]["status_zh"] == "待核实" and w1["properties"]["agency_code"] == "SQ-west"
    as_json = items(api_world, "op", query=f"bbox={BOX}&f=json")
    assert as_json.mimetype == "application/json" and ids_of(as_json) == ids_of(r)


def test_paging_is_stable_and_linked(api_world, seeded):
    w = api_world
    everything = ids_of(items(w, "op", query=f"bbox={BOX}"))
    seen, pages = [], 0
    r = items(w, "op", query=f"bbox={BOX}&limit=2")
    while True:
        body = r.get_json(force=True)
        pages += 1
        assert body["numberMatched"] == 7 and body["numberReturned"] == len(body["features"]) <= 2
        seen += ids_of(r)
        links = {link["rel"]: link["href"] for link in body["links"]}
        assert ("prev" in links) == (pages > 1) and "limit=2" in links["self"] and f"bbox={quote(BOX)}" in links["self"]
        if "next" not in links:
            break
        r = w.client().get(links["next"], headers=auth(w, "op"))
    assert pages == 4 and seen == everything == sorted(everything)
    assert ids_of(items(w, "op", query=f"bbox={BOX}&limit=3&offset=3")) == everything[3:6]
    past = items(w, "op", query=f"bbox={BOX}&offset=50").get_json(force=True)
    assert past["numberMatched"] == 7 and past["numberReturned"] == 0
    assert items(w, "op", query=f"bbox={BOX}&limit=20000").get_json(force=True)["numberReturned"] == 7


def test_bbox_datetime_and_filters(api_world, seeded):
    w, c = api_world, seeded["cases"]
    west_box = "115.705,36.035,115.75,36.045"
    assert set(ids_of(items(w, "op", query=f"bbox={west_box}"))) == {c["w1"]["id"], c["w2"]["id"], c["ms"]["id"]}
    instant = quote((T0 + timedelta(days=1)).isoformat())
    assert ids_of(items(w, "op", query=f"bbox={BOX}&datetime={instant}")) == [c["w2"]["id"]]
    start, end = T0 + timedelta(days=1), T0 + timedelta(days=3)
    closed = quote(f"{start.isoformat()}/{end.isoformat()}")  # closed: both ends included
    assert set(ids_of(items(w, "op", query=f"bbox={BOX}&datetime={closed}"))) == {
        c["w2"]["id"], c["td"]["id"], c["io"]["id"]}
    assert len(ids_of(items(w, "op", query=f"bbox={BOX}&datetime={quote(end.isoformat())}/.."))) == 4
    assert len(ids_of(items(w, "op", query=f"bbox={BOX}&datetime=../{quote(start.isoformat())}"))) == 2
    # "+08:00" sent unencoded arrives as " 08:00"; it is read as the offset it was meant to be.
    unencoded = (T0 + timedelta(days=1)).isoformat().replace("+", "%20")
    assert ids_of(items(w, "op", query=f"bbox={BOX}&datetime={unencoded}")) == [c["w2"]["id"]]
    utc = "2025-03-04T01:00:00Z"  # 09:00 in Shanghai
    assert ids_of(items(w, "op", query=f"bbox={BOX}&datetime={utc}")) == [c["w2"]["id"]]
    assert set(ids_of(items(w, "op", query=f"bbox={BOX}&squad=SQ-east&category=TD02"))) == {
        c["td"]["id"], seeded["ticket_case"]}
    assert len(ids_of(items(w, "op", query=f"bbox={BOX}&category=IO01,PR01"))) == 2
    assert len(ids_of(items(w, "op", query=f"bbox={BOX}&category=IO01&category=PR01"))) == 2
    assert len(ids_of(items(w, "op", query=f"bbox={BOX}&status=reported&source=patroller"))) == 2
    assert ids_of(items(w, "op", query=f"bbox={BOX}&status=closed")) == []
    assert ids_of(items(w, "op", "ten_disorders", f"bbox={BOX}&squad=SQ-west")) == [c["w1"]["id"], c["w2"]["id"]]
    assert ids_of(items(w, "op", "seized_items", f"bbox={BOX}")) == [seeded["seized"]]


@pytest.mark.parametrize(("query", "field"), [
    ("datetime=2025-03-03T09:00:00", "datetime"),
    ("datetime=2025-03-03", "datetime"),
    ("datetime=2025-03-03T09:00:00Z/2025-03-04T09:00:00", "datetime"),
    ("datetime=2025-03-04T09:00:00Z/2025-03-03T09:00:00Z", "datetime"),
    ("datetime=../..", "datetime"),
    ("datetime=a/b/c", "datetime"),
    ("at=2025-03-03T09:00:00", "at"),
    ("bbox=36.0,115.7,36.1,115.8", "bbox"),
    ("bbox=1,2,3", "bbox"),
    ("limit=0", "limit"),
    ("limit=ten", "limit"),
    ("offset=-1", "offset"),
    ("f=html", "f"),
    ("status=open", "status"),
    ("overdue=maybe", "overdue"),
    ("status=", "status"),
])
def test_bad_parameters_are_named(api_world, query, field):
    body = problem(items(api_world, "op", query=query, status=400), 400)
    assert field in [e["field"] for e in body["errors"]], body


def test_unknown_layer_and_filter(api_world):
    w = api_world
    body = problem(w.client().get("/api/v1/layers/nope/items", headers=auth(w, "op")), 404)
    assert "nope" in body["detail"] and "ten_disorders" in body["detail"] and "fume_sites" in body["detail"]
    assert problem(w.client().get("/api/v1/layers/nope", headers=auth(w, "op")), 404)
    assert problem(w.client().get("/api/v1/layers/nope/items/1", headers=auth(w, "op")), 404)
    body = problem(items(w, "op", query="colour=red&category=TD02", status=400), 400)
    assert [e["field"] for e in body["errors"]] == ["colour"] and "accepted: category" in body["detail"]
    body = problem(items(w, "op", "admin_units", "datetime=2025-03-03T09:00:00Z", status=400), 400)
    assert body["errors"][0]["field"] == "datetime" and "no time field" in body["detail"]
    body = problem(items(w, "op", "ten_disorders", "theme=promotion", status=400), 400)
    assert body["errors"][0]["field"] == "theme"


def test_one_feature_by_id(api_world, seeded):
    w, case = api_world, seeded["cases"]["w1"]
    r = w.client().get(f"/api/v1/layers/cases/items/{case['id']}", headers=auth(w, "op"))
    feature = r.get_json(force=True)
    assert r.status_code == 200 and r.mimetype == "application/geo+json"
    assert feature["type"] == "Feature" and feature["id"] == case["id"]
    assert feature["properties"]["case_no"] == case["case_no"]
    assert {link["rel"] for link in feature["links"]} == {"self", "collection"}
    for missing in ("ten_disorders/items/999999999", "illegal_operation/items/" + str(case["id"]),
                    "cases/items/99999999999999999999"):
        assert problem(w.client().get(f"/api/v1/layers/{missing}", headers=auth(w, "op")), 404)


def test_ogc_parameters_and_both_case_methods_are_documented(api_world):
    spec = api_world.client().get("/api/v1/openapi.json").get_json()
    assert {"get", "post"} <= set(spec["paths"]["/api/v1/cases"])
    params = {p["name"] for p in spec["paths"]["/api/v1/layers/{name}/items"]["get"]["parameters"]}
    assert {"bbox", "datetime", "limit", "offset", "at", "f", "category", "status", "squad"} <= params
    assert "application/geo+json" in spec["paths"]["/api/v1/layers/{name}/items"]["get"]["responses"]["200"]["content"]
    listed = {p["name"] for p in spec["paths"]["/api/v1/cases"]["get"]["parameters"]}
    assert {"bbox", "datetime", "limit", "offset", "category", "status", "squad", "grid", "source", "urgency",
            "overdue", "theme"} <= listed


# -- visibility -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layer", CASE_LAYERS)
def test_patrollers_see_only_their_squad_in_every_case_layer(api_world, seeded, layer):
    w, c = api_world, seeded["cases"]
    east = {"cases": c["td"]["id"], "ten_disorders": c["td"]["id"], "illegal_operation": c["io"]["id"],
            "promotion": c["pr"]["id"], "seized_items": seeded["seized"], "hotline_tickets": seeded["ticket"]}[layer]
    for who, sees in (("op", True), ("pe", True), ("pw", False), ("li", False)):
        listed = ids_of(items(w, who, layer, f"bbox={BOX}" if layer != "hotline_tickets" else ""))
        assert (east in listed) is sees, (layer, who)
        one = w.client().get(f"/api/v1/layers/{layer}/items/{east}", headers=auth(w, who))
        assert one.status_code == (200 if sees else 404), (layer, who)
        one.close()


def test_visible_sets_by_role(api_world, seeded):
    w, c = api_world, seeded["cases"]
    west = {c["w1"]["id"], c["w2"]["id"]}
    east = {c["td"]["id"], c["io"]["id"], c["pr"]["id"], seeded["ticket_case"]}
    assert set(ids_of(items(w, "pw", query=f"bbox={BOX}"))) == west
    assert set(ids_of(items(w, "pe", query=f"bbox={BOX}"))) == east
    assert set(ids_of(items(w, "li", query=f"bbox={BOX}"))) == {c["ms"]["id"]}
    assert set(ids_of(items(w, "pl", query=f"bbox={BOX}"))) == west | east | {c["ms"]["id"]}
    tickets = set(ids_of(items(w, "op", "hotline_tickets")))
    assert {seeded["ticket"], seeded["unlinked_ticket"]} <= tickets
    assert seeded["unlinked_ticket"] not in ids_of(items(w, "pe", "hotline_tickets"))
    # Areas are not case-based: every role sees them.
    assert len(ids_of(items(w, "pw", "admin_units"))) == len(ids_of(items(w, "op", "admin_units"))) == 3


def test_visibility_cannot_be_widened_from_the_query_string(api_world, seeded):
    w = api_world
    bureau, east_squad = w.county.agencies["bureau"], w.county.agencies["squad_east"]
    for name in (ASSIGNED_FILTER, "_assigned_agency_id", "assigned_agency_id"):
        body = problem(items(w, "pw", query=f"{name}={east_squad}", status=400), 400)
        assert body["errors"][0]["field"] == name
        body = problem(w.client().get(f"/api/v1/cases?{name}={bureau}", headers=auth(w, "pw")), 400)
        assert body["errors"][0]["field"] == name


# -- the case list ------------------------------------------------------------------------------------------------

def test_case_list_is_json_summaries(api_world, seeded):
    w, c = api_world, seeded["cases"]
    r = w.client().get(f"/api/v1/cases?bbox={BOX}&limit=5", headers=auth(w, "op"))
    body = r.get_json()
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert body["numberMatched"] == 7 and body["numberReturned"] == 5 and "type" not in body
    assert {link["rel"] for link in body["links"]} == {"self", "next"}
    first = next(s for s in body["cases"] if s["id"] == c["w1"]["id"])
    assert first["case_no"] == c["w1"]["case_no"] and (first["lon"], first["lat"]) == (115.71, 36.04)
    assert first["url"] == f"/api/v1/cases/{c['w1']['id']}" and first["category_code"] == "TD02"
    assert first["status"] == "reported" and first["overdue"] is False and "description" not in first
    filtered = w.client().get(f"/api/v1/cases?bbox={BOX}&theme=promotion,illegal_operation&datetime="
                              f"{quote((T0 + timedelta(days=3)).isoformat())}/..", headers=auth(w, "op")).get_json()
    assert [s["id"] for s in filtered["cases"]] == [c["io"]["id"], c["pr"]["id"]]
    assert filtered["numberMatched"] == 2
    assert problem(w.client().get("/api/v1/cases?colour=red", headers=auth(w, "op")), 400)
    assert problem(w.client().get("/api/v1/cases?datetime=2025-03-03T09:00:00", headers=auth(w, "op")), 400)


def test_case_list_visibility(api_world, seeded):
    w, c = api_world, seeded["cases"]
    for who, expected in (("pw", {"w1", "w2"}), ("pe", {"td", "io", "pr"}), ("li", {"ms"})):
        listed = {s["id"] for s in w.client().get(f"/api/v1/cases?bbox={BOX}&limit=10000",
                                                 headers=auth(w, who)).get_json()["cases"]}
        mine = {c[k]["id"] for k in expected}
        others = {case["id"] for k, case in c.items() if k not in expected}
        assert mine <= listed and not (others & listed), who
    everyone = w.client().get("/api/v1/cases?limit=10000", headers=auth(w, "pw")).get_json()["cases"]
    assert {s["agency_code"] for s in everyone} == {"SQ-west"}


# -- hostile input ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("query", [
    "category=TD02'%20OR%20'1'='1",
    "squad=SQ-west');DROP%20TABLE%20%22case%22;--",
    "grid=1%20OR%201=1",
    "status=reported'--",
    "overdue=true;DELETE%20FROM%20case",
    "bbox=1,2,3,4);DROP%20TABLE%20case;--",
    "datetime=2025-03-03T09:00:00Z'%20OR%201=1--",
    "limit=1;DROP%20TABLE%20case",
    "1=1",
    "category%27%3B--=TD02",
])
def test_sql_looking_values_are_harmless(api_world, seeded, query):
    w = api_world
    for url in (f"/api/v1/layers/cases/items?{query}", f"/api/v1/cases?{query}"):
        r = w.client().get(url, headers=auth(w, "op"))
        assert r.status_code in (200, 400), (url, r.status_code)
        if r.status_code == 200:
            body = r.get_json(force=True)
            assert body["numberReturned"] == 0
    assert items(w, "op", query=f"bbox={BOX}").get_json(force=True)["numberMatched"] == 7


def test_roles(api_world):
    w = api_world
    for url in ("/api/v1/layers", "/api/v1/layers/cases/items", "/api/v1/layers/cases/items/1", "/api/v1/cases"):
        assert problem(w.client().get(url), 401)
