"""Cases over HTTP: report, list, read, move through the closed loop, history, photos, routing.

Views parse the request, call the case service (``layers.cases``), commit, and serialise. Who may see
what is decided here, on the server: patrollers see their own squad's cases, liaisons their own
department's, the command centre all of the county's.
"""

from __future__ import annotations

import hashlib
import io
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import shapely
import shapely.geometry
from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, DateTime, Dict, File, Float, Integer, List, Nested, Raw, String
from apiflask.validators import Length, OneOf, Range
from flask import Response, request, send_file
from geoalchemy2.shape import to_shape
from sqlalchemy import text

from api.auth import SECURITY, STAFF, current_actor, current_user, require
from api.deps import get_calendar, get_session, get_settings
from gis_platform import models as m
from gis_platform import vocab
from gis_platform.errors import Conflict, FieldError, Forbidden, NotFound, PlatformError, ValidationError
from gis_platform.photos import clean_photo, location_geojson
from gis_platform.workflow import ACTIONS, ACTIONS_BY_NAME
from grids.routing import Catalogue, cached_catalogue, route_point
from grids.versions import reroute_case
from layers.cases import Actor, act, allowed_for, clock, limit_hours, report_case

bp = APIBlueprint("cases", __name__, url_prefix="/api/v1", tag="案件 Cases")

REPORTERS = ("patroller", "operator", "supervisor", "admin")
ACTORS = ("admin", "supervisor", "operator", "patroller", "liaison")  # planners only read
IMAGE_TYPES = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}


class PreconditionRequired(PlatformError):
    status = 428
    title = "Precondition required"
    type_slug = "precondition-required"


# -- schemas -------------------------------------------------------------------------------------------
class GeometryIn(Schema):
    type = String(required=True, validate=OneOf(["Point", "Polygon", "MultiPolygon"]))
    coordinates = Raw(required=True)


class CaseIn(Schema):
    category = String(required=True, validate=Length(1, 32), metadata={"example": "TD02"})
    geometry = Nested(GeometryIn, required=True,
                      metadata={"description": "GeoJSON geometry, [longitude, latitude] order"})
    coord_system = String(load_default="wgs84", validate=OneOf(vocab.COORD_SYSTEMS))
    source = String(load_default=None, validate=OneOf(vocab.CASE_SOURCES), allow_none=True)
    urgency = String(load_default="normal", validate=OneOf(vocab.URGENCIES))
    description = String(load_default="", validate=Length(0, 4000))
    address = String(load_default=None, validate=Length(0, 500), allow_none=True)
    reporter_name = String(load_default=None, validate=Length(0, 100), allow_none=True)
    reporter_contact = String(load_default=None, validate=Length(0, 100), allow_none=True)
    reported_at = DateTime(load_default=None, allow_none=True, format="iso")


class TransitionIn(Schema):
    action = String(required=True, validate=OneOf([a.name for a in ACTIONS if a.manual and a.name != "report"]))
    version = Integer(strict=True, load_default=None, allow_none=True, validate=Range(1, 2**31 - 1))
    note = String(load_default=None, allow_none=True, validate=Length(0, 2000))
    target_agency_id = Integer(strict=True, load_default=None, allow_none=True, validate=Range(1, 2**31 - 1))
    hours = Float(load_default=None, allow_none=True, validate=Range(0, 400, min_inclusive=False))
    score = Integer(strict=True, load_default=None, allow_none=True, validate=Range(1, 5))
    merge_into = Integer(strict=True, load_default=None, allow_none=True, validate=Range(1, 2**62))
    attachment_ids = List(Integer(strict=True, validate=Range(1, 2**62)), load_default=None, allow_none=True,
                          validate=Length(0, 20))
    category = String(load_default=None, allow_none=True, validate=Length(1, 32))
    lon = Float(load_default=None, allow_none=True)
    lat = Float(load_default=None, allow_none=True)


class RouteQuery(Schema):
    lon = Float(required=True)
    lat = Float(required=True)
    category = String(required=True, validate=Length(1, 32))
    at = DateTime(load_default=None, allow_none=True, format="iso")


class PhotoIn(Schema):
    file = File(required=True)
    stage = String(load_default="before", validate=OneOf(["before", "after", "other"]))


class AgencyOut(Schema):
    id = Integer()
    code = String()
    name = String()
    kind = String()


class ClockOut(Schema):
    limit_hours = Float(allow_none=True)
    due_at = String(allow_none=True)
    elapsed_hours = Float(allow_none=True)
    remaining_hours = Float(allow_none=True)
    overdue = Boolean()
    overrun_multiple = Float()
    calendar_note = String(allow_none=True)


class CaseOut(Schema):
    id = Integer()
    case_no = String()
    version = Integer()
    status = String()
    status_zh = String()
    category = String()
    category_name = String()
    theme = String()
    source = String()
    urgency = String()
    description = String()
    address = String(allow_none=True)
    geometry = Dict()
    lon = Float()
    lat = Float()
    coord_system = String()
    reported_at = String()
    filed_at = String(allow_none=True)
    dispatched_at = String(allow_none=True)
    handled_at = String(allow_none=True)
    closed_at = String(allow_none=True)
    admin_unit = String(allow_none=True)
    grid_cell = String(allow_none=True)
    owner = Nested(AgencyOut, allow_none=True)
    assigned = Nested(AgencyOut, allow_none=True)
    near_boundary = Boolean()
    fallback_township = Boolean()
    routing = Dict(allow_none=True)
    clock = Nested(ClockOut)
    allowed_actions = List(String())
    merged_into = String(allow_none=True)
    duplicates = List(Dict())
    replayed = Boolean()


class EventOut(Schema):
    seq = Integer()
    action = String()
    action_zh = String()
    from_status = String(allow_none=True)
    to_status = String()
    actor_id = Integer(allow_none=True)
    actor_role = String(allow_none=True)
    at = String()
    note = String(allow_none=True)
    geometry = Dict(allow_none=True)
    data = Dict(allow_none=True)


class EventsOut(Schema):
    case_no = String()
    events = List(Nested(EventOut))


class AttachmentOut(Schema):
    id = Integer()
    case_id = Integer()
    stage = String()
    mime_type = String()
    size_bytes = Integer()
    sha256 = String()
    url = String()
    location = Dict(allow_none=True, metadata={
        "description": "where the photo was taken (GeoJSON Point, WGS-84), from its GPS tags; its other "
                       "metadata is removed before it is stored"})


class RouteOut(Schema):
    lon = Float()
    lat = Float()
    category = String()
    admin_unit = Dict()
    grid_cell = Dict(allow_none=True)
    owner = Nested(AgencyOut)
    holder = String()
    assigned = Nested(AgencyOut)
    near_boundary = Boolean()
    boundary_distance_m = Float(allow_none=True)
    fallback_township = Boolean()
    trace = List(String())
    engine = String()


# -- helpers --------------------------------------------------------------------------------------------
def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def _agency(db, agency_id: int | None, catalogue: Catalogue) -> dict[str, Any] | None:
    if agency_id is None:
        return None
    a = catalogue.agencies.get(agency_id) or db.get(m.Agency, agency_id)
    return {"id": a.id, "code": a.code, "name": a.name, "kind": a.kind}


def _shape(value: Any) -> shapely.Geometry | None:
    """Return a case geometry as Shapely, whether loaded (WKB) or just written (EWKT)."""
    if value is None:
        return None
    if isinstance(value, str):
        return shapely.from_wkt(value.split(";", 1)[-1])
    return to_shape(value)


def _rounded(coords: Any, digits: int = 7) -> Any:
    if isinstance(coords, (int, float)):
        return round(coords, digits)
    return [_rounded(c, digits) for c in coords]


def _geojson(geom: shapely.Geometry) -> dict[str, Any]:
    """Return RFC 7946 geometry with coordinates to 1e-7° (about a centimetre), as the API always gave."""
    mapping = shapely.geometry.mapping(geom)
    if "geometries" in mapping:
        return {"type": mapping["type"], "geometries": [_geojson(g) for g in geom.geoms]}
    return {"type": mapping["type"], "coordinates": _rounded(mapping["coordinates"])}


def visible(case: m.Case, actor: Actor) -> bool:
    """Return whether this actor may see this case."""
    if actor.role in ("patroller", "liaison"):
        return case.assigned_agency_id == actor.agency_id or (
            actor.role == "patroller" and actor.user_id is not None and case.reporter_id == actor.user_id)
    return True


def load_visible(db, case_id: int) -> m.Case:
    """Return the case if it exists in this county and this user may see it, else 404."""
    case = db.get(m.Case, case_id)
    actor = current_actor()
    if case is None or case.county_code != get_settings().county_code or not visible(case, actor):
        raise NotFound(f"case {case_id} does not exist")
    return case


def case_json(db, case: m.Case, *, duplicates: list | None = None, replayed: bool = False,
              catalogue: Catalogue | None = None) -> dict[str, Any]:
    """Serialise a case for the API (built at the edge, not on the model).

    Names and codes come from the routing catalogue the process keeps (checked current with one
    small read, or handed over by the report that just used it), not from one query each.
    """
    catalogue = catalogue or cached_catalogue(db, case.county_code)
    rule = catalogue.categories_by_id.get(case.category_id)
    if rule is not None:
        category_code, category_name, theme = rule.code, rule.name, rule.theme
        limit = catalogue.time_limits.get((case.category_id, case.urgency))
    else:  # a category retired since: read it
        cat = db.get(m.Category, case.category_id)
        category_code, category_name, theme = cat.code, cat.name, cat.theme
        limit = limit_hours(db, case)
    geom = _shape(case.geom)
    location = _shape(case.location)
    unit = catalogue.units.get(case.admin_unit_id) if case.admin_unit_id else None
    if unit is None and case.admin_unit_id:
        unit = db.get(m.AdminUnit, case.admin_unit_id)
    cell_code = None
    if case.grid_cell_id:
        cell_code = catalogue.cell_codes.get(case.grid_cell_id) or db.get(m.GridCell, case.grid_cell_id).code
    c = clock(case, limit, calendar=get_calendar())
    merged = db.get(m.Case, case.merged_into_id).case_no if case.merged_into_id else None
    return {
        "id": case.id, "case_no": case.case_no, "version": case.version, "status": case.status,
        "status_zh": vocab.CASE_STATUS_LABELS[case.status], "category": category_code,
        "category_name": category_name, "theme": theme, "source": case.source, "urgency": case.urgency,
        "description": case.description, "address": case.address,
        "geometry": _geojson(geom) if geom is not None else None,
        "lon": location.x if location is not None else None, "lat": location.y if location is not None else None,
        "coord_system": case.coord_system,
        "reported_at": _iso(case.reported_at), "filed_at": _iso(case.filed_at),
        "dispatched_at": _iso(case.dispatched_at), "handled_at": _iso(case.handled_at),
        "closed_at": _iso(case.closed_at), "admin_unit": unit.code if unit else None,
        "grid_cell": cell_code, "owner": _agency(db, case.owner_agency_id, catalogue),
        "assigned": _agency(db, case.assigned_agency_id, catalogue), "near_boundary": case.near_boundary,
        "fallback_township": case.fallback_township, "routing": case.routing,
        "clock": {"limit_hours": c.limit_hours, "due_at": _iso(c.due_at), "elapsed_hours": c.elapsed_hours,
                  "remaining_hours": c.remaining_hours, "overdue": c.overdue, "overrun_multiple": c.overrun_multiple,
                  "calendar_note": c.calendar_note},
        "allowed_actions": allowed_for(case, current_actor()), "merged_into": merged,
        "duplicates": [{"case_id": d.case_id, "case_no": d.case_no, "distance_m": d.distance_m,
                        "reported_at": _iso(d.reported_at), "status": d.status} for d in duplicates or []],
        "replayed": replayed,
    }


def _etag(case: m.Case) -> str:
    return f'W/"{case.version}"'


def _expected_version(body: dict) -> int:
    header = request.headers.get("If-Match")
    if header:
        value = header.strip().removeprefix("W/").strip('"')
        if not value.isdigit():
            raise ValidationError(FieldError("If-Match", f"expected the case version as an ETag, got {header!r}"))
        if body.get("version") is not None and int(value) != body["version"]:
            raise ValidationError(FieldError("version", "disagrees with If-Match"))
        return int(value)
    if body.get("version") is None:
        raise PreconditionRequired("send the case version (If-Match header or 'version') so no change is lost")
    return int(body["version"])


# -- views ------------------------------------------------------------------------------------------------
@bp.post("/cases")
@require(*REPORTERS)
@bp.input(CaseIn, arg_name="body")
@bp.output(CaseOut, status_code=201)
@bp.doc(summary="Report a case (上报)", security=SECURITY,
        description="Send an `Idempotency-Key` header: a retried submission returns the original case (200).",
        responses={200: "the original case of a retried submission", 400: "invalid input",
                   409: "conflict"})
def create_case(body: dict) -> Response:
    db = get_session()
    settings = get_settings()
    actor = current_actor()
    key = request.headers.get("Idempotency-Key")
    if key is not None:
        key = key.strip()
        if not 1 <= len(key) <= 128 or not key.isprintable():
            raise ValidationError(FieldError("Idempotency-Key", "must be 1–128 printable characters"))
    source = body["source"] or ("patroller" if actor.role == "patroller" else "citizen")
    if actor.role == "patroller" and source != "patroller":
        raise ValidationError(FieldError("source", "patrollers report as 'patroller'"))
    outcome = report_case(
        db, settings.county_code, category=body["category"], geometry=dict(body["geometry"]), source=source,
        reporter=actor, urgency=body["urgency"], description=body["description"], address=body["address"],
        coord_system=body["coord_system"], reporter_name=body["reporter_name"],
        reporter_contact=body["reporter_contact"], idempotency_key=key, reported_at=body["reported_at"],
        metric_srid=settings.metric_srid, near_boundary_m=settings.near_boundary_m)
    if not outcome.created and not visible(outcome.case, actor):
        raise Conflict("this idempotency key was already used by another unit's report")
    payload = case_json(db, outcome.case, duplicates=outcome.duplicates, replayed=not outcome.created,
                        catalogue=outcome.catalogue)
    db.commit()
    status = 201 if outcome.created else 200
    headers = {"Location": f"/api/v1/cases/{outcome.case.id}", "ETag": _etag(outcome.case)}
    if not outcome.created:
        headers["Idempotent-Replayed"] = "true"
    return payload, status, headers


@bp.get("/cases/<int:case_id>")
@require(*STAFF)
@bp.output(CaseOut)
@bp.doc(summary="One case, with its clock and the actions you may take", security=SECURITY)
def get_case(case_id: int):
    db = get_session()
    case = load_visible(db, case_id)
    return case_json(db, case), 200, {"ETag": _etag(case)}


@bp.post("/cases/<int:case_id>/transitions")
@require(*ACTORS)
@bp.input(TransitionIn, arg_name="body")
@bp.output(CaseOut)
@bp.doc(summary="Take a step of the closed loop (立案、派遣、处置、反馈、结案 …)", security=SECURITY,
        description="Guarded by the case version: send `If-Match: W/\"<version>\"` or `version` in the body.",
        responses={403: "role or unit not allowed", 409: "illegal transition or stale version",
                   428: "version missing"})
def transition_case(case_id: int, body: dict):
    db = get_session()
    case = load_visible(db, case_id)
    version = _expected_version(body)
    actor = current_actor()
    if body["action"] == "reroute":
        if actor.role not in ACTIONS_BY_NAME["reroute"].roles:
            raise Forbidden(f"the {actor.role} role may not re-route cases")
        reroute_case(db, case.id, reason=body["note"] or "", expected_version=version, category=body["category"],
                     lon=body["lon"], lat=body["lat"], actor_id=actor.user_id, actor_role=actor.role,
                     metric_srid=get_settings().metric_srid)
    else:
        act(db, case.id, body["action"], actor, expected_version=version, note=body["note"],
            target_agency_id=body["target_agency_id"], hours=body["hours"], score=body["score"],
            merge_into=body["merge_into"], attachment_ids=body["attachment_ids"], category=body["category"],
            calendar=get_calendar())
    db.refresh(case)
    payload = case_json(db, case)
    db.commit()
    return payload, 200, {"ETag": _etag(case)}


@bp.get("/cases/<int:case_id>/events")
@require(*STAFF)
@bp.output(EventsOut)
@bp.doc(summary="The case's history (append-only)", security=SECURITY)
def case_events(case_id: int) -> dict:
    db = get_session()
    case = load_visible(db, case_id)
    rows = db.execute(text(
        "SELECT seq, action, from_status, to_status, actor_id, actor_role, at, note, "
        "ST_AsGeoJSON(geom, 7)::json AS geometry, data FROM case_event WHERE case_id = :i ORDER BY seq"),
        {"i": case.id}).mappings().all()
    return {"case_no": case.case_no, "events": [
        {**dict(r), "at": _iso(r["at"]),
         "action_zh": ACTIONS_BY_NAME[r["action"]].label if r["action"] in ACTIONS_BY_NAME else r["action"]}
        for r in rows]}


def sniff_image(head: bytes) -> str | None:
    """Return the image type from the first bytes of a file, whatever its name says."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def _verify_image(data: bytes, mime: str) -> None:
    """Decode the image header and refuse decompression bombs and truncated files."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > 60_000_000:
                raise ValidationError(FieldError("file", f"{img.width}×{img.height} pixels is too large"))
            img.verify()
    except ValidationError:
        raise
    except Exception as exc:  # Pillow raises many types for corrupt input; all mean "not an image"
        raise ValidationError(FieldError("file", f"not a readable {mime} image ({type(exc).__name__})")) from None


@bp.post("/cases/<int:case_id>/attachments")
@require(*ACTORS)
@bp.input(PhotoIn, location="form_and_files", arg_name="body")
@bp.output(AttachmentOut, status_code=201)
@bp.doc(summary="Attach a photo (JPEG, PNG or WebP; checked from its content)", security=SECURITY,
        responses={413: "too large", 415: "not a JPEG, PNG or WebP image"})
def upload_photo(case_id: int, body: dict):
    db = get_session()
    settings = get_settings()
    case = load_visible(db, case_id)
    upload = body["file"]
    data = upload.read(int(settings.max_upload_mb * 1024 * 1024) + 1)
    if len(data) > settings.max_upload_mb * 1024 * 1024:
        from werkzeug.exceptions import RequestEntityTooLarge

        raise RequestEntityTooLarge(f"photos may be at most {settings.max_upload_mb:g} MB")
    if not data:
        raise ValidationError(FieldError("file", "the file is empty"))
    mime = sniff_image(data[:16])
    if mime is None:
        from werkzeug.exceptions import UnsupportedMediaType

        raise UnsupportedMediaType("only JPEG, PNG or WebP photos are accepted (checked from the content)")
    _verify_image(data, mime)
    cleaned = clean_photo(data, mime)  # stored and served without EXIF/XMP/IPTC/comments; GPS kept below
    data = cleaned.data
    folder = settings.resolved_data_dir / "attachments" / case.county_code
    folder.mkdir(parents=True, exist_ok=True)
    stored = secrets.token_hex(16) + IMAGE_TYPES[mime]
    path = folder / stored
    path.write_bytes(data)
    user = current_user()
    photo = m.Attachment(county_code=case.county_code, case_id=case.id, stage=body["stage"], stored_name=stored,
                         original_name=(upload.filename or "")[:255] or None, mime_type=mime, size_bytes=len(data),
                         sha256=hashlib.sha256(data).hexdigest(), uploaded_by=user.id,
                         location=cleaned.location_ewkt())
    db.add(photo)
    try:
        db.flush()
        db.commit()
    except Exception:
        path.unlink(missing_ok=True)  # nothing half-written: no row, no orphan file
        raise
    return _attachment_json(photo), 201


def _attachment_json(photo: m.Attachment) -> dict[str, Any]:
    return {"id": photo.id, "case_id": photo.case_id, "stage": photo.stage, "mime_type": photo.mime_type,
            "size_bytes": photo.size_bytes, "sha256": photo.sha256, "url": f"/api/v1/attachments/{photo.id}",
            "location": location_geojson(photo.location)}


@bp.get("/attachments/<int:attachment_id>")
@require(*STAFF)
@bp.doc(summary="Download a photo", security=SECURITY,
        responses={200: {"description": "the image", "content": {t: {} for t in IMAGE_TYPES}}})
def get_photo(attachment_id: int) -> Response:
    db = get_session()
    photo = db.get(m.Attachment, attachment_id)
    if photo is None:
        raise NotFound(f"attachment {attachment_id} does not exist")
    load_visible(db, photo.case_id)
    path = Path(get_settings().resolved_data_dir) / "attachments" / photo.county_code / photo.stored_name
    if not path.is_file():
        raise NotFound(f"attachment {attachment_id} has no stored file")
    response = send_file(path, mimetype=photo.mime_type, max_age=0, etag=photo.sha256,
                         download_name=f"photo-{photo.id}{IMAGE_TYPES[photo.mime_type]}")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'; sandbox"
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


@bp.get("/route")
@require(*STAFF)
@bp.input(RouteQuery, location="query", arg_name="query")
@bp.output(RouteOut)
@bp.doc(summary="Route a point and category: who should handle it, and why", security=SECURITY)
def route(query: dict) -> dict:
    settings = get_settings()
    at = query["at"]
    if at is not None and at.tzinfo is None:
        raise ValidationError(FieldError("at", "must carry a time zone"))
    result = route_point(get_session(), settings.county_code, query["lon"], query["lat"], query["category"],
                         at=at, metric_srid=settings.metric_srid, near_boundary_m=settings.near_boundary_m)

    def agency(ref):
        return {"id": ref.id, "code": ref.code, "name": ref.name, "kind": ref.kind}

    return {
        "lon": result.lon, "lat": result.lat, "category": result.category,
        "admin_unit": {"id": result.admin_unit.id, "code": result.admin_unit.code, "name": result.admin_unit.name,
                       "level": result.admin_unit.level},
        "grid_cell": {"id": result.grid_cell.id, "code": result.grid_cell.code} if result.grid_cell else None,
        "owner": agency(result.owner), "holder": result.holder, "assigned": agency(result.assigned),
        "near_boundary": result.near_boundary, "boundary_distance_m": result.boundary_distance_m,
        "fallback_township": result.fallback_township, "trace": list(result.trace), "engine": result.engine,
    }
