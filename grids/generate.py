"""Unit-grid generation: square cells aligned to a global origin, clipped to each unit, coded.

Each unit (subdistrict, town, zone) has one cell size. A county that wants finer cells in its urban
area makes the urban area its own unit(s); that keeps the rule "one unit, one size" and the codes
simple. Cells sit on multiples of the cell size in the metric CRS, so the cells of neighbouring units
with the same size line up along their shared border.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from gis_platform.errors import FieldError, ValidationError
from grids.coding import GridCodeLayout

DEFAULT_CRS = "EPSG:4548"
DEFAULT_SLIVER_FRACTION = 0.05
# A guard against a geometry in degrees or a cell size in kilometres producing millions of boxes.
MAX_BOXES_PER_UNIT = 4_000_000


@dataclass(frozen=True)
class UnitSpec:
    """One unit to grid: its 9-digit code, its (Multi)Polygon in the metric CRS, and its cell size."""

    code: str
    geometry: Polygon | MultiPolygon
    cell_size_m: float


@dataclass(frozen=True)
class GeneratedCell:
    """One generated unit-grid cell; geometry is a MultiPolygon in the metric CRS."""

    code: str
    unit_code: str
    community: int
    seq: int
    geometry: MultiPolygon
    area_m2: float


def require_metric_crs(crs: str | CRS) -> CRS:
    """Return the CRS, raising ValidationError unless it is projected with axes in metres."""
    try:
        parsed = CRS.from_user_input(crs)
    except CRSError as exc:
        raise ValidationError(FieldError("crs", f"unknown coordinate reference system {crs!r}")) from exc
    if not parsed.is_projected:
        raise ValidationError(FieldError("crs", f"{crs!r} is not a projected (metric) CRS"))
    units = {axis.unit_name.lower() for axis in parsed.axis_info}
    if not units <= {"metre", "meter"}:
        raise ValidationError(FieldError("crs", f"{crs!r} has axes in {sorted(units)}, not metres"))
    return parsed


def generate_cells(
    units: Sequence[UnitSpec],
    *,
    crs: str | CRS = DEFAULT_CRS,
    layout: GridCodeLayout = GridCodeLayout(),
    county_code: str = "371521",
    sliver_fraction: float = DEFAULT_SLIVER_FRACTION,
) -> list[GeneratedCell]:
    """Generate coded unit-grid cells for every unit, in unit order then code order.

    Geometries must be in ``crs`` with x = easting, y = northing (the GIS axis order, whatever the
    CRS's official axis order). Slivers smaller than ``sliver_fraction`` of a full cell are merged
    into the neighbouring cell of the same unit with which they share the longest border.
    """
    metric = require_metric_crs(crs)
    _check_inputs(units, layout, county_code, sliver_fraction)
    extent = _projected_area_of_use(metric)
    cells: list[GeneratedCell] = []
    for index, unit in enumerate(units):
        _check_unit(index, unit, layout, county_code, extent, crs)
        cells.extend(_unit_cells(unit, layout, county_code, sliver_fraction))
    return cells


def _check_inputs(
    units: Sequence[UnitSpec], layout: GridCodeLayout, county_code: str, sliver_fraction: float
) -> None:
    errors: list[FieldError] = []
    county_ok = isinstance(county_code, str) and county_code.isascii() and county_code.isdigit()
    if not county_ok or len(county_code) != layout.county_digits:
        errors.append(FieldError("county_code", f"must be {layout.county_digits} digits, got {county_code!r}"))
    if not 0 <= sliver_fraction < 1:
        errors.append(FieldError("sliver_fraction", f"must be in [0, 1), got {sliver_fraction!r}"))
    codes = [unit.code for unit in units]
    duplicates = sorted({code for code in codes if codes.count(code) > 1})
    if duplicates:
        errors.append(FieldError("units", f"unit codes must be unique; repeated: {', '.join(duplicates)}"))
    if errors:
        raise ValidationError(errors)


def _check_unit(
    index: int,
    unit: UnitSpec,
    layout: GridCodeLayout,
    county_code: str,
    extent: tuple[float, float, float, float] | None,
    crs: str | CRS,
) -> None:
    where = f"units[{index}]"
    try:
        layout.town_part(unit.code)
    except ValidationError as exc:
        raise ValidationError(FieldError(f"{where}.code", exc.errors[0].problem)) from exc
    if not unit.code.startswith(county_code):
        raise ValidationError(FieldError(f"{where}.code", f"{unit.code!r} is not in county {county_code}"))
    size_ok = isinstance(unit.cell_size_m, (int, float)) and not isinstance(unit.cell_size_m, bool)
    if not size_ok or not math.isfinite(unit.cell_size_m) or unit.cell_size_m <= 0:
        problem = f"must be a positive number, got {unit.cell_size_m!r}"
        raise ValidationError(FieldError(f"{where}.cell_size_m", problem))
    geometry = unit.geometry
    if not isinstance(geometry, (Polygon, MultiPolygon)) or geometry.is_empty:
        raise ValidationError(FieldError(f"{where}.geometry", "must be a non-empty Polygon or MultiPolygon"))
    if not geometry.is_valid:
        reason = shapely.is_valid_reason(geometry)
        raise ValidationError(FieldError(f"{where}.geometry", f"is not valid: {reason}"))
    minx, miny, maxx, maxy = geometry.bounds
    # A geometry far outside the CRS's area of use was almost always given in another CRS (degrees).
    if extent is not None:
        ex0, ey0, ex1, ey1 = extent
        if maxx < ex0 or minx > ex1 or maxy < ey0 or miny > ey1:
            raise ValidationError(
                FieldError(f"{where}.geometry", f"lies outside the area of use of {crs}; is it in another CRS?")
            )
    size = float(unit.cell_size_m)
    boxes = (math.ceil(maxx / size) - math.floor(minx / size)) * (math.ceil(maxy / size) - math.floor(miny / size))
    if boxes > MAX_BOXES_PER_UNIT:
        raise ValidationError(
            FieldError(f"{where}.cell_size_m", f"{size:g} m would need {boxes:,} cells; too many for one unit")
        )


@lru_cache(maxsize=16)
def _projected_area_of_use(crs: CRS) -> tuple[float, float, float, float] | None:
    """Return the CRS's area of use as (minx, miny, maxx, maxy) in its own easting/northing."""
    area = crs.area_of_use
    if area is None:
        return None
    to_crs = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    bounds = to_crs.transform_bounds(*area.bounds)
    return bounds if all(math.isfinite(value) for value in bounds) else None


def _unit_cells(
    unit: UnitSpec, layout: GridCodeLayout, county_code: str, sliver_fraction: float
) -> list[GeneratedCell]:
    size = float(unit.cell_size_m)
    geometry = unit.geometry
    minx, miny, maxx, maxy = geometry.bounds
    col0, row0 = math.floor(minx / size), math.floor(miny / size)
    col1, row1 = math.ceil(maxx / size), math.ceil(maxy / size)
    # Integer indices times the size give the same float for a shared edge from either side.
    col_grid, row_grid = np.meshgrid(np.arange(col0, col1), np.arange(row0, row1))
    cols, rows = col_grid.ravel(), row_grid.ravel()
    boxes = shapely.box(cols * size, rows * size, (cols + 1) * size, (rows + 1) * size)

    hits = shapely.STRtree(boxes).query(geometry, predicate="intersects")
    hits.sort()
    cols, rows, boxes = cols[hits], rows[hits], boxes[hits]
    # Preparing caches an index on the (immutable) geometry: a side effect callers never see.
    shapely.prepare(geometry)
    inside = shapely.contains_properly(geometry, boxes)
    pieces = boxes.copy()
    # Only cells crossing the unit boundary need an overlay; the rest are whole boxes.
    pieces[~inside] = shapely.intersection(boxes[~inside], geometry)
    pieces = np.array([_polygonal(piece) for piece in pieces], dtype=object)
    areas = shapely.area(pieces)
    # Boxes that only touch the unit along an edge or at a corner have no area: they are not cells.
    keep = areas > size * size * 1e-12
    cols, rows, pieces = cols[keep], rows[keep], pieces[keep]

    order = np.lexsort((cols, -rows))  # north to south, then west to east
    cols, rows, pieces = cols[order], rows[order], pieces[order]
    pieces, alive = _merge_slivers(pieces, threshold=sliver_fraction * size * size)
    cols, rows, pieces = cols[alive], rows[alive], pieces[alive]
    return _number(unit, cols, rows, pieces, top_row=row1 - 1, left_col=col0, layout=layout,
                   county_code=county_code)


def _polygonal(geometry: BaseGeometry) -> BaseGeometry:
    """Return only the polygonal part of an overlay result (edges and points touching are dropped)."""
    if isinstance(geometry, (Polygon, MultiPolygon)):
        return geometry
    parts = [part for part in shapely.get_parts(geometry) if isinstance(part, Polygon) and not part.is_empty]
    if not parts:
        return Polygon()
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def _merge_slivers(pieces: np.ndarray, *, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Merge small pieces into the neighbour sharing the longest border; return pieces and survivors.

    Targets are never slivers themselves, so merges cannot chain through a run of slivers; a sliver
    that only touches other slivers waits for a later round, after its neighbour has been merged.
    """
    pieces = pieces.copy()
    alive = np.ones(len(pieces), dtype=bool)
    is_target = shapely.area(pieces) >= threshold
    pending = np.flatnonzero(~is_target)
    while pending.size and is_target.any():
        targets = np.flatnonzero(is_target)
        tree = shapely.STRtree(pieces[targets])
        merges: dict[int, list[int]] = {}
        unmerged: list[int] = []
        for sliver in pending:
            candidates = targets[tree.query(pieces[sliver], predicate="intersects")]
            if candidates.size == 0:
                unmerged.append(sliver)
                continue
            borders = shapely.intersection(shapely.boundary(pieces[sliver]), shapely.boundary(pieces[candidates]))
            shared = shapely.length(borders)
            # Candidates are indices in numbering order, so ties go to the northern-western one.
            best = int(np.argmax(shared))
            if shared[best] <= 0:
                unmerged.append(sliver)
                continue
            merges.setdefault(int(candidates[best]), []).append(int(sliver))
        if not merges:
            break
        for target, slivers in merges.items():
            pieces[target] = shapely.union_all([pieces[target], *pieces[slivers]])
            alive[slivers] = False
        pending = np.array(unmerged, dtype=int)
    return pieces, alive


def _number(
    unit: UnitSpec,
    cols: np.ndarray,
    rows: np.ndarray,
    pieces: np.ndarray,
    *,
    top_row: int,
    left_col: int,
    layout: GridCodeLayout,
    county_code: str,
) -> list[GeneratedCell]:
    """Code cells already sorted north to south, west to east, in k x k community blocks."""
    side = layout.block_side
    block_rows = (top_row - rows) // side
    block_cols = (cols - left_col) // side
    town = layout.town_part(unit.code)
    # Only blocks holding cells get a number: north to south by block row, west to east within it.
    block_keys = sorted(set(zip(block_rows.tolist(), block_cols.tolist())))
    if len(block_keys) > layout.max_community:
        raise ValidationError(
            FieldError("layout", f"unit {unit.code} needs {len(block_keys)} communities; "
                                 f"{layout} allows {layout.max_community}")
        )
    community_of = {key: number for number, key in enumerate(block_keys, start=1)}
    next_seq: dict[int, int] = {}
    areas = shapely.area(pieces)
    cells: list[GeneratedCell] = []
    for block_row, block_col, piece, area in zip(block_rows.tolist(), block_cols.tolist(), pieces, areas):
        community = community_of[(block_row, block_col)]
        seq = next_seq.get(community, 0) + 1
        next_seq[community] = seq
        geometry = piece if isinstance(piece, MultiPolygon) else MultiPolygon([piece])
        cells.append(
            GeneratedCell(
                code=layout.format(county_code, town, community, seq),
                unit_code=unit.code,
                community=community,
                seq=seq,
                geometry=geometry,
                area_m2=float(area),
            )
        )
    return cells
