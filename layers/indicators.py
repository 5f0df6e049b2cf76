"""Performance indicators (GB/T 30428.4 style), computed from the case event log, never from counters.

For a period [start, end) and events recorded before ``as_of`` (default: ``end``, or now if earlier,
so a month's figures are a snapshot taken at its end and do not drift afterwards):

- **Clock dispatch** of a case: its last ``dispatch`` event before its first ``feedback`` (or its last
  dispatch if it has no feedback yet). A case returned (退回) and dispatched again is due once, to the
  unit it was finally dispatched to; its clock starts at that dispatch, as ``layers.cases.act`` does.
- **Deadline**: clock dispatch + the category × urgency limit (``time_limit``) + the hours of every
  ``approve_extension`` event and the paused hours of every ``resume`` (a deferral stops the clock)
  recorded up to the moment judged, added in working hours on the official calendar. ``case.due_at``
  is not read. A moment is *on time* when the working hours from the clock dispatch to it do not exceed
  the allowed hours (so a feedback after office hours on the due day, with no working time past the
  deadline, is on time); this is the same rule as ``layers.cases.clock``.
- **due** (应处置数): cases whose clock dispatch falls in the period; each case once.
- **handled** (处置数): of those, cases with a feedback; **handled on time** (按期处置数): their *first*
  feedback was on time.
- **due to close** (应结案数): cases whose *first* feedback falls in the period.
- **closed** (结案数): of those, cases with a ``close`` event; **closed on time** (按期结案数): closed, and
  the feedback the check accepted (the last one before the close) was on time, so rework that runs past
  the deadline is late, but the supervisor's own checking time is not charged to the unit.
- **rework** (返工数): of those due to close, cases with at least one ``rework`` event.
- **extended** (延期数): of those due, cases with an ``approve_extension`` event.
- **overdue** (超期数): of those due, cases whose first feedback (or ``as_of``, if none yet) was not on time.
- Rates: 处置率 = handled / due; 按期处置率 = handled on time / due; 结案率 = closed / due to close;
  按期结案率 = closed on time / due to close; 返工率 = rework / due to close; 延期率 = extended / due.
  ``None`` when the denominator is 0.
- 超时倍数 (``workcalendar.overrun_multiple``): (elapsed − allowed) / allowed working hours, from the clock
  dispatch to the first feedback (or ``as_of``); reported as the average and the maximum over the
  overdue cases, ``None`` when none is overdue.

Grouping: ``squad`` = the unit assigned at the clock dispatch (dispatch override, else the latest
routing in the report or reroute events, else the case's assigned agency); ``township`` = the case's
administrative unit; ``category`` = its category; ``month`` / ``week`` (ISO) in Asia/Shanghai time, the
due-based counts by the clock dispatch and the close-based counts by the first feedback. Period groups
list every period overlapping [start, end), empty ones included.

One SQL query pulls the events of the cases concerned; working-time arithmetic happens in Python.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from gis_platform import vocab
from gis_platform.errors import FieldError, ValidationError
from gis_platform.workcalendar import SHANGHAI, WorkCalendar, overrun_multiple
from layers.cases import CALENDAR

GROUPINGS = ("squad", "township", "category", "month", "week")
PERIOD_GROUPINGS = ("month", "week")

INDICATOR_LABELS = {
    "due": "应处置数",
    "handled": "处置数",
    "handled_on_time": "按期处置数",
    "due_to_close": "应结案数",
    "closed": "结案数",
    "closed_on_time": "按期结案数",
    "rework": "返工数",
    "extended": "延期数",
    "overdue": "超期数",
    "handling_rate": "处置率",
    "on_time_handling_rate": "按期处置率",
    "closure_rate": "结案率",
    "on_time_closure_rate": "按期结案率",
    "rework_rate": "返工率",
    "extension_rate": "延期率",
    "overrun_avg": "平均超时倍数",
    "overrun_max": "最大超时倍数",
}
TOTAL_LABEL = "合计"
UNKNOWN_LABEL = "未指定"

# Working time is compared to the second; float sums of hours need a little slack.
_EPS_HOURS = 1e-6


@dataclass(frozen=True)
class IndicatorRow:
    """Indicators of one group: its key and Chinese label, the counts, the rates and the overrun multiples."""

    group_by: str | None
    key: str | None
    label: str
    due: int
    handled: int
    handled_on_time: int
    due_to_close: int
    closed: int
    closed_on_time: int
    rework: int
    extended: int
    overdue: int
    handling_rate: float | None  # 处置率
    on_time_handling_rate: float | None  # 按期处置率
    closure_rate: float | None  # 结案率
    on_time_closure_rate: float | None  # 按期结案率
    rework_rate: float | None  # 返工率
    extension_rate: float | None  # 延期率
    overrun_avg: float | None  # 超时倍数（超期案件平均）
    overrun_max: float | None  # 超时倍数（最大）


@dataclass
class _Tally:
    due: int = 0
    handled: int = 0
    handled_on_time: int = 0
    due_to_close: int = 0
    closed: int = 0
    closed_on_time: int = 0
    rework: int = 0
    extended: int = 0
    overruns: list[float] = field(default_factory=list)

    def row(self, group_by: str | None, key: str | None, label: str) -> IndicatorRow:
        def rate(n: int, d: int) -> float | None:
            return None if d == 0 else n / d

        over = self.overruns
        return IndicatorRow(
            group_by=group_by, key=key, label=label, due=self.due, handled=self.handled,
            handled_on_time=self.handled_on_time, due_to_close=self.due_to_close, closed=self.closed,
            closed_on_time=self.closed_on_time, rework=self.rework, extended=self.extended, overdue=len(over),
            handling_rate=rate(self.handled, self.due), on_time_handling_rate=rate(self.handled_on_time, self.due),
            closure_rate=rate(self.closed, self.due_to_close),
            on_time_closure_rate=rate(self.closed_on_time, self.due_to_close),
            rework_rate=rate(self.rework, self.due_to_close), extension_rate=rate(self.extended, self.due),
            overrun_avg=round(sum(over) / len(over), 4) if over else None, overrun_max=max(over) if over else None)


@dataclass(frozen=True)
class CaseFacts:
    """What the event log says about one case, as the indicators need it."""

    case_id: int
    category_id: int
    admin_unit_id: int | None
    squad_id: int | None
    clock_at: datetime | None
    first_feedback_at: datetime | None
    handled_on_time: bool
    closed_at: datetime | None
    closed_on_time: bool
    reworked: bool
    extended: bool
    overrun: float | None  # None when on time (or not dispatched); the 超时倍数 otherwise


# The events of every case that has a dispatch or a feedback in the period, up to as_of, in order.
# Routing references are pulled out of the JSON here so Python sees only scalars.
EVENTS_SQL = text("""
WITH concerned AS (
    SELECT DISTINCT e.case_id
    FROM case_event e
    WHERE e.county_code = :county AND e.action IN ('dispatch', 'feedback')
      AND e.at >= :start AND e.at < :end AND e.at < :as_of
)
SELECT e.case_id, e.action, e.at,
       CASE e.action WHEN 'report' THEN e.data -> 'route' ->> 'assigned'
                     WHEN 'reroute' THEN e.data -> 'after' ->> 'assigned' END AS assigned_code,
       CASE WHEN e.action = 'dispatch' THEN (e.data ->> 'assigned_agency_id')::bigint END AS assigned_id,
       CASE e.action WHEN 'approve_extension' THEN (e.data ->> 'hours')::float
                     WHEN 'resume' THEN (e.data ->> 'paused_hours')::float END AS hours,
       k.category_id, k.admin_unit_id, k.assigned_agency_id, tl.working_hours
FROM concerned
JOIN case_event e ON e.case_id = concerned.case_id
JOIN "case" k ON k.id = e.case_id
JOIN category c ON c.id = k.category_id
LEFT JOIN time_limit tl ON tl.category_id = k.category_id AND tl.urgency = k.urgency
WHERE e.at < :as_of
  AND e.action IN ('report', 'reroute', 'dispatch', 'feedback', 'rework', 'close', 'approve_extension', 'resume')
  AND (CAST(:category AS text) IS NULL OR c.code = :category)
  AND (CAST(:source AS text) IS NULL OR k.source = :source)
ORDER BY e.case_id, e.seq
""")


def _aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValidationError(FieldError(name, "must carry a time zone"))
    return value


def compute_indicators(session: Session, county_code: str, *, start: datetime, end: datetime,
                       group_by: str | None = None, category: str | None = None, source: str | None = None,
                       as_of: datetime | None = None, calendar: WorkCalendar = CALENDAR) -> list[IndicatorRow]:
    """Compute the indicators of a county for [start, end), in total or per squad, township, category or period."""
    _aware("start", start)
    _aware("end", end)
    if end <= start:
        raise ValidationError(FieldError("end", "must be after start"))
    if group_by is not None and group_by not in GROUPINGS:
        raise ValidationError(FieldError("group_by", f"must be one of {', '.join(GROUPINGS)}"))
    if source is not None and source not in vocab.CASE_SOURCES:
        raise ValidationError(FieldError("source", f"must be one of {', '.join(vocab.CASE_SOURCES)}"))
    as_of = _aware("as_of", as_of) if as_of is not None else min(end, datetime.now(UTC))
    rows = session.execute(EVENTS_SQL, {"county": county_code, "start": start, "end": end, "as_of": as_of,
                                        "category": category, "source": source}).all()
    names = _names(session, county_code)
    facts = case_facts(rows, as_of=as_of, agency_ids=names["agency_code_to_id"],
                       calendar=calendar)

    tallies: dict[str | None, _Tally] = defaultdict(_Tally)
    for f in facts:
        if f.clock_at is not None and start <= f.clock_at < end:
            t = tallies[_key(group_by, f, f.clock_at, names)]
            t.due += 1
            t.handled += f.first_feedback_at is not None
            t.handled_on_time += f.handled_on_time
            t.extended += f.extended
            if f.overrun is not None:
                t.overruns.append(f.overrun)
        if f.first_feedback_at is not None and start <= f.first_feedback_at < end:
            t = tallies[_key(group_by, f, f.first_feedback_at, names)]
            t.due_to_close += 1
            t.closed += f.closed_at is not None
            t.closed_on_time += f.closed_on_time
            t.rework += f.reworked

    if group_by is None:
        return [tallies[None].row(None, None, TOTAL_LABEL)]
    if group_by in PERIOD_GROUPINGS:
        return [tallies[key].row(group_by, key, label) for key, label in _periods(group_by, start, end)]
    labels = names[group_by]
    ordered = sorted(tallies, key=lambda k: (k is None, k or ""))
    return [tallies[k].row(group_by, k, labels.get(k, UNKNOWN_LABEL) if k else UNKNOWN_LABEL) for k in ordered]


def case_facts(rows: Iterable[Any], *, as_of: datetime, agency_ids: dict[str, int],
               calendar: WorkCalendar = CALENDAR) -> list[CaseFacts]:
    """Replay each case's events (rows ordered by case and sequence) into the facts the indicators count."""
    out = []
    for case_rows in _by_case(rows):
        out.append(_facts(case_rows, as_of, agency_ids, calendar))
    return out


def _by_case(rows: Iterable[Any]) -> Iterator[list[Any]]:
    current: list[Any] = []
    for r in rows:
        if current and r.case_id != current[0].case_id:
            yield current
            current = []
        current.append(r)
    if current:
        yield current


def _facts(rows: list[Any], as_of: datetime, agency_ids: dict[str, int], calendar: WorkCalendar) -> CaseFacts:
    first = rows[0]
    assigned: int | None = None
    clock: tuple[datetime, int | None] | None = None
    first_feedback: datetime | None = None
    last_feedback: datetime | None = None
    accepted_feedback: datetime | None = None
    closed_at: datetime | None = None
    reworked = extended = False
    extensions: list[tuple[datetime, float]] = []
    for r in rows:
        if r.assigned_code is not None:
            assigned = agency_ids.get(r.assigned_code, assigned)
        if r.action == "dispatch":
            if r.assigned_id is not None:
                assigned = int(r.assigned_id)
            if first_feedback is None:
                clock = (r.at, assigned if assigned is not None else first.assigned_agency_id)
        elif r.action == "feedback":
            first_feedback = first_feedback or r.at
            last_feedback = r.at
        elif r.action == "close" and closed_at is None:
            closed_at, accepted_feedback = r.at, last_feedback
        elif r.action == "rework":
            reworked = True
        elif r.action in ("approve_extension", "resume"):
            extended = extended or r.action == "approve_extension"
            if r.hours:
                extensions.append((r.at, float(r.hours)))
    squad = clock[1] if clock else first.assigned_agency_id
    handled_on_time = closed_on_time = False
    overrun: float | None = None
    # Without a limit (a category whose limit was removed after dispatch) nothing can be on time or late.
    if clock is not None and first.working_hours is not None:
        limit = float(first.working_hours)
        ok, multiple = _judge(clock[0], first_feedback or as_of, limit, extensions, calendar)
        handled_on_time = ok and first_feedback is not None
        overrun = None if ok else multiple
        if closed_at is not None and accepted_feedback is not None:
            closed_on_time = _judge(clock[0], accepted_feedback, limit, extensions, calendar)[0]
    return CaseFacts(
        case_id=first.case_id, category_id=first.category_id, admin_unit_id=first.admin_unit_id, squad_id=squad,
        clock_at=clock[0] if clock else None, first_feedback_at=first_feedback, handled_on_time=handled_on_time,
        closed_at=closed_at, closed_on_time=closed_on_time, reworked=reworked, extended=extended, overrun=overrun)


def _judge(start: datetime, moment: datetime, limit: float, extensions: list[tuple[datetime, float]],
           calendar: WorkCalendar) -> tuple[bool, float]:
    """Return whether a moment is within the allowed working hours of a clock, and its overrun multiple."""
    allowed = limit + sum(h for at, h in extensions if at <= moment)
    elapsed = calendar.working_hours_between(start, moment)
    if elapsed <= allowed + _EPS_HOURS:
        return True, 0.0
    return False, overrun_multiple(elapsed, allowed)


def _names(session: Session, county: str) -> dict[str, dict[Any, Any]]:
    """Return code lookups and Chinese labels of the county's agencies, units and categories."""
    agencies = session.execute(text("SELECT id, code, name FROM agency WHERE county_code = :c"), {"c": county}).all()
    units = session.execute(text("SELECT id, code, name FROM admin_unit WHERE county_code = :c"), {"c": county}).all()
    cats = session.execute(text("SELECT id, code, name FROM category WHERE county_code = :c"), {"c": county}).all()
    return {
        "agency_code_to_id": {code: i for i, code, _ in agencies},
        "squad_code": {i: code for i, code, _ in agencies},
        "township_code": {i: code for i, code, _ in units},
        "category_code": {i: code for i, code, _ in cats},
        "squad": {code: name for _, code, name in agencies},
        "township": {code: name for _, code, name in units},
        "category": {code: name for _, code, name in cats},
    }


def _key(group_by: str | None, f: CaseFacts, moment: datetime, names: dict[str, dict[Any, Any]]) -> str | None:
    if group_by is None:
        return None
    if group_by == "squad":
        return names["squad_code"].get(f.squad_id)
    if group_by == "township":
        return names["township_code"].get(f.admin_unit_id)
    if group_by == "category":
        return names["category_code"].get(f.category_id)
    return _period_key(group_by, moment.astimezone(SHANGHAI).date())


def _period_key(group_by: str, day: date) -> str:
    if group_by == "month":
        return f"{day.year:04d}-{day.month:02d}"
    iso = day.isocalendar()
    return f"{iso.year:04d}-W{iso.week:02d}"


def _periods(group_by: str, start: datetime, end: datetime) -> list[tuple[str, str]]:
    """Return (key, label) of every month or ISO week overlapping [start, end), in Shanghai time."""
    first = start.astimezone(SHANGHAI).date()
    last = (end - timedelta(microseconds=1)).astimezone(SHANGHAI).date()
    out: list[tuple[str, str]] = []
    day = first
    while day <= last:
        key = _period_key(group_by, day)
        if not out or out[-1][0] != key:
            if group_by == "month":
                label = f"{day.year}年{day.month}月"
            else:
                iso = day.isocalendar()
                label = f"{iso.year}年第{iso.week}周"
            out.append((key, label))
        day = (date(day.year + day.month // 12, day.month % 12 + 1, 1) if group_by == "month"
               else day + timedelta(days=7 - day.weekday()))
    return out
