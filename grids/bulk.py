"""Route a file of points in bulk (``gis-platform route --in FILE --out FILE``).

Reads CSV, GeoPackage or GeoJSON, routes every row with the same rules as a single report
(``grids.routing.Router``), and writes the same format back with the routing columns added. No row is
ever dropped: a row that cannot be routed is written with its problem in ``error``, and the exit code
says whether any failed (0 all routed, 1 some failed, 2 the input could not be read or routing could
not start).

Rows may carry their own moment (``at``): routing then uses the grids and jurisdictions in force at that
moment. Versions change rarely, so rows are bucketed by the version boundaries stored in the database
and one engine serves each bucket: rows between two boundaries see exactly the same polygons.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis_platform.coords import SYSTEMS, to_wgs84
from gis_platform.errors import FieldError, PlatformError, ValidationError
from gis_platform.workcalendar import SHANGHAI
from grids.routing import DEFAULT_NEAR_BOUNDARY_M, RouteResult, Router, load_catalogue

FORMATS = {".csv": "CSV", ".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON"}
LON_NAMES = ("lon", "lng", "longitude", "x")
LAT_NAMES = ("lat", "latitude", "y")
CHUNK_SIZE = 50_000
ENGINES = ("inprocess", "postgis")
RESULT_COLUMNS = ("admin_unit", "grid_cell", "owner", "holder", "assigned", "assigned_kind", "near_boundary",
                  "boundary_distance_m", "fallback_township", "coord_system_used", "lon_wgs84", "lat_wgs84",
                  "error")
BOOL_COLUMNS = ("near_boundary", "fallback_township")
_BOOL_TEXT = {True: "true", False: "false", None: ""}
FLOAT_COLUMNS = ("boundary_distance_m", "lon_wgs84", "lat_wgs84")

# How a failure is counted in the summary: the first phrase found in the problem names its reason.
_REASONS = (
    ("outside the county", "outside the county"),
    ("look swapped", "latitude and longitude swapped"),
    ("unknown category", "unknown category"),
    ("category is missing", "category missing"),
    ("must be numbers", "coordinates not numbers"),
    ("must be finite", "coordinates missing or NaN"),
    ("unknown coordinate system", "unknown coordinate system"),
    ("not a point", "geometry not a point"),
    ("not an ISO 8601", "bad time (at)"),
    ("no administrative unit covers", "no administrative unit covers the point"),
    ("township office to fall back", "no holder and no township office"),
)


class UnreadableInput(click.ClickException):
    """The input cannot be read, or routing cannot start: nothing was written (exit code 2)."""

    exit_code = 2


class RowsFailed(click.ClickException):
    """Some rows could not be routed; the output, with their problems, was written (exit code 1)."""

    exit_code = 1


@dataclass
class PointTable:
    """The input rows as read, with what routing needs taken out of them."""

    frame: pd.DataFrame  # a GeoDataFrame for GeoPackage and GeoJSON input
    kind: str  # "CSV", "GPKG" or "GeoJSON"
    lon: list[Any]
    lat: list[Any]
    categories: list[str]
    systems: list[str | None]  # per-row coordinate system, None = the default
    ats: list[str | None]  # per-row moment as written, None = the default
    problems: list[FieldError | None]  # found while reading (not a point, …)


@dataclass
class BulkResult:
    """The routing columns for every row, in input order, and the counts for the summary."""

    columns: dict[str, list[Any]]
    total: int = 0
    routed: int = 0
    failures: Counter = field(default_factory=Counter)
    assigned: Counter = field(default_factory=Counter)  # (code, name) → rows
    near_boundary: int = 0
    fallback_township: int = 0

    @property
    def failed(self) -> int:
        """Return how many rows could not be routed."""
        return self.total - self.routed


# -- reading -----------------------------------------------------------------------------------------


def output_kind(path: Path) -> str:
    """Return the format for a path by its extension, or raise naming the file."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise UnreadableInput(f"{path}: unsupported format {path.suffix or '(no extension)'!r}; "
                              f"use one of {', '.join(sorted(FORMATS))}")
    return kind


def _column(frame: pd.DataFrame, path: Path, wanted: str | None, names: Sequence[str], what: str) -> str:
    by_lower = {str(c).lower(): str(c) for c in frame.columns}
    if wanted:
        if wanted in frame.columns:
            return wanted
        if wanted.lower() in by_lower:
            return by_lower[wanted.lower()]
        raise UnreadableInput(f"{path}: missing {what} column {wanted!r}")
    for name in names:
        if name in by_lower:
            return by_lower[name]
    raise UnreadableInput(f"{path}: missing {what} column (looked for {', '.join(names)})")


def _optional(frame: pd.DataFrame, name: str) -> list[str | None]:
    by_lower = {str(c).lower(): str(c) for c in frame.columns}
    if name not in by_lower:
        return [None] * len(frame)
    return [None if _blank(v) else str(v).strip() for v in frame[by_lower[name]].tolist()]


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


def read_points(path: Path, *, category_column: str = "category", lon_column: str | None = None,
                lat_column: str | None = None) -> PointTable:
    """Read a CSV, GeoPackage or GeoJSON file of points, or raise naming the file and what is wrong."""
    kind = output_kind(path)
    if not path.is_file():
        raise UnreadableInput(f"{path}: no such file")
    try:
        if kind == "CSV":
            # Everything as text, nothing turned into NaN: the output repeats the input cell for cell.
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        else:
            import geopandas as gpd

            frame = gpd.read_file(path)
    except UnreadableInput:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is reported as one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnreadableInput(f"{path}: cannot read as {kind}: {first}") from exc
    category = _column(frame, path, category_column, (category_column,), "category")
    categories = ["" if _blank(v) else str(v).strip() for v in frame[category].tolist()]
    problems: list[FieldError | None] = [None] * len(frame)
    if kind == "CSV":
        lon = frame[_column(frame, path, lon_column, LON_NAMES, "longitude")].tolist()
        lat = frame[_column(frame, path, lat_column, LAT_NAMES, "latitude")].tolist()
    else:
        if getattr(frame, "geometry", None) is None or "geometry" not in frame.columns:
            raise UnreadableInput(f"{path}: no geometry column")
        lon, lat = [], []
        for k, geom in enumerate(frame.geometry.tolist()):
            if geom is None or geom.is_empty or geom.geom_type != "Point":
                kind_name = "empty" if geom is None or geom.is_empty else geom.geom_type
                problems[k] = FieldError("geometry", f"not a point ({kind_name})")
                lon.append(math.nan)
                lat.append(math.nan)
            else:
                lon.append(geom.x)
                lat.append(geom.y)
    for k, cat in enumerate(categories):
        if not cat and problems[k] is None:
            problems[k] = FieldError("category", "the category is missing")
    return PointTable(frame, kind, lon, lat, categories, _optional(frame, "coord_system"), _optional(frame, "at"),
                      problems)


# -- routing -----------------------------------------------------------------------------------------


def parse_moment(value: str) -> datetime:
    """Return an aware datetime for ISO 8601 text; a moment without offset is China time (UTC+8)."""
    moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=SHANGHAI)


def version_boundaries(session: Session, county_code: str) -> list[datetime]:
    """Return every moment at which a grid cell or jurisdiction version starts or ends, sorted."""
    rows = session.execute(text(
        "SELECT t FROM (SELECT valid_from AS t FROM grid_cell WHERE county_code = :c "
        "UNION SELECT valid_to FROM grid_cell WHERE county_code = :c "
        "UNION SELECT valid_from FROM jurisdiction WHERE county_code = :c "
        "UNION SELECT valid_to FROM jurisdiction WHERE county_code = :c) v WHERE t IS NOT NULL ORDER BY t"),
        {"c": county_code}).scalars()
    return list(rows)


def _normal_system(value: str) -> str:
    return value.strip().lower().replace("-", "").replace("_", "")


def route_points(session: Session, table: PointTable, *, county_code: str, metric_crs: str, metric_srid: int,
                 engine: str = "inprocess", at: datetime | None = None, default_system: str = "wgs84",
                 near_boundary_m: float = DEFAULT_NEAR_BOUNDARY_M, chunk_size: int = CHUNK_SIZE,
                 progress: Callable[[int], object] | None = None) -> BulkResult:
    """Route every row of a table; the session is only read from (temporary tables aside)."""
    from grids.engine import InProcessEngine
    from grids.pg_engine import PgEngine

    n = len(table.categories)
    default_at = at or datetime.now(UTC)
    columns: dict[str, list[Any]] = {name: [None] * n for name in RESULT_COLUMNS}
    columns["error"] = [""] * n
    lon: list[Any] = list(table.lon)
    lat: list[Any] = list(table.lat)
    problems = list(table.problems)
    moments: list[datetime] = [default_at] * n
    for k in range(n):
        if problems[k] is not None:
            continue
        system = _normal_system(table.systems[k] or default_system)
        if system not in SYSTEMS:
            problems[k] = FieldError("coord_system", f"unknown coordinate system {table.systems[k]!r}; "
                                                     f"use one of {', '.join(SYSTEMS)}")
            continue
        columns["coord_system_used"][k] = system
        if system not in ("wgs84", "cgcs2000"):
            try:
                x, y = float(lon[k]), float(lat[k])
            except (TypeError, ValueError):
                pass  # the router names the field
            else:
                if math.isfinite(x) and math.isfinite(y):
                    lon[k], lat[k] = to_wgs84(x, y, system)
        if table.ats[k] is not None:
            try:
                moments[k] = parse_moment(table.ats[k])
            except ValueError:
                problems[k] = FieldError("at", f"{table.ats[k]!r} is not an ISO 8601 time")
    for k, problem in enumerate(problems):
        if problem is not None:
            columns["error"][k] = str(problem)
            columns["coord_system_used"][k] = None

    # Rows between two version boundaries see the same polygons: one engine per bucket.
    boundaries = np.array([b.timestamp() for b in version_boundaries(session, county_code)])
    buckets = np.searchsorted(boundaries, [m.timestamp() for m in moments], side="right")
    todo = [k for k in range(n) if problems[k] is None]
    chunks = []
    for bucket in sorted({int(buckets[k]) for k in todo}):
        rows = [k for k in todo if buckets[k] == bucket]
        chunks += [(bucket, rows[i:i + chunk_size]) for i in range(0, len(rows), chunk_size)]
    routers: dict[int, Router] = {}
    names: dict[str, str] = {}
    for bucket, rows in chunks:
        if bucket not in routers:
            moment = moments[rows[0]]
            catalogue = load_catalogue(session, county_code, moment)
            if engine == "postgis":
                spatial: Any = PgEngine(session, county_code, at=moment, metric_srid=metric_srid,
                                        force_plan="polygon")
            else:
                spatial = InProcessEngine.from_session(session, county_code, moment, metric_crs)
            routers[bucket] = Router(catalogue, spatial, near_boundary_m=near_boundary_m, at=moment)
        outcomes = routers[bucket].route_many([lon[k] for k in rows], [lat[k] for k in rows],
                                              [table.categories[k] for k in rows])
        for k, outcome in zip(rows, outcomes):
            if isinstance(outcome, ValidationError):
                columns["error"][k] = str(outcome.errors[0]) if outcome.errors else outcome.detail
                columns["coord_system_used"][k] = None
            else:
                _fill(columns, k, outcome)
                names[outcome.assigned.code] = outcome.assigned.name
        if progress is not None:
            progress(len(rows))
    return _summarise(columns, n, names)


def _fill(columns: dict[str, list[Any]], k: int, result: RouteResult) -> None:
    columns["admin_unit"][k] = result.admin_unit.code
    columns["grid_cell"][k] = result.grid_cell.code if result.grid_cell else None
    columns["owner"][k] = result.owner.code
    columns["holder"][k] = result.holder
    columns["assigned"][k] = result.assigned.code
    columns["assigned_kind"][k] = result.assigned.kind
    columns["near_boundary"][k] = result.near_boundary
    columns["boundary_distance_m"][k] = (None if result.boundary_distance_m is None
                                         else round(result.boundary_distance_m, 2))
    columns["fallback_township"][k] = result.fallback_township
    columns["lon_wgs84"][k] = round(result.lon, 7)
    columns["lat_wgs84"][k] = round(result.lat, 7)


def _reason(problem: str) -> str:
    for phrase, reason in _REASONS:
        if phrase in problem:
            return reason
    return problem.split(":", 1)[0] + ": other"


def _summarise(columns: dict[str, list[Any]], n: int, names: dict[str, str]) -> BulkResult:
    result = BulkResult(columns, total=n)
    for k in range(n):
        if columns["error"][k]:
            result.failures[_reason(columns["error"][k])] += 1
            continue
        result.routed += 1
        code = columns["assigned"][k]
        result.assigned[(code, names[code])] += 1
        result.near_boundary += bool(columns["near_boundary"][k])
        result.fallback_township += bool(columns["fallback_township"][k])
    return result


def summary_lines(result: BulkResult) -> list[str]:
    """Return the human summary: totals, failures by reason, rows per assigned unit, flags."""
    lines = [f"rows: {result.total:,}   routed: {result.routed:,}   failed: {result.failed:,}"]
    if result.failures:
        lines.append("failed rows by reason:")
        lines += [f"  {reason}: {count:,}" for reason, count in result.failures.most_common()]
    if result.assigned:
        lines.append("routed rows by assigned unit:")
        lines += [f"  {code} {name}: {count:,}" for (code, name), count in sorted(result.assigned.items())]
    lines.append(f"near a jurisdiction boundary (operator to confirm): {result.near_boundary:,}")
    lines.append(f"fell back to the township office (属地兜底): {result.fallback_township:,}")
    return lines


# -- writing -----------------------------------------------------------------------------------------


def write_points(path: Path, table: PointTable, result: BulkResult) -> None:
    """Write the input rows with the routing columns added, in the format of the path's extension."""
    kind = output_kind(path)
    frame = table.frame.copy()
    # An input column with a routing column's name is kept under a new name, never overwritten.
    renames: dict[str, str] = {}
    for name in RESULT_COLUMNS:
        if name in frame.columns:
            new, k = f"input_{name}", 1
            while new in frame.columns or new in renames.values():
                k += 1
                new = f"input{k}_{name}"
            renames[name] = new
    frame = frame.rename(columns=renames)
    for name in RESULT_COLUMNS:
        values = result.columns[name]
        if name in FLOAT_COLUMNS:
            frame[name] = pd.array([math.nan if v is None else v for v in values], dtype="float64")
        elif name in BOOL_COLUMNS:
            # Text in every format: GDAL drivers have no nullable boolean, and a failed row has no answer.
            frame[name] = pd.array([_BOOL_TEXT[v] for v in values], dtype="object")
        else:
            frame[name] = pd.array(values, dtype="object")
    if kind == "CSV":
        if table.kind != "CSV":
            frame = pd.DataFrame(frame.drop(columns="geometry"))
            for position, (name, values) in enumerate((("lon", table.lon), ("lat", table.lat))):
                if name not in frame.columns:  # the point's coordinates, as the geometry gave them
                    frame.insert(position, name, values)
        frame.to_csv(path, index=False)
        return
    import geopandas as gpd
    import shapely

    if table.kind == "CSV":
        xs = np.array([_number(v) for v in table.lon], float)
        ys = np.array([_number(v) for v in table.lat], float)
        points = shapely.points(xs, ys)
        points[~(np.isfinite(xs) & np.isfinite(ys))] = None
        frame = gpd.GeoDataFrame(frame, geometry=points, crs="EPSG:4326")
    if path.exists():
        path.unlink()  # GeoPackage would otherwise append a layer to the old file
    frame.to_file(path, driver=kind, engine="pyogrio")


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


# -- command -----------------------------------------------------------------------------------------


@click.command("route")
@click.option("--in", "in_path", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Points to route: CSV (lon/lat columns), GeoPackage or GeoJSON (point geometry).")
@click.option("--out", "out_path", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Where to write every input row with the routing columns; format from the extension.")
@click.option("--category-column", default="category", show_default=True, help="Column with the category code.")
@click.option("--lon-column", default=None, help="Longitude column of a CSV (default: lon, lng, longitude or x).")
@click.option("--lat-column", default=None, help="Latitude column of a CSV (default: lat, latitude or y).")
@click.option("--coord-system", type=click.Choice(SYSTEMS), default="wgs84", show_default=True,
              help="Coordinate system of rows without a coord_system column value.")
@click.option("--at", "at_text", default=None, metavar="ISO",
              help="Route as of this moment (grids and jurisdictions then in force); rows may carry their own "
                   "'at'. Without an offset the time is China time (UTC+8). Default: now.")
@click.option("--near-boundary-m", type=click.FloatRange(min=0), default=DEFAULT_NEAR_BOUNDARY_M,
              show_default=True, help="Flag points closer than this to the chosen jurisdiction's boundary.")
@click.option("--engine", "engine_name", type=click.Choice(ENGINES), default="inprocess", show_default=True,
              help="inprocess: vectorised Shapely in this process; postgis: set-based queries in the database.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=CHUNK_SIZE, show_default=True,
              help="Points routed per step.")
def route(in_path: Path, out_path: Path, category_column: str, lon_column: str | None,
          lat_column: str | None, coord_system: str, at_text: str | None, near_boundary_m: float,
          engine_name: str, chunk_size: int) -> None:
    """Route a file of points by category and place; write every row back with where it goes.

    Exit code 0 when every row was routed, 1 when some rows failed (their problem is in the error
    column; the output is still written), 2 when the input cannot be read or routing cannot start.
    """
    from tqdm import tqdm

    from gis_platform.cli import echo_progress, load_settings
    from gis_platform.db import make_engine, resolve_database_url

    output_kind(out_path)
    try:
        at = parse_moment(at_text) if at_text else None
    except ValueError:
        raise UnreadableInput(f"--at: {at_text!r} is not an ISO 8601 time") from None
    table = read_points(in_path, category_column=category_column, lon_column=lon_column, lat_column=lat_column)
    settings = load_settings()
    url, _ = resolve_database_url(settings, progress=echo_progress)
    db = make_engine(url)
    todo = sum(p is None for p in table.problems)
    bar = tqdm(total=todo, unit="pt", disable=todo <= chunk_size,
               desc="routing")
    try:
        with Session(db) as session:
            result = route_points(session, table, county_code=settings.county_code,
                                  metric_crs=settings.metric_crs, metric_srid=settings.metric_srid,
                                  engine=engine_name, at=at, default_system=coord_system,
                                  near_boundary_m=near_boundary_m, chunk_size=chunk_size, progress=bar.update)
            session.rollback()  # this command only reads; drop the temporary tables with the transaction
    except PlatformError as exc:
        raise UnreadableInput(f"cannot route: {exc.detail}") from exc
    finally:
        bar.close()
        db.dispose()
    write_points(out_path, table, result)
    for line in summary_lines(result):
        click.echo(line)
    click.echo(f"written: {out_path}")
    if result.failed:
        # An exception rather than ctx.exit: the platform's main() runs click outside standalone mode.
        raise RowsFailed(f"{result.failed:,} of {result.total:,} rows could not be routed (see the error column)")
