"""Importing units, jurisdictions and grid cells from GIS files, on real PostGIS.

Each test builds a small county (an outline, two units, two squads with jurisdictions, a department)
in a rolled-back session and writes its input files with geopandas/pandas into ``tmp_path``.
"""

from __future__ import annotations

import csv
import os
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings as hsettings
from hypothesis import strategies as st
from pyproj import Transformer
from shapely.geometry import Polygon, box
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from gis_platform import models as m
from gis_platform.coords import from_wgs84
from gis_platform.errors import Conflict, ValidationError
from gis_platform.geometry import to_ewkt
from gis_platform.workcalendar import SHANGHAI
from grids import importer
from grids.importer import (
    ImportReport, RowError, central_meridian, import_command, import_features, level_from_code, read_features,
)

COUNTY = "371521"
OUTLINE = box(115.645, 35.929, 116.110, 36.304)
WEST, EAST = box(115.645, 35.929, 115.80, 36.304), box(115.80, 35.929, 116.110, 36.304)
EPOCH = datetime(2020, 1, 1, tzinfo=SHANGHAI)
LATER = datetime(2024, 1, 1, tzinfo=SHANGHAI)
DRIVERS = {".gpkg": "GPKG", ".shp": "ESRI Shapefile", ".geojson": "GeoJSON", ".kml": "KML"}


# -- factories ------------------------------------------------------------------------------------------


def add_unit(session: Session, code: str, level: str, geom: Polygon, parent_id: int | None = None) -> int:
    unit = m.AdminUnit(county_code=COUNTY, code=code, name=f"单位{code[-3:]}", name_en=f"Unit {code}",
                       level=level, parent_id=parent_id, geom=to_ewkt(shapely.MultiPolygon([geom])))
    session.add(unit)
    session.flush()
    return unit.id


def add_agency(session: Session, code: str, kind: str, geom: Polygon | None = None) -> int:
    agency = m.Agency(county_code=COUNTY, code=code, name=code, name_en=code, kind=kind)
    session.add(agency)
    session.flush()
    if geom is not None:
        session.add(m.Jurisdiction(county_code=COUNTY, agency_id=agency.id, version=1, valid_from=EPOCH,
                                   geom=to_ewkt(shapely.MultiPolygon([geom]))))
        session.flush()
    return agency.id


@pytest.fixture()
def county(db_session: Session) -> SimpleNamespace:
    """A minimal county: outline, a subdistrict and a town, a squad over each, one department."""
    county_id = add_unit(db_session, COUNTY, "county", OUTLINE)
    return SimpleNamespace(
        session=db_session,
        county_id=county_id,
        west_id=add_unit(db_session, "371521001", "subdistrict", WEST, county_id),
        east_id=add_unit(db_session, "371521101", "town", EAST, county_id),
        squad1=add_agency(db_session, "SQ01", "squad", WEST),
        squad2=add_agency(db_session, "SQ02", "squad", EAST),
        dept=add_agency(db_session, "DEPT", "department"),
    )


def cell(i: int, *, x0: float = 115.78, y0: float = 36.10, size: float = 0.001) -> Polygon:
    return box(x0 + i * size, y0, x0 + (i + 1) * size, y0 + size)


def cells_frame(n: int = 3, **columns) -> gpd.GeoDataFrame:
    data = {"code": [f"371521001001{i + 1:02d}" for i in range(n)], **columns}
    return gpd.GeoDataFrame(data, geometry=[cell(i) for i in range(n)], crs="EPSG:4326")


def write(frame: gpd.GeoDataFrame, path: Path) -> Path:
    """Write a frame in the format its suffix names; CSV gets full-precision WKT in a ``wkt`` column."""
    if path.suffix == ".csv":
        table = pd.DataFrame(frame.drop(columns="geometry"))
        table["wkt"] = [shapely.to_wkt(g, rounding_precision=-1) if g is not None else "" for g in frame.geometry]
        table.to_csv(path, index=False)
    else:
        frame.to_file(path, driver=DRIVERS[path.suffix], engine="pyogrio")
    return path


def count(session: Session, model: type[m.Base]) -> int:
    return session.scalar(select(func.count()).select_from(model).where(model.county_code == COUNTY))


def stored_cells(session: Session) -> dict[str, shapely.Geometry]:
    rows = session.execute(select(m.GridCell.code, func.ST_AsBinary(m.GridCell.geom))
                           .where(m.GridCell.valid_to.is_(None))).all()
    return {code: shapely.from_wkb(bytes(wkb)) for code, wkb in rows}


def max_shift_m(a: shapely.Geometry, b: shapely.Geometry) -> float:
    """Return the largest distance in metres between corresponding vertices of two lon/lat shapes."""
    to_m = Transformer.from_crs("EPSG:4326", "EPSG:4548", always_xy=True)
    pa, pb = shapely.get_coordinates(a), shapely.get_coordinates(b)
    xa, ya = to_m.transform(pa[:, 0], pa[:, 1])
    xb, yb = to_m.transform(pb[:, 0], pb[:, 1])
    return float(np.max(np.hypot(np.asarray(xa) - xb, np.asarray(ya) - yb)))


def run(session, settings, path, kind="grids", *, read=None, **options) -> ImportReport:
    result = read_features(path, kind=kind, **(read or {}))
    return import_features(session, settings, result, kind=kind, **options)


# -- formats and CRS ------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".gpkg", ".shp", ".geojson", ".kml", ".csv"])
def test_each_format_round_trips_and_reimport_is_unchanged(county, settings, tmp_path, suffix):
    path = write(cells_frame(3), tmp_path / f"cells{suffix}")
    report = run(county.session, settings, path, commit=True, valid_from=EPOCH)
    assert report.counts == {"new": 3, "changed": 0, "unchanged": 0, "invalid": 0}, report.render()
    assert report.written and report.crs.source == "EPSG:4326"
    stored = stored_cells(county.session)
    for i in range(3):
        assert shapely.equals_exact(shapely.normalize(stored[f"371521001001{i + 1:02d}"]),
                                    shapely.normalize(shapely.MultiPolygon([cell(i)])), tolerance=1e-9)
    cell_row = county.session.scalars(select(m.GridCell).where(m.GridCell.code == "37152100100101")).one()
    assert (cell_row.admin_unit_id, cell_row.squad_id, cell_row.community) == (county.west_id, county.squad1, "001")
    assert cell_row.area_m2 == pytest.approx(90 * 111, rel=0.1)  # 0.001° x 0.001° at 36°N
    again = run(county.session, settings, path, commit=True)
    assert again.counts == {"new": 0, "changed": 0, "unchanged": 3, "invalid": 0}
    assert count(county.session, m.GridCell) == 3


def test_crs_read_from_the_file(county, settings, tmp_path):
    frame = cells_frame(2).to_crs("EPSG:4548")
    result = read_features(write(frame, tmp_path / "cells.gpkg"), kind="grids")
    assert (result.crs.source, result.crs.method) == ("EPSG:4548", "file")
    for i, geom in enumerate(result.frame.geometry):
        assert max_shift_m(shapely.normalize(geom), shapely.normalize(cell(i))) < 0.01


def test_zone_prefixed_gauss_kruger_without_prj_is_guessed(county, settings, tmp_path):
    frame = cells_frame(2).to_crs("EPSG:4527")  # CGCS2000 zone 39, eastings like 39 4xx xxx
    path = write(frame, tmp_path / "cells.shp")
    path.with_suffix(".prj").unlink()
    result = read_features(path, kind="grids")
    assert (result.crs.source, result.crs.method) == ("EPSG:4527", "guessed")
    assert "zone number 39" in result.crs.note
    for i, geom in enumerate(result.frame.geometry):
        assert max_shift_m(shapely.normalize(geom), shapely.normalize(cell(i))) < 0.01
    report = import_features(county.session, settings, result, kind="grids")
    assert report.new == 2 and "EPSG:4527 (guessed" in report.render()


def test_eastings_without_zone_use_the_county_meridian(settings, tmp_path):
    assert central_meridian(settings.metric_crs) == 117.0
    path = write(cells_frame(2).to_crs("EPSG:4548"), tmp_path / "cells.csv")
    with pytest.raises(ValidationError, match="central meridian is unknown"):
        read_features(path, kind="grids")
    result = read_features(path, kind="grids", county_lon=central_meridian(settings.metric_crs))
    assert (result.crs.source, result.crs.method) == ("EPSG:4548", "guessed")
    assert max_shift_m(shapely.normalize(result.frame.geometry[0]), shapely.normalize(cell(0))) < 0.01


def test_ewkt_srid_in_a_csv_is_the_file_crs(tmp_path):
    metric = cells_frame(1).to_crs("EPSG:4548").geometry[0]
    path = tmp_path / "cells.csv"
    path.write_text(f'code,geom\n37152100100101,"SRID=4548;{metric.wkt}"\n', encoding="utf-8")
    result = read_features(path, kind="grids")
    assert (result.crs.source, result.crs.method, result.geometry_field) == ("EPSG:4548", "file", "geom")
    assert max_shift_m(shapely.normalize(result.frame.geometry[0]), shapely.normalize(cell(0))) < 0.01


def test_forced_crs_overrides_the_file(tmp_path):
    frame = cells_frame(1).to_crs("EPSG:4548").set_crs("EPSG:4490", allow_override=True)  # a wrong label
    result = read_features(write(frame, tmp_path / "cells.gpkg"), kind="grids", crs="EPSG:4548")
    assert (result.crs.source, result.crs.method) == ("EPSG:4548", "forced")
    assert "EPSG:4490" in result.crs.note
    assert max_shift_m(shapely.normalize(result.frame.geometry[0]), shapely.normalize(cell(0))) < 0.01


def test_declared_gcj02_is_converted_to_where_the_wgs84_originals_were(county, settings, tmp_path):
    originals = [cell(i) for i in range(3)]
    shifted = [shapely.transform(g, lambda xy: np.array([from_wgs84(x, y, "gcj02") for x, y in xy]))
               for g in originals]
    frame = gpd.GeoDataFrame({"code": [f"371521001001{i + 1:02d}" for i in range(3)]}, geometry=shifted,
                             crs="EPSG:4326")
    path = write(frame, tmp_path / "amap.geojson")
    undeclared = read_features(path, kind="grids")
    assert undeclared.conversion is None
    assert 100 < max_shift_m(undeclared.frame.geometry[0], originals[0]) < 1000
    result = read_features(path, kind="grids", coord_system="gcj02")
    assert result.conversion == "gcj02 → wgs84"
    for geom, original in zip(result.frame.geometry, originals):
        assert max_shift_m(geom, original) < 1.0
    report = import_features(county.session, settings, result, kind="grids", commit=True)
    assert report.conversion == "gcj02 → wgs84" and "converted gcj02 → wgs84" in report.render()


def test_gcj02_with_a_projected_crs_is_refused(tmp_path):
    path = write(cells_frame(1).to_crs("EPSG:4548"), tmp_path / "cells.gpkg")
    with pytest.raises(ValidationError, match="projected"):
        read_features(path, kind="grids", coord_system="gcj02")


# -- validation -----------------------------------------------------------------------------------------


def test_invalid_geometry_is_rejected_without_repair_and_repaired_with_it(county, settings, tmp_path):
    bow_tie = Polygon([(115.781, 36.101), (115.782, 36.102), (115.782, 36.101), (115.781, 36.102)])
    frame = cells_frame(2)
    frame.loc[1, "geometry"] = bow_tie
    path = write(frame, tmp_path / "cells.gpkg")
    refused = run(county.session, settings, path, commit=True)
    assert refused.blocked and not refused.written and refused.invalid == 1
    (error,) = refused.errors
    assert (error.row, error.field) == (2, "geometry") and "Self-intersection" in error.problem
    assert count(county.session, m.GridCell) == 0
    repaired = run(county.session, settings, path, commit=True, repair=True)
    assert repaired.written and repaired.new == 2 and repaired.invalid == 0
    assert [(r.row, r.field) for r in repaired.repairs] == [(2, "geometry")]
    assert "repaired row 2" in repaired.render()


def test_unknown_agency_code_names_the_row_and_field(county, settings, tmp_path):
    frame = gpd.GeoDataFrame({"agency": ["SQ01", "NOPE"]}, geometry=[WEST.buffer(-0.01), EAST.buffer(-0.01)],
                             crs="EPSG:4326")
    report = run(county.session, settings, write(frame, tmp_path / "j.geojson"), "jurisdictions", commit=True)
    assert report.errors == [RowError(2, "agency", "unknown agency code 'NOPE' in county 371521")]
    assert str(report.errors[0]) == "row 2, field agency: unknown agency code 'NOPE' in county 371521"
    assert report.blocked and not report.written


def test_mapped_column_is_named_in_errors(county, settings, tmp_path):
    frame = gpd.GeoDataFrame({"DWDM": ["NOPE"]}, geometry=[WEST.buffer(-0.01)], crs="EPSG:4326")
    path = write(frame, tmp_path / "j.gpkg")
    report = run(county.session, settings, path, "jurisdictions", read={"fields": {"agency": "DWDM"}})
    assert [str(e) for e in report.errors] == ["row 1, field DWDM: unknown agency code 'NOPE' in county 371521"]


def test_bad_grid_codes_and_references_are_reported_per_row(county, settings, tmp_path):
    frame = cells_frame(6)
    frame["code"] = ["3715", "37152100100101", "37152199900101", "37152200100101", "37152100100101",
                     "37152100100106"]
    frame["squad"] = [None, "DEPT", None, None, None, "SQ02"]
    report = run(county.session, settings, write(frame, tmp_path / "cells.gpkg"))
    assert [str(e) for e in report.errors] == [
        "row 1, field code: '3715' is not a 14-digit grid code",
        "row 2, field squad: agency 'DEPT' is a department, not a squad",
        "row 3, field code: no administrative unit '371521999' (taken from the grid code) in county 371521; "
        "import the units first or give a unit column",
        "row 4, field code: '37152200100101' belongs to county 371522, not 371521",
        "row 5, field code: '37152100100101' already appears in row 2",
    ]
    assert report.invalid == 5 and report.new == 1


def test_geometry_outside_the_county_is_refused(county, settings, tmp_path):
    frame = cells_frame(1)
    frame.loc[0, "geometry"] = box(116.40, 39.90, 116.41, 39.91)  # Beijing
    report = run(county.session, settings, write(frame, tmp_path / "cells.gpkg"))
    assert report.errors[0].field == "geometry" and "outside the county" in report.errors[0].problem


def test_without_a_county_row_the_bounds_check_is_skipped_with_a_warning(db_session, settings, tmp_path):
    frame = gpd.GeoDataFrame({"code": [COUNTY, "371521001", "371521101", "371521401"],
                              "name": ["阳谷县", "博济桥街道", "某镇", "开发区"]},
                             geometry=[OUTLINE, WEST, EAST, EAST.buffer(-0.05)], crs="EPSG:4326")
    report = run(db_session, settings, write(frame, tmp_path / "units.gpkg"), "units", commit=True)
    assert report.new == 4 and any("not checked against the county" in w for w in report.warnings)
    units = {u.code: u for u in db_session.scalars(select(m.AdminUnit))}
    assert {c: u.level for c, u in units.items()} == {
        COUNTY: "county", "371521001": "subdistrict", "371521101": "town", "371521401": "zone"}
    assert units["371521001"].parent_id == units[COUNTY].id and units[COUNTY].parent_id is None
    assert "imported from units.gpkg" in units["371521001"].source


def test_units_are_updated_in_place(county, settings, tmp_path):
    frame = gpd.GeoDataFrame({"code": ["371521001", "371521101"], "name": ["单位001", "新名字"],
                              "name_en": ["Unit 371521001", "Unit 371521101"]},
                             geometry=[WEST.buffer(-0.001), EAST], crs="EPSG:4326")
    report = run(county.session, settings, write(frame, tmp_path / "units.shp"), "units", commit=True)
    assert report.counts == {"new": 0, "changed": 2, "unchanged": 0, "invalid": 0}
    assert report.absent == 1  # the county row is not in the file and is left alone
    west = county.session.get(m.AdminUnit, county.west_id)
    east = county.session.get(m.AdminUnit, county.east_id)
    assert east.name == "新名字" and east.parent_id == county.county_id
    area = county.session.scalar(select(func.ST_Area(m.AdminUnit.geom)).where(m.AdminUnit.id == west.id))
    assert area == pytest.approx(WEST.buffer(-0.001).area)
    assert count(county.session, m.AdminUnit) == 3


def test_level_from_code():
    assert [level_from_code(c) for c in (COUNTY, "371521001", "371521101", "371521201", "371521401",
                                         "371521700")] == ["county", "subdistrict", "town", "town", "zone", None]


# -- dry run, commit, versions --------------------------------------------------------------------------


def test_dry_run_writes_nothing_and_commit_writes(county, settings, tmp_path):
    path = write(cells_frame(4), tmp_path / "cells.gpkg")
    before = count(county.session, m.GridCell)
    dry = run(county.session, settings, path)
    assert dry.dry_run and not dry.written and dry.new == 4
    assert "dry run, nothing written" in dry.render()
    assert count(county.session, m.GridCell) == before == 0
    assert count(county.session, m.RouteLookup) == 0
    done = run(county.session, settings, path, commit=True)
    assert done.written and done.new == 4 and count(county.session, m.GridCell) == 4
    # The PostGIS router's subdivided lookup is rebuilt in the same transaction.
    assert county.session.scalar(select(func.count()).select_from(m.RouteLookup)
                                 .where(m.RouteLookup.layer == "grid_cell")) == 4


def test_changed_jurisdiction_closes_version_1_and_adds_version_2(county, settings, tmp_path):
    frame = gpd.GeoDataFrame({"agency": ["SQ01", "SQ02"], "valid_from": ["2024-01-01T00:00:00+08:00", None]},
                             geometry=[WEST.buffer(-0.002), EAST], crs="EPSG:4326")
    path = write(frame, tmp_path / "j.gpkg")
    dry = run(county.session, settings, path, "jurisdictions")
    assert dry.counts == {"new": 0, "changed": 1, "unchanged": 1, "invalid": 0}
    assert count(county.session, m.Jurisdiction) == 2
    report = run(county.session, settings, path, "jurisdictions", commit=True)
    assert report.written and report.changed == 1
    versions = county.session.scalars(select(m.Jurisdiction).where(m.Jurisdiction.agency_id == county.squad1)
                                      .order_by(m.Jurisdiction.version)).all()
    assert [(v.version, v.valid_from, v.valid_to) for v in versions] == [(1, EPOCH, LATER), (2, LATER, None)]
    assert "imported from j.gpkg" in versions[1].note
    old_area = county.session.scalar(select(func.ST_Area(m.Jurisdiction.geom)).where(m.Jurisdiction.id == versions[0].id))
    assert old_area == pytest.approx(WEST.area)  # the old geometry is kept as it was
    again = run(county.session, settings, path, "jurisdictions", commit=True)
    assert again.counts == {"new": 0, "changed": 0, "unchanged": 2, "invalid": 0}


def test_new_version_must_start_after_the_current_one(county, settings, tmp_path):
    frame = gpd.GeoDataFrame({"agency": ["SQ01"]}, geometry=[WEST.buffer(-0.002)], crs="EPSG:4326")
    path = write(frame, tmp_path / "j.gpkg")
    report = run(county.session, settings, path, "jurisdictions", valid_from=EPOCH - timedelta(days=1))
    assert report.errors[0].field == "valid_from" and "not after the current version" in report.errors[0].problem
    with pytest.raises(ValidationError, match="has no time zone"):
        run(county.session, settings, path, "jurisdictions", valid_from="2021-05-01T08:00:00")
    frame["valid_from"] = ["2021-05-01 08:00"]
    report = run(county.session, settings, write(frame, tmp_path / "j2.gpkg"), "jurisdictions")
    assert str(report.errors[0]) == "row 1, field valid_from: 2021-05-01 08:00 has no time zone; add one, e.g. +08:00"


def test_changed_grid_cell_gets_a_new_version_that_keeps_its_patrollers(county, settings, tmp_path):
    run(county.session, settings, write(cells_frame(2), tmp_path / "v1.gpkg"), commit=True, valid_from=EPOCH)
    old = county.session.scalars(select(m.GridCell).where(m.GridCell.code == "37152100100101")).one()
    user = m.User(county_code=COUNTY, username="p1", display_name="p1", password_hash="x", role="patroller")
    county.session.add(user)
    county.session.flush()
    county.session.add(m.GridCellPatroller(grid_cell_id=old.id, user_id=user.id, county_code=COUNTY))
    county.session.flush()
    frame = cells_frame(2)
    frame.loc[0, "geometry"] = cell(0, size=0.0012)
    report = run(county.session, settings, write(frame, tmp_path / "v2.gpkg"), commit=True, valid_from=LATER)
    assert report.counts == {"new": 0, "changed": 1, "unchanged": 1, "invalid": 0}
    versions = county.session.scalars(select(m.GridCell).where(m.GridCell.code == "37152100100101")
                                      .order_by(m.GridCell.valid_from)).all()
    assert [(v.valid_from, v.valid_to) for v in versions] == [(EPOCH, LATER), (LATER, None)]
    assert versions[1].area_m2 > versions[0].area_m2
    links = county.session.scalars(select(m.GridCellPatroller.grid_cell_id)
                                   .where(m.GridCellPatroller.user_id == user.id)).all()
    assert sorted(links) == sorted(v.id for v in versions)


def test_nothing_is_written_when_one_row_of_ten_is_bad(county, settings, tmp_path):
    frame = cells_frame(10)
    frame.loc[6, "code"] = "37152100100100"  # sequence 00 is not a cell
    path = write(frame, tmp_path / "cells.gpkg")
    report = run(county.session, settings, path, commit=True)
    assert report.blocked and report.invalid == 1 and report.new == 9 and not report.written
    assert [(e.row, e.field) for e in report.errors] == [(7, "code")]
    assert count(county.session, m.GridCell) == 0
    skipped = run(county.session, settings, path, commit=True, skip_invalid=True)
    assert skipped.written and not skipped.blocked and count(county.session, m.GridCell) == 9


def test_a_database_refusal_mid_write_leaves_nothing_behind(county, settings, tmp_path, monkeypatch):
    path = write(cells_frame(10), tmp_path / "cells.gpkg")
    result = read_features(path, kind="grids")
    calls = []

    def broken_on_the_last_row(geom):
        calls.append(geom)
        if len(calls) < 10:
            return to_ewkt(geom)
        return "SRID=4326;MULTIPOLYGON (((115.78 36.1, 115.79 36.11, 115.79 36.1, 115.78 36.11, 115.78 36.1)))"

    monkeypatch.setattr(importer, "to_ewkt", broken_on_the_last_row)
    with pytest.raises(Conflict, match="nothing was written"):
        import_features(county.session, settings, result, kind="grids", commit=True)
    assert count(county.session, m.GridCell) == 0
    assert count(county.session, m.AdminUnit) == 3  # the caller's transaction is intact


# -- malformed files ------------------------------------------------------------------------------------


def test_malformed_files_give_one_clear_error(tmp_path):
    junk = tmp_path / "junk.gpkg"
    junk.write_bytes(np.random.default_rng(1).bytes(2048))
    with pytest.raises(ValidationError, match=r"junk\.gpkg: not a GIS file GDAL can read"):
        read_features(junk, kind="grids")
    no_wkt = tmp_path / "plain.csv"
    no_wkt.write_text("code,name\n37152100100101,x\n", encoding="utf-8")
    with pytest.raises(ValidationError, match=r"plain\.csv: no geometry column .*--wkt-column"):
        read_features(no_wkt, kind="grids")
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ValidationError, match=r"empty\.csv: the file is empty"):
        read_features(empty, kind="grids")
    header_only = tmp_path / "header.csv"
    header_only.write_text("code,wkt\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="holds no features"):
        read_features(header_only, kind="grids")
    no_code = write(gpd.GeoDataFrame({"x": [1]}, geometry=[cell(0)], crs="EPSG:4326"), tmp_path / "nocode.gpkg")
    with pytest.raises(ValidationError, match=r"nocode\.gpkg: no column for field 'code'.*--field code=COLUMN"):
        read_features(no_code, kind="grids")
    with pytest.raises(ValidationError, match="no column 'WGBM'"):
        read_features(no_code, kind="grids", fields={"code": "WGBM"})


def test_multi_layer_files_need_a_layer(tmp_path):
    path = tmp_path / "two.gpkg"
    cells_frame(1).to_file(path, layer="a", driver="GPKG", engine="pyogrio")
    cells_frame(2).to_file(path, layer="b", driver="GPKG", engine="pyogrio")
    with pytest.raises(ValidationError, match=r"2 layers \(a, b\); choose one with --layer"):
        read_features(path, kind="grids")
    assert len(read_features(path, kind="grids", layer="b").frame) == 2
    with pytest.raises(ValidationError, match="no layer 'c'"):
        read_features(path, kind="grids", layer="c")


def test_csv_parse_errors_are_per_row(county, settings, tmp_path):
    path = tmp_path / "cells.csv"
    path.write_text("code,WKT\n37152100100101,POLYGON ((115.78 36.1\n37152100100102,\n"
                    f"37152100100103,\"{cell(2).wkt}\"\n", encoding="utf-8")
    report = run(county.session, settings, path)
    assert [(e.row, e.field) for e in report.errors] == [(1, "WKT"), (2, "WKT")]
    assert report.new == 1


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


WKTISH = st.from_regex(
    r"(SRID=4326;)?(POINT|POLYGON|MULTIPOLYGON|LINESTRING|GEOMETRYCOLLECTION) ?(EMPTY|\(\(?[-0-9.eE, naif]{0,40}\)?\)?)",
    fullmatch=True)


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(st.one_of(st.text(max_size=60), WKTISH), min_size=1, max_size=4))
def test_random_text_in_the_wkt_column_fails_cleanly(fuzz_dir, values):
    path = fuzz_dir / "fuzz.csv"
    table = pd.DataFrame({"code": ["37152100100101"] * len(values), "wkt": values})
    table.to_csv(path, index=False, quoting=csv.QUOTE_ALL)  # a bare CR would otherwise end the record
    try:
        result = read_features(path, kind="grids")
    except ValidationError:
        return
    assert len(result.frame) == len(values)
    rows = importer._rows(result)
    report = ImportReport("grids", str(path), result.crs, None)
    importer._check_geometries(rows, result.geometry_field, bounds=None, repair=True, report=report, progress=None)
    for row in rows:
        assert row.errors or isinstance(row.geom, shapely.MultiPolygon)
        assert all(isinstance(e, RowError) and e.row == row.row for e in row.errors)


# -- command line ---------------------------------------------------------------------------------------


@pytest.fixture()
def cli_env(database_url, tmp_path, monkeypatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)  # no stray .env
    return {"DATABASE_URL": database_url, "GIS_COUNTY_CODE": COUNTY, "GIS_METRIC_CRS": "EPSG:4548",
            "GIS_DATA_DIR": str(tmp_path / "var")}


def test_cli_help_lists_the_options():
    result = CliRunner().invoke(import_command, ["--help"])
    assert result.exit_code == 0
    for option in ("--layer", "--crs", "--coord-system", "--field", "--wkt-column", "--repair", "--skip-invalid",
                   "--valid-from", "--commit", "units|jurisdictions|grids"):
        assert option in result.output


def test_cli_dry_run_reports_and_writes_nothing(cli_env, database_url, tmp_path):
    frame = gpd.GeoDataFrame({"code": [COUNTY, "371521001"], "name": ["阳谷县", "博济桥街道"]},
                             geometry=[OUTLINE, WEST], crs="EPSG:4326")
    path = write(frame, tmp_path / "units.kml")
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            before = conn.scalar(select(func.count()).select_from(m.AdminUnit))
        result = CliRunner().invoke(import_command, ["units", str(path), "--field", "name=Name"], env=cli_env)
        assert result.exit_code == 0, result.output
        assert "dry run, nothing written" in result.output and "2 new" in result.output
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(m.AdminUnit)) == before
    finally:
        engine.dispose()


def test_cli_blocked_import_exits_1_and_malformed_file_exits_2(cli_env, tmp_path):
    frame = gpd.GeoDataFrame({"agency": ["NOPE"]}, geometry=[WEST], crs="EPSG:4326")
    path = write(frame, tmp_path / "j.geojson")
    result = CliRunner().invoke(import_command, ["jurisdictions", str(path), "--commit"], env=cli_env)
    assert result.exit_code == 1
    assert "row 1, field agency: unknown agency code 'NOPE'" in result.output
    assert "NOT written" in result.output
    junk = tmp_path / "junk.gpkg"
    junk.write_bytes(os.urandom(1024))
    result = CliRunner().invoke(import_command, ["grids", str(junk)], env=cli_env)
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert "junk.gpkg: not a GIS file GDAL can read" in line
