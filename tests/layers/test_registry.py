"""The layer registry: every theme answers RFC 7946 features, filtered, paged and versioned correctly."""

import json
import math
from datetime import UTC, datetime, timedelta

import pytest
import shapely
from sqlalchemy import text

from gis_platform import vocab
from gis_platform.errors import NotFound, ValidationError
from gis_platform.workcalendar import SHANGHAI
from grids.versions import redraw_jurisdiction
from layers.base import MAX_LIMIT, Layer, LayerQuery, parse_bbox
from layers.cases import Actor, act, clock, limit_hours, report_case
from layers.registry import REGISTRY, all_layers, get_layer
from tests.factories import make_county

C = "371521"
THEMES = {"admin_units", "jurisdictions", "grid_cells", "cases", "ten_disorders", "illegal_operation",
          "illegal_structures", "fume_sites", "seized_items", "hotline_tickets", "promotion"}
SEAT_BOX = (115.76, 36.09, 115.81, 36.13)  # around the county seat, where cases cluster
YEAR_END = datetime(2022, 1, 1, tzinfo=SHANGHAI)


def scalar(session, sql, **params):
    return session.execute(text(sql), params).scalar_one()


def page(session, name, **kw):
    return get_layer(name).query(session, LayerQuery(C, **kw))


def coords(geometry):
    return shapely.get_coordinates(shapely.from_geojson(json.dumps(geometry)))


@pytest.fixture()
def county_box(demo_session):
    return demo_session.execute(text(
        "SELECT ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) FROM admin_unit "
        "WHERE county_code = :c AND level = 'county'"), {"c": C}).one()


# --- the registry -------------------------------------------------------------------------------------

def test_registry_holds_exactly_the_eleven_themes():
    names = [layer.name for layer in all_layers()]
    assert set(names) == THEMES and len(names) == len(set(names)) == 11
    assert list(REGISTRY) == names
    for layer in all_layers():
        assert isinstance(layer, Layer)
        assert layer.title_zh and layer.title_en and layer.geometry_type in ("Point", "MultiPolygon", "Polygon")
        assert all(isinstance(d, str) and d for d in layer.filters.values())
        assert layer.legend.entries and all(e.label_zh and e.label_en for e in layer.legend.entries)
        json.dumps(layer.style.options())
    assert get_layer("ten_disorders").title_zh == "十乱"


def test_unknown_layer_lists_the_names():
    with pytest.raises(NotFound) as err:
        get_layer("nope")
    assert "nope" in err.value.detail and all(name in err.value.detail for name in THEMES)
    assert sorted(err.value.extra["layers"]) == sorted(THEMES)


# --- every layer on the demo --------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(THEMES))
def test_every_layer_returns_valid_features(demo_session, county_box, name):
    layer = get_layer(name)
    result = layer.query(demo_session, LayerQuery(C, limit=40))
    assert result.features and result.number_returned == len(result.features) <= 40
    assert result.number_matched >= result.number_returned
    x0, y0, x1, y1 = county_box
    for feature in result.features:
        assert feature["type"] == "Feature" and isinstance(feature["id"], int)
        assert set(feature["geometry"]) == {"type", "coordinates"}  # no crs member (RFC 7946)
        assert feature["geometry"]["type"] == layer.geometry_type
        xy = coords(feature["geometry"])
        assert ((xy[:, 0] >= x0 - 1e-6) & (xy[:, 0] <= x1 + 1e-6)).all()  # lon first (RFC 7946)
        assert ((xy[:, 1] >= y0 - 1e-6) & (xy[:, 1] <= y1 + 1e-6)).all()
        json.dumps(feature, allow_nan=False, ensure_ascii=False)
        json.dumps(layer.style.for_properties(feature["properties"]), allow_nan=False)
        for key, value in feature["properties"].items():
            if key.endswith("_at") and value is not None:
                assert value.endswith("+08:00"), (key, value)
    ids = [f["id"] for f in result.features]
    assert ids == sorted(ids)
    assert layer.get(demo_session, C, ids[0]) == result.features[0]
    assert layer.get(demo_session, C, -1) is None
    assert layer.get(demo_session, "379999", ids[0]) is None


def test_themed_layers_hold_only_their_theme(demo_session):
    for theme in ("ten_disorders", "illegal_operation", "promotion"):
        result = page(demo_session, theme, limit=200)
        assert {f["properties"]["theme"] for f in result.features} == {theme}
        assert result.number_matched == scalar(demo_session, """
            SELECT count(*) FROM "case" k JOIN category c ON c.id = k.category_id
            WHERE k.county_code = :c AND c.theme = :t""", c=C, t=theme)
    other = scalar(demo_session, """SELECT min(k.id) FROM "case" k JOIN category c ON c.id = k.category_id
                                    WHERE c.theme = 'promotion'""")
    assert get_layer("ten_disorders").get(demo_session, C, other) is None
    assert get_layer("cases").get(demo_session, C, other)["properties"]["theme_zh"] == "宣传活动"


# --- bbox, time, paging, filters ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["cases", "grid_cells", "illegal_structures", "fume_sites"])
def test_bbox_reduces_and_every_feature_intersects_it(demo_session, name):
    everything = page(demo_session, name, limit=1)
    inside = page(demo_session, name, bbox=SEAT_BOX, limit=2000)
    assert 0 < inside.number_matched < everything.number_matched
    assert inside.number_returned == min(inside.number_matched, 2000)
    box = shapely.box(*SEAT_BOX)
    assert all(box.intersects(shapely.from_geojson(json.dumps(f["geometry"]))) for f in inside.features)


def test_time_range_on_cases(demo_session):
    start, end = datetime(2021, 3, 1, tzinfo=SHANGHAI), datetime(2021, 4, 1, tzinfo=SHANGHAI)
    result = page(demo_session, "cases", start=start, end=end, limit=MAX_LIMIT)
    assert result.number_matched == scalar(demo_session, """
        SELECT count(*) FROM "case" WHERE county_code = :c AND reported_at >= :s AND reported_at < :e""",
                                           c=C, s=start, e=end) > 0
    assert all(start <= datetime.fromisoformat(f["properties"]["reported_at"]) < end for f in result.features)
    before = page(demo_session, "cases", end=start, limit=1).number_matched
    after = page(demo_session, "cases", start=start, limit=1).number_matched
    assert before + after == page(demo_session, "cases", limit=1).number_matched  # open at either end
    with pytest.raises(ValidationError) as err:
        LayerQuery(C, start=end, end=start)
    assert err.value.errors[0].field == "end"
    with pytest.raises(ValidationError) as err:
        LayerQuery(C, start=datetime(2021, 3, 1))
    assert err.value.errors[0].field == "start"
    with pytest.raises(ValidationError) as err:
        page(demo_session, "admin_units", start=start)  # no time field
    assert err.value.errors[0].field == "start"


def test_pagination_is_stable(demo_session):
    total = scalar(demo_session, 'SELECT count(*) FROM "case" WHERE county_code = :c', c=C)
    pages = [page(demo_session, "cases", limit=50, offset=o) for o in (0, 50, 100)]
    assert {p.number_matched for p in pages} == {total}
    ids = [f["id"] for p in pages for f in p.features]
    assert len(ids) == 150 and ids == sorted(ids) and len(set(ids)) == 150
    again = page(demo_session, "cases", limit=100, offset=50)
    assert [f["id"] for f in again.features] == ids[50:]
    tail = page(demo_session, "cases", limit=10, offset=total - 3)
    assert tail.number_returned == 3 and tail.number_matched == total
    beyond = page(demo_session, "cases", limit=10, offset=total + 10)
    assert beyond.features == [] and beyond.number_matched == total


def test_case_filters_reduce_correctly(demo_session):
    def count(where, **params):
        return scalar(demo_session, f"""SELECT count(*) FROM "case" k JOIN category cat ON cat.id = k.category_id
                                        LEFT JOIN agency a ON a.id = k.assigned_agency_id
                                        LEFT JOIN grid_cell g ON g.id = k.grid_cell_id
                                        WHERE k.county_code = :c AND {where}""", c=C, **params)

    closed = page(demo_session, "cases", filters={"status": "closed"}, limit=200)
    assert closed.number_matched == count("k.status = 'closed'")
    assert {f["properties"]["status_zh"] for f in closed.features} == {"已结案"}
    several = page(demo_session, "cases", filters={"status": ["closed", "cancelled"]}, limit=1)
    comma = page(demo_session, "cases", filters={"status": "closed,cancelled"}, limit=1)
    assert several.number_matched == comma.number_matched == count("k.status IN ('closed', 'cancelled')")
    td02 = page(demo_session, "cases", filters={"category": "TD02"}, limit=200)
    assert td02.number_matched == count("cat.code = 'TD02'") > 0
    assert {f["properties"]["category_code"] for f in td02.features} == {"TD02"}
    squad = page(demo_session, "cases", filters={"squad": "ZD01"}, limit=200)
    assert squad.number_matched == count("a.code = 'ZD01'") > 0
    assert {f["properties"]["agency_code"] for f in squad.features} == {"ZD01"}
    grid = squad.features[0]["properties"]["grid_code"]
    in_grid = page(demo_session, "cases", filters={"grid": grid}, limit=MAX_LIMIT)
    assert in_grid.number_matched == count("g.code = :g", g=grid) > 0
    assert {f["properties"]["grid_code"] for f in in_grid.features} == {grid}
    both = page(demo_session, "cases", filters={"squad": "ZD01", "status": "closed", "category": "TD02"}, limit=1)
    assert both.number_matched == count("a.code = 'ZD01' AND k.status = 'closed' AND cat.code = 'TD02'")
    assert both.number_matched < min(td02.number_matched, squad.number_matched)
    # The demo year's overdue cases, seen from the end of that year.
    # The demo year's overdue cases, seen from the end of that year: the filter and the clock agree,
    # including cases handled at night just after a due time at the end of a working day.
    overdue = page(demo_session, "cases", filters={"overdue": "true"}, at=YEAR_END, limit=MAX_LIMIT)
    past_due = count("k.due_at < COALESCE(k.handled_at, :at)", at=YEAR_END)
    assert 0 < overdue.number_matched < past_due
    assert all(f["properties"]["overdue"] for f in overdue.features)
    on_time = page(demo_session, "cases", filters={"overdue": "false"}, at=YEAR_END, limit=3000)
    assert overdue.number_matched + on_time.number_matched == count("true")
    assert not any(f["properties"]["overdue"] for f in on_time.features)


def test_other_layer_filters(demo_session):
    demolished = page(demo_session, "illegal_structures", filters={"stage": "self_demolished,forced_demolished"},
                      limit=200)
    assert demolished.number_matched == 88
    assert math.isclose(sum(f["properties"]["area_m2"] for f in demolished.features), 9074.7, abs_tol=0.05)
    exceeded = page(demo_session, "fume_sites", filters={"exceeded": "true"}, limit=200)
    assert exceeded.number_matched == scalar(demo_session, """
        SELECT count(*) FROM fume_site f WHERE f.county_code = :c AND (SELECT fi.exceeded FROM fume_inspection fi
        WHERE fi.site_id = f.id ORDER BY fi.inspected_at DESC, fi.id DESC LIMIT 1)""", c=C)
    assert all(f["properties"]["exceeded"] for f in exceeded.features)
    large = page(demo_session, "fume_sites", filters={"size_class": "large"}, limit=200)
    assert large.features and all(f["properties"]["cooking_heads"] >= 6 for f in large.features)
    held = page(demo_session, "seized_items", filters={"status": "held"}, limit=200)
    assert held.number_matched == scalar(demo_session, "SELECT count(*) FROM seized_item WHERE status = 'held'")
    assert page(demo_session, "hotline_tickets", filters={"status": "open"}, limit=1).number_matched == 0
    assert page(demo_session, "hotline_tickets", filters={"status": "closed"}, limit=1).number_matched == 657
    assert page(demo_session, "admin_units", filters={"level": "subdistrict"}, limit=10).number_matched == 3
    squads = page(demo_session, "jurisdictions", limit=20)
    assert squads.number_matched == 10  # squads by default, one colour each
    assert len({f["properties"]["color"] for f in squads.features}) == 10
    offices = page(demo_session, "jurisdictions", filters={"kind": "township_office"}, limit=1)
    assert offices.number_matched == 20
    grids = page(demo_session, "grid_cells", filters={"squad": "ZD01"}, limit=5)
    assert grids.features and {f["properties"]["squad_code"] for f in grids.features} == {"ZD01"}


# --- refusals -----------------------------------------------------------------------------------------

def test_unknown_filter_is_named(demo_session):
    with pytest.raises(ValidationError) as err:
        page(demo_session, "cases", filters={"colour": "red"})
    assert err.value.errors[0].field == "colour" and "colour" in err.value.detail
    with pytest.raises(ValidationError) as err:
        page(demo_session, "cases", filters={"status": "finished"})
    assert err.value.errors[0].field == "status" and "finished" in err.value.detail
    with pytest.raises(ValidationError) as err:
        page(demo_session, "cases", filters={"overdue": "maybe"})
    assert err.value.errors[0].field == "overdue"
    with pytest.raises(ValidationError) as err:
        page(demo_session, "ten_disorders", filters={"theme": "promotion"})  # fixed by the layer
    assert err.value.errors[0].field == "theme"


@pytest.mark.parametrize("bbox, words", [
    ((115.7, 36.0, 115.8), "four numbers"),
    ((36.0, 115.7, 36.2, 115.9), "swapped"),
    ((115.7, float("nan"), 115.8, 36.1), "finite"),
    ((115.8, 36.0, 115.7, 36.1), "less than"),
    ("115.7,36.0,115.8,36.1; DROP TABLE case", "four numbers"),
    ("a,b,c,d", "four numbers"),
])
def test_bad_bbox_is_named(bbox, words):
    with pytest.raises(ValidationError) as err:
        LayerQuery(C, bbox=bbox)
    assert err.value.errors[0].field == "bbox" and words in err.value.detail


def test_bbox_text_is_parsed():
    assert parse_bbox("115.7, 36.0,115.8,36.1") == (115.7, 36.0, 115.8, 36.1)


@pytest.mark.parametrize("kw, field", [({"limit": 0}, "limit"), ({"limit": 100_001}, "limit"),
                                       ({"limit": MAX_LIMIT + 1}, "limit"), ({"offset": -1}, "offset"),
                                       ({"limit": True}, "limit")])
def test_bad_paging_is_named(kw, field):
    with pytest.raises(ValidationError) as err:
        LayerQuery(C, **kw)
    assert err.value.errors[0].field == field


def test_sql_injection_in_filters_finds_nothing(demo_session):
    for name, filters in (("cases", {"category": "TD02' OR 1=1 --"}), ("cases", {"squad": "x'); DROP TABLE case; --"}),
                          ("grid_cells", {"unit": "' OR ''='"}), ("jurisdictions", {"agency": "ZD01' --"})):
        assert page(demo_session, name, filters=filters).number_matched == 0
    with pytest.raises(ValidationError):
        page(demo_session, "cases", filters={"status": "closed' OR 1=1 --"})
    assert scalar(demo_session, 'SELECT count(*) FROM "case"') > 0


# --- versions and the clock on constructed data -------------------------------------------------------

def test_versioned_layers_respect_at(db_session):
    county = make_county(db_session)
    layer = get_layer("jurisdictions")
    when = datetime(2024, 6, 1, tzinfo=UTC)
    smaller = shapely.box(115.70, 36.00, 115.73, 36.05)
    new = redraw_jurisdiction(db_session, county.agencies["squad_west"], smaller, at=when, note="test")

    def west(at):
        result = layer.query(db_session, LayerQuery(county.code, at=at, filters={"agency": "SQ-west"}))
        assert result.number_matched == 1
        return result.features[0]

    before, after = west(when - timedelta(seconds=1)), west(when)
    assert before["properties"]["version"] == 1 and after["properties"]["version"] == 2 and after["id"] == new.id
    assert before["properties"]["valid_to"] == after["properties"]["valid_from"]
    assert math.isclose(shapely.from_geojson(json.dumps(after["geometry"])).bounds[2], 115.73, abs_tol=1e-6)
    assert layer.query(db_session, LayerQuery(county.code, at=when)).number_matched == 2  # both squads
    assert layer.get(db_session, county.code, before["id"])["properties"]["version"] == 1  # old versions by id
    # Grid cells: close the west cell and open a new version; each moment sees one of them.
    db_session.execute(text("UPDATE grid_cell SET valid_to = :t WHERE county_code = :c AND code LIKE '%10100101'"),
                       {"t": when, "c": county.code})
    db_session.execute(text("""
        INSERT INTO grid_cell (county_code, code, admin_unit_id, squad_id, community, area_m2, valid_from, geom)
        SELECT county_code, code, admin_unit_id, squad_id, community, area_m2 / 2, :t,
               ST_Multi(ST_GeomFromText(:g, 4326))
        FROM grid_cell WHERE county_code = :c AND code LIKE '%10100101'"""),
                       {"t": when, "c": county.code, "g": smaller.wkt})
    grids = get_layer("grid_cells")
    old = grids.query(db_session, LayerQuery(county.code, at=when - timedelta(days=1)))
    now = grids.query(db_session, LayerQuery(county.code, at=when))
    assert old.number_matched == now.number_matched == 2
    assert {f["id"] for f in old.features} != {f["id"] for f in now.features}


def test_overdue_flag_matches_the_clock(db_session):
    county = make_county(db_session)
    pw, sup, op = (Actor.of(county.users[u]) for u in ("pw", "sup1", "op"))
    at = datetime(2021, 3, 1, 9, 0, tzinfo=SHANGHAI)
    cases = []
    for minutes in (0, 30):
        case = report_case(db_session, county.code, category="TD02", source="patroller", reporter=pw,
                           geometry={"type": "Point", "coordinates": [115.72, 36.02]}, description="<b>占道</b>",
                           reported_at=at + timedelta(minutes=minutes)).case
        act(db_session, case.id, "file", sup, at=at + timedelta(minutes=minutes + 5))
        act(db_session, case.id, "dispatch", op, at=at + timedelta(minutes=minutes + 10))
        cases.append(case)
    late, _ = cases
    now = datetime(2021, 3, 10, 12, 0, tzinfo=SHANGHAI)  # 16 working hours ran out on 3 March
    expected = clock(late, limit_hours(db_session, late), now=now)
    assert expected.overdue and expected.overrun_multiple > 0
    layer = get_layer("cases")
    feature = layer.query(db_session, LayerQuery(county.code, at=now, ids=(late.id,))).features[0]
    props = feature["properties"]
    assert props["overdue"] is True and props["overrun_multiple"] == expected.overrun_multiple
    assert props["limit_hours"] == 16.0 and props["description"] == "<b>占道</b>"  # data, not markup
    assert layer.style.for_properties(props)["color"] == "#d7191c"
    assert props["due_at"] == late.due_at.astimezone(SHANGHAI).isoformat()
    early = layer.query(db_session, LayerQuery(county.code, at=at + timedelta(hours=2)))
    assert early.number_matched == 2 and not any(f["properties"]["overdue"] for f in early.features)
    overdue = layer.query(db_session, LayerQuery(county.code, at=now, filters={"overdue": "true"}))
    assert overdue.number_matched == 2 and all(f["properties"]["overdue"] for f in overdue.features)
    on_time = layer.query(db_session, LayerQuery(county.code, at=now, filters={"overdue": "false"}))
    assert on_time.number_matched == 0
    assert {f["properties"]["status"] for f in overdue.features} == {"dispatched"}
    assert set(vocab.CASE_STATUSES) <= set(layer.style.by_property["status"])
