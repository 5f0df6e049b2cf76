"""``gis-platform route``: bulk routing of a file of points on the demo county."""

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner
from sqlalchemy import text

from gis_platform.coords import from_wgs84
from grids.bulk import RESULT_COLUMNS, route

N_GOOD = 190


@pytest.fixture(scope="module")
def urban(demo_engine):
    """Return the union of the three subdistricts (the urban core) as a prepared lon/lat geometry."""
    with demo_engine.connect() as conn:
        wkb = conn.execute(text(
            "SELECT ST_AsBinary(ST_Union(geom)) FROM admin_unit WHERE county_code = '371521' "
            "AND level = 'subdistrict'")).scalar_one()
    geom = shapely.from_wkb(wkb)
    shapely.prepare(geom)
    return geom


def _sample(urban, n, seed=7):
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = urban.bounds
    out = []
    while len(out) < n:
        x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if urban.contains(shapely.Point(x, y)):
            out.append((round(x, 7), round(y, 7)))
    return out


@pytest.fixture(scope="module")
def rows(urban):
    """Return ~200 input rows: mostly good urban points, with the awkward ones at known ids."""
    rng = np.random.default_rng(11)
    cats = ["TD01", "IO01", "MS01", "DP02", "MU01"]
    out = [{"id": f"P{k:03d}", "lon": f"{x:.7f}", "lat": f"{y:.7f}", "category": cats[k % len(cats)],
            "coord_system": ""} for k, (x, y) in enumerate(_sample(urban, N_GOOD))]
    for k in (5, 50, 150):  # swapped latitude and longitude
        out[k]["lon"], out[k]["lat"] = out[k]["lat"], out[k]["lon"]
    out[20]["lon"] = "NaN"
    out[30]["category"] = "XX99"
    # A GCJ-02 point (as AMap or WeChat would give it) for the WGS-84 point of row 40.
    gx, gy = from_wgs84(float(out[40]["lon"]), float(out[40]["lat"]), "gcj02")
    out.append({"id": "GCJ", "lon": f"{gx:.7f}", "lat": f"{gy:.7f}", "category": out[40]["category"],
                "coord_system": "gcj02"})
    out.append({"id": "FAR", "lon": "116.5", "lat": "36.1", "category": "TD01", "coord_system": ""})
    rng.shuffle(out[60:])  # the awkward ones need not sit at the end
    return out


def _run(database_url, *args):
    result = CliRunner().invoke(route, list(args), env={"DATABASE_URL": database_url})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def _write_csv(tmp_path, rows, name="in.csv"):
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def routed(demo_url, rows, tmp_path_factory):
    """Route the CSV once with each engine; return {engine: (result, output frame)}."""
    tmp = tmp_path_factory.mktemp("bulk")
    source = _write_csv(tmp, rows)
    out = {}
    for engine in ("inprocess", "postgis"):
        target = tmp / f"out-{engine}.csv"
        result = _run(demo_url, "--in", str(source), "--out", str(target), "--engine", engine)
        out[engine] = (result, pd.read_csv(target, dtype=str, keep_default_na=False))
    return out


def test_every_row_is_kept_in_order_and_failures_are_named(routed, rows):
    result, frame = routed["inprocess"]
    assert result.exit_code == 1  # some rows failed, the output is written anyway
    assert len(frame) == len(rows)
    assert frame["id"].tolist() == [r["id"] for r in rows]
    assert frame["lon"].tolist() == [r["lon"] for r in rows]  # input cells repeated as written
    assert list(frame.columns) == ["id", "lon", "lat", "category", "coord_system", *RESULT_COLUMNS]
    errors = dict(zip(frame["id"], frame["error"]))
    for k in ("P005", "P050", "P150"):
        assert errors[k].startswith("location: latitude and longitude look swapped")
    assert "finite" in errors["P020"] and errors["P020"].startswith("location:")
    assert errors["P030"].startswith("category: unknown category code 'XX99'")
    assert "outside the county" in errors["FAR"]
    failed = {"P005", "P050", "P150", "P020", "P030", "FAR"}
    good = frame[~frame["id"].isin(failed)]
    assert (good["error"] == "").all()
    assert good["admin_unit"].str.match(r"^3715210\d{2}$").all()  # one of the three subdistricts
    assert (good["assigned"] != "").all() and (good["grid_cell"].str.len() == 14).all()
    assert set(good["holder"]) == {"bureau", "department"}
    assert (frame[frame["id"].isin(failed)]["assigned"] == "").all()


def test_gcj02_row_is_converted_and_recorded(routed):
    _, frame = routed["inprocess"]
    by_id = frame.set_index("id")
    gcj, wgs = by_id.loc["GCJ"], by_id.loc["P040"]
    assert gcj["coord_system_used"] == "gcj02" and wgs["coord_system_used"] == "wgs84"
    # fast-geocn inverts to about half a metre: compare in degrees (1e-5° ≈ 1 m).
    assert math.isclose(float(gcj["lon_wgs84"]), float(wgs["lon"]), abs_tol=1e-5)
    assert math.isclose(float(gcj["lat_wgs84"]), float(wgs["lat"]), abs_tol=1e-5)
    assert gcj["assigned"] == wgs["assigned"] and gcj["admin_unit"] == wgs["admin_unit"]


def test_summary_counts_failures_by_reason_and_rows_per_unit(routed):
    result, frame = routed["inprocess"]
    out = result.stdout
    assert f"rows: {len(frame)}" in out and f"routed: {len(frame) - 6}" in out and "failed: 6" in out
    assert "latitude and longitude swapped: 3" in out
    assert "unknown category: 1" in out and "coordinates missing or NaN: 1" in out
    assert "outside the county: 1" in out
    assert "routed rows by assigned unit:" in out and "中队:" in out  # code and name of a squad
    assert "near a jurisdiction boundary" in out and "fell back to the township office" in out
    assert "6 of" in result.stderr


def test_in_process_and_postgis_engines_write_the_same_answers(routed):
    _, ours = routed["inprocess"]
    _, theirs = routed["postgis"]
    assert list(ours.columns) == list(theirs.columns)
    distance = "boundary_distance_m"
    pd.testing.assert_frame_equal(ours.drop(columns=distance), theirs.drop(columns=distance))
    a = pd.to_numeric(ours[distance]).to_numpy()
    b = pd.to_numeric(theirs[distance]).to_numpy()
    assert np.array_equal(np.isnan(a), np.isnan(b))
    assert np.nanmax(np.abs(a - b)) <= 0.011  # projected by PROJ in both, rounded to the centimetre


def test_all_good_rows_exit_zero(demo_url, rows, tmp_path):
    good = [r for r in rows if r["id"] not in {"P005", "P050", "P150", "P020", "P030", "FAR"}]
    result = _run(demo_url, "--in", str(_write_csv(tmp_path, good[:40])), "--out", str(tmp_path / "o.csv"))
    assert result.exit_code == 0, result.output
    assert "failed: 0" in result.stdout


@pytest.mark.parametrize("suffix", ["gpkg", "geojson"])
def test_geopackage_and_geojson_round_trip(demo_url, rows, tmp_path, suffix):
    driver = {"gpkg": "GPKG", "geojson": "GeoJSON"}[suffix]
    points = shapely.points([float(r["lon"]) for r in rows], [float(r["lat"]) for r in rows])
    source = gpd.GeoDataFrame({"id": [r["id"] for r in rows], "category": [r["category"] for r in rows],
                               "coord_system": [r["coord_system"] or None for r in rows]},
                              geometry=points, crs="EPSG:4326")
    source.loc[source["id"] == "P020", "geometry"] = None  # no geometry at all
    src = tmp_path / f"in.{suffix}"
    source.to_file(src, driver=driver, engine="pyogrio")
    target = tmp_path / f"out.{suffix}"
    result = _run(demo_url, "--in", str(src), "--out", str(target))
    assert result.exit_code == 1
    back = gpd.read_file(target)
    assert back["id"].tolist() == source["id"].tolist()
    assert set(RESULT_COLUMNS) <= set(back.columns)
    assert back.geometry.isna().tolist() == source.geometry.isna().tolist()
    errors = dict(zip(back["id"], back["error"].fillna("")))
    assert errors["P020"].startswith("geometry: not a point")
    assert errors["P030"].startswith("category: unknown category")
    assert errors["P005"].startswith("location: latitude and longitude look swapped")
    assert errors["P001"] == "" and back.set_index("id").loc["P001", "assigned"]


def test_csv_in_geopackage_out(demo_url, rows, tmp_path):
    target = tmp_path / "out.gpkg"
    result = _run(demo_url, "--in", str(_write_csv(tmp_path, rows)), "--out", str(target))
    assert result.exit_code == 1
    back = gpd.read_file(target)
    assert len(back) == len(rows) and back.crs.to_epsg() == 4326
    assert back.geometry.isna().sum() == 1  # the NaN row has no point


def test_routing_as_of_a_moment_before_the_grids_existed(demo_url, rows, tmp_path):
    good = [dict(r) for r in rows[:12] if r["id"] not in {"P005"}]
    good[0]["at"] = "2022-03-01T10:00:00"  # one row routed as of a moment when the grids were in force
    result = _run(demo_url, "--in", str(_write_csv(tmp_path, good)), "--out", str(tmp_path / "o.csv"),
                  "--at", "2019-06-01")
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(tmp_path / "o.csv", dtype=str, keep_default_na=False)
    assert frame.loc[0, "grid_cell"] != "" and frame.loc[0, "fallback_township"] == "false"
    before = frame.iloc[1:]
    assert (before["grid_cell"] == "").all()  # no grid cell in force in 2019
    assert (before["fallback_township"] == "true").all() and (before["assigned_kind"] == "township_office").all()


@pytest.mark.parametrize("case, words", [
    ("missing_file", "no such file"),
    ("no_category", "missing category column 'category'"),
    ("no_latitude", "missing latitude column"),
    ("bad_extension", "unsupported format"),
    ("not_a_table", "cannot read"),
])
def test_unreadable_input_exits_two_with_one_line(demo_url, tmp_path, case, words):
    path = tmp_path / "in.csv"
    if case == "no_category":
        path.write_text("lon,lat\n115.79,36.11\n")
    elif case == "no_latitude":
        path.write_text("lon,category\n115.79,TD01\n")
    elif case == "bad_extension":
        path = tmp_path / "in.xlsx"
        path.write_text("x")
    elif case == "not_a_table":
        path = tmp_path / "in.geojson"
        path.write_text("this is not json")
    result = _run(demo_url, "--in", str(path), "--out", str(tmp_path / "o.csv"))
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and words in message and str(path) in message
    assert not (tmp_path / "o.csv").exists()
