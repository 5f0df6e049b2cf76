"""Routing on the demo county: the two axes, the edge cases, versions and re-routing."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import shapely
from sqlalchemy import select, text

from gis_platform import models as m
from gis_platform.errors import Conflict, ValidationError
from grids.engine import InProcessEngine
from grids.pg_engine import rebuild_lookup
from grids.routing import Router, load_catalogue, route_point
from grids.versions import redraw_jurisdiction, reroute_case

C = "371521"
SEAT = (115.79, 36.11)  # the three subdistricts meet at the county seat in the demo partition


def deep_inside(session, unit_name):
    """Return a lon/lat far from any border of a unit (the centre of its most interior grid cell)."""
    row = session.execute(text("""
        SELECT ST_X(ST_PointOnSurface(g.geom)), ST_Y(ST_PointOnSurface(g.geom))
        FROM grid_cell g JOIN admin_unit u ON u.id = g.admin_unit_id WHERE u.name = :n
        ORDER BY ST_Distance(ST_Transform(ST_PointOnSurface(g.geom), 4548),
                             ST_Boundary(ST_Transform(u.geom, 4548))) DESC LIMIT 1"""), {"n": unit_name}).first()
    return float(row[0]), float(row[1])


def squad_of(session, unit_name):
    return session.execute(text("""
        SELECT a.code FROM agency a JOIN jurisdiction j ON j.agency_id = a.id JOIN admin_unit u ON u.name = :n
        WHERE a.kind = 'squad' AND ST_Covers(j.geom, ST_PointOnSurface(u.geom))"""), {"n": unit_name}).scalar_one()


def test_bureau_matter_goes_to_the_squad_of_the_place(demo_session):
    lon, lat = deep_inside(demo_session, "阿城镇")
    result = route_point(demo_session, C, lon, lat, "IO01")
    assert result.holder == "bureau" and result.owner.code == "YG-ZFJ"
    assert result.assigned.kind == "squad" and result.assigned.code == squad_of(demo_session, "阿城镇")
    assert result.admin_unit.name == "阿城镇"
    assert result.grid_cell is not None and result.grid_cell.code.startswith("371521")
    assert not result.near_boundary and not result.fallback_township
    assert result.boundary_distance_m > 30
    assert any("power exercised by the bureau" in line for line in result.trace)


def test_department_matter_goes_to_the_department_team(demo_session):
    lon, lat = deep_inside(demo_session, "阿城镇")
    result = route_point(demo_session, C, lon, lat, "MS03")
    assert result.holder == "department"
    assert result.assigned.code == "YG-SCJG-DD" and result.assigned.kind == "dept_team"
    assert result.owner.code == "YG-SCJG-DD"


def test_shared_border_has_a_deterministic_tie_break(demo_session):
    result = route_point(demo_session, C, *SEAT, "TD02")
    # Three squads' jurisdictions meet here: covers says all three; the lowest code wins.
    assert result.assigned.code == "ZD01"
    assert result.near_boundary and result.boundary_distance_m == pytest.approx(0.0, abs=1e-6)
    assert any("lowest code wins" in line for line in result.trace)
    again = route_point(demo_session, C, *SEAT, "TD02")
    assert again.assigned == result.assigned and again.grid_cell == result.grid_cell


def test_near_boundary_distance_is_configurable(demo_session):
    lon, lat = deep_inside(demo_session, "阿城镇")
    far = route_point(demo_session, C, lon, lat, "IO01")
    near = route_point(demo_session, C, lon, lat, "IO01", near_boundary_m=far.boundary_distance_m + 1)
    assert not far.near_boundary and near.near_boundary


@pytest.mark.parametrize(
    ("lon", "lat", "field", "words"),
    [
        (SEAT[1], SEAT[0], "location", "swapped"),
        (116.4, 39.9, "location", "outside the county"),
        (115.646, 36.30, "location", "outside the county"),  # inside the bounding box, outside the outline
        (float("nan"), 36.1, "location", "finite"),
    ],
)
def test_bad_points_are_clear_errors(demo_session, lon, lat, field, words):
    with pytest.raises(ValidationError) as err:
        route_point(demo_session, C, lon, lat, "TD02")
    assert err.value.errors[0].field == field and words in err.value.errors[0].problem


def test_unknown_category(demo_session):
    with pytest.raises(ValidationError) as err:
        route_point(demo_session, C, *SEAT, "NOPE")
    assert err.value.errors[0].field == "category"


def _shrink_squad(session, code, unit_name, at):
    """Redraw a squad's jurisdiction without one of its units: that unit becomes a gap."""
    squad = session.scalar(select(m.Agency).where(m.Agency.code == code))
    geom = session.execute(text("""
        SELECT ST_AsText(ST_Multi(ST_Difference(j.geom, u.geom))) FROM jurisdiction j, admin_unit u
        WHERE j.agency_id = :a AND j.valid_to IS NULL AND u.name = :n"""), {"a": squad.id, "n": unit_name}).scalar_one()
    return redraw_jurisdiction(session, squad.id, shapely.from_wkt(geom), at=at, note="test redraw")


def test_gap_falls_back_to_the_township_office(demo_session):
    squad = squad_of(demo_session, "阿城镇")
    now = datetime.now(UTC)
    _shrink_squad(demo_session, squad, "阿城镇", now - timedelta(minutes=1))
    lon, lat = deep_inside(demo_session, "阿城镇")
    result = route_point(demo_session, C, lon, lat, "IO01")
    assert result.fallback_township and result.assigned.kind == "township_office"
    assert result.assigned.name.startswith("阿城镇")
    assert any("属地兜底" in line for line in result.trace)


def test_redraw_keeps_history_and_routes_as_of(demo_session):
    squad = squad_of(demo_session, "阿城镇")
    lon, lat = deep_inside(demo_session, "阿城镇")
    case = demo_session.scalar(select(m.Case).join(m.GridCell, m.Case.grid_cell_id == m.GridCell.id)
                               .join(m.AdminUnit, m.GridCell.admin_unit_id == m.AdminUnit.id)
                               .where(m.AdminUnit.name == "阿城镇", m.Case.status == "evaluated").limit(1))
    assigned_before = case.assigned_agency_id
    cut = datetime(2022, 1, 1, tzinfo=UTC)
    new = _shrink_squad(demo_session, squad, "阿城镇", cut)
    assert new.version == 2
    versions = demo_session.execute(text(
        "SELECT version, valid_to FROM jurisdiction j JOIN agency a ON a.id = j.agency_id WHERE a.code = :c "
        "ORDER BY version"), {"c": squad}).all()
    assert versions[0] == (1, cut) and versions[1][1] is None
    # As of 2021 the squad held the town; as of now the township office does.
    assert route_point(demo_session, C, lon, lat, "IO01", at=datetime(2021, 6, 1, tzinfo=UTC)).assigned.code == squad
    assert route_point(demo_session, C, lon, lat, "IO01").fallback_township
    demo_session.refresh(case)
    assert case.assigned_agency_id == assigned_before  # history is not rewritten


def test_overlapping_redraw_is_refused(demo_session):
    squad = demo_session.scalar(select(m.Agency).where(m.Agency.code == "ZD01"))
    with pytest.raises(ValidationError):
        redraw_jurisdiction(demo_session, squad.id, shapely.LineString([(115.7, 36.0), (115.8, 36.1)]))


def _reported_case(session):
    return session.scalar(select(m.Case).where(m.Case.status == "evaluated").limit(1))


def test_reroute_on_category_change_records_why(demo_session):
    case = _reported_case(demo_session)
    demo_session.execute(text('UPDATE "case" SET status = \'filed\' WHERE id = :i'), {"i": case.id})
    demo_session.expire_all()
    case = demo_session.get(m.Case, case.id)
    result = reroute_case(demo_session, case.id, category="MS03", reason="实为食品安全问题", actor_role="operator",
                          expected_version=case.version)
    demo_session.refresh(case)
    assert result.assigned.code == "YG-SCJG-DD" and case.assigned_agency_id == result.assigned.id
    event = demo_session.scalar(select(m.CaseEvent).where(m.CaseEvent.case_id == case.id)
                                .order_by(m.CaseEvent.seq.desc()).limit(1))
    assert event.action == "reroute" and event.note == "实为食品安全问题"
    assert event.data["category"]["to"] == "MS03" and event.data["after"]["assigned"] == "YG-SCJG-DD"
    assert event.geom is None


def test_reroute_on_move_changes_unit_and_records_geometry(demo_session):
    case = _reported_case(demo_session)
    demo_session.execute(text('UPDATE "case" SET status = \'reported\' WHERE id = :i'), {"i": case.id})
    demo_session.expire_all()
    lon, lat = deep_inside(demo_session, "七级镇")
    result = reroute_case(demo_session, case.id, lon=lon, lat=lat, reason="位置纠正")
    assert result.admin_unit.name == "七级镇"
    event = demo_session.scalar(select(m.CaseEvent).where(m.CaseEvent.case_id == case.id)
                                .order_by(m.CaseEvent.seq.desc()).limit(1))
    assert event.geom is not None and event.data["moved"]
    stored = demo_session.execute(text('SELECT ST_X(location), ST_Y(location) FROM "case" WHERE id = :i'),
                                  {"i": case.id}).one()
    assert stored == pytest.approx((lon, lat))


def test_reroute_rules(demo_session):
    case = _reported_case(demo_session)  # evaluated: finished, cannot be re-routed
    with pytest.raises(Conflict):
        reroute_case(demo_session, case.id, category="MS03", reason="x")
    with pytest.raises(ValidationError):
        reroute_case(demo_session, case.id, category="MS03", reason=" ")
    with pytest.raises(Conflict):
        reroute_case(demo_session, case.id, category="MS03", reason="x", expected_version=case.version + 5)


def test_in_process_engine_routes_the_demo_cases_as_stored(demo_session):
    rows = demo_session.execute(text("""
        SELECT ST_X(k.location), ST_Y(k.location), c.code, a.code, g.code
        FROM "case" k JOIN category c ON c.id = k.category_id JOIN agency a ON a.id = k.assigned_agency_id
        LEFT JOIN grid_cell g ON g.id = k.grid_cell_id WHERE k.status <> 'cancelled' ORDER BY k.id LIMIT 3000""")).all()
    at = datetime.now(UTC)
    router = Router(load_catalogue(demo_session, C, at), InProcessEngine.from_session(demo_session, C, at, "EPSG:4548"))
    results = router.route_many(np.array([r[0] for r in rows]), np.array([r[1] for r in rows]), [r[2] for r in rows])
    mismatched = [(r, x) for r, x in zip(rows, results) if (x.assigned.code, x.grid_cell.code) != (r[3], r[4])]
    assert not mismatched


def test_lookup_is_subdivided(demo_session):
    pieces = rebuild_lookup(demo_session, C)
    sources = demo_session.execute(text(
        "SELECT (SELECT count(*) FROM admin_unit WHERE level <> 'county') + (SELECT count(*) FROM grid_cell) "
        "+ (SELECT count(*) FROM jurisdiction)")).scalar_one()
    assert pieces > sources  # large polygons were split
    assert demo_session.execute(text("SELECT max(ST_NPoints(geom)) FROM route_lookup")).scalar_one() <= 64 + 8


def test_catalogue_cache_follows_changes(demo_session):
    from grids.routing import cached_catalogue

    first = cached_catalogue(demo_session, C)
    assert cached_catalogue(demo_session, C) is first  # unchanged tables: no re-read
    demo_session.execute(text("UPDATE category SET name = '占道经营（改）' WHERE code = 'IO01'"))
    second = cached_catalogue(demo_session, C)
    assert second is not first and second.categories["IO01"].name == "占道经营（改）"


def test_one_query_routing_sees_catalogue_changes_at_once(demo_session):
    lon, lat = deep_inside(demo_session, "阿城镇")
    before = route_point(demo_session, C, lon, lat, "IO01")  # the process now holds the catalogue
    demo_session.execute(text("UPDATE agency SET name = name || '（更名）' WHERE id = :i"), {"i": before.assigned.id})
    after = route_point(demo_session, C, lon, lat, "IO01")
    assert after.assigned.id == before.assigned.id and after.assigned.name == before.assigned.name + "（更名）"


def test_one_query_routing_agrees_with_the_bulk_path(demo_session):
    from grids.pg_engine import PgEngine

    at = datetime.now(UTC)
    bounds = demo_session.execute(text(
        "SELECT ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) FROM admin_unit "
        "WHERE county_code = :c AND level = 'county'"), {"c": C}).one()
    rng = np.random.default_rng(7)
    lons = rng.uniform(bounds[0], bounds[2], 60)
    lats = rng.uniform(bounds[1], bounds[3], 60)
    cats = [("IO01", "MS03", "TD02")[k % 3] for k in range(60)]
    bulk = Router(load_catalogue(demo_session, C, at), PgEngine(demo_session, C, at=at), at=at).route_many(
        lons, lats, cats)
    compared = 0
    for lon, lat, cat, expected in zip(lons, lats, cats, bulk):
        if isinstance(expected, ValidationError):
            with pytest.raises(ValidationError):
                route_point(demo_session, C, lon, lat, cat, at=at)
            continue
        got = route_point(demo_session, C, lon, lat, cat, at=at)
        assert (got.admin_unit, got.grid_cell, got.owner, got.assigned, got.near_boundary, got.fallback_township) == (
            expected.admin_unit, expected.grid_cell, expected.owner, expected.assigned, expected.near_boundary,
            expected.fallback_township)
        assert got.boundary_distance_m == pytest.approx(expected.boundary_distance_m, abs=1e-6) or (
            got.boundary_distance_m is None and expected.boundary_distance_m is None)
        compared += 1
    assert compared > 20  # most of the bounding box is inside the county
