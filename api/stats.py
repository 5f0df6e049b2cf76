"""Statistics for the command centre and planners: indicators from the event log, and a period summary.

- ``GET /api/v1/indicators``: ``layers.indicators.compute_indicators`` (GB/T 30428.4-style counts and
  rates) in total or grouped by squad, township, category, month or ISO week;
- ``GET /api/v1/stats/summary``: cases reported in the period by theme, status, category and township,
  structures demolished (``layers.rules.structures.demolished_totals``) and the hotline closure rate
  (``layers.rules.hotline.closure_rate``).

Periods are half-open [start, end), ISO 8601 with a time zone, at most ``MAX_PERIOD`` long. Both are
county-wide figures, so they are for the admin, supervisor, operator and planner roles; patrollers and
liaisons get 403 rather than a partial view (the indicators cannot be restricted to one unit for every
grouping, and a squad's own figures are the ``squad`` row the command centre sees).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Float, Integer, List, Nested, String
from apiflask.validators import Length, OneOf
from marshmallow import ValidationError as SchemaError
from marshmallow import validates_schema
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.auth import SECURITY, require
from api.deps import get_calendar, get_session, get_settings
from api.layers import Instant
from gis_platform import models as m
from gis_platform import vocab
from gis_platform.errors import FieldError, ValidationError
from layers.indicators import GROUPINGS, INDICATOR_LABELS, UNKNOWN_LABEL, compute_indicators
from layers.rules.hotline import closure_rate
from layers.rules.structures import demolished_totals

bp = APIBlueprint("stats", __name__, url_prefix="/api/v1", tag="统计 Statistics")

ANALYSTS = ("admin", "supervisor", "operator", "planner")
MAX_PERIOD = timedelta(days=731)  # two years, a leap day included
# Reports cancelled as invalid or merged into another case are not cases handled (as in /summary).
NOT_CASES = ("cancelled", "merged")
INDICATOR_LABELS_EN = {
    "due": "Due for handling", "handled": "Handled", "handled_on_time": "Handled on time",
    "due_to_close": "Due for closure", "closed": "Closed", "closed_on_time": "Closed on time",
    "rework": "Reworked", "extended": "Extended", "overdue": "Overdue", "handling_rate": "Handling rate",
    "on_time_handling_rate": "On-time handling rate", "closure_rate": "Closure rate",
    "on_time_closure_rate": "On-time closure rate", "rework_rate": "Rework rate",
    "extension_rate": "Extension rate", "overrun_avg": "Average overrun multiple",
    "overrun_max": "Largest overrun multiple",
}


# -- schemas ---------------------------------------------------------------------------------------------
class PeriodQuery(Schema):
    start = Instant(required=True, metadata={"format": "date-time", "example": "2021-01-01T00:00:00+08:00",
                                             "description": "period start, inclusive (ISO 8601 with a time zone)"})
    end = Instant(required=True, metadata={"format": "date-time", "example": "2022-01-01T00:00:00+08:00",
                                           "description": "period end, exclusive; at most two years after start"})

    @validates_schema
    def _period(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["end"] <= data["start"]:
            raise SchemaError("must be later than start", field_name="end")
        if data["end"] - data["start"] > MAX_PERIOD:
            raise SchemaError(f"the period may be at most {MAX_PERIOD.days} days (two years)", field_name="end")


class IndicatorQuery(PeriodQuery):
    group_by = String(load_default=None, validate=OneOf(GROUPINGS), metadata={
        "description": "total when absent; else one of " + ", ".join(GROUPINGS)})
    category = String(load_default=None, validate=Length(1, 32), metadata={"description": "category code"})
    source = String(load_default=None, validate=OneOf(vocab.CASE_SOURCES), metadata={
        "description": "case source: " + ", ".join(vocab.CASE_SOURCES)})


class ColumnOut(Schema):
    key = String()
    label_zh = String()
    label_en = String()


class IndicatorRowOut(Schema):
    group_by = String(allow_none=True)
    key = String(allow_none=True)
    label = String(metadata={"description": "Chinese label of the group (合计 for the total)"})
    due = Integer()
    handled = Integer()
    handled_on_time = Integer()
    due_to_close = Integer()
    closed = Integer()
    closed_on_time = Integer()
    rework = Integer()
    extended = Integer()
    overdue = Integer()
    handling_rate = Float(allow_none=True)
    on_time_handling_rate = Float(allow_none=True)
    closure_rate = Float(allow_none=True)
    on_time_closure_rate = Float(allow_none=True)
    rework_rate = Float(allow_none=True)
    extension_rate = Float(allow_none=True)
    overrun_avg = Float(allow_none=True)
    overrun_max = Float(allow_none=True)


class IndicatorsOut(Schema):
    start = String()
    end = String()
    as_of = String(metadata={"description": "events recorded before this moment count (end, or now if earlier)"})
    group_by = String(allow_none=True)
    category = String(allow_none=True)
    source = String(allow_none=True)
    columns = List(Nested(ColumnOut), metadata={"description": "the indicators in order, Chinese label first"})
    rows = List(Nested(IndicatorRowOut))


class CountOut(Schema):
    key = String(allow_none=True)
    label = String(metadata={"description": "Chinese label"})
    label_en = String(allow_none=True)
    count = Integer()


class CaseCountsOut(Schema):
    reported = Integer(metadata={"description": "every report of the period, whatever its status"})
    total = Integer(metadata={"description": "cases: reports less the cancelled and merged ones"})
    by_theme = List(Nested(CountOut), metadata={"description": "cases (every theme, zeros included)"})
    by_status = List(Nested(CountOut), metadata={"description": "reports (every status, zeros included)"})
    by_category = List(Nested(CountOut), metadata={"description": "cases, categories with any"})
    by_township = List(Nested(CountOut), metadata={"description": "cases, units with any"})


class DemolishedGroupOut(Schema):
    key = String(allow_none=True)
    label = String(allow_none=True)
    count = Integer()
    area_m2 = Float()


class DemolishedOut(Schema):
    count = Integer()
    area_m2 = Float(metadata={"description": "total footprint area, to 0.1 m²"})
    by_township = List(Nested(DemolishedGroupOut))


class HotlineOut(Schema):
    received = Integer()
    closed = Integer()
    closure_rate = Float(allow_none=True, metadata={"description": "closed / received; null when none"})


class SummaryOut(Schema):
    start = String()
    end = String()
    cases = Nested(CaseCountsOut)
    demolished = Nested(DemolishedOut)
    hotline = Nested(HotlineOut)


# -- queries ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Count:
    """One line of a breakdown: key, Chinese and English labels, count."""

    key: str | None
    label: str
    label_en: str | None
    count: int


def case_counts(session: Session, county_code: str, start: datetime, end: datetime) -> dict[str, Any]:
    """Count the reports of [start, end) by status, and the cases among them by theme, category and township."""
    c, cat, unit = m.Case, m.Category, m.AdminUnit
    period = (c.county_code == county_code, c.reported_at >= start, c.reported_at < end)
    cases = (*period, c.status.not_in(NOT_CASES))
    statuses = dict(session.execute(select(c.status, func.count()).where(*period).group_by(c.status)).all())
    themes = dict(session.execute(select(cat.theme, func.count()).select_from(c).join(cat, cat.id == c.category_id)
                                  .where(*cases).group_by(cat.theme)).all())
    categories = session.execute(
        select(cat.code, cat.name, cat.name_en, func.count()).select_from(c).join(cat, cat.id == c.category_id)
        .where(*cases).group_by(cat.code, cat.name, cat.name_en).order_by(func.count().desc(), cat.code)).all()
    townships = session.execute(
        select(unit.code, unit.name, unit.name_en, func.count()).select_from(c)
        .outerjoin(unit, unit.id == c.admin_unit_id).where(*cases)
        .group_by(unit.code, unit.name, unit.name_en).order_by(unit.code.nulls_last())).all()
    return {
        "reported": sum(statuses.values()),
        "total": sum(themes.values()),
        "by_theme": [Count(t, vocab.THEME_LABELS[t], None, themes.get(t, 0)) for t in vocab.THEMES],
        "by_status": [Count(s, vocab.CASE_STATUS_LABELS[s], None, statuses.get(s, 0)) for s in vocab.CASE_STATUSES],
        "by_category": [Count(code, name, name_en, n) for code, name, name_en, n in categories],
        "by_township": [Count(code, name or UNKNOWN_LABEL, name_en, n) for code, name, name_en, n in townships],
    }


def _iso(value: datetime) -> str:
    return value.isoformat()


# -- views -----------------------------------------------------------------------------------------------
@bp.get("/indicators")
@require(*ANALYSTS)
@bp.input(IndicatorQuery, location="query", arg_name="query")
@bp.output(IndicatorsOut)
@bp.doc(summary="Performance indicators (考核指标) from the event log, in total or grouped", security=SECURITY,
        description="Counts and rates of layers.indicators for [start, end): 应处置数, 处置数, 按期处置率, 结案率 … "
                    "County-wide figures: patrollers and liaisons get 403.",
        responses={400: "invalid period, grouping, category or source"})
def indicators(query: dict[str, Any]) -> dict[str, Any]:
    db = get_session()
    county = get_settings().county_code
    category = query["category"]
    if category is not None and db.scalar(select(m.Category.id).where(
            m.Category.county_code == county, m.Category.code == category)) is None:
        raise ValidationError(FieldError("category", f"no category {category!r} in this county"))
    as_of = min(query["end"], datetime.now(UTC))
    rows = compute_indicators(db, county, start=query["start"], end=query["end"], group_by=query["group_by"],
                              category=category, source=query["source"], as_of=as_of, calendar=get_calendar())
    return {"start": _iso(query["start"]), "end": _iso(query["end"]), "as_of": _iso(as_of),
            "group_by": query["group_by"], "category": category, "source": query["source"],
            "columns": [{"key": k, "label_zh": zh, "label_en": INDICATOR_LABELS_EN[k]}
                        for k, zh in INDICATOR_LABELS.items()],
            "rows": [asdict(row) for row in rows]}


@bp.get("/stats/summary")
@require(*ANALYSTS)
@bp.input(PeriodQuery, location="query", arg_name="query")
@bp.output(SummaryOut)
@bp.doc(summary="Period summary: cases by theme, status, category and township; demolitions; hotline closure",
        security=SECURITY, description="Cases are counted by their report time in [start, end); cancelled and "
                                       "merged reports appear only under by_status and reported.",
        responses={400: "invalid period"})
def summary(query: dict[str, Any]) -> dict[str, Any]:
    db = get_session()
    county = get_settings().county_code
    start, end = query["start"], query["end"]
    demolished = demolished_totals(db, county, start, end, group_by="township")
    hotline = closure_rate(db, county, start, end)
    return {
        "start": _iso(start), "end": _iso(end),
        "cases": {k: [asdict(x) for x in v] if isinstance(v, list) else v
                  for k, v in case_counts(db, county, start, end).items()},
        "demolished": {"count": demolished.count, "area_m2": float(demolished.area_m2),
                       "by_township": [{"key": g.key, "label": g.label, "count": g.count, "area_m2": float(g.area_m2)}
                                       for g in demolished.groups]},
        "hotline": {"received": hotline.total, "closed": hotline.closed, "closure_rate": hotline.rate},
    }
