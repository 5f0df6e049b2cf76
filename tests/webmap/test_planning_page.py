"""The planning page over the app (no browser): access, references, and its data against the database."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from gis_platform.workcalendar import SHANGHAI
from tests.webmap.conftest import PLANNING_COUNTY, planning_cell_counts
from webmap import assets, planning
from webmap.planning import CaseFilter, CellCount, CellCounts, Month

EXTERNAL = re.compile(r"""(?:https?:)?//[^\s"'<>)\\]+""")
REFERENCE = re.compile(r"""(?:src|href)=["']([^"'#]+)["']""")
HTML = {"Accept": "text/html,application/xhtml+xml"}
MARCH = (datetime(2021, 3, 1, tzinfo=SHANGHAI), datetime(2021, 4, 1, tzinfo=SHANGHAI))
YEAR = (datetime(2021, 1, 1, tzinfo=SHANGHAI), datetime(2022, 1, 1, tzinfo=SHANGHAI))


def _get(world, url: str, user: str = "pl"):
    return world.api().get(url, headers=world.token(user))


# -- access and references ------------------------------------------------------------------------------------
def test_planners_supervisors_operators_and_admins_may_open_it_and_no_one_else(planning_world):
    w = planning_world
    response = w.api().get("/planning", headers=HTML)
    assert response.status_code == 302 and response.headers["Location"] == "/login?next=/planning"
    assert w.api().get("/planning").status_code == 401
    for user in ("pl", "sup1", "op", "ad"):
        assert _get(w, "/planning", user).status_code == 200, user
    for user in ("pw", "li"):
        response = w.api().get("/planning", headers={**HTML, **w.token(user)})
        assert response.status_code == 403 and "无权访问" in response.get_data(as_text=True), user
        assert _get(w, "/planning/data/cells", user).status_code == 403, user
    assert w.api().get("/planning/data/heat").status_code == 401
    assert w.api().get("/planning/data/heat").content_type == "application/problem+json"


def test_the_page_references_no_other_host_and_only_files_the_platform_serves(planning_world):
    w = planning_world
    html = _get(w, "/planning").get_data(as_text=True)
    assert EXTERNAL.findall(html) == []
    refs = sorted({r for r in REFERENCE.findall(html) if r.startswith("/static/")})
    for name in ("planning.js", "planning.css", "chart.umd.min.js", "html-to-image.js", "leaflet_heat.min.js"):
        assert any(r.endswith(name) for r in refs), name
    for url in refs:  # (the vendor style sheets' own references are checked for /command in test_pages)
        response = w.api().get(url)
        assert response.status_code == 200, url
        if url.endswith("/planning.css"):
            assert assets.css_references(response.get_data(as_text=True)) == []
        response.close()
    # The map script carries this request's nonce (the CSP allows no other inline script).
    nonce = re.search(r"'nonce-([^']+)'", _get(w, "/planning").headers.get("Content-Security-Policy", "") or "''")
    if nonce:
        assert re.search(r'<script nonce="[^"]+">\s*var map_', html)
    assert "onclick=" not in html and "style=" not in html
    # The landing page links to it.
    assert 'href="/planning"' in w.api().get("/").get_data(as_text=True)


def test_the_page_carries_the_months_categories_and_townships(planning_world):
    html = _get(planning_world, "/planning", "op").get_data(as_text=True)
    config = re.search(r'<script type="application/json" id="gis-config">(.*?)</script>', html, re.S).group(1)
    data = json.loads(config)
    assert data["months"] == [f"2021-{n:02d}" for n in range(1, 13)]
    assert [t["value"] for t in data["townships"]] == [f"{PLANNING_COUNTY}101", f"{PLANNING_COUNTY}102"]
    assert data["names"]["squad"]["SQ-west"] == {"zh": "west中队", "en": "west"}
    assert set(data["analytics"]) == {"hotspots", "emerging", "briefing"}
    assert 'value="TD02"' in html and 'value="MS03"' in html
    assert 'max="11"' in html  # the slider spans the twelve months


# -- data --------------------------------------------------------------------------------------------------------
def test_counts_per_cell_equal_the_database_for_a_month_and_a_category(planning_world):
    w = planning_world
    march = _get(w, "/planning/data/cells?start=2021-03&end=2021-03").get_json()
    truth = planning_cell_counts(w, *MARCH)
    assert {f["properties"]["code"]: f["properties"]["count"] for f in march["features"]} == truth
    assert march["in_cells"] == sum(truth.values()) and march["total"] == march["in_cells"] + march["outside"]
    assert (march["start"], march["end"], march["category"]) == ("2021-03", "2021-03", None)
    counts = [f["properties"]["count"] for f in march["features"]]
    assert counts == sorted(counts, reverse=True)
    # Every cell falls in one class of the legend; the classes are ordered and do not overlap.
    classes = march["classes"]
    assert classes and classes[0]["min"] == 1 and classes[-1]["max"] == max(counts)
    assert all(a["max"] < b["min"] for a, b in zip(classes, classes[1:]))
    for feature in march["features"]:
        entry = classes[feature["properties"]["class"]]
        assert entry["min"] <= feature["properties"]["count"] <= entry["max"]
        assert feature["geometry"]["type"] == "MultiPolygon"
    market = _get(w, "/planning/data/cells?start=2021-03&end=2021-03&category=MS03").get_json()
    assert {f["properties"]["code"]: f["properties"]["count"] for f in market["features"]} == \
        planning_cell_counts(w, *MARCH, category="MS03")
    assert 0 < market["total"] < march["total"]
    # Another month shows other counts; the whole year (the default window) holds every month.
    july = _get(w, "/planning/data/cells?start=2021-07&end=2021-07").get_json()
    assert july["total"] != march["total"]
    year = _get(w, "/planning/data/cells").get_json()
    assert (year["start"], year["end"]) == ("2021-01", "2021-12")
    assert year["in_cells"] == sum(planning_cell_counts(w, *YEAR).values())
    assert year["outside"] == 2  # two cases lie in no cell; cancelled reports are not counted at all


def test_the_heat_map_sums_every_case_into_a_bounded_number_of_points(planning_world):
    w = planning_world
    heat = _get(w, "/planning/data/heat?start=2021-03&end=2021-03").get_json()
    march = _get(w, "/planning/data/cells?start=2021-03&end=2021-03").get_json()
    assert heat["cases"] == march["total"] == sum(p[2] for p in heat["points"])
    assert heat["step_deg"] == planning.HEAT_STEPS_DEG[0] and heat["max"] == max(p[2] for p in heat["points"])
    for lat, lon, n in heat["points"]:
        assert 36.0 <= lat <= 36.05 and 115.7 <= lon <= 115.8 and n >= 1
    # However many cases there are, no more than the cap: the buckets grow until they fit.
    with Session(w.engine) as session:
        year = CaseFilter(PLANNING_COUNTY, Month(2021, 1), Month(2021, 12))
        fine = planning.heat_points(session, year)
        capped = planning.heat_points(session, year, cap=10)
    assert len(capped.points) <= 10 < len(fine.points)
    assert capped.step_deg > fine.step_deg
    assert capped.cases == fine.cases == _get(w, "/planning/data/cells").get_json()["total"]


def test_the_csv_has_a_bom_chinese_headers_first_and_the_rows_of_the_filter(planning_world):
    w = planning_world
    response = _get(w, "/planning/data/cells.csv?start=2021-03&end=2021-03&category=TD02")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "grid-counts_2021-03_2021-03_TD02.csv" in response.headers["Content-Disposition"]
    body = response.get_data()
    assert body.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0] == ["网格编码 Grid code", "街道/乡镇 Township", "中队 Squad", "案件数 Cases"]
    assert {r[0]: int(r[3]) for r in rows[1:]} == planning_cell_counts(w, *MARCH, category="TD02")
    assert {r[1] for r in rows[1:]} <= {"west镇", "east镇"} and {r[2] for r in rows[1:]} <= {"west中队", "east中队"}


def test_a_csv_cell_never_runs_as_a_formula():
    cell = CellCount(1, "=HYPERLINK(\"http://x\")", "+西镇", None, "@中队", None, 3, "{}")
    rows = list(csv.reader(io.StringIO(planning.cells_csv(CellCounts([cell], 3, 0)).lstrip("\ufeff"))))
    assert rows[1] == ["'=HYPERLINK(\"http://x\")", "'+西镇", "'@中队", "3"]


@pytest.mark.parametrize(("query", "field"), [
    ("start=2021-13", "start"), ("start=March&end=2021-03", "start"), ("start=2021-05&end=2021-03", "end"),
    ("start=2019-01&end=2021-12", "end"), ("category=XX99", "category"), ("bbox=1,2,3,4", "bbox"),
    ("end=" + "9" * 500, "end"), ("start=9999-12&end=9999-12", "start"), ("start=0001-01", "start"),
    ("start=2021-1", "start"), ("start=%EF%BC%92021-01", "start"), ("start=2021-03&start=2021-04&end=x", "end"),
])
def test_bad_input_is_a_400_naming_the_field(planning_world, query, field):
    for path in ("/planning/data/heat", "/planning/data/cells", "/planning/data/cells.csv"):
        response = _get(planning_world, f"{path}?{query}")
        assert response.status_code == 400, (path, query)
        problem = response.get_json()
        assert response.content_type == "application/problem+json"
        assert field in [e["field"] for e in problem["errors"]], problem
        assert len(problem["detail"]) < 300


# -- pure parts ----------------------------------------------------------------------------------------------
def test_months_span_the_cases_and_at_most_the_last_two_years(planning_world):
    with Session(planning_world.engine) as session:
        assert planning.case_months(session, PLANNING_COUNTY) == [f"2021-{n:02d}" for n in range(1, 13)]
        assert planning.case_months(session, PLANNING_COUNTY, limit=3) == ["2021-10", "2021-11", "2021-12"]
        now = datetime.now(SHANGHAI)
        assert planning.case_months(session, "379000") == [f"{now.year:04d}-{now.month:02d}"]
    assert Month(2021, 12).plus(1) == Month(2022, 1) and Month(2022, 1).plus(-13) == Month(2020, 12)
    assert Month(2022, 2).minus(Month(2021, 11)) == 3
    assert Month.of(datetime(2021, 2, 28, 23, 59, tzinfo=SHANGHAI)) == Month(2021, 2)
    # 2021-02-28T16:30Z is already March in Shanghai.
    assert Month.of(datetime(2021, 2, 28, 16, 30, tzinfo=UTC)) == Month(2021, 3)
    assert CaseFilter(PLANNING_COUNTY, Month(2021, 3), Month(2021, 3)).end == datetime(2021, 4, 1, tzinfo=SHANGHAI)


def test_count_classes_follow_the_values():
    assert planning.count_classes([]) == [] and planning.count_classes([0, 0]) == []
    one = planning.count_classes([4, 4, 4])
    assert one == [{"min": 1, "max": 4, "color": planning.COUNT_COLOURS[-1]}]
    spread = planning.count_classes(list(range(1, 101)))
    assert len(spread) == 5 and spread[0]["min"] == 1 and spread[-1]["max"] == 100
    assert [c["color"] for c in spread] == list(planning.COUNT_COLOURS)
    assert planning.class_of(100, spread) == 4 and planning.class_of(0, spread) is None


def test_the_page_reports_which_analytics_endpoints_the_app_serves(planning_world):
    with planning_world.app.test_request_context():
        served = planning.served_analytics()
    rules = {r.rule for r in planning_world.app.url_map.iter_rules()}
    for key, path in planning.ANALYTICS_PATHS.items():
        assert served[key] == (path if path in rules else None)


def test_assets_are_listed_for_the_build():
    names = {copy.dest for copy in assets.COPIES}
    assert {"chart.js/chart.umd.min.js", "html-to-image/html-to-image.js"} <= names
