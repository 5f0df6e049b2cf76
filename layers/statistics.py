"""Statistics for planners: case counts and indicators by category, township, squad, grid cell and period.

Three things live here, each built on what already exists rather than beside it:

- **Periods** (``Period``): a day, ISO week, month, quarter or year in Asia/Shanghai, parsed from and
  written as ``2021-05-17``, ``2021-W20``, ``2021-05``, ``2021-Q2`` or ``2021``; with the period before it
  and the same period a year earlier (同比).
- **Case counts** (``count_cases``): cases *reported* in [start, end), cancelled and merged reports left
  out, grouped in SQL by one or two of ``DIMENSIONS`` and optionally filtered; with ``year_on_year`` each
  row also carries the count a year earlier, the change and the percentage change (``None`` when the
  base is 0). ``case_summary`` and ``report_figures`` give the period's breakdown and the registry totals
  of the seed report (seized items, hotline, fume inspections, demolitions).
- **Indicators** (``indicator_table``): ``layers.indicators.compute_indicators`` (the event-log
  indicators) for the groupings it knows, and per period for days, quarters and years; with the same
  year-on-year comparison.

What "the same period a year earlier" (同比) means:

- grouped by week, for a range of whole ISO weeks (from a Monday to a Monday, 00:00 Shanghai): the same
  ISO week numbers of the previous ISO year, so that week 20 is set against week 20, the way weekly
  figures are read (week 53 becomes week 52 when the previous year has none);
- for any other range [start, end): both ends moved back one calendar year in Shanghai time (29 February
  becomes 28 February), which for days, months, quarters and years is the same period a year earlier;
- for a period row: the period of the same kind a year earlier, looked up inside that earlier range.
  Groups seen only a year earlier are listed too, with a count of 0. The total's base counts the whole
  earlier range, so a week 53 or a leap day with no twin counts there and in no row; and in a range
  that cuts a week, the edge weeks are compared on whatever part of them each range holds.

Squad in the counts is the unit the case is assigned to now (a squad, or a department's team for
department powers); in the indicators it is the unit assigned at the clock dispatch, as there.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from gis_platform import models as m
from gis_platform import vocab
from gis_platform.errors import FieldError, ValidationError
from gis_platform.workcalendar import SHANGHAI, WorkCalendar
from layers.cases import CALENDAR
from layers.indicators import GROUPINGS as INDICATOR_GROUPINGS
from layers.indicators import INDICATOR_LABELS, TOTAL_LABEL, UNKNOWN_LABEL, IndicatorRow, compute_indicators
from layers.rules.hotline import closure_rate
from layers.rules.structures import demolished_totals

PERIOD_KINDS = ("day", "week", "month", "quarter", "year")
DIMENSIONS = ("category", "theme", "township", "squad", "grid", *PERIOD_KINDS)
INDICATOR_DIMENSIONS = ("category", "township", "squad", *PERIOD_KINDS)
MAX_DIMENSIONS = 2
# Daily indicators replay the event log once per day; a quarter of days keeps that to a few seconds.
MAX_INDICATOR_PERIODS = 92
# Reports cancelled as invalid on verification, or merged into another case, are not cases.
NOT_CASES = ("cancelled", "merged")
UNKNOWN_LABEL_EN = "Unspecified"
TOTAL_LABEL_EN = "Total"
# English theme names. The map pages keep their own copy in webmap.i18n, which layers may not import.
THEME_LABELS_EN = {
    "ten_disorders": "Ten disorders", "illegal_operation": "Illegal street trading",
    "illegal_structures": "Illegal structures", "fume_sites": "Cooking fumes", "promotion": "Promotion",
    "market_supervision": "Market supervision", "municipal": "Municipal facilities",
}
INDICATOR_LABELS_EN = {
    "due": "Due for handling", "handled": "Handled", "handled_on_time": "Handled on time",
    "due_to_close": "Due for closure", "closed": "Closed", "closed_on_time": "Closed on time",
    "rework": "Reworked", "extended": "Extended", "overdue": "Overdue", "handling_rate": "Handling rate",
    "on_time_handling_rate": "On-time handling rate", "closure_rate": "Closure rate",
    "on_time_closure_rate": "On-time closure rate", "rework_rate": "Rework rate",
    "extension_rate": "Extension rate", "overrun_avg": "Average overrun multiple",
    "overrun_max": "Largest overrun multiple",
}
DIMENSION_LABELS = {
    "category": ("类别", "Category"), "theme": ("专题", "Theme"), "township": ("乡镇（街道）", "Township"),
    "squad": ("中队", "Squad"), "grid": ("网格", "Grid cell"), "day": ("日", "Day"), "week": ("周", "Week"),
    "month": ("月", "Month"), "quarter": ("季度", "Quarter"), "year": ("年", "Year"),
}

_MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
              "October", "November", "December")
_PERIOD_PATTERNS = {
    "day": re.compile(r"(\d{4})-(\d{2})-(\d{2})"),
    "week": re.compile(r"(\d{4})-W(\d{2})"),
    "month": re.compile(r"(\d{4})-(\d{2})"),
    "quarter": re.compile(r"(\d{4})-Q([1-4])"),
    "year": re.compile(r"(\d{4})"),
}
_PERIOD_FORMATS = {"day": "YYYY-MM-DD", "week": "YYYY-Www", "month": "YYYY-MM", "quarter": "YYYY-Qn",
                   "year": "YYYY"}
# PostgreSQL to_char patterns giving the same keys as Period.key.
_SQL_PERIOD_FORMATS = {"day": "YYYY-MM-DD", "week": 'IYYY-"W"IW', "month": "YYYY-MM", "quarter": 'YYYY-"Q"Q',
                       "year": "YYYY"}
MIN_YEAR, MAX_YEAR = 1900, 2200


# -- periods ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Period:
    """A day, ISO week, month, quarter or year in Asia/Shanghai: [start, end) and its key."""

    kind: str
    key: str
    first_day: date
    next_day: date  # the day after the last one

    @property
    def start(self) -> datetime:
        """Return the first moment of the period (Shanghai midnight)."""
        return datetime.combine(self.first_day, datetime.min.time(), SHANGHAI)

    @property
    def end(self) -> datetime:
        """Return the first moment after the period."""
        return datetime.combine(self.next_day, datetime.min.time(), SHANGHAI)

    @property
    def last_day(self) -> date:
        """Return the last day of the period."""
        return self.next_day - timedelta(days=1)

    @property
    def label(self) -> str:
        """Return the Chinese label: 2021年第20周, 2021年5月 …"""
        d = self.first_day
        if self.kind == "day":
            return f"{d.year}年{d.month}月{d.day}日"
        if self.kind == "week":
            iso = d.isocalendar()
            return f"{iso.year}年第{iso.week}周"
        if self.kind == "month":
            return f"{d.year}年{d.month}月"
        if self.kind == "quarter":
            return f"{d.year}年第{(d.month - 1) // 3 + 1}季度"
        return f"{d.year}年"

    @property
    def label_en(self) -> str:
        """Return the English label: 2021 week 20, May 2021 …"""
        d = self.first_day
        if self.kind == "day":
            return f"{d.day} {_MONTHS_EN[d.month - 1]} {d.year}"
        if self.kind == "week":
            iso = d.isocalendar()
            return f"{iso.year} week {iso.week}"
        if self.kind == "month":
            return f"{_MONTHS_EN[d.month - 1]} {d.year}"
        if self.kind == "quarter":
            return f"{d.year} Q{(d.month - 1) // 3 + 1}"
        return str(d.year)

    @property
    def span_label(self) -> str:
        """Return the days covered, e.g. 2021-05-17 – 2021-05-23."""
        return f"{self.first_day.isoformat()} – {self.last_day.isoformat()}"

    def previous(self) -> Period:
        """Return the period of the same kind just before this one."""
        return period_of(self.kind, self.first_day - timedelta(days=1))

    def year_ago(self) -> Period:
        """Return the same period a year earlier (same date, ISO week number, month, quarter or year)."""
        d = self.first_day
        if self.kind == "week":
            iso = d.isocalendar()
            week = min(iso.week, _iso_weeks(iso.year - 1))
            return period_of("week", date.fromisocalendar(iso.year - 1, week, 1))
        return period_of(self.kind, _shift_year(d, -1))


def _iso_weeks(year: int) -> int:
    return date(year, 12, 28).isocalendar().week


def _shift_year(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a common year
        return day.replace(year=day.year + years, day=28)


def period_of(kind: str, day: date) -> Period:
    """Return the period of a kind that holds a day."""
    if kind == "day":
        return Period(kind, day.isoformat(), day, day + timedelta(days=1))
    if kind == "week":
        iso = day.isocalendar()
        monday = day - timedelta(days=day.weekday())
        return Period(kind, f"{iso.year:04d}-W{iso.week:02d}", monday, monday + timedelta(days=7))
    if kind == "month":
        first = day.replace(day=1)
        nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        return Period(kind, f"{first.year:04d}-{first.month:02d}", first, nxt)
    if kind == "quarter":
        q = (day.month - 1) // 3
        first = date(day.year, 3 * q + 1, 1)
        nxt = date(day.year + 1, 1, 1) if q == 3 else date(day.year, 3 * q + 4, 1)
        return Period(kind, f"{day.year:04d}-Q{q + 1}", first, nxt)
    if kind == "year":
        return Period(kind, f"{day.year:04d}", date(day.year, 1, 1), date(day.year + 1, 1, 1))
    raise ValidationError(FieldError("period", f"must be one of {', '.join(PERIOD_KINDS)}"))


def parse_period(kind: str, text: str, field_name: str = "period") -> Period:
    """Parse a period key (2021-05-17, 2021-W20, 2021-05, 2021-Q2, 2021), or raise naming the field."""
    if kind not in PERIOD_KINDS:
        raise ValidationError(FieldError(field_name, f"the kind must be one of {', '.join(PERIOD_KINDS)}"))
    expected = f"expected {_PERIOD_FORMATS[kind]}"
    match = _PERIOD_PATTERNS[kind].fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValidationError(FieldError(field_name, f"{text!r} is not a {kind}: {expected}"))
    numbers = [int(g) for g in match.groups()]
    if not MIN_YEAR <= numbers[0] <= MAX_YEAR:
        raise ValidationError(FieldError(field_name, f"the year must be between {MIN_YEAR} and {MAX_YEAR}"))
    try:
        if kind == "day":
            day = date(*numbers)
        elif kind == "week":
            day = date.fromisocalendar(numbers[0], numbers[1], 1)
        elif kind == "month":
            day = date(numbers[0], numbers[1], 1)
        elif kind == "quarter":
            day = date(numbers[0], 3 * numbers[1] - 2, 1)
        else:
            day = date(numbers[0], 1, 1)
    except ValueError:
        if kind == "week":
            raise ValidationError(FieldError(field_name, f"{numbers[0]} has weeks 01 to {_iso_weeks(numbers[0])}"))
        raise ValidationError(FieldError(field_name, f"{text!r} is not a valid {kind}: {expected}")) from None
    return period_of(kind, day)


def parse_week(text: str, field_name: str = "week") -> Period:
    """Parse an ISO week written YYYY-Www (2021-W20), or raise naming the field."""
    return parse_period("week", text, field_name)


def periods_between(kind: str, start: datetime, end: datetime) -> list[Period]:
    """Return every period of a kind overlapping [start, end), in Shanghai time."""
    first = start.astimezone(SHANGHAI).date()
    last = (end - timedelta(microseconds=1)).astimezone(SHANGHAI).date()
    out = [period_of(kind, first)]
    while out[-1].next_day <= last:
        out.append(period_of(kind, out[-1].next_day))
    return out


def year_ago(moment: datetime) -> datetime:
    """Return the same wall-clock moment a calendar year earlier in Shanghai (29 February → 28 February)."""
    local = moment.astimezone(SHANGHAI)
    return datetime.combine(_shift_year(local.date(), -1), local.timetz())


def year_ago_range(start: datetime, end: datetime, *, weeks: bool = False) -> tuple[datetime, datetime]:
    """Return the range a year before [start, end): a calendar year back, or with ``weeks`` and a range of
    whole ISO weeks, the same ISO week numbers of the previous ISO year."""
    s, e = start.astimezone(SHANGHAI), end.astimezone(SHANGHAI)
    if weeks and _monday_midnight(s) and _monday_midnight(e):
        return period_of("week", s.date()).year_ago().start, period_of("week", e.date()).year_ago().start
    return year_ago(start), year_ago(end)


def _monday_midnight(moment: datetime) -> bool:
    return moment.weekday() == 0 and moment.timetz().replace(tzinfo=None) == datetime.min.time()


def year_ago_key(kind: str, key: str) -> str:
    """Return the key of the same period a year earlier."""
    return parse_period(kind, key).year_ago().key


# -- comparison ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    """A figure against its base: the change and the percentage change (None when the base is 0 or unknown)."""

    current: float | None
    base: float | None
    change: float | None
    change_pct: float | None


def compare(current: float | None, base: float | None) -> Change:
    """Return the change from base to current, and its percentage of base (None when base is 0)."""
    if current is None or base is None:
        return Change(current, base, None, None)
    change = current - base
    if isinstance(current, float) or isinstance(base, float):
        change = round(change, 6)
    pct = None if base == 0 else round(change / base * 100, 2)
    return Change(current, base, change, pct)


# -- case counts -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GroupKey:
    """One dimension of a row: its name, the key (a code or period key) and its labels."""

    dimension: str
    key: str | None
    label: str
    label_en: str


@dataclass(frozen=True)
class CountRow:
    """Cases of one group; with a year-on-year comparison, the count a year earlier and the change."""

    groups: tuple[GroupKey, ...]
    count: int
    base: int | None = None
    change: int | None = None
    change_pct: float | None = None


@dataclass(frozen=True)
class CaseCounts:
    """Case counts for [start, end): the total and the grouped rows (they sum to the total)."""

    start: datetime
    end: datetime
    group_by: tuple[str, ...]
    filters: dict[str, str]
    total: CountRow
    rows: list[CountRow]
    base_start: datetime | None = None
    base_end: datetime | None = None


@dataclass(frozen=True)
class _Dim:
    key: ColumnElement[Any]
    label: ColumnElement[Any]
    label_en: ColumnElement[Any]


def _aware(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(FieldError(name, "must be a date and time with a time zone"))
    return value


def _check_period(start: datetime, end: datetime) -> None:
    for name, value in (("start", start), ("end", end)):
        _aware(value, name)
        # Periods, their neighbours and the year before must stay representable (no year 0, no year 10000).
        if not MIN_YEAR <= value.year <= MAX_YEAR:
            raise ValidationError(FieldError(name, f"the year must be between {MIN_YEAR} and {MAX_YEAR}"))
    if end <= start:
        raise ValidationError(FieldError("end", "must be after start"))


def _dimensions(group_by: Sequence[str] | str | None, allowed: Sequence[str] = DIMENSIONS) -> tuple[str, ...]:
    if group_by is None:
        return ()
    dims = tuple(d.strip() for d in group_by.split(",")) if isinstance(group_by, str) else tuple(group_by)
    dims = tuple(d for d in dims if d)
    for d in dims:
        if d not in allowed:
            raise ValidationError(FieldError("group_by", f"{d!r} is not one of {', '.join(allowed)}"))
    if len(set(dims)) != len(dims):
        raise ValidationError(FieldError("group_by", "a dimension may appear only once"))
    if len(dims) > MAX_DIMENSIONS:
        raise ValidationError(FieldError("group_by", f"at most {MAX_DIMENSIONS} dimensions"))
    if sum(d in PERIOD_KINDS for d in dims) > 1:
        raise ValidationError(FieldError("group_by", "at most one period (day, week, month, quarter or year)"))
    return dims


def _dimension_sql(dim: str) -> _Dim:
    c, cat, unit, agency, cell = m.Case, m.Category, m.AdminUnit, m.Agency, m.GridCell
    if dim == "category":
        return _Dim(cat.code, cat.name, cat.name_en)
    if dim == "theme":
        return _Dim(cat.theme, cat.theme, cat.theme)  # labelled in Python from the vocabulary
    if dim == "township":
        return _Dim(unit.code, unit.name, unit.name_en)
    if dim == "squad":
        return _Dim(agency.code, agency.name, agency.name_en)
    if dim == "grid":
        return _Dim(cell.code, cell.code, cell.code)
    key = func.to_char(func.timezone(SHANGHAI.key, c.reported_at), _SQL_PERIOD_FORMATS[dim])
    return _Dim(key, key, key)  # labelled in Python from the period


def _base_query(county: str, start: datetime, end: datetime, filters: dict[str, str]) -> Select[Any]:
    """Return the cases reported in [start, end) with the joins every dimension and filter needs."""
    c, cat, unit, agency, cell = m.Case, m.Category, m.AdminUnit, m.Agency, m.GridCell
    stmt = (select().select_from(c).join(cat, cat.id == c.category_id)
            .outerjoin(unit, unit.id == c.admin_unit_id).outerjoin(agency, agency.id == c.assigned_agency_id)
            .outerjoin(cell, cell.id == c.grid_cell_id)
            .where(c.county_code == county, c.reported_at >= start, c.reported_at < end, c.status.not_in(NOT_CASES)))
    columns = {"category": cat.code, "theme": cat.theme, "township": unit.code, "squad": agency.code,
               "source": c.source}
    for name, value in filters.items():
        stmt = stmt.where(columns[name] == value)
    return stmt


def _grouped(session: Session, county: str, start: datetime, end: datetime, dims: tuple[str, ...],
             filters: dict[str, str]) -> tuple[int, dict[tuple[str | None, ...], tuple[tuple[str, str], ...]],
                                               dict[tuple[str | None, ...], int]]:
    """Count in SQL: the total, and per group its labels and count."""
    base = _base_query(county, start, end, filters)
    total = session.scalar(base.add_columns(func.count()))
    if not dims:
        return int(total or 0), {}, {}
    sql = [_dimension_sql(d) for d in dims]
    cols: list[ColumnElement[Any]] = []
    for s in sql:
        cols += [s.key, s.label, s.label_en]
    stmt = base.add_columns(*cols, func.count()).group_by(*cols)
    labels: dict[tuple[str | None, ...], tuple[tuple[str, str], ...]] = {}
    counts: dict[tuple[str | None, ...], int] = {}
    for row in session.execute(stmt):
        key = tuple(row[3 * i] for i in range(len(dims)))
        labels[key] = tuple((row[3 * i + 1], row[3 * i + 2]) for i in range(len(dims)))
        counts[key] = counts.get(key, 0) + int(row[-1])
    return int(total or 0), labels, counts


def _group_key(dim: str, key: str | None, label: str | None, label_en: str | None) -> GroupKey:
    if key is None:
        return GroupKey(dim, None, UNKNOWN_LABEL, UNKNOWN_LABEL_EN)
    if dim == "theme":
        return GroupKey(dim, key, vocab.THEME_LABELS.get(key, key), THEME_LABELS_EN.get(key, key))
    if dim in PERIOD_KINDS:
        p = parse_period(dim, key)
        return GroupKey(dim, key, p.label, p.label_en)
    return GroupKey(dim, key, label or key, label_en or label or key)


def _filters(session: Session, county: str, *, category: str | None, theme: str | None, township: str | None,
             squad: str | None, source: str | None) -> dict[str, str]:
    """Check that each filter names something of the county; return the filters given."""
    out: dict[str, str] = {}
    lookups = {"category": (m.Category, category), "township": (m.AdminUnit, township), "squad": (m.Agency, squad)}
    for name, (model, value) in lookups.items():
        if value is None:
            continue
        if session.scalar(select(model.id).where(model.county_code == county, model.code == value)) is None:
            raise ValidationError(FieldError(name, f"no {name} {value!r} in county {county}"))
        out[name] = value
    if theme is not None:
        if theme not in vocab.THEMES:
            raise ValidationError(FieldError("theme", f"must be one of {', '.join(vocab.THEMES)}"))
        out["theme"] = theme
    if source is not None:
        if source not in vocab.CASE_SOURCES:
            raise ValidationError(FieldError("source", f"must be one of {', '.join(vocab.CASE_SOURCES)}"))
        out["source"] = source
    return out


def count_cases(session: Session, county_code: str, *, start: datetime, end: datetime,
                group_by: Sequence[str] | str | None = None, category: str | None = None, theme: str | None = None,
                township: str | None = None, squad: str | None = None, source: str | None = None,
                year_on_year: bool = False) -> CaseCounts:
    """Count the cases reported in [start, end), in total and grouped by up to two dimensions, in SQL.

    Groups with no case are not listed, except that a grouping by one period alone lists every period
    overlapping the range. Rows come in key order (unknown last). With ``year_on_year`` each row and the
    total carry the count of the same group in the same period a year earlier (see the module docstring).
    """
    _check_period(start, end)
    dims = _dimensions(group_by)
    filters = _filters(session, county_code, category=category, theme=theme, township=township, squad=squad,
                       source=source)
    total, labels, counts = _grouped(session, county_code, start, end, dims, filters)
    if len(dims) == 1 and dims[0] in PERIOD_KINDS:
        for p in periods_between(dims[0], start, end):
            labels.setdefault((p.key,), ((p.key, p.key),))
            counts.setdefault((p.key,), 0)
    base_start = base_end = None
    base_total: int | None = None
    base_counts: dict[tuple[str | None, ...], int] = {}
    period_at = next((i for i, d in enumerate(dims) if d in PERIOD_KINDS), None)

    def earlier(key: tuple[str | None, ...]) -> tuple[str | None, ...]:
        if period_at is None or key[period_at] is None:
            return key
        return (*key[:period_at], year_ago_key(dims[period_at], key[period_at]), *key[period_at + 1:])

    if year_on_year:
        base_start, base_end = year_ago_range(start, end, weeks="week" in dims)
        base_total, base_labels, base_counts = _grouped(session, county_code, base_start, base_end, dims, filters)
        # Groups seen only a year earlier are rows too (count 0), under the key of the current period.
        later = {} if period_at is None else {p.year_ago().key: p.key
                                              for p in periods_between(dims[period_at], start, end)}
        for key in base_counts:
            if period_at is not None and key[period_at] is not None:
                if key[period_at] not in later:
                    continue
                key_now = (*key[:period_at], later[key[period_at]], *key[period_at + 1:])
            else:
                key_now = key
            if key_now not in counts:
                counts[key_now] = 0
                labels[key_now] = base_labels[key]

    def row(key: tuple[str | None, ...]) -> CountRow:
        groups = tuple(_group_key(d, k, *lab) for d, k, lab in zip(dims, key, labels[key]))
        if not year_on_year:
            return CountRow(groups, counts[key])
        ch = compare(counts[key], base_counts.get(earlier(key), 0))
        return CountRow(groups, counts[key], int(ch.base), int(ch.change), ch.change_pct)

    ordered = sorted(counts, key=lambda k: tuple((v is None, v or "") for v in k))
    total_groups = (GroupKey("total", None, TOTAL_LABEL, TOTAL_LABEL_EN),)
    if year_on_year:
        ch = compare(total, base_total)
        total_row = CountRow(total_groups, total, base_total, int(ch.change), ch.change_pct)
    else:
        total_row = CountRow(total_groups, total)
    return CaseCounts(start, end, dims, filters, total_row, [row(k) for k in ordered], base_start, base_end)


# -- the period summary and the seed report's figures ------------------------------------------------------
@dataclass(frozen=True)
class Count:
    """One line of a breakdown: key, Chinese and English labels, count."""

    key: str | None
    label: str
    label_en: str | None
    count: int


def case_summary(session: Session, county_code: str, start: datetime, end: datetime) -> dict[str, Any]:
    """Count the reports of [start, end) by status, and the cases among them by theme, category and township."""
    _check_period(start, end)
    c = m.Case
    statuses = dict(session.execute(select(c.status, func.count()).where(
        c.county_code == county_code, c.reported_at >= start, c.reported_at < end).group_by(c.status)).all())
    themes = {r.groups[0].key: r.count for r in count_cases(session, county_code, start=start, end=end,
                                                              group_by="theme").rows}
    by_category = count_cases(session, county_code, start=start, end=end, group_by="category").rows
    by_township = count_cases(session, county_code, start=start, end=end, group_by="township").rows
    return {
        "reported": sum(statuses.values()),
        "total": sum(themes.values()),
        "by_theme": [Count(t, vocab.THEME_LABELS[t], THEME_LABELS_EN[t], themes.get(t, 0)) for t in vocab.THEMES],
        "by_status": [Count(s, vocab.CASE_STATUS_LABELS[s], None, statuses.get(s, 0)) for s in vocab.CASE_STATUSES],
        "by_category": [Count(g.key, g.label, g.label_en, r.count)
                        for r in sorted(by_category, key=lambda r: (-r.count, r.groups[0].key or ""))
                        for g in r.groups],
        "by_township": [Count(g.key, g.label, g.label_en if g.key else None, r.count)
                        for r in by_township for g in r.groups],
    }


@dataclass(frozen=True)
class ReportFigures:
    """The figures of the yearly reform report for [start, end), from the registries and the cases."""

    start: datetime
    end: datetime
    cases_by_theme: dict[str, int]
    cases_by_category: dict[str, int]
    seized_items: int
    hotline_received: int
    hotline_closed: int
    hotline_closure_rate: float | None
    fume_inspections: int
    fume_exceedances: int
    fume_penalised: int
    demolished: int
    demolished_area_m2: float
    total_cases: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total_cases", sum(self.cases_by_theme.values()))


def report_figures(session: Session, county_code: str, start: datetime, end: datetime) -> ReportFigures:
    """Return the report's figures for [start, end): cases by theme and category, seizures, hotline, fumes, demolitions.

    Cases count by report time, seized items by seizure, hotline tickets by receipt, inspections by
    inspection time and demolitions by demolition time.
    """
    _check_period(start, end)
    themes = {r.groups[0].key: r.count for r in count_cases(session, county_code, start=start, end=end,
                                                              group_by="theme").rows}
    categories = {r.groups[0].key: r.count for r in count_cases(session, county_code, start=start, end=end,
                                                                  group_by="category").rows}
    s, fi, fs = m.SeizedItem, m.FumeInspection, m.FumeSite
    seized = session.scalar(select(func.count()).where(s.county_code == county_code, s.seized_at >= start,
                                                       s.seized_at < end))
    inspections, exceeded, penalised = session.execute(
        select(func.count(), func.count().filter(fi.exceeded),
               func.count().filter(fi.exceeded & fi.penalty_case_id.is_not(None)))
        .select_from(fi).join(fs, fs.id == fi.site_id)
        .where(fs.county_code == county_code, fi.inspected_at >= start, fi.inspected_at < end)).one()
    hotline = closure_rate(session, county_code, start, end)
    demolished = demolished_totals(session, county_code, start, end, group_by=None)
    return ReportFigures(
        start=start, end=end, cases_by_theme={t: themes.get(t, 0) for t in vocab.THEMES},
        cases_by_category=categories, seized_items=int(seized or 0), hotline_received=hotline.total,
        hotline_closed=hotline.closed, hotline_closure_rate=hotline.rate, fume_inspections=int(inspections),
        fume_exceedances=int(exceeded), fume_penalised=int(penalised), demolished=demolished.count,
        demolished_area_m2=float(demolished.area_m2))


# -- indicators ------------------------------------------------------------------------------------------
INDICATOR_FIELDS = tuple(INDICATOR_LABELS)


@dataclass(frozen=True)
class IndicatorComparison:
    """Indicators of one group; with a year-on-year comparison, the base row and each field's change."""

    row: IndicatorRow
    label_en: str
    base: IndicatorRow | None = None
    changes: dict[str, Change] = field(default_factory=dict)


@dataclass(frozen=True)
class IndicatorTable:
    """Indicators for [start, end) as of a moment: rows (the total alone when ungrouped)."""

    start: datetime
    end: datetime
    as_of: datetime
    group_by: str | None
    rows: list[IndicatorComparison]
    base_start: datetime | None = None
    base_end: datetime | None = None
    base_as_of: datetime | None = None


def _indicator_rows(session: Session, county: str, start: datetime, end: datetime, group_by: str | None,
                    category: str | None, source: str | None, as_of: datetime,
                    calendar: WorkCalendar) -> list[IndicatorRow]:
    if group_by is None or group_by in INDICATOR_GROUPINGS:
        return compute_indicators(session, county, start=start, end=end, group_by=group_by, category=category,
                                  source=source, as_of=as_of, calendar=calendar)
    # Days, quarters and years: one replay per period, all as of the same moment, which is exactly what
    # compute_indicators does for its own period groupings (due by clock dispatch, closure by first feedback).
    periods = periods_between(group_by, start, end)
    if len(periods) > MAX_INDICATOR_PERIODS:
        raise ValidationError(FieldError("group_by", f"at most {MAX_INDICATOR_PERIODS} {group_by}s of indicators "
                                                     "at once; choose a shorter period or a coarser grouping"))
    out = []
    for p in periods:
        [total] = compute_indicators(session, county, start=max(start, p.start), end=min(end, p.end),
                                     category=category, source=source, as_of=as_of, calendar=calendar)
        out.append(replace(total, group_by=group_by, key=p.key, label=p.label))
    return out


def _empty_row(like: IndicatorRow) -> IndicatorRow:
    """Return a row of no activity for the group of another row."""
    return replace(like, **{f: (None if f.endswith("_rate") or f.startswith("overrun") else 0)
                            for f in INDICATOR_FIELDS})


def _base_value(base: IndicatorRow | None, name: str) -> float | None:
    """Return a field of the base row; a group absent a year earlier had zero cases and no rates."""
    if base is not None:
        return getattr(base, name)
    return None if name.endswith("_rate") or name.startswith("overrun") else 0


def _label_en(session: Session, county: str, group_by: str | None) -> dict[str | None, str]:
    models = {"category": m.Category, "township": m.AdminUnit, "squad": m.Agency}
    if group_by not in models:
        return {}
    model = models[group_by]
    return dict(session.execute(select(model.code, model.name_en).where(model.county_code == county)).all())


def indicator_table(session: Session, county_code: str, *, start: datetime, end: datetime,
                    group_by: str | None = None, category: str | None = None, source: str | None = None,
                    as_of: datetime | None = None, year_on_year: bool = False,
                    calendar: WorkCalendar = CALENDAR) -> IndicatorTable:
    """Compute the event-log indicators for [start, end), in total or by category, township, squad or period.

    ``as_of`` defaults to ``end`` (or now, if earlier). The year-earlier base is computed on the range a
    year earlier (``year_ago_range``), as of the same point of that range; rows are matched by key
    (periods by the same period a year earlier), and groups active only a year earlier are added with
    zero counts. Rates compare by their difference (``change``) and its share of the base.
    """
    _check_period(start, end)
    (dim,) = _dimensions(group_by, INDICATOR_DIMENSIONS) or (None,)
    as_of = _aware(as_of, "as_of") if as_of is not None else min(end, datetime.now(SHANGHAI))
    rows = _indicator_rows(session, county_code, start, end, dim, category, source, as_of, calendar)
    names_en = _label_en(session, county_code, dim)

    def english(row: IndicatorRow) -> str:
        if row.key is None:
            return TOTAL_LABEL_EN if dim is None else UNKNOWN_LABEL_EN
        if dim in PERIOD_KINDS:
            return parse_period(dim, row.key).label_en
        return names_en.get(row.key, row.key)

    if not year_on_year:
        return IndicatorTable(start, end, as_of, dim, [IndicatorComparison(r, english(r)) for r in rows])
    base_start, base_end = year_ago_range(start, end, weeks=dim == "week")
    # The base is seen from the same point of its own range: as far into it, or as far past its end.
    base_as_of = base_end + (as_of - end) if as_of >= end else min(base_end, base_start + (as_of - start))
    base_rows = _indicator_rows(session, county_code, base_start, base_end, dim, category, source, base_as_of,
                                calendar)
    by_key = {r.key: r for r in base_rows}

    def earlier(key: str | None) -> str | None:
        return year_ago_key(dim, key) if dim in PERIOD_KINDS and key is not None else key

    # Groups active only a year earlier are rows too, with zero counts and no rates.
    seen = {earlier(r.key) for r in rows}
    rows += [_empty_row(b) for b in base_rows if b.key not in seen and dim not in PERIOD_KINDS]
    out = []
    for r in rows:
        base = by_key.get(earlier(r.key))
        changes = {f: compare(getattr(r, f), _base_value(base, f)) for f in INDICATOR_FIELDS}
        out.append(IndicatorComparison(r, english(r), base, changes))
    return IndicatorTable(start, end, as_of, dim, out, base_start, base_end, base_as_of)


def dimension_label(dim: str) -> tuple[str, str]:
    """Return the Chinese and English names of a dimension."""
    return DIMENSION_LABELS.get(dim, (dim, dim))


__all__ = [
    "DIMENSIONS", "INDICATOR_DIMENSIONS", "INDICATOR_LABELS_EN", "PERIOD_KINDS", "THEME_LABELS_EN", "CaseCounts",
    "Change", "Count", "CountRow", "GroupKey", "IndicatorComparison", "IndicatorTable", "Period", "ReportFigures",
    "case_summary", "compare", "count_cases", "dimension_label", "indicator_table", "parse_period", "parse_week",
    "period_of", "periods_between", "report_figures", "year_ago", "year_ago_key", "year_ago_range",
]
