"""Topology check of grids and jurisdictions: pure cases on small metric shapes, the loader, the demo, the CLI."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import shapely
from click.testing import CliRunner
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Polygon, box
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gis_platform import models as m
from gis_platform.errors import ValidationError
from gis_platform.workcalendar import SHANGHAI
from grids.topology import (
    CellRecord,
    JurisdictionRecord,
    UnitRecord,
    check_command,
    check_topology,
    format_report,
    load_topology_inputs,
    parse_at,
    report_to_geojson,
    thinness,
    write_geojson,
)

CRS = "EPSG:4548"
# A grid-aligned origin inside EPSG:4548's area of use (Yanggu is around x 390 km, y 4 000 km).
X0, Y0 = 390_000.0, 4_000_000.0
UNIT = "371521001"


def sq(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    """Return a box given in metres from the origin."""
    return box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


def cells(*geoms: Polygon | MultiPolygon, unit: str = UNIT) -> list[CellRecord]:
    return [CellRecord(f"{unit}001{n:02d}", unit, g) for n, g in enumerate(geoms, 1)]


def squads(*geoms: Polygon | MultiPolygon) -> list[JurisdictionRecord]:
    return [JurisdictionRecord(f"SQ{n}", "squad", g, "BRIGADE", "brigade") for n, g in enumerate(geoms, 1)]


def check(cell_records, county, *, units=None, jurisdictions=None, **kw):
    """Check with one unit equal to the county and one squad holding it, unless told otherwise."""
    units = units if units is not None else [UnitRecord(UNIT, "博济桥街道", county, 100.0)]
    jurisdictions = jurisdictions if jurisdictions is not None else squads(county)
    return check_topology(cell_records, jurisdictions, county, units, crs=CRS, **kw)


# -- pure cases --------------------------------------------------------------------------------------
def test_two_squares_sharing_an_edge_are_clean() -> None:
    report = check(cells(sq(0, 0, 100, 100), sq(100, 0, 200, 100)), sq(0, 0, 200, 100))
    assert report.clean, format_report(report)
    assert report.counts() == {}
    assert (report.cells, report.jurisdictions, report.units) == (2, 1, 1)
    assert "未发现问题 / no problems found" in format_report(report)


def test_gap_between_two_cells_is_found_with_its_area() -> None:
    report = check(cells(sq(0, 0, 100, 100), sq(150, 0, 300, 100)), sq(0, 0, 300, 100))
    assert report.counts() == {"cell_gap": 1}
    (gap,) = report.problems
    assert gap.area_m2 == pytest.approx(50 * 100)
    assert gap.severity == "error" and not gap.sliver
    assert gap.refs == (UNIT, "37152100100101", "37152100100102")
    assert gap.geometry.equals(sq(100, 0, 150, 100))
    assert "5,000.00 m²" in gap.message_zh and "5,000.00 m²" in gap.message_en


def test_overlap_is_found_with_its_area() -> None:
    report = check(cells(sq(0, 0, 120, 100), sq(100, 0, 200, 100)), sq(0, 0, 200, 100))
    assert report.counts() == {"cell_overlap": 1}
    (overlap,) = report.problems
    assert overlap.area_m2 == pytest.approx(20 * 100)
    assert overlap.refs == ("37152100100101", "37152100100102")
    assert overlap.geometry.equals(sq(100, 0, 120, 100))


def test_overlaps_under_the_tolerance_are_noise() -> None:
    # A 1 mm overlap along a 100 m edge is 0.1 m²: noise at 1 m², a problem at the default 0.01 m².
    geoms = cells(sq(0, 0, 100.001, 100), sq(100, 0, 200, 100))
    assert check(geoms, sq(0, 0, 200, 100), tolerance_m2=1.0).clean
    assert check(geoms, sq(0, 0, 200, 100)).counts() == {"cell_overlap": 1}


def test_self_intersecting_cell_is_reported_invalid_and_repaired_for_the_rest() -> None:
    bow_tie = Polygon([(X0, Y0), (X0 + 100, Y0 + 100), (X0 + 100, Y0), (X0, Y0 + 100)])
    assert not bow_tie.is_valid
    report = check(cells(bow_tie, sq(100, 0, 200, 100)), sq(0, 0, 200, 100))
    (invalid,) = report.of_kind("invalid_geometry")
    assert invalid.refs == ("37152100100101",)
    assert "Self-intersection" in invalid.message_en and "无效" in invalid.message_zh
    assert invalid.geometry is bow_tie
    # Repaired, the bow-tie is two triangles of 2,500 m² each: the other half of its square is a gap.
    assert invalid.area_m2 == pytest.approx(5_000)
    assert sum(p.area_m2 for p in report.of_kind("cell_gap")) == pytest.approx(5_000)
    assert report.problems[0].kind == "invalid_geometry"


def test_empty_and_non_polygonal_cells_are_reported() -> None:
    line = shapely.LineString([(X0, Y0), (X0 + 100, Y0 + 100)])
    report = check(cells(sq(0, 0, 100, 100), Polygon(), line), sq(0, 0, 100, 100))
    assert report.counts() == {"invalid_geometry": 1, "empty_geometry": 1}
    assert report.of_kind("empty_geometry")[0].geometry is None
    assert "LineString" in report.of_kind("invalid_geometry")[0].message_en


def test_thin_cell_is_a_sliver() -> None:
    # 100 m × 1 m: 100 m² (1 % of the nominal cell, not below it) but thinness 4πA/P² ≈ 0.031 < 0.05.
    strip = sq(0, 100, 100, 101)
    assert thinness(strip) == pytest.approx(4 * np.pi * 100 / 202**2)
    report = check(cells(sq(0, 0, 100, 100), strip), sq(0, 0, 100, 101))
    assert report.counts() == {"sliver": 1}
    (sliver,) = report.problems
    assert sliver.severity == "warning"
    assert sliver.refs == ("37152100100102", UNIT)
    assert sliver.area_m2 == pytest.approx(100)
    # With a looser ratio it is no sliver: the area rule alone (below 1 % of 10,000 m²) does not catch it.
    assert check(cells(sq(0, 0, 100, 100), strip), sq(0, 0, 100, 101), sliver_ratio=0.01).clean


def test_tiny_cell_is_a_sliver_by_area() -> None:
    report = check(cells(sq(0, 0, 100, 100), sq(100, 0, 109, 9)), sq(0, 0, 100, 100).union(sq(100, 0, 109, 9)))
    (sliver,) = report.of_kind("sliver")
    assert sliver.area_m2 == pytest.approx(81)  # 81 m² < 1 % of 10,000 m², although square


def test_thin_gap_is_a_gap_marked_as_sliver() -> None:
    report = check(cells(sq(0, 0, 100, 100), sq(0, 100.5, 100, 200)), sq(0, 0, 100, 200))
    (gap,) = report.problems
    assert gap.kind == "cell_gap" and gap.sliver and gap.severity == "error"
    assert gap.area_m2 == pytest.approx(50)
    assert "狭长碎片" in gap.message_zh and "sliver" in gap.message_en
    assert "其中碎片 1" in format_report(report)


def test_squad_gap_and_overlap_are_both_found() -> None:
    county = sq(0, 0, 300, 100)
    grid = cells(sq(0, 0, 100, 100), sq(100, 0, 200, 100), sq(200, 0, 300, 100))
    jurisdictions = [
        *squads(sq(0, 0, 100, 100), sq(90, 0, 200, 100), sq(220, 0, 300, 100)),
        # The bureau holds the whole county: in no group, so it overlaps nobody.
        JurisdictionRecord("BUREAU", "bureau", county),
    ]
    report = check(grid, county, jurisdictions=jurisdictions)
    assert report.counts() == {"jurisdiction_gap": 1, "jurisdiction_overlap": 1}
    (overlap,) = report.of_kind("jurisdiction_overlap")
    assert overlap.refs == ("SQ1", "SQ2") and overlap.area_m2 == pytest.approx(10 * 100)
    (gap,) = report.of_kind("jurisdiction_gap")
    assert gap.refs == ("squad", "SQ2", "SQ3") and gap.area_m2 == pytest.approx(20 * 100)
    assert "中队" in gap.message_zh and "squads" in gap.message_en


def test_no_squad_in_force_leaves_the_whole_county_uncovered() -> None:
    county = sq(0, 0, 200, 100)
    report = check(cells(sq(0, 0, 100, 100), sq(100, 0, 200, 100)), county, jurisdictions=[])
    (gap,) = report.problems
    assert gap.kind == "jurisdiction_gap" and gap.area_m2 == pytest.approx(county.area)


def test_units_of_a_department_must_tile_its_jurisdiction() -> None:
    county = sq(0, 0, 300, 100)
    grid = cells(sq(0, 0, 100, 100), sq(100, 0, 200, 100), sq(200, 0, 300, 100))
    jurisdictions = [
        *squads(county),
        JurisdictionRecord("DEPT", "department", sq(0, 0, 200, 100)),
        JurisdictionRecord("DEPT-1", "dept_team", sq(0, 0, 100, 100), "DEPT", "department"),
        JurisdictionRecord("DEPT-2", "dept_team", sq(100, 0, 150, 100), "DEPT", "department"),
        # A department with one unit: nothing to tile.
        JurisdictionRecord("OTHER-1", "dept_team", sq(0, 0, 30, 30), "OTHER", "department"),
    ]
    report = check(grid, county, jurisdictions=jurisdictions)
    (gap,) = report.problems
    assert gap.kind == "jurisdiction_gap"
    assert gap.area_m2 == pytest.approx(50 * 100)  # the parent's area, not the county's, is the target
    assert gap.refs == ("DEPT", "DEPT-2")


def test_polygon_with_a_hole_and_multipolygon_units() -> None:
    # Unit A: a 300 m square with a 100 m hole in the middle; unit B: two separate squares.
    ring = sq(0, 0, 300, 300).difference(sq(100, 100, 200, 200))
    assert len(ring.interiors) == 1
    two = MultiPolygon([sq(400, 0, 500, 100), sq(400, 200, 500, 300)])
    a, b = "371521001", "371521002"
    units = [UnitRecord(a, "A", ring, 100.0), UnitRecord(b, "B", two, 100.0)]
    ring_cells = [sq(x, y, x + 100, y + 100) for x in (0, 100, 200) for y in (0, 100, 200) if (x, y) != (100, 100)]
    grid = cells(*ring_cells, unit=a) + cells(*two.geoms, unit=b)
    county = sq(0, 0, 500, 300)
    # The county is not all units: the hole and the strip between A and B lie in no unit.
    report = check(grid, county, units=units, jurisdictions=squads(county))
    assert report.counts() == {"county_gap": 2}
    areas = sorted(p.area_m2 for p in report.of_kind("county_gap"))
    assert areas == pytest.approx([100 * 100, 100 * 300 + 100 * 100])

    # A cell filling the hole lies outside its unit; dropping a cell of B leaves a gap in B.
    grid = cells(*ring_cells, sq(100, 100, 200, 200), unit=a) + cells(two.geoms[0], unit=b)
    report = check(grid, ring.union(two), units=units, jurisdictions=squads(ring.union(two)))
    assert report.counts() == {"cell_gap": 1, "cell_outside_unit": 1}
    (outside,) = report.of_kind("cell_outside_unit")
    assert outside.area_m2 == pytest.approx(100 * 100) and outside.refs == (a, "37152100100109")
    (gap,) = report.of_kind("cell_gap")
    assert gap.refs == (b,) and gap.area_m2 == pytest.approx(100 * 100)
    assert "单元内没有网格" not in gap.message_zh  # B has a cell, just not here
    assert gap.geometry.equals(two.geoms[1])


def test_large_random_grid_checks_fast_and_finds_every_planted_overlap() -> None:
    # 80 × 80 = 6,400 cells (more than the demo county's) with 25 cells shifted east by 5 m.
    rng = np.random.default_rng(7)
    n = 80
    xs, ys = np.meshgrid(np.arange(n) * 100.0, np.arange(n) * 100.0)
    xs, ys = xs.ravel(), ys.ravel()
    shifted = rng.choice(np.flatnonzero(xs < (n - 1) * 100), size=25, replace=False)
    dx = np.zeros(len(xs))
    dx[shifted] = 5.0
    geoms = shapely.box(X0 + xs + dx, Y0 + ys, X0 + xs + dx + 100, Y0 + ys + 100)
    county = sq(0, 0, n * 100 + 5, n * 100)
    started = time.perf_counter()
    report = check(cells(*geoms), county)
    elapsed = time.perf_counter() - started
    # Each shifted cell overlaps its eastern neighbour (unless that one moved too) by 5 × 100 m².
    overlaps = report.of_kind("cell_overlap")
    expected = sum(1 for k in shifted if k + 1 not in set(shifted))
    assert len(overlaps) == expected and all(p.area_m2 == pytest.approx(500) for p in overlaps)
    assert len(report.of_kind("cell_gap")) >= 1
    print(f"checked in {elapsed:.1f} s")  # speed is measured in bench/, not asserted here


def test_wrong_crs_and_bad_parameters_are_refused() -> None:
    lonlat = box(115.78, 36.10, 115.80, 36.12)
    with pytest.raises(ValidationError, match="area of use"):
        check([], lonlat)
    with pytest.raises(ValidationError, match="projected"):
        check_topology([], [], sq(0, 0, 1, 1), [], crs="EPSG:4326")
    with pytest.raises(ValidationError, match="sliver_ratio"):
        check([], sq(0, 0, 100, 100), sliver_ratio=1.5)
    with pytest.raises(ValidationError, match="units not given"):
        check(cells(sq(0, 0, 100, 100), unit="371521999"), sq(0, 0, 100, 100))


def test_geojson_is_rfc7946_lonlat(tmp_path: Path) -> None:
    bow_tie = Polygon([(X0, Y0), (X0 + 100, Y0 + 100), (X0 + 100, Y0), (X0, Y0 + 100)])
    report = check(cells(sq(0, 0, 120, 100), sq(100, 0, 200, 100), sq(200, 0, 300, 50), bow_tie, Polygon()),
                   sq(0, 0, 300, 100))
    path = write_geojson(report, tmp_path / "out" / "problems.geojson")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["type"] == "FeatureCollection" and "crs" not in data
    assert data == report_to_geojson(report)
    assert len(data["features"]) == len(report.problems)
    kinds = {f["properties"]["kind"] for f in data["features"]}
    assert {"cell_overlap", "cell_gap", "invalid_geometry", "empty_geometry"} <= kinds
    for feature in data["features"]:
        props = feature["properties"]
        assert set(props) >= {"kind", "severity", "message", "area_m2", "refs"}
        assert isinstance(props["refs"], list) and props["severity"] in ("error", "warning")
        if feature["geometry"] is None:
            assert props["kind"] == "empty_geometry"
            continue
        geom = shapely.geometry.shape(feature["geometry"])
        lon0, lat0, lon1, lat1 = geom.bounds
        # EPSG:4548 x 390 km, y 4,000 km is near 115.8°E, 36.1°N: longitude first.
        assert 115.5 < lon0 <= lon1 < 116.2 and 35.9 < lat0 <= lat1 < 36.3
        for polygon in shapely.get_parts(geom):
            if props["kind"] != "invalid_geometry":
                assert polygon.exterior.is_ccw  # RFC 7946 right-hand rule
    overlap = next(f for f in data["features"] if f["properties"]["kind"] == "cell_overlap"
                   and f["properties"]["refs"] == ["37152100100101", "37152100100102"])
    back = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
    metric = shapely.transform(shapely.geometry.shape(overlap["geometry"]),
                               lambda x, y: back.transform(x, y), interleaved=False)
    assert metric.area == pytest.approx(2_000, rel=1e-6)


def test_parse_at() -> None:
    assert parse_at("2021-06-01T09:00").tzinfo is SHANGHAI
    assert parse_at("2021-06-01T09:00+00:00").utcoffset() == timedelta(0)
    assert parse_at(None).tzinfo is not None
    with pytest.raises(ValidationError):
        parse_at("yesterday")


# -- the loader --------------------------------------------------------------------------------------
TO_WGS = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)


def ewkt(geometry: Polygon | MultiPolygon) -> str:
    lonlat = shapely.transform(geometry, lambda x, y: TO_WGS.transform(x, y), interleaved=False)
    multi = lonlat if isinstance(lonlat, MultiPolygon) else MultiPolygon([lonlat])
    return "SRID=4326;" + multi.wkt


T2020 = datetime(2020, 1, 1, tzinfo=SHANGHAI)
T2021 = datetime(2021, 1, 1, tzinfo=SHANGHAI)


def add_county(session: Session, county: str, *, overlap: bool = False) -> None:
    """Add a 200 m × 100 m county, one unit, one squad holding it and two cells (overlapping if asked).

    The cells and the squad's jurisdiction were redrawn on 1 January 2021: the 2020 versions are a
    single cell and a jurisdiction covering only the western half.
    """
    whole, west, east = sq(0, 0, 200, 100), sq(0, 0, 100, 100), sq(100, 0, 200, 100)
    names = dict(name="测试", name_en="Test")
    top = m.AdminUnit(county_code=county, code=county, level="county", geom=ewkt(whole), **names)
    session.add(top)
    session.flush()
    unit = m.AdminUnit(county_code=county, code=f"{county}001", level="subdistrict", parent_id=top.id,
                       grid_cell_size_m=100.0, geom=ewkt(whole), **names)
    brigade = m.Agency(county_code=county, code=f"B{county}", kind="brigade", **names)
    session.add_all([unit, brigade])
    session.flush()
    squad = m.Agency(county_code=county, code=f"S{county}", kind="squad", parent_id=brigade.id, **names)
    session.add(squad)
    session.flush()
    session.add_all([
        m.Jurisdiction(county_code=county, agency_id=squad.id, version=1, valid_from=T2020, valid_to=T2021,
                       geom=ewkt(west)),
        m.Jurisdiction(county_code=county, agency_id=squad.id, version=2, valid_from=T2021, geom=ewkt(whole)),
    ])
    cell = dict(county_code=county, admin_unit_id=unit.id, squad_id=squad.id, community="001")
    session.add_all([
        m.GridCell(code=f"{county}00100101", area_m2=20_000, valid_from=T2020, valid_to=T2021, geom=ewkt(whole),
                   **cell),
        m.GridCell(code=f"{county}00100101", area_m2=10_000, valid_from=T2021,
                   geom=ewkt(sq(0, 0, 120 if overlap else 100, 100)), **cell),
        m.GridCell(code=f"{county}00100102", area_m2=10_000, valid_from=T2021, geom=ewkt(east), **cell),
    ])
    session.flush()


def remove_county(session: Session, county: str) -> None:
    for model in (m.GridCell, m.Jurisdiction):
        session.execute(delete(model).where(model.county_code == county))
    session.execute(delete(m.Agency).where(m.Agency.county_code == county, m.Agency.kind == "squad"))
    session.execute(delete(m.Agency).where(m.Agency.county_code == county))
    session.execute(delete(m.AdminUnit).where(m.AdminUnit.county_code == county, m.AdminUnit.level != "county"))
    session.execute(delete(m.AdminUnit).where(m.AdminUnit.county_code == county))


def test_loader_reads_only_rows_in_force(db_session: Session) -> None:
    add_county(db_session, "379901")
    now = load_topology_inputs(db_session, "379901", datetime(2024, 5, 1, tzinfo=timezone.utc), CRS)
    assert [c.code for c in now.cells] == ["37990100100101", "37990100100102"]
    assert [c.squad_code for c in now.cells] == ["S379901", "S379901"]
    assert [(j.agency_code, j.agency_kind, j.parent_code) for j in now.jurisdictions] == [
        ("S379901", "squad", "B379901")]
    assert now.county.area == pytest.approx(20_000, rel=1e-6)  # projected back to metres
    assert now.cells[0].geometry.symmetric_difference(sq(0, 0, 100, 100)).area < 1e-3
    assert [(u.code, u.cell_size_m) for u in now.units] == [("379901001", 100.0)]
    assert check_topology(now.cells, now.jurisdictions, now.county, now.units, crs=CRS).clean

    # In 2020 one cell covered everything, but the squad held only the western half.
    before = load_topology_inputs(db_session, "379901", datetime(2020, 6, 1, tzinfo=SHANGHAI), CRS)
    assert [c.geometry.area for c in before.cells] == pytest.approx([20_000])
    report = check_topology(before.cells, before.jurisdictions, before.county, before.units, crs=CRS)
    assert report.counts() == {"jurisdiction_gap": 1}
    assert report.problems[0].area_m2 == pytest.approx(10_000, rel=1e-6)

    # valid_to is exclusive: at the switch the new versions are in force, not the old ones.
    switch = load_topology_inputs(db_session, "379901", T2021, CRS)
    assert len(switch.cells) == 2
    assert load_topology_inputs(db_session, "379901", T2020 - timedelta(seconds=1), CRS).cells == ()
    with pytest.raises(ValidationError, match="time zone"):
        load_topology_inputs(db_session, "379901", datetime(2024, 5, 1), CRS)


# -- the demo county ---------------------------------------------------------------------------------
def test_demo_county_is_clean(demo_session: Session) -> None:
    at = datetime(2024, 5, 1, tzinfo=SHANGHAI)
    started = time.perf_counter()
    inputs = load_topology_inputs(demo_session, "371521", at, CRS)
    loaded = time.perf_counter()
    report = check_topology(inputs.cells, inputs.jurisdictions, inputs.county, inputs.units, crs=CRS)
    checked = time.perf_counter()
    print(f"demo: load {loaded - started:.2f} s, check {checked - loaded:.2f} s, {len(inputs.cells):,} cells")
    assert len(inputs.cells) > 5_000 and len(inputs.units) == 20
    kinds = [j.agency_kind for j in inputs.jurisdictions]
    assert kinds.count("squad") == 10 and kinds.count("township_office") == 20
    # The synthetic partition is noded once and every cell is clipped from it: the grids cover each
    # unit, the 10 squads (3+5+2) tile the county, the township offices too, and every cell is at least
    # 5 % of a nominal cell (smaller slivers were merged at generation). Only floating-point noise from
    # the WGS-84 round trip remains, far below the 0.01 m² tolerance.
    assert report.clean, format_report(report)
    # With no tolerance at all the noise shows: pieces well under a thousandth of a square metre.
    strict = check_topology(inputs.cells, inputs.jurisdictions, inputs.county, inputs.units, crs=CRS,
                            tolerance_m2=0.0)
    assert max(p.area_m2 for p in strict.problems) < 1e-3
    assert {p.kind for p in strict.problems} <= {"cell_gap", "county_gap", "cell_overlap", "cell_outside_unit",
                                                 "jurisdiction_gap", "jurisdiction_overlap"}


def test_demo_county_before_its_grids_existed(demo_session: Session) -> None:
    # The demo's grids and jurisdictions are valid from 2020-01-01: before that, nothing is in force.
    inputs = load_topology_inputs(demo_session, "371521", datetime(2019, 6, 1, tzinfo=SHANGHAI), CRS)
    assert inputs.cells == () and inputs.jurisdictions == ()
    report = check_topology(inputs.cells, inputs.jurisdictions, inputs.county, inputs.units, crs=CRS)
    gaps = report.of_kind("cell_gap")
    assert {p.refs[0] for p in gaps} == {u.code for u in inputs.units}
    assert sum(p.area_m2 for p in gaps) == pytest.approx(inputs.county.area, rel=1e-6)
    (no_squad,) = report.of_kind("jurisdiction_gap")
    assert no_squad.area_m2 == pytest.approx(inputs.county.area, rel=1e-6)


# -- the command -------------------------------------------------------------------------------------
def test_command_exit_codes(engine, database_url: str, tmp_path: Path) -> None:
    county = "379902"
    env = {"DATABASE_URL": database_url, "GIS_COUNTY_CODE": county, "GIS_DATA_DIR": str(tmp_path),
           "GIS_METRIC_CRS": CRS}
    runner = CliRunner()
    try:
        with Session(engine) as session, session.begin():
            add_county(session, county)
        out = tmp_path / "clean.geojson"
        result = runner.invoke(check_command, ["--geojson", str(out)], env=env)
        assert result.exit_code == 0, result.output
        assert "未发现问题 / no problems found" in result.stdout
        assert json.loads(out.read_text(encoding="utf-8")) == {"type": "FeatureCollection", "features": []}

        # In 2020 the squad held half the county: a problem, exit 1; the GeoJSON goes to the data folder.
        result = runner.invoke(check_command, ["--at", "2020-06-01"], env=env)
        assert result.exit_code == 1, result.output
        assert "辖区缝隙" in result.stdout and "gap between jurisdictions" in result.stdout
        (written,) = tmp_path.glob("topology-*.geojson")
        assert f"GeoJSON: {written}" in result.stdout
        (feature,) = json.loads(written.read_text(encoding="utf-8"))["features"]
        assert feature["properties"]["refs"] == ["squad", "S379902"]

        with Session(engine) as session, session.begin():
            remove_county(session, county)
            add_county(session, county, overlap=True)
        result = runner.invoke(check_command, ["--geojson", str(out), "--tolerance", "1"], env=env)
        assert result.exit_code == 1
        assert "37990200100101" in result.stdout and "2,000.00 m²" in result.stdout
        # A tolerance above the overlap's area makes it noise.
        result = runner.invoke(check_command, ["--geojson", str(out), "--tolerance", "3000"], env=env)
        assert result.exit_code == 0, result.output

        # Unable to check (no such county, a malformed --at) is exit 2, told apart from "problems found".
        result = runner.invoke(check_command, ["--geojson", str(out)], env={**env, "GIS_COUNTY_CODE": "379903"})
        assert result.exit_code == 2 and "379903" in result.output
        result = runner.invoke(check_command, ["--at", "soon"], env=env)
        assert result.exit_code == 2
    finally:
        with Session(engine) as session, session.begin():
            remove_county(session, county)
    with Session(engine) as session:
        assert session.scalar(select(m.AdminUnit.id).where(m.AdminUnit.county_code == county)) is None
