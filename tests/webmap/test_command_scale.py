"""/command stays bounded as cases grow: the page, its first data, its markers and its tiles.

A mini county of its own is loaded with 100 synthetic cases (``bench.synthetic``), /command is opened
cold and measured; then the county gets 50,000 cases reported over three days, so that thousands are
open and waiting, and the page is measured again. What the page loads must not grow with the cases:
the same HTML, a bounded queue with the full count, tiles (counted first, never downloaded as points)
once more cases are in view than markers allowed, small aggregated tiles at county zoom, never more
than 2,000 markers in the DOM, and the squad filter applied by the tiles themselves. Budget: about
40 s on an idle 2-core machine, most of it the 50,000-case load and two cold page loads.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import pytest
from flask import Flask
from sqlalchemy import Engine, create_engine, text, update
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from api.tiles import CLUSTER_CELL, EXTENT, POINT_CAP
from bench.synthetic import SyntheticSpec, insert_cases
from bench.webmap import PROBE, SNAPSHOT, Network
from gis_platform import models as m
from gis_platform import vocab
from gis_platform.cli import upgrade_database
from tests.factories import MiniCounty, make_county
from tests.webmap.conftest import PASSWORD, save_screenshot, serving_app, sign_in
from webmap.command import MAX_MARKERS, QUEUE_LIMIT

COUNTY = "379951"
SMALL, LARGE = 100, 50_000
WEST_CENTRE = (115.725, 36.025)
MAX_CLUSTERS = (EXTENT // CLUSTER_CELL) ** 2
CLUSTER_TILE_BYTES = 20_000  # a tile of at most MAX_CLUSTERS clusters (about 50 bytes each)
TILE_BYTES = max(CLUSTER_TILE_BYTES, POINT_CAP * 64)  # or of at most POINT_CAP points
SCREEN_TILES = 40  # tiles of one zoom covering a 1600 × 900 window, with Leaflet's margin
SUMMARY_BYTES = 1_500  # one case of the queue, as JSON


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    """Return the XYZ tile holding a point."""
    n = 2**z
    return z, int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


@dataclass
class ScaleWorld:
    """The app on a committed mini county, served on loopback, and what /command loaded at each size."""

    app: Flask
    engine: Engine
    county: MiniCounty
    origin: str
    loads: dict[int, dict[str, Any]] = field(default_factory=dict)
    html: dict[int, str] = field(default_factory=dict)

    def token(self, username: str = "op") -> dict[str, str]:
        response = self.app.test_client().post("/api/v1/auth/tokens",
                                               json={"username": username, "password": PASSWORD})
        assert response.status_code == 201, response.get_json()
        return {"Authorization": f"Bearer {response.get_json()['token']}"}

    def add_cases(self, n: int, seed: int) -> None:
        # Reported over three days up to now: thousands still open and waiting, as in a busy week.
        with self.engine.begin() as conn:
            insert_cases(conn, COUNTY, SyntheticSpec(n, seed=seed, span_days=3))

    def count(self, sql: str, **params: Any) -> int:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), {"c": COUNTY, **params}).scalar_one()


def open_command(browser: Any, world: ScaleWorld) -> tuple[Any, Any, Network]:
    """Sign in in a new context (empty cache) and open /command; return context, page and its network."""
    context = browser.new_context(viewport={"width": 1600, "height": 900}, locale="zh-CN",
                                  timezone_id="Asia/Shanghai")
    context.add_init_script(PROBE)
    page = context.new_page()
    page.set_default_timeout(30_000)
    network = Network(page)
    sign_in(page, world.origin, "op")
    page.wait_for_function("() => window.__gisBench && window.__gisBench.ready != null")
    network.wait_quiet(page, quiet_s=0.5, limit_s=30)
    return context, page, network


def measure(browser: Any, world: ScaleWorld, cases: int) -> None:
    """Open /command cold and keep what it loaded, and its HTML."""
    context, page, _network = open_command(browser, world)
    try:
        world.loads[cases] = page.evaluate(SNAPSHOT)
        world.html[cases] = page.content()
        save_screenshot(page, f"command-scale-{cases}")
    finally:
        context.close()


@pytest.fixture(scope="module")
def world(pg_server, tmp_path_factory: pytest.TempPathFactory, built_assets: Path, browser: Any
          ) -> Iterator[ScaleWorld]:
    """Serve a mini county; measure /command with 100 cases, then fill the county up to 50,000."""
    url = pg_server.create(f"gis_test_scale_{os.getpid()}")
    upgrade_database(url)
    engine = create_engine(url)
    with Session(engine) as session, session.begin():
        county = make_county(session, COUNTY)
        session.execute(update(m.User).where(m.User.county_code == COUNTY)
                        .values(password_hash=generate_password_hash(PASSWORD)))
    try:
        with serving_app(engine, url, COUNTY, tmp_path_factory.mktemp("scale-data"), "scale-test-secret") as (
                app, origin):
            world = ScaleWorld(app, engine, county, origin)
            world.add_cases(SMALL, seed=1)
            measure(browser, world, SMALL)
            world.add_cases(LARGE - SMALL, seed=2)
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text('VACUUM ANALYZE "case"'))
            measure(browser, world, LARGE)
            yield world
    finally:
        engine.dispose()


def test_the_county_is_busy(world: ScaleWorld) -> None:
    assert world.count('SELECT count(*) FROM "case" WHERE county_code = :c') == LARGE
    waiting = world.count("SELECT count(*) FROM \"case\" WHERE county_code = :c "
                          "AND status IN ('reported', 'filed', 'returned')")
    open_ = world.count('SELECT count(*) FROM "case" WHERE county_code = :c AND status = ANY(:s)',
                        s=list(vocab.OPEN_STATUSES))
    assert waiting > 2 * QUEUE_LIMIT and open_ > 4 * MAX_MARKERS, (waiting, open_)


def test_the_page_and_its_first_data_do_not_grow_with_the_cases(world: ScaleWorld) -> None:
    small, large = world.loads[SMALL], world.loads[LARGE]
    # The same page: only the CSRF token and the queue differ, and the queue is filled in by the script.
    assert abs(large["html_bytes"] - small["html_bytes"]) < 200, (small["html_bytes"], large["html_bytes"])
    # The queue shows a bounded part and counts them all.
    waiting = world.count("SELECT count(*) FROM \"case\" WHERE county_code = :c "
                          "AND status IN ('reported', 'filed', 'returned')")
    assert large["queue_count"] == waiting
    assert QUEUE_LIMIT <= large["queue_items"] <= 2 * QUEUE_LIMIT
    # With 100 cases the whole county is drawn as markers. With 50,000 more open cases are in view than
    # markers allowed: they are counted (never downloaded as points) and drawn from tiles, a screen of
    # them at most, each within its bound, and no marker is left in the DOM.
    assert small["mode"] == "markers" and small["dom_markers"] == small["layer_markers"] > 0
    assert large["mode"] == "tiles" and large["dom_markers"] == 0 == large["layer_markers"]
    assert 0 < large["requests"]["tiles"] <= SCREEN_TILES
    assert large["bytes"]["tiles"] <= large["requests"]["tiles"] * TILE_BYTES, large["bytes"]
    # The API's answers (areas, queue, counts) grow by two pages of the queue at most.
    assert large["bytes"]["data"] - small["bytes"]["data"] <= 2 * QUEUE_LIMIT * SUMMARY_BYTES, (
        small["bytes"], large["bytes"])
    # The DOM grows by the queue's items only.
    assert large["dom_nodes"] - small["dom_nodes"] < 2 * QUEUE_LIMIT * 15, (small["dom_nodes"], large["dom_nodes"])


def test_markers_stay_under_the_cap_when_zoomed_in(world: ScaleWorld, browser: Any) -> None:
    context, page, network = open_command(browser, world)
    layer = "GisMap.layers.cases"
    count = "document.querySelectorAll('path.gis-case, .leaflet-marker-icon').length"
    try:
        # A few streets: the open cases in view fit under the cap and are drawn as markers.
        page.evaluate(f"void GisMap.map.setView([{WEST_CENTRE[1]}, {WEST_CENTRE[0]}], 18, {{animate: false}})")
        page.wait_for_function(f"() => {layer}.mode === 'markers' && {layer}.markerCount() > 0")
        network.wait_quiet(page, quiet_s=0.5, limit_s=30)
        markers = page.evaluate(count)
        assert 0 < markers == page.evaluate(f"{layer}.markerCount()") <= MAX_MARKERS
        # A town at detail zoom holds more open cases than the cap: tiles, and no marker left behind.
        page.evaluate(f"void GisMap.map.setView([{WEST_CENTRE[1]}, {WEST_CENTRE[0]}], 15, {{animate: false}})")
        page.wait_for_function(f"() => {layer}.mode === 'tiles'")
        network.wait_quiet(page, quiet_s=0.5, limit_s=30)
        assert page.evaluate(f"{layer}.matched") > MAX_MARKERS
        assert page.evaluate(count) == 0 == page.evaluate(f"{layer}.markerCount()")
        # Over the cap, the points in view were counted (limit=1), never downloaded.
        items = page.evaluate("performance.getEntriesByType('resource').map(e => e.name)"
                              ".filter(u => u.includes('/api/v1/layers/cases/items'))")
        assert items and items[-1].endswith("&limit=1"), items[-3:]
    finally:
        context.close()


def test_tiles_at_county_zoom_stay_small_and_count_every_open_case(world: ScaleWorld) -> None:
    client, auth = world.app.test_client(), world.token()
    total = 0
    for z in (11, 12):
        _, x0, y0 = tile_of(115.70, 36.05, z)
        _, x1, y1 = tile_of(115.7999, 36.0001, z)
        total = 0
        for x in range(x0, x1 + 1):
            for y in range(y0, y1 + 1):
                response = client.get(f"/api/v1/tiles/cases/{z}/{x}/{y}.mvt?status={','.join(vocab.OPEN_STATUSES)}",
                                      headers=auth)
                if response.status_code == 204:
                    continue
                assert response.status_code == 200 and len(response.get_data()) < CLUSTER_TILE_BYTES
                features = mapbox_vector_tile.decode(response.get_data())["cases"]["features"]
                assert 0 < len(features) <= MAX_CLUSTERS and all(f["properties"]["cluster"] for f in features)
                total += sum(f["properties"]["count"] for f in features)
        assert total == world.count('SELECT count(*) FROM "case" WHERE county_code = :c AND status = ANY(:s)',
                                    s=list(vocab.OPEN_STATUSES))


def test_the_squad_filter_applies_to_the_tiles(world: ScaleWorld, browser: Any) -> None:
    client, auth = world.app.test_client(), world.token()
    z, x, y = tile_of(*WEST_CENTRE, 8)  # the whole mini county
    counts = {}
    for squad in ("SQ-west", "SQ-east"):
        response = client.get(f"/api/v1/tiles/cases/{z}/{x}/{y}.mvt?squad={squad}&status=closed,evaluated",
                              headers=auth)
        features = mapbox_vector_tile.decode(response.get_data())["cases"]["features"]
        counts[squad] = sum(f["properties"]["count"] for f in features)
        assert counts[squad] == world.count(
            'SELECT count(*) FROM "case" c JOIN agency a ON a.id = c.assigned_agency_id WHERE c.county_code = :c '
            "AND a.code = :code AND c.status IN ('closed', 'evaluated')", code=squad) > 0
    # On the page, at a low zoom, choosing a squad reloads the tiles with it; no point is fetched instead.
    context, page, network = open_command(browser, world)
    try:
        page.evaluate(f"void GisMap.map.setView([{WEST_CENTRE[1]}, {WEST_CENTRE[0]}], 12, {{animate: false}})")
        network.wait_quiet(page, quiet_s=0.5, limit_s=30)
        seen = page.evaluate("performance.getEntriesByType('resource').length")
        page.select_option('#filters select[name="squad"]', "SQ-east")
        page.wait_for_function("() => GisMap.layers.cases._tilesUrl.includes('squad=SQ-east')")
        network.wait_quiet(page, quiet_s=0.5, limit_s=30)
        assert page.evaluate("GisMap.layers.cases.mode") == "tiles"
        urls = page.evaluate(f"performance.getEntriesByType('resource').slice({seen}).map(e => e.name)")
        assert any("/api/v1/tiles/cases/12/" in url and "squad=SQ-east" in url for url in urls), urls
        assert not any("/api/v1/layers/cases/items" in url for url in urls), urls
    finally:
        context.close()
