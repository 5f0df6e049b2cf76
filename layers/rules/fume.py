"""Restaurant cooking fume (餐饮油烟, GB 18483-2001): the premises registry and its inspections.

The number of cooking heads gives a premises its size class, and the size class gives the minimum
purifier efficiency (``settings.fume_min_efficiency``, national 60 / 75 / 85 %). An inspection is
measured against the emission limit in force (``settings.fume_limit_mg_m3``, national 2.0 mg/m³),
which is stored on the inspection so that a later change of limit does not rewrite history.
A concentration above the limit opens a penalty case (FS01).

A purifier below the required efficiency, or none at all, is flagged on the registration and on the
inspection but opens no case by itself: the FS02 category is "no purifier installed", a measured
shortfall is a rectification matter rather than that offence, and the inspection row links a single
case, kept for the exceedance penalty. An operator may still report an FS02 case from the flag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gis_platform import models as m
from gis_platform import vocab
from gis_platform.errors import FieldError, NotFound, ValidationError
from gis_platform.geometry import parse_geometry, to_ewkt, validate_geometry
from gis_platform.settings import Settings
from grids.routing import route_point
from layers.cases import Actor, county_bounds, report_case
from layers.rules import STAFF_ROLES, collect, require_aware, require_number, require_role, require_text

#: The category a penalty case for an exceedance is opened under (theme ``fume_sites``).
PENALTY_CATEGORY = "FS01"

#: Size class → (fewest, most) cooking heads; None means no upper bound. GB 18483-2001, table 1.
SIZE_CLASS_HEADS: dict[str, tuple[int, int | None]] = {
    "small": (1, 2),
    "medium": (3, 5),
    "large": (6, None),
}


@dataclass
class SiteRegistration:
    """A registered site, its size class, the efficiency it needs, and whether it meets it."""

    site: m.FumeSite
    size_class: str
    required_efficiency: float
    compliant: bool
    warnings: list[str] = field(default_factory=list)


@dataclass
class InspectionOutcome:
    """What an inspection found: exceedance, the penalty case opened, and the purifier's standing."""

    inspection: m.FumeInspection
    exceeded: bool
    penalty_case: m.Case | None
    required_efficiency: float
    purifier_below_required: bool
    warnings: list[str] = field(default_factory=list)


def size_class(cooking_heads: Any) -> str:
    """Return the size class (small, medium, large) for a number of cooking heads."""
    if isinstance(cooking_heads, bool) or not isinstance(cooking_heads, int) or cooking_heads < 1:
        raise ValidationError(FieldError("cooking_heads", "must be a whole number of cooking heads, at least 1"))
    for name, (low, high) in SIZE_CLASS_HEADS.items():
        if cooking_heads >= low and (high is None or cooking_heads <= high):
            return name
    raise AssertionError("SIZE_CLASS_HEADS leaves a gap")  # pragma: no cover - the table is contiguous


def required_efficiency(size: str, settings: Settings) -> float:
    """Return the minimum purifier efficiency (%) for a size class under the settings in force."""
    if size not in vocab.FUME_SIZE_CLASSES:
        raise ValidationError(FieldError("size_class", f"must be one of {', '.join(vocab.FUME_SIZE_CLASSES)}"))
    return float(settings.fume_min_efficiency[vocab.FUME_SIZE_CLASSES.index(size)])


def _efficiency(value: Any, field_name: str) -> float | None:
    if value is None:
        return None
    return require_number(value, field_name, minimum=0.0, maximum=100.0, unit=" %")


def register_site(session: Session, settings: Settings, *, name: str, location: Any, cooking_heads: int,
                  actor: Actor, purifier_installed: bool = True, purifier_efficiency: float | None = None,
                  address: str | None = None, licence_no: str | None = None) -> SiteRegistration:
    """Register a premises: validate its point, classify it, and say whether its purifier is good enough.

    The site takes its unit, grid cell and squad from routing its point under the penalty category,
    so inspections and penalties go to the same squad.
    """
    require_role(actor.role, STAFF_ROLES, "register fume sites")
    county = settings.county_code
    site_name = require_text(name, "name", max_length=200)
    licence = require_text(licence_no, "licence_no", max_length=64) if licence_no is not None else None
    size = size_class(cooking_heads)
    efficiency = _efficiency(purifier_efficiency, "purifier_efficiency")
    if not isinstance(purifier_installed, bool):
        raise ValidationError(FieldError("purifier_installed", "must be true or false"))
    if not purifier_installed and efficiency is not None:
        raise ValidationError(FieldError("purifier_efficiency", "given for a site without a purifier"))
    point = validate_geometry(parse_geometry(location, field="location"), field="location", types=("Point",),
                              bounds=county_bounds(session, county))
    route = route_point(session, county, point.x, point.y, PENALTY_CATEGORY, metric_srid=settings.metric_srid,
                        near_boundary_m=settings.near_boundary_m)
    needed = required_efficiency(size, settings)
    compliant, warnings = _purifier_standing(purifier_installed, efficiency, needed, size)
    site = m.FumeSite(
        county_code=county, name=site_name, address=address, licence_no=licence, cooking_heads=cooking_heads,
        size_class=size, purifier_installed=purifier_installed, purifier_efficiency=efficiency,
        geom=to_ewkt(point), admin_unit_id=route.admin_unit.id,
        grid_cell_id=route.grid_cell.id if route.grid_cell else None, squad_id=route.assigned.id)
    session.add(site)
    session.flush()
    return SiteRegistration(site, size, needed, compliant, warnings)


def _purifier_standing(installed: bool, efficiency: float | None, needed: float, size: str) -> tuple[bool, list[str]]:
    """Return whether a purifier is shown to meet the requirement, and warnings saying why not."""
    if not installed:
        return False, [f"no purifier installed; a {size} premises needs one of at least {needed:g} %"]
    if efficiency is None:
        return False, [f"purifier efficiency not declared; a {size} premises needs at least {needed:g} %"]
    if efficiency < needed:
        return False, [f"purifier efficiency {efficiency:g} % is below the {needed:g} % required for a {size} premises"]
    return True, []


def record_inspection(session: Session, settings: Settings, site_id: int, *, concentration_mg_m3: Any,
                      inspected_at: datetime, inspector: Actor, purifier_efficiency_measured: Any = None,
                      note: str | None = None) -> InspectionOutcome:
    """Record an inspection against the limit in force; an exceedance opens and links a penalty case."""
    errors: list[FieldError] = []
    concentration = collect(errors, require_number, concentration_mg_m3, "concentration_mg_m3", minimum=0.0,
                             unit=" mg/m³")
    collect(errors, require_aware, inspected_at, "inspected_at")
    efficiency = collect(errors, _efficiency, purifier_efficiency_measured, "purifier_efficiency_measured")
    if errors:
        raise ValidationError(errors)
    require_role(inspector.role, STAFF_ROLES, "record fume inspections")
    site = session.get(m.FumeSite, site_id)
    if site is None:
        raise NotFound(f"fume site {site_id} does not exist")
    limit = float(settings.fume_limit_mg_m3)
    exceeded = concentration > limit
    needed = required_efficiency(site.size_class, settings)
    below, warnings = _inspection_purifier(site, efficiency, needed)
    inspection = m.FumeInspection(
        county_code=site.county_code, site_id=site.id, inspected_at=inspected_at, inspector_id=inspector.user_id,
        concentration_mg_m3=concentration, limit_mg_m3=limit, purifier_efficiency_measured=efficiency,
        exceeded=exceeded, note=note)
    session.add(inspection)
    session.flush()
    penalty = None
    if exceeded:
        penalty = _open_penalty(session, settings, site, inspection, inspector)
        inspection.penalty_case_id = penalty.id
        warnings.insert(0, f"{_mg(concentration)} mg/m³ exceeds the {_mg(limit)} mg/m³ limit; "
                           f"penalty case {penalty.case_no}")
        session.flush()
    return InspectionOutcome(inspection, exceeded, penalty, needed, below, warnings)


def _inspection_purifier(site: m.FumeSite, measured: float | None, needed: float) -> tuple[bool, list[str]]:
    """Return whether the purifier is known to fall short (no purifier, or measured below the minimum)."""
    if not site.purifier_installed:
        return True, [f"no purifier installed; a {site.size_class} premises needs at least {needed:g} %"]
    if measured is not None and measured < needed:
        return True, [f"measured purifier efficiency {measured:g} % is below the {needed:g} % required "
                      f"for a {site.size_class} premises"]
    return False, []


def _mg(value: float) -> str:
    """Return a concentration as written in reports: up to three decimals, at least one (2.0, 2.35)."""
    digits = f"{value:.3f}".rstrip("0")
    return digits + "0" if digits.endswith(".") else digits


def _open_penalty(session: Session, settings: Settings, site: m.FumeSite, inspection: m.FumeInspection,
                  inspector: Actor) -> m.Case:
    """Report the penalty case for an exceedance at the site's point, once per inspection."""
    point = session.scalar(select(func.ST_AsGeoJSON(m.FumeSite.geom)).where(m.FumeSite.id == site.id))
    description = (f"餐饮油烟超标排放：{site.name}" + (f"（{site.address}）" if site.address else "")
                   + f"，实测浓度 {_mg(inspection.concentration_mg_m3)} mg/m³，超过排放限值 "
                     f"{_mg(inspection.limit_mg_m3)} mg/m³（GB 18483-2001）")
    return report_case(session, site.county_code, category=PENALTY_CATEGORY, geometry=point, source="patroller",
                       reporter=inspector, description=description, address=site.address,
                       reported_at=inspection.inspected_at, idempotency_key=f"fume-inspection:{inspection.id}",
                       metric_srid=settings.metric_srid, near_boundary_m=settings.near_boundary_m).case
