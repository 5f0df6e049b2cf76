"""Small factories for tests: a minimal routed county, users, photos."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import shapely
from sqlalchemy.orm import Session

from gis_platform import models as m
from gis_platform.geometry import to_ewkt
from grids.pg_engine import rebuild_lookup


@dataclass
class MiniCounty:
    """Ids of a two-unit county with two squads, a department team and two categories."""

    code: str
    units: dict[str, int]
    agencies: dict[str, int]
    users: dict[str, m.User]
    categories: dict[str, int]


def make_county(session: Session, code: str = "379901") -> MiniCounty:
    """Build a county of two towns (west, east), one squad each, a market team, and users per role."""
    west = shapely.box(115.70, 36.00, 115.75, 36.05)
    east = shapely.box(115.75, 36.00, 115.80, 36.05)
    county = shapely.union(west, east)

    def add(obj):
        session.add(obj)
        session.flush()
        return obj

    def multi(g):
        return to_ewkt(shapely.MultiPolygon([g]))

    since = datetime(2020, 1, 1, tzinfo=UTC)
    c = add(m.AdminUnit(county_code=code, code=code, name="测试县", name_en="Test County", level="county",
                        geom=multi(county)))
    units = {name: add(m.AdminUnit(county_code=code, code=f"{code}{n}", name=f"{name}镇", name_en=name,
                                   level="town", parent_id=c.id, grid_cell_size_m=1000.0, geom=multi(g))).id
             for name, g, n in (("west", west, "101"), ("east", east, "102"))}
    a: dict[str, int] = {}
    a["bureau"] = add(m.Agency(county_code=code, code="B", name="执法局", name_en="Bureau", kind="bureau")).id
    a["brigade"] = add(m.Agency(county_code=code, code="BR", name="大队", name_en="Brigade", kind="brigade",
                                parent_id=a["bureau"])).id
    for name in ("west", "east"):
        a[f"squad_{name}"] = add(m.Agency(county_code=code, code=f"SQ-{name}", name=f"{name}中队", name_en=name,
                                          kind="squad", parent_id=a["brigade"])).id
        a[f"office_{name}"] = add(m.Agency(county_code=code, code=f"OF-{name}", name=f"{name}镇执法办",
                                           name_en=name, kind="township_office", admin_unit_id=units[name])).id
    a["dept"] = add(m.Agency(county_code=code, code="SCJ", name="市场监管局", name_en="SAMR", kind="department")).id
    a["team"] = add(m.Agency(county_code=code, code="SCJG", name="市场监管执法大队", name_en="Team",
                             kind="dept_team", parent_id=a["dept"])).id
    for key, g in (("squad_west", west), ("squad_east", east), ("team", county), ("bureau", county),
                   ("office_west", west), ("office_east", east)):
        add(m.Jurisdiction(county_code=code, agency_id=a[key], valid_from=since, geom=multi(g)))
    for name, g in (("west", west), ("east", east)):
        add(m.GridCell(county_code=code, code=f"{code}{'101' if name == 'west' else '102'}00101",
                       admin_unit_id=units[name], squad_id=a[f"squad_{name}"], community="001",
                       area_m2=1.0e7, valid_from=since, geom=multi(g)))
    cats: dict[str, int] = {}
    for cat_code, holder, agency in (("TD02", "bureau", "bureau"), ("MS03", "department", "team")):
        power = add(m.Power(county_code=code, code=f"P-{cat_code}", name="p", domain="d", power_type="penalty",
                            exercised_by=holder, agency_id=a[agency]))
        cat = add(m.Category(county_code=code, code=cat_code, name=cat_code, name_en=cat_code,
                             event_class="街面秩序", theme="ten_disorders" if holder == "bureau" else
                             "market_supervision", power_id=power.id))
        for urgency, hours in (("normal", "16"), ("urgent", "8"), ("emergency", "2")):
            add(m.TimeLimit(county_code=code, category_id=cat.id, urgency=urgency, working_hours=Decimal(hours)))
        cats[cat_code] = cat.id
    users = {}
    for username, role, agency in (("sup1", "supervisor", "bureau"), ("sup2", "supervisor", "bureau"),
                                   ("op", "operator", "bureau"), ("pw", "patroller", "squad_west"),
                                   ("pe", "patroller", "squad_east"), ("li", "liaison", "team"),
                                   ("pl", "planner", "bureau"), ("ad", "admin", "bureau")):
        users[username] = add(m.User(county_code=code, username=username, display_name=username,
                                     password_hash="x", role=role, agency_id=a[agency]))
    rebuild_lookup(session, code)
    return MiniCounty(code, units, a, users, cats)


def add_photo(session: Session, case: m.Case, stage: str = "after") -> m.Attachment:
    """Attach a (pretend) photo row to a case."""
    photo = m.Attachment(county_code=case.county_code, case_id=case.id, stage=stage,
                         stored_name=secrets.token_hex(16) + ".jpg", original_name="p.jpg", mime_type="image/jpeg",
                         size_bytes=1234, sha256=hashlib.sha256(b"p").hexdigest())
    session.add(photo)
    session.flush()
    return photo


def add_coordination_parties(session: Session, county: MiniCounty) -> MiniCounty:
    """Add township-office liaisons, a department-level liaison and an unrelated department with its own.

    Users: ``ow`` / ``oe`` (west / east township offices), ``ld`` (the market department itself, parent of
    the team whose liaison is ``li``), ``lnr`` (the natural-resources department, which is sent nothing).
    """
    code = county.code
    nr = m.Agency(county_code=code, code="ZRZY", name="自然资源局", name_en="Natural Resources", kind="department")
    session.add(nr)
    session.flush()
    county.agencies["dept_nr"] = nr.id
    for username, agency in (("ow", "office_west"), ("oe", "office_east"), ("ld", "dept"), ("lnr", "dept_nr")):
        user = m.User(county_code=code, username=username, display_name=username, password_hash="x",
                      role="liaison", agency_id=county.agencies[agency])
        session.add(user)
        session.flush()
        county.users[username] = user
    return county


def add_categories(session: Session, county: MiniCounty,
                   codes: tuple[str, ...] = ("IS01", "FS01", "FS02", "IO01", "PR01")) -> MiniCounty:
    """Add categories of the default dictionary (theme, limits, duplicate window) to a mini county."""
    from gis_platform.catalogue import DEFAULT_CATEGORIES

    specs = {c.code: c for c in DEFAULT_CATEGORIES}
    for code in codes:
        spec = specs[code]
        agency = county.agencies["bureau" if spec.holder == "bureau" else "team"]
        power = m.Power(county_code=county.code, code=f"P-{code}", name="p", domain=spec.power_domain,
                        power_type="penalty", exercised_by=spec.holder, agency_id=agency)
        session.add(power)
        session.flush()
        cat = m.Category(county_code=county.code, code=code, name=spec.name, name_en=spec.name_en,
                         event_class=spec.event_class, theme=spec.theme, power_id=power.id,
                         geometry_kind=spec.geometry_kind, dup_radius_m=spec.dup_radius_m,
                         dup_window_h=spec.dup_window_h)
        session.add(cat)
        session.flush()
        for urgency, hours in zip(("normal", "urgent", "emergency"), spec.limits):
            session.add(m.TimeLimit(county_code=county.code, category_id=cat.id, urgency=urgency,
                                    working_hours=Decimal(str(hours))))
        county.categories[code] = cat.id
    session.flush()
    return county
