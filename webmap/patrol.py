"""The patrol page (``/patrol``) for patrollers on a phone: where am I, report an issue, handle my squad's tasks.

The page is a Folium map (squad areas, grid cells at high zoom, Leaflet.Locate for the phone's position,
the live event stream) with ``patrol.js`` doing the rest in the browser:

- the located point is looked up with ``GET /api/v1/route`` for its grid cell and squad;
- a report is kept in the browser's IndexedDB outbox before it is sent, and sent with one idempotency key
  for its whole life, so a retry after a lost answer returns the first case instead of making a second;
- tasks are the cases dispatched to the patroller's squad (``GET /api/v1/cases``, which the server
  restricts to the squad), taken through ``accept`` and ``feedback`` (with an after-photo) by the case API.

This module also serves the one read the case API lacks for a patroller: a case's photo list
(``/patrol/cases/<id>/photos``), used for the task details and to check whether a photo whose upload
answer was lost has arrived before sending it again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import folium
from flask import Blueprint, url_for
from folium.plugins import LocateControl
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth import current_user, require
from api.cases import load_visible
from api.deps import get_session
from gis_platform import models as m
from gis_platform import vocab
from gis_platform.catalogue import EVENT_CLASSES
from gis_platform.settings import Settings
from layers.registry import get_layer
from webmap.command import GRID_FIELDS, GRID_MIN_ZOOM, JURISDICTION_FIELDS, Option, county_extent
from webmap.elements import ApiGeoJsonLayer, LiveEvents
from webmap.maps import Basemap, basemap_from, county_map

ROLES = ("patroller", "admin")
# A patroller's squad acts on a case once it is dispatched: accept it, then send feedback with an after-photo
# (gis_platform.workflow). Returned, handled and closed cases are the command centre's again.
TASK_STATUSES = ("dispatched", "accepted")
TASK_ACTIONS = ("accept", "feedback", "return")
TASK_LIMIT = 200
LOCATE_ZOOM = 16
MAX_DESCRIPTION = 4000  # api.cases.CaseIn
MAX_ADDRESS = 500
MAX_NOTE = 2000
# Outbox retries: exponential backoff from RETRY_BASE_S up to RETRY_MAX_S (a server's Retry-After wins);
# requests slower than these are abandoned and retried with the same idempotency key.
RETRY_BASE_S = 2
RETRY_MAX_S = 300
REPORT_TIMEOUT_S = 20
PHOTO_TIMEOUT_S = 90
SENT_KEPT = 20  # sent reports listed in the outbox, newest first

bp = Blueprint("patrol", __name__)


@dataclass(frozen=True)
class CategoryGroup:
    """Categories of one event class, for the grouped picker."""

    zh: str
    en: str
    options: list[Option] = field(default_factory=list)


@dataclass(frozen=True)
class PatrolPage:
    """What the patrol page is built from (plain values, so the template escapes them)."""

    extent: tuple[float, float, float, float] | None
    groups: list[CategoryGroup]
    unit: Option | None
    locate_category: str | None
    max_upload_mb: float

    def client_config(self, user: m.User) -> dict[str, Any]:
        """Return the page's settings for patrol.js."""
        return {
            "user": {"id": user.id, "username": user.username},
            "unit": asdict(self.unit) if self.unit else None,
            "categoryGroups": [asdict(g) for g in self.groups],
            "locateCategory": self.locate_category,
            "locateZoom": LOCATE_ZOOM,
            "urgencies": list(vocab.URGENCIES),
            "taskStatuses": list(TASK_STATUSES), "taskActions": list(TASK_ACTIONS), "taskLimit": TASK_LIMIT,
            "maxDescription": MAX_DESCRIPTION, "maxAddress": MAX_ADDRESS, "maxNote": MAX_NOTE,
            "maxUploadBytes": int(self.max_upload_mb * 1024 * 1024),
            "retryBaseMs": RETRY_BASE_S * 1000, "retryMaxMs": RETRY_MAX_S * 1000,
            "reportTimeoutMs": REPORT_TIMEOUT_S * 1000, "photoTimeoutMs": PHOTO_TIMEOUT_S * 1000,
            "sentKept": SENT_KEPT,
        }


def category_groups(session: Session, county_code: str) -> list[CategoryGroup]:
    """Return the county's active categories grouped by event class, groups and categories by code."""
    rows = session.execute(select(m.Category.code, m.Category.name, m.Category.name_en, m.Category.event_class)
                           .where(m.Category.county_code == county_code, m.Category.active)
                           .order_by(m.Category.code))
    groups: dict[str, CategoryGroup] = {}
    for code, name, name_en, event_class in rows:
        group = groups.setdefault(event_class, CategoryGroup(event_class, EVENT_CLASSES.get(event_class, event_class)))
        group.options.append(Option(code, f"{name}（{code}）", f"{name_en} ({code})"))
    return sorted(groups.values(), key=lambda g: g.options[0].value)


def locate_category(session: Session, county_code: str) -> str | None:
    """Return a category the bureau holds: routing a point with it names the squad whose area covers the point."""
    return session.scalar(select(m.Category.code).join(m.Power, m.Power.id == m.Category.power_id)
                          .where(m.Category.county_code == county_code, m.Category.active,
                                 m.Power.exercised_by == "bureau")
                          .order_by(m.Category.code).limit(1))


def user_unit(session: Session, user: m.User) -> Option | None:
    """Return the user's own unit (a patroller's squad)."""
    agency = session.get(m.Agency, user.agency_id) if user.agency_id else None
    if agency is None:
        return None
    return Option(agency.code, agency.name, agency.name_en or agency.name, id=agency.id, kind=agency.kind)


def load_patrol_page(session: Session, settings: Settings, user: m.User) -> PatrolPage:
    """Read what the patrol page needs from the database."""
    return PatrolPage(extent=county_extent(session, settings.county_code),
                      groups=category_groups(session, settings.county_code), unit=user_unit(session, user),
                      locate_category=locate_category(session, settings.county_code),
                      max_upload_mb=settings.max_upload_mb)


def patrol_map(settings: Settings, extent: tuple[float, float, float, float] | None, *,
               basemap: Basemap | None = None) -> folium.Map:
    """Return the patrol map: squad areas and grid cells, the phone's position, the live event stream."""
    fmap = county_map(settings, extent, basemap=basemap or basemap_from(settings))
    squads, grids = get_layer("jurisdictions"), get_layer("grid_cells")
    ApiGeoJsonLayer(squads, pane="areas", by_view=False, label_property="agency_name",
                    title_property="agency_name", fields=JURISDICTION_FIELDS).add_to(fmap)
    ApiGeoJsonLayer(grids, pane="grids", min_zoom=GRID_MIN_ZOOM, title_property="code",
                    fields=GRID_FIELDS).add_to(fmap)
    LiveEvents().add_to(fmap)
    # Follow the phone until the patroller pans or zooms; no popup (the page says where they are).
    LocateControl(auto_start=True, position="topleft", setView="untilPanOrZoom", initialZoomLevel=LOCATE_ZOOM,
                  flyTo=False, showPopup=False, drawCircle=True, cacheLocation=True,
                  strings={"title": "定位我的位置 · Show my position"},
                  locateOptions={"enableHighAccuracy": True, "maxZoom": LOCATE_ZOOM}).add_to(fmap)
    return fmap


@bp.get("/patrol/cases/<int:case_id>/photos")
@require(*ROLES)
def case_photos(case_id: int) -> dict[str, Any]:
    """List the photos of a case the user may see, with digests and whether they sent them (images: case API)."""
    session = get_session()
    case = load_visible(session, case_id)
    me = current_user().id
    photos = session.scalars(select(m.Attachment).where(m.Attachment.case_id == case.id)
                             .order_by(m.Attachment.created_at, m.Attachment.id))
    return {"case_id": case.id, "photos": [
        {"id": p.id, "stage": p.stage, "mime_type": p.mime_type, "sha256": p.sha256, "size_bytes": p.size_bytes,
         "mine": p.uploaded_by == me, "url": url_for("cases.get_photo", attachment_id=p.id),
         "created_at": p.created_at.isoformat()} for p in photos]}
