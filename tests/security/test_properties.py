"""Property-based tests of the parsers that take outside input: GeoJSON, WKT, geometry validation, CSV import.

Whatever they are given, they either return what they promise or raise the platform's own
``ValidationError`` (per-row ``RowError`` for the CSV import): never another exception type, and
never a crash of the process. Whatever ``validate_geometry`` lets through is non-empty, finite,
valid, of an allowed type and inside the bounds asked for.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from gis_platform.errors import ValidationError
from gis_platform.geometry import MAX_COLLECTIONS, POLYGONAL, parse_geometry, validate_geometry
from gis_platform.settings import Settings
from grids import importer
from grids.importer import ImportReport, RowError, import_features, read_features
from tests.security.fuzzing import hypothesis_settings

BOUNDS = (115.70, 36.00, 115.80, 36.05)
TYPES = ("Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon", "GeometryCollection",
         "Feature", "FeatureCollection", "point", "", "Polygon ")

# Numbers as JSON would carry them: in the county, anywhere, swapped, huge, tiny, NaN and infinities.
lon = st.floats(115.69, 115.81)
lat = st.floats(35.99, 36.06)
number = st.one_of(lon, lat, st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**70), 2**70),
                   st.sampled_from([0, -0.0, 1e-320, 1e308, 36.02, 115.72, 180.0, -90.0]))
json_leaf = st.one_of(st.none(), st.booleans(), number, st.text(max_size=12))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                             st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                          max_leaves=16)
position = st.one_of(st.tuples(lon, lat).map(list), st.tuples(lat, lon).map(list), st.lists(number, max_size=4))
ring = st.lists(position, min_size=0, max_size=8).map(lambda r: r + r[:1] if r else r)
coordinates = st.one_of(position, st.lists(ring, max_size=3), st.lists(st.lists(ring, max_size=2), max_size=2),
                        json_value)
geojson = st.builds(lambda kind, coords, extra: {"type": kind, "coordinates": coords, **extra},
                    st.sampled_from(TYPES), coordinates,
                    st.dictionaries(st.sampled_from(["geometries", "bbox", "crs", "properties", "geometry"]),
                                    json_value, max_size=2))


@st.composite
def wkt(draw) -> str:
    """Return WKT-like text: mostly well-formed, sometimes cut short, with odd numbers and prefixes."""
    def num(value: float) -> str:
        return draw(st.sampled_from([repr(value), f"{value:.3f}", "nan", "inf", "-inf", "1e999", "1e-320", "x", ""]))

    def coords(n: int) -> str:
        points = draw(st.lists(st.tuples(st.floats(115.6, 115.9), st.floats(35.9, 36.1)), min_size=n, max_size=n + 4))
        if draw(st.booleans()):
            points = [(y, x) for x, y in points]
        text = [f"{num(x)} {num(y)}" for x, y in points]
        if draw(st.booleans()) and text:
            text.append(text[0])  # closed ring
        return ", ".join(text)

    shapes = [
        lambda: f"POINT ({coords(1).split(',')[0]})",
        lambda: "POINT EMPTY",
        lambda: f"POLYGON (({coords(3)}))",
        lambda: f"POLYGON (({coords(3)}), ({coords(3)}))",
        lambda: f"MULTIPOLYGON ((({coords(3)})), (({coords(3)})))",
        lambda: f"LINESTRING ({coords(2)})",
        lambda: f"GEOMETRYCOLLECTION (POINT ({coords(1).split(',')[0]}), POLYGON (({coords(3)})))",
        lambda: "GEOMETRYCOLLECTION (" * (MAX_COLLECTIONS + 1) + "POINT (1 2)" + ")" * (MAX_COLLECTIONS + 1),
        lambda: "POLYGON EMPTY",
        lambda: "MULTIPOLYGON EMPTY",
    ]
    text = draw(st.sampled_from(shapes))()
    if draw(st.booleans()):
        text = text.lower()
    prefix = draw(st.sampled_from(["", "", "SRID=4326;", "srid=4326 ; ", "SRID=3857;", "SRID=x;", "SRID=;"]))
    text = prefix + text
    if draw(st.integers(0, 4)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    return text


def assert_usable(geom: shapely.Geometry, types: tuple[str, ...], bounds: tuple[float, float, float, float]) -> None:
    assert not geom.is_empty
    assert geom.geom_type in types
    assert geom.is_valid
    coords = shapely.get_coordinates(geom)
    assert np.isfinite(coords).all()
    minx, miny, maxx, maxy = geom.bounds
    assert bounds[0] <= minx and maxx <= bounds[2] and bounds[1] <= miny and maxy <= bounds[3]


def parse_and_validate(value, *, repair: bool, types: tuple[str, ...] = ("Point", *POLYGONAL)) -> None:
    """Parse and validate; only the platform's ValidationError may come out, and what passes is usable."""
    try:
        geom = parse_geometry(value)
    except ValidationError as exc:
        assert exc.errors and exc.status == 400
        return
    assert isinstance(geom, shapely.Geometry)
    try:
        checked = validate_geometry(geom, bounds=BOUNDS, repair=repair, types=types)
    except ValidationError as exc:
        assert exc.errors and exc.status == 400
        return
    assert_usable(checked, types, BOUNDS)


@hypothesis_settings(300)
@given(value=st.one_of(geojson, json_value), repair=st.booleans())
def test_geojson_objects_parse_or_fail_with_a_validation_error(value, repair) -> None:
    parse_and_validate(value, repair=repair)


@hypothesis_settings(300)
@given(text=st.one_of(wkt(), st.text(max_size=80), geojson.map(json.dumps)),
       repair=st.booleans())
def test_wkt_and_geojson_text_parse_or_fail_with_a_validation_error(text, repair) -> None:
    parse_and_validate(text, repair=repair)


@hypothesis_settings(200)
@given(text=wkt(), repair=st.booleans())
def test_areas_for_import_are_polygonal_after_validation(text, repair) -> None:
    parse_and_validate(text, repair=repair, types=POLYGONAL)


@hypothesis_settings(100)
@given(x=number, y=number)
def test_a_point_is_either_inside_the_bounds_or_refused(x, y) -> None:
    try:
        geom = validate_geometry(shapely.Point(float(x), float(y)), bounds=BOUNDS, types=("Point",))
    except ValidationError as exc:
        assert exc.errors
        return
    assert_usable(geom, ("Point",), BOUNDS)


@pytest.mark.parametrize("depth", [1_000, 60_000])
def test_deeply_nested_collections_are_refused_before_geos_sees_them(depth: int) -> None:
    # 60,000 levels overflow GEOS's stack (a segmentation fault) if they ever reach it.
    wkt_text = "GEOMETRYCOLLECTION (" * depth + "POINT (1 2)" + ")" * depth
    geojson_text = ('{"type":"GeometryCollection","geometries":[' * depth + '{"type":"Point","coordinates":[1,2]}'
                    + "]}" * depth)
    for text in (wkt_text, geojson_text):
        with pytest.raises(ValidationError, match="geometry collections"):
            parse_geometry(text)


def test_deeply_nested_geojson_objects_are_a_validation_error() -> None:
    value: dict = {"type": "Point", "coordinates": [1, 2]}
    for _ in range(5_000):
        value = {"type": "GeometryCollection", "geometries": [value]} if _ < 10 else {"x": value}
    with pytest.raises(ValidationError):
        parse_geometry(value)


# -- the CSV import ------------------------------------------------------------------------------------------
def _cell_wkt(x: float, y: float, size: float) -> str:
    return f"POLYGON (({x} {y}, {x + size} {y}, {x + size} {y + size}, {x} {y + size}, {x} {y}))"


@st.composite
def csv_row(draw) -> dict[str, str]:
    """Return one CSV row: a code, lon/lat text columns and a WKT column built from them, or noise."""
    x, y = draw(st.floats(115.6, 115.9)), draw(st.floats(35.9, 36.1))
    lon_text = draw(st.sampled_from([repr(x), f"{x:.2f}", "nan", "", "东经115°", repr(y)]))
    lat_text = draw(st.sampled_from([repr(y), f"{y:.2f}", "inf", "", repr(x)]))
    geometry = draw(st.one_of(
        st.just(_cell_wkt(x, y, draw(st.floats(0.0001, 0.2)))),
        st.just(_cell_wkt(y, x, 0.01)),  # swapped
        st.just(f"POINT ({lon_text} {lat_text})"),
        st.just(f"POLYGON (({lon_text} {lat_text}, {x} {y}, {lon_text} {y}, {lon_text} {lat_text}))"),
        st.just(f"SRID=4548;{_cell_wkt(500000 + x, 3990000 + y, 100)}"),
        st.just(f"SRID=4326;{_cell_wkt(x, y, 0.01)}"),
        wkt(),
        st.text(max_size=40),
    ))
    code = draw(st.one_of(st.from_regex(r"3715210010010[0-9]", fullmatch=True), st.text(max_size=16)))
    return {"code": code, "lon": lon_text, "lat": lat_text, "wkt": geometry,
            "name": draw(st.text(max_size=12)), "valid_from": draw(st.sampled_from(["", "2021-01-01",
                                                                                     "2021-01-01T00:00:00", "x"]))}


@pytest.fixture(scope="module")
def csv_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("csv-fuzz")


@pytest.fixture(scope="module")
def import_settings(csv_dir) -> Settings:
    return Settings(_env_file=None, database_url=None, data_dir=csv_dir, county_code="371521",
                    metric_crs="EPSG:4548")


@hypothesis_settings(40)
@given(rows=st.lists(csv_row(), min_size=1, max_size=6), kind=st.sampled_from(["grids", "units", "jurisdictions"]),
       encoding=st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]))
def test_a_csv_of_random_wkt_and_lon_lat_text_imports_or_reports_per_row(engine, csv_dir, import_settings, rows, kind,
                                                                         encoding) -> None:
    path = csv_dir / "fuzz.csv"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), quoting=csv.QUOTE_ALL)
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes(out.getvalue().encode(encoding, errors="replace"))
    try:
        result = read_features(path, kind=kind)
    except ValidationError as exc:
        assert exc.errors
        return
    assert len(result.frame) == len(rows)
    assert all(isinstance(e, RowError) and 1 <= e.row <= len(rows) for e in result.errors)
    # A dry run against the store: SELECTs only, every row either planned or carrying its own errors.
    with Session(engine) as session:
        try:
            report = import_features(session, import_settings, result, kind=kind, repair=True)
        except ValidationError as exc:
            assert exc.errors
            return
        finally:
            session.rollback()
    assert isinstance(report, ImportReport) and not report.written
    assert report.new + report.changed + report.unchanged + report.invalid == len(rows)
    assert all(isinstance(e, RowError) and 1 <= e.row <= len(rows) for e in report.errors)


@hypothesis_settings(60)
@given(values=st.lists(wkt(), min_size=1, max_size=5))
def test_csv_geometry_checks_give_a_multipolygon_or_row_errors(csv_dir, values) -> None:
    path = csv_dir / "wkt.csv"
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL)
    writer.writerow(["code", "wkt"])
    writer.writerows([f"3715210010010{i}", v] for i, v in enumerate(values))
    path.write_text(out.getvalue(), encoding="utf-8")
    try:
        result = read_features(path, kind="grids")
    except ValidationError:
        return
    rows = importer._rows(result)
    report = ImportReport("grids", str(path), result.crs, None)
    importer._check_geometries(rows, result.geometry_field, bounds=BOUNDS, repair=True, report=report, progress=None)
    for row in rows:
        assert row.errors or (isinstance(row.geom, shapely.MultiPolygon) and row.geom.is_valid
                              and math.isfinite(row.geom.area))
