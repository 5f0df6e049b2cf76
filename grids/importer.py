"""Import administrative units, jurisdictions and unit grids from GIS files (``gis-platform grids import``).

Reads Shapefile, GeoPackage, GeoJSON, KML (through pyogrio/GDAL) and CSV with a WKT column (pandas,
then the platform's own geometry parser, so a bad cell becomes a per-row error rather than a silently
empty geometry). The source CRS comes from the file, is guessed from the numbers (lon/lat, or CGCS2000
Gauss-Krüger with or without the zone prefix), or is forced; GCJ-02 and BD-09 are converted only when
declared, because nothing in the numbers tells them apart from WGS-84.

Dry-run by default: planning issues SELECTs only, so a dry run cannot write or lock anything. With
``commit=True`` every write happens inside one SAVEPOINT: an error rolls the savepoint back and leaves
the caller's transaction as it was. The caller owns the session and commits; this module only flushes.

Jurisdictions and grid cells are versioned by ``[valid_from, valid_to)``: a changed row closes the current
version and inserts a new one, never updating the old geometry, so historic cases keep their routing.
Administrative units have no versions in the schema and are updated in place.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, ClassVar

import click
import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyogrio.errors
import shapely
from geoalchemy2.shape import to_shape
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from shapely.validation import explain_validity
from sqlalchemy import func, insert, select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from gis_platform import models as m
from gis_platform import vocab
from gis_platform.coords import SYSTEMS, geometry_to_wgs84, guess_projected_epsg
from gis_platform.errors import Conflict, FieldError, PlatformError, ValidationError
from gis_platform.geometry import POLYGONAL, as_multipolygon, parse_geometry, to_ewkt, validate_geometry
from gis_platform.settings import Settings
from gis_platform.workcalendar import SHANGHAI
from grids.coding import GridCodeLayout
from grids.locate import PolygonIndex
from grids.pg_engine import rebuild_lookup
from grids.versions import redraw_jurisdiction

WGS84 = CRS.from_epsg(4326)
WKT_COLUMNS = ("wkt", "geometry", "geom", "the_geom")
# Geometries may stick out of the county's bounding box by this much (degrees, about 1 km): enough for
# boundaries digitised from another source, far too little for swapped axes or a wrong CRS.
BOUNDS_MARGIN_DEG = 0.01
GEOMETRY_TOLERANCE = 1e-9  # degrees, about 0.1 mm: closer than this counts as the same geometry
_SRID_PREFIX = re.compile(r"^\s*SRID=(\d{1,9})\s*;", re.IGNORECASE)
_LEVEL_WORDS = {label: level for level, label in vocab.ADMIN_LEVEL_LABELS.items()} | {
    "镇": "town", "乡": "town", "园区": "zone", "township": "town",
}

Progress = Callable[[int], object]


# -- values carried out of this module -----------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    """A problem with one field of one row (rows count from 1 in file order, header excluded)."""

    row: int
    field: str
    problem: str

    def __str__(self) -> str:
        return f"row {self.row}, field {self.field}: {self.problem}"


@dataclass(frozen=True)
class CrsInfo:
    """The source CRS and how it was found: ``file``, ``guessed`` or ``forced``."""

    source: str
    method: str
    note: str | None = None

    def __str__(self) -> str:
        how = f"{self.method}: {self.note}" if self.note else self.method
        return f"{self.source} ({how})"


@dataclass(frozen=True)
class FieldSpec:
    """A logical input field, whether it is required, and the column names tried when not mapped."""

    name: str
    required: bool
    aliases: tuple[str, ...]


@dataclass
class ReadResult:
    """Features read from a file: a GeoDataFrame in EPSG:4326 with ``row``, the logical fields and geometry."""

    path: Path
    kind: str
    frame: gpd.GeoDataFrame
    crs: CrsInfo
    coord_system: str
    columns: dict[str, str]  # logical field -> column of the file it came from
    geometry_field: str  # "geometry", or the WKT column of a CSV
    layer: str | None = None
    errors: list[RowError] = field(default_factory=list)  # geometries that could not be parsed

    @property
    def conversion(self) -> str | None:
        """Return the coordinate conversion applied, e.g. ``gcj02 → wgs84``, or None."""
        return None if self.coord_system in ("wgs84", "cgcs2000") else f"{self.coord_system} → wgs84"

    @property
    def source(self) -> str:
        """Return the file (and layer) as shown in reports."""
        return f"{self.path} (layer {self.layer})" if self.layer else str(self.path)


@dataclass
class ImportReport:
    """What an import would change (dry run) or changed (committed), row by row counted."""

    kind: str
    source: str
    crs: CrsInfo
    conversion: str | None
    rows: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    invalid: int = 0
    absent: int = 0  # current rows of this kind in the store that the file does not mention (left alone)
    errors: list[RowError] = field(default_factory=list)
    repairs: list[RowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = True
    blocked: bool = False  # invalid rows stopped the import (no --skip-invalid)
    written: bool = False

    @property
    def counts(self) -> dict[str, int]:
        """Return the row counts by outcome."""
        return {"new": self.new, "changed": self.changed, "unchanged": self.unchanged, "invalid": self.invalid}

    def render(self) -> str:
        """Return the report as text for the command line."""
        if self.written:
            state = "written" if self.new or self.changed else "nothing to change"
        elif self.blocked:
            state = "NOT written: invalid rows (fix them, or pass --skip-invalid to import the rest)"
        else:
            state = "dry run, nothing written (pass --commit to write)"
        lines = [
            f"import {self.kind} from {self.source}: {state}",
            f"  CRS: {self.crs} → EPSG:4326",
            f"  coordinates: {'converted ' + self.conversion if self.conversion else 'no conversion'}",
            f"  {self.rows} rows: {self.new} new, {self.changed} changed, {self.unchanged} unchanged, "
            f"{self.invalid} invalid",
        ]
        if self.absent:
            lines.append(f"  {self.absent} current {self.kind} in the store are not in the file (left alone)")
        lines += [f"  repaired {r}" for r in self.repairs]
        lines += [f"  warning: {w}" for w in self.warnings]
        lines += [f"  error: {e}" for e in self.errors]
        return "\n".join(lines)


# -- reading --------------------------------------------------------------------------------------------


def read_features(path: str | Path, *, kind: str, layer: str | None = None, crs: str | None = None,
                  coord_system: str = "wgs84", fields: Mapping[str, str] | None = None,
                  wkt_column: str | None = None, county_lon: float | None = None) -> ReadResult:
    """Read a GIS file into EPSG:4326 features with the fields ``kind`` needs; raise naming the file.

    ``county_lon`` gives the central meridian for Gauss-Krüger eastings without a zone prefix.
    """
    path = Path(path)
    spec = _kind_class(kind)
    if coord_system not in SYSTEMS:
        raise _file_error(path, f"unknown coordinate system {coord_system!r}; use one of {', '.join(SYSTEMS)}")
    forced = _parse_crs(crs) if crs else None
    if not path.exists():
        raise _file_error(path, "no such file")
    read_errors: list[RowError] = []
    if path.suffix.lower() == ".csv":
        attrs, geoms, file_crs, geometry_field, read_errors = _read_csv(path, wkt_column)
    else:
        attrs, geoms, file_crs, layer = _read_gdal(path, layer)
        geometry_field = "geometry"
    if not len(attrs):
        raise _file_error(path, "the file holds no features")
    columns = _resolve_columns(path, spec.fields, list(attrs.columns), fields or {})
    source_crs, info = _resolve_crs(path, file_crs, geoms, forced=forced, county_lon=county_lon)
    geoms = _to_wgs84(geoms, source_crs)
    if coord_system in ("gcj02", "bd09"):
        if source_crs.is_projected:
            raise _file_error(path, f"{coord_system.upper()} coordinates are longitude/latitude, "
                                    f"but the file's CRS {info.source} is projected")
        geoms = np.array([_declared_to_wgs84(g, coord_system) for g in geoms], dtype=object)
    data: dict[str, Any] = {"row": np.arange(1, len(attrs) + 1)}
    for name, column in columns.items():
        # object dtype: pandas would otherwise infer a string dtype and turn None into NaN
        data[name] = pd.Series([_text(v) for v in attrs[column].tolist()], dtype=object)
    frame = gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(list(geoms), crs=WGS84), crs=WGS84)
    return ReadResult(path=path, kind=kind, frame=frame, crs=info, coord_system=coord_system, columns=columns,
                      geometry_field=geometry_field, layer=layer, errors=read_errors)


def _file_error(path: Path, problem: str) -> ValidationError:
    return ValidationError(FieldError("file", problem), detail=f"{path}: {problem}")


def _parse_crs(value: str) -> CRS:
    try:
        return CRS.from_user_input(value)
    except CRSError:
        raise ValidationError(FieldError("crs", f"unknown coordinate reference system {value!r}")) from None


def _crs_label(crs: CRS) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.name


def _read_gdal(path: Path, layer: str | None) -> tuple[pd.DataFrame, np.ndarray, CRS | None, str | None]:
    """Read one layer with GDAL; return attributes, geometries, the declared CRS and the layer name."""
    try:
        layers = [str(name) for name, _ in pyogrio.list_layers(path)]
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise _file_error(path, f"not a GIS file GDAL can read ({_first_line(exc)})") from None
    if not layers:
        raise _file_error(path, "the file holds no layers")
    if layer is not None and layer not in layers:
        raise _file_error(path, f"no layer {layer!r}; layers are {', '.join(layers)}")
    if layer is None and len(layers) > 1:
        raise _file_error(path, f"{len(layers)} layers ({', '.join(layers)}); choose one with --layer")
    try:
        frame = pyogrio.read_dataframe(path, layer=layer, force_2d=True, on_invalid="ignore",
                                       datetime_as_string=True)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise _file_error(path, f"cannot read features ({_first_line(exc)})") from None
    if "geometry" not in frame.columns:
        raise _file_error(path, "the layer has no geometry column")
    geoms = np.asarray(frame.geometry.array, dtype=object)
    file_crs = CRS.from_user_input(frame.crs) if frame.crs is not None else None
    attrs = pd.DataFrame(frame.drop(columns="geometry"))
    return attrs, geoms, file_crs, layer if len(layers) > 1 else None


def _read_csv(path: Path, wkt_column: str | None
              ) -> tuple[pd.DataFrame, np.ndarray, CRS | None, str, list[RowError]]:
    """Read a CSV whose geometry is WKT (or EWKT, or GeoJSON) text in one column."""
    frame = None
    for encoding in ("utf-8-sig", "gb18030"):  # Chinese desktop tools still write GBK
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
            break
        except UnicodeDecodeError:
            continue
        except pd.errors.EmptyDataError:
            raise _file_error(path, "the file is empty") from None
        except (pd.errors.ParserError, ValueError) as exc:
            raise _file_error(path, f"not a readable CSV ({_first_line(exc)})") from None
    if frame is None:
        raise _file_error(path, "not UTF-8 or GB18030 text")
    column = _find_column(list(frame.columns), (wkt_column,) if wkt_column else WKT_COLUMNS)
    if column is None:
        wanted = repr(wkt_column) if wkt_column else "one of " + ", ".join(WKT_COLUMNS)
        raise _file_error(path, f"no geometry column ({wanted}); columns are {', '.join(map(str, frame.columns))}"
                                f"{'' if wkt_column else '; name it with --wkt-column'}")
    geoms = np.full(len(frame), None, dtype=object)
    errors: list[RowError] = []
    srids: set[int] = set()
    for index, value in enumerate(frame[column].tolist()):
        text = str(value)
        if not text.strip():
            errors.append(RowError(index + 1, column, "no geometry"))
            continue
        if match := _SRID_PREFIX.match(text):
            srids.add(int(match.group(1)))
            text = text[match.end():]
        try:
            geoms[index] = parse_geometry(text, field=column)
        except ValidationError as exc:
            errors += [RowError(index + 1, column, e.problem) for e in exc.errors]
    if len(srids) > 1:
        raise _file_error(path, f"rows carry different SRIDs ({', '.join(map(str, sorted(srids)))})")
    file_crs = None
    if srids:
        try:
            file_crs = CRS.from_epsg(srids.pop())
        except CRSError as exc:
            raise _file_error(path, f"unknown SRID ({_first_line(exc)})") from None
    return frame.drop(columns=column), geoms, file_crs, column, errors


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _find_column(columns: list[Any], candidates: Iterable[str]) -> str | None:
    """Return the first column matching a candidate, exactly or else ignoring case and spaces."""
    for candidate in candidates:
        if candidate in columns:
            return candidate
        folded = candidate.strip().casefold()
        for column in columns:
            if str(column).strip().casefold() == folded:
                return column
    return None


def _resolve_columns(path: Path, specs: tuple[FieldSpec, ...], columns: list[Any],
                     mapping: Mapping[str, str]) -> dict[str, str]:
    """Return logical field -> column, from ``--field`` mappings first, then by the usual names."""
    known = {s.name for s in specs}
    unknown = sorted(set(mapping) - known)
    if unknown:
        raise ValidationError(FieldError("field", f"unknown field {unknown[0]!r}; fields are {', '.join(sorted(known))}"))
    resolved: dict[str, str] = {}
    for spec in specs:
        if spec.name in mapping:
            column = _find_column(columns, (mapping[spec.name],))
            if column is None:
                raise _file_error(path, f"no column {mapping[spec.name]!r} (given for field {spec.name}); "
                                        f"columns are {', '.join(map(str, columns))}")
        else:
            column = _find_column(columns, spec.aliases)
        if column is not None:
            resolved[spec.name] = column
        elif spec.required:
            raise _file_error(path, f"no column for field {spec.name!r} (looked for {', '.join(spec.aliases)}); "
                                    f"columns are {', '.join(map(str, columns)) or 'none'}; "
                                    f"map one with --field {spec.name}=COLUMN")
    return resolved


def _resolve_crs(path: Path, file_crs: CRS | None, geoms: np.ndarray, *, forced: CRS | None,
                 county_lon: float | None) -> tuple[CRS, CrsInfo]:
    """Return the CRS to read the numbers in, and how it was decided."""
    if forced is not None:
        note = None
        if file_crs is not None and not file_crs.equals(forced):
            note = f"the file declared {_crs_label(file_crs)}"
        return forced, CrsInfo(_crs_label(forced), "forced", note)
    present = np.array([g is not None for g in geoms], dtype=bool)
    bounds = shapely.bounds(geoms[present]) if present.any() else np.empty((0, 4))
    finite = np.isfinite(bounds).all(axis=1)
    bounds = bounds[finite]
    lonlat = ((np.abs(bounds[:, [0, 2]]) <= 180).all(axis=1) & (np.abs(bounds[:, [1, 3]]) <= 90).all(axis=1))
    mostly_lonlat = not len(bounds) or lonlat.mean() >= 0.5
    if file_crs is not None and (file_crs.is_projected or mostly_lonlat):
        return file_crs, CrsInfo(_crs_label(file_crs), "file")
    if mostly_lonlat:
        note = "no coordinates to guess from" if not len(bounds) else "the numbers look like longitude/latitude"
        return WGS84, CrsInfo("EPSG:4326", "guessed", note)
    # Projected numbers without a CRS (a shapefile without .prj), or with a geographic one that cannot be
    # right (GDAL reads GeoJSON without a "crs" member as EPSG:4326, whatever its numbers).
    xs = (bounds[:, 0] + bounds[:, 2]) / 2
    ys = (bounds[:, 1] + bounds[:, 3]) / 2
    easting = float(np.median(xs))
    if county_lon is None and 100_000 < easting < 900_000:
        raise _file_error(path, "coordinates look like Gauss-Krüger metres without a zone number and the "
                                "central meridian is unknown; give --crs EPSG:xxxx")
    epsg = guess_projected_epsg(xs, ys, county_lon=county_lon if county_lon is not None else 0.0)
    if epsg is None:
        raise _file_error(path, "cannot tell the coordinate system: the numbers look like neither "
                                "longitude/latitude nor CGCS2000 Gauss-Krüger metres; give --crs EPSG:xxxx")
    guessed = CRS.from_epsg(epsg)
    if easting > 1_000_000:
        note = f"eastings carry the zone number {int(easting // 1_000_000)} (CGCS2000 3° Gauss-Krüger)"
    else:
        note = f"eastings without a zone number; central meridian from the county ({guessed.name})"
    if file_crs is not None:
        note += f"; the file declared {_crs_label(file_crs)} but holds metres"
    return guessed, CrsInfo(f"EPSG:{epsg}", "guessed", note)


def _to_wgs84(geoms: np.ndarray, source: CRS) -> np.ndarray:
    """Return the geometries transformed to EPSG:4326 lon/lat (CGCS2000 too, where it is a no-op)."""
    if source.equals(WGS84):
        return geoms
    transformer = Transformer.from_crs(source, WGS84, always_xy=True)

    def project(xy: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, project)


def _declared_to_wgs84(geom: shapely.Geometry | None, system: str) -> shapely.Geometry | None:
    """Convert a GCJ-02/BD-09 lon/lat geometry; leave what validation will reject untouched."""
    if geom is None or not np.isfinite(shapely.get_coordinates(geom)).all():
        return geom
    return geometry_to_wgs84(geom, system)


def _text(value: Any) -> str | None:
    """Return a cell as trimmed text; numbers read as floats lose their ``.0``; blanks become None."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float | np.floating):
        if not math.isfinite(value):
            return None
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if isinstance(value, bool | np.bool_):
        return str(bool(value)).lower()
    text = str(value).strip()
    return text or None


def central_meridian(crs: str) -> float | None:
    """Return the central meridian of a projected CRS (e.g. the county's metric CRS), or None."""
    try:
        operation = CRS.from_user_input(crs).coordinate_operation
    except CRSError:
        return None
    for param in getattr(operation, "params", None) or ():
        if param.name in ("Longitude of natural origin", "Longitude of origin"):
            return float(param.value)
    return None


def parse_valid_from(value: str | datetime, *, field: str = "valid_from") -> datetime:
    """Return an aware datetime from ISO 8601; a bare date means local midnight (China Standard Time)."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        try:
            if len(text) <= 10:
                day = date.fromisoformat(text)
                return datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValidationError(FieldError(field, f"{text!r} is not an ISO 8601 date or date-time")) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValidationError(FieldError(field, f"{value!s} has no time zone; add one, e.g. +08:00"))
    return moment


# -- importing ------------------------------------------------------------------------------------------


@dataclass
class _Row:
    """One feature on its way in: its values, its checked geometry, its problems and its fate."""

    row: int
    values: dict[str, str | None]
    geom: shapely.MultiPolygon | None = None
    errors: list[RowError] = field(default_factory=list)
    status: str | None = None  # new, changed or unchanged once planned
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Context:
    session: Session
    settings: Settings
    read: ReadResult
    report: ImportReport
    valid_from: datetime
    layout: GridCodeLayout

    @property
    def county(self) -> str:
        return self.settings.county_code

    @property
    def note(self) -> str:
        """Return the provenance stored on imported rows that have a place for it."""
        text = f"导入 / imported from {self.read.path.name}"
        return f"{text} ({self.read.conversion})" if self.read.conversion else text

    def column(self, name: str) -> str:
        """Return the file's column for a logical field (errors name what the user sees)."""
        return self.read.columns.get(name, name)

    def error(self, row: _Row, name: str, problem: str) -> None:
        row.errors.append(RowError(row.row, self.column(name), problem))

    def row_valid_from(self, row: _Row) -> datetime | None:
        """Return the row's valid_from (its own column, else the import's), or None after an error."""
        text = row.values.get("valid_from")
        if not text:
            return self.valid_from
        try:
            return parse_valid_from(text)
        except ValidationError as exc:
            self.error(row, "valid_from", exc.errors[0].problem)
            return None


def import_features(session: Session, settings: Settings, read_result: ReadResult, *, kind: str,
                    commit: bool = False, repair: bool = False, skip_invalid: bool = False,
                    valid_from: datetime | str | None = None, layout: GridCodeLayout = GridCodeLayout(),
                    progress: Progress | None = None) -> ImportReport:
    """Validate features against the store and report what would change; write (flush) only with commit.

    Planning runs SELECTs only. With ``commit`` the writes go in one SAVEPOINT, so a database error
    leaves nothing half-written; invalid rows block everything unless ``skip_invalid``.
    """
    if kind != read_result.kind:
        raise ValidationError(FieldError("kind", f"the file was read as {read_result.kind}, not {kind}"))
    default_from = parse_valid_from(valid_from) if valid_from is not None else datetime.now(UTC)
    report = ImportReport(kind=kind, source=read_result.source, crs=read_result.crs,
                          conversion=read_result.conversion, rows=len(read_result.frame), dry_run=not commit)
    ctx = _Context(session, settings, read_result, report, default_from, layout)
    rows = _rows(read_result)
    bounds = _county_bounds(session, settings.county_code)
    if bounds is None:
        report.warnings.append(f"no county row {settings.county_code} in admin_unit: geometries were not "
                               "checked against the county's bounds")
    _check_geometries(rows, read_result.geometry_field, bounds=bounds, repair=repair, report=report,
                      progress=progress)
    importer = _kind_class(kind)(ctx)
    importer.plan(rows)
    report.absent = importer.absent(rows)
    for row in rows:
        if row.errors:
            report.invalid += 1
            report.errors += row.errors
        else:
            setattr(report, row.status, getattr(report, row.status) + 1)
    report.blocked = bool(report.invalid) and not skip_invalid
    if commit and not report.blocked:
        todo = [r for r in rows if not r.errors and r.status in ("new", "changed")]
        try:
            with session.begin_nested():
                if todo:
                    importer.write(todo)
                    session.flush()
                    rebuild_lookup(session, settings.county_code)  # the PostGIS router reads the new shapes
        except (IntegrityError, DataError) as exc:
            detail = _first_line(exc.orig) if exc.orig is not None else _first_line(exc)
            raise Conflict(f"the database refused the import; nothing was written: {detail}",
                           log_detail=str(exc)) from exc
        report.written = True
    return report


def _rows(read: ReadResult) -> list[_Row]:
    names = [c for c in read.frame.columns if c not in ("row", "geometry")]
    rows = []
    for record, geom in zip(read.frame[["row", *names]].itertuples(index=False, name=None),
                            read.frame.geometry.array):
        values = {name: _text(value) for name, value in zip(names, record[1:])}
        rows.append(_Row(row=int(record[0]), values=values, data={"raw": geom}))
    by_row = {r.row: r for r in rows}
    for error in read.errors:
        by_row[error.row].errors.append(error)
    return rows


def _county_bounds(session: Session, county: str) -> tuple[float, float, float, float] | None:
    """Return the county row's bounding box widened by the margin, or None when there is no county row."""
    extent = session.execute(
        select(func.ST_XMin(m.AdminUnit.geom), func.ST_YMin(m.AdminUnit.geom),
               func.ST_XMax(m.AdminUnit.geom), func.ST_YMax(m.AdminUnit.geom))
        .where(m.AdminUnit.county_code == county, m.AdminUnit.code == county)
    ).first()
    if extent is None:
        return None
    minx, miny, maxx, maxy = (float(v) for v in extent)
    d = BOUNDS_MARGIN_DEG
    return minx - d, miny - d, maxx + d, maxy + d


def _check_geometries(rows: list[_Row], name: str, *, bounds: tuple[float, float, float, float] | None,
                      repair: bool, report: ImportReport, progress: Progress | None) -> None:
    """Validate every geometry (polygonal, lon/lat, inside the bounds, valid or repaired); no database."""
    for row in rows:
        raw = row.data.pop("raw")
        if progress is not None:
            progress(1)
        if row.errors:  # the geometry could not even be parsed
            continue
        try:
            geom = validate_geometry(raw, field=name, types=POLYGONAL, bounds=bounds, repair=repair)
            geom = as_multipolygon(geom, field=name)
        except ValidationError as exc:
            row.errors += [RowError(row.row, e.field, e.problem) for e in exc.errors]
            continue
        if repair and not raw.is_valid:
            report.repairs.append(RowError(row.row, name, f"made valid: {explain_validity(raw)}"))
        row.geom = geom


def _same_geometry(a: shapely.Geometry, b: shapely.Geometry) -> bool:
    return bool(shapely.equals_exact(shapely.normalize(a), shapely.normalize(b), tolerance=GEOMETRY_TOLERANCE))


def _duplicates(ctx: _Context, rows: list[_Row], key: str, name: str) -> None:
    """Flag every row whose key already appeared in an earlier row of the file."""
    first: dict[str, int] = {}
    for row in rows:
        value = row.data.get(key)
        if value is None:
            continue
        if value in first:
            ctx.error(row, name, f"{value!r} already appears in row {first[value]}")
        else:
            first[value] = row.row


def _check_successor(ctx: _Context, row: _Row, history: list[tuple[datetime, datetime | None]],
                     valid_from: datetime) -> None:
    """Refuse a new version that would not start after every earlier version of the same thing."""
    for start, end in history:
        if end is None and valid_from <= start:
            ctx.error(row, "valid_from", f"{valid_from.isoformat()} is not after the current version's "
                                         f"valid_from {start.isoformat()}")
        elif end is not None and valid_from < end:
            ctx.error(row, "valid_from", f"{valid_from.isoformat()} overlaps an earlier version valid "
                                         f"until {end.isoformat()}")


class _Kind:
    """One importable kind: its fields, how rows are planned against the store, and how they are written."""

    name: ClassVar[str]
    fields: ClassVar[tuple[FieldSpec, ...]]

    def __init__(self, ctx: _Context) -> None:
        self.ctx = ctx
        self.s = ctx.session

    def plan(self, rows: list[_Row]) -> None:
        """Check attributes and references; set each good row's status to new, changed or unchanged."""
        raise NotImplementedError

    def absent(self, rows: list[_Row]) -> int:
        """Return how many current rows in the store the file does not mention."""
        raise NotImplementedError

    def write(self, rows: list[_Row]) -> None:
        """Write the new and changed rows (inside the caller's savepoint)."""
        raise NotImplementedError


_VALID_FROM = FieldSpec("valid_from", False, ("valid_from", "生效时间", "生效日期", "start"))


class _Units(_Kind):
    """Administrative units, upserted by (county_code, code); changed geometry is updated in place."""

    name = "units"
    fields = (
        FieldSpec("code", True, ("code", "unit_code", "adcode", "xzqdm", "区划代码", "代码")),
        FieldSpec("name", True, ("name", "unit_name", "xzqmc", "名称")),
        FieldSpec("name_en", False, ("name_en", "english_name", "ename")),
        FieldSpec("level", False, ("level", "级别")),
        FieldSpec("parent", False, ("parent", "parent_code", "上级代码")),
    )

    def plan(self, rows: list[_Row]) -> None:
        ctx = self.ctx
        self.existing = {u.code: u for u in self.s.scalars(select(m.AdminUnit).where(m.AdminUnit.county_code == ctx.county))}
        codes_by_id = {u.id: u.code for u in self.existing.values()}
        for row in rows:
            self._attributes(row)
        _duplicates(ctx, rows, "code", "code")
        known = set(self.existing) | {r.data["code"] for r in rows if not r.errors}
        for row in rows:
            code = row.data.get("code")
            if code is None or row.errors:
                continue
            parent = row.values.get("parent")
            if parent is None and len(code) > len(ctx.county) and ctx.county in known:
                parent = ctx.county
            if parent is not None and parent not in known:
                ctx.error(row, "parent", f"unknown parent unit code {parent!r} in county {ctx.county}")
                continue
            if parent is not None and len(parent) >= len(code):
                ctx.error(row, "parent", f"parent {parent!r} must be a larger unit (a shorter code) than {code!r}")
                continue
            row.data["parent"] = parent
            old = self.existing.get(code)
            if old is None:
                row.status = "new"
                continue
            same = (old.name == row.data["name"] and old.level == row.data["level"]
                    and codes_by_id.get(old.parent_id) == parent
                    and (row.data["name_en"] is None or old.name_en == row.data["name_en"])
                    and _same_geometry(to_shape(old.geom), row.geom))
            row.status = "unchanged" if same else "changed"

    def _attributes(self, row: _Row) -> None:
        ctx = self.ctx
        code, name, level = (row.values.get(k) for k in ("code", "name", "level"))
        if code is None:
            ctx.error(row, "code", "required")
        elif not (code.isascii() and code.isdigit() and len(code) in (6, 9)):
            ctx.error(row, "code", f"{code!r} is not a 6-digit county or 9-digit GB/T 2260-style unit code")
            code = None
        elif not code.startswith(ctx.county):
            ctx.error(row, "code", f"{code!r} is not in county {ctx.county}")
            code = None
        if name is None:
            ctx.error(row, "name", "required")
        elif len(name) > 100:
            ctx.error(row, "name", "longer than 100 characters")
        name_en = row.values.get("name_en")
        if name_en is not None and len(name_en) > 100:
            ctx.error(row, "name_en", "longer than 100 characters")
        if level is not None:
            level = _LEVEL_WORDS.get(level, level.lower())
            if level not in vocab.ADMIN_LEVELS:
                ctx.error(row, "level", f"{row.values['level']!r} is not one of {', '.join(vocab.ADMIN_LEVELS)}")
        elif code is not None:
            level = level_from_code(code)
            if level is None:
                ctx.error(row, "code", f"cannot infer the level of {code!r}; give a level column")
        if code is not None and level is not None and (level == "county") != (len(code) == 6):
            ctx.error(row, "level", f"level {level} does not fit the {len(code)}-digit code {code!r}")
        row.data.update(code=code, name=name, name_en=name_en, level=level)

    def absent(self, rows: list[_Row]) -> int:
        mentioned = {r.data.get("code") for r in rows}
        return sum(1 for code in self.existing if code not in mentioned)

    def write(self, rows: list[_Row]) -> None:
        ctx = self.ctx
        ids = {code: unit.id for code, unit in self.existing.items()}
        # Shorter codes are parents of longer ones: insert the county before its towns.
        for length in sorted({len(r.data["code"]) for r in rows}):
            for row in (r for r in rows if len(r.data["code"]) == length):
                d = row.data
                unit = self.existing.get(d["code"])
                if unit is None:
                    unit = m.AdminUnit(county_code=ctx.county, code=d["code"], name_en=d["name_en"] or "",
                                       synthetic=False)
                    self.s.add(unit)
                    self.existing[d["code"]] = unit
                elif d["name_en"] is not None:
                    unit.name_en = d["name_en"]
                unit.name, unit.level, unit.source = d["name"], d["level"], ctx.note
                unit.parent_id = ids[d["parent"]] if d["parent"] else None
                unit.geom = to_ewkt(row.geom)
            self.s.flush()
            ids.update({code: unit.id for code, unit in self.existing.items()})


def level_from_code(code: str) -> str | None:
    """Return the level a unit code implies (GB/T 10114: 001-099 subdistricts, 100-399 towns, 400-599 zones)."""
    if len(code) == 6:
        return "county"
    number = int(code[6:9])
    if 1 <= number <= 99:
        return "subdistrict"
    if 100 <= number <= 399:
        return "town"
    if 400 <= number <= 599:
        return "zone"
    return None


class _Jurisdictions(_Kind):
    """Agency jurisdictions: a changed polygon closes the current version and adds version + 1."""

    name = "jurisdictions"
    fields = (
        FieldSpec("agency", True, ("agency", "agency_code", "squad", "squad_code", "code", "单位代码", "中队")),
        _VALID_FROM,
    )

    def plan(self, rows: list[_Row]) -> None:
        ctx = self.ctx
        self.agencies = {a.code: a for a in self.s.scalars(select(m.Agency).where(m.Agency.county_code == ctx.county))}
        history: dict[int, list[m.Jurisdiction]] = {}
        for version in self.s.scalars(select(m.Jurisdiction).where(m.Jurisdiction.county_code == ctx.county)):
            history.setdefault(version.agency_id, []).append(version)
        self.history = history
        for row in rows:
            code = row.values.get("agency")
            agency = self.agencies.get(code) if code else None
            if code is None:
                ctx.error(row, "agency", "required")
            elif agency is None:
                ctx.error(row, "agency", f"unknown agency code {code!r} in county {ctx.county}")
            row.data["agency"] = code if agency is not None else None
            row.data["valid_from"] = ctx.row_valid_from(row)
        _duplicates(ctx, rows, "agency", "agency")
        for row in rows:
            if row.errors:
                continue
            agency = self.agencies[row.data["agency"]]
            versions = history.get(agency.id, [])
            current = next((v for v in versions if v.valid_to is None), None)
            if current is not None and _same_geometry(to_shape(current.geom), row.geom):
                row.status = "unchanged"
                continue
            _check_successor(ctx, row, [(v.valid_from, v.valid_to) for v in versions], row.data["valid_from"])
            row.status = "changed" if current is not None else "new"
            row.data["agency_id"] = agency.id

    def absent(self, rows: list[_Row]) -> int:
        mentioned = {self.agencies[r.data["agency"]].id for r in rows if r.data.get("agency")}
        return sum(1 for agency_id, versions in self.history.items()
                   if agency_id not in mentioned and any(v.valid_to is None for v in versions))

    def write(self, rows: list[_Row]) -> None:
        for row in rows:
            redraw_jurisdiction(self.s, row.data["agency_id"], row.geom, at=row.data["valid_from"],
                                note=self.ctx.note, reindex=False)


class _Grids(_Kind):
    """Unit grid cells: a cell whose geometry, unit or squad changed gets a new version with the same code."""

    name = "grids"
    fields = (
        FieldSpec("code", True, ("code", "grid_code", "wgbm", "网格编码", "网格代码")),
        FieldSpec("unit", False, ("unit", "unit_code", "admin_unit", "街道代码", "乡镇代码")),
        FieldSpec("squad", False, ("squad", "squad_code", "agency", "中队")),
        _VALID_FROM,
    )

    def plan(self, rows: list[_Row]) -> None:
        ctx = self.ctx
        self.units = dict(self.s.execute(select(m.AdminUnit.code, m.AdminUnit.id)
                                         .where(m.AdminUnit.county_code == ctx.county)).all())
        self.squads = {a.code: a for a in self.s.scalars(select(m.Agency).where(m.Agency.county_code == ctx.county))}
        for row in rows:
            self._attributes(row)
        _duplicates(ctx, rows, "code", "code")
        self._infer_squads([r for r in rows if not r.errors and "squad_id" not in r.data])
        self._areas([r for r in rows if not r.errors])
        codes = sorted({r.data["code"] for r in rows if r.data.get("code")})
        history: dict[str, list[m.GridCell]] = {}
        for start in range(0, len(codes), 5000):
            chunk = codes[start:start + 5000]
            for cell in self.s.scalars(select(m.GridCell).where(m.GridCell.county_code == ctx.county,
                                                                m.GridCell.code.in_(chunk))):
                history.setdefault(cell.code, []).append(cell)
        for row in rows:
            if row.errors:
                continue
            versions = history.get(row.data["code"], [])
            current = next((v for v in versions if v.valid_to is None), None)
            row.data["current"] = current
            if current is not None and (current.admin_unit_id == row.data["admin_unit_id"]
                                        and current.squad_id == row.data["squad_id"]
                                        and _same_geometry(to_shape(current.geom), row.geom)):
                row.status = "unchanged"
                continue
            _check_successor(ctx, row, [(v.valid_from, v.valid_to) for v in versions], row.data["valid_from"])
            row.status = "changed" if current is not None else "new"

    def _attributes(self, row: _Row) -> None:
        ctx, layout = self.ctx, self.ctx.layout
        code = row.values.get("code")
        parsed = None
        if code is None:
            ctx.error(row, "code", "required")
        else:
            try:
                parsed = layout.parse(code)
            except ValidationError as exc:
                problem = exc.errors[0]
                if problem.field == "code":
                    ctx.error(row, "code", f"{code!r} is not a {layout.total_digits}-digit grid code")
                else:
                    ctx.error(row, "code", f"{code!r} is not a valid grid code: {problem}")
        if parsed is not None and parsed.county != ctx.county:
            ctx.error(row, "code", f"{code!r} belongs to county {parsed.county}, not {ctx.county}")
            parsed = None
        row.data["code"] = parsed.code if parsed is not None else None
        unit = row.values.get("unit") or (parsed.unit_code if parsed is not None else None)
        if unit is not None:
            if unit in self.units:
                row.data["admin_unit_id"] = self.units[unit]
            elif row.values.get("unit"):
                ctx.error(row, "unit", f"no administrative unit {unit!r} in county {ctx.county}")
            else:
                ctx.error(row, "code", f"no administrative unit {unit!r} (taken from the grid code) in county "
                                       f"{ctx.county}; import the units first or give a unit column")
        row.data["community"] = parsed.community if parsed is not None else None
        squad = row.values.get("squad")
        if squad is not None:
            agency = self.squads.get(squad)
            if agency is None:
                ctx.error(row, "squad", f"unknown agency code {squad!r} in county {ctx.county}")
            elif agency.kind != "squad":
                ctx.error(row, "squad", f"agency {squad!r} is a {agency.kind}, not a squad")
            else:
                row.data["squad_id"] = agency.id
        row.data["valid_from"] = ctx.row_valid_from(row)

    def _infer_squads(self, rows: list[_Row]) -> None:
        """Give cells without a squad the squad whose jurisdiction in force covers a point on the cell."""
        missing = 0
        for at in sorted({r.data["valid_from"] for r in rows}):
            batch = [r for r in rows if r.data["valid_from"] == at]
            found = self.s.execute(
                select(m.Jurisdiction.agency_id, m.Jurisdiction.geom)
                .join(m.Agency, m.Agency.id == m.Jurisdiction.agency_id)
                .where(m.Jurisdiction.county_code == self.ctx.county, m.Agency.kind == "squad",
                       m.Jurisdiction.valid_from <= at,
                       m.Jurisdiction.valid_to.is_(None) | (m.Jurisdiction.valid_to > at))
                .order_by(m.Agency.code)
            ).all()
            points = shapely.point_on_surface(np.array([r.geom for r in batch], dtype=object))
            index = PolygonIndex([to_shape(geom) for _, geom in found])
            hits = index.locate(shapely.get_x(points), shapely.get_y(points))
            for row, hit in zip(batch, hits.tolist()):
                row.data["squad_id"] = found[hit][0] if hit >= 0 else None
            missing += int((hits < 0).sum())
        if missing:
            self.ctx.report.warnings.append(f"{missing} grid cells lie in no squad jurisdiction in force; "
                                            "their squad is left empty")

    def _areas(self, rows: list[_Row]) -> None:
        """Measure each cell in the county's metric CRS; a zero area is an error."""
        if not rows:
            return
        transformer = Transformer.from_crs(WGS84, self.ctx.settings.metric_crs, always_xy=True)

        def project(xy: np.ndarray) -> np.ndarray:
            return np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))

        areas = shapely.area(shapely.transform(np.array([r.geom for r in rows], dtype=object), project))
        for row, area in zip(rows, areas.tolist()):
            if not area > 0:
                row.errors.append(RowError(row.row, self.ctx.read.geometry_field, "the cell has no area"))
            row.data["area_m2"] = round(float(area), 2)

    def absent(self, rows: list[_Row]) -> int:
        mentioned = {r.data.get("code") for r in rows if r.data.get("code")}
        current = self.s.scalars(select(m.GridCell.code).where(m.GridCell.county_code == self.ctx.county,
                                                               m.GridCell.valid_to.is_(None)))
        return sum(1 for code in current if code not in mentioned)

    def write(self, rows: list[_Row]) -> None:
        for row in rows:
            if row.data["current"] is not None:
                row.data["current"].valid_to = row.data["valid_from"]
        self.s.flush()
        cells = [
            m.GridCell(county_code=self.ctx.county, code=d["code"], admin_unit_id=d["admin_unit_id"],
                       squad_id=d["squad_id"], community=d["community"], area_m2=d["area_m2"],
                       valid_from=d["valid_from"], geom=to_ewkt(row.geom))
            for row in rows for d in (row.data,)
        ]
        self.s.add_all(cells)
        self.s.flush()
        # A new version of a cell keeps the patrollers of the version it replaces.
        successor = {row.data["current"].id: cell.id for row, cell in zip(rows, cells) if row.data["current"]}
        if successor:
            links = self.s.execute(select(m.GridCellPatroller.grid_cell_id, m.GridCellPatroller.user_id)
                                   .where(m.GridCellPatroller.grid_cell_id.in_(list(successor)))).all()
            if links:
                self.s.execute(insert(m.GridCellPatroller), [
                    {"grid_cell_id": successor[cell_id], "user_id": user_id, "county_code": self.ctx.county}
                    for cell_id, user_id in links
                ])


KINDS: dict[str, type[_Kind]] = {k.name: k for k in (_Units, _Jurisdictions, _Grids)}


def _kind_class(kind: str) -> type[_Kind]:
    try:
        return KINDS[kind]
    except KeyError:
        raise ValidationError(FieldError("kind", f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")) from None


# -- command line ---------------------------------------------------------------------------------------


class FileProblem(click.ClickException):
    """A file that cannot be imported at all (not a GIS file, missing column, empty): exit status 2."""

    exit_code = 2


def _field_mappings(values: tuple[str, ...]) -> dict[str, str]:
    mapping = {}
    for value in values:
        name, sep, column = value.partition("=")
        if not sep or not name.strip() or not column.strip():
            raise click.BadParameter(f"expected NAME=COLUMN, got {value!r}", param_hint="--field")
        mapping[name.strip()] = column.strip()
    return mapping


@click.command("import")
@click.argument("kind", type=click.Choice(list(KINDS)))
@click.argument("file", type=click.Path(exists=True, dir_okay=True, path_type=Path))
@click.option("--layer", help="Layer to read (GeoPackage, KML and other multi-layer files).")
@click.option("--crs", help="Force the source CRS, e.g. EPSG:4548 (overrides the file's).")
@click.option("--coord-system", type=click.Choice(SYSTEMS), default="wgs84", show_default=True,
              help="Declare GCJ-02 (AMap, Tencent) or BD-09 (Baidu) lon/lat, converted to WGS-84.")
@click.option("--field", "field_maps", multiple=True, metavar="NAME=COLUMN",
              help="Map a field to a column, e.g. --field code=WGBM (repeatable).")
@click.option("--wkt-column", help="CSV column holding WKT (default: wkt, geometry, geom, the_geom).")
@click.option("--layout", default="6+3+3+2", show_default=True, help="Grid code layout (grids only).")
@click.option("--repair", is_flag=True, help="Repair invalid polygons with make_valid instead of rejecting them.")
@click.option("--skip-invalid", is_flag=True, help="Import the valid rows and skip the invalid ones.")
@click.option("--valid-from", help="ISO 8601 start of new versions (default: now); a row's own column wins.")
@click.option("--commit", is_flag=True, help="Write the changes (default: dry run, nothing written).")
def import_command(kind: str, file: Path, layer: str | None, crs: str | None, coord_system: str,
                   field_maps: tuple[str, ...], wkt_column: str | None, layout: str, repair: bool,
                   skip_invalid: bool, valid_from: str | None, commit: bool) -> None:
    """Import KIND (units, jurisdictions or grids) from FILE: Shapefile, GeoPackage, GeoJSON, KML or CSV+WKT.

    Dry run unless --commit. Changed jurisdictions and grid cells get a new version; the old one is closed.
    Exit status: 0 done, 1 invalid rows blocked the import, 2 the file cannot be read.
    """
    from tqdm import tqdm

    from gis_platform.cli import echo_progress, load_settings
    from gis_platform.db import make_engine, resolve_database_url

    settings = load_settings()
    mapping = _field_mappings(field_maps)
    try:
        grid_layout = GridCodeLayout.from_string(layout)
        start = parse_valid_from(valid_from, field="--valid-from") if valid_from else None
    except ValidationError as exc:
        raise click.BadParameter(exc.detail) from None
    try:
        result = read_features(file, kind=kind, layer=layer, crs=crs, coord_system=coord_system, fields=mapping,
                               wkt_column=wkt_column, county_lon=central_meridian(settings.metric_crs))
    except ValidationError as exc:
        raise FileProblem(exc.detail) from None
    url, _ = resolve_database_url(settings, progress=echo_progress)
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            with tqdm(total=len(result.frame), desc=f"checking {kind}", unit="row", file=sys.stderr,
                      disable=True if len(result.frame) < 500 else None) as bar:
                try:
                    report = import_features(session, settings, result, kind=kind, commit=commit, repair=repair,
                                             skip_invalid=skip_invalid, valid_from=start, layout=grid_layout,
                                             progress=bar.update)
                except PlatformError as exc:
                    session.rollback()
                    raise click.ClickException(exc.detail) from None
            if report.written:
                session.commit()
            else:
                session.rollback()
    finally:
        engine.dispose()
    click.echo(report.render())
    if report.blocked:
        raise click.exceptions.Exit(1)
