"""Cases counted onto cells (unit grid cells, a square fishnet or hexagons), per category and time window.

The cells of a study area (the county, or one township with ``unit``):

- ``grid``: the unit grid cells (万米单元网格) in force at ``at`` (default now), as stored; their sizes differ
  (about 100 m in the urban core, 1 km in the countryside), so counts are per cell, not per km².
- ``fishnet``: squares of side ``size_m`` in the metric CRS, numbered as PostGIS ``ST_SquareGrid`` numbers
  them (``i = floor(x / size)``, ``j = floor(y / size)``), kept where they overlap the study area and
  clipped to it.
- ``hexagon``: flat-topped hexagons with the area of a ``size_m`` square (edge ``size_m · √(2 / (3√3))``),
  laid and numbered as PostGIS ``ST_HexagonGrid`` lays them (column ``i``, row ``j``; odd columns half a row
  up), kept and clipped likewise.

The fishnet and hexagons are generated with numpy and shapely in the metric CRS: clipping 10,000 squares
against the county's 3,000-vertex outline in PostGIS took two minutes here (an intersection test per
row), shapely with a prepared outline does 100,000 in about a second. The counting runs in PostGIS:
a case's square is arithmetic on its projected point; its hexagon is the lowest-numbered
``ST_HexagonGrid`` cell covering it (a point on a shared edge goes to one cell, as in routing); its
unit grid cell is the one routing recorded (``case.grid_cell_id``), mapped by code to the version in
force, with a ``ST_Covers`` lookup only for cases whose cell is gone or was never set.

Cases are the reports of the period that were not cancelled or merged (as in the statistics), counted
by ``reported_at`` in the half-open [start, end), at their routing point (``case.location``).

Neighbours (``contiguity``) are queen contiguity: squares and hexagons by index arithmetic, unit grid cells
by geometry (cells within ``TOUCH_TOLERANCE_M`` of each other, which also joins a small cell to a large
one along a T-junction, where vertex matching would not).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp
import shapely
from libpysal.graph import Graph
from pyproj import CRS, Transformer
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis_platform import vocab
from gis_platform.errors import FieldError, ValidationError
from gis_platform.workcalendar import SHANGHAI

CELL_KINDS = ("grid", "fishnet", "hexagon")
STEPS = ("week", "month")
NOT_CASES = ("cancelled", "merged")  # as in the statistics: not cases handled
DEFAULT_SIZE_M = 500.0
MIN_SIZE_M = 20.0
MAX_SIZE_M = 20_000.0
MAX_CELLS = 250_000
TOUCH_TOLERANCE_M = 0.5
# Edge of the hexagon whose area equals a square of side 1.
HEX_EDGE_PER_SIDE = math.sqrt(2.0 / (3.0 * math.sqrt(3.0)))
# Fishnet and hexagon cell ids pack (i, j) into one integer below 2**53, so browsers keep them exact.
_ID_OFFSET = 2**25
_ID_BASE = 2**26


def pack_ij(i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Return the integer cell ids of lattice indices (i, j)."""
    return (np.asarray(i, dtype=np.int64) + _ID_OFFSET) * _ID_BASE + (np.asarray(j, dtype=np.int64) + _ID_OFFSET)


def unpack_ij(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the lattice indices (i, j) of packed cell ids."""
    ids = np.asarray(ids, dtype=np.int64)
    return ids // _ID_BASE - _ID_OFFSET, ids % _ID_BASE - _ID_OFFSET


# --- what to count -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CaseSelection:
    """Which cases count: county, categories or themes, the half-open [start, end), township, assignment.

    ``assigned_to`` keeps the cases assigned to those agency ids (the API sets it for patrollers and
    liaisons, who see only their own unit's cases); ``None`` means every case.
    """

    county_code: str
    categories: tuple[str, ...] = ()
    themes: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    unit: str | None = None
    assigned_to: tuple[int, ...] | None = None

    def where(self) -> tuple[str, dict[str, Any]]:
        """Return the SQL conditions on ``"case" c`` (joined to ``category cat``) and their bound values."""
        conditions = ["c.county_code = :county", "c.status <> ALL(:not_cases)"]
        params: dict[str, Any] = {"county": self.county_code, "not_cases": list(NOT_CASES)}
        if self.start is not None:
            conditions.append("c.reported_at >= :start")
            params["start"] = self.start
        if self.end is not None:
            conditions.append("c.reported_at < :end")
            params["end"] = self.end
        if self.categories:
            conditions.append("cat.code = ANY(:categories)")
            params["categories"] = list(self.categories)
        if self.themes:
            conditions.append("cat.theme = ANY(:themes)")
            params["themes"] = list(self.themes)
        if self.unit is not None:
            conditions.append("c.admin_unit_id = (SELECT u.id FROM admin_unit u "
                              "WHERE u.county_code = :county AND u.code = :unit)")
            params["unit"] = self.unit
        if self.assigned_to is not None:
            conditions.append("c.assigned_agency_id = ANY(:assigned)")
            params["assigned"] = list(self.assigned_to)
        return " AND ".join(conditions), params


def _codes(value: str | Sequence[str] | None, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
        raise ValidationError(FieldError(name, "give a code or a list of codes"))
    codes = tuple(dict.fromkeys(v.strip() for v in items if v.strip()))
    if len(codes) > 200 or any(len(c) > 64 for c in codes):
        raise ValidationError(FieldError(name, "at most 200 codes of at most 64 characters"))
    return codes


def _moment(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(FieldError(name, "must be a date-time with a time zone"))
    return value


def select_cases(session: Session, county_code: str, *, category: str | Sequence[str] | None = None,
                 theme: str | Sequence[str] | None = None, start: datetime | None = None,
                 end: datetime | None = None, unit: str | None = None,
                 assigned_to: Sequence[int] | None = None) -> CaseSelection:
    """Return a validated selection, refusing unknown counties, categories, themes and units by name."""
    if not (isinstance(county_code, str) and len(county_code) == 6 and county_code.isdigit()):
        raise ValidationError(FieldError("county_code", "must be a six-digit GB/T 2260 code"))
    start, end = _moment(start, "start"), _moment(end, "end")
    if start is not None and end is not None and start >= end:
        raise ValidationError(FieldError("end", "must be later than start"))
    categories, themes = _codes(category, "category"), _codes(theme, "theme")
    bad_themes = [t for t in themes if t not in vocab.THEMES]
    if bad_themes:
        raise ValidationError(FieldError("theme", f"unknown theme {bad_themes[0]!r}; use {', '.join(vocab.THEMES)}"))
    if categories:
        known = set(session.execute(text("SELECT code FROM category WHERE county_code = :c AND code = ANY(:codes)"),
                                    {"c": county_code, "codes": list(categories)}).scalars())
        unknown = [c for c in categories if c not in known]
        if unknown:
            raise ValidationError(FieldError("category", f"no category {unknown[0]!r} in this county"))
    if unit is not None:
        level = session.execute(text("SELECT level FROM admin_unit WHERE county_code = :c AND code = :u"),
                                {"c": county_code, "u": unit}).scalar()
        if level is None or level == "county":
            raise ValidationError(FieldError("unit", f"no township, subdistrict or zone {unit!r} in this county"))
    assigned = None if assigned_to is None else tuple(int(a) for a in assigned_to)
    return CaseSelection(county_code, categories, themes, start, end, unit, assigned)


# --- cells -----------------------------------------------------------------------------------------------

@dataclass
class CellSet:
    """The cells of a study area, in one order that every array follows.

    ``ids`` are stable integers (a unit grid cell's row id; packed (i, j) for squares and hexagons),
    ``codes`` are readable (the grid code; ``F500:i:j`` or ``H500:i:j``), ``geometry`` is in EPSG:4326 and
    ``metric`` in the metric CRS, both clipped to the study area.
    """

    kind: str
    size_m: float | None
    srid: int
    ids: np.ndarray
    codes: np.ndarray
    geometry: np.ndarray
    metric: np.ndarray
    area_m2: np.ndarray
    ij: np.ndarray | None = None
    _order: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._order = np.argsort(self.ids, kind="stable")

    def __len__(self) -> int:
        return len(self.ids)

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Return the position of each id in this set, or -1 for ids it does not hold."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(self.ids) == 0:
            return np.full(len(ids), -1, dtype=np.int64)
        sorted_ids = self.ids[self._order]
        at = np.clip(np.searchsorted(sorted_ids, ids), 0, len(sorted_ids) - 1)
        found = sorted_ids[at] == ids
        return np.where(found, self._order[at], -1)

    @cached_property
    def graph(self) -> Graph:
        """Return the binary queen-contiguity graph of the cells (no self-weights; islands kept)."""
        return contiguity(self)


def metric_srid(metric_crs: str) -> int:
    """Return the EPSG code of a projected CRS, refusing geographic ones (cells need metres)."""
    crs = CRS.from_user_input(metric_crs)
    if not crs.is_projected or crs.to_epsg() is None:
        raise ValueError(f"the metric CRS {metric_crs!r} must be a projected CRS with an EPSG code")
    return int(crs.to_epsg())


_local = threading.local()


def transformer(source: int, target: int) -> Transformer:
    """Return a lon/lat-ordered transformer, kept per thread (building one takes a good part of a second,
    and pyproj transformers must not be shared between threads)."""
    cache = _local.__dict__.setdefault("transformers", {})
    if (source, target) not in cache:
        cache[source, target] = Transformer.from_crs(source, target, always_xy=True)
    return cache[source, target]


def _transform(geoms: np.ndarray, source: int, target: int) -> np.ndarray:
    """Return geometries reprojected between two EPSG codes, vectorised over every coordinate."""
    transformer_ = transformer(source, target)
    return shapely.transform(geoms, lambda xy: np.column_stack(transformer_.transform(xy[:, 0], xy[:, 1])))


def study_area(session: Session, county_code: str, unit: str | None, srid: int) -> shapely.Geometry:
    """Return the county (or one of its units) in the metric CRS."""
    sql = ("SELECT ST_AsBinary(geom) FROM admin_unit WHERE county_code = :c AND "
           + ("code = :u" if unit is not None else "level = 'county'") + " ORDER BY code LIMIT 1")
    wkb = session.execute(text(sql), {"c": county_code, "u": unit}).scalar()
    if wkb is None:
        name = "unit" if unit is not None else "county_code"
        raise ValidationError(FieldError(name, f"no outline for {unit or county_code!r} in the database"))
    return _transform(np.array([shapely.from_wkb(bytes(wkb))]), 4326, srid)[0]


def _check_size(size_m: float | None, area_m2: float, kind: str, max_cells: int) -> float:
    size = DEFAULT_SIZE_M if size_m is None else size_m
    if isinstance(size, bool) or not isinstance(size, (int, float)) or not math.isfinite(size):
        raise ValidationError(FieldError("size_m", "must be a number of metres"))
    if not MIN_SIZE_M <= size <= MAX_SIZE_M:
        raise ValidationError(FieldError("size_m", f"must lie between {MIN_SIZE_M:g} and {MAX_SIZE_M:g} metres"))
    expected = area_m2 / (size * size)
    if expected > max_cells:
        smallest = math.ceil(math.sqrt(area_m2 / max_cells))
        raise ValidationError(FieldError(
            "size_m", f"{size:g} m {kind} cells would number about {expected:,.0f}, more than {max_cells:,}; "
                      f"use {smallest} m or more"))
    return float(size)


def _lattice_keep(area: shapely.Geometry, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return which cells overlap the area and the cells clipped to it."""
    shapely.prepare(area)
    hit = shapely.intersects(area, cells)
    inside = shapely.contains_properly(area, cells)
    edge = np.flatnonzero(hit & ~inside)
    clipped = cells.copy()
    if len(edge):
        # Clip the outline to each cell's box first: intersecting a cell with the few vertices near it
        # is far cheaper than with the whole outline, and gives the same polygon.
        local = np.array([shapely.clip_by_rect(area, *box) for box in shapely.bounds(cells[edge]).tolist()],
                         dtype=object)
        clipped[edge] = _polygonal(shapely.intersection(cells[edge], local))
    keep = hit & (shapely.area(clipped) > 0)
    return keep, clipped


def _polygonal(geoms: np.ndarray) -> np.ndarray:
    """Return only the polygonal parts of each geometry (an intersection may add lines or points)."""
    out = geoms.copy()
    kinds = shapely.get_type_id(geoms)
    for k in np.flatnonzero(kinds == 7):  # GeometryCollection: rare, cells touching the outline's corners
        parts = shapely.get_parts(geoms[k])
        polys = parts[np.isin(shapely.get_type_id(parts), (3, 6))]
        out[k] = shapely.union_all(polys) if len(polys) else shapely.Polygon()
    return out


def fishnet(area: shapely.Geometry, size_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Return (i, j) indices and metric squares of side ``size_m`` overlapping ``area``, clipped to it."""
    x0, y0, x1, y1 = area.bounds
    i = np.arange(math.floor(x0 / size_m), math.floor(x1 / size_m) + 1, dtype=np.int64)
    j = np.arange(math.floor(y0 / size_m), math.floor(y1 / size_m) + 1, dtype=np.int64)
    ii, jj = (a.ravel() for a in np.meshgrid(i, j, indexing="ij"))
    squares = shapely.box(ii * size_m, jj * size_m, (ii + 1) * size_m, (jj + 1) * size_m)
    keep, clipped = _lattice_keep(area, squares)
    return np.column_stack((ii[keep], jj[keep])), clipped[keep]


def hexagon_edge(size_m: float) -> float:
    """Return the edge (circumradius) of the hexagon with the area of a ``size_m`` square."""
    return size_m * HEX_EDGE_PER_SIDE


def hexagons(area: shapely.Geometry, size_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Return (i, j) indices and metric flat-topped hexagons (``ST_HexagonGrid``'s layout), clipped to ``area``."""
    edge = hexagon_edge(size_m)
    dx, dy = 1.5 * edge, math.sqrt(3.0) * edge
    x0, y0, x1, y1 = area.bounds
    i = np.arange(math.floor((x0 - edge) / dx), math.ceil((x1 + edge) / dx) + 1, dtype=np.int64)
    j = np.arange(math.floor((y0 - dy) / dy), math.ceil((y1 + dy) / dy) + 1, dtype=np.int64)
    ii, jj = (a.ravel() for a in np.meshgrid(i, j, indexing="ij"))
    cx = ii * dx
    cy = (jj + 0.5 * (ii % 2)) * dy
    angles = np.deg2rad(np.arange(0, 360, 60))
    ring = np.stack((cx[:, None] + edge * np.cos(angles), cy[:, None] + edge * np.sin(angles)), axis=-1)
    shells = np.concatenate((ring, ring[:, :1]), axis=1)
    cells = shapely.polygons(shapely.linearrings(shells))
    keep, clipped = _lattice_keep(area, cells)
    return np.column_stack((ii[keep], jj[keep])), clipped[keep]


def build_cells(session: Session, selection: CaseSelection, *, cell: str = "grid", size_m: float | None = None,
                metric_crs: str = "EPSG:4548", at: datetime | None = None, max_cells: int = MAX_CELLS) -> CellSet:
    """Return the study area's cells of the chosen kind, refusing a size that would make too many."""
    if cell not in CELL_KINDS:
        raise ValidationError(FieldError("cell", f"unknown cell kind {cell!r}; use {', '.join(CELL_KINDS)}"))
    srid = metric_srid(metric_crs)
    if cell == "grid":
        if size_m is not None:
            raise ValidationError(FieldError("size_m", "unit grid cells have their own sizes; drop size_m"))
        return _grid_cells(session, selection, srid, at or datetime.now(UTC))
    area = study_area(session, selection.county_code, selection.unit, srid)
    size = _check_size(size_m, area.area, cell, max_cells)
    ij, metric = (fishnet if cell == "fishnet" else hexagons)(area, size)
    prefix = "F" if cell == "fishnet" else "H"
    codes = np.array([f"{prefix}{size:g}:{a}:{b}" for a, b in ij.tolist()], dtype=object)
    return CellSet(cell, size, srid, pack_ij(ij[:, 0], ij[:, 1]), codes, _transform(metric, srid, 4326), metric,
                   shapely.area(metric), ij)


def _grid_cells(session: Session, selection: CaseSelection, srid: int, at: datetime) -> CellSet:
    rows = session.execute(text(
        "SELECT g.id, g.code, ST_AsBinary(g.geom) AS wkb FROM grid_cell g "
        "WHERE g.county_code = :county AND g.valid_from <= :at AND (g.valid_to IS NULL OR g.valid_to > :at) "
        "AND (CAST(:unit AS text) IS NULL OR g.admin_unit_id = (SELECT u.id FROM admin_unit u "
        "     WHERE u.county_code = :county AND u.code = :unit)) "
        "ORDER BY g.id"), {"county": selection.county_code, "at": at, "unit": selection.unit}).all()
    ids = np.array([r.id for r in rows], dtype=np.int64)
    geometry = shapely.from_wkb([bytes(r.wkb) for r in rows]) if rows else np.array([], dtype=object)
    metric = _transform(geometry, 4326, srid) if rows else geometry
    return CellSet("grid", None, srid, ids, np.array([r.code for r in rows], dtype=object), geometry, metric,
                   shapely.area(metric) if rows else np.array([], dtype=float))


# --- contiguity ------------------------------------------------------------------------------------------

# Queen neighbours of a square (i, j), and of a hexagon in an even and in an odd column.
_SQUARE_OFFSETS = tuple((a, b) for a in (-1, 0, 1) for b in (-1, 0, 1) if (a, b) != (0, 0))
_HEX_OFFSETS_EVEN = ((0, -1), (0, 1), (-1, -1), (-1, 0), (1, -1), (1, 0))
_HEX_OFFSETS_ODD = ((0, -1), (0, 1), (-1, 0), (-1, 1), (1, 0), (1, 1))


def contiguity(cells: CellSet) -> Graph:
    """Return the binary queen-contiguity graph of a cell set (see the module docstring)."""
    n = len(cells)
    if cells.ij is not None:
        focal, neighbour = _lattice_pairs(cells)
    else:
        tree = shapely.STRtree(cells.metric)
        focal, neighbour = tree.query(cells.metric, predicate="dwithin", distance=TOUCH_TOLERANCE_M)
        distinct = focal != neighbour
        focal, neighbour = focal[distinct], neighbour[distinct]
    matrix = sp.csr_matrix((np.ones(len(focal)), (focal, neighbour)), shape=(n, n))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return Graph.from_sparse(matrix)


def _lattice_pairs(cells: CellSet) -> tuple[np.ndarray, np.ndarray]:
    i, j = cells.ij[:, 0], cells.ij[:, 1]
    focal_parts, neighbour_parts = [], []
    if cells.kind == "fishnet":
        groups = [(np.ones(len(i), dtype=bool), _SQUARE_OFFSETS)]
    else:
        odd = (i % 2) == 1
        groups = [(~odd, _HEX_OFFSETS_EVEN), (odd, _HEX_OFFSETS_ODD)]
    everyone = np.arange(len(i))
    for members, offsets in groups:
        for di, dj in offsets:
            pos = cells.positions(pack_ij(i[members] + di, j[members] + dj))
            found = pos >= 0
            focal_parts.append(everyone[members][found])
            neighbour_parts.append(pos[found])
    return np.concatenate(focal_parts), np.concatenate(neighbour_parts)


# --- counting --------------------------------------------------------------------------------------------

@contextmanager
def jit_off(session: Session) -> Iterator[None]:
    """Run the enclosed queries without PostgreSQL's JIT, restoring the setting afterwards.

    The lateral lookups make the planner's cost estimate large enough to switch JIT on, and compiling
    then takes seconds for a query that runs in a fraction of one.
    """
    before = session.execute(text("SELECT current_setting('jit')")).scalar_one()
    session.execute(text("SELECT set_config('jit', 'off', true)"))
    try:
        yield
    finally:
        session.execute(text("SELECT set_config('jit', :v, true)"), {"v": before})


def _cell_key_sql(kind: str) -> tuple[str, str, tuple[str, ...]]:
    """Return (FROM additions, key columns, key names) placing a case in a cell of the given kind."""
    if kind == "grid":
        joins = (
            "LEFT JOIN grid_cell old ON old.id = c.grid_cell_id "
            "LEFT JOIN grid_cell cur ON cur.county_code = c.county_code AND cur.code = old.code "
            "  AND cur.valid_from <= :at AND (cur.valid_to IS NULL OR cur.valid_to > :at) "
            # Only cases without a cell in force look one up (a one-time filter skips the others).
            "LEFT JOIN LATERAL (SELECT g.id FROM grid_cell g WHERE cur.id IS NULL "
            "  AND g.county_code = c.county_code AND g.valid_from <= :at "
            "  AND (g.valid_to IS NULL OR g.valid_to > :at) AND ST_Covers(g.geom, c.location) "
            "  ORDER BY g.code LIMIT 1) found ON true")
        return joins, "COALESCE(cur.id, found.id) AS k", ("k",)
    projected = "CROSS JOIN LATERAL (SELECT ST_Transform(c.location, :srid) AS p) q "
    if kind == "fishnet":
        return projected, "floor(ST_X(q.p) / :size)::bigint AS i, floor(ST_Y(q.p) / :size)::bigint AS j", ("i", "j")
    return (projected + "CROSS JOIN LATERAL (SELECT h.i, h.j FROM ST_HexagonGrid(:edge, q.p) h "
                        "WHERE ST_Intersects(h.geom, q.p) ORDER BY h.i, h.j LIMIT 1) hex",
            "hex.i AS i, hex.j AS j", ("i", "j"))


def _count_rows(session: Session, cells: CellSet, selection: CaseSelection, step: str | None,
                at: datetime | None) -> list[Any]:
    joins, keys, names = _cell_key_sql(cells.kind)
    where, params = selection.where()
    params.update(srid=cells.srid, at=at or datetime.now(UTC))
    if cells.size_m is not None:
        params.update(size=cells.size_m, edge=hexagon_edge(cells.size_m))
    group = ", ".join(str(n + 1) for n in range(len(names)))
    period = ""
    if step is not None:
        period = ", date_trunc(:step, c.reported_at AT TIME ZONE 'Asia/Shanghai') AS period"
        group += f", {len(names) + 1}"
        params["step"] = step
    sql = (f'SELECT {keys}{period}, count(*) AS n FROM "case" c JOIN category cat ON cat.id = c.category_id '
           f"{joins} WHERE {where} GROUP BY {group}")
    with jit_off(session):
        return session.execute(text(sql), params).all()


def _row_positions(cells: CellSet, rows: Sequence[Any]) -> np.ndarray:
    if cells.kind == "grid":
        ids = np.array([-1 if r.k is None else r.k for r in rows], dtype=np.int64)
    else:
        ids = pack_ij(np.array([r.i for r in rows], dtype=np.int64), np.array([r.j for r in rows], dtype=np.int64))
    return cells.positions(ids)


def count_cases(session: Session, cells: CellSet, selection: CaseSelection, *,
                at: datetime | None = None) -> np.ndarray:
    """Return the number of selected cases in each cell (cases outside every cell are not counted)."""
    rows = _count_rows(session, cells, selection, None, at)
    counts = np.zeros(len(cells), dtype=np.float64)
    if rows:
        pos = _row_positions(cells, rows)
        n = np.array([r.n for r in rows], dtype=np.float64)
        inside = pos >= 0
        np.add.at(counts, pos[inside], n[inside])
    return counts


def step_starts(step: str, start: datetime, end: datetime) -> list[datetime]:
    """Return the starts (Asia/Shanghai) of the weeks (Mondays) or months overlapping [start, end)."""
    if step not in STEPS:
        raise ValidationError(FieldError("step", f"unknown step {step!r}; use {', '.join(STEPS)}"))
    local = start.astimezone(SHANGHAI)
    if step == "week":
        monday = local.date() - timedelta(days=local.weekday())
        first = datetime.combine(monday, time(), SHANGHAI)
    else:
        first = datetime(local.year, local.month, 1, tzinfo=SHANGHAI)
    out: list[datetime] = []
    moment = first
    while moment < end:
        out.append(moment)
        moment = next_step(moment, step)
    return out


def next_step(moment: datetime, step: str) -> datetime:
    """Return the start of the step after the one starting at ``moment`` (Asia/Shanghai has no DST)."""
    local = moment.astimezone(SHANGHAI)
    if step == "week":
        return local + timedelta(days=7)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return datetime(year, month, 1, tzinfo=SHANGHAI)


def count_cube(session: Session, cells: CellSet, selection: CaseSelection, step: str,
               starts: Sequence[datetime], *, at: datetime | None = None) -> np.ndarray:
    """Return the space-time cube: selected cases per cell (rows) and step (columns, in ``starts`` order)."""
    rows = _count_rows(session, cells, selection, step, at)
    cube = np.zeros((len(cells), len(starts)), dtype=np.float64)
    if rows:
        column = {s.replace(tzinfo=None): k for k, s in enumerate(starts)}
        cols = np.array([column.get(r.period, -1) for r in rows], dtype=np.int64)
        pos = _row_positions(cells, rows)
        n = np.array([r.n for r in rows], dtype=np.float64)
        inside = (pos >= 0) & (cols >= 0)
        np.add.at(cube, (pos[inside], cols[inside]), n[inside])
    return cube
