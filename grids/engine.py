"""The in-process routing engine: vectorised Shapely 2 for bulk imports and analytics.

Grid cells are many and regular, so an arithmetic index finds each point's candidate cells directly:
cells sit on squares aligned to the metric origin (see ``grids.generate``), so ``floor(x / size)``
names the square. Candidates are always confirmed with an exact ``covers`` test on the stored (lon/lat)
polygon, and points within a millimetre of a square's edge, or with no candidate, go through an
STRtree so that a point on a shared edge finds every cell that covers it.

The cells then serve as the index for the large polygons (units, jurisdictions). When the engine is
built, each cell learns which large polygons cover it whole and which merely cross it. A point covered
by a cell is covered by every polygon covering that cell, by none that misses the cell, and only the
polygons crossing the cell need an exact ``covers`` test. This is exact, not an approximation (the
point lies in the cell), and it spares most points any test against a county-sized polygon. Points
that no cell covers are tested polygon-driven: an STRtree holds them and each prepared polygon asks
which points it covers.

Exact tests use ``intersects_xy`` on the prepared polygon: for a point, "intersects" and "covers" are
the same predicate (the point lies in the closed polygon), and testing raw coordinates saves building a
GEOS point per input, which otherwise costs more than the tests themselves.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import shapely
from pyproj import Transformer
from shapely import STRtree
from sqlalchemy import text
from sqlalchemy.orm import Session

from grids.routing import Hits, point_array

EDGE_EPS_M = 1e-3


@dataclass
class _CellIndex:
    size: float
    keys: np.ndarray  # sorted square keys
    cells: np.ndarray  # cell position for each key


def _key(col: np.ndarray, row: np.ndarray) -> np.ndarray:
    # Columns and rows of a county fit easily in 31 bits; pack them into one sortable integer.
    return (col.astype(np.int64) + (1 << 30)) * (1 << 31) + (row.astype(np.int64) + (1 << 30))


def _expand(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (owner, position) for every slot of the half-open ranges [left, right)."""
    counts = right - left
    owner = np.repeat(np.arange(len(left)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, np.repeat(left, counts) + offsets


@dataclass
class _Relation:
    """Per grid cell, the large polygons covering it whole and those only crossing it (CSR rows)."""

    full_start: np.ndarray
    full: np.ndarray
    part_start: np.ndarray
    part: np.ndarray


def _rows(owner: np.ndarray, item: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Return CSR (start, items) grouping ``item`` by ``owner`` in 0..n-1."""
    order = np.argsort(owner, kind="stable")
    return np.searchsorted(owner[order], np.arange(n + 1)), item[order]


class InProcessEngine:
    """Answer "which polygons cover these points" from polygons held in memory."""

    name = "in-process"

    def __init__(self, *, county: shapely.Geometry, units: Sequence[tuple[int, shapely.Geometry]],
                 cells: Sequence[tuple[int, shapely.Geometry, float | None]],
                 jurisdictions: Sequence[tuple[int, int, shapely.Geometry]], metric_crs: str = "EPSG:4548") -> None:
        self.county = county
        shapely.prepare(county)
        self.unit_ids = np.array([u for u, _ in units], dtype=np.int64)
        self.unit_geoms = np.array([g for _, g in units], dtype=object)
        self.cell_ids = np.array([c for c, _, _ in cells], dtype=np.int64)
        self.cell_geoms = np.array([g for _, g, _ in cells], dtype=object)
        self.j_ids = np.array([j for j, _, _ in jurisdictions], dtype=np.int64)
        self.j_agency = np.array([a for _, a, _ in jurisdictions], dtype=np.int64)
        self.j_geoms = np.array([g for _, _, g in jurisdictions], dtype=object)
        for arr in (self.unit_geoms, self.cell_geoms, self.j_geoms):
            if len(arr):
                shapely.prepare(arr)
        self._to_metric = Transformer.from_crs("EPSG:4326", metric_crs, always_xy=True)
        self._cell_tree = STRtree(self.cell_geoms) if len(self.cell_geoms) else None
        self._cell_index = self._build_cell_index([s for _, _, s in cells])
        self._j_pos = {int(j): k for k, j in enumerate(self.j_ids)}
        # Agencies often share one polygon (a department and its team both hold the whole county):
        # each distinct shape is tested once and its hits are handed to every jurisdiction drawn with it.
        wkb = shapely.to_wkb(self.j_geoms) if len(self.j_geoms) else np.empty(0, object)
        first: dict[bytes, int] = {}
        first_pos = np.array([first.setdefault(w, k) for k, w in enumerate(wkb)], dtype=np.int64)
        self._shape_pos, self._j_shape = np.unique(first_pos, return_inverse=True)
        self._shape_geoms = self.j_geoms[self._shape_pos]
        # Jurisdiction positions grouped by shape: shape s owns _shape_j[_shape_start[s]:_shape_start[s + 1]].
        self._shape_start, self._shape_j = _rows(self._j_shape, np.arange(len(self.j_ids)), len(self._shape_pos))
        self._unit_rel = self._relate(self.unit_geoms)
        self._shape_rel = self._relate(self._shape_geoms)
        self._j_boundary_metric: dict[int, shapely.Geometry] = {}

    @classmethod
    def from_session(cls, session: Session, county_code: str, at: datetime, metric_crs: str) -> InProcessEngine:
        """Load the polygons in force at a moment from the store."""
        county_wkb = session.execute(text(
            "SELECT ST_AsBinary(geom) FROM admin_unit WHERE county_code = :c AND level = 'county'"),
            {"c": county_code}).scalar_one()
        units = [(r[0], shapely.from_wkb(r[1])) for r in session.execute(text(
            "SELECT id, ST_AsBinary(geom) FROM admin_unit WHERE county_code = :c AND level <> 'county' ORDER BY id"),
            {"c": county_code})]
        rows = session.execute(text(
            "SELECT g.id, ST_AsBinary(g.geom), u.grid_cell_size_m FROM grid_cell g "
            "JOIN admin_unit u ON u.id = g.admin_unit_id WHERE g.county_code = :c AND g.valid_from <= :at "
            "AND (g.valid_to IS NULL OR g.valid_to > :at) ORDER BY g.id"), {"c": county_code, "at": at}).all()
        # Thousands of cells: parse their WKB in one vectorised call.
        geoms = shapely.from_wkb([r[1] for r in rows]) if rows else []
        cells = [(r[0], g, r[2]) for r, g in zip(rows, geoms)]
        jurisdictions = [(r[0], r[1], shapely.from_wkb(r[2])) for r in session.execute(text(
            "SELECT id, agency_id, ST_AsBinary(geom) FROM jurisdiction WHERE county_code = :c "
            "AND valid_from <= :at AND (valid_to IS NULL OR valid_to > :at) ORDER BY id"),
            {"c": county_code, "at": at})]
        return cls(county=shapely.from_wkb(county_wkb), units=units, cells=cells, jurisdictions=jurisdictions,
                   metric_crs=metric_crs)

    # -- arithmetic index over the regular cells ---------------------------------------------------
    def _build_cell_index(self, sizes: Sequence[float | None]) -> list[_CellIndex]:
        by_size: dict[float, list[int]] = defaultdict(list)
        for pos, size in enumerate(sizes):
            if size:
                by_size[float(size)].append(pos)
        indexes = []
        for size, positions in sorted(by_size.items()):
            pos_arr = np.array(positions)
            coords = shapely.get_coordinates(self.cell_geoms[pos_arr])
            counts = shapely.get_num_coordinates(self.cell_geoms[pos_arr])
            xm, ym = self._to_metric.transform(coords[:, 0], coords[:, 1])
            owner = np.repeat(np.arange(len(pos_arr)), counts)
            # Each cell is indexed under every square its metric bounding box touches.
            minx = np.full(len(pos_arr), np.inf)
            miny = np.full(len(pos_arr), np.inf)
            maxx = np.full(len(pos_arr), -np.inf)
            maxy = np.full(len(pos_arr), -np.inf)
            np.minimum.at(minx, owner, xm)
            np.minimum.at(miny, owner, ym)
            np.maximum.at(maxx, owner, xm)
            np.maximum.at(maxy, owner, ym)
            c0 = np.floor((minx - EDGE_EPS_M) / size).astype(np.int64)
            c1 = np.floor((maxx + EDGE_EPS_M) / size).astype(np.int64)
            r0 = np.floor((miny - EDGE_EPS_M) / size).astype(np.int64)
            r1 = np.floor((maxy + EDGE_EPS_M) / size).astype(np.int64)
            # Every (cell, square) pair at once: slot j of cell k is square (c0 + j % width, r0 + j // width).
            width = c1 - c0 + 1
            owner, slot = _expand(np.zeros(len(pos_arr), np.int64), width * (r1 - r0 + 1))
            all_keys = _key(c0[owner] + slot % width[owner], r0[owner] + slot // width[owner])
            all_cells = pos_arr[owner]
            order = np.argsort(all_keys, kind="stable")
            indexes.append(_CellIndex(size, all_keys[order], all_cells[order]))
        return indexes

    def _cell_pairs(self, lon: np.ndarray, lat: np.ndarray, xm: np.ndarray,
                    ym: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(lon)
        pt_parts, cell_parts = [], []
        needs_tree = np.zeros(n, dtype=bool)
        for index in self._cell_index:
            fx, fy = xm / index.size, ym / index.size
            col, row = np.floor(fx), np.floor(fy)
            eps = EDGE_EPS_M / index.size
            keys = _key(col, row)
            left = np.searchsorted(index.keys, keys, "left")
            right = np.searchsorted(index.keys, keys, "right")
            has = right > left
            near = ((fx - col) < eps) | ((col + 1 - fx) < eps) | ((fy - row) < eps) | ((row + 1 - fy) < eps)
            needs_tree |= has & near
            owner, slots = _expand(left, right)
            cand = index.cells[slots]
            ok = shapely.intersects_xy(self.cell_geoms[cand], lon[owner], lat[owner])
            pt_parts.append(owner[ok])
            cell_parts.append(cand[ok])
        pts = np.concatenate(pt_parts) if pt_parts else np.empty(0, np.int64)
        cells = np.concatenate(cell_parts) if cell_parts else np.empty(0, np.int64)
        found = np.zeros(n, dtype=bool)
        found[pts] = True
        needs_tree |= ~found
        if self._cell_tree is not None and needs_tree.any():
            subset = np.flatnonzero(needs_tree)
            sub_pt, sub_cell = self._cell_tree.query(point_array(lon[subset], lat[subset]), predicate="covered_by")
            keep = ~needs_tree[pts]
            pts = np.concatenate([pts[keep], subset[sub_pt]])
            cells = np.concatenate([cells[keep], sub_cell])
        return pts, cells

    # -- grid cells as the index of the large polygons ---------------------------------------------
    def _relate(self, geoms: np.ndarray) -> _Relation:
        """Record, for every cell, which of the polygons cover it whole and which only cross it."""
        n = len(self.cell_geoms)
        if self._cell_tree is None or not len(geoms):
            poly = cell = np.empty(0, np.int64)
            whole = np.empty(0, bool)
        else:
            poly, cell = self._cell_tree.query(geoms, predicate="intersects")
            whole = shapely.covers(geoms[poly], self.cell_geoms[cell])
        full_start, full = _rows(cell[whole], poly[whole], n)
        part_start, part = _rows(cell[~whole], poly[~whole], n)
        return _Relation(full_start, full, part_start, part)

    def _cover_pairs(self, geoms: np.ndarray, rel: _Relation, lon: np.ndarray, lat: np.ndarray,
                     cell_of: np.ndarray, relevant: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Return (point, polygon) pairs where the polygon covers the point, using each point's cell.

        ``cell_of`` holds, per point, the position of one cell covering it or -1. ``relevant`` may drop
        pairs the caller does not want before any exact test is paid for.
        """
        has = np.flatnonzero(cell_of >= 0)
        rc = cell_of[has]
        owner, slots = _expand(rel.full_start[rc], rel.full_start[rc + 1])
        full_pt, full_poly = has[owner], rel.full[slots]
        owner, slots = _expand(rel.part_start[rc], rel.part_start[rc + 1])
        part_pt, part_poly = has[owner], rel.part[slots]
        if relevant is not None:
            keep = relevant(full_pt, full_poly)
            full_pt, full_poly = full_pt[keep], full_poly[keep]
            keep = relevant(part_pt, part_poly)
            part_pt, part_poly = part_pt[keep], part_poly[keep]
        ok = shapely.intersects_xy(geoms[part_poly], lon[part_pt], lat[part_pt])
        pts, polys = [full_pt, part_pt[ok]], [full_poly, part_poly[ok]]
        loose = np.flatnonzero(cell_of < 0)
        if len(loose) and len(geoms):
            # Polygon-driven for the rest: the tree holds the points, each prepared polygon asks.
            poly, pt = STRtree(point_array(lon[loose], lat[loose])).query(geoms, predicate="covers")
            pt = loose[pt]
            if relevant is not None:
                keep = relevant(pt, poly)
                pt, poly = pt[keep], poly[keep]
            pts.append(pt)
            polys.append(poly)
        return np.concatenate(pts), np.concatenate(polys)

    # -- Engine protocol -----------------------------------------------------------------------------
    def in_county(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Return which points the county outline covers."""
        return shapely.intersects_xy(self.county, np.asarray(lon, float), np.asarray(lat, float))

    def hits(self, lon: np.ndarray, lat: np.ndarray, groups: np.ndarray,
             group_agencies: Sequence[frozenset[int]]) -> Hits:
        """Return the units, cells and candidate jurisdictions covering each point."""
        n = len(lon)
        lon, lat = np.asarray(lon, float), np.asarray(lat, float)
        xm, ym = self._to_metric.transform(lon, lat)
        c_pt, c_pos = self._cell_pairs(lon, lat, np.asarray(xm), np.asarray(ym))
        cells = (c_pt, self.cell_ids[c_pos])
        # Any one covering cell will do as the point's index entry; on a shared edge take the first.
        cell_of = np.full(n, -1, np.int64)
        cell_of[c_pt[::-1]] = c_pos[::-1]
        u_pt, u_pos = self._cover_pairs(self.unit_geoms, self._unit_rel, lon, lat, cell_of)
        units = (u_pt, self.unit_ids[u_pos])
        jp, jpos = self._jurisdiction_pairs(lon, lat, cell_of, groups, group_agencies)
        return Hits(n, units, cells, (jp, self.j_ids[jpos], self.j_agency[jpos]))

    def _jurisdiction_pairs(self, lon: np.ndarray, lat: np.ndarray, cell_of: np.ndarray, groups: np.ndarray,
                            group_agencies: Sequence[frozenset[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Return (point, jurisdiction position) pairs where a candidate of the point's group covers it.

        Every category group is answered in one pass over the distinct shapes: asking per group would
        test each point against the county-wide polygons once per group present.
        """
        empty = np.empty(0, np.int64)
        groups = np.asarray(groups, np.int64)
        present = np.unique(groups)
        if not len(present) or not len(self.j_ids):
            return empty, empty
        # member[g, j]: jurisdiction j's agency is a candidate for group g; shape_member likewise per shape.
        member = np.zeros((len(group_agencies), len(self.j_ids)), dtype=bool)
        for g in present.tolist():
            member[g] = np.isin(self.j_agency, list(group_agencies[g]))
        shape_member = np.logical_or.reduceat(member[:, self._shape_j], self._shape_start[:-1], axis=1)

        def relevant(pt: np.ndarray, shape: np.ndarray) -> np.ndarray:
            return shape_member[groups[pt], shape]

        pt, shape = self._cover_pairs(self._shape_geoms, self._shape_rel, lon, lat, cell_of, relevant)
        # Hand each shape's hits to every jurisdiction drawn with it, then keep the point's candidates.
        owner, slots = _expand(self._shape_start[shape], self._shape_start[shape + 1])
        pt, jpos = pt[owner], self._shape_j[slots]
        keep = member[groups[pt], jpos]
        return pt[keep], jpos[keep]

    def boundary_distance_m(self, jurisdiction_ids: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Return each point's distance in metres to its jurisdiction's boundary (metric CRS)."""
        xm, ym = self._to_metric.transform(np.asarray(lon, float), np.asarray(lat, float))
        boundaries = np.array([self._boundary(int(j)) for j in jurisdiction_ids], dtype=object)
        return shapely.distance(boundaries, shapely.points(xm, ym))

    def _boundary(self, jurisdiction_id: int) -> shapely.Geometry:
        found = self._j_boundary_metric.get(jurisdiction_id)
        if found is None:
            geom = self.j_geoms[self._j_pos[jurisdiction_id]]
            metric = shapely.transform(geom, lambda x, y: self._to_metric.transform(x, y), interleaved=False)
            found = shapely.boundary(metric)
            shapely.prepare(found)
            self._j_boundary_metric[jurisdiction_id] = found
        return found
