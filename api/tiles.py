"""Mapbox vector tiles of the platform's layers, built by PostGIS (``ST_AsMVT``) in Web Mercator.

``GET /api/v1/tiles/{layer}/{z}/{x}/{y}.mvt`` answers ``application/vnd.mapbox-vector-tile``; a tile
with no feature is answered ``204 No Content`` (map clients treat it as an empty tile).

Cases are aggregated so that a tile stays small however many cases exist: below ``CLUSTER_BELOW_ZOOM``,
and at any zoom when a tile would hold more than ``POINT_CAP`` points, the cases are counted per cell of
a ``CLUSTER_CELL``-unit grid in tile space (at most (4096 / 256)² = 256 features, about 12 kB, per tile:
a full screen of tiles at county zoom stays within a few hundred kilobytes however dense). A cluster
sits at the mean position of its cases and carries ``count``, ``count_<status>`` for each status present,
``overdue`` and ``cluster = true``. A cluster counts the cases inside its tile only (not the buffer), so
the clusters of neighbouring tiles never count a case twice. Clusters are counted from the cases'
longitudes and latitudes with Mercator arithmetic, without building a geometry per case, since a tile at
county zoom may hold every case of the county. The query-string filters (status, category, theme, the
assigned squad, time) apply to points and clusters alike.

Patrollers see only the cases assigned to their squad and liaisons only those assigned to their
agency; the filter runs in SQL. Tiles therefore differ by user: they are ``Cache-Control: private``
and vary on the credentials.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import AwareDateTime, DelimitedList, String
from apiflask.validators import Length, OneOf
from flask import Response, request
from marshmallow import ValidationError as SchemaError
from marshmallow import pre_load, validates_schema
from sqlalchemy import text
from sqlalchemy.orm import Session

from api.auth import SECURITY, STAFF, current_user, require
from api.deps import get_session, get_settings
from gis_platform import vocab
from gis_platform.errors import FieldError, NotFound, ValidationError

bp = APIBlueprint("tiles", __name__, url_prefix="/api/v1/tiles", tag="地图瓦片 Vector tiles")

MVT_MIMETYPE = "application/vnd.mapbox-vector-tile"
MAX_ZOOM = 22
EXTENT = 4096
BUFFER = 64  # tile units drawn beyond the edge, so symbols are not cut at tile borders
CLUSTER_BELOW_ZOOM = 14
CLUSTER_CELL = 256  # tile units: 16 × 16 cells per tile, 16 screen pixels apart on a 256-pixel tile
POINT_CAP = 1_000  # individual case points per tile (about 45 kB); beyond this the tile is aggregated too
MIN_CELL_PIXELS = 3  # grid cells narrower than this on a 256-pixel tile are left out
EARTH_CIRCUMFERENCE_M = 40_075_016.686
# Reports cancelled as invalid or merged into another case are not cases: shown only when asked for.
DEFAULT_STATUSES = tuple(s for s in vocab.CASE_STATUSES if s not in ("cancelled", "merged"))
OWN_UNIT_ROLES = ("patroller", "liaison")

# Every query starts from the tile's envelope in EPSG:3857 and its search box in EPSG:4326 (with the
# buffer as margin): stored geometry stays in 4326 so the GiST indexes on it narrow the search.
_ENVELOPE = """
WITH env AS (
    SELECT ST_TileEnvelope(:z, :x, :y) AS tile,
           ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => :margin), 4326) AS search
)"""


def _layer_sql(name: str, source: str) -> str:
    """Wrap a layer's constant source query (one row per feature) into one ST_AsMVT call."""
    # Both arguments are constants of this module; every value from a request is a bound parameter.
    return f"""{_ENVELOPE}
SELECT ST_AsMVT(t.*, '{name}', {EXTENT}, 'geom') FROM ({source}) AS t WHERE t.geom IS NOT NULL"""


def _mvt_geom(column: str) -> str:
    return f"ST_AsMVTGeom(ST_Transform({column}, 3857), env.tile, {EXTENT}, {BUFFER}, true) AS geom"


_IN_FORCE = "{t}.valid_from <= now() AND ({t}.valid_to IS NULL OR {t}.valid_to > now())"

GRID_CELLS_SQL = _layer_sql("grid_cells", f"""
    SELECT {_mvt_geom("g.geom")}, g.id, g.code, g.community, g.admin_unit_id, g.squad_id,
           round(g.area_m2)::int AS area_m2
    FROM grid_cell g CROSS JOIN env
    WHERE g.county_code = :county AND g.geom && env.search AND {_IN_FORCE.format(t="g")}
      AND g.area_m2 >= :min_area_m2""")

JURISDICTIONS_SQL = _layer_sql("jurisdictions", f"""
    SELECT {_mvt_geom("j.geom")}, j.id, j.agency_id, a.code AS agency_code, a.name, a.name_en, j.version
    FROM jurisdiction j JOIN agency a ON a.id = j.agency_id CROSS JOIN env
    WHERE j.county_code = :county AND a.kind = 'squad' AND j.geom && env.search AND {_IN_FORCE.format(t="j")}""")

ADMIN_UNITS_SQL = _layer_sql("admin_units", f"""
    SELECT {_mvt_geom("u.geom")}, u.id, u.code, u.name, u.name_en, u.level, u.parent_id
    FROM admin_unit u CROSS JOIN env
    WHERE u.county_code = :county AND u.geom && env.search""")

ILLEGAL_STRUCTURES_SQL = _layer_sql("illegal_structures", f"""
    SELECT {_mvt_geom("s.footprint")}, s.id, s.case_id, s.stage, round(s.area_m2::numeric, 1)::float8 AS area_m2,
           s.squad_id, s.admin_unit_id, to_char(s.discovered_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD')
           AS discovered_on
    FROM illegal_structure s CROSS JOIN env
    WHERE s.county_code = :county AND s.footprint && env.search""")

FUME_SITES_SQL = _layer_sql("fume_sites", f"""
    SELECT {_mvt_geom("f.geom")}, f.id, f.name, f.size_class, f.cooking_heads, f.purifier_installed,
           f.purifier_efficiency, f.squad_id, f.admin_unit_id
    FROM fume_site f CROSS JOIN env
    WHERE f.county_code = :county AND f.geom && env.search""")

# The cases a tile may show, whatever its shape: every value from a request is a bound parameter.
_CASE_FILTERS = """c.county_code = :county
          AND c.status = ANY(CAST(:statuses AS text[]))
          AND (CAST(:categories AS text[]) IS NULL OR k.code = ANY(CAST(:categories AS text[])))
          AND (CAST(:themes AS text[]) IS NULL OR k.theme = ANY(CAST(:themes AS text[])))
          AND (CAST(:since AS timestamptz) IS NULL OR c.reported_at >= CAST(:since AS timestamptz))
          AND (CAST(:until AS timestamptz) IS NULL OR c.reported_at < CAST(:until AS timestamptz))
          AND (NOT CAST(:own_unit_only AS boolean) OR c.assigned_agency_id = CAST(:agency_id AS integer))
          AND (CAST(:squads AS text[]) IS NULL OR c.assigned_agency_id = ANY(ARRAY(
                   SELECT a.id FROM agency a
                   WHERE a.county_code = :county AND a.code = ANY(CAST(:squads AS text[])))))"""
_OVERDUE = "COALESCE((c.handled_at IS NULL AND c.due_at < now()) OR c.handled_at > c.due_at, false)"

# Clusters are counted from the cases' longitude and latitude with the spherical Mercator formulas of
# EPSG:3857 (in tile units, y down): no geometry is built per case, so a county-wide tile over a million
# cases costs one pass of arithmetic and a small hash aggregate. A cluster counts only the cases inside
# the tile proper (half-open on its edges), so neighbouring tiles never count one twice; the cases of the
# box's float4 margin fall in no cell and are grouped once, then dropped (a WHERE on the expressions would
# make the planner expect a few rows and sort a million instead of hashing a thousand groups).
_CLUSTERS = f"""
    SELECT ST_MakePoint(round(sum(sx) / sum(n)), round(sum(sy) / sum(n))) AS geom, true AS cluster,
           sum(n)::int AS count, NULLIF(sum(late), 0)::int AS overdue,
           jsonb_object_agg('count_' || status, n) AS by_status
    FROM (
        SELECT CASE WHEN px >= 0 AND px < {EXTENT} AND py >= 0 AND py < {EXTENT}
                    THEN (floor(px / {CLUSTER_CELL}) * {EXTENT // CLUSTER_CELL} + floor(py / {CLUSTER_CELL}))::int
               END AS cell,
               status, count(*) AS n, count(*) FILTER (WHERE overdue) AS late, sum(px) AS sx, sum(py) AS sy
        FROM (
            SELECT ((ST_X(c.location) + 180) / 360 * :n - :x) * {EXTENT} AS px,
                   ((1 - asinh(tan(radians(ST_Y(c.location)))) / pi()) / 2 * :n - :y) * {EXTENT} AS py,
                   c.status, {_OVERDUE} AS overdue
            FROM "case" c JOIN category k ON k.id = c.category_id
            WHERE {_CASE_FILTERS} AND c.location && ST_MakeEnvelope(:west, :south, :east, :north, 4326)
        ) p
        GROUP BY 1, 2
    ) cells
    WHERE cell IS NOT NULL
    GROUP BY cell"""

_POINTS = f"""
    SELECT * FROM (
        SELECT ST_AsMVTGeom(ST_Transform(c.location, 3857), env.tile, {EXTENT}, {BUFFER}, true) AS geom,
               c.id AS fid, c.id, c.case_no, c.status, c.urgency, k.code AS category, k.theme, {_OVERDUE} AS overdue
        FROM "case" c JOIN category k ON k.id = c.category_id CROSS JOIN env
        WHERE {_CASE_FILTERS} AND c.location && env.search
    ) p
    WHERE geom IS NOT NULL"""

# One statement for both shapes of the cases layer; the CASE runs only the branch it needs (its
# sub-selects run on first use). Below CLUSTER_BELOW_ZOOM the tile is aggregated at once; above it the
# cases are counted first, stopping at the cap, so a dense tile never encodes its points.
CASES_SQL = f"""{_ENVELOPE}
SELECT CASE WHEN CAST(:aggregate AS boolean) OR (
                SELECT count(*) FROM (
                    SELECT 1 FROM "case" c JOIN category k ON k.id = c.category_id CROSS JOIN env
                    WHERE {_CASE_FILTERS} AND c.location && env.search LIMIT :point_cap + 1) capped
            ) > :point_cap
            THEN (SELECT ST_AsMVT(k.*, 'cases', {EXTENT}, 'geom') FROM ({_CLUSTERS}) k)
            ELSE (SELECT ST_AsMVT(p.*, 'cases', {EXTENT}, 'geom', 'fid') FROM ({_POINTS}) p)
       END"""


@dataclass(frozen=True)
class TileAddress:
    """A tile of the Web Mercator pyramid (XYZ scheme: y counts from the north)."""

    z: int
    x: int
    y: int

    @classmethod
    def parse(cls, z: str | int, x: str | int, y: str | int) -> TileAddress:
        """Return the address, or raise a ValidationError naming the wrong parts."""
        zoom = _integer("z", z)
        if not 0 <= zoom <= MAX_ZOOM:
            raise ValidationError(FieldError("z", f"zoom must lie in 0–{MAX_ZOOM}"))
        top = 2**zoom - 1
        col, row = _integer("x", x), _integer("y", y)
        errors = [FieldError(name, f"must lie in 0–{top} at zoom {zoom}")
                  for name, value in (("x", col), ("y", row)) if not 0 <= value <= top]
        if errors:
            raise ValidationError(errors)
        return cls(zoom, col, row)

    def metres_per_pixel(self) -> float:
        """Return the ground size of a pixel of a 256-pixel tile at this zoom (at the equator)."""
        return EARTH_CIRCUMFERENCE_M / (256 * 2**self.z)

    def lonlat_bounds(self) -> dict[str, float]:
        """Return the tile's west, south, east and north edges in degrees (EPSG:4326)."""
        n = 2**self.z

        def lat(row: int) -> float:
            return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

        return {"west": self.x / n * 360 - 180, "east": (self.x + 1) / n * 360 - 180,
                "north": lat(self.y), "south": lat(self.y + 1)}


def _integer(name: str, value: str | int) -> int:
    if isinstance(value, int):
        return value
    if not re.fullmatch(r"-?[0-9]{1,9}", value):
        raise ValidationError(FieldError(name, f"must be an integer, not {value[:20]!r}"))
    return int(value)


@dataclass(frozen=True)
class CaseFilter:
    """Which cases a tile shows: query-string filters plus the unit the user may see."""

    statuses: tuple[str, ...] = DEFAULT_STATUSES
    categories: tuple[str, ...] | None = None
    themes: tuple[str, ...] | None = None
    squads: tuple[str, ...] | None = None  # codes of the assigned agencies (squads, teams, offices)
    since: datetime | None = None
    until: datetime | None = None
    own_unit_only: bool = False
    agency_id: int | None = None

    def params(self) -> dict[str, Any]:
        """Return the filter as bound parameters of CASES_SQL."""
        return {"statuses": list(self.statuses), "categories": _list(self.categories),
                "themes": _list(self.themes), "squads": _list(self.squads), "since": self.since, "until": self.until,
                "own_unit_only": self.own_unit_only, "agency_id": self.agency_id}


def _list(values: tuple[str, ...] | None) -> list[str] | None:
    return None if values is None else list(values)


@dataclass(frozen=True)
class TileLayer:
    """One layer served as tiles: its query, cache lifetime and extra parameters by zoom."""

    name: str
    title: str
    sql: str
    max_age_s: int
    case_filters: bool = False  # the layer takes CaseFilter parameters
    extra: Callable[[TileAddress], Mapping[str, Any]] = field(default=lambda tile: {})  # by zoom


def _grid_cell_detail(tile: TileAddress) -> dict[str, Any]:
    # Level of detail by cell size: 100 m cells are sub-pixel at county zooms and would fill the tile.
    side = MIN_CELL_PIXELS * tile.metres_per_pixel()
    return {"min_area_m2": side * side}


LAYERS: dict[str, TileLayer] = {layer.name: layer for layer in (
    TileLayer("cases", "案卷 Cases", CASES_SQL, max_age_s=15, case_filters=True),
    TileLayer("grid_cells", "万米单元网格 Grid cells", GRID_CELLS_SQL, max_age_s=3600, extra=_grid_cell_detail),
    TileLayer("jurisdictions", "中队辖区 Squad jurisdictions", JURISDICTIONS_SQL, max_age_s=3600),
    TileLayer("admin_units", "行政区划 Administrative units", ADMIN_UNITS_SQL, max_age_s=3600),
    TileLayer("illegal_structures", "违法建设 Illegal structures", ILLEGAL_STRUCTURES_SQL, max_age_s=300),
    TileLayer("fume_sites", "餐饮油烟 Fume sites", FUME_SITES_SQL, max_age_s=300),
)}


def get_layer(name: str) -> TileLayer:
    """Return a tile layer by name, or raise NotFound listing the layers."""
    layer = LAYERS.get(name)
    if layer is None:
        raise NotFound(f"unknown layer {name[:40]!r}; layers: {', '.join(LAYERS)}")
    return layer


def render_tile(session: Session, layer: TileLayer, tile: TileAddress, county_code: str,
                cases: CaseFilter | None = None, *, point_cap: int = POINT_CAP) -> bytes:
    """Return the encoded tile (empty bytes when it holds no feature)."""
    params: dict[str, Any] = {"z": tile.z, "x": tile.x, "y": tile.y, "margin": BUFFER / EXTENT,
                              "county": county_code, **layer.extra(tile)}
    if layer.case_filters:
        params.update((cases or CaseFilter()).params(), aggregate=tile.z < CLUSTER_BELOW_ZOOM,
                      point_cap=point_cap, n=float(2**tile.z), **tile.lonlat_bounds())
        # The planner cannot tell how few clusters the cases fall into, and would sort every case of the
        # tile (a million at county zoom) rather than hash about a thousand groups.
        session.execute(text("SET LOCAL enable_sort = off"))
    # PostGIS declares ST_Transform and ST_AsMVTGeom expensive, so a tile of a few thousand rows looks
    # costly enough for JIT compilation, which then takes ten times longer than the query (1 s vs 60 ms).
    session.execute(text("SET LOCAL jit = off"))
    data = session.execute(text(layer.sql), params).scalar_one()
    return bytes(data or b"")


# --------------------------------------------------------------------------- HTTP


class TileQuery(Schema):
    status = DelimitedList(String(validate=OneOf(vocab.CASE_STATUSES)), metadata={
        "description": "cases: comma-separated statuses (default: all but cancelled and merged)"})
    category = DelimitedList(String(validate=Length(1, 32)), metadata={
        "description": "cases: comma-separated category codes"})
    theme = DelimitedList(String(validate=OneOf(vocab.THEMES)), metadata={
        "description": "cases: comma-separated themes"})
    squad = DelimitedList(String(validate=Length(1, 32)), metadata={
        "description": "cases: comma-separated codes of the assigned squad (or other assigned unit), as in the "
                       "cases layer's squad filter"})
    since = AwareDateTime(format="iso", metadata={
        "description": "cases reported at or after (ISO 8601 with offset, e.g. 2021-05-01T00:00:00%2B08:00)"})
    until = AwareDateTime(format="iso", metadata={"description": "cases reported before (ISO 8601 with offset)"})

    @pre_load
    def _restore_plus(self, data: Any, **kwargs: Any) -> Any:
        # An unencoded "+08:00" arrives as " 08:00" (a plus means a space in a query string).
        if not isinstance(data, Mapping):
            return data
        out = {key: data.get(key) for key in data}
        for key in ("since", "until"):
            if isinstance(out.get(key), str):
                out[key] = re.sub(r" (\d{2}(:?\d{2})?)$", r"+\1", out[key])
        return out

    @validates_schema
    def _ordered(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise SchemaError("must be later than since", field_name="until")


def case_filter_for(query: Mapping[str, Any], user: Any) -> CaseFilter:
    """Return the case filter for a request: its query string and the user's unit."""
    return CaseFilter(
        statuses=tuple(query["status"]) if query.get("status") else DEFAULT_STATUSES,
        categories=tuple(query["category"]) if query.get("category") else None,
        themes=tuple(query["theme"]) if query.get("theme") else None,
        squads=tuple(query["squad"]) if query.get("squad") else None,
        since=query.get("since"),
        until=query.get("until"),
        own_unit_only=user.role in OWN_UNIT_ROLES,
        agency_id=user.agency_id,
    )


def tile_response(data: bytes, layer: TileLayer) -> Response:
    """Return the tile with caching headers: 204 when empty, 304 when the client's ETag matches."""
    response = Response(data, mimetype=MVT_MIMETYPE) if data else Response(status=204)
    response.headers["Cache-Control"] = f"private, max-age={layer.max_age_s}"
    response.vary.update(("Authorization", "Cookie"))
    if data:
        response.set_etag(hashlib.blake2b(data, digest_size=16).hexdigest())
        response.make_conditional(request)
    return response


_TILE_CONTENT = {MVT_MIMETYPE: {"schema": {"type": "string", "format": "binary"}}}


@bp.get("/<layer>/<z>/<x>/<y>.mvt")
@require(*STAFF)
@bp.input(TileQuery, location="query", arg_name="query")
@bp.doc(
    summary="A vector tile of a layer",
    description=f"Layers: {', '.join(LAYERS)}. Cases are aggregated below zoom {CLUSTER_BELOW_ZOOM} and "
                f"beyond {POINT_CAP:,} points per tile. An empty tile is 204.",
    security=SECURITY,
    responses={200: {"description": "Mapbox vector tile", "content": _TILE_CONTENT},
               204: "empty tile", 304: "not modified (ETag)", 400: "bad z, x, y or filter",
               404: "unknown layer"},
)
def tile(layer: str, z: str, x: str, y: str, query: dict[str, Any]) -> Response:
    spec = get_layer(layer)
    address = TileAddress.parse(z, x, y)
    data = render_tile(get_session(), spec, address, get_settings().county_code,
                       case_filter_for(query, current_user()))
    return tile_response(data, spec)
