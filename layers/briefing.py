"""The weekly township meeting briefing (乡镇周例会简报): one township, one ISO week, HTML and CSV.

A township's coordination group meets weekly; the briefing gives it, for the week asked (normally the
week just ended):

1. **Cases by category**: cases reported in the week (cancelled and merged reports left out), against
   the week before (环比) and the same ISO week a year earlier (同比), from ``layers.statistics``;
2. **Indicators** of the week for the township (``layers.indicators``, from the event log);
3. **Overdue cases**: cases of the township that, at the end of the week, had been dispatched, had no
   feedback yet and had run past their deadline on the official working calendar (the rule of
   ``layers.indicators``: a moment is late when the working hours since the clock dispatch exceed the
   limit plus extensions and paused hours). Overdue working days = working hours past the deadline ÷
   the hours of a working day. Deferred (挂账) and returned cases are not listed: their clock is stopped.
4. **Pending coordination requests** sent by the township's enforcement office and not yet answered
   (or acknowledged, for a hazard notice) at the end of the week, with their deadlines;
5. **Hotspots**: Getis-Ord Gi* (``layers.analytics.hotspots``) on the township's own unit grid cells,
   with all cases of the last ``hotspot_weeks`` weeks up to the end of the week (``HOTSPOT_PERMUTATIONS``
   permutations): the hottest cells significant after the false-discovery-rate correction, and a map
   of every cell's confidence bin drawn on the server. The township is its own study area, so a hotspot is hot against the township's level,
   not the county's (a rural town's market street shows even beside the busy county seat).

"End of the week" is the Monday after it, 00:00 Asia/Shanghai, or now for the current week.

Output: ``render_html`` gives one self-contained printable page (A4, Chinese first, English second, the
map embedded as a PNG ``data:`` URI); ``render_csv`` gives UTF-8 with a byte-order mark so that Excel
reads the Chinese, either the whole briefing (each table a section: a title row ``## 中文 / English``,
a header row, the rows, then a blank row) or one section alone (header and rows only) for programs.
Text cells that a spreadsheet would take for a formula are prefixed with an apostrophe.

``gis-platform briefing --township CODE --week YYYY-Www [--out DIR]`` writes both files.
"""

from __future__ import annotations

import base64
import csv
import io
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
import numpy as np
import shapely
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, aliased

from gis_platform import models as m
from gis_platform import vocab
from gis_platform.errors import FieldError, ValidationError
from gis_platform.workcalendar import SHANGHAI, UnknownCalendarYear, WorkCalendar
from layers.cases import CALENDAR
from layers.indicators import INDICATOR_LABELS, IndicatorRow, case_facts, compute_indicators
from layers.statistics import INDICATOR_LABELS_EN, Change, Period, compare, count_cases, parse_week

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"
DEFAULT_HOTSPOT_WEEKS = 8
MAX_HOTSPOT_WEEKS = 52
DEFAULT_TOP = 10
# A township has a thousand-odd urban cells: with 999 permutations the smallest two-sided p-value (0.002)
# cannot pass the false-discovery-rate correction unless dozens of cells share it, so real clusters of a
# few cells would never show. 9,999 lowers that floor to 0.0002 for about two seconds more.
HOTSPOT_PERMUTATIONS = 9999
TOWNSHIP_LEVELS = ("subdistrict", "town", "zone")
# Matplotlib family names of CJK fonts, in order of preference (Debian: fonts-wqy-microhei, fonts-noto-cjk).
CJK_FONTS = ("WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC",
             "Noto Serif CJK SC", "Droid Sans Fallback", "AR PL UMing CN")
#: Gi* confidence bins: Chinese label, English label, map colour (ColorBrewer RdBu).
BINS: dict[int, tuple[str, str, str]] = {
    3: ("热点（99%置信度）", "Hot spot, 99% confidence", "#b2182b"),
    2: ("热点（95%置信度）", "Hot spot, 95% confidence", "#ef8a62"),
    1: ("热点（90%置信度）", "Hot spot, 90% confidence", "#fddbc7"),
    0: ("不显著", "Not significant", "#f2f2f2"),
    -1: ("冷点（90%置信度）", "Cold spot, 90% confidence", "#d1e5f0"),
    -2: ("冷点（95%置信度）", "Cold spot, 95% confidence", "#67a9cf"),
    -3: ("冷点（99%置信度）", "Cold spot, 99% confidence", "#2166ac"),
}
#: Short legend labels of the map.
LEGEND: dict[int, tuple[str, str]] = {3: ("热点 99%", "Hot 99%"), 2: ("热点 95%", "Hot 95%"), 1: ("热点 90%", "Hot 90%"),
                                      0: ("不显著", "Not significant"), -1: ("冷点 90%", "Cold 90%"),
                                      -2: ("冷点 95%", "Cold 95%"), -3: ("冷点 99%", "Cold 99%")}
#: Sections of the CSV, in order: key, Chinese title, English title.
SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("info", "简报信息", "Briefing"),
    ("categories", "上周案件（按类别）", "Last week's cases by category"),
    ("indicators", "本周考核指标", "Indicators of the week"),
    ("overdue", "超期案件", "Overdue cases"),
    ("coordination", "待反馈执法协作文书", "Pending coordination requests"),
    ("hotspots", "热点网格", "Hotspot grid cells"),
)
SECTION_KEYS = tuple(key for key, _, _ in SECTIONS)
# Feedback, extension and clock events of the cases that may be overdue at as_of: open (dispatched or
# accepted, no feedback yet) at that moment. Columns as layers.indicators.EVENTS_SQL, for case_facts.
OVERDUE_EVENTS_SQL = text("""
WITH last_event AS (
    SELECT DISTINCT ON (e.case_id) e.case_id, e.to_status
    FROM "case" k JOIN case_event e ON e.case_id = k.id
    WHERE k.county_code = :county AND k.admin_unit_id = :unit AND k.reported_at < :as_of
      AND (k.handled_at IS NULL OR k.handled_at >= :as_of) AND e.at < :as_of
    ORDER BY e.case_id, e.seq DESC
), open_cases AS (
    SELECT l.case_id FROM last_event l
    WHERE l.to_status IN ('dispatched', 'accepted')
      AND NOT EXISTS (SELECT 1 FROM case_event f
                      WHERE f.case_id = l.case_id AND f.action = 'feedback' AND f.at < :as_of)
)
SELECT e.case_id, e.action, e.at,
       CASE e.action WHEN 'report' THEN e.data -> 'route' ->> 'assigned'
                     WHEN 'reroute' THEN e.data -> 'after' ->> 'assigned' END AS assigned_code,
       CASE WHEN e.action = 'dispatch' THEN (e.data ->> 'assigned_agency_id')::bigint END AS assigned_id,
       CASE e.action WHEN 'approve_extension' THEN (e.data ->> 'hours')::float
                     WHEN 'resume' THEN (e.data ->> 'paused_hours')::float END AS hours,
       k.category_id, k.admin_unit_id, k.assigned_agency_id, tl.working_hours
FROM open_cases o
JOIN case_event e ON e.case_id = o.case_id
JOIN "case" k ON k.id = e.case_id
LEFT JOIN time_limit tl ON tl.category_id = k.category_id AND tl.urgency = k.urgency
WHERE e.at < :as_of
  AND e.action IN ('report', 'reroute', 'dispatch', 'feedback', 'rework', 'close', 'approve_extension', 'resume')
ORDER BY e.case_id, e.seq
""")


# -- the briefing as data ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Township:
    """The administrative unit briefed."""

    id: int
    code: str
    name: str
    name_en: str
    level: str
    county_name: str
    geometry: shapely.Geometry


@dataclass(frozen=True)
class CategoryLine:
    """Cases of one category (or the total) in the week, against the week before and a year earlier."""

    code: str | None
    label: str
    label_en: str
    theme: str | None
    count: int
    previous: Change
    year_ago: Change


@dataclass(frozen=True)
class OverdueCase:
    """An open case past its deadline at the end of the week."""

    case_id: int
    case_no: str
    category_code: str
    category: str
    category_en: str
    squad_code: str | None
    squad: str | None
    squad_en: str | None
    status: str
    reported_at: datetime
    dispatched_at: datetime
    deadline: datetime
    overdue_working_days: float
    overrun_multiple: float


@dataclass(frozen=True)
class PendingRequest:
    """A coordination request (or hazard notice) of the township's office awaiting its answer."""

    id: int
    kind: str
    kind_label: str
    subject: str
    to_agency: str
    to_agency_en: str
    sent_at: datetime
    due_at: datetime | None
    overdue: bool
    remaining_working_hours: float | None  # before the deadline; None when past it or unknown
    overdue_working_days: float | None  # past the deadline; None when not yet due or unknown


@dataclass(frozen=True)
class Hotspot:
    """A significant hot grid cell of the township, hottest first."""

    rank: int
    cell_id: int
    cell_code: str
    count: int
    gi_z: float
    gi_p: float  # after the false-discovery-rate correction
    gi_bin: int
    lon: float
    lat: float

    @property
    def bin_label(self) -> str:
        """Return the Chinese label of the confidence bin."""
        return BINS[self.gi_bin][0]

    @property
    def bin_label_en(self) -> str:
        """Return the English label of the confidence bin."""
        return BINS[self.gi_bin][1]


@dataclass(frozen=True)
class Briefing:
    """Everything a township's weekly briefing shows, ready to render."""

    county_code: str
    township: Township
    week: Period
    as_of: datetime
    generated_at: datetime
    categories: list[CategoryLine]
    total: CategoryLine
    indicators: IndicatorRow | None
    overdue: list[OverdueCase]
    requests: list[PendingRequest]
    hotspots: list[Hotspot]
    hotspot_start: datetime
    hotspot_end: datetime
    hotspot_weeks: int
    hotspot_cells: int  # township cells in the analysis
    map_png: bytes | None
    notes: list[str] = field(default_factory=list)

    @property
    def previous_week(self) -> Period:
        """Return the week before."""
        return self.week.previous()

    @property
    def year_ago_week(self) -> Period:
        """Return the same ISO week a year earlier."""
        return self.week.year_ago()

    @property
    def map_data_uri(self) -> str | None:
        """Return the map as a data: URI, or None when there is no map."""
        if self.map_png is None:
            return None
        return "data:image/png;base64," + base64.b64encode(self.map_png).decode("ascii")


# -- building it ---------------------------------------------------------------------------------------
def find_township(session: Session, county_code: str, code: str) -> Township:
    """Return a subdistrict, town or zone of the county by code, or raise naming ``township``."""
    unit, county = aliased(m.AdminUnit), aliased(m.AdminUnit)
    row = session.execute(
        select(unit.id, unit.code, unit.name, unit.name_en, unit.level, county.name, func.ST_AsBinary(unit.geom))
        .outerjoin(county, county.id == unit.parent_id)
        .where(unit.county_code == county_code, unit.code == code)).first()
    if row is None or row.level not in TOWNSHIP_LEVELS:
        what = "is the county itself, not a township" if row is not None else f"is not a township of {county_code}"
        raise ValidationError(FieldError("township", f"{code!r} {what}"))
    return Township(row.id, row.code, row.name, row.name_en, row.level, row[5] or "",
                    shapely.from_wkb(bytes(row[6])))


def build_briefing(session: Session, county_code: str, township: str, week: str | Period, *,
                   metric_crs: str = "EPSG:4548", now: datetime | None = None, calendar: WorkCalendar = CALENDAR,
                   hotspot_weeks: int = DEFAULT_HOTSPOT_WEEKS, top: int = DEFAULT_TOP,
                   draw_map: bool = True, font: str | None | bool = True) -> Briefing:
    """Gather a township's weekly briefing for an ISO week (``YYYY-Www``), as of the end of that week.

    ``font``: True finds a CJK font for the map, a family name uses that one, None draws English only.
    """
    period = week if isinstance(week, Period) else parse_week(week)
    now = now or datetime.now(SHANGHAI)
    if period.start > now:
        raise ValidationError(FieldError("week", f"{period.key} has not begun"))
    if not 1 <= hotspot_weeks <= MAX_HOTSPOT_WEEKS:
        raise ValidationError(FieldError("hotspot_weeks", f"must be between 1 and {MAX_HOTSPOT_WEEKS}"))
    if not 1 <= top <= 50:
        raise ValidationError(FieldError("top", "must be between 1 and 50"))
    unit = find_township(session, county_code, township)
    as_of = min(period.end, now)
    notes: list[str] = []
    categories, total = _categories(session, county_code, unit, period, as_of)
    indicators = _indicators(session, county_code, unit, period, as_of, calendar, notes)
    overdue = _overdue(session, county_code, unit, as_of, calendar, notes)
    requests = _requests(session, unit, as_of, calendar, notes)
    hot_start = period.start - timedelta(weeks=hotspot_weeks - 1)
    hotspots, cells = _hotspots(session, county_code, unit, hot_start, as_of, top, metric_crs)
    png = None
    if draw_map:
        family = find_cjk_font() if font is True else (font or None)
        png = render_map(unit, cells, hotspots, metric_crs=metric_crs, font=family,
                         title=f"{unit.name} {period.label}" if family else None,
                         title_en=f"{unit.name_en}, {period.label_en}")
    return Briefing(county_code=county_code, township=unit, week=period, as_of=as_of, generated_at=now,
                    categories=categories, total=total, indicators=indicators, overdue=overdue, requests=requests,
                    hotspots=hotspots, hotspot_start=hot_start, hotspot_end=as_of, hotspot_weeks=hotspot_weeks,
                    hotspot_cells=len(cells), map_png=png, notes=notes)


def _categories(session: Session, county: str, unit: Township, week: Period,
                as_of: datetime) -> tuple[list[CategoryLine], CategoryLine]:
    """Count the week's cases by category against the week before and the same week a year earlier."""
    def counts(p: Period, end: datetime) -> tuple[int, dict[str, tuple[Any, ...]]]:
        result = count_cases(session, county, start=p.start, end=end, group_by="category", township=unit.code)
        return result.total.count, {r.groups[0].key: (r.count, r.groups[0].label, r.groups[0].label_en)
                                    for r in result.rows}

    # An unfinished week is set against the same span of the other weeks, so the comparison is fair.
    span = as_of - week.start
    prev, ago = week.previous(), week.year_ago()
    now_total, now_rows = counts(week, as_of)
    prev_total, prev_rows = counts(prev, prev.start + span)
    ago_total, ago_rows = counts(ago, ago.start + span)
    themes = dict(session.execute(select(m.Category.code, m.Category.theme)
                                  .where(m.Category.county_code == county)).all())
    lines = []
    for code in set(now_rows) | set(prev_rows) | set(ago_rows):
        _, label, label_en = now_rows.get(code) or prev_rows.get(code) or ago_rows[code]
        n = now_rows.get(code, (0,))[0]
        before, year_before = prev_rows.get(code, (0,))[0], ago_rows.get(code, (0,))[0]
        lines.append(CategoryLine(code, label, label_en, themes.get(code), n, compare(n, before),
                                  compare(n, year_before)))
    lines.sort(key=lambda line: (-line.count, -line.previous.base, line.code or ""))
    total = CategoryLine(None, "合计", "Total", None, now_total, compare(now_total, prev_total),
                         compare(now_total, ago_total))
    return lines, total


def _indicators(session: Session, county: str, unit: Township, week: Period, as_of: datetime,
                calendar: WorkCalendar, notes: list[str]) -> IndicatorRow | None:
    try:
        rows = compute_indicators(session, county, start=week.start, end=week.end, group_by="township",
                                  as_of=as_of, calendar=calendar)
    except UnknownCalendarYear as exc:
        notes.append(f"考核指标未能计算 / indicators not computed: {exc.detail}")
        return None
    return next((r for r in rows if r.key == unit.code), None)


def _overdue(session: Session, county: str, unit: Township, as_of: datetime, calendar: WorkCalendar,
             notes: list[str]) -> list[OverdueCase]:
    """List the township's cases open and past their deadline at as_of, most overdue first."""
    rows = session.execute(OVERDUE_EVENTS_SQL, {"county": county, "unit": unit.id, "as_of": as_of}).all()
    if not rows:
        return []
    agencies = session.execute(select(m.Agency.id, m.Agency.code, m.Agency.name, m.Agency.name_en)
                               .where(m.Agency.county_code == county)).all()
    by_id = {a.id: a for a in agencies}
    # Allowed hours: the category's limit plus approved extensions and paused hours, as the indicators count them.
    allowed_hours: dict[int, float] = defaultdict(float)
    for r in rows:
        if r.case_id not in allowed_hours and r.working_hours is not None:
            allowed_hours[r.case_id] += float(r.working_hours)
        if r.hours:
            allowed_hours[r.case_id] += float(r.hours)
    try:
        facts = case_facts(rows, as_of=as_of, agency_ids={a.code: a.id for a in agencies}, calendar=calendar)
        late = []
        for f in facts:
            # No overrun: on time at as_of, or never judged (no dispatch, or a category without a limit).
            if f.overrun is None or f.clock_at is None:
                continue
            allowed = allowed_hours[f.case_id]
            past = calendar.working_hours_between(f.clock_at, as_of) - allowed
            late.append((f, calendar.add_working_hours(f.clock_at, allowed), past / calendar.hours_per_day))
    except UnknownCalendarYear as exc:
        notes.append(f"超期案件未能判定 / overdue cases not judged: {exc.detail}")
        return []
    if not late:
        return []
    cases = {c.id: c for c in session.scalars(select(m.Case).where(m.Case.id.in_([f.case_id for f, _, _ in late])))}
    cats = {c.id: c for c in session.scalars(select(m.Category).where(m.Category.county_code == county))}
    statuses = dict(session.execute(text("""
        SELECT DISTINCT ON (case_id) case_id, to_status FROM case_event
        WHERE case_id = ANY(:ids) AND at < :as_of ORDER BY case_id, seq DESC"""),
        {"ids": [f.case_id for f, _, _ in late], "as_of": as_of}).all())
    out = []
    for f, deadline, days in late:
        case, cat, squad = cases[f.case_id], cats[f.category_id], by_id.get(f.squad_id)
        out.append(OverdueCase(
            case_id=case.id, case_no=case.case_no, category_code=cat.code, category=cat.name, category_en=cat.name_en,
            squad_code=squad.code if squad else None, squad=squad.name if squad else None,
            squad_en=squad.name_en if squad else None, status=statuses.get(case.id, case.status),
            reported_at=case.reported_at, dispatched_at=f.clock_at, deadline=deadline,
            overdue_working_days=round(days, 1), overrun_multiple=float(f.overrun or 0.0)))
    out.sort(key=lambda c: (-c.overdue_working_days, c.case_no))
    return out


def _requests(session: Session, unit: Township, as_of: datetime, calendar: WorkCalendar,
              notes: list[str]) -> list[PendingRequest]:
    """List the requests the township's office had sent and not had answered at as_of, oldest deadline first."""
    r, office, to = m.CoordinationRequest, aliased(m.Agency), aliased(m.Agency)
    rows = session.execute(
        select(r, to.name, to.name_en).join(office, office.id == r.from_agency_id).join(to, to.id == r.to_agency_id)
        .where(office.kind == "township_office", office.admin_unit_id == unit.id, r.sent_at < as_of,
               (r.answered_at.is_(None)) | (r.answered_at >= as_of))
        .order_by(r.due_at.asc().nulls_last(), r.sent_at, r.id)).all()
    out = []
    unknown = False
    for item, to_name, to_name_en in rows:
        remaining = late_days = None
        overdue = item.due_at is not None and as_of > item.due_at
        if item.due_at is not None:
            try:
                hours = calendar.working_hours_between(as_of, item.due_at)
            except UnknownCalendarYear:
                unknown = True
            else:
                if overdue:
                    late_days = round(-hours / calendar.hours_per_day, 1)
                else:
                    remaining = round(hours, 1)
        out.append(PendingRequest(
            id=item.id, kind=item.kind, kind_label=vocab.COORDINATION_KIND_LABELS[item.kind], subject=item.subject,
            to_agency=to_name, to_agency_en=to_name_en, sent_at=item.sent_at, due_at=item.due_at, overdue=overdue,
            remaining_working_hours=remaining, overdue_working_days=late_days))
    if unknown:
        notes.append("部分协作文书的剩余工作时间未知：该年度官方工作日历未配置 / remaining working time unknown "
                     "for some requests: that year's official calendar is not configured (GIS_CALENDAR_FILE)")
    return out


@dataclass(frozen=True)
class _Cell:
    geometry: shapely.Geometry
    gi_bin: int


def _hotspots(session: Session, county: str, unit: Township, start: datetime, end: datetime, top: int,
              metric_crs: str) -> tuple[list[Hotspot], list[_Cell]]:
    """Run Gi* on the township's grid cells over [start, end): its top hot cells, and every cell for the map."""
    from layers.analytics.hotspots import compute_hotspots

    result = compute_hotspots(session, county, start=start, end=end, cell="grid", unit=unit.code, moran=False,
                              metric_crs=metric_crs, at=end, permutations=HOTSPOT_PERMUTATIONS)
    cells = [_Cell(g, int(b)) for g, b in zip(result.cells.geometry, result.cells["gi_bin"])]
    spots = []
    for rank, row in enumerate(result.top(top).itertuples(), 1):
        centre = shapely.point_on_surface(row.geometry)
        spots.append(Hotspot(rank=rank, cell_id=int(row.cell_id), cell_code=str(row.cell_code), count=int(row.count),
                             gi_z=float(row.gi_z), gi_p=float(row.gi_p_fdr), gi_bin=int(row.gi_bin),
                             lon=round(centre.x, 6), lat=round(centre.y, 6)))
    return spots, cells


# -- the map ---------------------------------------------------------------------------------------------
def find_cjk_font() -> str | None:
    """Return the family name of an installed font that can draw Chinese, or None."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in installed), None)


def render_map(unit: Township, cells: Sequence[_Cell], hotspots: Sequence[Hotspot], *, metric_crs: str,
               font: str | None, title: str | None = None, title_en: str = "") -> bytes:
    """Draw the township outline, its grid cells coloured by Gi* bin and the numbered top hotspots, as a PNG.

    With ``font`` None no Chinese is drawn (labels are English), so a machine without a CJK font still
    gets a readable map instead of empty boxes.
    """
    import geopandas as gpd
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    outline = gpd.GeoSeries([unit.geometry], crs="EPSG:4326").to_crs(metric_crs)
    minx, miny, maxx, maxy = outline.total_bounds
    # The figure takes the township's shape, within limits, plus room for the title and the legend.
    height = min(max(6.4 * (maxy - miny) / max(maxx - minx, 1.0), 3.0), 8.0) + 1.2
    fig = Figure(figsize=(7.0, height), dpi=150, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_aspect("equal")
    outline.plot(ax=ax, facecolor=BINS[0][2], edgecolor="none")
    if cells:
        # Cells are clipped to the outline; the grid is drawn as lines and only significant cells as
        # patches, which keeps a town of thousands of cells quick to draw.
        clipped = shapely.intersection(np.array([c.geometry for c in cells], dtype=object), unit.geometry)
        frame = gpd.GeoDataFrame({"gi_bin": [c.gi_bin for c in cells]}, geometry=list(clipped),
                                 crs="EPSG:4326").to_crs(metric_crs)
        frame.boundary.plot(ax=ax, color="#c8c8c8", linewidth=0.2)
        significant = frame[frame["gi_bin"] != 0]
        if len(significant):
            significant.plot(ax=ax, color=[BINS[b][2] for b in significant["gi_bin"]], edgecolor="#9e9e9e",
                             linewidth=0.2)
    outline.plot(ax=ax, facecolor="none", edgecolor="#222222", linewidth=1.2)
    if hotspots:
        points = gpd.GeoSeries(gpd.points_from_xy([h.lon for h in hotspots], [h.lat for h in hotspots]),
                               crs="EPSG:4326").to_crs(metric_crs)
        for h, p in zip(hotspots, points):
            ax.annotate(str(h.rank), (p.x, p.y), ha="center", va="center", fontsize=6, color="white",
                        fontweight="bold", bbox={"boxstyle": "circle,pad=0.15", "fc": "#222222", "ec": "white",
                                                 "lw": 0.5})
    _scale_bar(ax, minx, miny, maxx, maxy)
    shown = sorted({c.gi_bin for c in cells} | {0}, reverse=True)
    handles = [Patch(facecolor=BINS[b][2], edgecolor="#999999",
                     label=(f"{LEGEND[b][0]} {LEGEND[b][1]}" if font else LEGEND[b][1])) for b in shown]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(4, len(handles)), fontsize=7, frameon=False,
               prop={"family": font, "size": 7} if font else {"size": 7})
    heading = f"{title}\n{title_en}" if (title and font) else title_en
    fig.suptitle(heading, fontsize=9, **({"fontfamily": font} if font else {}))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _scale_bar(ax: Any, minx: float, miny: float, maxx: float, maxy: float) -> None:
    """Draw a scale bar of a round length at the lower left, in metres of the projected map."""
    target = (maxx - minx) / 5
    length = max(n for n in (100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000) if n <= max(target, 100))
    x0, y0 = minx, miny - (maxy - miny) * 0.04
    ax.plot([x0, x0 + length], [y0, y0], color="#222222", linewidth=2, solid_capstyle="butt")
    ax.text(x0 + length / 2, y0 - (maxy - miny) * 0.01, f"{length / 1000:g} km" if length >= 1000 else f"{length} m",
            ha="center", va="top", fontsize=7)


# -- rendering -------------------------------------------------------------------------------------------
def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(signed=_signed, pct=_pct, local=_local, number=_number, rate=_rate)
    return env


def _signed(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:+g}" if value else "0"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:+.1f}%"


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _number(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _local(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return "—" if value is None else value.astimezone(SHANGHAI).strftime(fmt)


def render_html(briefing: Briefing, *, nonce: str | None = None) -> str:
    """Render the briefing as one self-contained, printable HTML page (A4; Chinese first, English second).

    The page has no script and no style attribute; give ``nonce`` to mark its one style sheet for a
    Content-Security-Policy that allows only that.
    """
    labels = [(key, INDICATOR_LABELS[key], INDICATOR_LABELS_EN[key]) for key in INDICATOR_LABELS]
    return _environment().get_template("briefing.html").render(
        b=briefing, indicator_labels=labels, statuses=vocab.CASE_STATUS_LABELS, nonce=nonce,
        permutations=f"{HOTSPOT_PERMUTATIONS:,}")


def _table(briefing: Briefing, key: str) -> tuple[list[str], list[list[Any]]]:
    """Return the header and rows of one section."""
    b = briefing
    if key == "info":
        return ["项目 / Item", "内容 / Value"], [
            ["县 / County", f"{b.township.county_name} ({b.county_code})"],
            ["乡镇（街道）/ Township", f"{b.township.name} {b.township.name_en} ({b.township.code})"],
            ["周 / Week", f"{b.week.key} {b.week.label} {b.week.span_label}"],
            ["上周 / Previous week", f"{b.previous_week.key} {b.previous_week.span_label}"],
            ["去年同周 / Same week last year", f"{b.year_ago_week.key} {b.year_ago_week.span_label}"],
            ["数据截至 / Data as of", _local(b.as_of)],
            ["生成时间 / Generated", _local(b.generated_at)],
            ["热点分析时段 / Hotspot window", f"{_local(b.hotspot_start, '%Y-%m-%d')} – "
                                             f"{_local(b.hotspot_end - timedelta(microseconds=1), '%Y-%m-%d')}"],
            *[["说明 / Note", note] for note in b.notes],
        ]
    if key == "categories":
        head = ["类别代码 / Code", "类别 / Category", "Category (English)", "本周 / This week",
                "上周 / Previous week", "环比增减 / Change", "环比 % / Change %", "去年同周 / Year ago",
                "同比增减 / YoY change", "同比 % / YoY %"]
        rows = [[c.code or "", c.label, c.label_en, c.count, c.previous.base, c.previous.change, c.previous.change_pct,
                 c.year_ago.base, c.year_ago.change, c.year_ago.change_pct] for c in [*b.categories, b.total]]
        return head, rows
    if key == "indicators":
        head = ["指标 / Indicator", "Indicator (English)", "数值 / Value"]
        row = b.indicators
        return head, [[zh, INDICATOR_LABELS_EN[k], None if row is None else getattr(row, k)]
                      for k, zh in INDICATOR_LABELS.items()]
    if key == "overdue":
        head = ["案卷号 / Case no.", "类别 / Category", "Category (English)", "中队 / Squad", "Squad (English)",
                "状态 / Status", "派遣时间 / Dispatched", "处置时限 / Deadline", "超期工作日 / Working days overdue",
                "超时倍数 / Overrun multiple"]
        return head, [[c.case_no, c.category, c.category_en, c.squad or "", c.squad_en or "",
                       vocab.CASE_STATUS_LABELS.get(c.status, c.status), _local(c.dispatched_at), _local(c.deadline),
                       c.overdue_working_days, c.overrun_multiple] for c in b.overdue]
    if key == "coordination":
        head = ["编号 / No.", "类型 / Kind", "事由 / Subject", "收文部门 / To", "To (English)", "发送时间 / Sent",
                "反馈时限 / Deadline", "剩余工作小时 / Working hours left", "超期工作日 / Working days overdue"]
        return head, [[r.id, r.kind_label, r.subject, r.to_agency, r.to_agency_en, _local(r.sent_at),
                       _local(r.due_at), r.remaining_working_hours, r.overdue_working_days] for r in b.requests]
    if key == "hotspots":
        head = ["名次 / Rank", "网格编码 / Grid cell code", "案件数 / Cases", "Gi* z", "p (FDR)",
                "置信度 / Confidence", "Confidence (English)", "经度 / Longitude", "纬度 / Latitude"]
        return head, [[h.rank, h.cell_code, h.count, round(h.gi_z, 3), round(h.gi_p, 4), h.bin_label,
                       h.bin_label_en, h.lon, h.lat] for h in b.hotspots]
    raise ValidationError(FieldError("section", f"must be one of {', '.join(SECTION_KEYS)}"))


def _cell(value: Any) -> Any:
    """Return a CSV cell; text a spreadsheet would run as a formula gets a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def render_csv(briefing: Briefing, section: str | None = None) -> bytes:
    """Render the briefing as CSV in UTF-8 with a byte-order mark: every section, or one section alone."""
    if section is not None and section not in SECTION_KEYS:
        raise ValidationError(FieldError("section", f"must be one of {', '.join(SECTION_KEYS)}"))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for key, zh, en in SECTIONS:
        if section is not None and key != section:
            continue
        head, rows = _table(briefing, key)
        if section is None:
            writer.writerow([f"## {zh} / {en}"])
        writer.writerow(head)
        writer.writerows([[_cell(v) for v in row] for row in rows])
        if section is None:
            writer.writerow([])
    return buffer.getvalue().encode("utf-8-sig")


def file_stem(briefing: Briefing) -> str:
    """Return the file name of a briefing without its suffix: briefing-<township>-<week>."""
    return f"briefing-{briefing.township.code}-{briefing.week.key}"


def write_briefing(briefing: Briefing, out_dir: Path) -> list[Path]:
    """Write the briefing's HTML page and CSV into a folder; return the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    html = out_dir / f"{file_stem(briefing)}.html"
    table = out_dir / f"{file_stem(briefing)}.csv"
    html.write_text(render_html(briefing), encoding="utf-8")
    table.write_bytes(render_csv(briefing))
    return [html, table]


# -- command line ----------------------------------------------------------------------------------------
def _week_option(ctx: click.Context, param: click.Parameter, value: str) -> Period:
    try:
        return parse_week(value)
    except ValidationError as exc:
        raise click.BadParameter(exc.errors[0].problem) from None


@click.command("briefing")
@click.option("--township", required=True, metavar="CODE", help="Township (subdistrict, town or zone) code, "
                                                                 "e.g. 371521001.")
@click.option("--week", required=True, metavar="YYYY-Www", callback=_week_option,
              help="ISO week, e.g. 2021-W20 (Monday to Sunday, Asia/Shanghai).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Folder to write the HTML page and the CSV into.")
@click.option("--hotspot-weeks", type=click.IntRange(1, MAX_HOTSPOT_WEEKS), default=DEFAULT_HOTSPOT_WEEKS,
              show_default=True, help="Weeks of cases, up to the end of the week, for the hotspot analysis.")
def briefing_command(township: str, week: Period, out_dir: Path, hotspot_weeks: int) -> None:
    """Write a township's weekly meeting briefing (周例会简报) as printable HTML and CSV.

    The CSV is UTF-8 with a byte-order mark; each table is a section headed '## 中文 / English'.
    """
    from gis_platform.cli import echo_progress, load_settings
    from gis_platform.db import make_engine, resolve_database_url
    from gis_platform.workcalendar import calendar_from_settings

    settings = load_settings()
    url, _ = resolve_database_url(settings, progress=echo_progress)
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            try:
                result = build_briefing(session, settings.county_code, township, week,
                                        metric_crs=settings.metric_crs, calendar=calendar_from_settings(settings),
                                        hotspot_weeks=hotspot_weeks)
            except ValidationError as exc:
                hint = {"township": "--township", "week": "--week"}.get(exc.errors[0].field if exc.errors else "")
                if hint is None:
                    raise
                raise click.BadParameter(exc.errors[0].problem, param_hint=hint) from None
    finally:
        engine.dispose()
    for path in write_briefing(result, out_dir):
        click.echo(str(path))
