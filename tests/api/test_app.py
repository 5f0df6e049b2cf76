"""The app factory, error rendering, health, summary and landing page, on a real PostGIS."""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from geoalchemy2.elements import WKTElement
from sqlalchemy import create_engine, delete, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from api.app import create_app, get_session
from gis_platform import vocab
from gis_platform.cli import upgrade_database
from gis_platform.db import Database, open_database
from gis_platform.models import AdminUnit, Agency, Case, Category, Power
from gis_platform.settings import Settings

COUNTY = "371521"
UNREACHABLE_URL = "postgresql+psycopg://postgres@127.0.0.1:1/x"
EXTERNAL_ASSET = re.compile(r"https?://", re.IGNORECASE)
PROBLEM = "application/problem+json"


def _settings(data_dir: Path, url: str, **overrides) -> Settings:
    values = {"DATABASE_URL": url, "data_dir": data_dir, "county_code": COUNTY, "secret_key": "test-key"}
    return Settings(_env_file=None, **{**values, **overrides})


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """Yield a fresh migrated database: on DATABASE_URL's server if set, else in a local cluster."""
    base = os.environ.get("DATABASE_URL")
    if base:
        base = Settings(_env_file=None, DATABASE_URL=base).database_url
        name = f"test_api_{uuid.uuid4().hex[:12]}"
        admin = create_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        quoted = admin.dialect.identifier_preparer.quote(name)
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {quoted}"))
        url = make_url(base).set(database=name).render_as_string(hide_password=False)
        try:
            upgrade_database(url)
            yield url
        finally:
            with admin.connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
            admin.dispose()
        return
    from gis_platform.pgcluster import LocalCluster

    # World-traversable, so a cluster started as root needs no relocation out of the tmp dir.
    data_dir = Path(tempfile.mkdtemp(prefix="gis-api-test-"))
    data_dir.chmod(0o755)
    cluster = LocalCluster(data_dir=data_dir)
    try:
        url = cluster.ensure()
        upgrade_database(url)
        yield url
    finally:
        cluster.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def database(database_url: str) -> Iterator[Database]:
    db = open_database(Settings(_env_file=None, DATABASE_URL=database_url))
    yield db
    db.dispose()


@pytest.fixture()
def settings(tmp_path: Path, database_url: str) -> Settings:
    return _settings(tmp_path / "var", database_url, max_upload_mb=0.01)


def _add_test_routes(app: Flask) -> None:
    @app.get("/api/v1/_boom")
    def api_boom():
        raise RuntimeError("secret internal detail")

    @app.get("/_boom")
    def page_boom():
        raise RuntimeError("secret internal detail")

    @app.post("/api/v1/_echo")
    def echo():
        from flask import request

        return {"bytes": len(request.get_data())}


@pytest.fixture()
def app(settings: Settings, database: Database) -> Flask:
    app = create_app(settings, database=database)
    _add_test_routes(app)
    return app


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture()
def down_client(tmp_path: Path) -> Iterator[FlaskClient]:
    """A client of an app whose database listens nowhere."""
    settings = _settings(tmp_path / "var", UNREACHABLE_URL)
    db = open_database(settings)
    try:
        yield create_app(settings, database=db).test_client()
    finally:
        db.dispose()


def _assert_problem(response, status: int) -> dict:
    assert response.status_code == status
    assert response.mimetype == PROBLEM
    body = response.get_json(force=True)
    assert body["status"] == status
    assert body["title"] and body["detail"] and body["type"]
    return body


# --------------------------------------------------------------------------- factory and settings


def test_create_app_uses_given_database(app: Flask, database: Database) -> None:
    assert app.extensions["gis_platform.db"] is database
    assert app.config["MAX_CONTENT_LENGTH"] == int(0.01 * 1024 * 1024)
    assert app.config["SECRET_KEY"] == "test-key"


def test_secret_key_is_stored_once_with_mode_600(tmp_path: Path, database: Database, database_url: str) -> None:
    settings = _settings(tmp_path / "var", database_url, secret_key=None)
    first = create_app(settings, database=database).config["SECRET_KEY"]
    second = create_app(settings, database=database).config["SECRET_KEY"]
    key_file = tmp_path / "var" / "secret_key"
    assert first == second == key_file.read_text().strip()
    assert len(first) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_unwritable_data_dir_falls_back_to_a_process_key(
    tmp_path: Path, database: Database, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    settings = _settings(blocker / "var", database_url, secret_key=None)
    with caplog.at_level(logging.WARNING, logger="api.app"):
        key = create_app(settings, database=database).config["SECRET_KEY"]
    assert key
    assert "sessions will not survive restarts" in caplog.text


def test_one_session_per_request_closed_at_teardown(app: Flask) -> None:
    with app.test_request_context("/"):
        session = get_session()
        assert get_session() is session
        session.execute(text("SELECT 1"))
        assert session.in_transaction()
    assert not session.in_transaction()


# --------------------------------------------------------------------------- health and summary


def test_health_reports_postgis(client: FlaskClient) -> None:
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True
    assert body["database"]["error"] is None
    assert isinstance(body["database"]["latency_ms"], float)
    assert body["postgis"]["version"].startswith("3.")
    assert body["county_code"] == COUNTY
    assert body["app"]["version"]


def test_summary_on_empty_database(client: FlaskClient) -> None:
    response = client.get("/api/v1/summary")
    assert response.status_code == 200
    body = response.get_json()
    assert body["county_code"] == COUNTY
    assert body["name"] == "阳谷县"
    assert body["admin_units"] == dict.fromkeys(vocab.ADMIN_LEVELS, 0)
    assert body["agencies"] == dict.fromkeys(vocab.AGENCY_KINDS, 0)
    assert body["powers"] == dict.fromkeys(vocab.POWER_HOLDERS, 0)
    assert body["cases"] == dict.fromkeys(vocab.THEMES, 0)
    assert body["grid_cells"] == 0
    assert body["categories"] == 0


def _square(x: float, y: float, size: float = 0.05) -> WKTElement:
    ring = f"{x} {y}, {x + size} {y}, {x + size} {y + size}, {x} {y + size}, {x} {y}"
    return WKTElement(f"MULTIPOLYGON((({ring})))", srid=4326)


def _point(x: float, y: float) -> WKTElement:
    return WKTElement(f"POINT({x} {y})", srid=4326)


def _add_county(session, county_code: str, name: str, *, cases: int) -> None:
    """Add a county boundary, a bureau, one power, one category and some cases."""
    session.add(
        AdminUnit(county_code=county_code, code=county_code, name=name, name_en="Test County",
                  level="county", geom=_square(115.7, 36.1))
    )
    bureau = Agency(county_code=county_code, code="B", name="执法局", name_en="Bureau", kind="bureau")
    session.add(bureau)
    session.flush()
    power = Power(county_code=county_code, code="P1", name="占道经营处罚", domain="city",
                  power_type="penalty", exercised_by="bureau", agency_id=bureau.id)
    session.add(power)
    session.flush()
    category = Category(county_code=county_code, code="C1", name="占道经营", name_en="Street vending",
                        event_class="event", theme="ten_disorders", power_id=power.id)
    session.add(category)
    session.flush()
    for n in range(cases):
        session.add(
            Case(county_code=county_code, case_no=f"{county_code}-{n}", category_id=category.id,
                 source="patroller", geom=_point(115.75, 36.15), location=_point(115.75, 36.15),
                 reported_at=datetime.now(UTC))
        )
    # A report cancelled as invalid is not a case handled: the summary leaves it out.
    session.add(
        Case(county_code=county_code, case_no=f"{county_code}-x", category_id=category.id, status="cancelled",
             source="citizen", geom=_point(115.75, 36.15), location=_point(115.75, 36.15),
             reported_at=datetime.now(UTC))
    )


@pytest.fixture()
def two_counties(database: Database) -> Iterator[None]:
    """Commit rows for this county (with a name needing escaping) and a neighbour; remove them after."""
    with database.session() as session:
        _add_county(session, COUNTY, "阳谷县<script>alert(1)</script>", cases=2)
        _add_county(session, "371522", "莘县", cases=5)
    try:
        yield
    finally:
        with database.session() as session:
            for model in (Case, Category, Power, Agency, AdminUnit):
                session.execute(delete(model))


def test_summary_counts_only_this_county(client: FlaskClient, two_counties: None) -> None:
    body = client.get("/api/v1/summary").get_json()
    assert body["admin_units"]["county"] == 1
    assert body["agencies"]["bureau"] == 1
    assert body["powers"] == {"bureau": 1, "department": 0}
    assert body["categories"] == 1
    assert body["cases"]["ten_disorders"] == 2
    assert sum(body["cases"].values()) == 2


def test_landing_page_escapes_database_text(client: FlaskClient, two_counties: None) -> None:
    html = client.get("/").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>" not in html


# --------------------------------------------------------------------------- errors


def test_unknown_api_path_is_problem_json(client: FlaskClient) -> None:
    body = _assert_problem(client.get("/api/v1/no-such-thing"), 404)
    assert body["title"] == "Not Found"


def test_wrong_method_keeps_allow_header(client: FlaskClient) -> None:
    response = client.post("/api/v1/health")
    _assert_problem(response, 405)
    assert "GET" in response.headers["Allow"]


def test_oversized_body_is_413_problem(client: FlaskClient) -> None:
    assert client.post("/api/v1/_echo", data=b"x" * 100).status_code == 200
    _assert_problem(client.post("/api/v1/_echo", data=b"x" * (64 * 1024)), 413)


def test_unexpected_error_is_500_without_trace(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="api.errors"):
        response = client.get("/api/v1/_boom")
    body = _assert_problem(response, 500)
    text_out = response.get_data(as_text=True)
    for leak in ("Traceback", "secret internal detail", "RuntimeError", 'File "'):
        assert leak not in text_out
    assert body["type"] == "/problems/internal"
    # The details go to the log instead.
    assert "secret internal detail" in caplog.text


def test_unexpected_error_on_a_page_is_html(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.CRITICAL, logger="api.errors"):
        response = client.get("/_boom")
    assert response.status_code == 500
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "服务器内部错误" in html and "Internal server error" in html
    assert html.index("服务器内部错误") < html.index("Internal server error")
    assert "secret internal detail" not in html and "Traceback" not in html


def test_unknown_page_is_html_404(client: FlaskClient) -> None:
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "页面不存在" in response.get_data(as_text=True)


def test_database_down_health_is_503(down_client: FlaskClient) -> None:
    response = down_client.get("/api/v1/health")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    body = response.get_json()
    assert body["status"] == "degraded"
    assert body["database"]["ok"] is False
    assert body["database"]["error"]
    assert "127.0.0.1" not in body["database"]["error"]
    assert body["postgis"]["version"] is None


def test_database_down_summary_is_503_problem(down_client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.CRITICAL, logger="api.errors"):
        response = down_client.get("/api/v1/summary")
    body = _assert_problem(response, 503)
    assert response.headers["Retry-After"] == "5"
    assert body["type"] == "/problems/database-unavailable"
    assert "127.0.0.1" not in response.get_data(as_text=True)


def test_database_down_landing_page_is_503_html(down_client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.CRITICAL, logger="api.errors"):
        response = down_client.get("/")
    assert response.status_code == 503
    assert response.mimetype == "text/html"
    assert response.headers["Retry-After"] == "5"


# --------------------------------------------------------------------------- pages


def test_landing_page(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "阳谷" in html
    assert 'lang="zh-CN"' in html
    assert 'href="/api/v1/health"' in html and 'href="/api/v1/summary"' in html


@pytest.mark.parametrize("path", ["/", "/no-such-page", "/_boom", "/api/v1/health", "/api/v1/summary", "/api/x"])
def test_no_response_references_remote_urls(client: FlaskClient, path: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.CRITICAL, logger="api.errors"):
        body = client.get(path).get_data(as_text=True)
    assert not EXTERNAL_ASSET.search(body)
