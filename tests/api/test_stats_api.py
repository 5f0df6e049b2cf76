"""Indicators and the period summary over HTTP: shapes, validation and roles.

The summary is checked on June 2024, a month only this module reports in, so its counts are exact even
though the mini county is shared; the indicators count dispatches made now, so those checks are relative.
"""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import quote

import pytest
from sqlalchemy import select

from gis_platform import models as m
from gis_platform import vocab
from gis_platform.workcalendar import SHANGHAI
from layers.cases import Actor
from layers.indicators import INDICATOR_LABELS
from layers.rules.hotline import close_ticket, receive_ticket, reply
from layers.rules.structures import advance, register_structure
from tests.factories import add_categories

JUNE = datetime(2024, 6, 3, 9, 0, tzinfo=SHANGHAI)
PERIOD = {"start": "2024-06-01T00:00:00+08:00", "end": "2024-07-01T00:00:00+08:00"}
FOOTPRINT = {"type": "Polygon", "coordinates": [[[115.785, 36.030], [115.7852, 36.030], [115.7852, 36.0302],
                                                 [115.785, 36.0302], [115.785, 36.030]]]}

_tokens: dict[str, dict[str, str]] = {}


def auth(world, who):
    """Return a bearer header for a user, signing in once per user."""
    if who not in _tokens:
        _tokens[who] = world.token(who)
    return _tokens[who]


def get(world, who, path, **params):
    query = "&".join(f"{k}={quote(str(v))}" for k, v in params.items())
    return world.client().get(f"{path}?{query}", headers=auth(world, who) if who else {})


def report(world, who, category, lon, lat, reported_at):
    body = {"category": category, "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "description": "统计测试", "reported_at": reported_at.isoformat()}
    r = world.client().post("/api/v1/cases", json=body,
                            headers={**auth(world, who), "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def step(world, who, case, action, **body):
    r = world.client().post(f"/api/v1/cases/{case['id']}/transitions",
                            json={"action": action, "version": case["version"], **body}, headers=auth(world, who))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


@pytest.fixture(scope="module")
def june(api_world):
    """June 2024: three cases and a cancelled report, a demolished structure, one closed and one open ticket."""
    w = api_world
    county = w.county.code
    west = report(w, "pw", "TD02", 115.715, 36.030, JUNE)
    east = report(w, "op", "TD02", 115.785, 36.032, JUNE + timedelta(days=1))
    market = report(w, "op", "MS03", 115.716, 36.032, JUNE + timedelta(days=2))
    void = report(w, "pw", "TD02", 115.718, 36.034, JUNE + timedelta(days=3))
    step(w, "sup1", void, "cancel", note="无效上报")
    settings = w.app.extensions["gis_platform.settings"]
    with w.database.sessions() as s, s.begin():
        if s.scalar(select(m.Category.id).where(m.Category.county_code == county, m.Category.code == "IS01")) is None:
            add_categories(s, w.county, ("IS01",))
        ids = dict(s.execute(select(m.User.username, m.User.id).where(m.User.county_code == county)).all())
        bureau = w.county.agencies["bureau"]
        op = Actor(role="operator", user_id=ids["op"], agency_id=bureau)
        sup = Actor(role="supervisor", user_id=ids["sup1"], agency_id=bureau)
        structure = register_structure(s, settings, footprint=FOOTPRINT, address="东镇某处", builder=None,
                                       discovered_at=JUNE + timedelta(days=4), actor=op)
        advance(s, structure.id, "filed", actor=sup, at=JUNE + timedelta(days=5))
        advance(s, structure.id, "order_served", actor=op, at=JUNE + timedelta(days=6))
        advance(s, structure.id, "self_demolished", actor=op, at=JUNE + timedelta(days=10))
        area = Decimal(str(structure.area_m2)).quantize(Decimal("0.1"))
        done = receive_ticket(s, settings, external_no=f"S-{uuid.uuid4().hex[:12]}", channel="12345",
                              content="咨询", received_at=JUNE).ticket
        reply(s, done.id, reply_text="已答复", at=JUNE + timedelta(hours=2), actor=op)
        close_ticket(s, done.id, at=JUNE + timedelta(hours=3), actor=op)
        receive_ticket(s, settings, external_no=f"S-{uuid.uuid4().hex[:12]}", channel="12345", content="投诉",
                       received_at=JUNE + timedelta(days=1))
    return {"cases": (west, east, market, void), "area": float(area)}


def test_summary_counts_the_period(api_world, june):
    r = get(api_world, "pl", "/api/v1/stats/summary", **PERIOD)
    body = r.get_json()
    assert r.status_code == 200, body
    assert body["start"] == "2024-06-01T00:00:00+08:00" and body["end"] == "2024-07-01T00:00:00+08:00"
    cases = body["cases"]
    assert cases["reported"] == 5 and cases["total"] == 4  # the structure opened an IS01 case; one was cancelled
    themes = {t["key"]: t for t in cases["by_theme"]}
    assert list(themes) == list(vocab.THEMES) and themes["ten_disorders"]["label"] == "十乱"
    assert (themes["ten_disorders"]["count"], themes["market_supervision"]["count"],
            themes["illegal_structures"]["count"], themes["promotion"]["count"]) == (2, 1, 1, 0)
    statuses = {s["key"]: s["count"] for s in cases["by_status"]}
    assert list(statuses) == list(vocab.CASE_STATUSES) and statuses["cancelled"] == 1 and statuses["reported"] == 4
    assert {s["key"]: s["label"] for s in cases["by_status"]}["reported"] == "待核实"
    categories = {c["key"]: c for c in cases["by_category"]}
    assert {k: c["count"] for k, c in categories.items()} == {"TD02": 2, "MS03": 1, "IS01": 1}
    assert categories["MS03"]["label"] == "MS03" and categories["IS01"]["label_en"]
    towns = {t["key"]: (t["label"], t["count"]) for t in cases["by_township"]}
    assert towns == {"379901101": ("west镇", 2), "379901102": ("east镇", 2)}
    demolished = body["demolished"]
    assert demolished["count"] == 1 and demolished["area_m2"] == june["area"] > 0
    assert demolished["by_township"] == [{"key": "379901102", "label": "east镇", "count": 1,
                                          "area_m2": june["area"]}]
    assert body["hotline"] == {"received": 2, "closed": 1, "closure_rate": 0.5}


def test_summary_of_an_empty_period(api_world, june):
    body = get(api_world, "op", "/api/v1/stats/summary", start="2019-01-01T00:00:00Z",
               end="2019-02-01T00:00:00Z").get_json()
    assert body["cases"]["total"] == 0 and body["cases"]["by_category"] == [] and body["cases"]["by_township"] == []
    assert all(t["count"] == 0 for t in body["cases"]["by_theme"])
    assert body["demolished"] == {"count": 0, "area_m2": 0.0, "by_township": []}
    assert body["hotline"] == {"received": 0, "closed": 0, "closure_rate": None}


def test_indicators_total_and_grouped(api_world):
    w = api_world
    now = datetime.now(UTC)
    window = {"start": (now - timedelta(days=1)).isoformat(), "end": (now + timedelta(days=1)).isoformat()}
    before = get(w, "op", "/api/v1/indicators", **window).get_json()["rows"][0]
    case = report(w, "pw", "TD02", 115.711, 36.012, now - timedelta(minutes=5))
    case = step(w, "sup1", case, "file")
    step(w, "op", case, "dispatch")
    r = get(w, "sup1", "/api/v1/indicators", **window)
    body = r.get_json()
    assert r.status_code == 200, body
    assert [c["key"] for c in body["columns"]] == list(INDICATOR_LABELS)
    assert body["columns"][0] == {"key": "due", "label_zh": "应处置数", "label_en": "Due for handling"}
    (total,) = body["rows"]
    assert total["label"] == "合计" and total["group_by"] is None and total["key"] is None
    assert total["due"] == before["due"] + 1 and total["handling_rate"] is not None
    assert body["as_of"] <= window["end"] and body["group_by"] is None
    squads = get(w, "pl", "/api/v1/indicators", group_by="squad", **window).get_json()["rows"]
    west = next(row for row in squads if row["key"] == "SQ-west")
    assert west["label"] == "west中队" and west["due"] >= 1 and west["group_by"] == "squad"
    months = get(w, "ad", "/api/v1/indicators", group_by="month", start="2024-01-01T00:00:00+08:00",
                 end="2024-04-01T00:00:00+08:00").get_json()["rows"]
    assert [(row["key"], row["label"]) for row in months] == [("2024-01", "2024年1月"), ("2024-02", "2024年2月"),
                                                              ("2024-03", "2024年3月")]
    only_hotline = get(w, "op", "/api/v1/indicators", source="hotline", category="TD02", **window).get_json()
    assert only_hotline["source"] == "hotline" and only_hotline["rows"][0]["due"] <= total["due"] - 1


@pytest.mark.parametrize(("path", "params", "field"), [
    ("/api/v1/indicators", {"start": "2024-06-01T00:00:00", "end": "2024-07-01T00:00:00+08:00"}, "start"),
    ("/api/v1/indicators", {"start": "2024-06-01T00:00:00Z", "end": "2024-06-01T00:00:00Z"}, "end"),
    ("/api/v1/indicators", {"start": "2024-06-01T00:00:00Z", "end": "2024-05-01T00:00:00Z"}, "end"),
    ("/api/v1/indicators", {"start": "2020-01-01T00:00:00Z", "end": "2022-01-03T00:00:00Z"}, "end"),
    ("/api/v1/indicators", {"end": "2024-07-01T00:00:00Z"}, "start"),
    ("/api/v1/indicators", {**PERIOD, "group_by": "district"}, "group_by"),
    ("/api/v1/indicators", {**PERIOD, "source": "rumour"}, "source"),
    ("/api/v1/indicators", {**PERIOD, "category": "NOPE"}, "category"),
    ("/api/v1/indicators", {**PERIOD, "category": "TD02' OR '1'='1"}, "category"),
    ("/api/v1/stats/summary", {"start": "2024-06-01", "end": "2024-07-01T00:00:00Z"}, "start"),
    ("/api/v1/stats/summary", {"start": "2021-01-01T00:00:00Z", "end": "2024-01-01T00:00:00Z"}, "end"),
    ("/api/v1/stats/summary", {"start": "yesterday", "end": "2024-01-01T00:00:00Z"}, "start"),
])
def test_invalid_queries_name_the_field(api_world, path, params, field):
    r = get(api_world, "op", path, **params)
    assert r.status_code == 400 and r.mimetype == "application/problem+json", r.get_json()
    assert field in [e["field"] for e in r.get_json()["errors"]]


def test_two_years_is_the_longest_period(api_world):
    r = get(api_world, "op", "/api/v1/indicators", start="2020-01-01T00:00:00Z", end="2022-01-01T00:00:00Z")
    assert r.status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/indicators", "/api/v1/stats/summary"])
def test_county_figures_are_for_the_command_centre_and_planners(api_world, path):
    w = api_world
    assert get(w, None, path, **PERIOD).status_code == 401
    for who in ("pw", "pe", "li"):
        r = get(w, who, path, **PERIOD)
        assert r.status_code == 403 and r.mimetype == "application/problem+json"
    for who in ("ad", "sup1", "op", "pl"):
        assert get(w, who, path, **PERIOD).status_code == 200


def test_responses_are_documented(api_world):
    spec = api_world.client().get("/api/v1/openapi.json").get_json()
    for path, names in (("/api/v1/indicators", {"start", "end", "group_by", "category", "source"}),
                        ("/api/v1/stats/summary", {"start", "end"})):
        operation = spec["paths"][path]["get"]
        assert names <= {p["name"] for p in operation["parameters"]}
        assert "$ref" in operation["responses"]["200"]["content"]["application/json"]["schema"]


def test_counts_grouped_with_year_on_year(api_world, june):
    r = get(api_world, "pl", "/api/v1/stats/counts", group_by="township,category", yoy="true", **PERIOD)
    body = r.get_json()
    assert r.status_code == 200, body
    assert body["group_by"] == ["township", "category"] and body["base_start"] == "2023-06-01T00:00:00+08:00"
    assert body["dimensions"][0] == {"key": "township", "label_zh": "乡镇（街道）", "label_en": "Township"}
    got = {tuple(g["key"] for g in row["groups"]): row["count"] for row in body["rows"]}
    assert got == {("379901101", "MS03"): 1, ("379901101", "TD02"): 1, ("379901102", "IS01"): 1,
                   ("379901102", "TD02"): 1}
    assert body["total"] == {"groups": [{"dimension": "total", "key": None, "label": "合计", "label_en": "Total"}],
                             "count": 4, "base": 0, "change": 4, "change_pct": None}
    weeks = get(api_world, "op", "/api/v1/stats/counts", group_by="week", theme="ten_disorders", **PERIOD).get_json()
    assert [row["groups"][0]["key"] for row in weeks["rows"]] == [f"2024-W{n}" for n in range(22, 27)]
    assert sum(row["count"] for row in weeks["rows"]) == weeks["total"]["count"] == 2
    assert weeks["rows"][1]["groups"][0]["label"] == "2024年第23周" and weeks["rows"][1]["base"] is None


def test_summary_adds_seizures_and_fume_inspections(api_world, june):
    body = get(api_world, "sup1", "/api/v1/stats/summary", **PERIOD).get_json()
    assert body["seized"] == {"count": 0}
    assert body["fume"] == {"inspections": 0, "exceedances": 0, "penalised": 0}


def test_indicators_by_quarter_with_year_on_year(api_world):
    body = get(api_world, "pl", "/api/v1/indicators", group_by="quarter", yoy="true",
               start="2024-01-01T00:00:00+08:00", end="2024-07-01T00:00:00+08:00").get_json()
    assert [(row["key"], row["label"], row["label_en"]) for row in body["rows"]] == [
        ("2024-Q1", "2024年第1季度", "2024 Q1"), ("2024-Q2", "2024年第2季度", "2024 Q2")]
    assert body["base_start"] == "2023-01-01T00:00:00+08:00"
    assert set(body["rows"][0]["year_on_year"]) == set(INDICATOR_LABELS)
    assert body["rows"][0]["year_on_year"]["due"]["change"] == body["rows"][0]["due"] - \
        body["rows"][0]["year_on_year"]["due"]["base"]


@pytest.mark.parametrize(("params", "field"), [
    ({"group_by": "district"}, "group_by"),
    ({"group_by": "month,week"}, "group_by"),
    ({"group_by": "category,township,squad"}, "group_by"),
    ({"theme": "weather"}, "theme"),
    ({"township": "999"}, "township"),
    ({"squad": "NOPE"}, "squad"),
    ({"yoy": "perhaps"}, "yoy"),
])
def test_bad_count_queries_name_the_field(api_world, params, field):
    r = get(api_world, "op", "/api/v1/stats/counts", **PERIOD, **params)
    assert r.status_code == 400 and r.mimetype == "application/problem+json", r.get_json()
    assert field in [e["field"] for e in r.get_json()["errors"]]
