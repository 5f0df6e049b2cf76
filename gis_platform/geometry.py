"""Parse and validate incoming geometry before it reaches the store.

The database refuses bad geometry too (CHECK constraints), but a user deserves a message that names
the field and says what is wrong, and a bulk job must know which record failed.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import shapely
from shapely.errors import GEOSException, ShapelyError
from shapely.validation import explain_validity

from gis_platform.coords import check_lonlat
from gis_platform.errors import FieldError, ValidationError

MAX_VERTICES = 100_000
# GEOS reads nested collections recursively: some tens of thousands of levels overflow its stack and
# crash the process (a segmentation fault, not an exception). No platform geometry is a collection,
# so a generous bound on how many a text names costs nothing.
MAX_COLLECTIONS = 64
POLYGONAL = ("Polygon", "MultiPolygon")


def parse_geometry(value: Any, *, field: str = "geometry") -> shapely.Geometry:
    """Return a shapely geometry from a GeoJSON object or string, or WKT/EWKT text."""
    if isinstance(value, shapely.Geometry):
        return value
    try:
        # "nan" in WKT makes numpy warn; validate_geometry refuses non-finite coordinates by name.
        with np.errstate(all="ignore"):
            if isinstance(value, dict):
                text = json.dumps(value, allow_nan=False)
                _check_collections(text, field)
                return shapely.from_geojson(text)
            if isinstance(value, str):
                text = value.strip()
                _check_collections(text, field)
                if text.startswith("{"):
                    return shapely.from_geojson(text)
                if text.upper().startswith("SRID="):
                    srid, _, text = text.partition(";")
                    if srid.split("=", 1)[1].strip() != "4326":
                        raise ValidationError(FieldError(field, f"SRID must be 4326 (WGS-84 lon/lat), got {srid}"))
                return shapely.from_wkt(text)
    except ValidationError:
        raise
    except RecursionError:
        raise ValidationError(FieldError(field, "the geometry object is nested too deeply")) from None
    except (GEOSException, ShapelyError, ValueError, TypeError) as exc:
        raise ValidationError(FieldError(field, f"not valid GeoJSON or WKT: {str(exc).splitlines()[0][:200]}")) from None
    raise ValidationError(FieldError(field, "expected a GeoJSON geometry object or WKT text"))


def _check_collections(text: str, field: str) -> None:
    if text.casefold().count("geometrycollection") > MAX_COLLECTIONS:
        raise ValidationError(FieldError(field, f"more than {MAX_COLLECTIONS} geometry collections"))


def validate_geometry(geom: shapely.Geometry | None, *, field: str = "geometry",
                      types: tuple[str, ...] = ("Point", *POLYGONAL),
                      bounds: tuple[float, float, float, float] | None = None,
                      repair: bool = False, max_vertices: int = MAX_VERTICES) -> shapely.Geometry:
    """Return the geometry if it is usable lon/lat of an allowed type, else raise naming the problem."""
    if geom is None or geom.is_empty:
        raise ValidationError(FieldError(field, "geometry is empty"))
    if geom.geom_type not in types:
        raise ValidationError(FieldError(field, f"{geom.geom_type} is not allowed here; expected {' or '.join(types)}"))
    count = shapely.get_num_coordinates(geom)
    if count > max_vertices:
        raise ValidationError(FieldError(field, f"{count:,} vertices is more than the {max_vertices:,} allowed"))
    if shapely.has_z(geom):
        geom = shapely.force_2d(geom)
    coords = shapely.get_coordinates(geom)
    if not all(math.isfinite(v) for v in coords.ravel()):
        raise ValidationError(FieldError(field, "coordinates must be finite numbers (no NaN or infinity)"))
    minx, miny, maxx, maxy = geom.bounds
    # Checking the two opposite corners catches swapped order and out-of-county shapes alike.
    check_lonlat(minx, miny, field=field, bounds=bounds)
    check_lonlat(maxx, maxy, field=field, bounds=bounds)
    if not geom.is_valid:
        reason = explain_validity(geom)
        if not repair:
            raise ValidationError(FieldError(field, f"invalid geometry: {reason}"))
        fixed = shapely.make_valid(geom)
        if fixed.geom_type == "GeometryCollection":
            parts = [p for p in shapely.get_parts(fixed) if p.geom_type in types]
            fixed = shapely.union_all(parts) if parts else fixed
        if fixed.is_empty or fixed.geom_type not in types:
            raise ValidationError(FieldError(field, f"invalid geometry that cannot be repaired: {reason}"))
        geom = fixed
    return geom


def as_multipolygon(geom: shapely.Geometry, *, field: str = "geometry") -> shapely.MultiPolygon:
    """Return a polygonal geometry as a MultiPolygon (the stored type of areas)."""
    if geom.geom_type == "Polygon":
        return shapely.MultiPolygon([geom])
    if geom.geom_type == "MultiPolygon":
        return geom
    raise ValidationError(FieldError(field, f"{geom.geom_type} is not an area"))


def to_ewkt(geom: shapely.Geometry) -> str:
    """Return EWKT in EPSG:4326 at full precision, the form the models bind."""
    return "SRID=4326;" + shapely.to_wkt(geom, rounding_precision=-1)
