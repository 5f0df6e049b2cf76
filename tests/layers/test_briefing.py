"""The weekly township briefing on the demo county: its figures against plain SQL, its HTML, CSV, map and CLI.

One briefing (侨润街道, 2021-W29: four cases overdue at the end of the week) is built per module inside a
rolled-back session that also holds a few coordination requests made for it.
"""

import csv
import io
from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner
from PIL import Image
from sqlalchemy import select, text

from gis_platform import models as m
from gis_platform.errors import ValidationError
from gis_platform.workcalendar import SHANGHAI
from layers import briefing as br
from layers import coordination as co
from layers.cases import CALENDAR, Actor
from layers.statistics import parse_week
from tests.conftest import rolled_back_session

COUNTY = "371521"
TOWNSHIP = "371521002"  # 侨润街道
WEEK = "2021-W29"  # 19–25 July 2021
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=SHANGHAI)
HOSTILE = '<script>alert("x")</script>'
FORMULA = "=1+2 超期未复"

CASES_IN = text("""
SELECT c.code, count(*) FROM "case" k JOIN category c ON c.id = k.category_id
JOIN admin_unit u ON u.id = k.admin_unit_id
WHERE u.code = :unit AND k.status NOT IN ('cancelled', 'merged') AND k.reported_at >= :s AND k.reported_at < :e
GROUP BY c.code
""")
# Open at as_of and past the stored deadline (the demo loader computes due_at with the same calendar).
OVERDUE_ORACLE = text("""
SELECT k.case_no, k.due_at FROM "case" k JOIN admin_unit u ON u.id = k.admin_unit_id
WHERE u.code = :unit AND k.dispatched_at < :as_of AND k.due_at < :as_of
  AND NOT EXISTS (SELECT 1 FROM case_event f WHERE f.case_id = k.id AND f.action = 'feedback' AND f.at < :as_of)
""")


def agency(session, code):
    return session.scalar(select(m.Agency.id).where(m.Agency.county_code == COUNTY, m.Agency.code == code))


@pytest.fixture(scope="module")
def world(demo_engine):
    """Coordination requests around the week, then the briefing, in one rolled-back session."""
    with rolled_back_session(demo_engine) as session:
        admin = session.scalar(select(m.User).where(m.User.username == "admin"))
        actor = Actor(role="admin", user_id=admin.id)
        office, other_office = agency(session, "YG-ZFB-002"), agency(session, "YG-ZFB-001")
        dept = agency(session, "YG-SCJ")
        week = parse_week(WEEK)

        def send(subject, at, sender=office, kind="determination"):
            return co.send_request(session, from_agency_id=sender, to_agency_id=dept, kind=kind, subject=subject,
                                   body="请予认定。", actor=actor, at=at)

        requests = {
            "late": send(FORMULA, week.start - timedelta(days=6)),  # Tue of W28: due Fri of W28
            "open": send(f"本周待复 {HOSTILE}", week.start + timedelta(days=4, hours=10)),  # Fri: due Wed of W30
            "answered_before": send("已复", week.start + timedelta(hours=9)),
            "answered_after": send("周后才复", week.start + timedelta(days=1, hours=9), kind="hazard_notice"),
            "elsewhere": send("他乡镇", week.start + timedelta(hours=9), sender=other_office),
            "after_week": send("下周才发", week.end + timedelta(hours=9)),
        }
        co.answer(session, requests["answered_before"].id, answer_text="已认定", actor=actor,
                  at=week.start + timedelta(days=1, hours=10))
        co.receive(session, requests["answered_after"].id, actor=actor, at=week.end + timedelta(hours=10))
        session.flush()
        briefing = br.build_briefing(session, COUNTY, TOWNSHIP, WEEK, now=NOW)
        yield session, briefing, requests


def test_cases_by_category_against_sql(world):
    session, b, _ = world
    week = parse_week(WEEK)
    counted = {}
    for name, p in (("now", week), ("previous", week.previous()), ("year_ago", week.year_ago())):
        counted[name] = dict(session.execute(CASES_IN, {"unit": TOWNSHIP, "s": p.start, "e": p.end}).all())
    lines = {c.code: c for c in b.categories}
    assert set(lines) == set(counted["now"]) | set(counted["previous"]) | set(counted["year_ago"])
    for code, line in lines.items():
        assert line.count == counted["now"].get(code, 0)
        assert line.previous.base == counted["previous"].get(code, 0)
        assert line.year_ago.base == counted["year_ago"].get(code, 0) == 0  # the demo has no 2020
        assert line.previous.change == line.count - line.previous.base
    assert b.total.count == sum(counted["now"].values()) > 0
    assert b.total.previous.base == sum(counted["previous"].values()) > 0
    assert b.total.year_ago.change_pct is None  # a year earlier had no case: no percentage
    assert [c.count for c in b.categories] == sorted((c.count for c in b.categories), reverse=True)
    assert b.as_of == week.end and b.week.key == WEEK and b.previous_week.key == "2021-W28"
    assert b.year_ago_week.key == "2020-W29"


def test_indicators_of_the_week_are_the_townships_row(world):
    _, b, _ = world
    assert b.indicators is not None and b.indicators.key == TOWNSHIP and b.indicators.due > 0


def test_overdue_cases_match_the_stored_deadlines(world):
    session, b, _ = world
    oracle = {no: due for no, due in session.execute(OVERDUE_ORACLE, {"unit": TOWNSHIP, "as_of": b.as_of})
              # No working time past a deadline at 18:00 on Friday yet: that case is not late at Monday 00:00.
              if CALENDAR.working_hours_between(due, b.as_of) > 1e-6}
    assert len(b.overdue) == 4
    assert {c.case_no for c in b.overdue} == set(oracle)
    for c in b.overdue:
        assert abs((c.deadline - oracle[c.case_no]).total_seconds()) < 1
        expected = CALENDAR.working_hours_between(c.deadline, b.as_of) / CALENDAR.hours_per_day
        assert c.overdue_working_days == round(expected, 1) > 0
        assert c.status in ("dispatched", "accepted") and c.squad_code == "ZD02" and c.overrun_multiple > 0
    days = [c.overdue_working_days for c in b.overdue]
    assert days == sorted(days, reverse=True)


def test_pending_requests_at_the_end_of_the_week(world):
    _, b, requests = world
    pending = {r.id: r for r in b.requests}
    assert set(pending) == {requests[k].id for k in ("late", "open", "answered_after")}
    late, still = pending[requests["late"].id], pending[requests["open"].id]
    assert late.overdue and late.remaining_working_hours is None and late.overdue_working_days == 5.0
    assert not still.overdue and still.overdue_working_days is None
    assert still.remaining_working_hours == CALENDAR.working_hours_between(b.as_of, still.due_at) == 24.0
    assert still.to_agency == "阳谷县市场监督管理局" and pending[requests["answered_after"].id].kind_label
    assert [r.id for r in b.requests][0] == requests["late"].id  # earliest deadline first


def test_hotspots_are_the_townships_hottest_cells(world):
    session, b, _ = world
    assert b.hotspot_start == parse_week(WEEK).start - timedelta(weeks=br.DEFAULT_HOTSPOT_WEEKS - 1)
    assert b.hotspot_cells > 0 and 0 < len(b.hotspots) <= br.DEFAULT_TOP
    assert [h.rank for h in b.hotspots] == list(range(1, len(b.hotspots) + 1))
    assert all(h.gi_bin > 0 and h.gi_p <= 0.05 for h in b.hotspots)
    # Hot cells hold more cases than the township's cells do on average over the same weeks.
    cases = session.execute(text("""SELECT count(*) FROM "case" k JOIN admin_unit u ON u.id = k.admin_unit_id
        WHERE u.code = :unit AND k.status NOT IN ('cancelled', 'merged') AND k.reported_at >= :s
        AND k.reported_at < :e"""), {"unit": TOWNSHIP, "s": b.hotspot_start, "e": b.hotspot_end}).scalar()
    assert min(h.count for h in b.hotspots) > cases / b.hotspot_cells
    order = [(-h.gi_bin, -h.gi_z) for h in b.hotspots]
    assert order == sorted(order)
    inside = session.execute(text("""
        SELECT bool_and(ST_Covers(u.geom, ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326)))
        FROM admin_unit u, unnest(CAST(:lon AS float8[]), CAST(:lat AS float8[])) AS p(lon, lat)
        WHERE u.code = :unit"""), {"lon": [h.lon for h in b.hotspots], "lat": [h.lat for h in b.hotspots],
                                   "unit": TOWNSHIP}).scalar()
    assert inside


def test_map_is_a_png_with_or_without_a_cjk_font(world):
    _, b, _ = world
    image = Image.open(io.BytesIO(b.map_png))
    assert image.format == "PNG" and image.width > 800 and image.height > 400
    # Without a CJK font nothing Chinese is drawn (so no missing-glyph warning, which the suite makes an error).
    plain = br.render_map(b.township, [], b.hotspots, metric_crs="EPSG:4548", font=None,
                          title_en="Qiaorun Subdistrict")
    assert Image.open(io.BytesIO(plain)).format == "PNG"
    if br.find_cjk_font() is not None:
        assert br.find_cjk_font() in br.CJK_FONTS


def test_html_page_is_printable_escaped_and_self_contained(world):
    _, b, _ = world
    page = br.render_html(b, nonce="abc123")
    assert page.startswith("<!doctype html>") and '<html lang="zh-CN">' in page
    assert "侨润街道周例会简报" in page and "Weekly meeting briefing" in page and "2021年第29周" in page
    assert "@page { size: A4" in page and '<style nonce="abc123">' in page
    assert page.count("data:image/png;base64,") == 1
    for case in b.overdue:
        assert case.case_no in page
    assert HOSTILE not in page and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "<script" not in page and 'style="' not in page and 'src="http' not in page and "href=" not in page


def test_csv_has_a_bom_and_one_section_per_table(world):
    _, b, requests = world
    raw = br.render_csv(b)
    assert raw.startswith(b"\xef\xbb\xbf")
    body = raw.decode("utf-8-sig")
    titles = [line for line in body.splitlines() if line.startswith("## ")]
    assert titles == [f"## {zh} / {en}" for _, zh, en in br.SECTIONS]
    categories = list(csv.reader(io.StringIO(br.render_csv(b, "categories").decode("utf-8-sig"))))
    assert categories[0][:4] == ["类别代码 / Code", "类别 / Category", "Category (English)", "本周 / This week"]
    assert [int(row[3]) for row in categories[1:]] == [c.count for c in [*b.categories, b.total]]
    assert categories[-1][1] == "合计"
    overdue = list(csv.reader(io.StringIO(br.render_csv(b, "overdue").decode("utf-8-sig"))))
    assert [row[0] for row in overdue[1:]] == [c.case_no for c in b.overdue]
    coordination = list(csv.reader(io.StringIO(br.render_csv(b, "coordination").decode("utf-8-sig"))))
    subjects = {row[2] for row in coordination[1:]}
    assert "'" + FORMULA in subjects  # a cell a spreadsheet would run as a formula is defused
    assert f"本周待复 {HOSTILE}" in subjects  # CSV is data: other text is kept as written
    hotspots = list(csv.reader(io.StringIO(br.render_csv(b, "hotspots").decode("utf-8-sig"))))
    assert len(hotspots) == len(b.hotspots) + 1
    with pytest.raises(ValidationError) as excinfo:
        br.render_csv(b, "weather")
    assert [e.field for e in excinfo.value.errors] == ["section"]


@pytest.mark.parametrize(("township", "week", "field"), [
    ("371521", WEEK, "township"),  # the county itself
    ("371599001", WEEK, "township"),
    ("371521002", "2021-29", "week"),
    ("371521002", "2021-W53", "week"),
    ("371521002", "2099-W01", "week"),  # not begun
])
def test_bad_township_or_week_names_the_field(demo_session, township, week, field):
    with pytest.raises(ValidationError) as excinfo:
        br.build_briefing(demo_session, COUNTY, township, week, now=NOW, draw_map=False)
    assert [e.field for e in excinfo.value.errors] == [field]


def test_cli_writes_html_and_csv(demo_url, tmp_path, monkeypatch):
    from gis_platform.cli import cli

    monkeypatch.setenv("DATABASE_URL", demo_url)
    monkeypatch.setenv("GIS_COUNTY_CODE", COUNTY)
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    runner = CliRunner()
    bad_week = runner.invoke(cli, ["briefing", "--township", TOWNSHIP, "--week", "2021-20"])
    assert bad_week.exit_code == 2 and "--week" in bad_week.output and "YYYY-Www" in bad_week.output
    bad_town = runner.invoke(cli, ["briefing", "--township", "999", "--week", WEEK])
    assert bad_town.exit_code == 2 and "--township" in bad_town.output and "999" in bad_town.output
    out = tmp_path / "out"
    done = runner.invoke(cli, ["briefing", "--township", "371521402", "--week", WEEK, "--out", str(out),
                               "--hotspot-weeks", "4"])
    assert done.exit_code == 0, done.output
    written = sorted(p.name for p in out.iterdir())
    assert written == [f"briefing-371521402-{WEEK}.csv", f"briefing-371521402-{WEEK}.html"]
    assert "祥光生态工业园" in (out / written[1]).read_text(encoding="utf-8")
    assert (out / written[0]).read_bytes().startswith(b"\xef\xbb\xbf")
