"""The PostGIS routing engine: single requests from the API and set-based work in the database.

Polygons are pre-split with ``ST_Subdivide`` into ``route_lookup`` (GiST-indexed), so an index probe
returns a few small pieces instead of a county-sized polygon. The pieces only narrow the search (``&&``);
the final test is ``ST_Covers`` on the original polygon, because subdividing inserts computed vertices on
original edges, and a point on a shared border must get exactly the answer the in-process engine gives.

Two plans answer the same query:

* **point-driven** (few points): for each point, probe the lookup's GiST index. This is what the
  planner picks by itself, and it is right for one point.
* **polygon-driven** (many points): the points go to a temporary table with its own GiST index, and
  each lookup piece asks which points it holds. Consecutive rows then test the same original polygon,
  so PostGIS's prepared-geometry cache is hit instead of re-preparing a large polygon for every point.
  This is several times faster for bulk work; ``tests/grids/test_pg_engine.py`` fails if ``EXPLAIN``
  shows the set-based query falling back to the point-by-point plan.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    """Return the set-based query for a layer: lookup pieces outside, indexed temp points inside."""
    table = LAYER_TABLE[layer]
    agency_filter = "AND l.agency_id = ANY(:agencies)" if layer == "jurisdiction" else ""
    group_filter = "AND p.grp = :grp" if layer == "jurisdiction" else ""
    # OFFSET 0 keeps the ordered subquery as the outer side, so pieces of one polygon are consecutive.
    return f"""
        SELECT DISTINCT p.i, l.ref_id, l.agency_id
        FROM (SELECT ref_id, agency_id, geom FROM route_lookup l
              WHERE l.county_code = :c AND l.layer = '{layer}' {agency_filter} AND {_valid('l')}
              ORDER BY l.ref_id OFFSET 0) l
        CROSS JOIN LATERAL (SELECT p.i, p.geom FROM route_pts p WHERE p.geom && l.geom {group_filter}) p
        JOIN {table} o ON o.id = l.ref_id
        WHERE ST_Covers(o.geom, p.geom)
    """


def point_driven_sql(layer: str, source: str = "route_pts") -> str:
    """Return the same query with the points outside: PostgreSQL's default plan, best for one point."""
    table = LAYER_TABLE[layer]
    agency_filter = "AND l.agency_id = ANY(:agencies)" if layer == "jurisdiction" else ""
    group_filter = "WHERE p.grp = :grp" if layer == "jurisdiction" else ""
    return f"""
        SELECT DISTINCT p.i, l.ref_id, l.agency_id
        FROM (SELECT * FROM {source} AS src) p
        CROSS JOIN LATERAL (SELECT l.ref_id, l.agency_id FROM route_lookup l
                            WHERE l.geom && p.geom AND l.county_code = :c AND l.layer = '{layer}'
                            {agency_filter} AND {_valid('l')}) l
        JOIN {table} o ON o.id = l.ref_id AND ST_Covers(o.geom, p.geom)
        {group_filter}
    """


INLINE_POINTS = ("(SELECT i, grp, ST_SetSRID(ST_MakePoint(x, y), 4326) AS geom "
                 "FROM unnest(CAST(:ii AS int[]), CAST(:gg AS int[]), CAST(:xx AS float8[]), "
                 "CAST(:yy AS float8[])) AS t(i, grp, x, y))")


class PgEngine:
    """Answer "which polygons cover these points" in PostGIS, within the caller's session."""

    name = "postgis"

    def __init__(self, session: Session, county_code: str, *, at: datetime | None = None,
                 metric_srid: int = 4548, force_plan: str | None = None) -> None:
        self.s = session
        self.county = county_code
        self.at = at or datetime.now(UTC)
        self.srid = metric_srid
        # "point" or "polygon" to force a plan (benchmarks, tests); None chooses by size.
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

    def hits(self, lon: np.ndarray, lat: np.ndarray, groups: np.ndarray,
             group_agencies: Sequence[frozenset[int]]) -> Hits:
        """Return the units, cells and candidate jurisdictions covering each point."""
        n = len(lon)
        plan = self.force_plan or ("point" if n <= POINT_DRIVEN_MAX else "polygon")
        params = {"c": self.county, "at": self.at}
        if plan == "polygon" or self.force_plan == "point-table":
            self._load_points(lon, lat, groups)
            build = polygon_driven_sql if plan == "polygon" else point_driven_sql
            sql = {layer: build(layer) for layer in LAYER_TABLE}
        else:
            params.update(ii=list(range(n)), gg=[int(g) for g in groups], xx=[float(v) for v in lon],
                          yy=[float(v) for v in lat])
            sql = {layer: point_driven_sql(layer, INLINE_POINTS) for layer in LAYER_TABLE}
        units = self._pairs(sql["admin_unit"], params)
        cells = self._pairs(sql["grid_cell"], params)
        j_pt, j_id, j_ag = [], [], []
        for g in np.unique(groups).tolist():
            agencies = sorted(group_agencies[g])
            if not agencies:
                continue
            rows = self.s.execute(text(sql["jurisdiction"]), {**params, "grp": g, "agencies": agencies}).all()
            j_pt += [r[0] for r in rows]
            j_id += [r[1] for r in rows]
            j_ag += [r[2] for r in rows]
        if plan == "polygon" or self.force_plan == "point-table":
            self.s.execute(text("DROP TABLE IF EXISTS route_pts"))
        return Hits(n, units, cells, (np.array(j_pt, np.int64), np.array(j_id, np.int64), np.array(j_ag, np.int64)))

    def _pairs(self, sql: str, params: dict) -> tuple[np.ndarray, np.ndarray]:
        rows = self.s.execute(text(sql), params).all()
        return np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], np.int64)

    def _load_points(self, lon: np.ndarray, lat: np.ndarray, groups: np.ndarray) -> None:
        self.s.execute(text("DROP TABLE IF EXISTS route_pts"))
        self.s.execute(text(
            "CREATE TEMP TABLE route_pts (i int PRIMARY KEY, grp int, geom geometry(Point, 4326))"))
        self.s.execute(text(
            "INSERT INTO route_pts SELECT t.i, t.g, ST_SetSRID(ST_MakePoint(t.x, t.y), 4326) "
            "FROM unnest(CAST(:ii AS int[]), CAST(:gg AS int[]), CAST(:xx AS float8[]), CAST(:yy AS float8[])) "
            "AS t(i, g, x, y)"),
            {"ii": list(range(len(lon))), "gg": [int(g) for g in groups],
             "xx": np.asarray(lon, float).tolist(), "yy": np.asarray(lat, float).tolist()})
        self.s.execute(text("CREATE INDEX ON route_pts USING gist (geom)"))
        self.s.execute(text("ANALYZE route_pts"))

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
