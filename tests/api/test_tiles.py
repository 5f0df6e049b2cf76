"""Vector tiles on the demo county: decoded with mapbox-vector-tile and checked against SQL.

The app runs on one connection of the demo database inside a transaction rolled back at the end, so
the tokens issued here and the synthetic cases inserted for the scale test are never committed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mapbox_vector_tile
import pytest
from flask import Flask
from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.orm import sessionmaker

from api.auth import issue_token
from api.tiles import (
    CLUSTER_CELL,
    DEFAULT_STATUSES,
    EXTENT,
    LAYERS,
    MVT_MIMETYPE,
    POINT_CAP,
    CaseFilter,
    TileAddress,
    render_tile,
)
from gis_platform import models as m
from gis_platform.db import Database
from gis_platform.settings import Settings

COUNTY = "371521"
SEAT = (115.79, 36.11)  # the county seat
MAX_CLUSTERS = (EXTENT // CLUSTER_CELL) ** 2
PROBLEM = "application/problem+json"


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    """Return the XYZ tile holding a point."""
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y


@dataclass
class TileWorld:
    app: Flask
    conn: Connection
    tokens: dict[str, str]
    agencies: dict[str, int | None]

    def get(self, path: str, user: str | None = "admin", **headers: str):
        if user is not None:
            headers["Authorization"] = f"Bearer {self.tokens[user]}"
        return self.app.test_client().get(path, headers=headers)

    def tile(self, layer: str, z: int, x: int, y: int, query: str = "", user: str | None = "admin"):
        return self.get(f"/api/v1/tiles/{layer}/{z}/{x}/{y}.mvt{query}", user)

    def count(self, sql: str, **params) -> int:
        return self.conn.execute(text(sql), params).scalar_one()


@pytest.fixture(scope="module")
def world(demo_engine: Engine, demo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TileWorld]:
    conn = demo_engine.connect()
    outer = conn.begin()
    sessions = sessionmaker(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    tokens: dict[str, str] = {}
    agencies: dict[str, int | None] = {}
    with sessions() as session:
        for username in ("admin", "planner", "patroller01", "liaison"):
            user = session.scalar(select(m.User).where(m.User.county_code == COUNTY, m.User.username == username))
            tokens[username] = issue_token(session, user, "tiles test")[1]
            agencies[username] = user.agency_id
        session.commit()
    settings = Settings(_env_file=None, database_url=demo_url, county_code=COUNTY, secret_key="test-key",
                        data_dir=Path(tmp_path_factory.mktemp("tiles")))
    app = create_app_on(settings, Database(engine=demo_engine, sessions=sessions))
    try:
        yield TileWorld(app, conn, tokens, agencies)
    finally:
        outer.rollback()
        conn.close()


def create_app_on(settings: Settings, database: Database) -> Flask:
    from api.app import create_app

    return create_app(settings, database=database)


def decode(response) -> dict:
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.mimetype == MVT_MIMETYPE
    return mapbox_vector_tile.decode(response.get_data())


def cases_in_tile(world: TileWorld, z: int, x: int, y: int, *, margin: float = 0.0, where: str = "",
                  **params) -> int:
    """Count with SQL the (non-cancelled, non-merged) cases a tile covers."""
    return world.count(
        'SELECT count(*) FROM "case" c JOIN category k ON k.id = c.category_id '
        "WHERE c.county_code = :county AND c.status = ANY(:statuses) "
        # && alone compares float4 boxes, which reach a little beyond the tile: test exactly.
        "AND ST_Intersects(c.location, ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => :margin), 4326)) "
        + where,
        county=COUNTY, statuses=list(params.pop("statuses", DEFAULT_STATUSES)), z=z, x=x, y=y, margin=margin,
        **params)


def cluster_total(tile: dict) -> int:
    features = tile["cases"]["features"]
    assert all(f["properties"]["cluster"] is True for f in features)
    return sum(f["properties"]["count"] for f in features)


# --------------------------------------------------------------------------- cases


def test_a_z16_tile_at_the_county_seat_has_individual_cases(world: TileWorld) -> None:
    z, x, y = tile_of(*SEAT, 16)
    tile = decode(world.tile("cases", z, x, y))
    features = tile["cases"]["features"]
    assert features, "the demo county has cases at its seat"
    assert len(features) == cases_in_tile(world, z, x, y, margin=64 / 4096)
    for feature in features:
        props = feature["properties"]
        assert set(props) == {"id", "case_no", "status", "urgency", "category", "theme", "overdue"}
        assert feature["id"] == props["id"] and feature["geometry"]["type"] == "Point"
        assert props["status"] in DEFAULT_STATUSES and isinstance(props["overdue"], bool)
    some = features[0]["properties"]
    row = world.conn.execute(text('SELECT c.case_no, k.code, k.theme FROM "case" c JOIN category k '
                                  "ON k.id = c.category_id WHERE c.id = :id"), {"id": some["id"]}).one()
    assert (some["case_no"], some["category"], some["theme"]) == tuple(row)


def test_overdue_is_computed_in_sql(world: TileWorld) -> None:
    z, x, y = tile_of(*SEAT, 15)
    features = decode(world.tile("cases", z, x, y))["cases"]["features"]
    late = {f["properties"]["id"] for f in features if f["properties"]["overdue"]}
    expected = set(world.conn.execute(text(
        'SELECT id FROM "case" WHERE id = ANY(:ids) AND ((handled_at IS NULL AND due_at < now()) '
        "OR handled_at > due_at)"), {"ids": [f["properties"]["id"] for f in features]}).scalars())
    assert late == expected


def test_a_z8_tile_aggregates_the_county_and_stays_small(world: TileWorld) -> None:
    z, x, y = tile_of(*SEAT, 8)
    response = world.tile("cases", z, x, y)
    tile = decode(response)
    features = tile["cases"]["features"]
    assert 0 < len(features) <= MAX_CLUSTERS
    assert cluster_total(tile) == cases_in_tile(world, z, x, y)
    assert cluster_total(tile) > 9000  # the whole county is in this tile
    for feature in features:
        props = feature["properties"]
        by_status = {k: v for k, v in props.items() if k.startswith("count_")}
        assert sum(by_status.values()) == props["count"]
        assert set(by_status) <= {f"count_{s}" for s in DEFAULT_STATUSES}
    assert len(response.get_data()) < 50_000


def test_filters_by_status_category_theme_and_time(world: TileWorld) -> None:
    z, x, y = tile_of(*SEAT, 8)
    closed = decode(world.tile("cases", z, x, y, "?status=closed,evaluated"))
    assert cluster_total(closed) == cases_in_tile(world, z, x, y, statuses=("closed", "evaluated"))
    cancelled = decode(world.tile("cases", z, x, y, "?status=cancelled"))
    assert cluster_total(cancelled) == cases_in_tile(world, z, x, y, statuses=("cancelled",)) > 0
    themed = decode(world.tile("cases", z, x, y, "?theme=illegal_operation"))
    assert cluster_total(themed) == cases_in_tile(world, z, x, y, where="AND k.theme = 'illegal_operation'")
    code = world.count("SELECT k.code FROM category k JOIN \"case\" c ON c.category_id = k.id "
                       "GROUP BY k.code ORDER BY count(*) DESC LIMIT 1")
    by_code = decode(world.tile("cases", z, x, y, f"?category={code}"))
    assert cluster_total(by_code) == cases_in_tile(world, z, x, y, where="AND k.code = :code", code=code)
    # "+08:00" unencoded arrives as " 08:00"; both spellings are understood.
    for since in ("2021-07-01T00:00:00%2B08:00", "2021-07-01T00:00:00+08:00"):
        summer = decode(world.tile("cases", z, x, y, f"?since={since}&until=2021-09-01T00:00:00Z"))
        assert cluster_total(summer) == cases_in_tile(
            world, z, x, y, where="AND c.reported_at >= '2021-06-30T16:00:00Z' "
                                  "AND c.reported_at < '2021-09-01T00:00:00Z'")


def test_filters_by_assigned_squad(world: TileWorld) -> None:
    """The command centre's squad filter applies to the tiles too, at every zoom, by agency code."""
    z, x, y = tile_of(*SEAT, 8)
    everyone = cluster_total(decode(world.tile("cases", z, x, y)))
    codes = list(world.conn.execute(text(
        'SELECT a.code FROM "case" c JOIN agency a ON a.id = c.assigned_agency_id WHERE c.county_code = :c '
        "AND a.kind = 'squad' GROUP BY a.code ORDER BY count(*) DESC LIMIT 2"), {"c": COUNTY}).scalars())
    own = "AND c.assigned_agency_id IN (SELECT id FROM agency WHERE county_code = :county AND code = ANY(:codes))"
    one = cluster_total(decode(world.tile("cases", z, x, y, f"?squad={codes[0]}")))
    assert 0 < one == cases_in_tile(world, z, x, y, where=own, codes=codes[:1]) < everyone
    both = cluster_total(decode(world.tile("cases", z, x, y, f"?squad={codes[0]},{codes[1]}")))
    assert one < both == cases_in_tile(world, z, x, y, where=own, codes=codes) < everyone
    # Zoomed in, the points are filtered the same way.
    z16 = tile_of(*SEAT, 16)
    points = decode(world.tile("cases", *z16, f"?squad={codes[0]}"))["cases"]["features"]
    assigned = set(world.conn.execute(text(
        'SELECT c.id FROM "case" c JOIN agency a ON a.id = c.assigned_agency_id WHERE c.id = ANY(:ids) '
        "AND a.code = :code"), {"ids": [f["properties"]["id"] for f in points], "code": codes[0]}).scalars())
    assert points and assigned == {f["properties"]["id"] for f in points}
    assert world.tile("cases", z, x, y, "?squad=NO-SUCH-SQUAD").status_code == 204


def test_patrollers_and_liaisons_see_only_their_units_cases(world: TileWorld) -> None:
    z, x, y = tile_of(*SEAT, 8)
    everyone = cluster_total(decode(world.tile("cases", z, x, y)))
    for user in ("patroller01", "liaison"):
        own = cluster_total(decode(world.tile("cases", z, x, y, user=user)))
        expected = cases_in_tile(world, z, x, y, where="AND c.assigned_agency_id = :agency",
                                 agency=world.agencies[user])
        assert own == expected and 0 < own < everyone
    assert cluster_total(decode(world.tile("cases", z, x, y, user="planner"))) == everyone


def test_a_tile_stays_small_however_many_cases_exist(world: TileWorld) -> None:
    """Fill one z11 tile with 60,000 extra cases and one z14 tile beyond the point cap (rolled back)."""
    z11 = tile_of(*SEAT, 11)
    z14 = tile_of(*SEAT, 14)
    category = world.count("SELECT id FROM category WHERE county_code = :c ORDER BY id LIMIT 1", c=COUNTY)
    savepoint = world.conn.begin_nested()
    try:
        started = time.perf_counter()
        for (z, x, y), n in ((z11, 60_000), (z14, POINT_CAP + 1_000)):
            world.conn.execute(text("""
                INSERT INTO "case" (county_code, case_no, category_id, source, geom, location, reported_at)
                SELECT :county, 'SYN' || :z || '-' || g, :category, 'patroller', p, p, now()
                FROM (SELECT g, ST_SetSRID(ST_MakePoint(x0 + random() * (x1 - x0), y0 + random() * (y1 - y0)),
                                           4326) AS p
                      FROM generate_series(1, :n) g,
                           (SELECT ST_XMin(box) x0, ST_XMax(box) x1, ST_YMin(box) y0, ST_YMax(box) y1
                            FROM ST_Transform(ST_TileEnvelope(:z, :x, :y), 4326) box) e) s"""),
                {"county": COUNTY, "z": z, "x": x, "y": y, "n": n, "category": category})
        inserted_s = time.perf_counter() - started
        for z, x, y in (z11, z14):
            started = time.perf_counter()
            response = world.tile("cases", z, x, y)
            elapsed = time.perf_counter() - started
            tile = decode(response)
            assert MAX_CLUSTERS / 2 < len(tile["cases"]["features"]) <= MAX_CLUSTERS  # the tile is full
            assert cluster_total(tile) == cases_in_tile(world, z, x, y)
            assert len(response.get_data()) < 50_000, (z, len(response.get_data()))
            print(f"z{z}: {cluster_total(tile)} cases, {len(tile['cases']['features'])} clusters, "
                  f"{len(response.get_data())} bytes, {elapsed * 1000:.0f} ms (insert {inserted_s:.1f} s)")
        assert cluster_total(decode(world.tile("cases", *z14))) > POINT_CAP
    finally:
        savepoint.rollback()


def test_beyond_the_point_cap_a_high_zoom_tile_is_aggregated(world: TileWorld) -> None:
    z, x, y = tile_of(*SEAT, 16)
    session = sessionmaker(bind=world.conn, join_transaction_mode="create_savepoint")()
    try:
        capped = mapbox_vector_tile.decode(render_tile(session, LAYERS["cases"], TileAddress(z, x, y), COUNTY,
                                                       CaseFilter(), point_cap=3))
        points = mapbox_vector_tile.decode(render_tile(session, LAYERS["cases"], TileAddress(z, x, y), COUNTY,
                                                       CaseFilter()))
    finally:
        session.close()
    assert len(points["cases"]["features"]) > 3
    assert cluster_total(capped) == cases_in_tile(world, z, x, y)


def test_cases_tiles_are_private_short_lived_and_conditional(world: TileWorld) -> None:
    z, x, y = tile_of(*SEAT, 16)
    first = world.tile("cases", z, x, y)
    assert first.headers["Cache-Control"] == "private, max-age=15"
    assert "Authorization" in first.headers["Vary"]
    etag = first.headers["ETag"]
    again = world.get(f"/api/v1/tiles/cases/{z}/{x}/{y}.mvt", **{"If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""


# --------------------------------------------------------------------------- other layers


def _tile_with(world: TileWorld, sql: str, z: int) -> tuple[int, int, int]:
    lon, lat = world.conn.execute(text(sql)).one()
    return tile_of(lon, lat, z)


@pytest.mark.parametrize(("layer", "sql", "z", "props"), [
    ("grid_cells", None, 15, {"id", "code", "community", "admin_unit_id", "squad_id", "area_m2"}),
    ("jurisdictions", None, 8, {"id", "agency_id", "agency_code", "name", "name_en", "version"}),
    ("admin_units", None, 8, {"id", "code", "name", "name_en", "level"}),
    ("illegal_structures",
     "SELECT ST_X(ST_PointOnSurface(footprint)), ST_Y(ST_PointOnSurface(footprint)) FROM illegal_structure "
     "ORDER BY id LIMIT 1", 15, {"id", "stage", "area_m2", "discovered_on"}),
    ("fume_sites", "SELECT ST_X(geom), ST_Y(geom) FROM fume_site ORDER BY id LIMIT 1", 15,
     {"id", "name", "size_class", "cooking_heads", "purifier_installed"}),
])
def test_other_layers(world: TileWorld, layer: str, sql: str | None, z: int, props: set[str]) -> None:
    z, x, y = _tile_with(world, sql, z) if sql else tile_of(*SEAT, z)
    response = world.tile(layer, z, x, y)
    features = decode(response)[layer]["features"]
    assert features and all(props <= set(f["properties"]) for f in features)
    assert response.headers["Cache-Control"].startswith("private, max-age=")
    if layer == "jurisdictions":
        squads = world.count("SELECT count(*) FROM jurisdiction j JOIN agency a ON a.id = j.agency_id "
                             "WHERE a.kind = 'squad' AND j.valid_to IS NULL")
        assert len({f["properties"]["agency_id"] for f in features}) == squads


def test_grid_cells_thin_out_by_cell_size_at_low_zoom(world: TileWorld) -> None:
    z8 = world.tile("grid_cells", *tile_of(*SEAT, 8))
    z15 = decode(world.tile("grid_cells", *tile_of(*SEAT, 15)))
    assert z8.status_code == 204  # 1 km cells are under three pixels at z8
    assert min(f["properties"]["area_m2"] for f in z15["grid_cells"]["features"]) <= 10_000  # urban cells
    z10 = world.tile("grid_cells", *tile_of(*SEAT, 10))
    sizes = [f["properties"]["area_m2"] for f in decode(z10)["grid_cells"]["features"]]
    assert min(sizes) >= (3 * TileAddress(10, 0, 0).metres_per_pixel()) ** 2
    assert len(z10.get_data()) < 100_000


def test_an_empty_tile_is_204(world: TileWorld) -> None:
    response = world.tile("cases", *tile_of(-30.0, 0.0, 12))
    assert response.status_code == 204 and response.get_data() == b""


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("path", "field"), [
    ("cases/23/0/0.mvt", "z"),
    ("cases/-1/0/0.mvt", "z"),
    ("cases/abc/0/0.mvt", "z"),
    ("cases/8/256/100.mvt", "x"),
    ("cases/8/210/-1.mvt", "y"),
    ("cases/0/0/1.mvt", "y"),
    ("cases/8/210/100.mvt?status=lost", "status"),
    ("cases/8/210/100.mvt?theme=nope", "theme"),
    ("cases/8/210/100.mvt?squad=" + "Z" * 33, "squad"),
    ("cases/8/210/100.mvt?since=2021-07-01T00:00:00", "since"),
    ("cases/8/210/100.mvt?since=2021-07-01T00:00:00Z&until=2021-06-01T00:00:00Z", "until"),
])
def test_bad_requests_are_400_naming_the_field(world: TileWorld, path: str, field: str) -> None:
    response = world.get(f"/api/v1/tiles/{path}")
    assert response.status_code == 400 and response.mimetype == PROBLEM
    assert any(e["field"].startswith(field) for e in response.get_json()["errors"]), response.get_json()


def test_unknown_layer_is_404_listing_the_layers(world: TileWorld) -> None:
    response = world.tile("roads", 8, 210, 100)
    assert response.status_code == 404 and response.mimetype == PROBLEM
    detail = response.get_json()["detail"]
    assert all(name in detail for name in LAYERS)


def test_tiles_need_a_signed_in_user(world: TileWorld) -> None:
    response = world.tile("cases", 8, 210, 100, user=None)
    assert response.status_code == 401 and response.mimetype == PROBLEM
    assert world.tile("roads", 8, 210, 100, user=None).status_code == 401
