"""The case service on PostGIS: the closed loop, its rules, its clock, duplicates and concurrency."""

import os
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from gis_platform import models as m
from gis_platform import vocab
from gis_platform.errors import Conflict, Forbidden, ValidationError
from gis_platform.workcalendar import SHANGHAI
from gis_platform.workflow import ACTIONS
from layers.cases import Actor, act, allowed_for, clock, limit_hours, report_case
from tests.factories import add_photo, make_county

WEST = {"type": "Point", "coordinates": [115.72, 36.02]}
EAST = {"type": "Point", "coordinates": [115.78, 36.02]}


@pytest.fixture()
def county(db_session):
    return make_county(db_session)


def actor(county, name):
    return Actor.of(county.users[name])


def events(session, case):
    return session.execute(select(m.CaseEvent.action, m.CaseEvent.from_status, m.CaseEvent.to_status)
                           .where(m.CaseEvent.case_id == case.id).order_by(m.CaseEvent.seq)).all()


def report(session, county, **kw):
    values = dict(category="TD02", geometry=WEST, source="patroller", reporter=actor(county, "pw"),
                  description="占道摆摊")
    values.update(kw)
    return report_case(session, county.code, **values)


def test_full_closed_loop(db_session, county):
    out = report(db_session, county)
    case = out.case
    assert out.created and case.status == "reported" and case.assigned_agency_id == county.agencies["squad_west"]
    at = datetime(2021, 3, 1, 9, 0, tzinfo=SHANGHAI)
    act(db_session, case.id, "file", actor(county, "sup1"), at=at)
    act(db_session, case.id, "dispatch", actor(county, "op"), at=at + timedelta(minutes=10))
    # 16 working hours from Monday 09:10 (office hours 08:30–12:00, 13:30–18:00): 7 h 20 min on Monday,
    # 8 h on Tuesday, 40 min on Wednesday.
    assert case.due_at == datetime(2021, 3, 3, 9, 10, tzinfo=SHANGHAI)
    act(db_session, case.id, "accept", actor(county, "pw"), at=at + timedelta(hours=1))
    photo = add_photo(db_session, case)
    act(db_session, case.id, "feedback", actor(county, "pw"), at=at + timedelta(hours=3), attachment_ids=[photo.id])
    act(db_session, case.id, "close", actor(county, "sup2"), at=at + timedelta(hours=4))
    act(db_session, case.id, "evaluate", actor(county, "op"), at=at + timedelta(days=1), score=5)
    assert case.status == "evaluated" and case.evaluation == 5 and case.version == 7
    assert [e[0] for e in events(db_session, case)] == [
        "report", "file", "dispatch", "accept", "feedback", "close", "evaluate"]
    c = clock(case, limit_hours(db_session, case))
    assert not c.overdue and c.overrun_multiple == 0 and c.elapsed_hours == pytest.approx(2 + 50 / 60, abs=0.01)
    # The reporter (the west patroller) follows the case and hears of each step taken by someone else.
    notes = db_session.scalars(select(m.Notification.message).where(m.Notification.case_id == case.id)).all()
    assert len(notes) == 4 and any("核查结案" in n for n in notes)  # not for their own accept and feedback


def test_closing_needs_a_different_supervisor(db_session, county):
    case = report(db_session, county).case
    act(db_session, case.id, "file", actor(county, "sup1"))
    act(db_session, case.id, "dispatch", actor(county, "op"))
    act(db_session, case.id, "accept", actor(county, "pw"))
    act(db_session, case.id, "feedback", actor(county, "pw"), attachment_ids=[add_photo(db_session, case).id])
    with pytest.raises(Forbidden, match="different supervisor"):
        act(db_session, case.id, "close", actor(county, "sup1"))
    act(db_session, case.id, "rework", actor(county, "sup2"), note="摊位未清理干净")
    assert case.status == "accepted" and case.rework_count == 1


@pytest.mark.parametrize("status", vocab.CASE_STATUSES)
def test_every_illegal_transition_is_a_conflict_listing_allowed(db_session, county, status):
    case = report(db_session, county).case
    db_session.execute(text('UPDATE "case" SET status = :s WHERE id = :i'), {"s": status, "i": case.id})
    db_session.expire_all()
    admin = actor(county, "ad")
    for action in ACTIONS:
        if action.name in ("report", "reroute") or (status in action.sources and action.manual):
            continue
        with pytest.raises(Conflict) as err:
            act(db_session, case.id, action.name, admin)
        assert err.value.extra["allowed"] == [a.name for a in ACTIONS if a.manual and status in a.sources]


def test_roles_and_units_are_enforced(db_session, county):
    case = report(db_session, county).case
    with pytest.raises(Forbidden):
        act(db_session, case.id, "file", actor(county, "pw"))
    act(db_session, case.id, "file", actor(county, "sup1"))
    with pytest.raises(Forbidden):
        act(db_session, case.id, "dispatch", actor(county, "pl"))
    act(db_session, case.id, "dispatch", actor(county, "op"))
    with pytest.raises(Forbidden, match="another unit"):
        act(db_session, case.id, "accept", actor(county, "pe"))
    act(db_session, case.id, "accept", actor(county, "pw"))


def test_feedback_needs_an_after_photo(db_session, county):
    case = report(db_session, county).case
    for step, who in (("file", "sup1"), ("dispatch", "op"), ("accept", "pw")):
        act(db_session, case.id, step, actor(county, who))
    with pytest.raises(ValidationError, match="after-photo"):
        act(db_session, case.id, "feedback", actor(county, "pw"))
    before = add_photo(db_session, case, stage="before")
    with pytest.raises(ValidationError):
        act(db_session, case.id, "feedback", actor(county, "pw"), attachment_ids=[before.id])


def test_idempotent_report(db_session, county):
    first = report(db_session, county, idempotency_key="phone-1-0001")
    again = report(db_session, county, idempotency_key="phone-1-0001")
    assert first.created and not again.created and again.case.id == first.case.id
    assert db_session.scalar(select(func.count()).select_from(m.Case).where(m.Case.county_code == county.code)) == 1


def test_report_validation_names_fields(db_session, county):
    with pytest.raises(ValidationError) as err:
        report(db_session, county, source="pigeon", urgency="asap")
    assert {e.field for e in err.value.errors} == {"source", "urgency"}
    with pytest.raises(ValidationError, match="swapped"):
        report(db_session, county, geometry={"type": "Point", "coordinates": [36.02, 115.72]})
    with pytest.raises(ValidationError, match="category"):
        report(db_session, county, category="XX99")
    with pytest.raises(ValidationError, match="time zone"):
        report(db_session, county, reported_at=datetime(2021, 1, 1))
    assert db_session.scalar(select(func.count()).select_from(m.Case).where(m.Case.county_code == county.code)) == 0


def test_gcj02_report_is_converted_and_recorded(db_session, county):
    from gis_platform.coords import from_wgs84

    lon, lat = from_wgs84(115.72, 36.02, "gcj02")
    case = report(db_session, county, geometry={"type": "Point", "coordinates": [lon, lat]},
                  coord_system="gcj02").case
    x, y = db_session.execute(text('SELECT ST_X(location), ST_Y(location) FROM "case" WHERE id = :i'),
                              {"i": case.id}).one()
    assert (x, y) == pytest.approx((115.72, 36.02), abs=1e-5)
    assert case.coord_original["system"] == "gcj02"


def test_duplicates_are_suggested_and_merged(db_session, county):
    first = report(db_session, county, reporter=Actor(role="citizen"), reporter_contact="138-0000-0001",
                   source="citizen").case
    near = {"type": "Point", "coordinates": [115.7202, 36.0201]}  # about 25 m away
    second = report(db_session, county, geometry=near, reporter=actor(county, "pe"))
    assert [d.case_no for d in second.duplicates] == [first.case_no]
    assert second.duplicates[0].distance_m < 50
    far = report(db_session, county, geometry=EAST)
    assert far.duplicates == []
    act(db_session, second.case.id, "merge", actor(county, "op"), merge_into=first.id)
    assert second.case.status == "merged" and second.case.merged_into_id == first.id
    followers = db_session.execute(select(m.CaseFollower.user_id, m.CaseFollower.contact)
                                   .where(m.CaseFollower.case_id == first.id)).all()
    assert set(followers) == {(None, "138-0000-0001"), (county.users["pe"].id, None)}
    # Both reporters hear of the next step on the surviving case.
    act(db_session, first.id, "file", actor(county, "sup1"))
    told = db_session.execute(select(m.Notification.user_id, m.Notification.contact).where(
        m.Notification.case_id == first.id, m.Notification.message.contains("核实立案"))).all()
    assert set(told) == {(None, "138-0000-0001"), (county.users["pe"].id, None)}
    assert events(db_session, first)[1][0] == "link_duplicate"


def test_deadline_spans_spring_festival_and_make_up_day(db_session, county):
    case = report(db_session, county).case
    act(db_session, case.id, "file", actor(county, "sup1"))
    act(db_session, case.id, "dispatch", actor(county, "op"), at=datetime(2021, 2, 10, 17, 0, tzinfo=SHANGHAI))
    assert case.due_at == datetime(2021, 2, 19, 17, 0, tzinfo=SHANGHAI)
    overdue = clock(case, 16.0, now=datetime(2021, 2, 22, 17, 0, tzinfo=SHANGHAI))
    # 1 h on the 10th, 8 h on the 18th, 19th and make-up Saturday 20th, 7 h on Monday 22nd (to 17:00).
    assert overdue.overdue and overdue.elapsed_hours == pytest.approx(1 + 8 + 8 + 8 + 7)
    assert overdue.overrun_multiple == pytest.approx((32 - 16) / 16)


def test_extension_and_deferral_move_the_deadline(db_session, county):
    case = report(db_session, county).case
    act(db_session, case.id, "file", actor(county, "sup1"))
    t0 = datetime(2021, 3, 1, 9, 0, tzinfo=SHANGHAI)
    act(db_session, case.id, "dispatch", actor(county, "op"), at=t0)
    due = case.due_at
    with pytest.raises(Conflict, match="no extension"):
        act(db_session, case.id, "approve_extension", actor(county, "op"), hours=8)
    act(db_session, case.id, "request_extension", actor(county, "pw"), hours=8, note="需协调供电部门")
    act(db_session, case.id, "approve_extension", actor(county, "op"), hours=8)
    # 24 working hours from Monday 09:00: 7.5 + 8 + 8 h, then 30 min on Thursday.
    assert case.due_at == datetime(2021, 3, 4, 9, 0, tzinfo=SHANGHAI) and case.due_at > due
    act(db_session, case.id, "defer", actor(county, "op"), note="等待规划认定", at=t0 + timedelta(hours=2))
    act(db_session, case.id, "resume", actor(county, "op"), at=t0 + timedelta(days=1, hours=2))
    assert float(case.extended_hours) == pytest.approx(16.0)
    assert case.status == "dispatched"


def test_return_with_another_category_reroutes(db_session, county):
    case = report(db_session, county).case
    act(db_session, case.id, "file", actor(county, "sup1"))
    act(db_session, case.id, "dispatch", actor(county, "op"))
    with pytest.raises(ValidationError):
        act(db_session, case.id, "return", actor(county, "pw"))
    act(db_session, case.id, "return", actor(county, "pw"), note="属食品安全，非城管职责", category="MS03")
    db_session.refresh(case)
    assert case.status == "returned" and case.assigned_agency_id == county.agencies["team"]
    assert [e[0] for e in events(db_session, case)][-2:] == ["return", "reroute"]
    with pytest.raises(ValidationError, match="reason"):
        act(db_session, case.id, "dispatch", actor(county, "op"), target_agency_id=county.agencies["squad_east"])
    act(db_session, case.id, "dispatch", actor(county, "op"))
    assert case.assigned_agency_id == county.agencies["team"]
    assert "accept" in allowed_for(case, actor(county, "li"))


def test_dispatch_override_is_recorded(db_session, county):
    case = report(db_session, county).case
    act(db_session, case.id, "file", actor(county, "sup1"))
    act(db_session, case.id, "dispatch", actor(county, "op"), target_agency_id=county.agencies["squad_east"],
        note="西片中队全员外勤，临时由东片处置")
    data = db_session.scalar(select(m.CaseEvent.data).where(m.CaseEvent.case_id == case.id,
                                                          m.CaseEvent.action == "dispatch"))
    assert data["override"] and data["routed_agency_id"] == county.agencies["squad_west"]


def test_stale_version_is_rejected(db_session, county):
    case = report(db_session, county).case
    with pytest.raises(Conflict, match="version"):
        act(db_session, case.id, "file", actor(county, "sup1"), expected_version=case.version + 1)
    act(db_session, case.id, "file", actor(county, "sup1"), expected_version=1)


@pytest.fixture(scope="module")
def committed_engine(pg_server):
    """An engine on a database of its own: this test commits, and other tests count rows."""
    from sqlalchemy import create_engine

    from gis_platform.cli import upgrade_database

    url = pg_server.create(f"gis_test_concurrency_{os.getpid()}")
    upgrade_database(url)
    eng = create_engine(url)
    yield eng
    eng.dispose()


def test_concurrent_dispatch_exactly_one_wins(committed_engine):
    engine = committed_engine
    code = "379902"
    with Session(engine) as s, s.begin():
        county = make_county(s, code)
        case = report(s, county).case
        act(s, case.id, "file", actor(county, "sup1"))
        case_id, op = case.id, actor(county, "op")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def dispatch():
        with Session(engine) as s:
            s.get(m.Case, case_id)  # both read version 2 before either writes
            barrier.wait()
            try:
                with s.begin_nested():
                    act(s, case_id, "dispatch", op, expected_version=2)
                s.commit()
                outcomes.append("won")
            except Conflict:
                s.rollback()
                outcomes.append("conflict")

    threads = [threading.Thread(target=dispatch) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["conflict", "won"]
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(m.CaseEvent).where(
            m.CaseEvent.case_id == case_id, m.CaseEvent.action == "dispatch")) == 1
        assert s.get(m.Case, case_id).version == 3


def test_unknown_calendar_year_leaves_the_deadline_open_and_says_why(db_session, county, tmp_path):
    from gis_platform.settings import Settings
    from gis_platform.workcalendar import calendar_from_settings

    case = report(db_session, county).case
    act(db_session, case.id, "file", actor(county, "sup1"))
    # chinese-calendar 1.11 knows up to 2026: a 16-hour limit from 31 Dec 2026 runs into 2027.
    act(db_session, case.id, "dispatch", actor(county, "op"), at=datetime(2026, 12, 31, 17, 0, tzinfo=SHANGHAI))
    assert case.due_at is None
    data = db_session.scalar(select(m.CaseEvent.data).where(m.CaseEvent.case_id == case.id,
                                                          m.CaseEvent.action == "dispatch"))
    assert "2027" in data["deadline_unknown"] and "override" in data["deadline_unknown"]
    c = clock(case, 16.0, now=datetime(2027, 1, 5, tzinfo=SHANGHAI))
    assert c.calendar_note and not c.overdue and c.elapsed_hours is None
    # With the year's schedule configured, the deadline is computed.
    overrides = tmp_path / "calendar.json"
    overrides.write_text('{"2027": {"holidays": ["2027-01-01"], "workdays": []}}', encoding="utf-8")
    calendar = calendar_from_settings(Settings(_env_file=None, calendar_file=overrides))
    second = report(db_session, county, geometry=EAST).case
    act(db_session, second.id, "file", actor(county, "sup1"))
    act(db_session, second.id, "dispatch", actor(county, "op"), at=datetime(2026, 12, 31, 17, 0, tzinfo=SHANGHAI),
        calendar=calendar)
    # 1 h on 31 Dec, 1 Jan is a holiday, 2–3 Jan a weekend: 8 h on Monday 4 Jan, 7 h on Tuesday → 17:00.
    assert second.due_at == datetime(2027, 1, 5, 17, 0, tzinfo=SHANGHAI)
