"""The demo county reproduces the seed report's figures and is internally consistent."""

from decimal import Decimal

import pytest
from sqlalchemy import text

from gis_platform.workflow import ACTIONS_BY_NAME
from layers.demo import DemoTargets, load_demo


def q(session, sql, **params):
    return session.execute(text(sql), params).all()


def scalar(session, sql, **params):
    return session.execute(text(sql), params).scalar()


THEME_COUNT = """
SELECT c.theme, count(*) FROM "case" k JOIN category c ON c.id = k.category_id
WHERE k.status NOT IN ('cancelled', 'merged') GROUP BY c.theme
"""


def test_theme_totals_match_the_seed(demo_session):
    themes = dict(q(demo_session, THEME_COUNT))
    assert themes["illegal_operation"] >= 2700  # 违规经营 2,700余处次
    assert themes["ten_disorders"] >= 6000  # 十乱 6,000余处次
    assert themes["promotion"] >= 40  # 宣传活动 40余处次
    assert themes["market_supervision"] == 67
    assert themes["illegal_structures"] == DemoTargets().structures_demolished + DemoTargets().structures_open
    # Exactly the defaults, so a drift in the generator shows here.
    t = DemoTargets()
    assert (themes["illegal_operation"], themes["ten_disorders"], themes["promotion"]) == (
        t.illegal_operation, t.ten_disorders, t.promotion)


def test_market_supervision_split(demo_session):
    rows = dict(q(demo_session, """
        SELECT c.code, count(*) FROM "case" k JOIN category c ON c.id = k.category_id
        WHERE c.theme = 'market_supervision' AND k.status <> 'cancelled' GROUP BY c.code"""))
    assert [rows[c] for c in ("MS01", "MS02", "MS03", "MS04", "MS05")] == [14, 1, 46, 2, 4]
    # Department powers go to the market-supervision team, not to a squad.
    holders = q(demo_session, """
        SELECT DISTINCT a.kind, a.code FROM "case" k JOIN category c ON c.id = k.category_id
        JOIN agency a ON a.id = k.assigned_agency_id WHERE c.theme = 'market_supervision'""")
    assert holders == [("dept_team", "YG-SCJG-DD")]


def test_hotline_tickets_all_closed(demo_session):
    total, closed = q(demo_session, "SELECT count(*), count(*) FILTER (WHERE status = 'closed') FROM hotline_ticket")[0]
    assert total >= 650 and total == closed
    open_cases = scalar(demo_session, """
        SELECT count(*) FROM hotline_ticket h JOIN "case" k ON k.id = h.case_id
        WHERE k.status NOT IN ('closed', 'evaluated') OR k.source <> 'hotline'""")
    assert open_cases == 0


def test_fume_inspections_and_exactly_three_penalties(demo_session):
    total, exceeded, penalised = q(demo_session, """
        SELECT count(*), count(*) FILTER (WHERE exceeded),
               count(*) FILTER (WHERE exceeded AND penalty_case_id IS NOT NULL) FROM fume_inspection""")[0]
    assert total >= 1765 and exceeded == 3 and penalised == 3
    # Only exceedances are above the national 2.0 mg/m³ limit.
    assert scalar(demo_session, "SELECT count(*) FROM fume_inspection WHERE concentration_mg_m3 > limit_mg_m3") == 3
    sizes = dict(q(demo_session, "SELECT size_class, min(cooking_heads) FROM fume_site GROUP BY size_class"))
    assert sizes == {"small": 1, "medium": 3, "large": 6}


def test_demolished_structures_total_area(demo_session):
    count, area = q(demo_session, """
        SELECT count(*), sum(area_m2)::numeric(12,1) FROM illegal_structure
        WHERE stage IN ('self_demolished', 'forced_demolished')""")[0]
    assert count == 88
    assert area == Decimal("9074.7")
    # The recorded area is the footprint's area measured in the metric CRS.
    worst = scalar(demo_session,
                   "SELECT max(abs(ST_Area(ST_Transform(footprint, 4548)) - area_m2)) FROM illegal_structure")
    assert worst < 0.05


def test_seized_items(demo_session):
    assert scalar(demo_session, "SELECT count(*) FROM seized_item") >= 360
    themes = q(demo_session, """SELECT DISTINCT c.theme FROM seized_item s JOIN "case" k ON k.id = s.case_id
                                JOIN category c ON c.id = k.category_id""")
    assert themes == [("illegal_operation",)]


def test_power_list_counts(demo_session):
    rows = dict(q(demo_session, "SELECT exercised_by, count(*) FROM power GROUP BY exercised_by"))
    assert rows == {"bureau": 171, "department": 536}
    # Bureau powers belong to the bureau; department powers to departments or their teams.
    kinds = q(demo_session, """SELECT DISTINCT p.exercised_by, a.kind FROM power p
                              JOIN agency a ON a.id = p.agency_id ORDER BY 1, 2""")
    assert kinds == [("bureau", "bureau"), ("department", "department"), ("department", "dept_team")]


def test_units_and_squads_follow_the_reform(demo_session):
    levels = dict(q(demo_session, "SELECT level, count(*) FROM admin_unit GROUP BY level"))
    assert levels == {"county": 1, "subdistrict": 3, "town": 15, "zone": 2}
    names = {n for (n,) in q(demo_session, "SELECT name FROM admin_unit WHERE level = 'subdistrict'")}
    assert names == {"博济桥街道", "侨润街道", "狮子楼街道"}
    assert scalar(demo_session, "SELECT bool_and(synthetic) FROM admin_unit WHERE level <> 'county'")
    assert scalar(demo_session, "SELECT count(*) FROM agency WHERE kind = 'squad'") == 10
    # 3 + 5 + 2: how many units each squad's jurisdiction holds, by unit level.
    per_squad = q(demo_session, """
        SELECT a.code, min(u.level), count(*) FROM agency a JOIN jurisdiction j ON j.agency_id = a.id
        JOIN admin_unit u ON u.level <> 'county' AND ST_Covers(j.geom, ST_PointOnSurface(u.geom))
        WHERE a.kind = 'squad' GROUP BY a.code ORDER BY a.code""")
    shape = sorted((level, n) for _, level, n in per_squad)
    assert shape == [("subdistrict", 1)] * 3 + [("town", 3)] * 5 + [("zone", 1)] * 2
    teams, staff = q(demo_session, "SELECT count(*), sum(staff) FROM agency WHERE kind = 'dept_team'")[0]
    assert (teams, staff) == (6, 334)
    assert scalar(demo_session, "SELECT sum(staff) FROM agency WHERE kind = 'township_office'") == 120


def test_partition_covers_the_real_outline(demo_session):
    county_km2, units_km2, overlap = q(demo_session, """
        WITH c AS (SELECT geom FROM admin_unit WHERE level = 'county'),
             u AS (SELECT geom FROM admin_unit WHERE level <> 'county')
        SELECT (SELECT ST_Area(ST_Transform(geom, 4548)) FROM c) / 1e6,
               (SELECT sum(ST_Area(ST_Transform(geom, 4548))) FROM u) / 1e6,
               (SELECT ST_Area(ST_Transform(ST_SymDifference((SELECT geom FROM c), ST_Union(geom)), 4548)) FROM u)
    """)[0]
    assert 990 < county_km2 < 1020  # about 1,005 km² (AMap-derived outline)
    assert units_km2 == pytest.approx(county_km2, rel=1e-6)
    assert overlap < 1.0  # m²
    source = scalar(demo_session, "SELECT licence FROM dataset_info WHERE name = 'yanggu-demo'")
    assert "MIT" in source


def test_grid_cells_cover_units_with_urban_cells_of_a_hectare(demo_session):
    urban = q(demo_session, """
        SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY g.area_m2), count(*) FROM grid_cell g
        JOIN admin_unit u ON u.id = g.admin_unit_id WHERE u.level = 'subdistrict'""")[0]
    assert 9_500 <= urban[0] <= 10_001 and urban[1] > 2_000
    assert scalar(demo_session, "SELECT count(DISTINCT code) = count(*) FROM grid_cell")
    assert scalar(demo_session, "SELECT bool_and(code ~ '^371521[0-9]{8}$') FROM grid_cell")
    diff = scalar(demo_session, """
        SELECT abs(sum(g.area_m2) - (SELECT sum(ST_Area(ST_Transform(geom, 4548)))
                                      FROM admin_unit WHERE level <> 'county')) FROM grid_cell g""")
    assert diff < 5_000  # m², out of about 1,005 km²
    assert scalar(demo_session, "SELECT count(*) FROM grid_cell WHERE squad_id IS NULL") == 0


def test_every_case_is_routed_and_inside_the_county(demo_session):
    missing = scalar(demo_session, """
        SELECT count(*) FROM "case" WHERE admin_unit_id IS NULL OR assigned_agency_id IS NULL
        OR owner_agency_id IS NULL OR grid_cell_id IS NULL""")
    assert missing == 0
    outside = scalar(demo_session, """
        SELECT count(*) FROM "case" k, admin_unit c WHERE c.level = 'county' AND NOT ST_Covers(c.geom, k.location)""")
    assert outside == 0
    # The routed grid cell really contains the point.
    wrong = scalar(demo_session, """
        SELECT count(*) FROM "case" k JOIN grid_cell g ON g.id = k.grid_cell_id WHERE NOT ST_Covers(g.geom, k.location)""")
    assert wrong == 0


def test_events_follow_the_workflow(demo_session):
    rows = q(demo_session, """
        SELECT e.case_id, e.seq, e.action, e.from_status, e.to_status, k.status, k.version
        FROM case_event e JOIN "case" k ON k.id = e.case_id ORDER BY e.case_id, e.seq""")
    last: dict[int, tuple] = {}
    for case_id, seq, action, frm, to, final, version in rows:
        prev = last.get(case_id)
        if prev is None:
            assert (seq, action, frm, to) == (1, "report", None, "reported")
        else:
            assert seq == prev[0] + 1 and frm == prev[1]
            spec = ACTIONS_BY_NAME[action]
            assert frm in spec.sources and to == (spec.target or frm), (case_id, action)
        last[case_id] = (seq, to, final, version)
    for seq, to, final, version in last.values():
        assert to == final and version == seq


def test_cases_cluster_where_real_ones_do(demo_session):
    # Half of the street cases fall in the busiest 3% of occupied urban grid cells.
    counts = [n for (n,) in q(demo_session, """
        SELECT count(*) FROM "case" k JOIN category c ON c.id = k.category_id
        WHERE c.theme IN ('ten_disorders', 'illegal_operation') GROUP BY k.grid_cell_id ORDER BY 1 DESC""")]
    cells = scalar(demo_session, "SELECT count(*) FROM grid_cell")
    top = sum(counts[: max(1, int(cells * 0.03))])
    assert top / sum(counts) > 0.5


def test_load_is_idempotent(demo_session, settings):
    before = scalar(demo_session, 'SELECT count(*) FROM "case"')
    report = load_demo(demo_session, settings)
    assert not report.loaded
    assert scalar(demo_session, 'SELECT count(*) FROM "case"') == before


def test_demo_accounts_exist_with_hashed_passwords(demo_session):
    roles = {r for (r,) in q(demo_session, "SELECT DISTINCT role FROM app_user")}
    assert roles == {"admin", "supervisor", "operator", "patroller", "planner", "liaison"}
    assert scalar(demo_session, "SELECT bool_and(password_hash LIKE 'scrypt:%') FROM app_user")
    assert scalar(demo_session, "SELECT count(*) FROM api_token WHERE kind = 'open311'") == 1
