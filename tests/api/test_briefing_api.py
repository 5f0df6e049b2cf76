"""The weekly township briefing over HTTP: HTML and CSV, headers, validation naming the field, and roles.

The mini county's week 2019-W20 (13–19 May 2019) is one only this module reports in, so its counts are
exact although the county is shared with the other API tests.
"""

import csv
import io
import re
import uuid
from datetime import datetime, timedelta
from urllib.parse import quote

import pytest
from sqlalchemy import select

from gis_platform import models as m
from gis_platform.workcalendar import SHANGHAI
from layers.briefing import SECTIONS
from layers.cases import Actor
from layers.coordination import send_request

WEEK = "2019-W20"
MONDAY = datetime(2019, 5, 13, 9, 0, tzinfo=SHANGHAI)
WEST = "379901101"
PATH = "/api/v1/analytics/briefing"

_tokens: dict[str, dict[str, str]] = {}


def auth(world, who):
    if who not in _tokens:
        _tokens[who] = world.token(who)
    return _tokens[who]


def get(world, who, **params):
    query = "&".join(f"{k}={quote(str(v))}" for k, v in params.items())
    return world.client().get(f"{PATH}?{query}", headers=auth(world, who) if who else {})


def report(world, category, lon, lat, at):
    body = {"category": category, "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "description": "简报测试", "reported_at": at.isoformat()}
    r = world.client().post("/api/v1/cases", json=body,
                            headers={**auth(world, "op"), "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.get_json()


@pytest.fixture(scope="module")
def week(api_world):
    """Cases in the west town in 2019-W20 and the week before, and a coordination request sent that week."""
    w = api_world
    report(w, "TD02", 115.712, 36.012, MONDAY)
    report(w, "TD02", 115.713, 36.013, MONDAY + timedelta(days=2))
    report(w, "MS03", 115.714, 36.014, MONDAY + timedelta(days=3))
    report(w, "TD02", 115.786, 36.013, MONDAY + timedelta(days=1))  # east: another township
    report(w, "TD02", 115.715, 36.015, MONDAY - timedelta(days=3))  # the week before
    with w.database.sessions() as s, s.begin():
        admin = s.scalar(select(m.User).where(m.User.county_code == w.county.code, m.User.username == "ad"))
        send_request(s, from_agency_id=w.county.agencies["office_west"], to_agency_id=w.county.agencies["dept"],
                     kind="advice", subject="<b>占道</b>认定", body="请出具意见。",
                     actor=Actor(role="admin", user_id=admin.id), at=MONDAY + timedelta(days=4))
    return w


def rows(response):
    body = response.get_data()
    assert body.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def test_html_page(week):
    r = get(week, "pl", township=WEST, week=WEEK)
    page = r.get_data(as_text=True)
    assert r.status_code == 200, page[:500]
    assert r.content_type == "text/html; charset=utf-8"
    assert "west镇周例会简报" in page and "2019年第20周" in page and "Weekly meeting briefing" in page
    assert "&lt;b&gt;占道&lt;/b&gt;认定" in page and "<b>占道</b>" not in page
    nonce = re.search(r"style-src 'nonce-([^']+)'", r.headers["Content-Security-Policy"]).group(1)
    assert f'<style nonce="{nonce}">' in page and "img-src data:" in r.headers["Content-Security-Policy"]
    assert "script-src" not in r.headers["Content-Security-Policy"]  # default-src 'none' forbids scripts
    assert r.headers["Cache-Control"] == "private, no-store"
    assert "data:image/png;base64," in page


def test_csv_whole_and_by_section(week):
    r = get(week, "sup1", township=WEST, week=WEEK, format="csv")
    assert r.status_code == 200 and r.content_type == "text/csv; charset=utf-8"
    assert r.headers["Content-Disposition"] == f'attachment; filename="briefing-{WEST}-{WEEK}.csv"'
    titles = [row[0] for row in rows(r) if row and row[0].startswith("## ")]
    assert titles == [f"## {zh} / {en}" for _, zh, en in SECTIONS]
    r = get(week, "op", township=WEST, week=WEEK, format="csv", section="categories")
    assert r.headers["Content-Disposition"].endswith(f'-{WEEK}-categories.csv"')
    table = rows(r)
    by_code = {row[0]: row for row in table[1:]}
    # code, label, label_en, this week, previous week, change, change %, year ago, YoY change, YoY %
    assert by_code["TD02"][3:7] == ["2", "1", "1", "100.0"]
    assert by_code["MS03"][3:5] == ["1", "0"] and by_code["MS03"][6] == ""  # no percentage of a zero base
    assert table[-1][1] == "合计" and table[-1][3:5] == ["3", "1"]
    coordination = rows(get(week, "ad", township=WEST, week=WEEK, format="csv", section="coordination"))
    assert [row[2] for row in coordination[1:]] == ["<b>占道</b>认定"]
    assert coordination[1][1] == "咨询意见"


@pytest.mark.parametrize(("params", "field"), [
    ({"week": WEEK}, "township"),
    ({"township": "west", "week": WEEK}, "township"),
    ({"township": "379901999", "week": WEEK}, "township"),
    ({"township": "379901", "week": WEEK}, "township"),  # the county itself
    ({"township": WEST}, "week"),
    ({"township": WEST, "week": "2019-20"}, "week"),
    ({"township": WEST, "week": "2019-W53"}, "week"),
    ({"township": WEST, "week": "2099-W01"}, "week"),
    ({"township": WEST, "week": WEEK, "format": "pdf"}, "format"),
    ({"township": WEST, "week": WEEK, "section": "overdue"}, "section"),  # a section is for CSV only
    ({"township": WEST, "week": WEEK, "format": "csv", "section": "weather"}, "section"),
])
def test_bad_queries_name_the_field(week, params, field):
    r = get(week, "pl", **params)
    assert r.status_code == 400 and r.mimetype == "application/problem+json", r.get_data(as_text=True)[:300]
    assert field in [e["field"] for e in r.get_json()["errors"]]


def test_for_the_command_centre_and_planners(week):
    params = {"township": WEST, "week": WEEK, "format": "csv", "section": "info"}
    assert get(week, None, **params).status_code == 401
    for who in ("pw", "pe", "li"):
        r = get(week, who, **params)
        assert r.status_code == 403 and r.mimetype == "application/problem+json"
    for who in ("ad", "sup1", "op", "pl"):
        assert get(week, who, **params).status_code == 200


def test_documented_in_openapi(api_world):
    operation = api_world.client().get("/api/v1/openapi.json").get_json()["paths"][PATH]["get"]
    assert {"township", "week", "format", "section"} <= {p["name"] for p in operation["parameters"]}
    assert {"text/html", "text/csv"} <= set(operation["responses"]["200"]["content"])
