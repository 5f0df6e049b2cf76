from datetime import date, datetime

import pytest

from gis_platform.workcalendar import SHANGHAI, UnknownCalendarYear, WorkCalendar, YearOverride, overrun_multiple

cal = WorkCalendar()


def at(*args):
    return datetime(*args, tzinfo=SHANGHAI)


def test_make_up_working_days_and_holidays_2021():
    # Spring Festival 2021: 11–17 Feb off; Sunday 7 Feb and Saturday 20 Feb were working days.
    assert cal.is_workday(date(2021, 2, 7))
    assert cal.is_workday(date(2021, 2, 20))
    assert not cal.is_workday(date(2021, 2, 11))
    assert not cal.is_workday(date(2021, 2, 16))
    # National Day 2021: 1–7 Oct off; 26 Sep (Sun) and 9 Oct (Sat) worked.
    assert not cal.is_workday(date(2021, 10, 4))
    assert cal.is_workday(date(2021, 9, 26)) and cal.is_workday(date(2021, 10, 9))


def test_deadline_spans_spring_festival():
    # Dispatched Wednesday 10 Feb 2021 at 17:00 with 16 working hours (2 days) to go.
    due = cal.add_working_hours(at(2021, 2, 10, 17, 0), 16)
    # 1 h on the 10th, then the holiday 11–17 Feb, then 18 Feb 8 h, 19 Feb 7 h → 19 Feb 17:00.
    assert due == at(2021, 2, 19, 17, 0)


def test_deadline_uses_make_up_saturday():
    # Friday 8 Oct 2021 17:00 + 8 h: 1 h on Friday, 7 h on Saturday 9 Oct (a working day).
    assert cal.add_working_hours(at(2021, 10, 8, 17, 0), 8) == at(2021, 10, 9, 17, 0)


def test_working_hours_between_is_inverse_of_add():
    start = at(2021, 9, 30, 10, 15)
    end = cal.add_working_hours(start, 23.5)
    assert cal.working_hours_between(start, end) == pytest.approx(23.5)
    assert cal.working_hours_between(end, start) == pytest.approx(-23.5)


def test_start_outside_office_hours_waits_for_next_window():
    assert cal.add_working_hours(at(2021, 3, 5, 21, 0), 1) == at(2021, 3, 8, 9, 30)


def test_three_working_days_for_coordination():
    # Sent Thursday 30 Sep 2021: 8 Oct, make-up Saturday 9 Oct, then Monday 11 Oct.
    assert cal.add_working_days(at(2021, 9, 30, 10, 0), 3) == at(2021, 10, 11, 18, 0)


def test_unknown_year_is_an_error_not_a_guess():
    with pytest.raises(UnknownCalendarYear) as err:
        cal.is_workday(date(2031, 5, 6))
    assert "2031" in err.value.detail and "override" in err.value.detail


def test_override_covers_unknown_year():
    override = YearOverride(holidays=frozenset({date(2031, 5, 1)}), workdays=frozenset({date(2031, 5, 10)}))
    c = WorkCalendar(overrides={2031: override})
    assert not c.is_workday(date(2031, 5, 1))
    assert c.is_workday(date(2031, 5, 10))  # a Saturday made a working day
    assert not c.is_workday(date(2031, 5, 11))
    assert 2031 in c.known_years()


def test_naive_datetimes_rejected():
    with pytest.raises(ValueError):
        cal.add_working_hours(datetime(2021, 1, 4, 9), 1)


def test_overrun_multiple():
    assert overrun_multiple(10, 16) == 0
    assert overrun_multiple(32, 16) == 1.0
    assert overrun_multiple(40, 16) == 1.5
    with pytest.raises(ValueError):
        overrun_multiple(1, 0)
