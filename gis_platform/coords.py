"""Coordinate systems met in Chinese city management, and conversion to stored WGS-84.

GPS gives WGS-84; AMap, Tencent and WeChat give GCJ-02 (offset by a few hundred metres); Baidu gives
BD-09; Tianditu uses CGCS2000, within centimetres of WGS-84 and stored as is. Projected sources are
usually CGCS2000 3-degree Gauss-Krüger, with or without the zone number prefixed to the easting.
The GCJ-02/BD-09 formulas come from the `fast-geocn` package (about 0.5 m after inversion).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from fast_geocn import coord as _geocn

from gis_platform.errors import FieldError, ValidationError

SYSTEMS = ("wgs84", "gcj02", "bd09", "cgcs2000")

# EPSG codes of CGCS2000 3-degree Gauss-Krüger zones: "CM nnnE" (no prefix) and "zone nn" (prefixed).
GK3_CM_FIRST_EPSG, GK3_CM_FIRST_MERIDIAN = 4534, 75  # EPSG:4534 = CM 75°E … EPSG:4554 = CM 135°E
GK3_ZONE_FIRST_EPSG, GK3_ZONE_FIRST = 4513, 25  # EPSG:4513 = zone 25 (CM 75°E) … EPSG:4533 = zone 45


@dataclass(frozen=True)
class Conversion:
    """What was done to incoming coordinates, kept with the record."""

    system: str
    converted: bool
    original: Any = None

    def as_record(self) -> dict[str, Any] | None:
        """Return the JSON stored beside the geometry, or None when nothing was converted."""
        if not self.converted:
            return None
        return {"system": self.system, "original": self.original, "method": "fast-geocn"}


def to_wgs84(lon: float, lat: float, system: str) -> tuple[float, float]:
    """Return WGS-84 lon/lat for a point given in a declared system."""
    if system in ("wgs84", "cgcs2000"):
        return lon, lat
    if system == "gcj02":
        return _geocn.gcj02_to_wgs84(lon, lat)
    if system == "bd09":
        return _geocn.bd09_to_wgs84(lon, lat)
    raise ValidationError(FieldError("coord_system", f"unknown coordinate system {system!r}; use one of {SYSTEMS}"))


def from_wgs84(lon: float, lat: float, system: str) -> tuple[float, float]:
    """Return lon/lat in a declared system for a WGS-84 point (for tests and basemap shifting)."""
    if system in ("wgs84", "cgcs2000"):
        return lon, lat
    if system == "gcj02":
        return _geocn.wgs84_to_gcj02(lon, lat)
    if system == "bd09":
        return _geocn.wgs84_to_bd09(lon, lat)
    raise ValidationError(FieldError("coord_system", f"unknown coordinate system {system!r}; use one of {SYSTEMS}"))


def geometry_to_wgs84(geom: shapely.Geometry, system: str) -> shapely.Geometry:
    """Return a lon/lat geometry converted from a declared system to WGS-84, vertex by vertex."""
    if system in ("wgs84", "cgcs2000"):
        return geom
    to_wgs84(0.0, 0.0, system)  # validates the name before any work

    def convert(xy: np.ndarray) -> np.ndarray:
        return np.array([to_wgs84(float(x), float(y), system) for x, y in xy]).reshape(xy.shape)

    return shapely.transform(geom, convert)


def gk3_epsg_for_longitude(lon: float, *, zone_prefix: bool = False) -> int:
    """Return the EPSG code of the CGCS2000 3-degree Gauss-Krüger zone containing a longitude."""
    zone = int(math.floor((lon + 1.5) / 3.0))  # zone n has its central meridian at 3n degrees
    if zone_prefix:
        return GK3_ZONE_FIRST_EPSG + zone - GK3_ZONE_FIRST
    return GK3_CM_FIRST_EPSG + (3 * zone - GK3_CM_FIRST_MERIDIAN) // 3


def guess_projected_epsg(xs: np.ndarray, ys: np.ndarray, *, county_lon: float) -> int | None:
    """Guess the CGCS2000 Gauss-Krüger EPSG code of coordinates that came without a CRS.

    Eastings of 8 digits carry the zone number in front (e.g. 39 500 000 for zone 39); eastings of
    6 digits are relative to a central meridian, taken from the county served. Returns None when the
    numbers look like neither.
    """
    x = float(np.nanmedian(xs))
    y = float(np.nanmedian(ys))
    if not (1_000_000 < y < 6_500_000):  # northings of mainland China in metres
        return None
    if 13_000_000 < x < 46_000_000:
        zone = int(x // 1_000_000)
        if GK3_ZONE_FIRST <= zone <= GK3_ZONE_FIRST + 20:
            return GK3_ZONE_FIRST_EPSG + zone - GK3_ZONE_FIRST
        return None
    if 100_000 < x < 900_000:
        return gk3_epsg_for_longitude(county_lon)
    return None


def looks_like_lonlat(xs: np.ndarray, ys: np.ndarray) -> bool:
    """Return whether coordinates are plausibly degrees (not metres)."""
    return bool(np.all(np.abs(xs) <= 180) and np.all(np.abs(ys) <= 90))


def check_lonlat(lon: Any, lat: Any, *, field: str = "location",
                 bounds: tuple[float, float, float, float] | None = None) -> tuple[float, float]:
    """Return a finite lon/lat pair, or raise naming the field: NaN, range, swapped order, outside bounds."""
    try:
        x, y = float(lon), float(lat)
    except (TypeError, ValueError):
        raise ValidationError(FieldError(field, "longitude and latitude must be numbers")) from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ValidationError(FieldError(field, "longitude and latitude must be finite numbers (no NaN or infinity)"))
    if bounds is not None:
        minx, miny, maxx, maxy = bounds
        inside = minx <= x <= maxx and miny <= y <= maxy
        swapped_inside = minx <= y <= maxx and miny <= x <= maxy
        if not inside and swapped_inside:
            raise ValidationError(FieldError(
                field, f"latitude and longitude look swapped: ({x}, {y}) — send [longitude, latitude]"))
        if not inside:
            raise ValidationError(FieldError(
                field, f"({x:.6f}, {y:.6f}) is outside the county "
                       f"({minx:.3f}–{maxx:.3f}°E, {miny:.3f}–{maxy:.3f}°N)"))
        return x, y
    if abs(y) > 90 and abs(x) <= 90:
        raise ValidationError(FieldError(field, f"latitude {y} is out of range; latitude and longitude look swapped"))
    if not (-180 <= x <= 180 and -90 <= y <= 90):
        raise ValidationError(FieldError(field, f"({x}, {y}) is not a longitude/latitude pair"))
    return x, y
