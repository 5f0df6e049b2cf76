"""The map pages on a committed mini county of their own, served over real HTTP, and a headless Chromium.

The browser is Debian's Chromium (``/usr/bin/chromium``) driven by Playwright for Python; nothing is
downloaded. When it is missing the tests fail and say how to install it: they are never skipped.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
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


@pytest.fixture(scope="session")
def map_world(pg_server, tmp_path_factory: pytest.TempPathFactory, built_assets: Path) -> Iterator[MapWorld]:
    """Serve the app for a committed mini county on 127.0.0.1 (a free port), with no basemap configured."""
    from api.app import create_app
    from api.events import stop_hub

    url = pg_server.create(f"gis_test_webmap_{os.getpid()}")
    upgrade_database(url)
    engine = create_engine(url)
    with Session(engine) as session, session.begin():
        county = make_county(session, COUNTY)
        session.execute(update(m.User).where(m.User.county_code == COUNTY)
                        .values(password_hash=generate_password_hash(PASSWORD)))
        _add_themes(session, county)
    settings = Settings(_env_file=None, database_url=url, county_code=COUNTY, tile_url="",
                        data_dir=tmp_path_factory.mktemp("webmap-data"), secret_key="webmap-test-secret")
    app = create_app(settings, database=Database(engine=engine, sessions=sessionmaker(engine,
                                                                                      expire_on_commit=False)))
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield MapWorld(app=app, engine=engine, county=county, origin=f"http://127.0.0.1:{server.server_port}")
    finally:
        stop_hub(app)
        server.shutdown()
        server.server_close()
        thread.join(5)
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
