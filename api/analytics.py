"""Planner analytics over HTTP: hot spots, emerging hot spots and the heat-map surface of cases.

- ``GET /api/v1/analytics/hotspots``: Getis-Ord Gi* and Local Moran's I per cell
  (``layers.analytics.compute_hotspots``), a GeoJSON FeatureCollection with a Chinese-first legend;
- ``GET /api/v1/analytics/emerging``: emerging hot-spot categories per cell over weeks or months
  (``layers.analytics.compute_emerging``);
- ``GET /api/v1/analytics/density``: the kernel-density surface as weighted points for a heat map
  (``layers.analytics.kernel_density``).

Common parameters: ``category`` and ``theme`` (one code or comma-separated codes), the period as
``start``/``end`` (ISO 8601 with a time zone, half-open) or ``period`` (``2021``, ``2021-05``, ``2021-W20``,
Asia/Shanghai), ``unit`` (a township's code: the study area becomes that township) and, for the cells,
``cell`` = ``grid`` (the unit grid), ``fishnet`` or ``hexagon`` with ``size_m``. Permutations are bounded so
that one request stays within a few seconds: cells × steps × (permutations + 1) ≤ ``MAX_WORK``.
County-wide figures: admin, supervisor, operator and planner (as the statistics); others get 403.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timedelta
from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, Float, Integer, List, String
from apiflask.validators import Length, OneOf, Range
from flask import Response, current_app
from marshmallow import ValidationError as SchemaError
from marshmallow import validates_schema

from api.auth import SECURITY, require
from api.deps import get_session, get_settings
from api.layers import Instant
from gis_platform.errors import FieldError, ValidationError
from gis_platform.workcalendar import SHANGHAI
from layers.analytics import CELL_KINDS, STEPS, compute_emerging, compute_hotspots, kernel_density
from layers.analytics.aggregate import DEFAULT_SIZE_M, MAX_SIZE_M, MIN_SIZE_M
from layers.analytics.density import MAX_BANDWIDTH_M, MIN_BANDWIDTH_M, MIN_CELL_M
from layers.analytics.hotspots import MAX_PERMUTATIONS

bp = APIBlueprint("analytics", __name__, url_prefix="/api/v1/analytics", tag="分析 Analytics")

ANALYSTS = ("admin", "supervisor", "operator", "planner")
GEOJSON = "application/geo+json"
MAX_CELLS = 60_000  # per request; the library allows more for batch work
MAX_WORK = 120_000_000  # cells × steps × (permutations + 1): a few seconds on the reference machine
MAX_PERIOD = timedelta(days=3 * 366)
HOTSPOT_PERMUTATIONS = 9999  # with FDR over thousands of cells, 999 permutations rarely leave a cell significant
PERIOD_FORMS = "YYYY, YYYY-MM or YYYY-Www (ISO week)"


def parse_period(value: str) -> tuple[datetime, datetime]:
    """Return the half-open [start, end) of a year, month or ISO week in Asia/Shanghai time."""
    value = value.strip()
    try:
        if re.fullmatch(r"\d{4}", value):
            year = int(value)
            return _local(date(year, 1, 1)), _local(date(year + 1, 1, 1))
        if m := re.fullmatch(r"(\d{4})-(\d{2})", value):
            year, month = int(m[1]), int(m[2])
            following = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
            return _local(date(year, month, 1)), _local(following)
        if m := re.fullmatch(r"(\d{4})-W(\d{2})", value):
            monday = date.fromisocalendar(int(m[1]), int(m[2]), 1)
            return _local(monday), _local(monday + timedelta(days=7))
    except ValueError:
        pass
    raise ValidationError(FieldError("period", f"{value[:40]!r} is not a period; use {PERIOD_FORMS}"))


def _local(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)


# -- schemas ---------------------------------------------------------------------------------------------
class AnalyticsQuery(Schema):
    category = String(load_default=None, validate=Length(1, 400), metadata={
        "description": "category code(s), comma-separated, e.g. TD02,IO01"})
    theme = String(load_default=None, validate=Length(1, 200), metadata={
        "description": "theme(s), comma-separated: ten_disorders, illegal_operation …"})
    start = Instant(load_default=None, metadata={"format": "date-time", "example": "2021-01-01T00:00:00+08:00",
                                                 "description": "period start, inclusive (ISO 8601 with a time zone)"})
    end = Instant(load_default=None, metadata={"format": "date-time", "example": "2022-01-01T00:00:00+08:00",
                                               "description": "period end, exclusive"})
    period = String(load_default=None, validate=Length(4, 10), metadata={
        "description": f"instead of start/end: {PERIOD_FORMS}, Asia/Shanghai", "example": "2021-05"})
    unit = String(load_default=None, validate=Length(1, 12), metadata={
        "description": "a township, subdistrict or zone code: the study area becomes that unit"})

    @validates_schema
    def _period(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("period") and (data.get("start") or data.get("end")):
            raise SchemaError("give either period or start/end, not both", field_name="period")
        start, end = data.get("start"), data.get("end")
        if start is not None and end is not None:
            if end <= start:
                raise SchemaError("must be later than start", field_name="end")
            if end - start > MAX_PERIOD:
                raise SchemaError(f"the period may be at most {MAX_PERIOD.days} days", field_name="end")


class CellQuery(AnalyticsQuery):
    cell = String(load_default="grid", validate=OneOf(CELL_KINDS), metadata={
        "description": "grid (the unit grid cells), fishnet (squares) or hexagon"})
    size_m = Float(load_default=None, validate=Range(MIN_SIZE_M, MAX_SIZE_M), metadata={
        "description": f"fishnet/hexagon cell size in metres (side of a square of the same area); "
                       f"default {DEFAULT_SIZE_M:g}; not for grid"})
    alpha = Float(load_default=0.05, validate=Range(0.001, 0.2), metadata={
        "description": "significance level after the false-discovery-rate correction"})
    seed = Integer(load_default=12345, validate=Range(0, 2**32 - 1), metadata={"description": "permutation seed"})


class HotspotQuery(CellQuery):
    permutations = Integer(load_default=HOTSPOT_PERMUTATIONS, validate=Range(0, MAX_PERMUTATIONS), metadata={
        "description": f"conditional permutations (99–{MAX_PERMUTATIONS}); 0 = analytic normal p-values"})
    moran = Boolean(load_default=True, metadata={"description": "also compute Local Moran's I quadrants"})


class EmergingQuery(CellQuery):
    step = String(load_default="week", validate=OneOf(STEPS), metadata={"description": "week or month"})
    permutations = Integer(load_default=0, validate=Range(0, MAX_PERMUTATIONS), metadata={
        "description": "0 (default) = analytic p-values per step, as ESRI's emerging hot spot analysis; "
                       f"or 99–{MAX_PERMUTATIONS} permutations"})
    series = Boolean(load_default=False, metadata={"description": "add each cell's counts and Gi* bins per step"})


class DensityQuery(AnalyticsQuery):
    bandwidth_m = Float(load_default=None, validate=Range(MIN_BANDWIDTH_M, MAX_BANDWIDTH_M), metadata={
        "description": "Gaussian kernel bandwidth in metres (default: Silverman's rule of thumb)"})
    cell_m = Float(load_default=None, validate=Range(MIN_CELL_M, 1000), metadata={
        "description": "raster cell in metres (default: a quarter of the bandwidth)"})
    max_points = Integer(load_default=20_000, validate=Range(1, 100_000), metadata={
        "description": "at most this many weighted points, the densest kept"})
    threshold = Float(load_default=0.01, validate=Range(0, 1), metadata={
        "description": "drop cells below this share of the maximum density"})


class DensityOut(Schema):
    unit = String(metadata={"example": "cases per km²"})
    unit_zh = String(metadata={"example": "件/平方公里"})
    count = Integer(metadata={"description": "cases in the surface"})
    bandwidth_m = Float()
    cell_m = Float()
    max = Float(metadata={"description": "the densest cell, cases per km²"})
    threshold = Float()
    bounds = List(Float(), metadata={"description": "[minLon, minLat, maxLon, maxLat] of the raster"})
    points = List(List(Float()), metadata={"description": "[lat, lon, cases per km²], densest first"})


# -- helpers ---------------------------------------------------------------------------------------------
def _selection(query: dict[str, Any]) -> dict[str, Any]:
    """Return the keyword arguments selecting cases: categories, themes, period and unit."""
    start, end = query.get("start"), query.get("end")
    if query.get("period"):
        start, end = parse_period(query["period"])
    return {"category": query.get("category"), "theme": query.get("theme"), "start": start, "end": end,
            "unit": query.get("unit")}


def _check_size(query: dict[str, Any]) -> None:
    if query["cell"] == "grid" and query.get("size_m") is not None:
        raise ValidationError(FieldError("size_m", "unit grid cells have their own sizes; drop size_m or "
                                                   "use cell=fishnet or cell=hexagon"))
    if query["permutations"] and query["permutations"] < 99:
        raise ValidationError(FieldError("permutations", "use 0 (analytic) or at least 99"))


def _cells(query: dict[str, Any]) -> int:
    """Return about how many cells a request makes, refusing a size that makes too many (size_m)."""
    cells = _expected_cells(query)
    if query["cell"] != "grid" and cells > MAX_CELLS:
        size = query.get("size_m") or DEFAULT_SIZE_M
        raise ValidationError(FieldError("size_m", f"{size:g} m cells would number about {cells:,}, more than "
                                                   f"{MAX_CELLS:,} for one request; use larger cells"))
    return cells


def _check_work(permutations: int, cells: int, steps: int = 1) -> None:
    work = cells * steps * (permutations + 1)
    if work > MAX_WORK:
        most = max(0, MAX_WORK // max(1, cells * steps) - 1)
        advice = f"use at most {most} permutations" if most >= 99 else "use permutations=0 (analytic)"
        raise ValidationError(FieldError(
            "permutations", f"{cells:,} cells × {steps} step(s) × {permutations + 1:,} is too much work for one "
                            f"request; {advice}, larger cells or a shorter period"))


def _respond(body: dict[str, Any]) -> Response:
    return current_app.response_class(current_app.json.dumps(body), mimetype=GEOJSON)


def _settings() -> tuple[str, str]:
    settings = get_settings()
    return settings.county_code, settings.metric_crs


def _expected_cells(query: dict[str, Any]) -> int:
    """Return an upper estimate of the cells a request makes, before making them (for the work bound)."""
    from sqlalchemy import text

    county, metric_crs = _settings()
    if query["cell"] == "grid":
        return int(get_session().execute(text(
            "SELECT count(*) FROM grid_cell g WHERE g.county_code = :c AND g.valid_to IS NULL "
            "AND (CAST(:u AS text) IS NULL OR g.admin_unit_id = (SELECT id FROM admin_unit "
            "WHERE county_code = :c AND code = :u))"), {"c": county, "u": query.get("unit")}).scalar_one())
    from layers.analytics.aggregate import metric_srid

    area = get_session().execute(text(
        "SELECT ST_Area(ST_Transform(geom, :srid)) FROM admin_unit WHERE county_code = :c AND "
        "(CASE WHEN CAST(:u AS text) IS NULL THEN level = 'county' ELSE code = :u END) LIMIT 1"),
        {"c": county, "u": query.get("unit"), "srid": metric_srid(metric_crs)}).scalar() or 0.0
    size = query.get("size_m") or DEFAULT_SIZE_M
    perimeter_cells = 4 * math.sqrt(max(area, 1.0)) / size + 4
    return int(area / (size * size) + perimeter_cells)


# -- views -----------------------------------------------------------------------------------------------
@bp.get("/hotspots")
@require(*ANALYSTS)
@bp.input(HotspotQuery, location="query", arg_name="query")
@bp.doc(summary="Hot spots (热点分析): Getis-Ord Gi* and Local Moran's I per cell, FDR-corrected", security=SECURITY,
        description="Cases counted onto unit grid cells, a fishnet or hexagons, then Gi* with conditional "
                    "permutation inference and a Benjamini–Hochberg correction: gi_bin is ±3/±2/±1 for hot/cold "
                    "spots at 99/95/90 % confidence, 0 otherwise; moran_quadrant is HH, LL, HL or LH where "
                    "significant. The answer is a GeoJSON FeatureCollection (lon/lat) with `legend` (Chinese first), "
                    "`parameters` and `summary` members.",
        responses={200: {"description": "FeatureCollection of cells", "content": {GEOJSON: {}}},
                   400: "invalid parameter (the problem names it)"})
def hotspots(query: dict[str, Any]) -> Response:
    _check_size(query)
    _check_work(query["permutations"], _cells(query))
    county, metric_crs = _settings()
    result = compute_hotspots(get_session(), county, **_selection(query), cell=query["cell"], size_m=query["size_m"],
                              permutations=query["permutations"], alpha=query["alpha"], seed=query["seed"],
                              moran=query["moran"], metric_crs=metric_crs, max_cells=MAX_CELLS)
    return _respond(result.to_geojson())


@bp.get("/emerging")
@require(*ANALYSTS)
@bp.input(EmergingQuery, location="query", arg_name="query")
@bp.doc(summary="Emerging hot spots (时空热点趋势): a category per cell from Gi* over weeks or months",
        security=SECURITY,
        description="A space-time cube (cells × weeks or months), Gi* in each step (FDR within the step), a "
                    "Mann-Kendall trend of each cell's z-scores, and a category: new, consecutive, intensifying, "
                    "persistent, diminishing, sporadic, oscillating or historical hot/cold spot, or no pattern. "
                    "Without start/end the window is the 52 weeks (24 months) up to the latest matching case. "
                    "The legend carries each category's rule in Chinese and English.",
        responses={200: {"description": "FeatureCollection of cells", "content": {GEOJSON: {}}},
                   400: "invalid parameter (the problem names it)"})
def emerging(query: dict[str, Any]) -> Response:
    _check_size(query)
    selection = _selection(query)
    start, end = selection["start"], selection["end"]
    steps = 52 if query["step"] == "week" else 24
    if start is not None and end is not None:
        steps = max(1, math.ceil((end - start) / timedelta(days=7 if query["step"] == "week" else 28)) + 1)
    _check_work(query["permutations"], _cells(query), steps)
    county, metric_crs = _settings()
    result = compute_emerging(get_session(), county, **selection, cell=query["cell"], size_m=query["size_m"],
                              step=query["step"], permutations=query["permutations"], alpha=query["alpha"],
                              seed=query["seed"], metric_crs=metric_crs, max_cells=MAX_CELLS)
    return _respond(result.to_geojson(series=query["series"]))


@bp.get("/density")
@require(*ANALYSTS)
@bp.input(DensityQuery, location="query", arg_name="query")
@bp.output(DensityOut)
@bp.doc(summary="Heat map (热力图): kernel density of cases as weighted points", security=SECURITY,
        description="Cases binned onto a raster in the metric CRS and smoothed with a Gaussian kernel; the answer "
                    "lists [lat, lon, cases per km²] of the raster cells above `threshold` × the maximum (the "
                    "densest `max_points`), with `max`, `bandwidth_m`, `cell_m` and `bounds` — the shape "
                    "Leaflet.heat takes.",
        responses={400: "invalid parameter (the problem names it)"})
def density(query: dict[str, Any]) -> dict[str, Any]:
    county, metric_crs = _settings()
    surface = kernel_density(get_session(), county, **_selection(query), bandwidth_m=query["bandwidth_m"],
                             cell_m=query["cell_m"], metric_crs=metric_crs)
    return surface.to_json(max_points=query["max_points"], threshold=query["threshold"])
