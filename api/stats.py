"""Statistics for the command centre and planners: counts, indicators from the event log, a period summary.

- ``GET /api/v1/stats/counts``: cases reported in the period (``layers.statistics.count_cases``), in total
  and grouped by one or two of category, theme, township, squad, grid cell and period (day, ISO week,
  month, quarter, year in Asia/Shanghai), with optional filters and year-on-year comparison (``yoy``);
- ``GET /api/v1/indicators``: ``layers.indicators.compute_indicators`` (GB/T 30428.4-style counts and
  rates) in total or grouped by squad, township, category or period, with the same comparison
  (``layers.statistics.indicator_table``);
- ``GET /api/v1/stats/summary``: cases reported in the period by theme, status, category and township,
  structures demolished (``layers.rules.structures.demolished_totals``), the hotline closure rate
  (``layers.rules.hotline.closure_rate``), seized items and fume inspections (``report_figures``).

Periods are half-open [start, end), ISO 8601 with a time zone, at most ``MAX_PERIOD`` long. All are
county-wide figures, so they are for the admin, supervisor, operator and planner roles; patrollers and
liaisons get 403 rather than a partial view (the indicators cannot be restricted to one unit for every
grouping, and a squad's own figures are the ``squad`` row the command centre sees).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, Dict, Float, Integer, List, Nested, String
from apiflask.validators import Length, OneOf
from marshmallow import ValidationError as SchemaError
from marshmallow import validates_schema
from sqlalchemy import select

from api.auth import SECURITY, require
from api.deps import get_calendar, get_session, get_settings
from api.layers import Instant
from gis_platform import models as m
from gis_platform import vocab
from gis_platform.errors import FieldError, ValidationError
from layers.indicators import INDICATOR_LABELS
from layers.rules.structures import demolished_totals
from layers.statistics import (DIMENSIONS, INDICATOR_DIMENSIONS, INDICATOR_LABELS_EN, MAX_DIMENSIONS, CountRow,
                               case_summary, count_cases, dimension_label, indicator_table, report_figures)

bp = APIBlueprint("stats", __name__, url_prefix="/api/v1", tag="统计 Statistics")

ANALYSTS = ("admin", "supervisor", "operator", "planner")
MAX_PERIOD = timedelta(days=731)  # two years, a leap day included
MAX_ROWS = 20_000  # a grouping finer than this (grid cells by day over a year …) is refused, not streamed


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
    group_by = String(load_default=None, validate=OneOf(INDICATOR_DIMENSIONS), metadata={
        "description": "total when absent; else one of " + ", ".join(INDICATOR_DIMENSIONS)
                       + " (at most 92 days, quarters or years at once)"})
    category = String(load_default=None, validate=Length(1, 32), metadata={"description": "category code"})
    source = String(load_default=None, validate=OneOf(vocab.CASE_SOURCES), metadata={
        "description": "case source: " + ", ".join(vocab.CASE_SOURCES)})
    yoy = Boolean(load_default=False, metadata={
        "description": "add the same period a year earlier (同比) to each row: base, change and change_pct"})


class CountQuery(PeriodQuery):
    group_by = String(load_default=None, validate=Length(1, 40), metadata={
        "description": f"total only when absent; else up to {MAX_DIMENSIONS} of {', '.join(DIMENSIONS)}, "
                       "comma-separated, at most one of them a period", "example": "township,month"})
    category = String(load_default=None, validate=Length(1, 32), metadata={"description": "category code"})
    theme = String(load_default=None, validate=OneOf(vocab.THEMES), metadata={
        "description": "theme: " + ", ".join(vocab.THEMES)})
    township = String(load_default=None, validate=Length(1, 12), metadata={"description": "township code"})
    squad = String(load_default=None, validate=Length(1, 32), metadata={
        "description": "code of the unit the cases are assigned to (a squad or a department team)"})
    source = String(load_default=None, validate=OneOf(vocab.CASE_SOURCES), metadata={
        "description": "case source: " + ", ".join(vocab.CASE_SOURCES)})
    yoy = Boolean(load_default=False, metadata={
        "description": "compare each row with the same period a year earlier (同比)"})


class ColumnOut(Schema):
    key = String()
    label_zh = String()
    label_en = String()


class ChangeOut(Schema):
    base = Float(allow_none=True, metadata={"description": "the value a year earlier"})
    change = Float(allow_none=True, metadata={"description": "current − base (for rates, in rate units)"})
    change_pct = Float(allow_none=True, metadata={"description": "change ÷ base × 100; null when the base is 0"})


class IndicatorRowOut(Schema):
    group_by = String(allow_none=True)
    key = String(allow_none=True)
    label = String(metadata={"description": "Chinese label of the group (合计 for the total)"})
    label_en = String()
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
    year_on_year = Dict(keys=String(), values=Nested(ChangeOut), allow_none=True, metadata={
        "description": "with yoy: each indicator against the same group a year earlier"})


class IndicatorsOut(Schema):
    start = String()
    end = String()
    as_of = String(metadata={"description": "events recorded before this moment count (end, or now if earlier)"})
    group_by = String(allow_none=True)
    category = String(allow_none=True)
    source = String(allow_none=True)
    base_start = String(allow_none=True, metadata={"description": "with yoy: the period a year earlier"})
    base_end = String(allow_none=True)
    base_as_of = String(allow_none=True)
    columns = List(Nested(ColumnOut), metadata={"description": "the indicators in order, Chinese label first"})
    rows = List(Nested(IndicatorRowOut))


class GroupOut(Schema):
    dimension = String()
    key = String(allow_none=True, metadata={"description": "code or period key; null for cases with none"})
    label = String(metadata={"description": "Chinese label"})
    label_en = String()


class CountRowOut(Schema):
    groups = List(Nested(GroupOut))
    count = Integer()
    base = Integer(allow_none=True, metadata={"description": "with yoy: the count a year earlier"})
    change = Integer(allow_none=True)
    change_pct = Float(allow_none=True, metadata={"description": "null when the base is 0"})


class CountsOut(Schema):
    start = String()
    end = String()
    base_start = String(allow_none=True, metadata={"description": "with yoy: the period a year earlier"})
    base_end = String(allow_none=True)
    group_by = List(String())
    dimensions = List(Nested(ColumnOut), metadata={"description": "the grouping dimensions, Chinese name first"})
    filters = Dict(keys=String(), values=String())
    total = Nested(CountRowOut)
    rows = List(Nested(CountRowOut), metadata={"description": "they sum to the total"})


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


class SeizedOut(Schema):
    count = Integer(metadata={"description": "items seized in the period"})


class FumeOut(Schema):
    inspections = Integer()
    exceedances = Integer(metadata={"description": "inspections above the emission limit"})
    penalised = Integer(metadata={"description": "exceedances with a penalty case"})


class SummaryOut(Schema):
    start = String()
    end = String()
    cases = Nested(CaseCountsOut)
    demolished = Nested(DemolishedOut)
    hotline = Nested(HotlineOut)
    seized = Nested(SeizedOut)
    fume = Nested(FumeOut)


# -- helpers --------------------------------------------------------------------------------------------
def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _count_row(row: CountRow) -> dict[str, Any]:
    return {"groups": [asdict(g) for g in row.groups], "count": row.count, "base": row.base, "change": row.change,
            "change_pct": row.change_pct}


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
    table = indicator_table(db, county, start=query["start"], end=query["end"], group_by=query["group_by"],
                            category=category, source=query["source"], as_of=as_of, year_on_year=query["yoy"],
                            calendar=get_calendar())
    rows = []
    for item in table.rows:
        row = {**asdict(item.row), "label_en": item.label_en, "year_on_year": None}
        if query["yoy"]:
            row["year_on_year"] = {k: {"base": c.base, "change": c.change, "change_pct": c.change_pct}
                                   for k, c in item.changes.items()}
        rows.append(row)
    return {"start": _iso(query["start"]), "end": _iso(query["end"]), "as_of": _iso(as_of),
            "group_by": query["group_by"], "category": category, "source": query["source"],
            "base_start": _iso(table.base_start), "base_end": _iso(table.base_end),
            "base_as_of": _iso(table.base_as_of),
            "columns": [{"key": k, "label_zh": zh, "label_en": INDICATOR_LABELS_EN[k]}
                        for k, zh in INDICATOR_LABELS.items()],
            "rows": rows}


@bp.get("/stats/counts")
@require(*ANALYSTS)
@bp.input(CountQuery, location="query", arg_name="query")
@bp.output(CountsOut)
@bp.doc(summary="Case counts by category, theme, township, squad, grid cell or period, with year-on-year change",
        security=SECURITY,
        description="Cases reported in [start, end), cancelled and merged reports excluded, grouped in SQL by up "
                    "to two dimensions (e.g. township,month). Periods are in Asia/Shanghai; a grouping by one "
                    "period alone lists every period, empty ones included. With yoy=true each row carries the "
                    "count of the same group a year earlier (weeks: the same ISO week number), the change and "
                    "the percentage change (null when the base is 0).",
        responses={400: "invalid period, grouping or filter, or more than 20,000 groups"})
def counts(query: dict[str, Any]) -> dict[str, Any]:
    result = count_cases(get_session(), get_settings().county_code, start=query["start"], end=query["end"],
                         group_by=query["group_by"], category=query["category"], theme=query["theme"],
                         township=query["township"], squad=query["squad"], source=query["source"],
                         year_on_year=query["yoy"])
    if len(result.rows) > MAX_ROWS:
        raise ValidationError(FieldError("group_by", f"{len(result.rows):,} groups; at most {MAX_ROWS:,}: choose a "
                                                     "coarser grouping or a shorter period"))
    return {"start": _iso(result.start), "end": _iso(result.end), "base_start": _iso(result.base_start),
            "base_end": _iso(result.base_end), "group_by": list(result.group_by),
            "dimensions": [dict(zip(("key", "label_zh", "label_en"), (d, *dimension_label(d))))
                           for d in result.group_by],
            "filters": result.filters, "total": _count_row(result.total),
            "rows": [_count_row(r) for r in result.rows]}


@bp.get("/stats/summary")
@require(*ANALYSTS)
@bp.input(PeriodQuery, location="query", arg_name="query")
@bp.output(SummaryOut)
@bp.doc(summary="Period summary: cases by theme, status, category and township; demolitions; hotline; seizures; "
                "fume inspections",
        security=SECURITY, description="Cases are counted by their report time in [start, end); cancelled and "
                                       "merged reports appear only under by_status and reported.",
        responses={400: "invalid period"})
def summary(query: dict[str, Any]) -> dict[str, Any]:
    db = get_session()
    county = get_settings().county_code
    start, end = query["start"], query["end"]
    demolished = demolished_totals(db, county, start, end, group_by="township")
    figures = report_figures(db, county, start, end)
    return {
        "start": _iso(start), "end": _iso(end),
        "cases": {k: [asdict(x) for x in v] if isinstance(v, list) else v
                  for k, v in case_summary(db, county, start, end).items()},
        "demolished": {"count": demolished.count, "area_m2": float(demolished.area_m2),
                       "by_township": [{"key": g.key, "label": g.label, "count": g.count, "area_m2": float(g.area_m2)}
                                       for g in demolished.groups]},
        "hotline": {"received": figures.hotline_received, "closed": figures.hotline_closed,
                    "closure_rate": figures.hotline_closure_rate},
        "seized": {"count": figures.seized_items},
        "fume": {"inspections": figures.fume_inspections, "exceedances": figures.fume_exceedances,
                 "penalised": figures.fume_penalised},
    }
