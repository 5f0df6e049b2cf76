"""The weekly township meeting briefing over HTTP: ``GET /api/v1/analytics/briefing``.

The view parses the query, builds the briefing with ``layers.briefing`` and returns it as a printable,
self-contained HTML page or as CSV (UTF-8 with a byte-order mark, for Excel). It is county data, so it
is for planners, supervisors, operators and admins, like the statistics.
"""

from __future__ import annotations

import secrets
from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import String
from apiflask.validators import Length, OneOf, Regexp
from flask import Response
from marshmallow import ValidationError as SchemaError
from marshmallow import validates_schema

from api.auth import SECURITY, require
from api.deps import get_calendar, get_session, get_settings
from layers.briefing import SECTION_KEYS, build_briefing, file_stem, render_csv, render_html

bp = APIBlueprint("briefing", __name__, url_prefix="/api/v1/analytics", tag="分析 Analytics")

BRIEFING_ROLES = ("admin", "supervisor", "operator", "planner")
FORMATS = ("html", "csv")
# The page has no script; its one style sheet carries a nonce and its map is a data: image: nothing else loads.
PAGE_CSP = "default-src 'none'; style-src 'nonce-{nonce}'; img-src data:; base-uri 'none'; form-action 'none'"


class BriefingQuery(Schema):
    township = String(required=True, validate=[Length(1, 12), Regexp(r"^\d+$", error="must be a numeric unit code")],
                      metadata={"description": "township (subdistrict, town or zone) code", "example": "371521001"})
    week = String(required=True, validate=Length(1, 10), metadata={
        "description": "ISO week YYYY-Www, Monday to Sunday in Asia/Shanghai", "example": "2021-W20"})
    format = String(load_default="html", validate=OneOf(FORMATS), metadata={
        "description": "html: a printable page (A4); csv: UTF-8 with BOM, one section per table"})
    section = String(load_default=None, validate=OneOf(SECTION_KEYS), metadata={
        "description": "csv only: return this table alone (header and rows): " + ", ".join(SECTION_KEYS)})

    @validates_schema
    def _section_is_for_csv(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("section") is not None and data.get("format") != "csv":
            raise SchemaError("a section can be asked for only with format=csv", field_name="section")


_CONTENT = {"text/html": {"schema": {"type": "string"}}, "text/csv": {"schema": {"type": "string"}}}


@bp.get("/briefing")
@require(*BRIEFING_ROLES)
@bp.input(BriefingQuery, location="query", arg_name="query")
@bp.doc(summary="Weekly township meeting briefing (周例会简报) as printable HTML or CSV", security=SECURITY,
        description="For one township and ISO week: the week's cases by category against the week before and "
                    "the same week a year earlier, the week's indicators, cases open past their deadline at the "
                    "end of the week, coordination requests awaiting an answer, and the township's top Gi* "
                    "hotspots of the last 8 weeks with a map.",
        responses={200: {"description": "the briefing", "content": _CONTENT},
                   400: "unknown township, malformed or future week, bad format or section"})
def briefing(query: dict[str, Any]) -> Response:
    settings = get_settings()
    fmt, section = query["format"], query["section"]
    result = build_briefing(get_session(), settings.county_code, query["township"], query["week"],
                            metric_crs=settings.metric_crs, calendar=get_calendar(), draw_map=fmt == "html")
    if fmt == "csv":
        name = file_stem(result) + (f"-{section}" if section else "") + ".csv"
        response = Response(render_csv(result, section), mimetype="text/csv")
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    else:
        nonce = secrets.token_urlsafe(18)
        response = Response(render_html(result, nonce=nonce), mimetype="text/html")
        response.headers["Content-Security-Policy"] = PAGE_CSP.format(nonce=nonce)
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
