"""County–township coordination on PostGIS: requests, hazard notices, referrals, deadlines and visibility."""

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, text

from gis_platform import models as m
from gis_platform import vocab
from gis_platform.errors import Conflict, Forbidden, ValidationError
from gis_platform.workcalendar import SHANGHAI
from layers import coordination as co
from layers.cases import Actor, act
from tests.factories import add_coordination_parties, add_photo, make_county

WEST = {"type": "Point", "coordinates": [115.72, 36.02]}
MON = datetime(2021, 3, 1, 10, 0, tzinfo=SHANGHAI)


@pytest.fixture()
def county(db_session):
    return add_coordination_parties(db_session, make_county(db_session))


def who(county, name):
    return Actor.of(county.users[name])


def send(session, county, *, sender="ow", office="office_west", to="dept", kind="determination", at=MON):
    return co.send_request(session, from_agency_id=county.agencies[office], to_agency_id=county.agencies[to],
                           kind=kind, subject="无照经营认定", body="请认定该店铺是否取得营业执照。",
                           actor=who(county, sender), at=at)


def refer(session, county, *, to="bureau", at=MON):
    return co.refer_clue(session, from_agency_id=county.agencies["team"], to_agency_id=county.agencies[to],
                         clue="日常检查发现某餐馆占道经营，移交综合执法局查处。", actor=who(county, "li"), at=at)


def test_request_lifecycle_through_receipt(db_session, county):
    req = send(db_session, county)
    # Sent Monday: the 3 working days are Tuesday to Thursday, due at the end of Thursday's office hours.
    assert req.status == "sent" and req.due_at == datetime(2021, 3, 4, 18, 0, tzinfo=SHANGHAI)
    co.receive(db_session, req.id, actor=who(county, "li"), at=MON + timedelta(hours=1))
    assert req.status == "received" and req.answered_at is None
    answered_at = datetime(2021, 3, 3, 15, 0, tzinfo=SHANGHAI)
    co.answer(db_session, req.id, answer_text="经核查，该店铺未取得营业执照。", actor=who(county, "li"), at=answered_at)
    assert (req.status, req.answered_at, req.answered_by) == ("answered", answered_at, county.users["li"].id)
    assert not co.overdue(req, datetime(2021, 12, 31, tzinfo=SHANGHAI))
    co.close(db_session, req.id, actor=who(county, "ow"), at=answered_at + timedelta(days=1))
    assert req.status == "closed"
    for side in ("ow", "li"):
        [row] = co.list_requests(db_session, who(county, side), now=answered_at)
        assert (row.id, row.status_label, row.kind_label, row.overdue) == (req.id, "已办结", "认定", False)
        assert (row.from_agency, row.to_agency, row.remaining_hours) == ("west镇执法办", "市场监管局", None)


def test_answer_directly_and_late_is_allowed_but_flagged(db_session, county):
    req = send(db_session, county, kind="appraisal", to="team")
    late = datetime(2021, 3, 5, 9, 0, tzinfo=SHANGHAI)
    # The department's own liaison answers what was sent to its team.
    co.answer(db_session, req.id, answer_text="鉴定意见：不合格。", actor=who(county, "ld"), at=late)
    assert req.status == "answered" and co.overdue(req, late)
    [row] = co.list_requests(db_session, who(county, "ow"), overdue=True, now=late)
    assert row.id == req.id and row.responded_at == late and row.remaining_hours is None


def test_due_date_spans_national_day_and_make_up_saturday(db_session, county):
    req = send(db_session, county, at=datetime(2021, 9, 30, 16, 0, tzinfo=SHANGHAI))
    # 1–7 Oct are holidays; Friday 8 Oct, make-up Saturday 9 Oct and Monday 11 Oct are the three days.
    assert req.due_at == datetime(2021, 10, 11, 18, 0, tzinfo=SHANGHAI)


def test_due_date_after_spring_festival(db_session, county):
    req = send(db_session, county, at=datetime(2021, 2, 10, 9, 0, tzinfo=SHANGHAI))
    # 11–17 Feb are the Spring Festival holidays; 18, 19 and make-up Saturday 20 Feb are working days.
    assert req.due_at == datetime(2021, 2, 20, 18, 0, tzinfo=SHANGHAI)


def test_overdue_flag_and_remaining_working_hours(db_session, county):
    req = send(db_session, county)
    before = datetime(2021, 3, 4, 9, 0, tzinfo=SHANGHAI)
    after = datetime(2021, 3, 5, 9, 0, tzinfo=SHANGHAI)
    assert not co.overdue(req, before) and co.overdue(req, after)
    [row] = co.list_requests(db_session, who(county, "li"), now=before)
    assert row.remaining_hours == pytest.approx(7.5) and not row.overdue  # 09:00–12:00 and 13:30–18:00
    assert co.list_requests(db_session, who(county, "li"), overdue=True, now=before) == []
    [row] = co.list_requests(db_session, who(county, "li"), overdue=True, now=after)
    assert row.remaining_hours == pytest.approx(-0.5)  # Friday 08:30–09:00 past the deadline
    assert [r.id for r in co.list_requests(db_session, who(county, "li"), status="sent", now=after)] == [req.id]
    assert co.list_requests(db_session, who(county, "li"), status="answered", now=after) == []


def test_visibility_per_role(db_session, county):
    west_to_dept = send(db_session, county)
    east_to_team = send(db_session, county, sender="oe", office="office_east", to="team", kind="advice")
    other = make_county(db_session, "379903")
    foreign = co.send_request(db_session, from_agency_id=other.agencies["office_west"],
                              to_agency_id=other.agencies["dept"], kind="advice", subject="s", body="b",
                              actor=Actor(role="admin", agency_id=other.agencies["bureau"]), at=MON)

    def seen(name):
        return {r.id for r in co.list_requests(db_session, who(county, name), now=MON)}

    assert seen("ow") == {west_to_dept.id}  # a township office sees what it sent
    assert seen("oe") == {east_to_team.id}
    both = {west_to_dept.id, east_to_team.id}
    assert seen("li") == both and seen("ld") == both  # the team and its department see each other's
    assert seen("lnr") == set()  # another department sees nothing
    assert seen("pw") == set() and seen("pl") == set()
    assert seen("sup1") == both and seen("ad") == both  # supervisors and admins: all of their county
    assert foreign.id not in {r.id for r in db_session.scalars(co.visible_to(db_session, who(county, "ad")))}
    with pytest.raises(Forbidden, match="another county"):
        co.receive(db_session, foreign.id, actor=who(county, "ad"))


def test_only_the_parties_may_act(db_session, county):
    with pytest.raises(Forbidden, match="sending"):
        send(db_session, county, sender="oe")  # the east office cannot write for the west office
    with pytest.raises(ValidationError, match="department"):
        send(db_session, county, to="squad_west")
    with pytest.raises(ValidationError, match="township_office"):
        send(db_session, county, sender="li", office="team")
    with pytest.raises(ValidationError, match="kind"):
        send(db_session, county, kind="gossip")
    req = send(db_session, county)
    with pytest.raises(Forbidden, match="addressed"):
        co.answer(db_session, req.id, answer_text="x", actor=who(county, "lnr"))
    with pytest.raises(Forbidden, match="addressed"):
        co.answer(db_session, req.id, answer_text="x", actor=who(county, "ow"))
    with pytest.raises(Forbidden, match="role"):
        co.answer(db_session, req.id, answer_text="x", actor=who(county, "op"))
    with pytest.raises(ValidationError, match="answer_text"):
        co.answer(db_session, req.id, answer_text="  ", actor=who(county, "li"))
    co.answer(db_session, req.id, answer_text="书面意见", actor=who(county, "li"))
    with pytest.raises(Forbidden, match="sending"):
        co.close(db_session, req.id, actor=who(county, "li"))


def test_hazard_notice_lifecycle(db_session, county):
    sent = datetime(2021, 4, 30, 16, 0, tzinfo=SHANGHAI)
    notice = co.send_hazard_notice(db_session, from_agency_id=county.agencies["office_east"],
                                   to_agency_id=county.agencies["dept"], subject="燃气罐违规存放",
                                   body="农贸市场多家商户违规存放燃气罐。", actor=who(county, "oe"), at=sent)
    # Acknowledge within one working day: 1–5 May are holidays, so the end of Thursday 6 May.
    assert notice.due_at == datetime(2021, 5, 6, 18, 0, tzinfo=SHANGHAI)
    with pytest.raises(Conflict) as err:
        co.answer(db_session, notice.id, answer_text="x", actor=who(county, "ld"))
    assert err.value.extra["allowed"] == ["receive"]
    acked = datetime(2021, 5, 6, 10, 0, tzinfo=SHANGHAI)
    co.receive(db_session, notice.id, actor=who(county, "ld"), note="已收悉，联合执法", at=acked)
    assert (notice.status, notice.answered_at, notice.answer) == ("received", acked, "已收悉，联合执法")
    assert not co.overdue(notice, acked + timedelta(days=30))
    co.close(db_session, notice.id, actor=who(county, "oe"))
    assert notice.status == "closed"
    [row] = co.list_requests(db_session, who(county, "li"), kind="hazard_notice", now=acked)
    assert row.kind_label == "重大隐患通报" and row.responded_at == acked


REQUEST_CALLS = {
    "receive": lambda s, i, a: co.receive(s, i, actor=a),
    "answer": lambda s, i, a: co.answer(s, i, answer_text="x", actor=a),
    "close": lambda s, i, a: co.close(s, i, actor=a),
}
REFERRAL_CALLS = {
    "accept": lambda s, i, a: co.accept_referral(s, i, actor=a),
    "mark_enforced": lambda s, i, a: co.mark_enforced(s, i, actor=a, note="x"),
    "feed_back": lambda s, i, a: co.feed_back(s, i, feedback_text="x", actor=a),
    "close": lambda s, i, a: co.close_referral(s, i, actor=a),
}


@pytest.mark.parametrize("kind", ["advice", "hazard_notice"])
@pytest.mark.parametrize("status", vocab.COORDINATION_STATUSES)
def test_illegal_request_steps_are_conflicts_listing_allowed(db_session, county, kind, status):
    req = send(db_session, county, kind=kind)
    db_session.execute(text("UPDATE coordination_request SET status = :s WHERE id = :i"), {"s": status, "i": req.id})
    steps = co.HAZARD_STEPS if kind == "hazard_notice" else co.DOCUMENT_STEPS
    allowed = co.allowed_steps(steps, status)
    for name, call in REQUEST_CALLS.items():
        if name in allowed:
            continue
        with pytest.raises(Conflict) as err:
            call(db_session, req.id, who(county, "ad"))
        assert err.value.extra["allowed"] == allowed


@pytest.mark.parametrize("status", vocab.REFERRAL_STATUSES)
def test_illegal_referral_steps_are_conflicts_listing_allowed(db_session, county, status):
    ref = refer(db_session, county)
    db_session.execute(text("UPDATE referral SET status = :s WHERE id = :i"), {"s": status, "i": ref.id})
    allowed = co.allowed_steps(co.REFERRAL_STEPS, status)
    assert len(allowed) <= 1
    for name, call in REFERRAL_CALLS.items():
        if name in allowed:
            continue
        with pytest.raises(Conflict) as err:
            call(db_session, ref.id, who(county, "ad"))
        assert err.value.extra["allowed"] == allowed


def test_referral_opens_a_case_and_follows_it_to_feedback(db_session, county):
    ref = refer(db_session, county)
    # Ten working days for the feedback: 2–5, 8–12 and 15 March.
    assert ref.status == "referred" and ref.due_at == datetime(2021, 3, 15, 18, 0, tzinfo=SHANGHAI)
    assert [r.id for r in co.list_referrals(db_session, who(county, "op"), now=MON)] == [ref.id]
    assert co.list_referrals(db_session, who(county, "pw"), now=MON) == []  # addressed to the bureau, not the squad
    with pytest.raises(Forbidden, match="role"):
        co.accept_referral(db_session, ref.id, actor=who(county, "li"))
    t = MON + timedelta(hours=1)
    co.accept_referral(db_session, ref.id, actor=who(county, "op"), category="TD02", geometry=WEST, at=t)
    case = db_session.get(m.Case, ref.case_id)
    assert ref.status == "accepted" and case.source == "referral" and case.status == "reported"
    assert case.assigned_agency_id == county.agencies["squad_west"] and case.description.startswith("日常检查")
    with pytest.raises(ValidationError, match="not closed"):
        co.mark_enforced(db_session, ref.id, actor=who(county, "op"))
    for step, name, dt in (("file", "sup1", 1), ("dispatch", "op", 2), ("accept", "pw", 3)):
        act(db_session, case.id, step, who(county, name), at=t + timedelta(hours=dt))
    act(db_session, case.id, "feedback", who(county, "pw"), at=t + timedelta(hours=5),
        attachment_ids=[add_photo(db_session, case).id])
    closed_at = t + timedelta(hours=6)
    act(db_session, case.id, "close", who(county, "sup2"), at=closed_at)
    co.mark_enforced(db_session, ref.id, actor=who(county, "op"), at=closed_at + timedelta(days=1))
    assert ref.status == "enforced" and ref.enforced_at == closed_at and ref.feedback is None
    fed = datetime(2021, 3, 3, 10, 0, tzinfo=SHANGHAI)
    co.feed_back(db_session, ref.id, feedback_text="已责令改正并处罚款200元。", actor=who(county, "op"), at=fed)
    assert (ref.status, ref.fed_back_at) == ("fed_back", fed)
    with pytest.raises(Forbidden, match="role"):
        co.close_referral(db_session, ref.id, actor=who(county, "op"))
    with pytest.raises(Forbidden, match="sending"):
        co.close_referral(db_session, ref.id, actor=who(county, "lnr"))
    co.close_referral(db_session, ref.id, actor=who(county, "li"))
    for side in ("li", "ld", "op", "sup1"):
        [row] = co.list_referrals(db_session, who(county, side), now=fed)
        assert (row.status_label, row.case_id, row.overdue, row.remaining_hours) == ("已办结", case.id, False, None)


def test_referral_to_a_squad_enforced_on_a_note_and_fed_back_late(db_session, county):
    with pytest.raises(ValidationError, match="from_agency_id"):
        co.refer_clue(db_session, from_agency_id=county.agencies["office_west"],
                      to_agency_id=county.agencies["bureau"], clue="c", actor=who(county, "ow"))
    with pytest.raises(ValidationError, match="to_agency_id"):
        refer(db_session, county, to="dept_nr")
    ref = refer(db_session, county, to="squad_east")
    assert {r.id for r in co.list_referrals(db_session, who(county, "pe"), now=MON)} == {ref.id}
    assert co.list_referrals(db_session, who(county, "pw"), now=MON) == []
    assert co.list_referrals(db_session, who(county, "lnr"), now=MON) == []
    co.accept_referral(db_session, ref.id, actor=who(county, "op"))
    assert ref.case_id is None
    with pytest.raises(Forbidden, match="addressed"):
        co.mark_enforced(db_session, ref.id, actor=who(county, "pw"), note="已处理")
    with pytest.raises(ValidationError, match="no case is linked"):
        co.mark_enforced(db_session, ref.id, actor=who(county, "pe"))
    co.mark_enforced(db_session, ref.id, actor=who(county, "pe"), note="现场责令整改",
                     at=datetime(2021, 3, 10, 9, 0, tzinfo=SHANGHAI))
    late = datetime(2021, 3, 16, 9, 0, tzinfo=SHANGHAI)
    [row] = co.list_referrals(db_session, who(county, "li"), overdue=True, now=late)
    assert row.status == "enforced" and row.remaining_hours == pytest.approx(-0.5)
    co.feed_back(db_session, ref.id, feedback_text="已整改到位。", actor=who(county, "op"), at=late)
    assert ref.feedback == "执法情况：现场责令整改\n已整改到位。" and co.overdue(ref)
    assert db_session.scalar(select(m.Referral.status).where(m.Referral.id == ref.id)) == "fed_back"


def test_deadline_in_an_unknown_year_stays_open(db_session):
    from datetime import datetime

    from gis_platform.workcalendar import SHANGHAI
    from layers.coordination import deadline_days
    from layers.cases import CALENDAR

    assert deadline_days(CALENDAR, datetime(2026, 12, 30, 10, 0, tzinfo=SHANGHAI), 3) is None
    assert deadline_days(CALENDAR, datetime(2026, 11, 2, 10, 0, tzinfo=SHANGHAI), 3) is not None
