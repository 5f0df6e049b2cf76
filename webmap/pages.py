"""The map pages: the command centre (``/command``), its photo list, the patrol page (``/patrol``, with its
reads in ``webmap.patrol``), the planning page (``/planning``, with its data in ``webmap.planning``), and the
static files the pages load.

Pages need a signed-in user of the right role. A browser that is not signed in (it asks for HTML) is sent
to ``/login?next=…``; any other client gets 401, like the API. A wrong role gets 403.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, send_from_directory, url_for
from flask_wtf.csrf import generate_csrf
from sqlalchemy import select

from api.auth import current_user, public, require
from api.cases import load_visible
from api.deps import get_session, get_settings
from gis_platform import models as m
from gis_platform import vocab
from gis_platform.errors import PlatformError
from webmap import assets, command, i18n, patrol, planning
from webmap.maps import STATIC_URL, basemap_from, render_map

bp = Blueprint("webmap", __name__, template_folder="templates")
bp.register_blueprint(patrol.bp)  # the patrol page's own reads
bp.register_blueprint(planning.bp)  # the planning page's data: /planning/data/…

STATIC_DIR = assets.HERE / "static"
STATIC_MAX_AGE_S = 3600
ASSETS_MISSING = ("前端资源未构建，请运行 make assets。The front-end files are not built: run `make assets` "
                  "(npm ci --prefix webmap, then python -m webmap.assets build).")


class AssetsMissing(PlatformError):
    """The vendor files are not built: the page cannot load (503, saying what to run)."""

    status = 503
    title = "Front-end files not built"
    type_slug = "assets-missing"


def page_for(*roles: str) -> Callable:
    """Allow a page to signed-in users of these roles; send a browser that is not signed in to the login page."""
    def decorate(view: Callable) -> Callable:
        guarded = require(*roles)(view)

        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if current_user() is None and request.accept_mimetypes.accept_html:
                here = request.full_path if request.query_string else request.path
                return redirect(url_for("login_pages.login_page", next=here))
            return guarded(*args, **kwargs)

        wrapper._roles = guarded._roles  # type: ignore[attr-defined]  # read by the role x endpoint test
        return wrapper

    return decorate


def _language() -> str:
    return i18n.choose_language(request.args.get("lang") or request.cookies.get(i18n.LANG_COOKIE))


def _require_assets() -> None:
    if not assets.is_built():
        raise AssetsMissing(ASSETS_MISSING)


def _render_page(template: str, *, folium_map: Any, page: Any, config: dict[str, Any], basemap: Any) -> str:
    """Render a map page: the Folium map, the page's data and client config, labels in both languages."""
    user = current_user()
    lang = _language()
    messages = i18n.messages()
    return render_template(
        template, map=render_map(folium_map), page=page, config=config, lang=lang,
        messages=messages, t=messages[lang], basemap=basemap, user=user,
        role_labels={"zh": vocab.ROLE_LABELS[user.role], "en": i18n.ROLE_EN[user.role]},
        csrf_token=generate_csrf(), static_url=STATIC_URL)


@bp.get("/command")
@page_for(*command.ROLES)
def command_page() -> str:
    """Show the command centre: the live map, the queue, filters, case details and dispatch."""
    _require_assets()
    settings = get_settings()
    page = command.load_command_page(get_session(), settings.county_code)
    basemap = basemap_from(settings)
    return _render_page("webmap/command.html", folium_map=command.command_map(settings, page.extent, basemap=basemap),
                        page=page, config=page.client_config(), basemap=basemap)


@bp.get("/patrol")
@page_for(*patrol.ROLES)
def patrol_page() -> str:
    """Show the patrol page, phones first: position with grid and squad, the report outbox, the squad's tasks."""
    _require_assets()
    settings = get_settings()
    user = current_user()
    page = patrol.load_patrol_page(get_session(), settings, user)
    basemap = basemap_from(settings)
    return _render_page("webmap/patrol.html", folium_map=patrol.patrol_map(settings, page.extent, basemap=basemap),
                        page=page, config=page.client_config(user), basemap=basemap)


@bp.get("/planning")
@page_for(*planning.ROLES)
def planning_page() -> str:
    """Show the planners' page: heat map, counts per grid cell, hot spots, month slider, charts, exports."""
    _require_assets()
    settings = get_settings()
    page = planning.load_planning_page(get_session(), settings.county_code)
    basemap = basemap_from(settings)
    folium_map = planning.planning_map(settings, page.extent, analytics=page.analytics, basemap=basemap)
    return _render_page("webmap/planning.html", folium_map=folium_map, page=page, config=page.client_config(),
                        basemap=basemap)


@bp.get("/command/cases/<int:case_id>/photos")
@require(*command.ROLES)
def case_photos(case_id: int) -> dict[str, Any]:
    """List a case's photos for the details panel (the images come from ``/api/v1/attachments/{id}``)."""
    session = get_session()
    case = load_visible(session, case_id)
    photos = session.scalars(select(m.Attachment).where(m.Attachment.case_id == case.id)
                             .order_by(m.Attachment.created_at, m.Attachment.id))
    return {"case_id": case.id, "photos": [
        {"id": p.id, "stage": p.stage, "mime_type": p.mime_type, "url": url_for("cases.get_photo", attachment_id=p.id),
         "created_at": p.created_at.isoformat()} for p in photos]}


@bp.get("/static/webmap/<path:filename>")
@public
def static_file(filename: str) -> Response:
    """Serve the pages' scripts, style sheets, fonts and images (the platform's own copies, never a CDN)."""
    response = send_from_directory(STATIC_DIR, filename, max_age=STATIC_MAX_AGE_S)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
