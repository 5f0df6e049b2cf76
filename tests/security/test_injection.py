"""SQL injection in every filter, HTML and script in every text field, and names that try to leave a folder.

Every filter value travels as a bound parameter, so an injection is either refused (400, a value
outside a vocabulary or not a number or date) or matches nothing (200 with no features): it never
widens a result or touches a table. Text is stored as given and returned as JSON strings (or
escaped XML for Open311), never as markup in an HTML response.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from layers.base import ASSIGNED_FILTER
from layers.registry import all_layers, get_layer
from tests.security.conftest import OPEN311_KEY
from tests.security.test_bad_inputs import png

INJECTIONS = ("' OR '1'='1", "1); DROP TABLE \"case\"; --", "TD02' UNION SELECT password_hash FROM app_user --")
RESERVED = ("bbox", "datetime", "limit", "offset", "at", "f")
TILE = "/api/v1/tiles/cases/14/13460/6300.mvt"
MARKUP = "<script>alert(document.cookie)</script><img src=x onerror=alert(1)>"


def _filter_targets() -> list[tuple[str, str]]:
    """Return (URL, parameter) for every filter and reserved parameter of every list the API serves."""
    targets = [("/api/v1/cases", name) for name in [*get_layer("cases").filters, *RESERVED]]
    for layer in all_layers():
        targets += [(f"/api/v1/layers/{layer.name}/items", name)
                    for name in [*layer.filters, *RESERVED] if name != ASSIGNED_FILTER]
    targets += [("/api/v1/indicators", name) for name in ("start", "end", "group_by", "category", "source")]
    targets += [("/api/v1/stats/summary", name) for name in ("start", "end")]
    targets += [("/api/v1/route", name) for name in ("lon", "lat", "category", "at")]
    targets += [(TILE, name) for name in ("status", "category", "theme", "since", "until")]
    targets += [("/api/v1/coordination/requests", name) for name in ("status", "kind", "overdue")]
    targets += [("/api/v1/coordination/referrals", name) for name in ("status", "overdue")]
    targets += [("/open311/v2/requests.json", name) for name in ("service_request_id", "service_code", "status",
                                                                  "start_date", "end_date", "jurisdiction_id")]
    return targets


# The other parameters each list needs to get as far as the injected one.
BASE = {"/api/v1/indicators": {"start": "2021-01-01T00:00:00Z", "end": "2021-02-01T00:00:00Z"},
        "/api/v1/stats/summary": {"start": "2021-01-01T00:00:00Z", "end": "2021-02-01T00:00:00Z"},
        "/api/v1/route": {"lon": "115.72", "lat": "36.02", "category": "TD02"}}


def _matched(url: str, response) -> int:
    """Return how many records a successful answer holds."""
    if url == TILE:
        return 0 if response.status_code == 204 else len(response.data)
    body = response.get_json()
    if url.startswith("/open311/"):
        return len(body)
    if "numberMatched" in body:
        return body["numberMatched"]
    return body.get("count", 0)


def _target_id(url: str, name: str) -> str:
    if url == "/api/v1/cases":
        return f"case-list-{name}"
    short = re.sub(r"^/(api/v1|open311/v2)/", "", url).replace("/items", "").replace(".json", "")
    return f"{short.split('/')[0] if short.startswith('tiles') else short.replace('layers/', '')}-{name}"


@pytest.mark.parametrize(("url", "name"), [pytest.param(u, n, id=_target_id(u, n)) for u, n in _filter_targets()])
def test_sql_injection_in_every_filter_is_refused_or_matches_nothing(sec_world, sample_case, url, name) -> None:
    before = sec_world.counts()
    headers = {} if url.startswith("/open311/") else sec_world.auth("ad")
    for payload in INJECTIONS:
        query = {**BASE.get(url, {}), name: payload}
        response = sec_world.client().get(url, query_string=query, headers=headers)
        assert response.status_code in (200, 204, 400, 404), (payload, response.status_code, response.data[:300])
        if response.status_code in (200, 204):
            assert _matched(url, response) == 0, (payload, response.data[:300])
    assert sec_world.counts() == before


def test_the_injections_would_have_found_something(sec_world, sample_case) -> None:
    # Without the filter the case list is not empty, so "matches nothing" above is a real outcome.
    response = sec_world.client().get("/api/v1/cases", headers=sec_world.auth("ad"))
    assert response.get_json()["numberMatched"] >= 1


# -- HTML and script in every text field --------------------------------------------------------------------
def test_markup_in_every_case_text_field_is_stored_as_text_and_returned_as_json(sec_world) -> None:
    w = sec_world
    text = {"description": MARKUP, "address": MARKUP, "reporter_name": MARKUP[:100],
            "reporter_contact": MARKUP[:100]}
    created = w.client().post("/api/v1/cases", headers=w.auth("op"), json={
        "category": "TD02", "geometry": {"type": "Point", "coordinates": [115.731, 36.011]}, **text})
    assert created.status_code == 201, created.get_json()
    case = created.get_json()
    one = w.client().get(f"/api/v1/cases/{case['id']}", headers=w.auth("op"))
    assert one.mimetype == "application/json"
    assert one.get_json()["description"] == MARKUP and one.get_json()["address"] == MARKUP
    listed = w.client().get("/api/v1/cases", query_string={"limit": 10000}, headers=w.auth("op"))
    assert listed.mimetype == "application/json"
    assert any(c["address"] == MARKUP for c in listed.get_json()["cases"])
    items = w.client().get("/api/v1/layers/cases/items", query_string={"limit": 10000}, headers=w.auth("op"))
    assert items.mimetype == "application/geo+json"
    filed = w.client().post(f"/api/v1/cases/{case['id']}/transitions", headers=w.auth("sup1"),
                            json={"action": "file", "version": case["version"], "note": MARKUP})
    assert filed.status_code == 200, filed.get_json()
    events = w.client().get(f"/api/v1/cases/{case['id']}/events", headers=w.auth("op"))
    assert events.mimetype == "application/json"
    assert [e["note"] for e in events.get_json()["events"] if e["action"] == "file"] == [MARKUP]


def test_markup_in_a_referral_clue_is_stored_as_text(sec_world) -> None:
    w = sec_world
    response = w.client().post("/api/v1/coordination/referrals", headers=w.auth("li"), json={
        "to_agency_id": w.county.agencies["bureau"], "clue": MARKUP})
    assert response.status_code == 201, response.get_json()
    assert response.mimetype == "application/json"
    shown = w.client().get(response.headers["Location"], headers=w.auth("li"))
    assert shown.get_json()["clue"] == MARKUP


def test_markup_in_a_coordination_request_is_stored_as_text(sec_world) -> None:
    w = sec_world
    response = w.client().post("/api/v1/coordination/requests", headers=w.auth("ad"), json={
        "kind": "advice", "from_agency_id": w.county.agencies["office_west"], "to_agency_id": w.county.agencies["dept"],
        "subject": MARKUP[:200], "body": MARKUP})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["subject"] == MARKUP[:200] and response.get_json()["body"] == MARKUP


def test_markup_in_open311_fields_is_escaped_in_xml_and_kept_in_json(sec_world) -> None:
    w = sec_world
    form = {"api_key": OPEN311_KEY, "service_code": "TD02", "lat": "36.012", "long": "115.733",
            "description": MARKUP, "address_string": MARKUP, "first_name": "<b>", "last_name": "</b>"}
    created = w.client().post("/open311/v2/requests.json", data=form)
    assert created.status_code == 200, created.data
    number = created.get_json()[0]["service_request_id"]
    as_json = w.client().get(f"/open311/v2/requests/{number}.json")
    assert as_json.get_json()[0]["description"] == MARKUP
    as_xml = w.client().get(f"/open311/v2/requests/{number}.xml")
    assert as_xml.mimetype == "text/xml"
    body = as_xml.get_data(as_text=True)
    assert "<script>" not in body and "<img" not in body
    assert "&lt;script&gt;alert(document.cookie)&lt;/script&gt;" in body


@pytest.mark.parametrize("path", [
    "/no-such-page/<script>alert(1)</script>",
    "/login?next=<script>alert(1)</script>",
    "/login?next=javascript:alert(1)",
])
def test_html_pages_never_echo_markup_unescaped(sec_world, path: str) -> None:
    response = sec_world.client().get(path)
    assert response.status_code in (200, 404)
    assert "<script>alert(1)" not in response.get_data(as_text=True)


def test_an_api_error_naming_markup_is_problem_json_not_html(sec_world) -> None:
    response = sec_world.client().get("/api/v1/layers/<script>alert(1)<%2Fscript>", headers=sec_world.auth("op"))
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["status"] == 404


def test_a_failed_login_form_does_not_echo_the_username(sec_world) -> None:
    client = sec_world.client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', page)
    assert token is not None
    response = client.post("/login", data={"csrf_token": token.group(1), "username": MARKUP, "password": "x"},
                           environ_base={"REMOTE_ADDR": "10.255.0.9"})
    assert response.status_code == 401
    assert "<script>" not in response.get_data(as_text=True)


# -- names that try to leave a folder ------------------------------------------------------------------------
def test_a_photo_named_with_path_traversal_is_stored_under_a_random_name(sec_world, sample_case) -> None:
    w = sec_world
    data_dir = Path(w.settings.resolved_data_dir)
    response = w.client().post(f"/api/v1/cases/{sample_case}/attachments", headers=w.auth("op"),
                               data={"file": (io.BytesIO(png()), "../../../../etc/passwd"), "stage": "before"},
                               content_type="multipart/form-data")
    assert response.status_code == 201, response.get_json()
    photo = response.get_json()
    stored = [p for p in (data_dir / "attachments").rglob("*") if p.is_file()]
    assert stored and all(re.fullmatch(r"[0-9a-f]{32}\.(jpg|png|webp)", p.name) for p in stored)
    assert not any(p.name == "passwd" for p in data_dir.parent.rglob("passwd"))
    download = w.client().get(photo["url"], headers=w.auth("op"))
    assert download.status_code == 200
    assert download.headers["Content-Disposition"].endswith(f"; filename=photo-{photo['id']}.png")
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    download.close()


# -- what happens to undeclared GCJ-02 inside the county ------------------------------------------------------
def test_undeclared_gcj02_inside_the_county_is_taken_as_wgs84(sec_world) -> None:
    """Nothing in the numbers tells GCJ-02 from WGS-84: undeclared, it is stored as given (about 500 m off).

    The bad-input catalogue has the case where the shift puts the point outside the county (a 400);
    here the point stays inside, so the platform cannot know, and says what it assumed.
    """
    response = sec_world.client().post("/api/v1/cases", headers=sec_world.auth("op"), json={
        "category": "TD02", "geometry": {"type": "Point", "coordinates": [115.74, 36.03]}})
    assert response.status_code == 201
    body = response.get_json()
    assert body["coord_system"] == "wgs84"
    assert (body["lon"], body["lat"]) == pytest.approx((115.74, 36.03))
