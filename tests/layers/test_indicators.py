"""Indicators from the event log: hand-checked small cases, grouping, and the demo year."""

import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis_platform.errors import ValidationError
from gis_platform.workcalendar import SHANGHAI
from layers.cases import Actor, act, report_case
from layers.indicators import INDICATOR_LABELS, compute_indicators
from tests.factories import add_photo, make_county

WEST = {"type": "Point", "coordinates": [115.72, 36.02]}
EAST = {"type": "Point", "coordinates": [115.78, 36.02]}
FEB = datetime(2021, 2, 1, tzinfo=SHANGHAI)
APR = datetime(2021, 4, 1, tzinfo=SHANGHAI)


def at(month, day, hour, minute=0):
    return datetime(2021, month, day, hour, minute, tzinfo=SHANGHAI)


def who(county, name):
    return Actor.of(county.users[name])


def run_case(session, county, dispatched, steps, *, geometry=WEST, patroller="pw"):
    """Report, file and dispatch a case at a given time, then take the given (action, user, time, kw) steps."""
    case = report_case(session, county.code, category="TD02", geometry=geometry, source="patroller",
                       reporter=who(county, patroller), reported_at=dispatched - timedelta(minutes=30)).case
    act(session, case.id, "file", who(county, "sup1"), at=dispatched - timedelta(minutes=20))
    act(session, case.id, "dispatch", who(county, "op"), at=dispatched)
    for action, user, when, kw in steps:
        if action == "feedback":
            kw = {**kw, "attachment_ids": [add_photo(session, case).id]}
        act(session, case.id, action, who(county, user), at=when, **kw)
    return case


@pytest.fixture(scope="module")
def hand(engine):
    """A county with seven cases, built once for the read-only tests below and rolled back after them.

    Its own county code keeps its uncommitted rows from colliding with the per-test counties.
    """
    with engine.connect() as conn:
        outer = conn.begin()
        session = Session(bind=conn, join_transaction_mode="create_savepoint")
        try:
            yield session, seven_cases(session, make_county(session, "379911"))
        finally:
            session.close()
            outer.rollback()


def seven_cases(s, c):
    """Seven cases on TD02 (16 working hours when normal), checked by hand in the tests below."""
    # A: handled in 6 h and closed: on time.
    run_case(s, c, at(3, 1, 9), [("accept", "pw", at(3, 1, 9, 30), {}), ("feedback", "pw", at(3, 1, 15), {}),
                                 ("close", "sup2", at(3, 1, 16), {})])
    # B: handled after 32 working hours (Mon 7.5, Tue–Thu 8 each, Fri 0.5): twice its limit, 超时倍数 1.0.
    run_case(s, c, at(3, 1, 9), [("accept", "pw", at(3, 1, 9, 30), {}), ("feedback", "pw", at(3, 5, 9), {}),
                                 ("close", "sup2", at(3, 5, 10), {})])
    # C: handled, sent back for rework, handled again and closed, all on the same day.
    run_case(s, c, at(3, 2, 9), [("accept", "pw", at(3, 2, 9, 10), {}), ("feedback", "pw", at(3, 2, 10), {}),
                                 ("rework", "sup2", at(3, 2, 11), {"note": "未清理干净"}),
                                 ("feedback", "pw", at(3, 2, 14), {}), ("close", "sup2", at(3, 2, 15), {})])
    # D: 8 h extension approved; handled after 22.5 working hours (Wed 7.5, Thu 8, Fri 7): on time only
    # thanks to the extension (16 + 8 = 24). Not closed.
    run_case(s, c, at(3, 3, 9), [("accept", "pw", at(3, 3, 9, 10), {}),
                                 ("request_extension", "pw", at(3, 3, 9, 30), {"hours": 8, "note": "需协调"}),
                                 ("approve_extension", "op", at(3, 3, 10), {"hours": 8}),
                                 ("feedback", "pw", at(3, 5, 17), {})])
    # E: dispatched at 17:00 the day before the Spring Festival holidays (11–17 Feb). Handled nine calendar
    # days later after 15 working hours (10 Feb 1 h, 18 Feb 8 h, 19 Feb 6 h): on time.
    run_case(s, c, at(2, 10, 17), [("accept", "pw", at(2, 10, 17, 10), {}), ("feedback", "pw", at(2, 19, 16), {}),
                                   ("close", "sup2", at(2, 19, 17, 30), {})])
    # F: east squad, dispatched Monday 29 March, no feedback by the end of March: 23.5 working hours by
    # 1 April 00:00, 超时倍数 (23.5 − 16) / 16 = 0.47. Handled on 1 April, after the period.
    run_case(s, c, at(3, 29, 9), [("accept", "pe", at(3, 29, 9, 10), {}), ("feedback", "pe", at(4, 1, 10), {})],
             geometry=EAST, patroller="pe")
    # X: dispatched in January (not due in the period), handled and closed on 1 February (due to close).
    run_case(s, c, datetime(2021, 1, 29, 9, tzinfo=SHANGHAI),
             [("accept", "pw", datetime(2021, 1, 29, 9, 10, tzinfo=SHANGHAI), {}),
              ("feedback", "pw", at(2, 1, 10), {}), ("close", "sup2", at(2, 1, 11), {})])
    return c


def counts(row):
    return (row.due, row.handled, row.handled_on_time, row.due_to_close, row.closed, row.closed_on_time,
            row.rework, row.extended, row.overdue)


def test_totals_checked_by_hand(hand):
    session, county = hand
    [row] = compute_indicators(session, county.code, start=FEB, end=APR)
    assert (row.key, row.label) == (None, "合计")
    # due A B C D E F; handled A B C D E, on time A C D E; due to close A B C D E X, closed A B C E X,
    # closed on time A C E X; rework C; extended D; overdue B (1.0) and F (0.47).
    assert counts(row) == (6, 5, 4, 6, 5, 4, 1, 1, 2)
    assert row.handling_rate == pytest.approx(5 / 6)  # 处置率
    assert row.on_time_handling_rate == pytest.approx(4 / 6)  # 按期处置率
    assert row.closure_rate == pytest.approx(5 / 6)  # 结案率
    assert row.on_time_closure_rate == pytest.approx(4 / 6)  # 按期结案率
    assert row.rework_rate == pytest.approx(1 / 6)  # 返工率
    assert row.extension_rate == pytest.approx(1 / 6)  # 延期率
    assert (row.overrun_avg, row.overrun_max) == (pytest.approx((1.0 + 0.47) / 2), 1.0)  # 超时倍数
    assert INDICATOR_LABELS["on_time_closure_rate"] == "按期结案率"


def test_a_later_as_of_counts_late_handling(hand):
    session, county = hand
    [row] = compute_indicators(session, county.code, start=FEB, end=APR, as_of=at(4, 2, 0))
    # F's feedback on 1 April 10:00 now counts as handled (late: 23.5 + 1.5 = 25 h, 超时倍数 0.56);
    # it falls after the period, so it is not due to close in it.
    assert counts(row) == (6, 6, 4, 6, 5, 4, 1, 1, 2)
    assert (row.overrun_avg, row.overrun_max) == (pytest.approx((1.0 + 0.56) / 2), 1.0)


def test_grouping_per_month(hand):
    session, county = hand
    feb, mar = compute_indicators(session, county.code, start=FEB, end=APR, group_by="month")
    assert (feb.key, feb.label, mar.key, mar.label) == ("2021-02", "2021年2月", "2021-03", "2021年3月")
    assert counts(feb) == (1, 1, 1, 2, 2, 2, 0, 0, 0)  # due E; due to close E and X
    assert feb.overrun_avg is None and feb.rework_rate == 0
    assert counts(mar) == (5, 4, 3, 4, 3, 2, 1, 1, 2)
    assert mar.handling_rate == pytest.approx(4 / 5) and mar.on_time_closure_rate == pytest.approx(2 / 4)


def test_grouping_per_squad_township_category_and_week(hand):
    session, county = hand
    east, west = compute_indicators(session, county.code, start=FEB, end=APR, group_by="squad")
    assert (east.key, east.label, west.key, west.label) == ("SQ-east", "east中队", "SQ-west", "west中队")
    assert counts(west) == (5, 5, 4, 6, 5, 4, 1, 1, 1) and west.overrun_max == 1.0
    assert counts(east) == (1, 0, 0, 0, 0, 0, 0, 0, 1) and east.closure_rate is None
    assert east.handling_rate == 0 and east.overrun_avg == pytest.approx(0.47)
    towns = compute_indicators(session, county.code, start=FEB, end=APR, group_by="township")
    assert [(r.label, r.due) for r in towns] == [("west镇", 5), ("east镇", 1)]
    [td02] = compute_indicators(session, county.code, start=FEB, end=APR, group_by="category")
    assert (td02.key, td02.due) == ("TD02", 6)
    [none] = compute_indicators(session, county.code, start=FEB, end=APR, category="MS03")
    assert none.due == 0 and none.handling_rate is None and none.closure_rate is None
    weeks = compute_indicators(session, county.code, start=FEB, end=APR, group_by="week")
    assert [w.key for w in weeks] == [f"2021-W{n:02d}" for n in range(5, 14)]
    assert {w.key: w.due for w in weeks if w.due} == {"2021-W06": 1, "2021-W09": 4, "2021-W13": 1}
    assert weeks[1].label == "2021年第6周"


def test_returned_case_is_due_to_the_unit_it_was_dispatched_to_again(db_session):
    c = make_county(db_session)
    case = run_case(db_session, c, at(3, 10, 9), [("return", "pw", at(3, 10, 10), {"note": "不在本中队辖区"})])
    act(db_session, case.id, "dispatch", who(c, "op"), at=at(3, 11, 9), target_agency_id=c.agencies["squad_east"],
        note="改派东片中队")
    act(db_session, case.id, "accept", who(c, "pe"), at=at(3, 11, 9, 10))
    # From the second dispatch: Thu 7.5 h + Fri 7 h = 14.5 h, on time (from the first it would be 22.5 h).
    act(db_session, case.id, "feedback", who(c, "pe"), at=at(3, 12, 17),
        attachment_ids=[add_photo(db_session, case).id])
    [east] = compute_indicators(db_session, c.code, start=FEB, end=APR, group_by="squad")
    assert east.key == "SQ-east" and counts(east) == (1, 1, 1, 1, 0, 0, 0, 0, 0)


def test_bad_arguments(hand):
    session, county = hand
    with pytest.raises(ValidationError, match="group_by"):
        compute_indicators(session, county.code, start=FEB, end=APR, group_by="planet")
    with pytest.raises(ValidationError, match="end"):
        compute_indicators(session, county.code, start=APR, end=FEB)
    with pytest.raises(ValidationError, match="time zone"):
        compute_indicators(session, county.code, start=datetime(2021, 2, 1), end=APR)


YEAR = (datetime(2021, 1, 1, tzinfo=SHANGHAI), datetime(2022, 1, 1, tzinfo=SHANGHAI))


@pytest.mark.slow
def test_demo_year(demo_session):
    start, end = YEAR
    began = time.perf_counter()
    squads = compute_indicators(demo_session, "371521", start=start, end=end, group_by="squad")
    seconds = time.perf_counter() - began
    print(f"\nindicators of the demo year per squad: {seconds:.2f} s")
    assert seconds < 10
    [total] = compute_indicators(demo_session, "371521", start=start, end=end)
    rates = ("handling_rate", "on_time_handling_rate", "closure_rate", "on_time_closure_rate", "rework_rate",
             "extension_rate")
    for row in [*squads, total]:
        for name in rates:
            value = getattr(row, name)
            assert value is None or 0 <= value <= 1, (row.label, name, value)
    assert total.closure_rate > 0.9
    assert sum(r.due for r in squads) == total.due and sum(r.closed for r in squads) == total.closed
    assert {r.key for r in squads} >= {"YG-SCJG-DD"}  # the market team counts as a handling unit too
    # Cross-check against the stored columns, which the indicators never read.
    dispatched, on_time = demo_session.execute(text("""
        WITH d AS (SELECT case_id, min(at) AS at FROM case_event WHERE action = 'dispatch' GROUP BY case_id),
             f AS (SELECT case_id, min(at) AS at FROM case_event WHERE action = 'feedback' GROUP BY case_id)
        SELECT count(*), count(*) FILTER (WHERE f.at <= k.due_at)
        FROM d JOIN "case" k ON k.id = d.case_id LEFT JOIN f ON f.case_id = d.case_id
        WHERE d.at >= :s AND d.at < :e AND k.county_code = '371521'"""), {"s": start, "e": end}).one()
    assert (total.due, total.handled_on_time) == (dispatched, on_time)
    [hotline] = compute_indicators(demo_session, "371521", start=start, end=end, source="hotline")
    assert hotline.due_to_close >= 650 and hotline.closure_rate == 1.0 and hotline.handling_rate == 1.0
