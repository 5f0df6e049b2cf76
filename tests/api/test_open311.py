"""Open311 GeoReport v2: all six methods and discovery, in XML and JSON, on real PostGIS.

POST commits cases, so the tests run on a committed mini county in a database of their own (loading
the demo county would take longer than this whole file).
"""

from __future__ import annotations

import hashlib
import logging
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import shapely
from flask import Flask
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.open311 import MAX_RESULTS, xml_document
from gis_platform import models as m
from gis_platform.cli import upgrade_database
from gis_platform.db import Database, open_database
from gis_platform.settings import Settings
from gis_platform.workcalendar import SHANGHAI
from layers.cases import Actor, act, report_case
from tests.factories import MiniCounty, add_photo, make_county

COUNTY = "379901"
KEY = "test-open311-key"
OTHER_KEY = "second-open311-key"
REVOKED_KEY = "revoked-open311-key"
WEST = (115.72, 36.02)  # west squad's jurisdiction
EAST = (115.78, 36.02)  # east squad's
T0 = datetime(2023, 3, 10, 9, 0, tzinfo=SHANGHAI)
BULK_START = datetime(2022, 1, 1, tzinfo=SHANGHAI)
BULK = MAX_RESULTS + 5
FORMATS = ("xml", "json")

SERVICE_FIELDS = ["service_code", "service_name", "description", "metadata", "type", "keywords", "group"]
REQUEST_FIELDS = ["service_request_id", "status", "status_notes", "service_name", "service_code", "description",
                  "agency_responsible", "service_notice", "requested_datetime", "updated_datetime",
                  "expected_datetime", "address", "address_id", "zipcode", "lat", "long", "media_url"]


@dataclass
class World:
    app: Flask
    county: MiniCounty
    engine: object
    seeded: dict[str, str]

    def client(self):
        return self.app.test_client()

    def count_cases(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(text('SELECT count(*) FROM "case"')).scalar_one()

    def case(self, case_no: str) -> m.Case:
        with Session(self.engine) as session:
            return session.scalar(select(m.Case).where(m.Case.case_no == case_no))


def _token(name: str, key: str, revoked: bool = False) -> m.ApiToken:
    return m.ApiToken(county_code=COUNTY, kind="open311", name=name,
                      token_hash=hashlib.sha256(key.encode()).hexdigest(),
                      revoked_at=datetime.now(UTC) if revoked else None)


def _seed(session: Session, county: MiniCounty) -> dict[str, str]:
    """Add cases at known times: one open and one closed in March 2023, a recent and an old one, and a bulk."""
    users = {u: Actor.of(county.users[u]) for u in ("sup1", "sup2", "op", "li")}
    seeded = {}
    seeded["open"] = report_case(session, COUNTY, category="TD02", geometry=shapely.Point(*WEST),
                                 source="patroller", description="占道经营 seeded", reported_at=T0).case.case_no
    closed = report_case(session, COUNTY, category="MS03", geometry=shapely.Point(*EAST), source="citizen",
                         reported_at=T0 + timedelta(hours=1)).case
    steps = [("file", "sup1", {}), ("dispatch", "op", {}), ("accept", "li", {})]
    for hour, (action, who, extra) in enumerate(steps, 2):
        act(session, closed.id, action, users[who], at=T0 + timedelta(hours=hour), **extra)
    photo = add_photo(session, closed)
    act(session, closed.id, "feedback", users["li"], at=T0 + timedelta(hours=6), attachment_ids=[photo.id])
    act(session, closed.id, "close", users["sup2"], at=T0 + timedelta(hours=7))
    seeded["closed"] = closed.case_no
    now = datetime.now(UTC)
    for name, age in (("recent", 10), ("old", 100)):
        seeded[name] = report_case(session, COUNTY, category="TD02", geometry=shapely.Point(*WEST), source="citizen",
                                   reported_at=now - timedelta(days=age)).case.case_no
    # More cases in January 2022 than one answer may hold.
    session.execute(text("""
        INSERT INTO "case" (county_code, case_no, category_id, source, status, urgency, description, geom, location,
                            coord_system, reported_at)
        SELECT :county, 'BULK' || lpad(g::text, 5, '0'), :category, 'patroller', 'closed', 'normal', '',
               ST_SetSRID(ST_MakePoint(115.72, 36.02), 4326), ST_SetSRID(ST_MakePoint(115.72, 36.02), 4326),
               'wgs84', :start + g * interval '30 minutes'
        FROM generate_series(1, :n) g"""),
        {"county": COUNTY, "category": county.categories["TD02"], "start": BULK_START, "n": BULK})
    return seeded


@pytest.fixture(scope="module")
def world(pg_server, tmp_path_factory) -> World:
    """Build the app on a committed mini county 379901 with Open311 keys and seeded cases."""
    url = pg_server.create(f"gis_test_open311_{os.getpid()}")
    upgrade_database(url)
    engine = create_engine(url)
    with Session(engine) as session, session.begin():
        county = make_county(session, COUNTY)
        session.add_all([_token("test client", KEY), _token("second client", OTHER_KEY),
                         _token("revoked client", REVOKED_KEY, revoked=True)])
        seeded = _seed(session, county)
    settings = Settings(_env_file=None, database_url=url, county_code=COUNTY,
                        data_dir=tmp_path_factory.mktemp("open311-data"), secret_key="test-secret")
    app = create_app(settings, database=Database(engine=engine, sessions=sessionmaker(engine, expire_on_commit=False)))
    yield World(app=app, county=county, engine=engine, seeded=seeded)
    engine.dispose()


# -- helpers -----------------------------------------------------------------------------------------------
def parse(response):
    """Return the body as an ElementTree element (XML) or Python data (JSON), checking the content type."""
    if response.mimetype == "text/xml":
        assert response.content_type == "text/xml; charset=utf-8"
        assert response.data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
        return ET.fromstring(response.data)
    assert response.content_type == "application/json; charset=utf-8"
    return response.get_json()


def items(body, fmt: str, root: str, item: str) -> list[dict]:
    """Return the items of a list document as dicts, checking the XML element names."""
    if fmt == "json":
        assert isinstance(body, list)
        return body
    assert body.tag == root
    assert all(child.tag == item for child in body)
    return [{field.tag: field.text for field in child} for child in body]


def errors(response, status: int, fmt: str = "xml") -> list[str]:
    """Check a specification error document and return its descriptions."""
    assert response.status_code == status, response.data
    body = parse(response)
    found = items(body, fmt, "errors", "error")
    assert found and all(set(e) == {"code", "description"} for e in found)
    assert all(str(e["code"]) == str(status) for e in found)
    return [e["description"] for e in found]


def requests_(world: World, fmt: str = "json", **params) -> list[dict]:
    response = world.client().get(f"/open311/v2/requests.{fmt}", query_string=params)
    assert response.status_code == 200, response.data
    found = items(parse(response), fmt, "service_requests", "request")
    for row in found:
        assert list(row) == REQUEST_FIELDS
    return found


def post(world: World, fmt: str = "json", *, key: str | None = KEY, headers=None, **form):
    data = {"service_code": "TD02", "lat": str(WEST[1]), "long": str(WEST[0]), **form}
    if key is not None:
        data["api_key"] = key
    data = {k: v for k, v in data.items() if v is not None}
    return world.client().post(f"/open311/v2/requests.{fmt}", data=data, headers=headers)


# -- discovery and services --------------------------------------------------------------------------------
def test_discovery_in_both_formats(world: World) -> None:
    xml = parse(world.client().get("/open311/discovery.xml"))
    assert xml.tag == "discovery"
    assert [c.tag for c in xml] == ["changeset", "contact", "key_service", "endpoints"]
    (endpoint,) = xml.find("endpoints")
    assert endpoint.tag == "endpoint"
    assert [c.tag for c in endpoint] == ["specification", "url", "changeset", "type", "formats"]
    assert endpoint.findtext("specification") == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint.findtext("url") == "http://localhost/open311/v2"
    assert endpoint.findtext("type") == "production"
    assert [f.text for f in endpoint.find("formats")] == ["text/xml", "application/json"]
    body = parse(world.client().get("/open311/discovery.json", base_url="https://city.example"))
    assert body["endpoints"][0]["url"] == "https://city.example/open311/v2"
    assert body["endpoints"][0]["formats"] == ["text/xml", "application/json"]
    assert body["changeset"] and "执法局" in body["contact"] and body["key_service"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_services_are_the_active_categories(world: World, fmt: str) -> None:
    response = world.client().get(f"/open311/v2/services.{fmt}")
    assert response.status_code == 200
    services = items(parse(response), fmt, "services", "service")
    assert [s["service_code"] for s in services] == ["MS03", "TD02"]
    for s in services:
        assert list(s) == SERVICE_FIELDS
        assert s["type"] == "realtime" and s["group"] == "街面秩序"
        assert s["metadata"] in (False, "false")
    assert "十乱" in services[1]["keywords"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_service_definition(world: World, fmt: str) -> None:
    response = world.client().get(f"/open311/v2/services/TD02.{fmt}")
    assert response.status_code == 200
    body = parse(response)
    if fmt == "xml":
        assert body.tag == "service_definition"
        assert [c.tag for c in body] == ["service_code", "attributes"]
        assert body.findtext("service_code") == "TD02" and len(body.find("attributes")) == 0
    else:
        assert body == {"service_code": "TD02", "attributes": []}
    (message,) = errors(world.client().get(f"/open311/v2/services/NOPE.{fmt}"), 404, fmt)
    assert "NOPE" in message


def test_jurisdiction_id(world: World) -> None:
    assert world.client().get(f"/open311/v2/services.xml?jurisdiction_id={COUNTY}").status_code == 200
    assert world.client().get("/open311/v2/services.xml?jurisdiction_id=").status_code == 200
    (message,) = errors(world.client().get("/open311/v2/services.json?jurisdiction_id=sfgov.org"), 404, "json")
    assert "jurisdiction_id" in message and COUNTY in message
    errors(post(world, jurisdiction_id="371522"), 404, "json")


# -- POST requests -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_post_creates_one_routed_case(world: World, fmt: str) -> None:
    before = world.count_cases()
    response = post(world, fmt, description=f"路口占道经营 {fmt}", first_name="小明", last_name="王",
                    email="wang@example.cn", phone="+86 635 1234567", address_string="狮子楼路 12 号",
                    device_id="dev-1", account_id="acc-9", media_url="https://img.example/1.jpg",
                    **{"attribute[whatever]": "ignored"})
    assert response.status_code == 200, response.data
    (created,) = items(parse(response), fmt, "service_requests", "request")
    assert list(created) == ["service_request_id", "service_notice", "account_id"]
    assert created["account_id"] is None
    assert "west中队" in created["service_notice"] and "16" in created["service_notice"]
    assert world.count_cases() == before + 1
    case = world.case(created["service_request_id"])
    assert (case.source, case.status, case.coord_system) == ("citizen", "reported", "wgs84")
    assert case.reporter_name == "王小明" and case.reporter_contact == "+86 635 1234567 / wang@example.cn"
    assert case.address == "狮子楼路 12 号" and case.external_ref.startswith("open311:")
    (row,) = requests_(world, fmt, service_request_id=case.case_no)
    assert row["agency_responsible"] == "west中队" and row["status"] == "open" and row["status_notes"] == "待核实"
    assert float(row["lat"]) == WEST[1] and float(row["long"]) == WEST[0]
    assert row["requested_datetime"].endswith("+08:00") and row["expected_datetime"].endswith("+08:00")
    assert datetime.fromisoformat(row["expected_datetime"]) > datetime.fromisoformat(row["requested_datetime"])


def test_post_routes_department_matters_to_the_department_team(world: World) -> None:
    response = post(world, service_code="MS03", lat=str(EAST[1]), long=str(EAST[0]), first_name="John",
                    last_name="Smith")
    (created,) = parse(response)
    assert "市场监管执法大队" in created["service_notice"]
    assert world.case(created["service_request_id"]).reporter_name == "John Smith"


def test_post_accepts_multipart(world: World) -> None:
    data = {"api_key": KEY, "service_code": "TD02", "lat": str(WEST[1]), "long": str(WEST[0])}
    response = world.client().post("/open311/v2/requests.xml", data=data, content_type="multipart/form-data")
    assert response.status_code == 200
    assert parse(response).find("request/service_request_id").text.startswith("AJ")


@pytest.mark.parametrize("fmt", FORMATS)
def test_post_needs_a_valid_api_key(world: World, fmt: str) -> None:
    before = world.count_cases()
    assert "api_key" in errors(post(world, fmt, key=None), 403, fmt)[0]
    assert "invalid api_key" in errors(post(world, fmt, key="wrong"), 403, fmt)[0]
    errors(post(world, fmt, key=REVOKED_KEY), 403, fmt)
    errors(post(world, fmt, key=""), 403, fmt)
    assert world.count_cases() == before


def test_post_unknown_or_missing_service_code(world: World) -> None:
    # The specification lists "service_code was not found" as a 404 for POST, and "not provided" as a 400.
    (message,) = errors(post(world, "xml", service_code="ZZ99"), 404)
    assert "ZZ99" in message
    assert "service_code" in errors(post(world, service_code=""), 400, "json")[0]


@pytest.mark.parametrize(("form", "expected"), [
    ({"lat": str(WEST[0]), "long": str(WEST[1])}, "swapped"),
    ({"lat": "39.9", "long": "116.4"}, "outside the county"),
    ({"lat": None, "long": None, "address_string": "狮子楼路 12 号"}, "cannot geocode"),
    ({"lat": None, "long": None, "address_id": "A-12"}, "cannot geocode"),
    ({"lat": None, "long": None}, "lat and long"),
    ({"long": None}, "both"),
    ({"lat": "abc"}, "decimal number"),
    ({"lat": "NaN"}, "decimal number"),
    ({"lat": "1e999"}, "finite"),
    ({"lat": "36,02"}, "decimal number"),
    ({"description": "x" * 4001}, "4,000"),
    ({"description": "a\x00b"}, "control characters"),
    ({"first_name": "x" * 101}, "first_name"),
    ({"email": "not-an-email"}, "email"),
    ({"phone": "call me"}, "phone"),
    ({"media_url": "javascript:alert(1)"}, "media_url"),
    ({"service_code": "TD\x0002"}, "control characters"),
])
def test_post_refuses_bad_input_with_a_description(world: World, form: dict, expected: str) -> None:
    before = world.count_cases()
    (message,) = errors(post(world, **form), 400, "json")
    assert expected in message
    assert world.count_cases() == before


def test_post_refuses_json_bodies(world: World) -> None:
    response = world.client().post("/open311/v2/requests.json", json={"api_key": KEY, "service_code": "TD02"})
    assert "form-encoded" in errors(response, 400, "json")[0]


def test_idempotency_key_returns_the_original_per_api_key(world: World) -> None:
    before = world.count_cases()
    headers = {"Idempotency-Key": "retry-42"}
    first = post(world, headers=headers, description="first")
    again = post(world, headers=headers, description="retried")
    assert first.status_code == again.status_code == 200
    assert parse(first)[0]["service_request_id"] == parse(again)[0]["service_request_id"]
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    other = post(world, key=OTHER_KEY, headers=headers)
    assert parse(other)[0]["service_request_id"] != parse(first)[0]["service_request_id"]
    assert world.count_cases() == before + 2
    errors(post(world, headers={"Idempotency-Key": "k" * 101}), 400, "json")


def test_description_is_escaped_in_xml(world: World) -> None:
    nasty = '<script>alert("x")</script> & </description><injected/>'
    (created,) = parse(post(world, description=nasty))
    response = world.client().get(f"/open311/v2/requests/{created['service_request_id']}.xml")
    assert b"<script>" not in response.data and b"<injected/>" not in response.data
    assert b"&lt;script&gt;" in response.data
    assert parse(response).findtext("request/description") == nasty
    assert requests_(world, service_request_id=created["service_request_id"])[0]["description"] == nasty


def test_xml_never_carries_characters_xml_cannot_hold() -> None:
    document = xml_document("errors", [{"code": 400, "description": "a\x0bb\x00c\ud800"}])
    assert ET.fromstring(document).findtext("error/description") == "a\ufffdb\ufffdc\ufffd"


# -- tokens and GET requests -------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_tokens_resolve_to_the_request(world: World, fmt: str) -> None:
    case_no = world.seeded["open"]
    response = world.client().get(f"/open311/v2/tokens/{case_no}.{fmt}")
    (row,) = items(parse(response), fmt, "service_requests", "request")
    assert row == {"service_request_id": case_no, "token": case_no}
    errors(world.client().get(f"/open311/v2/tokens/AJ0000.{fmt}"), 404, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_one_request(world: World, fmt: str) -> None:
    response = world.client().get(f"/open311/v2/requests/{world.seeded['closed']}.{fmt}")
    (row,) = items(parse(response), fmt, "service_requests", "request")
    assert list(row) == REQUEST_FIELDS
    case = world.case(world.seeded["closed"])
    assert row["status"] == "closed" and row["status_notes"] == "已结案"
    assert row["agency_responsible"] == "市场监管执法大队" and row["service_code"] == "MS03"
    assert datetime.fromisoformat(row["updated_datetime"]) == case.closed_at
    assert datetime.fromisoformat(row["expected_datetime"]) == case.due_at
    assert row["service_notice"] in (None, "") and row["media_url"] in (None, "")
    (message,) = errors(world.client().get(f"/open311/v2/requests/AJ2023999.{fmt}"), 404, fmt)
    assert "AJ2023999" in message


def test_open_request_before_dispatch_estimates_the_due_time(world: World) -> None:
    (row,) = requests_(world, service_request_id=world.seeded["open"])
    # Reported Friday 2023-03-10 09:00; 16 working hours of 8 a day end on Tuesday at 09:00.
    assert row["expected_datetime"] == "2023-03-14T09:00:00+08:00"
    assert row["requested_datetime"] == "2023-03-10T09:00:00+08:00"
    assert row["agency_responsible"] == "west中队" and row["description"] == "占道经营 seeded"


@pytest.mark.parametrize("fmt", FORMATS)
def test_date_filters_need_a_time_zone(world: World, fmt: str) -> None:
    march = {"start_date": "2023-03-01T00:00:00+08:00", "end_date": "2023-03-31T00:00:00Z"}
    found = requests_(world, fmt, **march)
    assert [r["service_request_id"] for r in found] == [world.seeded["closed"], world.seeded["open"]]
    for name in ("start_date", "end_date"):
        (message,) = errors(world.client().get(f"/open311/v2/requests.{fmt}",
                                               query_string={**march, name: "2023-03-01T00:00:00"}), 400, fmt)
        assert name in message and "time zone" in message
    errors(world.client().get(f"/open311/v2/requests.{fmt}", query_string={"start_date": "yesterday"}), 400, fmt)


def test_date_filter_edge_cases(world: World) -> None:
    # An unencoded "+" arrives as a space: read it back as the offset.
    raw = world.client().get("/open311/v2/requests.json?start_date=2023-03-10T09:00:00+08:00"
                             "&end_date=2023-03-10T09:30:00+08:00")
    assert [r["service_request_id"] for r in parse(raw)] == [world.seeded["open"]]
    only_start = requests_(world, start_date="2023-03-10T09:30:00+08:00")
    assert [r["service_request_id"] for r in only_start] == [world.seeded["closed"]]
    only_end = requests_(world, end_date="2023-03-10T09:30:00+08:00")
    assert [r["service_request_id"] for r in only_end] == [world.seeded["open"]]
    wide = {"start_date": "2022-01-01T00:00:00Z", "end_date": "2023-12-31T00:00:00Z"}
    assert "90 days" in errors(world.client().get("/open311/v2/requests.xml", query_string=wide), 400)[0]
    backwards = {"start_date": "2023-03-31T00:00:00Z", "end_date": "2023-03-01T00:00:00Z"}
    errors(world.client().get("/open311/v2/requests.xml", query_string=backwards), 400)
    errors(world.client().get("/open311/v2/requests.xml?end_date=0001-01-01T00:00:00Z"), 400)


def test_status_and_service_code_filters(world: World) -> None:
    march = {"start_date": "2023-03-01T00:00:00+08:00", "end_date": "2023-03-31T00:00:00+08:00"}
    assert [r["service_request_id"] for r in requests_(world, status="open", **march)] == [world.seeded["open"]]
    assert [r["service_request_id"] for r in requests_(world, status="closed", **march)] == [world.seeded["closed"]]
    assert len(requests_(world, status="open,closed", **march)) == 2
    assert len(requests_(world, status="open,", **march)) == 1
    assert [r["service_code"] for r in requests_(world, service_code="MS03", **march)] == ["MS03"]
    assert len(requests_(world, service_code="MS03,TD02", **march)) == 2
    assert requests_(world, service_code="ZZ99", **march) == []
    assert "status" in errors(world.client().get("/open311/v2/requests.xml?status=pending"), 400)[0]


def test_empty_optional_parameters_are_absent_ones(world: World) -> None:
    empty = {name: "" for name in ("service_request_id", "service_code", "start_date", "end_date", "status",
                                   "jurisdiction_id")}
    assert requests_(world, **empty) == requests_(world)


def test_default_window_is_the_last_90_days(world: World) -> None:
    numbers = {r["service_request_id"] for r in requests_(world)}
    assert world.seeded["recent"] in numbers
    assert world.seeded["old"] not in numbers and world.seeded["open"] not in numbers


@pytest.mark.parametrize("fmt", FORMATS)
def test_at_most_1000_results_newest_first(world: World, fmt: str) -> None:
    window = {"start_date": BULK_START.isoformat(), "end_date": (BULK_START + timedelta(days=60)).isoformat()}
    found = requests_(world, fmt, **window)
    assert len(found) == MAX_RESULTS
    assert found[0]["service_request_id"] == f"BULK{BULK:05d}"
    times = [datetime.fromisoformat(r["requested_datetime"]) for r in found]
    assert times == sorted(times, reverse=True)


def test_service_request_ids_override_other_filters(world: World) -> None:
    ids = f"{world.seeded['open']},{world.seeded['closed']},AJ-unknown,"
    found = requests_(world, service_request_id=ids, status="closed", service_code="MS03",
                      start_date="2030-01-01T00:00:00Z")
    assert {r["service_request_id"] for r in found} == {world.seeded["open"], world.seeded["closed"]}


# -- anything else -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/open311/v2/services.yaml", "/open311/v2/requests.html", "/open311/v2/nothing",
                                  "/open311/v3/services.xml", "/open311/", "/open311/v2/services/TD02.yaml"])
def test_unknown_paths_and_formats_are_spec_404s(world: World, path: str) -> None:
    (message,) = errors(world.client().get(path), 404, "xml")
    if path.endswith(".yaml"):
        assert "yaml" in message


def test_wrong_method_is_405_with_allow(world: World) -> None:
    response = world.client().post("/open311/v2/services.json")
    errors(response, 405, "json")
    assert response.headers["Allow"] == "GET"
    errors(world.client().delete("/open311/v2/requests.xml"), 405)
    errors(world.client().get("/open311/v2/nothing.json"), 404, "json")


@pytest.mark.parametrize("query", [
    "status=%00", "service_code=%00", "service_request_id=%00", "start_date=2023-13-45T00:00:00Z",
    "start_date=9999-12-31T23:59:59%2B14:00", "jurisdiction_id=%00", "service_request_id=" + "A," * 1001,
    "start_date=" + "9" * 5000,
])
def test_malformed_queries_never_fail_with_500(world: World, query: str) -> None:
    response = world.client().get(f"/open311/v2/requests.json?{query}")
    assert response.status_code in (400, 404), response.data
    errors(response, response.status_code, "json")


@pytest.mark.parametrize("path", ["/open311/v2/services/%00.json", "/open311/v2/tokens/%00.json",
                                  "/open311/v2/requests/%00.json", "/open311/v2/requests/" + "9" * 500 + ".json"])
def test_malformed_path_values_never_fail_with_500(world: World, path: str) -> None:
    response = world.client().get(path)
    assert response.status_code in (400, 404)
    errors(response, response.status_code, "json")


def test_every_open311_view_is_public(world: World) -> None:
    views = {name: view for name, view in world.app.view_functions.items() if name.startswith("open311.")}
    assert len(views) == 8
    assert all(getattr(view, "_roles", "missing") is None for view in views.values())


def test_open311_is_not_in_the_rest_openapi_document(world: World) -> None:
    paths = world.client().get("/api/v1/openapi.json").get_json()["paths"]
    assert not any(p.startswith("/open311") for p in paths)


def test_unexpected_errors_are_spec_500s_without_details(world: World, monkeypatch, caplog) -> None:
    import api.open311

    def boom(category):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(api.open311, "_service", boom)
    with caplog.at_level(logging.CRITICAL, logger="api.open311"):
        response = world.client().get("/open311/v2/services.json")
    (message,) = errors(response, 500, "json")
    assert "secret" not in response.get_data(as_text=True) and "logged" in message


def test_database_down_is_a_spec_503(tmp_path: Path, caplog) -> None:
    settings = Settings(_env_file=None, database_url="postgresql+psycopg://postgres@127.0.0.1:1/x",
                        county_code=COUNTY, data_dir=tmp_path, secret_key="test-secret")
    database = open_database(settings)
    try:
        client = create_app(settings, database=database).test_client()
        with caplog.at_level(logging.CRITICAL, logger="api.open311"):
            for response in (client.get("/open311/v2/services.xml"),
                             client.post("/open311/v2/requests.xml", data={"api_key": KEY})):
                errors(response, 503)
                assert response.headers["Retry-After"] == "5"
                assert b"127.0.0.1" not in response.data
    finally:
        database.dispose()
