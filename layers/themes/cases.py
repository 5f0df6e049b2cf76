"""全部案件 · All cases, with their clock; the themed case layers restrict this one to a theme.

The overdue flag and the overrun multiple come from ``layers.cases.clock`` for each row on the page
(working hours on the official calendar). The ``overdue`` filter must work in SQL, before paging, so it
compares the stored due time; that agrees with the clock except when a case's end (handled, or now)
falls in the off-hours right after a due time at the end of a working window, where no working time
has passed. Only cases ending within ``AMBIGUOUS`` of their due time can be such cases: the clock
decides those before the query runs, and their ids are bound as exceptions.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from gis_platform import vocab
from layers.base import (ASSIGNED_FILTER, Filter, LayerPage, LayerQuery, Legend, LegendEntry, SqlLayer, Style,
                         assigned_filter, iso, num)
from layers.cases import CALENDAR, clock

AMBIGUOUS = timedelta(days=31)  # longer than any official run of days off
PAST_DUE = ("c.dispatched_at IS NOT NULL AND tl.working_hours IS NOT NULL "
            "AND c.due_at < COALESCE(c.handled_at, CAST(:at AS timestamptz))")

OVERDUE_RED = "#d7191c"
# Status groups: (statuses, colour, Chinese label, English label).
STATUS_GROUPS = (
    (("reported", "filed", "returned"), "#f39c12", "待核实、待派遣、已退回", "Reported, filed or returned"),
    (("dispatched", "accepted"), "#2c7fb8", "已派遣、处置中", "Dispatched or in hand"),
    (("handled",), "#7b3294", "待核查", "Handled, awaiting check"),
    (("closed", "evaluated"), "#1a9641", "已结案、已评价", "Closed or evaluated"),
    (("cancelled", "merged", "deferred"), "#999999", "已作废、已合并、挂账", "Cancelled, merged or deferred"),
)
URGENCY_STYLE = {"urgent": {"weight": 3, "radius": 7}, "emergency": {"weight": 4, "radius": 8}}
OVERDUE_STYLE = {"color": OVERDUE_RED, "weight": 3, "radius": 9, "opacity": 1.0}

STYLE = Style(color="#2c7fb8", weight=1.5, fill_opacity=0.8, radius=5, by_property={
    "status": {s: {"color": colour, "fillColor": colour} for statuses, colour, _, _ in STATUS_GROUPS for s in statuses},
    "urgency": URGENCY_STYLE,
    "overdue": {"true": OVERDUE_STYLE},
})
LEGEND = Legend((
    *(LegendEntry(zh, en, {"color": colour, "fillColor": colour}) for _, colour, zh, en in STATUS_GROUPS),
    LegendEntry("紧急、特急（加粗加大）", "Urgent or emergency (thicker, larger)", URGENCY_STYLE["emergency"]),
    LegendEntry("超期（红色外框）", "Overdue (red outline)", OVERDUE_STYLE),
))


class CasesLayer(SqlLayer):
    """Case points (their routing location), coloured by status, overdue ones outlined in red."""

    name = "cases"
    title_zh = "全部案件"
    title_en = "All cases"
    geometry_type = "Point"
    style = STYLE
    legend = LEGEND
    temporal_field = "reported_at"
    temporal_column = "c.reported_at"
    theme: str | None = None  # set by the themed layers

    table = '"case" c'
    alias = "c"
    geom_column = "c.location"
    select_columns = (
        "c.case_no", "cat.code AS category_code", "cat.name AS category_name", "cat.name_en AS category_name_en",
        "cat.theme", "c.status", "c.urgency", "c.source", "c.reported_at", "c.dispatched_at", "c.due_at",
        "c.handled_at", "c.closed_at", "c.extended_hours", "tl.working_hours AS limit_hours",
        "ag.code AS agency_code", "ag.name AS agency_name", "g.code AS grid_code", "c.near_boundary",
        "c.description", "c.address", "CAST(:at AS timestamptz) AS as_of",
    )
    joins = (
        "JOIN category cat ON cat.id = c.category_id",
        "LEFT JOIN time_limit tl ON tl.category_id = c.category_id AND tl.urgency = c.urgency",
        "LEFT JOIN agency ag ON ag.id = c.assigned_agency_id",
        "LEFT JOIN grid_cell g ON g.id = c.grid_cell_id",
    )
    filter_columns = {
        "category": Filter("cat.code", "类别编码 / category code(s), e.g. TD02"),
        "status": Filter("c.status", "状态 / status: " + ", ".join(vocab.CASE_STATUSES), choices=vocab.CASE_STATUSES),
        "theme": Filter("cat.theme", "专题 / theme: " + ", ".join(vocab.THEMES), choices=vocab.THEMES),
        "squad": Filter("ag.code", "承办单位编码 / assigned agency code(s)"),
        "grid": Filter("g.code", "网格编码 / grid cell code(s)"),
        "source": Filter("c.source", "来源 / source: " + ", ".join(vocab.CASE_SOURCES), choices=vocab.CASE_SOURCES),
        "urgency": Filter("c.urgency", "紧急程度 / urgency: " + ", ".join(vocab.URGENCIES), choices=vocab.URGENCIES),
        "overdue": Filter(f"{PAST_DUE} AND NOT c.id = ANY(CAST(:clock_on_time AS bigint[]))",
                          "超期 / overdue at the query's moment: true or false", boolean=True),
        ASSIGNED_FILTER: assigned_filter("c.assigned_agency_id"),  # visibility, set by the API
    }

    @property
    def conditions(self) -> tuple[str, ...]:
        """Restrict a themed layer to its theme."""
        return ("cat.theme = :layer_theme",) if self.theme else ()

    @property
    def params(self) -> dict[str, Any]:
        """Return the theme bound to ``conditions``."""
        return {"layer_theme": self.theme} if self.theme else {}

    def query(self, session: Session, q: LayerQuery) -> LayerPage:
        """Return one page of cases; an ``overdue`` filter first lets the clock settle borderline cases."""
        q = replace(q, at=q.at or datetime.now(UTC))  # one moment for both queries
        where, params = self._where(q, applied=True)
        if "overdue" in q.filters:
            params["clock_on_time"] = self._past_due_but_on_time(session, q)
        return self._run(session, where, params, q.limit, q.offset)

    def _past_due_but_on_time(self, session: Session, q: LayerQuery) -> list[int]:
        """Return ids past their stored due time that the clock still counts as on time."""
        others = replace(q, filters={k: v for k, v in q.filters.items() if k != "overdue"})
        where, params = self._where(others, applied=True)
        where += [PAST_DUE, "COALESCE(c.handled_at, CAST(:at AS timestamptz)) < c.due_at + :ambiguous"]
        rows = session.execute(text(f"SELECT c.id, {', '.join(self.select_columns)} {self._source(where)}"),
                               {**params, "ambiguous": AMBIGUOUS})
        return [row.id for row in rows if not _clock(row)[0]]

    def to_properties(self, row: Any) -> dict[str, Any]:
        """Return the case's what, where, who and clock, with Chinese labels."""
        limit = num(row.limit_hours)
        overdue, overrun = _clock(row)
        return {
            "case_no": row.case_no, "category_code": row.category_code, "category_name": row.category_name,
            "category_name_en": row.category_name_en, "theme": row.theme,
            "theme_zh": vocab.THEME_LABELS[row.theme], "status": row.status,
            "status_zh": vocab.CASE_STATUS_LABELS[row.status], "urgency": row.urgency,
            "urgency_zh": vocab.URGENCY_LABELS[row.urgency], "source": row.source,
            "source_zh": vocab.CASE_SOURCE_LABELS[row.source], "reported_at": iso(row.reported_at),
            "dispatched_at": iso(row.dispatched_at), "due_at": iso(row.due_at), "handled_at": iso(row.handled_at),
            "closed_at": iso(row.closed_at), "limit_hours": limit, "overdue": overdue, "overrun_multiple": overrun,
            "agency_code": row.agency_code, "agency_name": row.agency_name, "grid_code": row.grid_code,
            "near_boundary": row.near_boundary, "address": row.address,
            "description": row.description,  # user text, passed as data; the page escapes it
        }


class ThemeCasesLayer(CasesLayer):
    """The cases layer restricted to one theme; subclasses set names, titles and ``theme``."""

    filter_columns = {k: v for k, v in CasesLayer.filter_columns.items() if k != "theme"}


def _clock(row: Any) -> tuple[bool, float | None]:
    """Return the overdue flag and overrun multiple of a case row at the query's moment."""
    c = clock(row, num(row.limit_hours), now=row.as_of, calendar=CALENDAR)
    if c.calendar_note:
        # The calendar lacks a year (a configuration gap): fall back on the stored due time, no multiple.
        return row.due_at is not None and row.due_at < (row.handled_at or row.as_of), None
    return c.overdue, c.overrun_multiple
