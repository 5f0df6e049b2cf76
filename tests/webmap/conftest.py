"""The map pages on a committed mini county of their own, served over real HTTP, and a headless Chromium.

The browser is Debian's Chromium (``/usr/bin/chromium``) driven by Playwright for Python; nothing is
downloaded. When it is missing the tests fail and say how to install it: they are never skipped.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import shapely
from flask import Flask
from sqlalchemy import Engine, create_engine, update
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.security import generate_password_hash
from werkzeug.serving import BaseWSGIServer, make_server

from gis_platform import models as m
from gis_platform.cli import upgrade_database
from gis_platform.db import Database
from gis_platform.geometry import to_ewkt
from gis_platform.settings import Settings
from tests.factories import MiniCounty, make_county
from webmap import assets

COUNTY = "379941"
PASSWORD = "Map@2026"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("GIS_TEST_ARTIFACTS", ROOT / "var" / "test-artifacts")) / "webmap"
WEST_POINT = [115.72, 36.02]  # inside squad SQ-west (tests/factories.make_county)
EAST_POINT = [115.78, 36.02]


@dataclass
class MapWorld:
    """An app on a committed mini county, served on a loopback port."""

    app: Flask
    engine: Engine
    county: MiniCounty
    origin: str
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)

    def api(self):
        """Return a test client of the same app (its writes commit, so the browser sees them)."""
        return self.app.test_client()

    def token(self, username: str) -> dict[str, str]:
        """Return an Authorization header for a user of the mini county (cached)."""
        if username not in self.tokens:
            response = self.api().post("/api/v1/auth/tokens", json={"username": username, "password": PASSWORD})
            assert response.status_code == 201, response.get_json()
            self.tokens[username] = {"Authorization": f"Bearer {response.get_json()['token']}"}
        return self.tokens[username]

    def report(self, *, point: list[float] = WEST_POINT, description: str = "占道经营", address: str | None = None,
               urgency: str = "normal", user: str = "op") -> dict[str, Any]:
        """Report a case through the API and return it."""
        response = self.api().post("/api/v1/cases", headers=self.token(user), json={
            "category": "TD02", "geometry": {"type": "Point", "coordinates": point}, "description": description,
            "address": address, "urgency": urgency})
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def step(self, case: dict[str, Any], action: str, user: str, **body: Any) -> dict[str, Any]:
        """Take a step of the closed loop through the API and return the case."""
        response = self.api().post(f"/api/v1/cases/{case['id']}/transitions", headers=self.token(user),
                                   json={"action": action, "version": case["version"], **body})
        assert response.status_code == 200, response.get_json()
        return response.get_json()


def _add_themes(session: Session, county: MiniCounty) -> None:
    """Add an illegal-structure footprint and a fume site, so every layer of the command map has data."""
    footprint = shapely.box(115.7205, 36.0205, 115.7215, 36.0212)
    session.add(m.IllegalStructure(
        county_code=county.code, address="西镇 违建 1 号", footprint=to_ewkt(shapely.MultiPolygon([footprint])),
        area_m2=7000.0, stage="discovered", discovered_at=datetime(2026, 1, 5, tzinfo=UTC),
        admin_unit_id=county.units["west"], squad_id=county.agencies["squad_west"]))
    session.add(m.FumeSite(
        county_code=county.code, name="老街烧烤", address="西镇老街 8 号", cooking_heads=3, size_class="medium",
        purifier_installed=True, purifier_efficiency=80.0, geom=to_ewkt(shapely.Point(115.725, 36.021)),
        admin_unit_id=county.units["west"], squad_id=county.agencies["squad_west"]))


@pytest.fixture(scope="session")
def built_assets() -> Path:
    """Return the vendor folder, building it from node_modules when that is installed but not yet copied."""
    try:
        assets.verify()
    except assets.AssetsError:
        try:
            assets.build()
        except assets.AssetsError as exc:
            pytest.fail(f"the map pages' front-end files are not built: {exc}", pytrace=False)
    return assets.VENDOR


@contextmanager
def serving_app(engine: Engine, url: str, county_code: str, data_dir: Path, secret: str) -> Iterator[tuple[Flask, str]]:
    """Serve the app for a committed county on 127.0.0.1 (a free port, no basemap); yield it and its origin."""
    from api.app import create_app
    from api.events import stop_hub

    settings = Settings(_env_file=None, database_url=url, county_code=county_code, tile_url="", data_dir=data_dir,
                        secret_key=secret)
    app = create_app(settings, database=Database(engine=engine, sessions=sessionmaker(engine,
                                                                                      expire_on_commit=False)))
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.server_port}"
    finally:
        stop_hub(app)
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="session")
def map_world(pg_server, tmp_path_factory: pytest.TempPathFactory, built_assets: Path) -> Iterator[MapWorld]:
    """Serve the app for a committed mini county on 127.0.0.1 (a free port), with no basemap configured."""
    url = pg_server.create(f"gis_test_webmap_{os.getpid()}")
    upgrade_database(url)
    engine = create_engine(url)
    with Session(engine) as session, session.begin():
        county = make_county(session, COUNTY)
        session.execute(update(m.User).where(m.User.county_code == COUNTY)
                        .values(password_hash=generate_password_hash(PASSWORD)))
        _add_themes(session, county)
    try:
        with serving_app(engine, url, COUNTY, tmp_path_factory.mktemp("webmap-data"), "webmap-test-secret") as (
                app, origin):
            yield MapWorld(app=app, engine=engine, county=county, origin=origin)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Return Debian's Chromium, headless, driven by Playwright; fail (never skip) when it is missing."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's Chromium "
                    "(apt-get install chromium; `make test` installs it when run as root)", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright for Python is missing: pip install -e '.[test]' (never `playwright install`)",
                    pytrace=False)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class CommandSession:
    """A signed-in command-centre page, with every request it made and every dialog it opened."""

    page: Any
    origin: str
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def sign_in(page: Any, origin: str, username: str, path: str = "/command") -> None:
    """Open a page as an anonymous browser, follow the redirect to the login form and sign in."""
    page.goto(origin + path)
    assert page.url.startswith(origin + "/login?next=")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")


@pytest.fixture(scope="module")
def command(browser: Any, map_world: MapWorld) -> Iterator[CommandSession]:
    """Sign in as the operator and open /command, recording requests, dialogs and script errors."""
    context = browser.new_context(viewport={"width": 1600, "height": 900}, locale="zh-CN",
                                  timezone_id="Asia/Shanghai")
    page = context.new_page()
    page.set_default_timeout(10_000)
    session = CommandSession(page=page, origin=map_world.origin)
    page.on("request", lambda request: session.requests.append(request.url))
    page.on("dialog", lambda dialog: (session.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: session.errors.append(str(error)))
    sign_in(page, map_world.origin, "op")
    page.wait_for_selector(".leaflet-container")
    try:
        yield session
    finally:
        context.close()


def save_screenshot(page: Any, name: str) -> Path:
    """Save a screenshot as a test artifact (and the command centre's also as /tmp/command.png)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    if name == "command":
        Path("/tmp/command.png").write_bytes(path.read_bytes())
    return path


# -- the planning page's world: a year of cases on a finer grid -----------------------------------------------
PLANNING_COUNTY = "379961"
PLANNING_CELL_DEG = 0.005  # 10 × 10 cells per town of the mini county (about 450 m × 555 m)
PLANNING_GRID_SINCE = datetime(2020, 6, 1, tzinfo=UTC)
PLANNING_YEAR = 2021


def _planning_grid(session: Session, county: MiniCounty) -> dict[tuple[int, int], m.GridCell]:
    """Retire the mini county's two town-sized cells and cover each town with 10 × 10 smaller ones."""
    session.execute(update(m.GridCell).where(m.GridCell.county_code == county.code)
                    .values(valid_to=PLANNING_GRID_SINCE))
    cells: dict[tuple[int, int], m.GridCell] = {}
    d = PLANNING_CELL_DEG
    for col in range(20):
        town, town_code = ("west", "101") if col < 10 else ("east", "102")
        for row in range(10):
            box = shapely.box(115.70 + col * d, 36.00 + row * d, 115.70 + (col + 1) * d, 36.00 + (row + 1) * d)
            cells[col, row] = m.GridCell(
                county_code=county.code, code=f"{county.code}{town_code}{col % 10 + 1:03d}{row + 1:02d}",
                admin_unit_id=county.units[town], squad_id=county.agencies[f"squad_{town}"],
                community=f"{col % 10 + 1:03d}", area_m2=2.5e5, valid_from=PLANNING_GRID_SINCE,
                geom=to_ewkt(shapely.MultiPolygon([box])))
    session.add_all(cells.values())
    session.flush()
    return cells


def _planning_cases(session: Session, county: MiniCounty, cells: dict[tuple[int, int], m.GridCell]) -> None:
    """Add a year of closed cases with their event histories: a western cluster that grows month by month,
    an eastern one busy in summer, a few market cases scattered over the county, a few reports cancelled
    as invalid (not cases) and two cases outside every cell. One in ten is handled late."""
    from datetime import timedelta

    import numpy as np
    from sqlalchemy import insert

    from gis_platform.workcalendar import SHANGHAI

    rng = np.random.default_rng(20210)
    rows: list[tuple[datetime, float, float, str, str, bool]] = []  # reported, lon, lat, category, status, in a cell
    for month in range(1, 13):
        groups = (((115.722, 36.022), 4 + 2 * month, 0.004, "TD02"),
                  ((115.778, 36.038), 10 if month in (6, 7, 8) else 2, 0.003, "TD02"),
                  ((115.75, 36.025), 3, 0.02, "MS03"))
        for (lon, lat), n, spread, category in groups:
            for _ in range(n):
                x = float(np.clip(rng.normal(lon, spread), 115.7001, 115.7999))
                y = float(np.clip(rng.normal(lat, spread), 36.0001, 36.0499))
                when = datetime(PLANNING_YEAR, month, int(rng.integers(1, 29)), int(rng.integers(8, 21)),
                                int(rng.integers(0, 60)), tzinfo=SHANGHAI)
                rows.append((when, x, y, category, "closed", True))
        rows.append((datetime(PLANNING_YEAR, month, 15, 10, tzinfo=SHANGHAI), 115.721, 36.021, "TD02", "cancelled",
                     True))
    rows += [(datetime(PLANNING_YEAR, 5, 20, 9, tzinfo=SHANGHAI), 115.73, 36.03, "TD02", "closed", False),
             (datetime(PLANNING_YEAR, 9, 20, 9, tzinfo=SHANGHAI), 115.77, 36.01, "TD02", "closed", False)]
    cases: list[dict] = []
    for n, (when, x, y, category, status, in_cell) in enumerate(sorted(rows, key=lambda r: r[0])):
        col, row = int((x - 115.70) // PLANNING_CELL_DEG), int((y - 36.00) // PLANNING_CELL_DEG)
        town = "west" if col < 10 else "east"
        agency = county.agencies[f"squad_{town}"] if category == "TD02" else county.agencies["team"]
        point = to_ewkt(shapely.Point(x, y))
        case = dict(
            county_code=county.code, case_no=f"PL{PLANNING_YEAR}{n + 1:05d}", category_id=county.categories[category],
            source="patroller", status=status, urgency="normal", description="规划页测试案件", geom=point,
            location=point, admin_unit_id=county.units[town],
            grid_cell_id=cells[col, row].id if in_cell else None, assigned_agency_id=agency,
            owner_agency_id=agency, reported_at=when, version=6 if status == "closed" else 2, dispatched_at=None,
            handled_at=None, closed_at=None, steps=[])
        t = when
        steps = case["steps"]
        steps.append(("report", None, "reported", t, None))
        if status == "cancelled":
            steps.append(("cancel", "reported", "cancelled", t + timedelta(minutes=10), None))
        else:
            dispatched = t + timedelta(minutes=30)
            feedback = dispatched + (timedelta(days=15) if n % 10 == 3 else timedelta(hours=1))  # one in ten late
            steps += [("file", "reported", "filed", t + timedelta(minutes=10), None),
                      ("dispatch", "filed", "dispatched", dispatched, {"assigned_agency_id": agency}),
                      ("accept", "dispatched", "accepted", dispatched + timedelta(minutes=10), None),
                      ("feedback", "accepted", "handled", feedback, None),
                      ("close", "handled", "closed", feedback + timedelta(hours=1), None)]
            case.update(dispatched_at=dispatched, handled_at=feedback, closed_at=feedback + timedelta(hours=1))
        cases.append(case)
    # Bulk inserts (a few hundred cases, some two thousand events): the fixture stays quick.
    ids = session.scalars(insert(m.Case.__table__).returning(m.Case.id, sort_by_parameter_order=True),
                          [{k: v for k, v in c.items() if k != "steps"} for c in cases]).all()
    # RETURNING makes SQLAlchemy send the rows as a few multi-row INSERTs rather than one statement each.
    session.scalars(insert(m.CaseEvent.__table__).returning(m.CaseEvent.id), [
        dict(county_code=county.code, case_id=case_id, seq=seq, action=action, from_status=frm, to_status=to, at=at,
             data=data)
        for case_id, case in zip(ids, cases) for seq, (action, frm, to, at, data) in enumerate(case["steps"], 1)])


@pytest.fixture(scope="session")
def planning_world(pg_server, tmp_path_factory: pytest.TempPathFactory, built_assets: Path) -> Iterator[MapWorld]:
    """Serve the app for a mini county with a 200-cell grid and a year (2021) of cases, on 127.0.0.1."""
    from grids.pg_engine import rebuild_lookup

    url = pg_server.create(f"gis_test_planning_{os.getpid()}")
    upgrade_database(url)
    engine = create_engine(url)
    with Session(engine) as session, session.begin():
        county = make_county(session, PLANNING_COUNTY)
        session.execute(update(m.User).where(m.User.county_code == PLANNING_COUNTY)
                        .values(password_hash=generate_password_hash(PASSWORD)))
        cells = _planning_grid(session, county)
        rebuild_lookup(session, PLANNING_COUNTY)
        _planning_cases(session, county, cells)
    try:
        with serving_app(engine, url, PLANNING_COUNTY, tmp_path_factory.mktemp("planning-data"),
                         "planning-test-secret") as (app, origin):
            yield MapWorld(app=app, engine=engine, county=county, origin=origin)
    finally:
        engine.dispose()


def planning_cell_counts(world: MapWorld, start: datetime, end: datetime,
                         category: str | None = None) -> dict[str, int]:
    """Return the cases per grid cell code reported in [start, end), straight from the database."""
    from sqlalchemy import text

    query = text("""
        SELECT g.code, count(*) FROM "case" c
        JOIN grid_cell g ON g.id = c.grid_cell_id JOIN category k ON k.id = c.category_id
        WHERE c.county_code = :county AND c.status NOT IN ('cancelled', 'merged')
          AND c.reported_at >= :start AND c.reported_at < :end AND (CAST(:category AS text) IS NULL OR k.code = :category)
        GROUP BY g.code""")
    with world.engine.connect() as conn:
        return dict(conn.execute(query, {"county": world.county.code, "start": start, "end": end,
                                         "category": category}).all())
