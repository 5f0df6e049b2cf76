import math

import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from gis_platform.coords import (
    check_lonlat, from_wgs84, gk3_epsg_for_longitude, guess_projected_epsg, to_wgs84,
)
from gis_platform.errors import ValidationError
from gis_platform.geometry import as_multipolygon, parse_geometry, validate_geometry

YANGGU = (115.645, 35.929, 116.110, 36.304)


def problem(exc_info):
    (err,) = exc_info.value.errors
    return err.field, err.problem


def test_parse_geojson_wkt_and_ewkt():
    assert parse_geometry({"type": "Point", "coordinates": [115.79, 36.11]}).equals(shapely.Point(115.79, 36.11))
    assert parse_geometry("POINT (115.79 36.11)").x == 115.79
    assert parse_geometry("SRID=4326;POINT (115.79 36.11)").y == 36.11


@pytest.mark.parametrize("value", ["POINT (1", "{\"type\": \"Point\"}", 42, "SRID=4548;POINT (1 2)", "", None])
def test_parse_rejects_garbage_naming_the_field(value):
    with pytest.raises(ValidationError) as err:
        parse_geometry(value, field="location")
    assert problem(err)[0] == "location"


def test_swapped_lat_lon_is_called_out():
    with pytest.raises(ValidationError) as err:
        check_lonlat(36.11, 115.79, bounds=YANGGU)
    assert "swapped" in problem(err)[1]
    with pytest.raises(ValidationError) as err:
        check_lonlat(36.11, 115.79)
    assert "swapped" in problem(err)[1]


def test_outside_the_county():
    with pytest.raises(ValidationError) as err:
        check_lonlat(116.40, 39.90, bounds=YANGGU, field="location")
    assert problem(err) == ("location", problem(err)[1]) and "outside the county" in problem(err)[1]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "abc", None])
def test_non_finite_numbers(value):
    with pytest.raises(ValidationError):
        check_lonlat(value, 36.1)


def test_bow_tie_rejected_or_repaired():
    bow = shapely.from_wkt("POLYGON ((115.78 36.10, 115.80 36.12, 115.80 36.10, 115.78 36.12, 115.78 36.10))")
    with pytest.raises(ValidationError) as err:
        validate_geometry(bow, field="footprint")
    assert problem(err)[0] == "footprint" and "Self-intersection" in problem(err)[1]
    fixed = validate_geometry(bow, field="footprint", repair=True)
    assert fixed.is_valid and fixed.geom_type == "MultiPolygon" and fixed.area > 0


def test_empty_wrong_type_and_too_many_vertices():
    with pytest.raises(ValidationError, match="empty"):
        validate_geometry(shapely.from_wkt("POLYGON EMPTY"))
    with pytest.raises(ValidationError, match="LineString is not allowed"):
        validate_geometry(shapely.LineString([(115.7, 36.0), (115.8, 36.1)]))
    import numpy as np

    angle = np.linspace(0, 2 * np.pi, 150_000, endpoint=False)
    circle = shapely.Polygon(np.column_stack([115.8 + 0.01 * np.cos(angle), 36.1 + 0.01 * np.sin(angle)]))
    with pytest.raises(ValidationError, match="vertices"):
        validate_geometry(circle)


def test_polygon_outside_county_rejected():
    far = shapely.box(116.3, 36.0, 116.4, 36.1)
    with pytest.raises(ValidationError, match="outside the county"):
        validate_geometry(far, bounds=YANGGU)


def test_as_multipolygon():
    assert as_multipolygon(shapely.box(0, 0, 1, 1)).geom_type == "MultiPolygon"
    with pytest.raises(ValidationError):
        as_multipolygon(shapely.Point(0, 0))


def test_gcj02_round_trip_and_offset():
    lon, lat = 115.79, 36.11
    glon, glat = from_wgs84(lon, lat, "gcj02")
    # GCJ-02 shifts points by a few hundred metres around here.
    assert 0.001 < abs(glon - lon) + abs(glat - lat) < 0.02
    back = to_wgs84(glon, glat, "gcj02")
    assert back == pytest.approx((lon, lat), abs=1e-5)
    assert to_wgs84(*from_wgs84(lon, lat, "bd09"), "bd09") == pytest.approx((lon, lat), abs=1e-5)
    assert to_wgs84(lon, lat, "cgcs2000") == (lon, lat)
    with pytest.raises(ValidationError):
        to_wgs84(lon, lat, "mars")


def test_gauss_kruger_zones():
    assert gk3_epsg_for_longitude(115.79) == 4548  # CM 117°E
    assert gk3_epsg_for_longitude(115.79, zone_prefix=True) == 4527  # zone 39
    assert gk3_epsg_for_longitude(118.6) == 4549  # CM 120°E
    import numpy as np

    assert guess_projected_epsg(np.array([39_400_000.0]), np.array([3_998_000.0]), county_lon=115.8) == 4527
    assert guess_projected_epsg(np.array([400_000.0]), np.array([3_998_000.0]), county_lon=115.8) == 4548
    assert guess_projected_epsg(np.array([115.8]), np.array([36.1]), county_lon=115.8) is None


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True), st.floats(allow_nan=True, allow_infinity=True))
def test_check_lonlat_never_crashes(lon, lat):
    try:
        x, y = check_lonlat(lon, lat, bounds=YANGGU)
    except ValidationError as err:
        assert err.errors and err.errors[0].field == "location"
    else:
        assert YANGGU[0] <= x <= YANGGU[2] and YANGGU[1] <= y <= YANGGU[3]


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60))
def test_parse_geometry_never_crashes_on_text(text):
    try:
        parse_geometry(text)
    except ValidationError as err:
        assert err.errors[0].field == "geometry"
