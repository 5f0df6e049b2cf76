"""The planners' page (``/planning``): where cases concentrate, month by month, and how units perform.

The page shows, for a window of months and optionally one category:

- a **heat map** of cases, fed by ``GET /planning/data/heat``: cases are summed in PostGIS into buckets
  of a few tens of metres and sent as weighted points. The answer never holds more than
  ``MAX_HEAT_POINTS`` points, however many cases match: when a resolution gives more buckets the next,
  twice as coarse, is tried (``HEAT_STEPS_DEG``);
- **counts per unit grid cell** (a choropleth with quantile classes), ``GET /planning/data/cells``,
  and the same counts as CSV (UTF-8 with a BOM so that Excel reads the Chinese; Chinese headers first),
  ``GET /planning/data/cells.csv``. A case counts in the cell it was routed to (``case.grid_cell_id``),
  the cell of that time even if the grid has been regenerated since;
- the **hot spot and emerging hot spot layers** of the analytics API (``/api/v1/analytics/…``) and
  the **weekly briefing**, when the app serves them (the page says so when it does not);
- **indicator charts** per squad and per township from ``GET /api/v1/indicators``.

Months are calendar months in Asia/Shanghai; a window is ``start``..``end`` inclusive (``YYYY-MM``).
Cancelled and merged reports are not cases (``layers.statistics.NOT_CASES``). The slider spans the months between
the county's first and last case, at most the last ``MAX_MONTHS``.

The map's Leaflet behaviour is in ``static/planning.js`` (loaded by the page after the map's own
scripts); the Folium elements here render one call into it each, with their options as JSON.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import folium
import numpy as np
from flask import Blueprint, Response, current_app, request
from folium.elements import JSCSSMixin
from folium.map import Layer as FoliumLayer
from folium.template import Template
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.auth import require
from api.deps import get_session, get_settings
from api.errors import handle_platform_error, problem_response
from gis_platform import models as m
from gis_platform.errors import FieldError, PlatformError, Problem, ValidationError
from gis_platform.settings import Settings
from gis_platform.workcalendar import SHANGHAI
from layers.statistics import NOT_CASES
from webmap.command import Option, agency_options, category_options, county_extent
from webmap.maps import GISMAP_CSS, GISMAP_JS, Basemap, basemap_from, bilingual, county_map, localise, resource_url

ROLES = ("planner", "supervisor", "operator", "admin")
MAX_MONTHS = 24  # the indicators API accepts two years at most
MAX_HEAT_POINTS = 5000
# Bucket sizes of the heat map in degrees, finest first (0.0005° is about 45 m east-west and 55 m
# north-south at the county's latitude); the finest that gives at most MAX_HEAT_POINTS buckets is used.
HEAT_STEPS_DEG = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128)
# Colours of the count classes, light to dark: ColorBrewer's Purples (6 classes, the palest left out so that
# one case still shows on a plain background), apart from the heat map's yellows and reds.
COUNT_COLOURS = ("#dadaeb", "#bcbddc", "#9e9ac8", "#756bb1", "#54278f")
PANES = {"cells": 415, "analytics": 418, "heat": 445}
MONTH_RE = re.compile(r"^([0-9]{4})-([0-9]{2})$")
FILTER_PARAMS = ("start", "end", "category")
CSV_HEADERS = ("网格编码 Grid code", "街道/乡镇 Township", "中队 Squad", "案件数 Cases")
CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

bp = Blueprint("planning", __name__, url_prefix="/planning/data")


# -- months -------------------------------------------------------------------------------------------------
@dataclass(frozen=True, order=True)
class Month:
    """A calendar month in Asia/Shanghai."""

    year: int
    month: int

    @classmethod
    def parse(cls, field: str, value: str) -> Month:
        """Return the month of ``YYYY-MM`` text, or raise a 400 naming the field."""
        match = MONTH_RE.match(value.strip())
        if not match or not 1 <= int(match.group(2)) <= 12:
            raise ValidationError(FieldError(field, f"{value[:20]!r} is not a month: give YYYY-MM, e.g. 2021-03"))
        if not 1900 <= int(match.group(1)) <= 9998:  # the window's end must stay a date Python can hold
            raise ValidationError(FieldError(field, f"{value[:20]!r}: the year must lie in 1900…9998"))
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of(cls, moment: datetime) -> Month:
        """Return the month a moment falls in, in Asia/Shanghai."""
        local = moment.astimezone(SHANGHAI)
        return cls(local.year, local.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def plus(self, months: int) -> Month:
        """Return the month so many months later (earlier when negative)."""
        index = self.year * 12 + self.month - 1 + months
        return Month(index // 12, index % 12 + 1)

    def minus(self, other: Month) -> int:
        """Return how many months this one is after another."""
        return (self.year - other.year) * 12 + self.month - other.month

    @property
    def start(self) -> datetime:
        """Return the first moment of the month, Asia/Shanghai."""
        return datetime(self.year, self.month, 1, tzinfo=SHANGHAI)


def case_months(session: Session, county_code: str, limit: int = MAX_MONTHS) -> list[str]:
    """Return the months from the county's first case to its last (at most the last ``limit``), as YYYY-MM.

    With no case yet, the current month alone, so the page always has a window.
    """
    c = m.Case
    first, last = session.execute(select(func.min(c.reported_at), func.max(c.reported_at)).where(
        c.county_code == county_code, c.status.not_in(NOT_CASES))).one()
    if first is None:
        return [str(Month.of(datetime.now(SHANGHAI)))]
    end = Month.of(last)
    begin = max(Month.of(first), end.plus(1 - limit))
    return [str(begin.plus(i)) for i in range(end.minus(begin) + 1)]


# -- the filter --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CaseFilter:
    """Cases of one county reported in a window of months, optionally of one category."""

    county_code: str
    first: Month
    last: Month
    category: str | None = None
    category_id: int | None = None

    @property
    def start(self) -> datetime:
        """Return the window's first moment."""
        return self.first.start

    @property
    def end(self) -> datetime:
        """Return the moment after the window (exclusive)."""
        return self.last.plus(1).start

    def conditions(self) -> list[Any]:
        """Return the SQL conditions selecting the filter's cases."""
        c = m.Case
        where = [c.county_code == self.county_code, c.reported_at >= self.start, c.reported_at < self.end,
                 c.status.not_in(NOT_CASES)]
        if self.category_id is not None:
            where.append(c.category_id == self.category_id)
        return where

    def describe(self) -> dict[str, Any]:
        """Return the filter as the data endpoints echo it."""
        return {"start": str(self.first), "end": str(self.last), "category": self.category,
                "period": [self.start.isoformat(), self.end.isoformat()]}


def parse_filter(session: Session, county_code: str, args: Mapping[str, str]) -> CaseFilter:
    """Return the filter of a query string, refusing unknown names, bad months, long windows, unknown categories.

    ``start`` and ``end`` default to the slider's whole span (``case_months``).
    """
    unknown = [name[:40] for name in args if name not in FILTER_PARAMS]
    if unknown:
        raise ValidationError([FieldError(name, f"unknown parameter; accepted: {', '.join(FILTER_PARAMS)}")
                               for name in unknown])
    errors: list[FieldError] = []
    span = case_months(session, county_code) if not (args.get("start") and args.get("end")) else []
    months: dict[str, Month] = {}
    for name, default in (("start", 0), ("end", -1)):
        try:
            months[name] = Month.parse(name, args.get(name) or span[default])
        except ValidationError as exc:
            errors.extend(exc.errors)
    first, last = months.get("start"), months.get("end")
    if first and last and last < first:
        errors.append(FieldError("end", f"{last} is before start {first}"))
    elif first and last and last.minus(first) >= MAX_MONTHS:
        errors.append(FieldError("end", f"the window may span at most {MAX_MONTHS} months"))
    category = (args.get("category") or "").strip() or None
    category_id = None
    if category is not None:
        category_id = session.scalar(select(m.Category.id).where(m.Category.county_code == county_code,
                                                                 m.Category.code == category[:32]))
        if category_id is None:
            errors.append(FieldError("category", f"no category {category[:32]!r} in this county"))
    if errors or first is None or last is None:
        raise ValidationError(errors)
    return CaseFilter(county_code, first, last, category, category_id)


# -- the heat map ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Heat:
    """Cases summed into buckets: ``[lat, lon, count]`` at each bucket's mean position."""

    points: list[list[float]]
    step_deg: float
    cases: int


def heat_points(session: Session, case_filter: CaseFilter, *, cap: int = MAX_HEAT_POINTS,
                steps: Iterable[float] = HEAT_STEPS_DEG) -> Heat:
    """Sum the filter's cases into the finest buckets that number at most ``cap``."""
    c = m.Case
    x, y = func.ST_X(c.location), func.ST_Y(c.location)
    rows: list[Any] = []
    step = 0.0
    for step in steps:
        # LIMIT cap + 1: one bucket too many is enough to know this resolution is too fine.
        rows = session.execute(
            select(func.avg(y), func.avg(x), func.count()).where(*case_filter.conditions())
            .group_by(func.floor(x / step), func.floor(y / step)).limit(cap + 1)).all()
        if len(rows) <= cap:
            break
    else:
        rows = sorted(rows, key=lambda r: -r[2])[:cap]  # only a continent-wide county could get here
    points = [[round(float(lat), 5), round(float(lon), 5), int(n)] for lat, lon, n in rows]
    return Heat(points=points, step_deg=step, cases=sum(p[2] for p in points))


# -- counts per grid cell ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CellCount:
    """The cases of one unit grid cell."""

    id: int
    code: str
    township: str | None
    township_en: str | None
    squad: str | None
    squad_en: str | None
    count: int
    geometry: str  # GeoJSON text


@dataclass(frozen=True)
class CellCounts:
    """Counts per grid cell of a filter, the filter's total, and the cases outside every cell."""

    cells: list[CellCount]
    total: int
    outside: int


def cell_counts(session: Session, case_filter: CaseFilter) -> CellCounts:
    """Count the filter's cases per grid cell (the cell each was routed to), most first, then by code."""
    c, g, unit, squad = m.Case, m.GridCell, m.AdminUnit, m.Agency
    counts = (select(c.grid_cell_id.label("cell_id"), func.count().label("n"))
              .where(*case_filter.conditions(), c.grid_cell_id.is_not(None))
              .group_by(c.grid_cell_id).subquery())
    rows = session.execute(
        select(g.id, g.code, unit.name, unit.name_en, squad.name, squad.name_en, counts.c.n,
               func.ST_AsGeoJSON(g.geom, 5))
        .join(counts, counts.c.cell_id == g.id)
        .outerjoin(unit, unit.id == g.admin_unit_id).outerjoin(squad, squad.id == g.squad_id)
        .order_by(counts.c.n.desc(), g.code, g.id)).all()
    total = session.scalar(select(func.count()).select_from(c).where(*case_filter.conditions())) or 0
    cells = [CellCount(*row[:6], count=int(row[6]), geometry=row[7]) for row in rows]
    return CellCounts(cells=cells, total=int(total), outside=int(total) - sum(cell.count for cell in cells))


def count_classes(counts: list[int], colours: tuple[str, ...] = COUNT_COLOURS) -> list[dict[str, Any]]:
    """Return quantile classes of positive counts: ``{min, max, color}`` each, as few as the values allow."""
    values = np.asarray([n for n in counts if n > 0], dtype=float)
    if values.size == 0:
        return []
    k = len(colours)
    uppers = sorted({int(np.ceil(q)) for q in np.quantile(values, [i / k for i in range(1, k + 1)])})
    classes, low = [], 1
    for upper in uppers:
        if upper >= low:
            classes.append({"min": low, "max": upper})
            low = upper + 1
    # Spread the colours over the classes there are, keeping the darkest for the highest.
    picks = np.linspace(0, k - 1, len(classes)).round().astype(int) if len(classes) > 1 else [k - 1]
    for entry, pick in zip(classes, picks):
        entry["color"] = colours[int(pick)]
    return classes


def class_of(count: int, classes: list[dict[str, Any]]) -> int | None:
    """Return the index of the class a count falls in (None for no case)."""
    for index, entry in enumerate(classes):
        if entry["min"] <= count <= entry["max"]:
            return index
    return None


def cells_geojson(counts: CellCounts, case_filter: CaseFilter) -> dict[str, Any]:
    """Return counts per cell as a GeoJSON FeatureCollection with the classes and totals as foreign members."""
    classes = count_classes([cell.count for cell in counts.cells])
    features = [{"type": "Feature", "id": cell.id, "geometry": json.loads(cell.geometry), "properties": {
        "code": cell.code, "township": cell.township, "township_en": cell.township_en, "squad": cell.squad,
        "squad_en": cell.squad_en, "count": cell.count, "class": class_of(cell.count, classes)}}
        for cell in counts.cells]
    return {"type": "FeatureCollection", "features": features, **case_filter.describe(), "total": counts.total,
            "in_cells": counts.total - counts.outside, "outside": counts.outside, "classes": classes}


def _cell_text(value: Any) -> str:
    """Return a CSV cell that a spreadsheet shows as text, never runs as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(CSV_FORMULA_START) else text


def cells_csv(counts: CellCounts) -> str:
    """Return counts per cell as CSV text with a BOM: bilingual headers (Chinese first), one row per cell."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADERS)
    for cell in counts.cells:
        writer.writerow([_cell_text(cell.code), _cell_text(cell.township), _cell_text(cell.squad), cell.count])
    return out.getvalue()


def csv_filename(case_filter: CaseFilter) -> str:
    """Return the download's file name (ASCII: the category code is letters and digits only)."""
    category = re.sub(r"[^A-Za-z0-9_-]", "", case_filter.category or "") or "all"
    return f"grid-counts_{case_filter.first}_{case_filter.last}_{category}.csv"


# -- data endpoints ----------------------------------------------------------------------------------------
@bp.errorhandler(PlatformError)
def _problem(error: PlatformError) -> Response:
    """Answer the data endpoints' errors as problem+json, as the API does (the page reads the detail)."""
    if error.status >= 500:
        return handle_platform_error(error)
    headers = {"WWW-Authenticate": 'Bearer realm="gis-platform"'} if error.status == 401 else None
    return problem_response(Problem.from_error(error), headers)


def _request_filter() -> CaseFilter:
    return parse_filter(get_session(), get_settings().county_code, request.args)


@bp.get("/heat")
@require(*ROLES)
def heat() -> dict[str, Any]:
    """Return the heat map's weighted points for a window of months and a category."""
    case_filter = _request_filter()
    result = heat_points(get_session(), case_filter)
    return {**case_filter.describe(), "cases": result.cases, "step_deg": result.step_deg,
            "max": max((p[2] for p in result.points), default=0), "points": result.points}


@bp.get("/cells")
@require(*ROLES)
def cells() -> dict[str, Any]:
    """Return the cases per unit grid cell for a window of months and a category, as GeoJSON."""
    case_filter = _request_filter()
    return cells_geojson(cell_counts(get_session(), case_filter), case_filter)


@bp.get("/cells.csv")
@require(*ROLES)
def cells_csv_download() -> Response:
    """Return the cases per unit grid cell as CSV (UTF-8 with BOM, Chinese headers first)."""
    case_filter = _request_filter()
    body = cells_csv(cell_counts(get_session(), case_filter))
    return Response(body.encode("utf-8"), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{csv_filename(case_filter)}"',
        "Cache-Control": "no-store"})


# -- map elements ------------------------------------------------------------------------------------------
class _PlanningLayer(JSCSSMixin, FoliumLayer):
    """A layer of the planning map in the layer control, labelled in both languages."""

    default_js = GISMAP_JS
    default_css = GISMAP_CSS

    _template = Template("""
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = GisPlanning.{{ this.factory }}({{ this.options|tojson }});
            GisMap.register({{ this.key|tojson }}, {{ this.get_name() }}, {{ this._parent.get_name() }});
        {% endmacro %}
    """)

    factory = ""

    def __init__(self, key: str, title_zh: str, title_en: str, options: dict[str, Any], *,
                 show: bool = True) -> None:
        super().__init__(name=bilingual(title_zh, title_en), overlay=True, control=True, show=show)
        self.key = key
        self.options = {"key": key, "title": {"zh": title_zh, "en": title_en}, **options}
        localise(self)


class HeatLayer(_PlanningLayer):
    """The cases' heat map (Leaflet.heat, the platform's copy), reloaded when the filter changes."""

    default_js = [("leaflet-heat.js", resource_url("leaflet-heat.js")), *GISMAP_JS]
    factory = "heatLayer"

    def __init__(self, *, show: bool = True) -> None:
        super().__init__("heat", "案件热力图", "Case heat map", {
            "url": "/planning/data/heat", "pane": "heat", "paneZ": PANES["heat"],
            # Leaflet.heat's own options: radius and blur in pixels, the gradient from few to many.
            "radius": 18, "blur": 16, "minOpacity": 0.05,
            "gradient": {"0.2": "#ffffb2", "0.4": "#fecc5c", "0.6": "#fd8d3c", "0.8": "#f03b20", "1.0": "#bd0026"},
        }, show=show)


class CellCountsLayer(_PlanningLayer):
    """Cases per unit grid cell, a choropleth in quantile classes."""

    factory = "cellCountsLayer"

    def __init__(self, *, show: bool = True) -> None:
        super().__init__("cells", "网格案件数", "Cases per grid cell", {
            "url": "/planning/data/cells", "pane": "cells", "paneZ": PANES["cells"],
            "fields": [{"property": p, "zh": zh, "en": en} for p, zh, en in (
                ("code", "网格编码", "Grid code"), ("township", "街道/乡镇", "Township"),
                ("squad", "中队", "Squad"), ("count", "案件数", "Cases"))],
        }, show=show)


class AnalyticsLayer(_PlanningLayer):
    """A layer of the analytics API (hot spots, emerging hot spots); says so when the API is not served.

    Cells are coloured by ``property_name`` after the legend the API sends; cells whose value is one of
    ``quiet`` (not significant, no pattern) are outlined only, so the layers under them stay readable.
    ``trailing_months`` asks for the months up to the window's last one instead of the window itself:
    a trend needs a series (the emerging hot spots), not one month.
    """

    factory = "analyticsLayer"

    def __init__(self, key: str, title_zh: str, title_en: str, url: str | None, *, property_name: str,
                 quiet: tuple[Any, ...], fields: tuple[tuple[str, str, str], ...],
                 params: Mapping[str, str] | None = None, trailing_months: int | None = None,
                 show: bool = False) -> None:
        super().__init__(key, title_zh, title_en, {
            "url": url, "pane": "analytics", "paneZ": PANES["analytics"], "property": property_name,
            "quiet": list(quiet), "params": dict(params or {}), "trailingMonths": trailing_months,
            "fields": [{"property": p, "zh": zh, "en": en} for p, zh, en in fields],
        }, show=show)


HOTSPOT_FIELDS = (("cell_code", "网格编码", "Grid code"), ("count", "案件数", "Cases"),
                  ("gi_z", "Gi* z 值", "Gi* z-score"), ("gi_p", "p 值", "p-value"),
                  ("gi_p_fdr", "p 值（FDR 校正）", "p-value (FDR)"), ("moran_quadrant", "局部 Moran 象限", "Local Moran"))
EMERGING_FIELDS = (("cell_code", "网格编码", "Grid code"), ("count", "案件数", "Cases"),
                   ("trend_z", "趋势 z 值（Mann-Kendall）", "Trend z (Mann-Kendall)"), ("trend_p", "趋势 p 值", "Trend p"),
                   ("hot_steps", "热点时段数", "Hot steps"), ("cold_steps", "冷点时段数", "Cold steps"))
EMERGING_MONTHS = 12  # the emerging hot spots look at the year up to the window's last month, by week


def planning_map(settings: Settings, extent: tuple[float, float, float, float] | None, *,
                 analytics: Mapping[str, str | None], basemap: Basemap | None = None) -> folium.Map:
    """Return the planning map: the heat map over the counts per cell, the analytics layers, a layer control."""
    fmap = county_map(settings, extent, basemap=basemap or basemap_from(settings))
    CellCountsLayer().add_to(fmap)
    AnalyticsLayer("hotspots", "热点分析（Gi*）", "Hot spots (Gi*)", analytics.get("hotspots"),
                   property_name="gi_bin", quiet=(0,), fields=HOTSPOT_FIELDS, params={"cell": "grid"}).add_to(fmap)
    AnalyticsLayer("emerging", "时空热点趋势", "Emerging hot spots", analytics.get("emerging"),
                   property_name="category", quiet=("no_pattern",), fields=EMERGING_FIELDS,
                   params={"cell": "grid", "step": "week"}, trailing_months=EMERGING_MONTHS).add_to(fmap)
    HeatLayer().add_to(fmap)
    folium.LayerControl(position="topright", collapsed=False).add_to(fmap)
    return fmap


# -- the page ----------------------------------------------------------------------------------------------
ANALYTICS_PATHS = {"hotspots": "/api/v1/analytics/hotspots", "emerging": "/api/v1/analytics/emerging",
                   "briefing": "/api/v1/analytics/briefing"}


def served_analytics() -> dict[str, str | None]:
    """Return the analytics endpoints this app serves (None for those it does not, yet)."""
    served = {rule.rule for rule in current_app.url_map.iter_rules()}
    return {key: path if path in served else None for key, path in ANALYTICS_PATHS.items()}


def township_options(session: Session, county_code: str) -> list[Option]:
    """Return the county's subdistricts, towns and zones, by code."""
    rows = session.execute(select(m.AdminUnit.code, m.AdminUnit.name, m.AdminUnit.name_en)
                           .where(m.AdminUnit.county_code == county_code, m.AdminUnit.level != "county")
                           .order_by(m.AdminUnit.code))
    return [Option(code, name, name_en) for code, name, name_en in rows]


@dataclass(frozen=True)
class PlanningPage:
    """What the planning page is built from (plain values, so the page template escapes them)."""

    extent: tuple[float, float, float, float] | None
    categories: list[Option]
    months: list[str]
    townships: list[Option]
    units: list[Option]  # every agency an indicator row may name (squads, teams, departments)
    analytics: dict[str, str | None]

    def client_config(self) -> dict[str, Any]:
        """Return the page's settings for planning.js."""
        return {
            "months": self.months, "maxMonths": MAX_MONTHS, "analytics": self.analytics,
            "urls": {"heat": "/planning/data/heat", "cells": "/planning/data/cells",
                     "cellsCsv": "/planning/data/cells.csv", "indicators": "/api/v1/indicators"},
            "names": {"township": {o.value: {"zh": o.zh, "en": o.en} for o in self.townships},
                      "squad": {o.value: {"zh": o.zh, "en": o.en} for o in self.units}},
            "townships": [asdict(o) for o in self.townships],
        }


def load_planning_page(session: Session, county_code: str) -> PlanningPage:
    """Read what the planning page needs from the database (and which analytics the app serves)."""
    return PlanningPage(
        extent=county_extent(session, county_code), categories=category_options(session, county_code),
        months=case_months(session, county_code), townships=township_options(session, county_code),
        units=agency_options(session, county_code, ("squad", "dept_team", "department", "township_office",
                                                    "brigade", "bureau")),
        analytics=served_analytics())
