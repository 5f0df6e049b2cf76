"""Server-rendered pages: the landing page for the county's platform."""

from __future__ import annotations

from flask import Blueprint, render_template

from api.auth import public
from api.deps import get_session, get_settings
from api.health import county_summary
from gis_platform import vocab

bp = Blueprint("pages", __name__)


@bp.get("/")
@public
def index() -> str:
    """Show the county, its row counts and the API entry points."""
    summary = county_summary(get_session(), get_settings().county_code)
    return render_template(
        "index.html",
        summary=summary,
        level_labels=vocab.ADMIN_LEVEL_LABELS,
        kind_labels=vocab.AGENCY_KIND_LABELS,
        theme_labels=vocab.THEME_LABELS,
        holder_labels={holder: vocab.AGENCY_KIND_LABELS[holder] for holder in vocab.POWER_HOLDERS},
    )
