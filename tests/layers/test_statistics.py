"""Statistics: periods, grouped case counts, year-on-year comparison, indicators by period, the seed's figures.

The demo county has one year of cases (2021), so 2022 compared with 2021 has a known base and 2021
compared with 2020 a base of zero.
"""

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import text

from gis_platform.errors import ValidationError
from gis_platform.workcalendar import SHANGHAI
from layers import statistics as st
from layers.demo import DemoTargets
from layers.indicators import compute_indicators

COUNTY = "371521"
Y2021 = (datetime(2021, 1, 1, tzinfo=SHANGHAI), datetime(2022, 1, 1, tzinfo=SHANGHAI))
Y2022 = (datetime(2022, 1, 1, tzinfo=SHANGHAI), datetime(2023, 1, 1, tzinfo=SHANGHAI))
CASES_2021 = """
SELECT count(*) FROM "case" k
WHERE k.status NOT IN ('cancelled', 'merged') AND k.reported_at >= :s AND k.reported_at < :e
"""


def field_of(excinfo):
    return [e.field for e in excinfo.value.errors]


# -- periods (no database) -------------------------------------------------------------------------------
def test_iso_week_bounds_neighbours_and_labels():
    week = st.parse_week("2021-W20")
    assert (week.start, week.end) == (datetime(2021, 5, 17, tzinfo=SHANGHAI), datetime(2021, 5, 24, tzinfo=SHANGHAI))
    assert (week.label, week.label_en, week.span_label) == ("2021年第20周", "2021 week 20", "2021-05-17 – 2021-05-23")
    assert week.previous().key == "2021-W19" and week.year_ago().key == "2020-W20"
    assert week.year_ago().first_day == date(2020, 5, 11)
    # 2021-01-01 lies in ISO week 53 of 2020; the week before ISO week 1 of 2021 is that week.
    assert st.period_of("week", date(2021, 1, 1)).key == "2020-W53"
    assert st.parse_week("2021-W01").previous().key == "2020-W53"
    # A week 53 has no twin in a 52-week year: the same period a year earlier is week 52.
    assert st.parse_week("2020-W53").year_ago().key == "2019-W52"


@pytest.mark.parametrize(("kind", "key", "label", "previous", "ago"), [
    ("day", "2024-02-29", "2024年2月29日", "2024-02-28", "2023-02-28"),
    ("day", "2021-03-01", "2021年3月1日", "2021-02-28", "2020-03-01"),
    ("month", "2021-01", "2021年1月", "2020-12", "2020-01"),
    ("quarter", "2021-Q1", "2021年第1季度", "2020-Q4", "2020-Q1"),
    ("quarter", "2021-Q4", "2021年第4季度", "2021-Q3", "2020-Q4"),
    ("year", "2021", "2021年", "2020", "2020"),
])
def test_periods_of_every_kind(kind, key, label, previous, ago):
    p = st.parse_period(kind, key)
    assert (p.key, p.label, p.previous().key, p.year_ago().key) == (key, label, previous, ago)
    assert p.end > p.start and st.period_of(kind, p.last_day) == p


@pytest.mark.parametrize("week", ["2021-20", "2021W20", "2021-W2", "21-W20", "2021-W00", "2021-W53", "1800-W01",
                                  "", "2021-W20; DROP TABLE case"])
def test_malformed_weeks_are_refused_naming_the_field(week):
    with pytest.raises(ValidationError) as excinfo:
        st.parse_week(week)
    assert field_of(excinfo) == ["week"]


def test_periods_between_cover_the_range_in_shanghai_time():
    start, end = datetime(2021, 1, 1, tzinfo=SHANGHAI), datetime(2021, 2, 1, tzinfo=SHANGHAI)
    assert [p.key for p in st.periods_between("week", start, end)] == [
        "2020-W53", "2021-W01", "2021-W02", "2021-W03", "2021-W04"]
    assert [p.key for p in st.periods_between("month", start, end)] == ["2021-01"]
    assert len(st.periods_between("day", *Y2021)) == 365


def test_year_ago_and_compare():
    assert st.year_ago(datetime(2024, 2, 29, 12, tzinfo=SHANGHAI)) == datetime(2023, 2, 28, 12, tzinfo=SHANGHAI)
    # Whole ISO weeks grouped by week go back to the same week numbers; anything else a calendar year.
    w20 = st.parse_week("2022-W20")
    assert st.year_ago_range(w20.start, w20.end, weeks=True) == (st.parse_week("2021-W20").start,
                                                                 st.parse_week("2021-W21").start)
    h1 = (datetime(2024, 1, 1, tzinfo=SHANGHAI), datetime(2024, 7, 1, tzinfo=SHANGHAI))  # both Mondays
    assert st.year_ago_range(*h1) == (datetime(2023, 1, 1, tzinfo=SHANGHAI), datetime(2023, 7, 1, tzinfo=SHANGHAI))
    assert st.compare(5, 4) == st.Change(5, 4, 1, 25.0)
    assert st.compare(3, 0) == st.Change(3, 0, 3, None)  # no percentage of a zero base
    assert st.compare(0, 8) == st.Change(0, 8, -8, -100.0)
    assert st.compare(0.5, None) == st.Change(0.5, None, None, None)


# -- the seed's figures ----------------------------------------------------------------------------------
def test_demo_year_reproduces_the_seed_report(demo_session):
    f = st.report_figures(demo_session, COUNTY, *Y2021)
    # The 2021 reform report: 2,746 illegal-operation and 6,083 ten-disorders cases, 43 promotional events,
    # 67 market-supervision cases (14 / 1 / 46 / 2 / 4), 364 seized items, 657 hotline tickets all closed,
    # 1,768 fume inspections with 3 penalised, 88 structures demolished, 9,074.7 m².
    assert (f.cases_by_theme["illegal_operation"], f.cases_by_theme["ten_disorders"],
            f.cases_by_theme["promotion"], f.cases_by_theme["market_supervision"]) == (2746, 6083, 43, 67)
    assert [f.cases_by_category[c] for c in ("MS01", "MS02", "MS03", "MS04", "MS05")] == [14, 1, 46, 2, 4]
    assert f.seized_items == 364
    assert (f.hotline_received, f.hotline_closed, f.hotline_closure_rate) == (657, 657, 1.0)
    assert (f.fume_inspections, f.fume_exceedances, f.fume_penalised) == (1768, 3, 3)
    assert (f.demolished, f.demolished_area_m2) == (88, 9074.7)
    t = DemoTargets()
    assert f.cases_by_theme["illegal_structures"] == t.structures_demolished + t.structures_open
    assert f.cases_by_theme["fume_sites"] == t.fume_exceedances  # each penalty opens a case
    assert f.total_cases == demo_session.execute(text(CASES_2021), {"s": Y2021[0], "e": Y2021[1]}).scalar()
    assert f.total_cases == sum(f.cases_by_category.values())


@pytest.mark.parametrize("group_by", [*st.DIMENSIONS, "township,month", "category,squad", "grid,quarter"])
def test_grouped_counts_sum_to_the_total(demo_session, group_by):
    result = st.count_cases(demo_session, COUNTY, start=Y2021[0], end=Y2021[1], group_by=group_by)
    assert result.total.count == demo_session.execute(text(CASES_2021), {"s": Y2021[0], "e": Y2021[1]}).scalar()
    assert sum(r.count for r in result.rows) == result.total.count
    keys = [tuple(g.key for g in r.groups) for r in result.rows]
    assert len(set(keys)) == len(keys) and all(len(k) == len(result.group_by) for k in keys)
    assert all(r.base is None for r in result.rows)


def test_counts_agree_with_plain_sql(demo_session):
    by_township = st.count_cases(demo_session, COUNTY, start=Y2021[0], end=Y2021[1], group_by="township")
    expected = dict(demo_session.execute(text("""
        SELECT u.code, count(*) FROM "case" k JOIN admin_unit u ON u.id = k.admin_unit_id
        WHERE k.status NOT IN ('cancelled', 'merged') GROUP BY u.code""")).all())
    assert {r.groups[0].key: r.count for r in by_township.rows} == expected
    first = by_township.rows[0].groups[0]
    assert (first.key, first.label, first.label_en) == ("371521001", "博济桥街道", "Bojiqiao Subdistrict")
    months = st.count_cases(demo_session, COUNTY, start=Y2021[0], end=Y2021[1], group_by="month")
    assert [r.groups[0].key for r in months.rows] == [f"2021-{n:02d}" for n in range(1, 13)]
    # Shanghai months: a case reported at 00:30 on 1 February (16:30 UTC on 31 January) is February's.
    feb = demo_session.execute(text("""SELECT count(*) FROM "case" WHERE status NOT IN ('cancelled', 'merged')
        AND reported_at >= '2021-02-01T00:00+08' AND reported_at < '2021-03-01T00:00+08'""")).scalar()
    assert months.rows[1].count == feb and months.rows[1].groups[0].label == "2021年2月"


def test_filters_narrow_and_name_their_field(demo_session):
    whole = st.count_cases(demo_session, COUNTY, start=Y2021[0], end=Y2021[1], group_by="category")
    town = st.count_cases(demo_session, COUNTY, start=Y2021[0], end=Y2021[1], group_by="category",
                          township="371521002", theme="ten_disorders", source="patroller")
    assert 0 < town.total.count < whole.total.count
    assert {r.groups[0].key[:2] for r in town.rows} == {"TD"}
    assert town.filters == {"township": "371521002", "theme": "ten_disorders", "source": "patroller"}
    squad = st.count_cases(demo_session, COUNTY, start=Y2021[0], end=Y2021[1], squad="ZD02", category="TD02")
    assert squad.total.count == demo_session.execute(text("""
        SELECT count(*) FROM "case" k JOIN agency a ON a.id = k.assigned_agency_id JOIN category c
        ON c.id = k.category_id WHERE a.code = 'ZD02' AND c.code = 'TD02'
        AND k.status NOT IN ('cancelled', 'merged')""")).scalar()
    for kwargs, name in (({"township": "999"}, "township"), ({"category": "NOPE"}, "category"),
                         ({"squad": "ZD99"}, "squad"), ({"theme": "weather"}, "theme"),
                         ({"source": "rumour"}, "source"),
                         ({"group_by": "district"}, "group_by"), ({"group_by": "month,week"}, "group_by"),
                         ({"group_by": "category,township,squad"}, "group_by"),
                         ({"group_by": "category,category"}, "group_by")):
        with pytest.raises(ValidationError) as excinfo:
            st.count_cases(demo_session, COUNTY, start=Y2021[0], end=Y2021[1], **kwargs)
        assert field_of(excinfo) == [name]
    with pytest.raises(ValidationError) as excinfo:
        st.count_cases(demo_session, COUNTY, start=Y2021[1], end=Y2021[0])
    assert field_of(excinfo) == ["end"]


def test_year_on_year_counts(demo_session):
    this_year = st.count_cases(demo_session, COUNTY, start=Y2022[0], end=Y2022[1], group_by="month",
                               year_on_year=True)
    before = st.count_cases(demo_session, COUNTY, start=Y2021[0], end=Y2021[1], group_by="month")
    assert (this_year.base_start, this_year.base_end) == Y2021
    total = this_year.total
    assert (total.count, total.base, total.change, total.change_pct) == (0, before.total.count,
                                                                        -before.total.count, -100.0)
    assert [r.base for r in this_year.rows] == [r.count for r in before.rows]
    assert all(r.change == -r.base for r in this_year.rows)
    # 2021 against 2020, when the demo has no case: the base is 0 and there is no percentage.
    first = st.count_cases(demo_session, COUNTY, start=Y2021[0], end=Y2021[1], group_by="theme", year_on_year=True)
    assert all(r.base == 0 and r.change == r.count and r.change_pct is None for r in first.rows)
    # Weeks compare by ISO week number: 2022-W20 against 2021-W20.
    w20 = st.parse_week("2022-W20")
    weekly = st.count_cases(demo_session, COUNTY, start=w20.start, end=w20.end, group_by="week", year_on_year=True)
    then = st.parse_week("2021-W20")
    assert [r.groups[0].key for r in weekly.rows] == ["2022-W20"]
    assert weekly.rows[0].base == st.count_cases(demo_session, COUNTY, start=then.start, end=then.end).total.count > 0


def test_case_summary_lists_every_theme_and_status(demo_session):
    summary = st.case_summary(demo_session, COUNTY, *Y2021)
    assert summary["total"] == sum(c.count for c in summary["by_theme"]) == sum(c.count for c in summary["by_category"])
    assert summary["reported"] == summary["total"] + next(s.count for s in summary["by_status"] if s.key == "cancelled")
    counts = [c.count for c in summary["by_category"]]
    assert counts == sorted(counts, reverse=True)
    assert [c.key for c in summary["by_township"]] == sorted(c.key for c in summary["by_township"])


# -- indicators ------------------------------------------------------------------------------------------
def test_indicators_by_day_add_up_to_the_week(demo_session):
    week = st.parse_week("2021-W20")
    daily = st.indicator_table(demo_session, COUNTY, start=week.start, end=week.end, group_by="day")
    [total] = compute_indicators(demo_session, COUNTY, start=week.start, end=week.end)
    assert [r.row.key for r in daily.rows] == [(week.first_day + timedelta(days=n)).isoformat() for n in range(7)]
    for name in ("due", "handled", "handled_on_time", "due_to_close", "closed", "closed_on_time", "overdue"):
        assert sum(getattr(r.row, name) for r in daily.rows) == getattr(total, name), name
    assert total.due > 0
    assert daily.rows[0].row.label == "2021年5月17日" and daily.rows[0].label_en == "17 May 2021"


def test_indicators_grouped_natively_keep_english_labels(demo_session):
    month = st.parse_period("month", "2021-06")
    table = st.indicator_table(demo_session, COUNTY, start=month.start, end=month.end, group_by="township")
    direct = compute_indicators(demo_session, COUNTY, start=month.start, end=month.end, group_by="township",
                                as_of=table.as_of)
    assert [r.row for r in table.rows] == direct
    assert table.rows[0].label_en == "Bojiqiao Subdistrict"


def test_indicators_year_on_year(demo_session):
    june22, june21 = st.parse_period("month", "2022-06"), st.parse_period("month", "2021-06")
    table = st.indicator_table(demo_session, COUNTY, start=june22.start, end=june22.end, year_on_year=True)
    [row] = table.rows
    [then] = compute_indicators(demo_session, COUNTY, start=june21.start, end=june21.end, as_of=june21.end)
    assert (table.base_start, table.base_end, table.base_as_of) == (june21.start, june21.end, june21.end)
    assert row.base == then and row.row.due == 0
    assert row.changes["due"] == st.Change(0, then.due, -then.due, -100.0)
    rate = row.changes["handling_rate"]
    assert rate.current is None and rate.base == then.handling_rate and rate.change is None


def test_too_many_days_of_indicators_are_refused(demo_session):
    with pytest.raises(ValidationError) as excinfo:
        st.indicator_table(demo_session, COUNTY, start=Y2021[0], end=Y2021[1], group_by="day")
    assert field_of(excinfo) == ["group_by"]
    with pytest.raises(ValidationError) as excinfo:
        st.indicator_table(demo_session, COUNTY, start=Y2021[0], end=Y2021[1], group_by="grid")
    assert field_of(excinfo) == ["group_by"]
