"""The PostGIS routing engine: single requests from the API and set-based work in the database.

Polygons are pre-split with ``ST_Subdivide`` into ``route_lookup`` (GiST-indexed), so an index probe
returns a few small pieces instead of a county-sized polygon. The pieces only narrow the search (``&&``);
the final test is ``ST_Covers`` on the original polygon, because subdividing inserts computed vertices on
original edges, and a point on a shared border must get exactly the answer the in-process engine gives.

Two plans answer the same query:

* **point-driven** (few points): for each point, probe the lookup's GiST index. Right for one point,
  and what the API does per request; the points come inline as arrays.
* **polygon-driven** (many points): the points go to a temporary table with its own GiST index (copied
  in binary and stored in Z-order, so neighbours share pages), and each lookup piece asks which points
  it holds. Consecutive rows then test the same original polygon, so PostGIS's prepared-geometry cache
  is hit instead of re-preparing a large polygon for every point. Jurisdictions are answered for every
  category group in one query, through ``route_allowed`` (agency → the groups it may take).
  ``tests/grids/test_engines_agree.py`` fails if ``EXPLAIN`` shows this query probing the lookup index
  point by point.

``force_plan="point-table"`` runs the point-driven query over the temporary table, for benchmarks: its
subqueries are fenced (``OFFSET 0``) because, left free, the planner turns it into the polygon-driven plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from grids.routing import Hits

SUBDIVIDE_MAX_VERTICES = 64
POINT_DRIVEN_MAX = 64  # up to this many points, probe the lookup index point by point

LAYER_TABLE = {"admin_unit": "admin_unit", "grid_cell": "grid_cell", "jurisdiction": "jurisdiction"}


def rebuild_lookup(session: Session, county_code: str, *, max_vertices: int = SUBDIVIDE_MAX_VERTICES) -> int:
    """Rebuild the county's subdivided lookup from units, grid cells and jurisdictions; return pieces."""
    session.execute(text("DELETE FROM route_lookup WHERE county_code = :c"), {"c": county_code})
    session.execute(text("""
        INSERT INTO route_lookup (county_code, layer, ref_id, agency_id, valid_from, valid_to, geom)
        SELECT county_code, 'admin_unit', id, NULL::int, NULL::timestamptz, NULL::timestamptz,
               ST_Subdivide(geom, :mv)
          FROM admin_unit WHERE county_code = :c AND level <> 'county'
        UNION ALL
        SELECT county_code, 'grid_cell', id, NULL::int, valid_from, valid_to, ST_Subdivide(geom, :mv)
          FROM grid_cell WHERE county_code = :c
        UNION ALL
        SELECT county_code, 'jurisdiction', id, agency_id, valid_from, valid_to, ST_Subdivide(geom, :mv)
          FROM jurisdiction WHERE county_code = :c
        ORDER BY 2, 3
    """), {"c": county_code, "mv": max_vertices})
    count = session.execute(text("SELECT count(*) FROM route_lookup WHERE county_code = :c"),
                            {"c": county_code}).scalar_one()
    return int(count)


def _valid(alias: str) -> str:
    return (f"({alias}.valid_from IS NULL OR {alias}.valid_from <= :at) "
            f"AND ({alias}.valid_to IS NULL OR {alias}.valid_to > :at)")


def polygon_driven_sql(layer: str) -> str:
    """Return the set-based query for a layer: lookup pieces outside, indexed temp points inside.

    For jurisdictions, ``route_allowed`` (agency → the category groups it may take) keeps only the
    points whose category the piece's agency may hold: one query serves every group.
    """
    table = LAYER_TABLE[layer]
    if layer == "jurisdiction":
        pieces_from = "route_lookup l JOIN route_allowed a ON a.agency_id = l.agency_id"
        pieces_cols, group_filter = ", a.grps", "AND p.grp = ANY(l.grps)"
    else:
        pieces_from, pieces_cols, group_filter = "route_lookup l", "", ""
    # OFFSET 0 keeps the ordered subquery as the outer side, so pieces of one polygon are consecutive.
    return f"""
        SELECT DISTINCT p.i, l.ref_id, l.agency_id
        FROM (SELECT l.ref_id, l.agency_id, l.geom{pieces_cols} FROM {pieces_from}
              WHERE l.county_code = :c AND l.layer = '{layer}' AND {_valid('l')}
              ORDER BY l.ref_id OFFSET 0) l
        CROSS JOIN LATERAL (SELECT p.i, p.geom FROM route_pts p WHERE p.geom && l.geom {group_filter}) p
        JOIN {table} o ON o.id = l.ref_id
        WHERE ST_Covers(o.geom, p.geom)
    """


def point_driven_sql(layer: str, source: str = "route_pts", allowed: str = "route_allowed") -> str:
    """Return the same query with the points outside: one lookup-index probe per point, best for one point."""
    table = LAYER_TABLE[layer]
    if layer == "jurisdiction":
        pieces_from = f"route_lookup l JOIN {allowed} a ON a.agency_id = l.agency_id"
        group_filter = "AND p.grp = ANY(a.grps)"
    else:
        pieces_from, group_filter = "route_lookup l", ""
    # Both OFFSET 0 fences keep this shape: left free, the planner turns a large point table into the
    # polygon-driven plan by itself, and this query exists to be the point-by-point one.
    return f"""
        SELECT DISTINCT p.i, l.ref_id, l.agency_id
        FROM (SELECT * FROM {source} AS src OFFSET 0) p
        CROSS JOIN LATERAL (SELECT l.ref_id, l.agency_id FROM {pieces_from}
                            WHERE l.geom && p.geom AND l.county_code = :c AND l.layer = '{layer}'
                            {group_filter} AND {_valid('l')} OFFSET 0) l
        JOIN {table} o ON o.id = l.ref_id AND ST_Covers(o.geom, p.geom)
    """


INLINE_POINTS = ("(SELECT i, grp, ST_SetSRID(ST_MakePoint(x, y), 4326) AS geom "
                 "FROM unnest(CAST(:ii AS int[]), CAST(:gg AS int[]), CAST(:xx AS float8[]), "
                 "CAST(:yy AS float8[])) AS t(i, grp, x, y))")
INLINE_ALLOWED = ("(SELECT agency_id, array_agg(grp) AS grps FROM unnest(CAST(:ag_agency AS int[]), "
                  "CAST(:ag_grp AS int[])) AS t(agency_id, grp) GROUP BY agency_id)")

# PGCOPY binary framing around rows of (i int4, grp int4, geom EWKB point with SRID).
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)
_COPY_ROW = np.dtype([
    ("fields", ">i2"), ("i_len", ">i4"), ("i", ">i4"), ("g_len", ">i4"), ("grp", ">i4"), ("p_len", ">i4"),
    ("order", "u1"), ("type", "<u4"), ("srid", "<u4"), ("x", "<f8"), ("y", "<f8"),
])
_EWKB_POINT_WITH_SRID = 0x20000001


def _z_order(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Return the permutation sorting points along a Z-order (Morton) curve over their extent."""
    if not len(x):
        return np.arange(0)

    def quantise(v: np.ndarray) -> np.ndarray:
        span = float(v.max() - v.min()) or 1.0
        return ((v - v.min()) / span * 65535).astype(np.uint64)

    def spread(v: np.ndarray) -> np.ndarray:
        for shift, mask in ((8, 0x00FF00FF), (4, 0x0F0F0F0F), (2, 0x33333333), (1, 0x55555555)):
            v = (v | (v << np.uint64(shift))) & np.uint64(mask)
        return v

    return np.argsort(spread(quantise(x)) | (spread(quantise(y)) << np.uint64(1)), kind="stable")


def _allowed_pairs(groups: np.ndarray, group_agencies: Sequence[frozenset[int]]) -> tuple[list[int], list[int]]:
    """Return parallel (agency, group) lists: which agencies may take each category group present."""
    agencies: list[int] = []
    grps: list[int] = []
    for g in np.unique(groups).tolist():
        for agency in sorted(group_agencies[g]):
            agencies.append(int(agency))
            grps.append(int(g))
    return agencies, grps


# One report, one round trip: the catalogue revision, whether the county covers the point, the units,
# cells and candidate jurisdictions covering it, and the point's distance to each such jurisdiction's
# boundary (usually one; two on a shared border). Same lookup probes and ``ST_Covers`` test as above.
SINGLE_POINT_SQL = text(f"""
WITH p AS (SELECT ST_SetSRID(ST_MakePoint(:x, :y), 4326) AS g)
SELECT (SELECT count(*) FROM catalogue_change) AS revision,
       coalesce(current_setting('gis.catalogue_dirty', true) = 'on', false) AS dirty,
       -- The units partition the county (``grids check``): a point a unit covers is inside, and only
       -- a point no unit covers is tested against the county's long outline.
       cardinality(u.ids) > 0 OR COALESCE((SELECT bool_or(ST_Covers(c.geom, p.g)) FROM admin_unit c
                                           WHERE c.county_code = :c AND c.level = 'county'), false) AS inside,
       u.ids AS units,
       ARRAY(SELECT DISTINCT l.ref_id FROM route_lookup l JOIN grid_cell o ON o.id = l.ref_id
             WHERE l.geom && p.g AND l.county_code = :c AND l.layer = 'grid_cell' AND {_valid('l')}
               AND ST_Covers(o.geom, p.g)) AS cells,
       ARRAY(SELECT ARRAY[j.ref_id::float8, j.agency_id::float8,
                          ST_Distance(ST_Boundary(ST_Transform(o.geom, :srid)), ST_Transform(p.g, :srid))]
             FROM (SELECT DISTINCT l.ref_id, l.agency_id FROM route_lookup l
                   WHERE l.geom && p.g AND l.county_code = :c AND l.layer = 'jurisdiction'
                     AND l.agency_id = ANY(CAST(:agencies AS int[])) AND {_valid('l')}) j
             JOIN jurisdiction o ON o.id = j.ref_id
             WHERE ST_Covers(o.geom, p.g)) AS jurisdictions
FROM p, LATERAL (SELECT ARRAY(SELECT DISTINCT l.ref_id FROM route_lookup l JOIN admin_unit o ON o.id = l.ref_id
                              WHERE l.geom && p.g AND l.county_code = :c AND l.layer = 'admin_unit'
                                AND {_valid('l')} AND ST_Covers(o.geom, p.g)) AS ids) u
""")


@dataclass(frozen=True)
class SinglePoint:
    """What the database says about one point: see ``SINGLE_POINT_SQL``."""

    revision: int
    dirty: bool  # this transaction changed the catalogue itself
    inside: bool
    hits: Hits
    distances: dict[int, float]  # jurisdiction id → metres to its boundary


class PgEngine:
    """Answer "which polygons cover these points" in PostGIS, within the caller's session."""

    name = "postgis"

    def __init__(self, session: Session, county_code: str, *, at: datetime | None = None,
                 metric_srid: int = 4548, force_plan: str | None = None) -> None:
        self.s = session
        self.county = county_code
        self.at = at or datetime.now(UTC)
        self.srid = metric_srid
        # "point", "point-table" (the points in a temp table, still probed one by one) or "polygon"
        # to force a plan (benchmarks, tests); None chooses by size.
        self.force_plan = force_plan

    def in_county(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Return which points the county outline covers."""
        rows = self.s.execute(text(
            "SELECT t.i, ST_Covers(c.geom, ST_SetSRID(ST_MakePoint(t.x, t.y), 4326)) "
            "FROM admin_unit c, unnest(CAST(:ii AS int[]), CAST(:xx AS float8[]), CAST(:yy AS float8[])) "
            "AS t(i, x, y) WHERE c.county_code = :c AND c.level = 'county'"),
            {"c": self.county, "ii": list(range(len(lon))), "xx": [float(v) for v in lon],
             "yy": [float(v) for v in lat]}).all()
        out = np.zeros(len(lon), dtype=bool)
        for i, covered in rows:
            out[i] = bool(covered)
        return out

    def single(self, lon: float, lat: float, agencies: frozenset[int]) -> SinglePoint:
        """Answer everything routing one report needs about one point, in one query."""
        row = self.s.execute(SINGLE_POINT_SQL, {
            "x": float(lon), "y": float(lat), "c": self.county, "at": self.at, "srid": self.srid,
            "agencies": sorted(int(a) for a in agencies)}).one()
        juris = np.array(row.jurisdictions or [], float).reshape(-1, 3)
        zeros = np.zeros  # every hit belongs to point 0
        hits = Hits(1, (zeros(len(row.units), np.int64), np.array(row.units, np.int64)),
                    (zeros(len(row.cells), np.int64), np.array(row.cells, np.int64)),
                    (zeros(len(juris), np.int64), juris[:, 0].astype(np.int64), juris[:, 1].astype(np.int64)))
        return SinglePoint(row.revision, row.dirty, bool(row.inside), hits,
                           {int(j): float(d) for j, _, d in juris})

    def hits(self, lon: np.ndarray, lat: np.ndarray, groups: np.ndarray,
             group_agencies: Sequence[frozenset[int]]) -> Hits:
        """Return the units, cells and candidate jurisdictions covering each point."""
        n = len(lon)
        plan = self.force_plan or ("point" if n <= POINT_DRIVEN_MAX else "polygon")
        params: dict = {"c": self.county, "at": self.at}
        ag_agency, ag_grp = _allowed_pairs(np.asarray(groups, np.int64), group_agencies)
        temp = plan in ("polygon", "point-table")
        if temp:
            self._load_points(lon, lat, groups, (ag_agency, ag_grp))
            build = polygon_driven_sql if plan == "polygon" else point_driven_sql
            sql = {layer: build(layer) for layer in LAYER_TABLE}
        else:
            params.update(ii=list(range(n)), gg=[int(g) for g in groups], xx=[float(v) for v in lon],
                          yy=[float(v) for v in lat], ag_agency=ag_agency, ag_grp=ag_grp)
            sql = {layer: point_driven_sql(layer, INLINE_POINTS, INLINE_ALLOWED) for layer in LAYER_TABLE}
        ui, uref = self._columns(sql["admin_unit"], params, ("i", "ref_id"))
        ci, cref = self._columns(sql["grid_cell"], params, ("i", "ref_id"))
        jurisdictions = (self._columns(sql["jurisdiction"], params, ("i", "ref_id", "agency_id")) if ag_agency
                         else (np.empty(0, np.int64),) * 3)
        if temp:
            self.s.execute(text("DROP TABLE IF EXISTS route_pts, route_allowed"))
        return Hits(n, (ui, uref), (ci, cref), jurisdictions)  # type: ignore[arg-type]

    def _columns(self, sql: str, params: dict, names: tuple[str, ...]) -> tuple[np.ndarray, ...]:
        """Run a query and return the named integer columns as arrays."""
        # One row of arrays: building a million result rows in Python costs twice as much.
        aggregates = ", ".join(f"array_agg(q.{name})" for name in names)
        row = self.s.execute(text(f"SELECT {aggregates} FROM ({sql}) q"), params).one()
        return tuple(np.array(col or [], np.int64) for col in row)

    def _load_points(self, lon: np.ndarray, lat: np.ndarray, groups: np.ndarray,
                     allowed: tuple[list[int], list[int]] = ([], [])) -> None:
        """Put the points in an indexed temp table, and which agencies may take which groups beside them."""
        self.s.execute(text("DROP TABLE IF EXISTS route_pts, route_allowed"))
        self.s.execute(text(
            "CREATE TEMP TABLE route_pts (i int, grp int, geom geometry(Point, 4326))"))
        if not self._copy_points(lon, lat, groups):
            self.s.execute(text(
                "INSERT INTO route_pts SELECT t.i, t.g, ST_SetSRID(ST_MakePoint(t.x, t.y), 4326) "
                "FROM unnest(CAST(:ii AS int[]), CAST(:gg AS int[]), CAST(:xx AS float8[]), "
                "CAST(:yy AS float8[])) AS t(i, g, x, y)"),
                {"ii": list(range(len(lon))), "gg": [int(g) for g in groups],
                 "xx": np.asarray(lon, float).tolist(), "yy": np.asarray(lat, float).tolist()})
        self.s.execute(text("CREATE INDEX ON route_pts USING gist (geom)"))
        self.s.execute(text("ANALYZE route_pts"))
        self.s.execute(text(f"CREATE TEMP TABLE route_allowed AS {INLINE_ALLOWED}"),
                       {"ag_agency": list(allowed[0]), "ag_grp": list(allowed[1])})
        self.s.execute(text("ANALYZE route_allowed"))

    def _copy_points(self, lon: np.ndarray, lat: np.ndarray, groups: np.ndarray) -> bool:
        """Stream the points with binary COPY (psycopg 3); return False when the driver cannot."""
        # Converting a million floats to SQL parameters costs more than the spatial join itself; a
        # binary COPY of ready-made EWKB points built by numpy costs almost nothing.
        cursor = self.s.connection().connection.driver_connection.cursor()
        if not hasattr(cursor, "copy"):
            cursor.close()
            return False
        x, y = np.asarray(lon, float), np.asarray(lat, float)
        # Neighbours stored together: each lookup piece then reads a few pages, not the whole table.
        order = _z_order(x, y)
        rows = np.empty(len(x), dtype=_COPY_ROW)
        rows["fields"], rows["i_len"], rows["g_len"], rows["p_len"] = 3, 4, 4, 25
        rows["i"] = order
        rows["grp"] = np.asarray(groups, np.int64)[order]
        rows["order"], rows["type"], rows["srid"] = 1, _EWKB_POINT_WITH_SRID, 4326
        rows["x"] = x[order]
        rows["y"] = y[order]
        with cursor, cursor.copy("COPY route_pts (i, grp, geom) FROM STDIN (FORMAT binary)") as copy:
            copy.write(_COPY_HEADER + rows.tobytes() + _COPY_TRAILER)
        return True

    def boundary_distance_m(self, jurisdiction_ids: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Return each point's distance in metres to its jurisdiction's boundary (metric CRS)."""
        # Project each distinct boundary once (a CTE is computed once), not once per point.
        rows = self.s.execute(text(
            "WITH b AS MATERIALIZED (SELECT id, ST_Boundary(ST_Transform(geom, :srid)) AS g FROM jurisdiction "
            "WHERE id = ANY(CAST(:ids AS int[]))) "
            "SELECT t.i, ST_Distance(b.g, ST_Transform(ST_SetSRID(ST_MakePoint(t.x, t.y), 4326), :srid)) "
            "FROM unnest(CAST(:ii AS int[]), CAST(:jj AS int[]), CAST(:xx AS float8[]), CAST(:yy AS float8[])) "
            "AS t(i, j, x, y) JOIN b ON b.id = t.j"),
            {"srid": self.srid, "ids": sorted({int(j) for j in jurisdiction_ids}),
             "ii": list(range(len(lon))), "jj": [int(j) for j in jurisdiction_ids],
             "xx": [float(v) for v in lon], "yy": [float(v) for v in lat]}).all()
        out = np.full(len(lon), np.nan)
        for i, d in rows:
            out[i] = d
        return out
