"""Security headers on every response: each route of the app, pages and API, answers and errors alike."""

from __future__ import annotations

import io
import logging
import re
import uuid
from html.parser import HTMLParser
from typing import Any

import pytest
from flask import render_template_string
from PIL import Image

from api import security
from api.app import create_app
from api.deps import SETTINGS_KEY
from gis_platform.db import open_database
from gis_platform.settings import Settings

NONCE = re.compile(r"^'nonce-([A-Za-z0-9_-]{22,})'$")
UNREACHABLE_URL = "postgresql+psycopg://postgres@127.0.0.1:1/x"
FIXED = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
# Values for the rules' arguments, by name; ids not listed here are 1 (usually: not found, itself an answer).
ARGUMENTS = {"name": "cases", "layer": "cases", "z": "0", "x": "0", "y": "0", "fmt": "json", "service_code": "TD02",
             "token": "x", "service_request_id": "1", "rest": "x"}
FILES = {"docs_assets.asset": "swagger-ui.css", "webmap.static_file": "gismap.js", "static": "none.txt"}


def policy(response: Any) -> dict[str, list[str]]:
    """Return a response's Content-Security-Policy as {directive: sources}."""
    header = response.headers["Content-Security-Policy"]
    return {name: sources for name, *sources in (part.split() for part in header.split(";") if part.strip())}


def nonce_of(response: Any) -> str:
    """Return the nonce a response's policy allows (and check that script-src and style-src agree on it)."""
    directives = policy(response)
    nonces = {match.group(1) for source in directives["script-src"] + directives["style-src"]
              if (match := NONCE.match(source))}
    assert len(nonces) == 1, directives
    return nonces.pop()


def assert_secured(response: Any, where: object, *, hsts: bool = True, tiles: str | None = None) -> None:
    """Check every security header of a response."""
    for name, value in FIXED.items():
        assert response.headers.get(name) == value, (where, name, response.headers.get(name))
    permissions = response.headers["Permissions-Policy"]
    assert "geolocation=(self)" in permissions and "camera=(self)" in permissions, where
    assert ("Strict-Transport-Security" in response.headers) is hsts, where
    header = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in header and "unsafe-eval" not in header and "*" not in header.replace(
        "https://*.", ""), (where, header)
    directives = policy(response)
    if "sandbox" in directives:  # the photo download's own, stricter policy
        assert directives["default-src"] == ["'none'"] and directives["frame-ancestors"] == ["'none'"], where
        return
    nonce = f"'nonce-{nonce_of(response)}'"
    assert directives == {
        "default-src": ["'self'"], "script-src": ["'self'", nonce], "style-src": ["'self'", nonce],
        "img-src": ["'self'", "data:", "blob:", *([tiles] if tiles else [])], "connect-src": ["'self'"],
        "font-src": ["'self'"], "object-src": ["'none'"], "base-uri": ["'self'"], "frame-ancestors": ["'none'"],
        "form-action": ["'self'"]}, where


class InlineCode(HTMLParser):
    """Collect what a page would run or style inline: script and style elements, style and on* attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[tuple[str, str | None]] = []  # (tag, nonce) of inline <script>/<style>
        self.attributes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.attributes += [f"<{tag} {name}=…>" for name, _ in attrs if name == "style" or name.startswith("on")]
        data_block = tag == "script" and (values.get("type") or "text/javascript") not in (
            "text/javascript", "module", "application/javascript")
        if tag in ("script", "style") and "src" not in values and not data_block:
            self.blocks.append((tag, values.get("nonce")))


def assert_inline_code_carries_the_nonce(response: Any, where: object) -> int:
    """Check that an HTML page's inline scripts and styles carry the response's nonce; return how many there are."""
    parser = InlineCode()
    parser.feed(response.get_data(as_text=True))
    nonce = nonce_of(response)
    assert [block for block in parser.blocks if block[1] != nonce] == [], where
    assert parser.attributes == [], where
    return len(parser.blocks)


def png() -> io.BytesIO:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 120, 200)).save(out, "PNG")
    out.seek(0)
    return out


@pytest.fixture(scope="module")
def ids(api_world) -> dict[str, int]:
    """Return ids of a real case and photo, so that their routes answer 200 and not only 404."""
    admin = api_world.token("ad")
    case = api_world.client().post("/api/v1/cases", headers={**admin, "Idempotency-Key": uuid.uuid4().hex}, json={
        "category": "TD02", "geometry": {"type": "Point", "coordinates": [115.72, 36.02]}, "description": "头"})
    assert case.status_code == 201, case.get_json()
    photo = api_world.client().post(f"/api/v1/cases/{case.get_json()['id']}/attachments", headers=admin,
                                    data={"file": (png(), "p.png")})
    assert photo.status_code == 201, photo.get_json()
    return {"case_id": case.get_json()["id"], "attachment_id": photo.get_json()["id"], "admin": admin}


def test_every_route_answers_with_the_security_headers(api_world, ids):
    app = api_world.app
    adapter = app.url_map.bind("localhost")
    statuses: set[int] = set()
    pages = 0
    for rule in app.url_map.iter_rules():
        values = {arg: FILES.get(rule.endpoint, "x") if arg == "filename" else ids.get(arg, ARGUMENTS.get(arg, 1))
                  for arg in rule.arguments}
        for method in sorted(rule.methods - {"HEAD"}):
            url = adapter.build(rule.endpoint, values, method=method)
            for headers in ({}, ids["admin"]):
                body = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
                response = api_world.client().open(url, method=method, headers=headers, **body)
                try:
                    assert_secured(response, (method, url, response.status_code))
                    statuses.add(response.status_code)
                    if response.mimetype == "text/html" and method == "GET":
                        assert_inline_code_carries_the_nonce(response, (url, response.status_code))
                        pages += 1
                finally:
                    response.close()
    assert {200, 204, 400, 401, 404} <= statuses, statuses
    assert pages >= 6  # the landing page, sign-in, docs, the map pages, error pages


def test_pages_place_the_nonce_on_their_inline_code(api_world, ids):
    client = api_world.client()
    command = client.get("/command", headers=ids["admin"])
    assert command.status_code == 200
    # Folium's head styles and script, and the map's own script, all carry it.
    assert assert_inline_code_carries_the_nonce(command, "/command") >= 3
    first, second = client.get("/login"), client.get("/login")
    assert nonce_of(first) != nonce_of(second)  # one per response, never reused
    assert f'nonce="{nonce_of(first)}"' in first.get_data(as_text=True)
    docs = client.get("/api/v1/docs")
    assert assert_inline_code_carries_the_nonce(docs, "/api/v1/docs") == 2


def test_the_nonce_is_a_template_global_and_a_string(api_world):
    with api_world.app.test_request_context("/"):
        nonce = security.csp_nonce()
        assert isinstance(nonce, str) and render_template_string("{{ csp_nonce }}") == nonce
        # Also where a template's context is not passed on (a macro imported without context).
        template = api_world.app.jinja_env.from_string("{% macro m() %}{{ csp_nonce }}{% endmacro %}{{ m() }}")
        assert template.render() == nonce


def _settings(api_world, tmp_path, **overrides) -> Settings:
    base: Settings = api_world.app.extensions[SETTINGS_KEY]
    values = {"database_url": base.database_url, "county_code": base.county_code, "data_dir": tmp_path,
              "secret_key": "headers-test"}
    return Settings(_env_file=None, **{**values, **overrides})


def test_errors_carry_the_headers_too(api_world, tmp_path, caplog):
    tiles = "https://t{s}.tianditu.gov.cn/vec_w/wmts?tk=k&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}"
    app = create_app(_settings(api_world, tmp_path, tile_url=tiles, secure_cookies=False, max_upload_mb=0.001),
                     database=api_world.database)

    @app.get("/api/v1/_boom")
    def api_boom():
        raise RuntimeError("boom")

    @app.get("/_boom")
    def page_boom():
        raise RuntimeError("boom")

    client = app.test_client()
    with caplog.at_level(logging.CRITICAL, logger="api.errors"):
        answers = {
            "api 404": client.get("/api/v1/no-such-thing"), "page 404": client.get("/no-such-page"),
            "405": client.delete("/api/v1/health"),
            "413": client.post("/api/v1/auth/tokens", data=b"x" * 4096, content_type="application/json"),
            "api 500": client.get("/api/v1/_boom"), "page 500": client.get("/_boom"),
            "csrf 400": client.post("/login", data={"username": "op", "password": "x"}),
            "401": client.get("/api/v1/auth/me"),
        }
    assert [r.status_code for r in answers.values()] == [404, 404, 405, 413, 500, 500, 400, 401]
    for where, response in answers.items():
        # No HSTS with secure cookies off (plain HTTP); the Tianditu tile servers t0…t7 are allowed images.
        assert_secured(response, where, hsts=False, tiles="https://*.tianditu.gov.cn")
    assert answers["api 404"].mimetype == "application/problem+json"

    down = open_database(Settings(_env_file=None, database_url=UNREACHABLE_URL))
    try:
        down_app = create_app(_settings(api_world, tmp_path, database_url=UNREACHABLE_URL), database=down)
        with caplog.at_level(logging.CRITICAL, logger="api.errors"):
            for path in ("/api/v1/summary", "/"):
                response = down_app.test_client().get(path)
                assert response.status_code == 503
                assert_secured(response, path)
    finally:
        down.dispose()


@pytest.mark.parametrize(("url", "source"), [
    ("", None),
    ("https://{s}.tile.openstreetmap.org/{z}/{x}/{y}.png", "https://*.tile.openstreetmap.org"),
    ("https://t{s}.tianditu.gov.cn/img_w/wmts?tk=abc&x={x}&y={y}&l={z}", "https://*.tianditu.gov.cn"),
    ("http://10.1.2.3:8080/tiles/{z}/{x}/{y}.png", "http://10.1.2.3:8080"),
    ("HTTPS://Tiles.Example.GOV.cn/{z}/{x}/{y}.png", "https://tiles.example.gov.cn"),
    ("/tiles/{z}/{x}/{y}.png", None),  # this server: 'self' covers it
    ("https://tiles.example.org;script-src *;/{z}/{x}/{y}.png", None),  # would smuggle a directive in
    ("https://tiles.example.org:80 'unsafe-inline'/{z}/{x}/{y}", None),
    ("javascript:alert(1)//{z}/{x}/{y}", None),
    ("https://{s}/{z}/{x}/{y}.png", None),  # a bare wildcard would allow every host
])
def test_the_tile_servers_origin_becomes_an_image_source(url, source):
    assert security.tile_source(url) == source
