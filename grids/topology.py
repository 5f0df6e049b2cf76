"""Topology check of the unit grids and jurisdictions in force at one moment (网格与辖区拓扑检查).

Everything is measured in a projected metric CRS (``GIS_METRIC_CRS``, EPSG:4548 for Yanggu). The pure
core, :func:`check_topology`, takes records whose geometries are already in that CRS; the loader,
:func:`load_topology_inputs`, reads the rows in force at a moment and projects them; the command
``gis-platform grids check`` prints a report and writes the problems as GeoJSON.

What is a problem (each one is a :class:`Problem`, one per connected piece or per pair):

``invalid_geometry`` / ``empty_geometry`` (error)
    A cell, jurisdiction, unit or the county whose geometry is not valid (with GEOS's reason), not
    polygonal, or empty. Invalid geometry is repaired with ``make_valid`` for the other checks, so one
    bad ring does not hide every other problem; empty geometry takes no further part.
``cell_gap`` (error)
    Area of an admin unit that none of the unit's own cells covers.
``county_gap`` (error)
    County area that lies in no admin unit and that no cell covers (a gap inside a unit is already a
    ``cell_gap``; it is not counted twice).
``cell_overlap`` (error)
    The intersection of two cells, whichever units they belong to.
``cell_outside_unit`` (error)
    Area of a unit's cells that lies outside that unit.
``jurisdiction_overlap`` / ``jurisdiction_gap`` (error)
    Among the jurisdictions of one group of units that should tile an area: all squads (中队) must tile
    the county; all township offices (乡镇综合执法办公室, the fallback holders) must tile the county;
    the sub-units of a department or departmental team that has at least two of them must tile the
    parent's jurisdiction (the county when the parent holds none). Overlaps within a group are
    problems; so is area of the group's target that no member covers ("county area that no squad
    covers"). The squads are always checked, so with no squad in force the whole county is a gap;
    the other groups only when they have members. Jurisdictions of agencies in no such group (the
    bureau, a department's county-wide jurisdiction) are checked only for validity and slivers.
``sliver`` (warning)
    A cell, or one polygon part of a jurisdiction, that is a sliver (below).

Gap and overlap pieces at or under ``tolerance_m2`` are floating-point noise and are not reported.

A piece of area ``A`` and perimeter ``P`` is a **sliver** when its thinness ``4πA/P²`` (1 for a disc,
0.785 for a square, about 0.05 for a 1:60 strip) is below ``sliver_ratio``, or when ``A`` is below
``sliver_area_fraction`` of the nominal cell area: the square of the unit's cell size for a cell or a
cell gap or overlap, the smallest nominal cell area of the county for anything else, 10,000 m² (the
万米 cell) when no unit has a cell size. Gaps and overlaps keep their own kind; when the piece is a
sliver, ``Problem.sliver`` is true and the message says so, since a thin strip between two
neighbours usually means boundaries digitised twice rather than a missing area.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import numpy as np
import shapely
from pyproj import CRS, Transformer
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.orm import Session, aliased

from gis_platform.errors import FieldError, NotFound, PlatformError, ValidationError
from grids.generate import _projected_area_of_use, require_metric_crs

DEFAULT_TOLERANCE_M2 = 0.01
DEFAULT_SLIVER_RATIO = 0.05
DEFAULT_SLIVER_AREA_FRACTION = 0.01
#: Nominal cell side when no unit states one: the 万米 (10,000 m²) unit grid cell.
DEFAULT_CELL_SIZE_M = 100.0
WGS84 = "EPSG:4326"

ERROR, WARNING = "error", "warning"
#: Problem kinds in report order, with their Chinese and English labels.
KIND_LABELS: dict[str, tuple[str, str]] = {
    "invalid_geometry": ("几何无效", "invalid geometry"),
    "empty_geometry": ("几何为空", "empty geometry"),
    "cell_gap": ("网格缝隙", "gap between grid cells"),
    "county_gap": ("县域未覆盖", "county area covered by no unit or cell"),
    "cell_overlap": ("网格重叠", "overlapping grid cells"),
    "cell_outside_unit": ("网格超出单元", "grid cell outside its unit"),
    "jurisdiction_gap": ("辖区缝隙", "gap between jurisdictions"),
    "jurisdiction_overlap": ("辖区重叠", "overlapping jurisdictions"),
    "sliver": ("碎片", "sliver"),
}
SEVERITY_LABELS = {ERROR: ("错误", "error"), WARNING: ("警告", "warning")}
_KIND_ORDER = {kind: n for n, kind in enumerate(KIND_LABELS)}
_POLYGON, _MULTIPOLYGON = 3, 6


# -- records ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UnitRecord:
    """An admin unit (subdistrict, town, zone) in the metric CRS, with its nominal cell size."""

    code: str
    name: str
    geometry: BaseGeometry
    cell_size_m: float | None = None


@dataclass(frozen=True)
class CellRecord:
    """A grid cell in force, in the metric CRS, with the code of its unit (and of its squad)."""

    code: str
    unit_code: str
    geometry: BaseGeometry
    squad_code: str | None = None


@dataclass(frozen=True)
class JurisdictionRecord:
    """An agency's jurisdiction in force, in the metric CRS, with the agency's kind and parent."""

    agency_code: str
    agency_kind: str
    geometry: BaseGeometry
    parent_code: str | None = None
    parent_kind: str | None = None
    agency_name: str = ""


@dataclass(frozen=True)
class Problem:
    """One topology problem; geometry in the metric CRS (None for empty geometry)."""

    kind: str
    severity: str
    message_zh: str
    message_en: str
    area_m2: float
    refs: tuple[str, ...]
    geometry: BaseGeometry | None
    sliver: bool = False


@dataclass(frozen=True)
class TopologyReport:
    """The outcome of one check: the problems, worst first, and what was checked."""

    problems: tuple[Problem, ...]
    crs: str
    cells: int
    jurisdictions: int
    units: int
    tolerance_m2: float
    sliver_ratio: float
    sliver_area_fraction: float
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        """Return True when no problem was found."""
        return not self.problems

    def counts(self) -> dict[str, int]:
        """Return the number of problems per kind, in report order, kinds without problems left out."""
        counts = {kind: 0 for kind in KIND_LABELS}
        for problem in self.problems:
            counts[problem.kind] += 1
        return {kind: n for kind, n in counts.items() if n}

    def of_kind(self, kind: str) -> list[Problem]:
        """Return the problems of one kind, worst first."""
        return [problem for problem in self.problems if problem.kind == kind]


@dataclass(frozen=True)
class TopologyInputs:
    """What the loader read: records in the metric CRS, ready for :func:`check_topology`."""

    cells: tuple[CellRecord, ...]
    jurisdictions: tuple[JurisdictionRecord, ...]
    county: BaseGeometry
    units: tuple[UnitRecord, ...]
    crs: str
    at: datetime


# -- the pure core ---------------------------------------------------------------------------------
def check_topology(
    cells: Sequence[CellRecord],
    jurisdictions: Sequence[JurisdictionRecord],
    county: Polygon | MultiPolygon,
    units: Sequence[UnitRecord],
    *,
    crs: str | CRS,
    tolerance_m2: float = DEFAULT_TOLERANCE_M2,
    sliver_ratio: float = DEFAULT_SLIVER_RATIO,
    sliver_area_fraction: float = DEFAULT_SLIVER_AREA_FRACTION,
) -> TopologyReport:
    """Find gaps, overlaps, slivers and invalid geometry among cells and jurisdictions.

    All geometries must be in ``crs``, a projected CRS in metres (x = easting, y = northing).
    """
    started = time.perf_counter()
    metric = require_metric_crs(crs)
    _check_parameters(tolerance_m2, sliver_ratio, sliver_area_fraction)
    _check_extent(county, metric, crs)
    unit_index = {unit.code: n for n, unit in enumerate(units)}
    missing = sorted({cell.unit_code for cell in cells} - set(unit_index))
    if missing:
        raise ValidationError(FieldError("cells", f"cells refer to units not given: {', '.join(missing[:5])}"))

    ctx = _Context(tolerance_m2, sliver_ratio, sliver_area_fraction)
    county_geom = ctx.screen(np.array([county], dtype=object), ["county"], "县域", "county")[0]
    unit_geoms = ctx.screen(_array(u.geometry for u in units), [u.code for u in units], "单元", "unit")
    cell_geoms = ctx.screen(_array(c.geometry for c in cells), [c.code for c in cells], "网格", "grid cell")
    jur_geoms = ctx.screen(
        _array(j.geometry for j in jurisdictions), [j.agency_code for j in jurisdictions], "辖区", "jurisdiction"
    )
    sizes = [u.cell_size_m for u in units if u.cell_size_m and u.cell_size_m > 0]
    ctx.county_nominal = (min(sizes) if sizes else DEFAULT_CELL_SIZE_M) ** 2
    unit_nominal = np.array(
        [(u.cell_size_m if u.cell_size_m and u.cell_size_m > 0 else DEFAULT_CELL_SIZE_M) ** 2 for u in units]
    )
    cell_unit = np.array([unit_index[c.unit_code] for c in cells], dtype=np.int64)
    cell_codes = np.array([c.code for c in cells], dtype=object)

    _check_cells(ctx, cell_geoms, cell_codes, cell_unit, unit_geoms, units, unit_nominal, county_geom)
    _check_jurisdictions(ctx, jurisdictions, jur_geoms, county_geom)

    problems = sorted(
        ctx.problems,
        key=lambda p: (p.severity != ERROR, _KIND_ORDER[p.kind], -p.area_m2, p.refs),
    )
    return TopologyReport(
        problems=tuple(problems),
        crs=str(crs),
        cells=len(cells),
        jurisdictions=len(jurisdictions),
        units=len(units),
        tolerance_m2=tolerance_m2,
        sliver_ratio=sliver_ratio,
        sliver_area_fraction=sliver_area_fraction,
        seconds=round(time.perf_counter() - started, 3),
    )


def thinness(geometry: BaseGeometry | np.ndarray) -> np.ndarray | float:
    """Return 4πA/P² (1 for a disc, 0 for a line); 0 for empty geometry."""
    area = shapely.area(geometry)
    perimeter = shapely.length(geometry)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(perimeter > 0, 4 * math.pi * area / np.square(perimeter), 0.0)
    return float(ratio) if np.ndim(ratio) == 0 else ratio


def _check_parameters(tolerance_m2: float, sliver_ratio: float, sliver_area_fraction: float) -> None:
    errors = []
    if not (math.isfinite(tolerance_m2) and tolerance_m2 >= 0):
        errors.append(FieldError("tolerance_m2", f"must be a number >= 0, got {tolerance_m2!r}"))
    if not 0 <= sliver_ratio < 1:
        errors.append(FieldError("sliver_ratio", f"must be in [0, 1), got {sliver_ratio!r}"))
    if not 0 <= sliver_area_fraction < 1:
        errors.append(FieldError("sliver_area_fraction", f"must be in [0, 1), got {sliver_area_fraction!r}"))
    if errors:
        raise ValidationError(errors)


def _check_extent(county: BaseGeometry, metric: CRS, crs: str | CRS) -> None:
    """Refuse a county that lies outside the CRS's area of use: it was given in another CRS."""
    extent = _projected_area_of_use(metric)
    if extent is None or county is None or county.is_empty:
        return
    minx, miny, maxx, maxy = county.bounds
    ex0, ey0, ex1, ey1 = extent
    if maxx < ex0 or minx > ex1 or maxy < ey0 or miny > ey1:
        raise ValidationError(FieldError("county", f"lies outside the area of use of {crs}; is it in another CRS?"))


def _array(geoms: Iterable[BaseGeometry | None]) -> np.ndarray:
    out = np.empty(0, dtype=object)
    listed = list(geoms)
    if listed:
        out = np.empty(len(listed), dtype=object)
        out[:] = listed
    return out


def _polygon_parts(geometry: BaseGeometry | None) -> np.ndarray:
    """Return the polygons of a geometry (any nesting), dropping points and lines."""
    if geometry is None or geometry.is_empty:
        return _array([])
    parts = np.array([geometry], dtype=object)
    while True:
        types = shapely.get_type_id(parts)
        multi = types >= 4  # multi-geometries and collections
        if not multi.any():
            break
        parts = np.concatenate([parts[~multi], shapely.get_parts(parts[multi])])
    return parts[(shapely.get_type_id(parts) == _POLYGON) & ~shapely.is_empty(parts)]


def _polygonal(geometry: BaseGeometry | None) -> BaseGeometry:
    parts = _polygon_parts(geometry)
    if not len(parts):
        return Polygon()
    return parts[0] if len(parts) == 1 else MultiPolygon(list(parts))


def _m2(area: float) -> str:
    return f"{area:,.2f} m²"


def _list(refs: Sequence[str], limit: int = 4) -> tuple[str, str]:
    """Return refs as short Chinese and English lists."""
    shown = "、".join(refs[:limit])
    shown_en = ", ".join(refs[:limit])
    if len(refs) > limit:
        return f"{shown} 等 {len(refs)} 个", f"{shown_en} and {len(refs) - limit} more"
    return shown, shown_en


class _Context:
    """Thresholds and the problems found so far."""

    def __init__(self, tolerance_m2: float, sliver_ratio: float, sliver_area_fraction: float) -> None:
        self.tolerance = tolerance_m2
        self.sliver_ratio = sliver_ratio
        self.sliver_fraction = sliver_area_fraction
        self.county_nominal = DEFAULT_CELL_SIZE_M**2
        self.problems: list[Problem] = []

    def add(self, kind: str, zh: str, en: str, area: float, refs: Iterable[str], geometry: BaseGeometry | None,
            *, severity: str = ERROR, sliver: bool = False) -> None:
        if sliver and kind != "sliver":
            zh, en = f"{zh}（狭长碎片）", f"{en} (a sliver)"
        self.problems.append(Problem(kind, severity, zh, en, round(float(area), 3), tuple(refs), geometry, sliver))

    def is_sliver(self, geoms: np.ndarray, nominal: np.ndarray | float) -> np.ndarray:
        """Return, for each piece, whether it is a sliver by thinness or by area."""
        if not len(geoms):
            return np.zeros(0, dtype=bool)
        return (thinness(geoms) < self.sliver_ratio) | (shapely.area(geoms) < self.sliver_fraction * nominal)

    def screen(self, geoms: np.ndarray, codes: Sequence[str], what_zh: str, what_en: str) -> np.ndarray:
        """Report empty, non-polygonal and invalid geometry; return usable (repaired) geometries or None."""
        out = geoms.copy()
        if not len(geoms):
            return out
        missing = np.array([g is None for g in geoms])
        empty = missing.copy()
        empty[~missing] = shapely.is_empty(geoms[~missing])
        for n in np.flatnonzero(empty):
            self.add("empty_geometry", f"{what_zh} {codes[n]} 的几何为空",
                     f"{what_en} {codes[n]} has empty geometry", 0.0, [codes[n]], None)
            out[n] = None
        rest = np.flatnonzero(~empty)
        if not len(rest):
            return out
        types = shapely.get_type_id(geoms[rest])
        valid = shapely.is_valid(geoms[rest])
        for n, type_id, ok in zip(rest.tolist(), types.tolist(), valid.tolist()):
            if ok and type_id in (_POLYGON, _MULTIPOLYGON):
                continue
            geom = geoms[n]
            if type_id not in (_POLYGON, _MULTIPOLYGON):
                reason_zh, reason_en = f"不是面（{geom.geom_type}）", f"is not a polygon ({geom.geom_type})"
            else:
                reason = shapely.is_valid_reason(geom)
                reason_zh, reason_en = f"无效：{reason}", f"is invalid: {reason}"
            repaired = _polygonal(shapely.make_valid(geom) if not ok else geom)
            out[n] = None if repaired.is_empty else repaired
            self.add("invalid_geometry", f"{what_zh} {codes[n]} 的几何{reason_zh}",
                     f"{what_en} {codes[n]} {reason_en}", float(shapely.area(repaired)), [codes[n]], geom)
        return out

    def overlaps(self, geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Return index pairs (i < j) whose intersection exceeds the tolerance, with pieces and areas."""
        usable = np.flatnonzero([g is not None for g in geoms])
        empty = np.zeros(0, dtype=np.int64)
        if len(usable) < 2:
            return empty, empty, _array([]), np.zeros(0)
        tree = shapely.STRtree(geoms[usable])
        left, right = tree.query(geoms[usable], predicate="intersects")
        keep = left < right
        left, right = usable[left[keep]], usable[right[keep]]
        # Neighbours sharing an edge intersect too; only a shared interior is an overlap.
        inner = shapely.relate_pattern(geoms[left], geoms[right], "T********")
        left, right = left[inner], right[inner]
        pieces = shapely.intersection(geoms[left], geoms[right])
        areas = shapely.area(pieces)
        big = areas > self.tolerance
        return left[big], right[big], pieces[big], areas[big]

    def pieces_over_tolerance(self, geometry: BaseGeometry | None) -> np.ndarray:
        parts = _polygon_parts(geometry)
        return parts[shapely.area(parts) > self.tolerance] if len(parts) else parts


def _check_cells(
    ctx: _Context,
    geoms: np.ndarray,
    codes: np.ndarray,
    cell_unit: np.ndarray,
    unit_geoms: np.ndarray,
    units: Sequence[UnitRecord],
    unit_nominal: np.ndarray,
    county: BaseGeometry | None,
) -> None:
    usable = np.array([g is not None for g in geoms], dtype=bool)
    tree = shapely.STRtree(np.where(usable, geoms, None)) if len(geoms) else None

    def neighbours(piece: BaseGeometry, among: np.ndarray | None = None, *, inside: bool = False) -> list[str]:
        """Return the codes of cells touching the piece, or with ``inside`` sharing area with it."""
        hits = np.sort(tree.query(piece, predicate="intersects")) if tree is not None else np.zeros(0, int)
        if among is not None:
            hits = hits[among[hits]]
        if inside and len(hits):
            hits = hits[shapely.relate_pattern(geoms[hits], piece, "T********")]
        return codes[hits].tolist()

    left, right, pieces, areas = ctx.overlaps(geoms)
    if len(pieces):
        nominal = np.minimum(unit_nominal[cell_unit[left]], unit_nominal[cell_unit[right]])
        slivers = ctx.is_sliver(pieces, nominal)
        for a, b, piece, area, sliver in zip(left, right, pieces, areas, slivers):
            ctx.add("cell_overlap", f"网格 {codes[a]} 与 {codes[b]} 重叠 {_m2(area)}",
                    f"grid cells {codes[a]} and {codes[b]} overlap by {_m2(area)}",
                    area, [codes[a], codes[b]], _polygonal(piece), sliver=bool(sliver))

    covers = []
    for n, unit in enumerate(units):
        members = (cell_unit == n) & usable
        cover = shapely.union_all(geoms[members]) if members.any() else Polygon()
        covers.append(cover)
        unit_geom = unit_geoms[n]
        if unit_geom is None:
            continue
        gaps = ctx.pieces_over_tolerance(shapely.difference(unit_geom, cover))
        for piece, sliver in zip(gaps, ctx.is_sliver(gaps, unit_nominal[n])):
            area = float(piece.area)
            near_zh, near_en = _list(neighbours(piece, members))
            if near_zh:
                where_zh, where_en = f"（邻接网格：{near_zh}）", f" (next to cells {near_en})"
            elif members.any():
                where_zh, where_en = "", ""
            else:
                where_zh, where_en = "（单元内没有网格）", " (the unit has no cells)"
            ctx.add("cell_gap", f"单元 {unit.code} {unit.name} 有 {_m2(area)} 未被其网格覆盖{where_zh}",
                    f"{_m2(area)} of unit {unit.code} is covered by none of its grid cells{where_en}",
                    area, [unit.code, *neighbours(piece, members)], piece, sliver=bool(sliver))
        outside = ctx.pieces_over_tolerance(shapely.difference(cover, unit_geom))
        for piece, sliver in zip(outside, ctx.is_sliver(outside, unit_nominal[n])):
            area = float(piece.area)
            refs = neighbours(piece, members, inside=True)
            cells_zh, cells_en = _list(refs)
            ctx.add("cell_outside_unit", f"单元 {unit.code} 的网格 {cells_zh} 有 {_m2(area)} 超出单元边界",
                    f"{_m2(area)} of cells {cells_en} of unit {unit.code} lies outside the unit",
                    area, [unit.code, *refs], piece, sliver=bool(sliver))

    if county is not None:
        known = [g for g in (*unit_geoms, *covers) if g is not None and not g.is_empty]
        rest = shapely.difference(county, shapely.union_all(known)) if known else county
        gaps = ctx.pieces_over_tolerance(rest)
        for piece, sliver in zip(gaps, ctx.is_sliver(gaps, ctx.county_nominal)):
            area = float(piece.area)
            refs = neighbours(piece)
            near_zh, near_en = _list(refs)
            where_zh = f"（邻接网格：{near_zh}）" if refs else ""
            where_en = f" (next to cells {near_en})" if refs else ""
            ctx.add("county_gap", f"县域内有 {_m2(area)} 不属于任何单元，也没有网格覆盖{where_zh}",
                    f"{_m2(area)} of the county lies in no unit and is covered by no grid cell{where_en}",
                    area, refs, piece, sliver=bool(sliver))

    if usable.any():
        idx = np.flatnonzero(usable)
        slivers = ctx.is_sliver(geoms[idx], unit_nominal[cell_unit[idx]])
        for n in idx[slivers]:
            area, ratio = float(shapely.area(geoms[n])), thinness(geoms[n])
            unit = units[cell_unit[n]]
            ctx.add("sliver",
                    f"网格 {codes[n]}（单元 {unit.code}）是碎片：面积 {_m2(area)}，"
                    f"细长度 4πA/P² = {ratio:.3f}",
                    f"grid cell {codes[n]} (unit {unit.code}) is a sliver: {_m2(area)}, "
                    f"thinness 4πA/P² = {ratio:.3f}",
                    area, [codes[n], unit.code], geoms[n], severity=WARNING)


@dataclass(frozen=True)
class _Group:
    key: str
    label_zh: str
    label_en: str
    members: tuple[int, ...]
    target: BaseGeometry | None
    target_zh: str
    target_en: str


def _groups(
    jurisdictions: Sequence[JurisdictionRecord], geoms: np.ndarray, county: BaseGeometry | None
) -> list[_Group]:
    """Return the groups of jurisdictions that must tile an area, as described in the module docstring."""
    squads = tuple(n for n, j in enumerate(jurisdictions) if j.agency_kind == "squad")
    offices = tuple(n for n, j in enumerate(jurisdictions) if j.agency_kind == "township_office")
    # The squads always exist in the model ("局队合一"): with none in force the whole county is a gap.
    groups = [_Group("squad", "中队", "squads", squads, county, "县域", "the county")]
    if offices:
        groups.append(_Group("township_office", "乡镇综合执法办公室", "township offices", offices, county,
                             "县域", "the county"))
    by_parent: dict[str, list[int]] = {}
    for n, j in enumerate(jurisdictions):
        if j.agency_kind not in ("squad", "township_office") and j.parent_code and j.parent_kind in (
            "department", "dept_team"
        ):
            by_parent.setdefault(j.parent_code, []).append(n)
    held = {j.agency_code: n for n, j in enumerate(jurisdictions)}
    for parent, members in sorted(by_parent.items()):
        if len(members) < 2:
            continue
        if parent in held and geoms[held[parent]] is not None:
            target, zh, en = geoms[held[parent]], f"{parent} 的辖区", f"the jurisdiction of {parent}"
        else:
            target, zh, en = county, "县域", "the county"
        groups.append(_Group(parent, f"{parent} 的下属单位", f"units of {parent}", tuple(members), target, zh, en))
    return groups


def _check_jurisdictions(
    ctx: _Context, jurisdictions: Sequence[JurisdictionRecord], geoms: np.ndarray, county: BaseGeometry | None
) -> None:
    codes = np.array([j.agency_code for j in jurisdictions], dtype=object)
    for group in _groups(jurisdictions, geoms, county):
        members = np.array(group.members, dtype=np.int64)
        sub = geoms[members]
        left, right, pieces, areas = ctx.overlaps(sub)
        for a, b, piece, area, sliver in zip(left, right, pieces, areas, ctx.is_sliver(pieces, ctx.county_nominal)):
            ca, cb = codes[members[a]], codes[members[b]]
            ctx.add("jurisdiction_overlap", f"{group.label_zh} {ca} 与 {cb} 的辖区重叠 {_m2(area)}",
                    f"the jurisdictions of {group.label_en} {ca} and {cb} overlap by {_m2(area)}",
                    area, [ca, cb], _polygonal(piece), sliver=bool(sliver))
        if group.target is None:
            continue
        usable = [g for g in sub if g is not None]
        rest = shapely.difference(group.target, shapely.union_all(usable)) if usable else group.target
        gaps = ctx.pieces_over_tolerance(rest)
        tree = shapely.STRtree(sub)
        for piece, sliver in zip(gaps, ctx.is_sliver(gaps, ctx.county_nominal)):
            area = float(piece.area)
            refs = codes[members[np.sort(tree.query(piece, predicate="intersects"))]].tolist()
            near_zh, near_en = _list(refs)
            where_zh, where_en = (f"（邻接：{near_zh}）", f" (next to {near_en})") if refs else ("", "")
            ctx.add("jurisdiction_gap",
                    f"{group.target_zh}内有 {_m2(area)} 不属于任何{group.label_zh}的辖区{where_zh}",
                    f"{_m2(area)} of {group.target_en} is in the jurisdiction of none of the "
                    f"{group.label_en}{where_en}",
                    area, [group.key, *refs], piece, sliver=bool(sliver))

    for n, geom in enumerate(geoms):
        if geom is None:
            continue
        parts = _polygon_parts(geom)
        for part in parts[ctx.is_sliver(parts, ctx.county_nominal)]:
            area, ratio = float(part.area), thinness(part)
            label = f" ({len(parts)} parts)" if len(parts) > 1 else ""
            ctx.add("sliver",
                    f"{codes[n]} 的辖区含碎片：面积 {_m2(area)}，细长度 4πA/P² = {ratio:.3f}",
                    f"the jurisdiction of {codes[n]}{label} has a sliver: {_m2(area)}, thinness 4πA/P² = {ratio:.3f}",
                    area, [codes[n]], part, severity=WARNING)


# -- loading from the store ------------------------------------------------------------------------
def load_topology_inputs(session: Session, county_code: str, at: datetime, metric_crs: str) -> TopologyInputs:
    """Read the county, its units and the cells and jurisdictions in force at ``at``, in the metric CRS."""
    from gis_platform.models import AdminUnit, Agency, GridCell, Jurisdiction

    if at.tzinfo is None:
        raise ValidationError(FieldError("at", "needs a time zone"))
    require_metric_crs(metric_crs)

    def in_force(model: Any) -> Any:
        # [valid_from, valid_to): a version ending at ``at`` is no longer in force.
        return and_(model.valid_from <= at, or_(model.valid_to.is_(None), model.valid_to > at))

    unit_rows = session.execute(
        select(AdminUnit.code, AdminUnit.name, AdminUnit.level, AdminUnit.grid_cell_size_m,
               func.ST_AsBinary(AdminUnit.geom))
        .where(AdminUnit.county_code == county_code)
        .order_by(AdminUnit.code)
    ).all()
    county_rows = [row for row in unit_rows if row.level == "county"]
    if not county_rows:
        raise NotFound(f"county {county_code} has no county outline (admin_unit of level 'county')")
    unit_rows = [row for row in unit_rows if row.level != "county"]

    squad = aliased(Agency)
    cell_rows = session.execute(
        select(GridCell.code, AdminUnit.code, squad.code, func.ST_AsBinary(GridCell.geom))
        .join(AdminUnit, GridCell.admin_unit_id == AdminUnit.id)
        .outerjoin(squad, GridCell.squad_id == squad.id)
        .where(GridCell.county_code == county_code, in_force(GridCell))
        .order_by(GridCell.code)
    ).all()
    parent = aliased(Agency)
    jur_rows = session.execute(
        select(Agency.code, Agency.kind, Agency.name, parent.code, parent.kind, func.ST_AsBinary(Jurisdiction.geom))
        .join(Agency, Jurisdiction.agency_id == Agency.id)
        .outerjoin(parent, Agency.parent_id == parent.id)
        .where(Jurisdiction.county_code == county_code, in_force(Jurisdiction))
        .order_by(Agency.code)
    ).all()

    project = _projector(WGS84, metric_crs)
    county = project(_from_wkb([county_rows[0][-1]]))[0]
    unit_geoms = project(_from_wkb([row[-1] for row in unit_rows]))
    cell_geoms = project(_from_wkb([row[-1] for row in cell_rows]))
    jur_geoms = project(_from_wkb([row[-1] for row in jur_rows]))
    return TopologyInputs(
        cells=tuple(CellRecord(code, unit, geom, squad_code) for (code, unit, squad_code, _), geom
                    in zip(cell_rows, cell_geoms)),
        jurisdictions=tuple(
            JurisdictionRecord(code, kind, geom, parent_code, parent_kind, name)
            for (code, kind, name, parent_code, parent_kind, _), geom in zip(jur_rows, jur_geoms)
        ),
        county=county,
        units=tuple(UnitRecord(row.code, row.name, geom, row.grid_cell_size_m)
                    for row, geom in zip(unit_rows, unit_geoms)),
        crs=metric_crs,
        at=at,
    )


def _from_wkb(values: Sequence[bytes | memoryview | None]) -> np.ndarray:
    return shapely.from_wkb(_array(bytes(v) if v is not None else None for v in values))


def _projector(src: str | CRS, dst: str | CRS) -> Callable[[np.ndarray], np.ndarray]:
    """Return a function projecting an array of geometries, x = easting/longitude whatever the axis order."""
    transformer = Transformer.from_crs(src, dst, always_xy=True)

    def project(geoms: np.ndarray) -> np.ndarray:
        if not len(geoms):
            return geoms
        return shapely.transform(geoms, lambda x, y: transformer.transform(x, y), interleaved=False)

    return project


# -- output ----------------------------------------------------------------------------------------
def format_report(report: TopologyReport, *, at: datetime | None = None, worst: int = 5) -> str:
    """Return the report as text, Chinese first then English: counts per kind and the worst items."""
    lines = []
    when = f" @ {at.isoformat(timespec='seconds')}" if at is not None else ""
    lines.append(f"拓扑检查 / Topology check{when} ({report.crs}, {report.seconds:.1f} s)")
    lines.append(f"  网格 {report.cells:,} 个，辖区 {report.jurisdictions:,} 个，单元 {report.units:,} 个 / "
                 f"{report.cells:,} grid cells, {report.jurisdictions:,} jurisdictions, {report.units:,} units")
    pct = f"{report.sliver_area_fraction:.0%}"
    lines.append(f"  容差 {report.tolerance_m2:g} m²；碎片：4πA/P² < {report.sliver_ratio:g} "
                 f"或面积 < 标称网格面积的 {pct} / tolerance {report.tolerance_m2:g} m²; "
                 f"sliver: 4πA/P² < {report.sliver_ratio:g} or area < {pct} of the nominal cell")
    if report.clean:
        lines.append("未发现问题 / no problems found")
        return "\n".join(lines)
    errors = sum(p.severity == ERROR for p in report.problems)
    warnings = len(report.problems) - errors
    lines.append(f"发现问题 {len(report.problems):,} 个（错误 {errors:,}，警告 {warnings:,}） / "
                 f"{len(report.problems):,} problems ({errors:,} errors, {warnings:,} warnings)")
    for kind, count in report.counts().items():
        problems = report.of_kind(kind)
        zh, en = KIND_LABELS[kind]
        total = sum(p.area_m2 for p in problems)
        slivers = sum(p.sliver for p in problems)
        extra = f"，其中碎片 {slivers} / of which {slivers} slivers" if slivers and kind != "sliver" else ""
        lines.append(f"  {zh} / {en} [{kind}]: {count:,}，共 {_m2(total)} / {_m2(total)} in all{extra}")
    lines.append(f"最严重的问题（每类至多 {worst} 个） / worst problems (up to {worst} per kind):")
    for kind in report.counts():
        for problem in report.of_kind(kind)[:worst]:
            severity_zh, severity_en = SEVERITY_LABELS[problem.severity]
            lines.append(f"  [{severity_zh}] {problem.message_zh}")
            lines.append(f"  [{severity_en}] {problem.message_en}")
    return "\n".join(lines)


def report_to_geojson(report: TopologyReport) -> dict[str, Any]:
    """Return the problems as an RFC 7946 FeatureCollection in EPSG:4326 (lon/lat, CCW exteriors)."""
    project = _projector(report.crs, WGS84)
    geoms = _array(p.geometry for p in report.problems)
    present = np.flatnonzero([g is not None and not g.is_empty for g in geoms])
    lonlat = geoms.copy()
    if len(present):
        lonlat[present] = shapely.orient_polygons(project(geoms[present]), exterior_cw=False)
    features = []
    for problem, geom in zip(report.problems, lonlat):
        has_geometry = geom is not None and not geom.is_empty
        features.append({
            "type": "Feature",
            "geometry": json.loads(shapely.to_geojson(geom)) if has_geometry else None,
            "properties": {
                "kind": problem.kind,
                "severity": problem.severity,
                "message": problem.message_zh,
                "message_en": problem.message_en,
                "area_m2": problem.area_m2,
                "refs": list(problem.refs),
                "sliver": problem.sliver,
            },
        })
    return {"type": "FeatureCollection", "features": features}


def write_geojson(report: TopologyReport, path: Path) -> Path:
    """Write the problems as GeoJSON to ``path`` (creating its folder) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report_to_geojson(report), ensure_ascii=False), encoding="utf-8")
    return path


# -- command line ----------------------------------------------------------------------------------
class _CheckFailed(click.ClickException):
    """The check could not run (exit 2), as opposed to a check that found problems (exit 1)."""

    exit_code = 2


def parse_at(value: str | None) -> datetime:
    """Return an aware datetime from ISO 8601 text (naive means Asia/Shanghai); now when None."""
    from gis_platform.workcalendar import SHANGHAI

    if value is None:
        return datetime.now(SHANGHAI)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValidationError(FieldError("at", f"not an ISO 8601 date or datetime: {value!r}")) from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=SHANGHAI)


def run_check(session: Session, county_code: str, metric_crs: str, at: datetime, *,
              tolerance_m2: float = DEFAULT_TOLERANCE_M2, sliver_ratio: float = DEFAULT_SLIVER_RATIO,
              ) -> TopologyReport:
    """Load what is in force at ``at`` and check it; reads only."""
    inputs = load_topology_inputs(session, county_code, at, metric_crs)
    return check_topology(inputs.cells, inputs.jurisdictions, inputs.county, inputs.units, crs=inputs.crs,
                          tolerance_m2=tolerance_m2, sliver_ratio=sliver_ratio)


@click.command("check")
@click.option("--at", "at_text", metavar="ISO", help="Moment to check (ISO 8601; naive = Asia/Shanghai). Default: now.")
@click.option("--geojson", "geojson_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the problems (GeoJSON, EPSG:4326). Default: <GIS_DATA_DIR>/topology-<time>.geojson.")
@click.option("--tolerance", type=click.FloatRange(min=0), default=DEFAULT_TOLERANCE_M2, show_default=True,
              help="Gaps and overlaps up to this many m² are ignored.")
@click.option("--sliver-ratio", type=click.FloatRange(0, 1, max_open=True), default=DEFAULT_SLIVER_RATIO,
              show_default=True, help="Pieces with thinness 4πA/P² below this are slivers.")
@click.pass_context
def check_command(ctx: click.Context, at_text: str | None, geojson_path: Path | None, tolerance: float,
                  sliver_ratio: float) -> None:
    """Check grid and jurisdiction topology (拓扑检查); exit 1 when problems exist, 2 when unable to check.

    Finds gaps, overlaps, slivers and invalid geometry among the grid cells and jurisdictions in force,
    prints a report and writes the problems as GeoJSON. Reads only.
    """
    from gis_platform.cli import echo_progress, load_settings
    from gis_platform.db import make_engine, resolve_database_url

    settings = load_settings()
    try:
        at = parse_at(at_text)
    except ValidationError as exc:
        raise click.BadParameter(exc.errors[0].problem, param_hint="--at") from exc
    url, _ = resolve_database_url(settings, progress=echo_progress)
    engine = make_engine(url)
    try:
        with Session(engine) as session, session.begin():
            session.execute(text("SET TRANSACTION READ ONLY"))
            echo_progress(f"checking county {settings.county_code} at {at.isoformat(timespec='seconds')}…")
            report = run_check(session, settings.county_code, settings.metric_crs, at,
                               tolerance_m2=tolerance, sliver_ratio=sliver_ratio)
    except PlatformError as exc:
        raise _CheckFailed(exc.detail) from exc
    finally:
        engine.dispose()
    click.echo(format_report(report, at=at))
    if geojson_path is None:
        stamp = datetime.now(at.tzinfo).strftime("%Y%m%dT%H%M%S")
        geojson_path = settings.resolved_data_dir / f"topology-{stamp}.geojson"
    write_geojson(report, geojson_path)
    click.echo(f"GeoJSON: {geojson_path}")
    if not report.clean:
        ctx.exit(1)
