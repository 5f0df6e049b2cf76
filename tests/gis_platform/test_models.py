"""The database itself keeps bad geometry, bad codes and history rewrites out."""

from datetime import datetime, timezone

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from gis_platform import models as m

NOW = datetime(2021, 6, 1, 9, 0, tzinfo=timezone.utc)
SQUARE = "SRID=4326;MULTIPOLYGON(((115.78 36.10,115.80 36.10,115.80 36.12,115.78 36.12,115.78 36.10)))"


def _unit(session, geom=SQUARE, code="371521001", county="371521"):
    unit = m.AdminUnit(county_code=county, code=code, name="博济桥街道", name_en="Bojiqiao", level="subdistrict",
                       geom=geom)
    session.add(unit)
    session.flush()
    return unit


def _category(session):
    agency = m.Agency(county_code="371521", code="B", name="局", name_en="Bureau", kind="bureau")
    session.add(agency)
    session.flush()
    power = m.Power(county_code="371521", code="P1", name="p", domain="市容环境卫生", power_type="penalty",
                    exercised_by="bureau", agency_id=agency.id)
    session.add(power)
    session.flush()
    cat = m.Category(county_code="371521", code="TD02", name="乱摆摊点", name_en="Stalls", event_class="街面秩序",
                     theme="ten_disorders", power_id=power.id)
    session.add(cat)
    session.flush()
    return cat


def _case(session, cat, **kw):
    values = dict(county_code="371521", case_no="T1", category_id=cat.id, source="patroller",
                  geom="SRID=4326;POINT(115.79 36.11)", location="SRID=4326;POINT(115.79 36.11)", reported_at=NOW)
    values.update(kw)
    case = m.Case(**values)
    session.add(case)
    session.flush()
    return case


def test_valid_unit_round_trips(db_session):
    unit = _unit(db_session)
    area = db_session.execute(text("SELECT ST_Area(ST_Transform(geom, 4548)) FROM admin_unit WHERE id = :i"),
                              {"i": unit.id}).scalar()
    assert 3_900_000 < area < 4_100_000  # about 1.8 km × 2.2 km, measured in the metric CRS


@pytest.mark.parametrize(
    ("geom", "constraint"),
    [
        # A bow-tie: self-intersecting.
        ("SRID=4326;MULTIPOLYGON(((115.78 36.10,115.80 36.12,115.80 36.10,115.78 36.12,115.78 36.10)))", "valid"),
        ("SRID=4326;MULTIPOLYGON EMPTY", "not_empty"),
        ("SRID=4326;MULTIPOLYGON(((181 36,182 36,182 37,181 36)))", "lonlat_range"),
        # Swapped latitude/longitude: 115° is no latitude.
        ("SRID=4326;MULTIPOLYGON(((36.10 115.78,36.12 115.78,36.12 115.80,36.10 115.78)))", "lonlat_range"),
    ],
)
def test_bad_geometry_is_refused(db_session, geom, constraint):
    with pytest.raises(IntegrityError) as err:
        _unit(db_session, geom=geom)
    assert f"geom_{constraint}" in str(err.value)


def test_wrong_srid_is_refused(db_session):
    with pytest.raises(DBAPIError) as err:
        _unit(db_session, geom=SQUARE.replace("SRID=4326", "SRID=4548"))
    assert "SRID" in str(err.value)


def test_wrong_geometry_type_is_refused(db_session):
    with pytest.raises(DBAPIError):
        _unit(db_session, geom="SRID=4326;POINT(115.79 36.11)")


def test_county_code_must_be_six_digits(db_session):
    with pytest.raises(IntegrityError) as err:
        _unit(db_session, county="3715")
    assert "county_code_digits" in str(err.value)


def test_vocabulary_checks(db_session):
    cat = _category(db_session)
    with pytest.raises(IntegrityError) as err:
        _case(db_session, cat, status="lost")
    assert "status_allowed" in str(err.value)


def test_case_point_or_polygon_only(db_session):
    cat = _category(db_session)
    with pytest.raises(IntegrityError) as err:
        _case(db_session, cat, geom="SRID=4326;LINESTRING(115.79 36.11,115.80 36.11)")
    assert "geom_type" in str(err.value)


def test_events_are_append_only(db_session):
    cat = _category(db_session)
    case = _case(db_session, cat)
    db_session.add(m.CaseEvent(county_code="371521", case_id=case.id, seq=1, action="report",
                               to_status="reported", at=NOW))
    db_session.flush()
    for statement in ("UPDATE case_event SET note = 'x'", "DELETE FROM case_event", "TRUNCATE case_event CASCADE"):
        with pytest.raises(DBAPIError) as err, db_session.begin_nested():
            db_session.execute(text(statement))
        assert "append-only" in str(err.value)
    assert db_session.scalar(select(m.CaseEvent.note)) is None


def test_optimistic_locking_rejects_stale_version(db_session):
    cat = _category(db_session)
    case = _case(db_session, cat)
    assert case.version == 1
    case.status = "filed"
    db_session.flush()
    assert case.version == 2
    # Someone else moves the case on behind this session's back.
    db_session.execute(text('UPDATE "case" SET version = version + 1 WHERE id = :i'), {"i": case.id})
    case.status = "cancelled"
    with pytest.raises(StaleDataError):
        db_session.flush()


def test_idempotency_key_is_unique_per_county(db_session):
    cat = _category(db_session)
    _case(db_session, cat, idempotency_key="k-1")
    with pytest.raises(IntegrityError):
        _case(db_session, cat, case_no="T2", idempotency_key="k-1")


def test_jurisdiction_versions_must_not_overlap(db_session):
    agency = m.Agency(county_code="371521", code="ZD01", name="中队", name_en="Squad", kind="squad")
    db_session.add(agency)
    db_session.flush()
    first = m.Jurisdiction(county_code="371521", agency_id=agency.id, valid_from=NOW, geom=SQUARE)
    db_session.add(first)
    db_session.flush()
    with pytest.raises(IntegrityError) as err:
        db_session.add(m.Jurisdiction(county_code="371521", agency_id=agency.id, version=2,
                                      valid_from=datetime(2022, 1, 1, tzinfo=timezone.utc), geom=SQUARE))
        db_session.flush()
    assert "no_overlapping_versions" in str(err.value)
