"""The analytics API on the demo county: GeoJSON answers with Chinese-first legends, bounds, and roles.

The app runs on one connection of the demo database inside a transaction rolled back at the end (as
the vector-tile tests do), so the tokens issued here are never committed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import sessionmaker

from api.auth import issue_token
from gis_platform import models as m
from gis_platform.db import Database
from gis_platform.settings import Settings

C = "371521"
YEAR = {"start": "2021-01-01T00:00:00+08:00", "end": "2022-01-01T00:00:00+08:00"}
GEOJSON = "application/geo+json"
PROBLEM = "application/problem+json"
USERS = ("planner", "supervisor", "operator", "admin", "patroller01", "liaison")


class World:
    def __init__(self, app: Flask, conn, tokens: dict[str, str]) -> None:
        self.app, self.conn, self.tokens = app, conn, tokens

    def get(self, path: str, user: str | None = "planner", **params):
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return self.app.test_client().get(path, query_string=params, headers=headers)

    def cases(self, where: str = "", **params) -> int:
        return self.conn.execute(text(
            'SELECT count(*) FROM "case" c JOIN category cat ON cat.id = c.category_id WHERE c.county_code = :c '
            "AND c.status NOT IN ('cancelled', 'merged') AND c.reported_at >= :s AND c.reported_at < :e " + where),
            {"c": C, "s": YEAR["start"], "e": YEAR["end"], **params}).scalar_one()


@pytest.fixture(scope="module")
def world(demo_engine: Engine, demo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from api.app import create_app

    conn = demo_engine.connect()
    outer = conn.begin()
    sessions = sessionmaker(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    tokens = {}
    with sessions() as session:
        for username in USERS:
            user = session.scalar(select(m.User).where(m.User.county_code == C, m.User.username == username))
            tokens[username] = issue_token(session, user, "analytics test")[1]
        session.commit()
    settings = Settings(_env_file=None, database_url=demo_url, county_code=C, secret_key="test-key",
                        data_dir=Path(tmp_path_factory.mktemp("analytics")))
    app = create_app(settings, database=Database(engine=demo_engine, sessions=sessions))
    try:
        yield World(app, conn, tokens)
    finally:
        outer.rollback()
        conn.close()


def test_hotspots_answer_geojson_cells_with_a_chinese_first_legend(world):
    r = world.get("/api/v1/analytics/hotspots", cell="fishnet", size_m=2000, category="TD02,IO01", **YEAR)
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    assert r.mimetype == GEOJSON
    body = r.get_json()
    assert body["type"] == "FeatureCollection" and body["parameters"]["permutations"] == 9999
    features = body["features"]
    assert sum(f["properties"]["count"] for f in features) == world.cases("AND cat.code IN ('TD02', 'IO01')")
    assert body["summary"]["cases"] == sum(f["properties"]["count"] for f in features)
    first = features[0]
    assert first["geometry"]["type"] in ("Polygon", "MultiPolygon") and "crs" not in first["geometry"]
    lon, lat = first["geometry"]["coordinates"][0][0] if first["geometry"]["type"] == "Polygon" else \
        first["geometry"]["coordinates"][0][0][0]
    assert 115 < lon < 116.5 and 35.5 < lat < 36.5  # lon first (RFC 7946)
    assert {"cell_id", "gi_z", "gi_p", "gi_bin", "significant", "moran_quadrant", "gi_label_zh"} <= set(first["properties"])
    legend = body["legend"]["gi_bin"]
    assert [e["value"] for e in legend] == [3, 2, 1, 0, -1, -2, -3]
    assert legend[0]["label_zh"] == "热点 99% 置信度" and legend[0]["label_en"] == "Hot spot, 99% confidence"
    hot = [f for f in features if f["properties"]["gi_bin"] > 0]
    assert hot and all(f["properties"]["gi_label_zh"].startswith("热点") for f in hot)


def test_period_selects_the_same_cases_as_start_and_end(world):
    by_period = world.get("/api/v1/analytics/hotspots", cell="hexagon", size_m=3000, period="2021-05",
                          permutations=0, moran="false").get_json()
    by_bounds = world.get("/api/v1/analytics/hotspots", cell="hexagon", size_m=3000, permutations=0, moran="false",
                          start="2021-05-01T00:00:00+08:00", end="2021-06-01T00:00:00+08:00").get_json()
    assert by_period["summary"]["cases"] == by_bounds["summary"]["cases"] > 0
    assert by_period["summary"] == by_bounds["summary"]


def test_emerging_answers_categories_with_rules(world):
    r = world.get("/api/v1/analytics/emerging", cell="fishnet", size_m=3000, step="month", series="true", **YEAR)
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    body = r.get_json()
    assert len(body["steps"]) == 12 and body["steps"][0].startswith("2021-01-01T00:00:00+08:00")
    legend = {e["value"]: e for e in body["legend"]}
    assert legend["new_hot"]["label_zh"] == "新增热点" and legend["new_hot"]["label_en"] == "New hot spot"
    assert legend["intensifying_cold"]["rule_zh"] and legend["no_pattern"]["label_zh"] == "无模式"
    props = [f["properties"] for f in body["features"]]
    assert {p["category"] for p in props} <= set(legend)
    assert all(len(p["bins"]) == 12 and sum(p["counts"]) == p["count"] for p in props)
    assert sum(body["summary"]["by_category"].values()) == len(props)


def test_density_answers_weighted_points_peaking_at_the_seat(world):
    r = world.get("/api/v1/analytics/density", max_points=500, **YEAR)
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    body = r.get_json()
    assert body["count"] == world.cases() and len(body["points"]) == 500
    lat, lon, value = body["points"][0]
    assert value == body["max"] and math.hypot(lon - 115.79, lat - 36.11) < 0.06
    assert all(p[2] >= 0.01 * body["max"] for p in body["points"])


@pytest.mark.parametrize(("params", "field"), [
    ({"cell": "triangle"}, "cell"),
    ({"cell": "grid", "size_m": 500}, "size_m"),
    ({"cell": "fishnet", "size_m": 5}, "size_m"),
    ({"cell": "fishnet", "size_m": 30}, "size_m"),  # over a million cells
    ({"permutations": 50}, "permutations"),
    ({"permutations": 100000}, "permutations"),
    ({"cell": "fishnet", "size_m": 150, "permutations": 9999}, "permutations"),  # too much work for one request
    ({"category": "NOPE"}, "category"),
    ({"theme": "nope"}, "theme"),
    ({"unit": "371521999"}, "unit"),
    ({"period": "2021-13"}, "period"),
    ({"period": "2021", "start": "2021-01-01T00:00:00+08:00"}, "period"),
    ({"start": "2022-01-01T00:00:00+08:00", "end": "2021-01-01T00:00:00+08:00"}, "end"),
    ({"start": "2021-01-01T00:00:00"}, "start"),
    ({"alpha": 0.7}, "alpha"),
])
def test_bad_parameters_are_400_problems_naming_the_field(world, params, field):
    r = world.get("/api/v1/analytics/hotspots", **params)
    assert r.status_code == 400, (params, r.status_code, r.get_data(as_text=True)[:300])
    assert r.mimetype == PROBLEM
    assert field in {e["field"] for e in r.get_json()["errors"]}, r.get_json()


@pytest.mark.parametrize(("path", "params", "field"), [
    ("/api/v1/analytics/emerging", {"step": "day"}, "step"),
    ("/api/v1/analytics/emerging", {"start": "2021-01-01T00:00:00+08:00", "end": "2021-01-15T00:00:00+08:00"}, "end"),
    ("/api/v1/analytics/density", {"bandwidth_m": 1}, "bandwidth_m"),
    ("/api/v1/analytics/density", {"max_points": 0}, "max_points"),
])
def test_bad_parameters_of_the_other_views(world, path, params, field):
    r = world.get(path, **params)
    assert r.status_code == 400 and field in {e["field"] for e in r.get_json()["errors"]}, r.get_json()


def test_only_analysts_may_ask(world):
    for path in ("/api/v1/analytics/hotspots", "/api/v1/analytics/emerging", "/api/v1/analytics/density"):
        assert world.get(path, user=None).status_code == 401
        for user in ("patroller01", "liaison"):
            assert world.get(path, user=user).status_code == 403
    for user in ("supervisor", "operator", "admin"):
        r = world.get("/api/v1/analytics/hotspots", user=user, cell="fishnet", size_m=5000, permutations=0, **YEAR)
        assert r.status_code == 200
