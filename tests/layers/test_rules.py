"""Thematic registry rules on PostGIS: illegal structures, fume sites, seized items, hotline tickets."""

import itertools
import json
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
import shapely
from pyproj import Transformer
from sqlalchemy import func, select, text

from gis_platform import models as m
from gis_platform import vocab
from gis_platform.errors import Conflict, Forbidden, ValidationError
from gis_platform.workcalendar import SHANGHAI
from layers.cases import Actor, act
from layers.rules import fume, hotline, seized
from layers.rules.structures import STAGE_TRANSITIONS, advance, demolished_totals, register_structure
from tests.factories import add_categories, add_photo, make_county

WEST = {"type": "Point", "coordinates": [115.72, 36.02]}
T0 = datetime(2021, 3, 1, 9, 0, tzinfo=SHANGHAI)  # a Monday
TO_METRIC = Transformer.from_crs("EPSG:4326", "EPSG:4548", always_xy=True)
TO_WGS = Transformer.from_crs("EPSG:4548", "EPSG:4326", always_xy=True)


@pytest.fixture()
def county(db_session):
    return add_categories(db_session, make_county(db_session))


@pytest.fixture()
def cfg(settings, county):
    """Settings for the mini county."""
    return settings.model_copy(update={"county_code": county.code})


def actor(county, name):
    return Actor.of(county.users[name])


def rectangle(lon, lat, width_m, height_m):
    """Return a lon/lat polygon that is an exact width × height rectangle in EPSG:4548."""
    x, y = TO_METRIC.transform(lon, lat)
    box = shapely.box(x, y, x + width_m, y + height_m)
    return shapely.transform(box, lambda xy: np.column_stack(TO_WGS.transform(xy[:, 0], xy[:, 1])))


def finish_case(session, county, case, at):
    """Take a west-squad case through the closed loop to closed."""
    act(session, case.id, "file", actor(county, "sup1"), at=at)
    act(session, case.id, "dispatch", actor(county, "op"), at=at + timedelta(minutes=10))
    act(session, case.id, "accept", actor(county, "pw"), at=at + timedelta(minutes=20))
    photo = add_photo(session, case)
    act(session, case.id, "feedback", actor(county, "pw"), at=at + timedelta(hours=2), attachment_ids=[photo.id])
    act(session, case.id, "close", actor(county, "sup2"), at=at + timedelta(hours=3))
    return case


def count_cases(session, county, code):
    return session.scalar(select(func.count()).select_from(m.Case).where(
        m.Case.county_code == county.code, m.Case.category_id == county.categories[code]))


def case_actions(session, case_id):
    return session.scalars(select(m.CaseEvent.action).where(m.CaseEvent.case_id == case_id)
                           .order_by(m.CaseEvent.seq)).all()


def fields(exc_info):
    return {e.field for e in exc_info.value.errors}


# -- illegal structures ---------------------------------------------------------------------------

def register(session, county, cfg, footprint=None, **kw):
    values = dict(footprint=footprint if footprint is not None else rectangle(115.72, 36.02, 20, 30),
                  address="西镇幸福路12号", builder="张某", discovered_at=T0, actor=actor(county, "pw"))
    values.update(kw)
    return register_structure(session, cfg, **values)


def test_structure_area_is_measured_in_the_metric_crs(db_session, county, cfg):
    s = register(db_session, county, cfg)
    assert s.area_m2 == pytest.approx(600.0, abs=0.1) and s.stage == "discovered"
    case = db_session.get(m.Case, s.case_id)
    assert case.category_id == county.categories["IS01"] and case.source == "patroller"
    assert case.reported_at == T0 and "600.0 m²" in case.description
    # The case carries the footprint itself, and is routed to the squad holding it.
    same = db_session.scalar(text("SELECT ST_Equals(k.geom, s.footprint) FROM illegal_structure s "
                                  'JOIN "case" k ON k.id = s.case_id WHERE s.id = :id'), {"id": s.id})
    assert same
    assert s.squad_id == county.agencies["squad_west"] and s.admin_unit_id == county.units["west"]
    assert case_actions(db_session, case.id) == ["report"]


def test_structure_full_lifecycle(db_session, county, cfg):
    s = register(db_session, county, cfg)
    advance(db_session, s.id, "filed", actor=actor(county, "sup1"), at=T0 + timedelta(hours=2), note="立案")
    advance(db_session, s.id, "order_served", actor=actor(county, "pw"), at=T0 + timedelta(days=1),
            note="限期三日自行拆除")
    assert s.order_served_at == T0 + timedelta(days=1) and s.demolished_at is None
    advance(db_session, s.id, "self_demolished", actor=actor(county, "pw"), at=T0 + timedelta(days=3))
    assert s.demolished_at == T0 + timedelta(days=3)
    advance(db_session, s.id, "closed", actor=actor(county, "sup2"), at=T0 + timedelta(days=4))
    assert s.stage == "closed"
    # The other ending: demolished by force.
    f = register(db_session, county, cfg, footprint=rectangle(115.73, 36.03, 10, 10))
    for stage, who, days in (("filed", "sup1", 1), ("order_served", "op", 2), ("forced_demolished", "op", 40),
                             ("closed", "ad", 41)):
        advance(db_session, f.id, stage, actor=actor(county, who), at=T0 + timedelta(days=days))
    assert f.stage == "closed" and f.demolished_at == T0 + timedelta(days=40)
    # Each stage is kept in the case's history, with its note and who took it.
    rows = db_session.execute(select(m.CaseEvent.action, m.CaseEvent.note, m.CaseEvent.data, m.CaseEvent.actor_id)
                              .where(m.CaseEvent.case_id == s.case_id).order_by(m.CaseEvent.seq)).all()
    assert [r.action for r in rows] == ["report"] + ["structure_stage"] * 4
    assert [r.data["to_stage"] for r in rows[1:]] == ["filed", "order_served", "self_demolished", "closed"]
    assert rows[2].note == "限期三日自行拆除" and rows[4].actor_id == county.users["sup2"].id
    # Demolished totals count both, by the period of demolition, at 0.1 m².
    year = (datetime(2021, 1, 1, tzinfo=SHANGHAI), datetime(2022, 1, 1, tzinfo=SHANGHAI))
    total = demolished_totals(db_session, county.code, *year, group_by=None)
    assert (total.count, total.area_m2) == (2, Decimal("700.0")) and total.groups == []
    months = demolished_totals(db_session, county.code, *year)
    assert [(g.key, g.count, g.area_m2) for g in months.groups] == [("2021-03", 1, Decimal("600.0")),
                                                                    ("2021-04", 1, Decimal("100.0"))]
    towns = demolished_totals(db_session, county.code, *year, group_by="township")
    assert [(g.label, g.count) for g in towns.groups] == [("west镇", 2)]
    march = demolished_totals(db_session, county.code, datetime(2021, 3, 1, tzinfo=SHANGHAI),
                              datetime(2021, 4, 1, tzinfo=SHANGHAI), group_by=None)
    assert (march.count, march.area_m2) == (1, Decimal("600.0"))


def test_stage_machine_is_the_documented_one():
    assert set(STAGE_TRANSITIONS) == set(vocab.STRUCTURE_STAGES)
    assert STAGE_TRANSITIONS == {
        "discovered": ("filed",), "filed": ("order_served",),
        "order_served": ("self_demolished", "forced_demolished"),
        "self_demolished": ("closed",), "forced_demolished": ("closed",), "closed": ()}


def test_every_illegal_stage_transition_is_rejected(db_session, county, cfg):
    s = register(db_session, county, cfg)
    rejected = 0
    for before, after in itertools.product(vocab.STRUCTURE_STAGES, repeat=2):
        if after in STAGE_TRANSITIONS[before]:
            continue
        s.stage = before
        db_session.flush()
        with pytest.raises(Conflict, match="allowed: ") as exc:
            advance(db_session, s.id, after, actor=actor(county, "ad"), at=T0 + timedelta(days=60))
        assert exc.value.extra["allowed"] == list(STAGE_TRANSITIONS[before])
        assert s.stage == before
        rejected += 1
    assert rejected == 36 - 6
    s.stage = "discovered"
    with pytest.raises(ValidationError, match="stage"):
        advance(db_session, s.id, "razed", actor=actor(county, "ad"), at=T0)


def test_structure_steps_check_roles_and_dates(db_session, county, cfg):
    with pytest.raises(Forbidden):
        register(db_session, county, cfg, actor=actor(county, "pl"))
    s = register(db_session, county, cfg)
    with pytest.raises(Forbidden, match="supervisor"):
        advance(db_session, s.id, "filed", actor=actor(county, "pw"), at=T0 + timedelta(hours=1))
    advance(db_session, s.id, "filed", actor=actor(county, "sup1"), at=T0 + timedelta(hours=1))
    with pytest.raises(Forbidden, match="another squad"):
        advance(db_session, s.id, "order_served", actor=actor(county, "pe"), at=T0 + timedelta(days=1))
    with pytest.raises(ValidationError, match="before the previous stage"):
        advance(db_session, s.id, "order_served", actor=actor(county, "pw"), at=T0 - timedelta(days=1))
    with pytest.raises(ValidationError, match="time zone"):
        advance(db_session, s.id, "order_served", actor=actor(county, "pw"), at=datetime(2021, 3, 2, 9))


def test_structure_footprint_validation(db_session, county, cfg):
    bowtie = "POLYGON((115.71 36.01, 115.72 36.02, 115.72 36.01, 115.71 36.02, 115.71 36.01))"
    with pytest.raises(ValidationError, match="invalid geometry") as exc:
        register(db_session, county, cfg, footprint=bowtie)
    assert fields(exc) == {"footprint"}
    repaired = register(db_session, county, cfg, footprint=bowtie, repair=True)
    assert repaired.area_m2 > 0
    with pytest.raises(ValidationError, match="Point is not allowed"):
        register(db_session, county, cfg, footprint=WEST)
    with pytest.raises(ValidationError, match="outside the county"):
        register(db_session, county, cfg, footprint=rectangle(116.5, 36.02, 20, 30))
    with pytest.raises(ValidationError) as exc:
        register(db_session, county, cfg, discovered_at=datetime(2021, 3, 1, 9))
    assert fields(exc) == {"discovered_at"}
    # GeoJSON and WKT work as well as shapely.
    poly = rectangle(115.74, 36.04, 5, 8)
    for given in (shapely.to_wkt(poly, rounding_precision=-1), json.loads(shapely.to_geojson(poly))):
        assert register(db_session, county, cfg, footprint=given).area_m2 == pytest.approx(40.0, abs=0.1)


def test_structure_under_an_existing_case(db_session, county, cfg):
    first = register(db_session, county, cfg)
    before = count_cases(db_session, county, "IS01")
    second = register(db_session, county, cfg, footprint=rectangle(115.7203, 36.0203, 4, 5), case_id=first.case_id)
    assert second.case_id == first.case_id and count_cases(db_session, county, "IS01") == before
    stall = act_report(db_session, county, "TD02")
    with pytest.raises(ValidationError, match="illegal_structures") as exc:
        register(db_session, county, cfg, case_id=stall.id)
    assert fields(exc) == {"case_id"}
    with pytest.raises(ValidationError, match="illegal_structures") as exc:
        register(db_session, county, cfg, category="TD02")
    assert fields(exc) == {"category"} and count_cases(db_session, county, "TD02") == 1
    # The builder's name is kept on the structure, not in the (possibly public) case description.
    case = db_session.get(m.Case, first.case_id)
    assert first.builder == "张某" and "张某" not in case.description


def test_demo_demolished_totals(demo_session):
    year = (datetime(2021, 1, 1, tzinfo=SHANGHAI), datetime(2022, 1, 1, tzinfo=SHANGHAI))
    total = demolished_totals(demo_session, "371521", *year, group_by=None)
    assert total.count == 88 and total.area_m2 == Decimal("9074.7")
    for grouping in ("month", "township"):
        grouped = demolished_totals(demo_session, "371521", *year, group_by=grouping)
        assert sum(g.count for g in grouped.groups) == 88
        assert sum(g.area_m2 for g in grouped.groups) == Decimal("9074.7")
    assert demolished_totals(demo_session, "371521", *year).groups[0].key.startswith("2021-")


# -- cooking fume -----------------------------------------------------------------------------------

def test_size_class_and_required_efficiency(settings):
    assert [fume.size_class(n) for n in (1, 2, 3, 5, 6, 40)] == ["small", "small", "medium", "medium",
                                                                  "large", "large"]
    for bad in (0, -1, 2.5, True, "3", None):
        with pytest.raises(ValidationError) as exc:
            fume.size_class(bad)
        assert fields(exc) == {"cooking_heads"}
    assert [fume.required_efficiency(c, settings) for c in vocab.FUME_SIZE_CLASSES] == [60.0, 75.0, 85.0]
    stricter = settings.model_copy(update={"fume_min_efficiency": (70.0, 80.0, 90.0)})
    assert fume.required_efficiency("medium", stricter) == 80.0
    with pytest.raises(ValidationError):
        fume.required_efficiency("huge", settings)


def add_site(session, county, cfg, **kw):
    values = dict(name="老王烧烤", location=WEST, cooking_heads=4, purifier_efficiency=80.0,
                  address="西镇夜市街3号", actor=actor(county, "pw"))
    values.update(kw)
    return fume.register_site(session, cfg, **values)


def test_register_site_classifies_and_checks_the_purifier(db_session, county, cfg):
    ok = add_site(db_session, county, cfg)
    assert (ok.size_class, ok.required_efficiency, ok.compliant, ok.warnings) == ("medium", 75.0, True, [])
    assert ok.site.squad_id == county.agencies["squad_west"] and ok.site.admin_unit_id == county.units["west"]
    weak = add_site(db_session, county, cfg, cooking_heads=6, purifier_efficiency=80.0)
    assert not weak.compliant and "85 %" in weak.warnings[0]
    none = add_site(db_session, county, cfg, purifier_installed=False, purifier_efficiency=None)
    assert not none.compliant and "no purifier" in none.warnings[0]
    with pytest.raises(ValidationError) as exc:
        add_site(db_session, county, cfg, purifier_efficiency=float("nan"))
    assert fields(exc) == {"purifier_efficiency"}
    with pytest.raises(ValidationError, match="outside the county"):
        add_site(db_session, county, cfg, location={"type": "Point", "coordinates": [116.5, 36.02]})


def test_fume_full_lifecycle(db_session, county, cfg):
    site = add_site(db_session, county, cfg).site
    inspector = actor(county, "pw")
    clean = fume.record_inspection(db_session, cfg, site.id, concentration_mg_m3=1.2, inspected_at=T0,
                                   inspector=inspector)
    assert not clean.exceeded and clean.penalty_case is None and clean.inspection.penalty_case_id is None
    assert count_cases(db_session, county, "FS01") == 0
    at_limit = fume.record_inspection(db_session, cfg, site.id, concentration_mg_m3=2.0,
                                      inspected_at=T0 + timedelta(days=7), inspector=inspector)
    assert not at_limit.exceeded  # the limit is a maximum allowed: equal to it is within it
    over = fume.record_inspection(db_session, cfg, site.id, concentration_mg_m3=2.6,
                                  inspected_at=T0 + timedelta(days=14), inspector=inspector, note="夜间检测")
    assert over.exceeded and over.inspection.limit_mg_m3 == 2.0
    assert count_cases(db_session, county, "FS01") == 1
    case = over.penalty_case
    assert over.inspection.penalty_case_id == case.id and case.source == "patroller"
    assert case.reported_at == T0 + timedelta(days=14) and case.reporter_id == county.users["pw"].id
    assert "老王烧烤" in case.description and "2.6 mg/m³" in case.description and "2.0 mg/m³" in case.description
    assert db_session.scalar(text('SELECT ST_Equals(k.geom, s.geom) FROM "case" k, fume_site s '
                                  "WHERE k.id = :k AND s.id = :s"), {"k": case.id, "s": site.id})
    finish_case(db_session, county, case, T0 + timedelta(days=15))
    assert case.status == "closed"
    after = fume.record_inspection(db_session, cfg, site.id, concentration_mg_m3=0.8,
                                   inspected_at=T0 + timedelta(days=30), inspector=inspector)
    assert not after.exceeded and count_cases(db_session, county, "FS01") == 1
    assert db_session.scalar(select(func.count()).select_from(m.FumeInspection)
                             .where(m.FumeInspection.site_id == site.id)) == 4


def test_limit_comes_from_settings_and_stays_with_the_inspection(db_session, county, cfg):
    site = add_site(db_session, county, cfg).site
    inspector = actor(county, "pw")
    national = fume.record_inspection(db_session, cfg, site.id, concentration_mg_m3=1.8, inspected_at=T0,
                                      inspector=inspector)
    assert not national.exceeded and national.inspection.limit_mg_m3 == 2.0
    strict = cfg.model_copy(update={"fume_limit_mg_m3": 1.5})
    local = fume.record_inspection(db_session, strict, site.id, concentration_mg_m3=1.8,
                                   inspected_at=T0 + timedelta(days=1), inspector=inspector)
    assert local.exceeded and local.inspection.limit_mg_m3 == 1.5 and local.penalty_case is not None
    assert "1.5 mg/m³" in local.penalty_case.description
    db_session.expire_all()
    # The earlier inspection keeps the limit it was judged by.
    assert db_session.get(m.FumeInspection, national.inspection.id).limit_mg_m3 == 2.0


def test_inspection_validation(db_session, county, cfg):
    site = add_site(db_session, county, cfg).site
    inspector = actor(county, "pw")
    for bad in (-0.1, float("nan"), float("inf"), "2.1", None):
        with pytest.raises(ValidationError) as exc:
            fume.record_inspection(db_session, cfg, site.id, concentration_mg_m3=bad, inspected_at=T0,
                                   inspector=inspector)
        assert fields(exc) == {"concentration_mg_m3"}
    with pytest.raises(ValidationError) as exc:
        fume.record_inspection(db_session, cfg, site.id, concentration_mg_m3=-1, inspected_at=datetime(2021, 3, 1),
                               inspector=inspector, purifier_efficiency_measured=120)
    assert fields(exc) == {"concentration_mg_m3", "inspected_at", "purifier_efficiency_measured"}
    with pytest.raises(Forbidden):
        fume.record_inspection(db_session, cfg, site.id, concentration_mg_m3=1.0, inspected_at=T0,
                               inspector=actor(county, "pl"))
    assert db_session.scalar(select(func.count()).select_from(m.FumeInspection)
                             .where(m.FumeInspection.site_id == site.id)) == 0


def test_purifier_shortfall_is_flagged_without_a_case(db_session, county, cfg):
    site = add_site(db_session, county, cfg, cooking_heads=2, purifier_efficiency=70.0).site
    out = fume.record_inspection(db_session, cfg, site.id, concentration_mg_m3=1.0, inspected_at=T0,
                                 inspector=actor(county, "pw"), purifier_efficiency_measured=50.0)
    assert out.purifier_below_required and out.required_efficiency == 60.0 and "50 %" in out.warnings[0]
    assert out.penalty_case is None and count_cases(db_session, county, "FS02") == 0
    good = fume.record_inspection(db_session, cfg, site.id, concentration_mg_m3=1.0, inspected_at=T0,
                                  inspector=actor(county, "pw"), purifier_efficiency_measured=65.0)
    assert not good.purifier_below_required and good.warnings == []


# -- seized items -----------------------------------------------------------------------------------

def act_report(session, county, code, geometry=WEST):
    from layers.cases import report_case

    return report_case(session, county.code, category=code, geometry=geometry, source="patroller",
                       reporter=actor(county, "pw"), description="测试", reported_at=T0).case


def test_seized_items_full_lifecycle(db_session, county):
    case = act_report(db_session, county, "IO01")
    pw = actor(county, "pw")
    cart = seized.seize(db_session, case.id, description="三轮车", quantity=1, seized_at=T0 + timedelta(hours=1),
                        actor=pw)
    grill = seized.seize(db_session, case.id, description="烧烤炉", quantity=2, seized_at=T0 + timedelta(hours=1),
                         actor=pw)
    assert cart.status == grill.status == "held"
    assert [i.id for i in seized.held_items(db_session, county.code)] == [cart.id, grill.id]
    seized.resolve(db_session, cart.id, "returned", at=T0 + timedelta(days=3), actor=pw, note="接受处罚后返还")
    with pytest.raises(Forbidden):
        seized.resolve(db_session, grill.id, "confiscated", at=T0 + timedelta(days=5), actor=pw)
    seized.resolve(db_session, grill.id, "confiscated", at=T0 + timedelta(days=5), actor=actor(county, "op"))
    assert (cart.status, cart.resolved_at) == ("returned", T0 + timedelta(days=3))
    assert grill.status == "confiscated" and seized.held_items(db_session, county.code) == []
    # Resolved items stay resolved.
    for item, outcome in ((cart, "confiscated"), (cart, "returned"), (grill, "returned")):
        with pytest.raises(Conflict, match="allowed: none"):
            seized.resolve(db_session, item.id, outcome, at=T0 + timedelta(days=9), actor=actor(county, "ad"))
    assert case_actions(db_session, case.id) == ["report", "seize_item", "seize_item", "return_item",
                                                 "confiscate_item"]


def test_seizure_rules(db_session, county):
    pw = actor(county, "pw")
    disorder = act_report(db_session, county, "TD02")
    assert seized.seize(db_session, disorder.id, description="遮阳伞", quantity=3, seized_at=T0, actor=pw).quantity == 3
    structure_case = act_report(db_session, county, "IS01", geometry=rectangle(115.72, 36.02, 20, 30))
    with pytest.raises(ValidationError, match="illegal_operation or ten_disorders"):
        seized.seize(db_session, structure_case.id, description="钢管", quantity=1, seized_at=T0, actor=pw)
    done = finish_case(db_session, county, act_report(db_session, county, "IO01"), T0)
    with pytest.raises(Conflict, match="open case"):
        seized.seize(db_session, done.id, description="货架", quantity=1, seized_at=T0, actor=pw)
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValidationError) as exc:
            seized.seize(db_session, disorder.id, description="货架", quantity=bad, seized_at=T0, actor=pw)
        assert fields(exc) == {"quantity"}
    with pytest.raises(Forbidden, match="another unit"):
        seized.seize(db_session, disorder.id, description="货架", quantity=1, seized_at=T0, actor=actor(county, "pe"))
    item = seized.held_items(db_session, county.code)[0]
    with pytest.raises(ValidationError):
        seized.resolve(db_session, item.id, "held", at=T0 + timedelta(days=1), actor=pw)
    with pytest.raises(ValidationError, match="before the seizure"):
        seized.resolve(db_session, item.id, "returned", at=T0 - timedelta(days=1), actor=pw)


# -- hotline tickets ----------------------------------------------------------------------------------

def receive(session, cfg, **kw):
    values = dict(external_no="12345-2021-00001", channel="12345政务服务便民热线", content="幸福路有人占道摆摊",
                  received_at=T0, location=WEST, category="TD02")
    values.update(kw)
    return hotline.receive_ticket(session, cfg, **values)


def test_hotline_full_lifecycle(db_session, county, cfg):
    out = receive(db_session, cfg)
    ticket, case = out.ticket, out.case
    assert out.created and ticket.status == "open" and ticket.case_id == case.id
    assert case.source == "hotline" and case.external_ref == ticket.external_no
    assert case.assigned_agency_id == county.agencies["squad_west"]
    # Five working days from Monday 1 March 2021: the end of office hours on Monday 8 March.
    assert ticket.reply_due_at == datetime(2021, 3, 8, 18, 0, tzinfo=SHANGHAI)
    again = receive(db_session, cfg, content="重复推送")
    assert not again.created and again.ticket.id == ticket.id and again.case.id == case.id
    assert ticket.content == "幸福路有人占道摆摊" and count_cases(db_session, county, "TD02") == 1
    op = actor(county, "op")
    with pytest.raises(Conflict, match="allowed: reply"):
        hotline.close_ticket(db_session, ticket.id, at=T0 + timedelta(hours=1), actor=op)
    replied = hotline.reply(db_session, ticket.id, reply_text="已派中队处置", at=T0 + timedelta(days=1), actor=op)
    assert replied.on_time and ticket.status == "replied"
    with pytest.raises(Conflict, match="allowed: close"):
        hotline.reply(db_session, ticket.id, reply_text="再次答复", at=T0 + timedelta(days=1), actor=op)
    with pytest.raises(Conflict, match=r"case AJ\d+ is reported") as exc:
        hotline.close_ticket(db_session, ticket.id, at=T0 + timedelta(days=1), actor=op)
    assert exc.value.extra["case_status"] == "reported"
    finish_case(db_session, county, case, T0 + timedelta(days=1))
    hotline.close_ticket(db_session, ticket.id, at=T0 + timedelta(days=2), actor=op)
    assert ticket.status == "closed" and ticket.closed_at == T0 + timedelta(days=2)
    with pytest.raises(Conflict, match="allowed: none"):
        hotline.close_ticket(db_session, ticket.id, at=T0 + timedelta(days=3), actor=op)
    year = (datetime(2021, 1, 1, tzinfo=SHANGHAI), datetime(2022, 1, 1, tzinfo=SHANGHAI))
    assert hotline.closure_rate(db_session, county.code, *year) == (1, 1, 1.0)


def test_hotline_ticket_without_a_case(db_session, county, cfg):
    out = receive(db_session, cfg, external_no="12319-0002", location=None, category=None,
                  reply_within_working_days=3)
    assert out.created and out.case is None and out.ticket.geom is None
    assert out.ticket.reply_due_at == datetime(2021, 3, 4, 18, 0, tzinfo=SHANGHAI)
    open_one = receive(db_session, cfg, external_no="12319-0003", location=WEST, category=None).ticket
    assert open_one.case_id is None and open_one.geom is not None
    op = actor(county, "op")
    late = hotline.reply(db_session, out.ticket.id, reply_text="已答复", at=T0 + timedelta(days=5), actor=op)
    assert not late.on_time
    hotline.close_ticket(db_session, out.ticket.id, at=T0 + timedelta(days=5, hours=1), actor=op)
    year = (datetime(2021, 1, 1, tzinfo=SHANGHAI), datetime(2022, 1, 1, tzinfo=SHANGHAI))
    assert hotline.closure_rate(db_session, county.code, *year) == (1, 2, 0.5)
    assert hotline.closure_rate(db_session, county.code, *year, as_of=T0 + timedelta(days=1)) == (0, 2, 0.0)
    assert hotline.closure_rate(db_session, county.code, datetime(2020, 1, 1, tzinfo=SHANGHAI),
                                year[0]) == (0, 0, None)
    with pytest.raises(Forbidden):
        hotline.reply(db_session, open_one.id, reply_text="x", at=T0 + timedelta(days=1), actor=actor(county, "pw"))


def test_hotline_validation(db_session, county, cfg):
    with pytest.raises(ValidationError) as exc:
        receive(db_session, cfg, external_no="X-1", location=None)
    assert fields(exc) == {"location"}
    with pytest.raises(ValidationError) as exc:
        receive(db_session, cfg, external_no="X-2", channel=" ", received_at=datetime(2021, 3, 1, 9),
                reply_within_working_days=0)
    assert fields(exc) == {"channel", "received_at", "reply_within_working_days"}
    with pytest.raises(ValidationError) as exc:
        receive(db_session, cfg, external_no="")
    assert fields(exc) == {"external_no"}
    with pytest.raises(ValidationError, match="unknown category"):
        receive(db_session, cfg, external_no="X-3", category="ZZ99")


def test_demo_hotline_closure_rate(demo_session):
    year = (datetime(2021, 1, 1, tzinfo=SHANGHAI), datetime(2022, 1, 1, tzinfo=SHANGHAI))
    closed, total, rate = hotline.closure_rate(demo_session, "371521", *year)
    assert closed == total == 657 and rate == 1.0
