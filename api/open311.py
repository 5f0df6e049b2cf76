"""Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2) under ``/open311/v2``.

The category dictionary is the service list and cases are service requests. Every method answers in
XML (``.xml``, required by the specification) and JSON (``.json``); any other suffix is a 404. Errors
use the specification's own format, a list of ``{code, description}``, never problem+json.

Decisions, where the specification leaves room:

- ``jurisdiction_id`` is optional (one county per deployment). When sent it must be the county code
  (``GIS_COUNTY_CODE``, e.g. 371521); any other value is a 404 "jurisdiction_id not found", as the
  specification lists for every method.
- Services carry no attributes (``metadata`` false; the definition has an empty attribute list):
  urgency is decided by the command centre on verification, not by the public. ``attribute[...]``
  parameters are accepted and ignored, so generic clients keep working.
- ``type`` is ``realtime``: the case number is returned at once and is also the token, so
  ``tokens/{token}`` answers for any case number.
- ``POST requests`` needs ``lat`` and ``long`` (WGS-84): addresses cannot be geocoded offline, so
  ``address_string`` alone (or ``address_id``) is a 400 that says so; with coordinates it is kept as
  the case's address. An unknown ``service_code`` is a 404, as the specification's POST errors list
  it; swapped or out-of-county coordinates are 400s that name the problem. A retried submission with
  the same ``Idempotency-Key`` header (per API key) returns the original case and creates nothing.
  ``device_id``, ``account_id`` and ``media_url`` are validated but not stored (the case has no place
  for them yet), so ``account_id`` and ``media_url`` are always null.
- ``GET requests`` selects on ``requested_datetime`` (the report time), newest first, at most 1000.
  Without dates it covers the last 90 days; with one date, 90 days from (or up to) it; both dates may
  not span more than 90 days (400). Dates must carry a time zone; a ``+`` sent unencoded in a query
  string arrives as a space and is read back as ``+``. ``service_request_id`` overrides every other
  filter, as the specification says.
- ``closed`` means closed, evaluated, cancelled as invalid or merged into another case; every other
  state is ``open``, with the detailed Chinese state in ``status_notes``.
- An unreachable database is a 503 with Retry-After (clients should retry), an unexpected failure a
  500; both in the specification's error format.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import shapely
from apiflask import APIBlueprint
from flask import Response, current_app, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased
from werkzeug.exceptions import HTTPException
from werkzeug.routing import PathConverter, RoutingException

from api.auth import hash_token, public
from api.deps import get_session, get_settings, rollback_session
from api.errors import DATABASE_UNAVAILABLE, RETRY_AFTER_SECONDS, first_line
from gis_platform import models as m
from gis_platform import vocab
from gis_platform.errors import FieldError, PlatformError, ValidationError
from gis_platform.workcalendar import SHANGHAI, UnknownCalendarYear
from layers.cases import CALENDAR, Duplicate, report_case

log = logging.getLogger(__name__)

bp = APIBlueprint("open311", __name__, url_prefix="/open311", enable_openapi=False)

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
# Bump when the service list or definitions change shape (discovery tells clients to refresh caches).
CHANGESET = "2026-11-26T00:00:00+08:00"
CONTENT_TYPES = {"xml": "text/xml; charset=utf-8", "json": "application/json; charset=utf-8"}
FMT = "<any(xml, json):fmt>"
WINDOW = timedelta(days=90)
MAX_RESULTS = 1000
MAX_DESCRIPTION = 4000
MAX_IDEMPOTENCY_KEY = 100  # stored as "open311:<key id>:<key>" in a 128-character column
CLOSED_STATUSES = tuple(s for s in vocab.CASE_STATUSES if s not in vocab.OPEN_STATUSES)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

# XML children of list-valued elements (the Spark convention maps them to JSON arrays).
XML_ITEM = {"services": "service", "service_requests": "request", "errors": "error", "attributes": "attribute",
            "values": "value", "endpoints": "endpoint", "formats": "format"}
# Characters XML 1.0 cannot carry at all; ElementTree would write them and produce a broken document.
XML_ILLEGAL = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
PHONE = re.compile(r"[0-9+()\- ]{3,32}")
CJK = re.compile("[\u3400-\u9fff\uf900-\ufaff]")
# A "+HH:MM" offset sent unencoded in a query string arrives as " HH:MM".
SPACED_OFFSET = re.compile(r" (\d\d(:?\d\d)?)$")

# How fields of the case service are named in Open311 terms, for error descriptions.
FIELD_NAMES = {"geometry": "lat/long", "location": "lat/long", "category": "service_code",
               "reporter_name": "first_name/last_name", "reporter_contact": "email/phone",
               "idempotency_key": "Idempotency-Key"}


class Open311Error(Exception):
    """An error answered in the specification's format: an HTTP status and one or more descriptions."""

    def __init__(self, status: int, *descriptions: str, headers: dict[str, str] | None = None) -> None:
        super().__init__("; ".join(descriptions))
        self.status = status
        self.descriptions = descriptions
        self.headers = headers or {}


# -- rendering ---------------------------------------------------------------------------------------------
def _format() -> str:
    """Return the format the client asked for: the URL suffix, XML (the required one) otherwise."""
    fmt = (request.view_args or {}).get("fmt")
    if fmt in CONTENT_TYPES:
        return fmt
    return "json" if request.path.endswith(".json") else "xml"


def _element(tag: str, value: Any) -> ET.Element:
    """Build an element; lists become repeated children named by XML_ITEM, None an empty element."""
    element = ET.Element(tag)
    if isinstance(value, dict):
        for key, child in value.items():
            element.append(_element(key, child))
    elif isinstance(value, list):
        for child in value:
            element.append(_element(XML_ITEM[tag], child))
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = XML_ILLEGAL.sub("\ufffd", str(value))
    return element


def xml_document(root: str, payload: Any) -> bytes:
    """Return a UTF-8 XML document with the declaration the specification requires."""
    body = ET.tostring(_element(root, payload), encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode("utf-8")


def _respond(root: str, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    fmt = _format()
    body = current_app.json.dumps(payload) if fmt == "json" else xml_document(root, payload)
    return current_app.response_class(body, status=status, content_type=CONTENT_TYPES[fmt], headers=headers)


def _errors(status: int, descriptions: Iterable[str], headers: dict[str, str] | None = None) -> Response:
    payload = [{"code": status, "description": d} for d in descriptions]
    return _respond("errors", payload, status, headers)


@bp.errorhandler(Open311Error)
def _open311_error(error: Open311Error) -> Response:
    rollback_session()
    return _errors(error.status, error.descriptions, error.headers)


@bp.errorhandler(PlatformError)
def _platform_error(error: PlatformError) -> Response:
    rollback_session()
    if error.status >= 500:
        log.error("%s %s: %s", request.method, request.path, error.log_detail)
    status = error.status if error.status in (403, 404) or error.status >= 500 else 400
    if isinstance(error, ValidationError) and error.errors:
        return _errors(status, [_describe(e) for e in error.errors])
    return _errors(status, [error.detail])


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    rollback_session()
    headers = {k: v for k, v in error.get_headers() if k.lower() in ("allow", "retry-after")}
    return _errors(error.code or 500, [error.description or error.name], headers)


def _database_unavailable(error: Exception) -> Response:
    rollback_session()
    log.warning("%s %s: database unavailable: %s", request.method, request.path, first_line(error))
    message = "数据库暂时无法连接，请稍后重试。The database is temporarily unreachable; retry shortly."
    return _errors(503, [message], {"Retry-After": RETRY_AFTER_SECONDS})


for _exc_type in DATABASE_UNAVAILABLE:
    # Blueprint handlers are searched before the app's, whatever the class: these must be ours too.
    bp.register_error_handler(_exc_type, _database_unavailable)


@bp.errorhandler(Exception)
def _unexpected(error: Exception) -> Response:
    rollback_session()
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=error)
    return _errors(500, ["服务器内部错误，已记录。The server hit an unexpected error; it has been logged."])


def _describe(error: FieldError) -> str:
    """Describe a case-service field error in Open311 terms."""
    if "look swapped" in error.problem:
        return ("lat and long look swapped: the point is outside the county, but with lat and long exchanged it "
                "would be inside; send the latitude as lat and the longitude as long (WGS-84)")
    return f"{FIELD_NAMES.get(error.field, error.field)}: {error.problem}"


# -- input -------------------------------------------------------------------------------------------------
def _raw(name: str, *, form: bool = False) -> str | None:
    """Return a parameter (repeated ones joined by commas); from the body first for a POST."""
    values = request.form.getlist(name) if form else []
    values = values or request.args.getlist(name)
    return ",".join(values) if values else None


def _text(name: str, *, form: bool = False, max_len: int = 200, multiline: bool = False,
          value: str | None = None) -> str | None:
    """Return a stripped optional parameter (empty counts as absent), refusing control characters."""
    raw = value if value is not None else _raw(name, form=form)
    if raw is None:
        return None
    raw = raw.strip()
    if not raw:
        return None
    if len(raw) > max_len:
        raise Open311Error(400, f"{name} is longer than {max_len:,} characters ({len(raw):,})")
    if CONTROL.search(raw) or (not multiline and ("\n" in raw or "\r" in raw)):
        raise Open311Error(400, f"{name} contains control characters")
    return raw


def _list(name: str, *, max_items: int = MAX_RESULTS) -> list[str]:
    """Return a comma-separated parameter as a list, dropping empty items."""
    raw = _text(name, max_len=max_items * 40)
    items = [item.strip() for item in (raw or "").split(",") if item.strip()]
    if len(items) > max_items:
        raise Open311Error(400, f"{name} lists more than {max_items:,} values")
    return items


def _check_jurisdiction(*, form: bool = False) -> None:
    county = get_settings().county_code
    value = _text("jurisdiction_id", form=form, max_len=100)
    if value is not None and value != county:
        raise Open311Error(404, f"jurisdiction_id {value!r} was not found: this endpoint serves {county}")


def _datetime(name: str) -> datetime | None:
    """Return an ISO 8601 date-time parameter, which must carry a time zone."""
    raw = _text(name, max_len=64)
    if raw is None:
        return None
    raw = SPACED_OFFSET.sub(r"+\1", raw)
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise Open311Error(400, f"{name} is not an ISO 8601 date-time, e.g. 2021-03-01T00:00:00+08:00") from None
    if value.tzinfo is None:
        raise Open311Error(400, f"{name} must carry a time zone (Z or ±HH:MM), e.g. 2021-03-01T00:00:00+08:00")
    if not 1900 <= value.year <= 2200:
        raise Open311Error(400, f"{name} is out of range")
    return value


def _coordinate(name: str) -> float:
    raw = _text(name, form=True, max_len=40)
    if raw is None or not NUMBER.fullmatch(raw):
        raise Open311Error(400, f"{name} must be a decimal number of degrees (WGS-84)")
    return float(raw)


def _location() -> tuple[float, float]:
    """Return (long, lat) from the form, or explain what is missing."""
    has_lat = _text("lat", form=True, max_len=40) is not None
    has_long = _text("long", form=True, max_len=40) is not None
    if has_lat and has_long:
        return _coordinate("long"), _coordinate("lat")
    if has_lat or has_long:
        raise Open311Error(400, "lat and long must both be sent")
    if _text("address_string", form=True, max_len=500) or _text("address_id", form=True, max_len=100):
        raise Open311Error(400, "lat and long (WGS-84) are required here: this endpoint cannot geocode "
                                "address_string or address_id")
    raise Open311Error(400, "a location is required: send lat and long (WGS-84)")


def _reporter_name() -> str | None:
    first = _text("first_name", form=True, max_len=100)
    last = _text("last_name", form=True, max_len=100)
    if first is None and last is None:
        return None
    # Chinese names are written family name first, without a space.
    if CJK.search(f"{first or ''}{last or ''}"):
        name = f"{last or ''}{first or ''}"
    else:
        name = " ".join(p for p in (first, last) if p)
    if len(name) > 100:
        raise Open311Error(400, "first_name and last_name together are longer than 100 characters")
    return name


def _reporter_contact() -> str | None:
    email = _text("email", form=True, max_len=100)
    phone = _text("phone", form=True, max_len=32)
    if email is not None and not EMAIL.fullmatch(email):
        raise Open311Error(400, "email is not an e-mail address")
    if phone is not None and not PHONE.fullmatch(phone):
        raise Open311Error(400, "phone may hold only digits, spaces and + ( ) -")
    contact = " / ".join(p for p in (phone, email) if p)
    if len(contact) > 100:
        raise Open311Error(400, "email and phone together are longer than 100 characters")
    return contact or None


def _check_media_url() -> None:
    url = _text("media_url", form=True, max_len=2000)
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or " " in url:
            raise Open311Error(400, "media_url must be an http or https URL")


def _api_key(db: Session, county: str) -> m.ApiToken:
    key = _raw("api_key", form=True)
    if key is None or not key.strip():
        raise Open311Error(403, "api_key was not provided -- can't proceed with create_request")
    token = db.scalar(select(m.ApiToken).where(m.ApiToken.token_hash == hash_token(key.strip()),
                                               m.ApiToken.kind == "open311", m.ApiToken.county_code == county))
    if token is None or token.revoked_at is not None:
        raise Open311Error(403, "invalid api_key received -- can't proceed with create_request")
    return token


def _idempotency_key(token: m.ApiToken) -> str | None:
    """Return the stored form of the Idempotency-Key header, scoped to the API key that sent it."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = key.strip()
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise Open311Error(400, f"Idempotency-Key must be 1–{MAX_IDEMPOTENCY_KEY} printable characters")
    return f"open311:{token.id}:{key}"


# -- output ------------------------------------------------------------------------------------------------
def _iso(value: datetime | None) -> str | None:
    return value.astimezone(SHANGHAI).isoformat(timespec="seconds") if value is not None else None


def _service(category: m.Category) -> dict[str, Any]:
    theme = vocab.THEME_LABELS.get(category.theme, category.theme)
    keywords = dict.fromkeys([category.name, category.name_en, theme, category.event_class])
    return {
        "service_code": category.code,
        "service_name": category.name,
        "description": f"{category.name_en} ({category.event_class} · {theme})",
        "metadata": False,
        "type": "realtime",
        "keywords": ", ".join(k for k in keywords if k),
        "group": category.event_class,
    }


def _notice(agency: m.Agency | None, hours: float | None, duplicates: Sequence[Duplicate] = (), *,
            dispatched: bool = False) -> str:
    """Say what happens next: who handles it and within which limit."""
    who_zh = agency.name if agency is not None else "责任单位"
    who_en = agency.name_en if agency is not None else "the responsible unit"
    if dispatched:
        zh, en = f"已派遣{who_zh}处置", f"Dispatched to {who_en}"
    else:
        zh = f"已受理，经指挥中心核实后派遣{who_zh}处置"
        en = f"Received: after verification the command centre dispatches it to {who_en}"
    zh += (f"，时限 {hours:g} 个工作小时" if hours else "") + "。"
    en += (f", to be handled within {hours:g} working hours" if hours else "") + "."
    if duplicates:
        numbers = ", ".join(d.case_no for d in duplicates[:3])
        zh += f"附近已有同类案件 {numbers} 在办。"
        en += f" Similar reports nearby are already open: {numbers}."
    return f"{zh} {en}"


def _expected(case: m.Case, hours: float | None) -> datetime | None:
    """Return the due time; before dispatch, the report time plus the limit in working hours."""
    if case.due_at is not None:
        return case.due_at
    if case.status in CLOSED_STATUSES or hours is None:
        return None
    try:
        return CALENDAR.add_working_hours(case.reported_at, hours + float(case.extended_hours or 0))
    except (UnknownCalendarYear, ValueError):
        return None  # no official calendar for that year: better no estimate than a wrong one


def _limits(db: Session, county: str) -> dict[tuple[int, str], float]:
    rows = db.execute(select(m.TimeLimit.category_id, m.TimeLimit.urgency, m.TimeLimit.working_hours)
                      .where(m.TimeLimit.county_code == county)).all()
    return {(r[0], r[1]): float(r[2]) for r in rows}


def _service_requests(db: Session, county: str, conditions: list[Any]) -> list[dict[str, Any]]:
    """Return cases as Open311 service requests, newest first, at most MAX_RESULTS."""
    merged = aliased(m.Case)
    rows = db.execute(
        select(m.Case, m.Category, m.Agency, func.ST_X(m.Case.location), func.ST_Y(m.Case.location),
               merged.case_no)
        .join(m.Category, m.Category.id == m.Case.category_id)
        .outerjoin(m.Agency, m.Agency.id == m.Case.assigned_agency_id)
        .outerjoin(merged, merged.id == m.Case.merged_into_id)
        .where(m.Case.county_code == county, *conditions)
        .order_by(m.Case.reported_at.desc(), m.Case.id.desc())
        .limit(MAX_RESULTS)).all()
    limits = _limits(db, county) if rows else {}
    return [_service_request(case, category, agency, lon, lat, merged_no,
                             limits.get((case.category_id, case.urgency)))
            for case, category, agency, lon, lat, merged_no in rows]


def _service_request(case: m.Case, category: m.Category, agency: m.Agency | None, lon: float | None,
                     lat: float | None, merged_no: str | None, hours: float | None) -> dict[str, Any]:
    closed = case.status in CLOSED_STATUSES
    notes = vocab.CASE_STATUS_LABELS[case.status] + (f"，已合并至 {merged_no}" if merged_no else "")
    updated = case.closed_at if case.status in ("closed", "evaluated") and case.closed_at else case.updated_at
    return {
        "service_request_id": case.case_no,
        "status": "closed" if closed else "open",
        "status_notes": notes,
        "service_name": category.name,
        "service_code": category.code,
        "description": case.description or None,
        "agency_responsible": agency.name if agency is not None else None,
        "service_notice": None if closed else _notice(agency, hours, dispatched=case.dispatched_at is not None),
        "requested_datetime": _iso(case.reported_at),
        "updated_datetime": _iso(updated),
        "expected_datetime": _iso(_expected(case, hours)),
        "address": case.address,
        "address_id": None,
        "zipcode": None,
        "lat": None if lat is None else round(lat, 7),
        "long": None if lon is None else round(lon, 7),
        "media_url": None,
    }


def _category(db: Session, county: str, code: str) -> m.Category:
    category = db.scalar(select(m.Category).where(m.Category.county_code == county, m.Category.code == code,
                                                  m.Category.active))
    if category is None:
        raise Open311Error(404, f"service_code {code!r} was not found")
    return category


# -- views -------------------------------------------------------------------------------------------------
@bp.get(f"/v2/services.{FMT}")
@public
def services(fmt: str) -> Response:
    """List the services: the county's active categories."""
    _check_jurisdiction()
    county = get_settings().county_code
    categories = get_session().scalars(select(m.Category).where(m.Category.county_code == county,
                                                                m.Category.active).order_by(m.Category.code))
    return _respond("services", [_service(c) for c in categories])


@bp.get(f"/v2/services/<service_code>.{FMT}")
@public
def service_definition(service_code: str, fmt: str) -> Response:
    """Define one service: no attributes are asked for."""
    _check_jurisdiction()
    code = _text("service_code", value=service_code, max_len=64) or ""
    category = _category(get_session(), get_settings().county_code, code)
    return _respond("service_definition", {"service_code": category.code, "attributes": []})


@bp.post(f"/v2/requests.{FMT}")
@public
def create_request(fmt: str) -> Response:
    """Create a service request: report a citizen case, routed like any other."""
    if request.mimetype and request.mimetype not in FORM_TYPES:
        raise Open311Error(400, "send the request form-encoded (application/x-www-form-urlencoded or "
                                "multipart/form-data)")
    db = get_session()
    settings = get_settings()
    token = _api_key(db, settings.county_code)
    _check_jurisdiction(form=True)
    code = _text("service_code", form=True, max_len=64)
    if code is None:
        raise Open311Error(400, "service_code was not provided")
    category = _category(db, settings.county_code, code)
    lon, lat = _location()
    description = _text("description", form=True, max_len=MAX_DESCRIPTION, multiline=True) or ""
    address = _text("address_string", form=True, max_len=500)
    reporter_name = _reporter_name()
    reporter_contact = _reporter_contact()
    _text("device_id", form=True)
    _text("account_id", form=True)
    _check_media_url()
    key = _idempotency_key(token)
    try:
        outcome = report_case(
            db, settings.county_code, category=category.code, geometry=shapely.Point(lon, lat), source="citizen",
            description=description, address=address, coord_system="wgs84", reporter_name=reporter_name,
            reporter_contact=reporter_contact, idempotency_key=key, external_ref=f"open311:{token.id}",
            metric_srid=settings.metric_srid, near_boundary_m=settings.near_boundary_m)
    except ValidationError as exc:
        raise Open311Error(400, *[_describe(e) for e in exc.errors]) from None
    case = outcome.case
    agency = db.get(m.Agency, case.assigned_agency_id) if case.assigned_agency_id is not None else None
    hours = _limits(db, settings.county_code).get((case.category_id, case.urgency))
    notice = _notice(agency, hours, outcome.duplicates)
    token.last_used_at = datetime.now(UTC)
    db.commit()
    headers = None if outcome.created else {"Idempotent-Replayed": "true"}
    return _respond("service_requests", [{"service_request_id": case.case_no, "service_notice": notice,
                                          "account_id": None}], headers=headers)


@bp.get(f"/v2/tokens/<token>.{FMT}")
@public
def token_status(token: str, fmt: str) -> Response:
    """Resolve a token: requests are created at once, so the token is the case number."""
    _check_jurisdiction()
    value = _text("token", value=token, max_len=64) or ""
    case_no = get_session().scalar(select(m.Case.case_no).where(m.Case.county_code == get_settings().county_code,
                                                                 m.Case.case_no == value))
    if case_no is None:
        raise Open311Error(404, f"token {value!r} was not found")
    return _respond("service_requests", [{"service_request_id": case_no, "token": value}])


@bp.get(f"/v2/requests.{FMT}")
@public
def service_requests(fmt: str) -> Response:
    """Query requests by number, or by service, time window (90 days at most) and status."""
    _check_jurisdiction()
    ids = _list("service_request_id")
    if ids:
        conditions = [m.Case.case_no.in_(ids)]  # overrides every other argument
    else:
        conditions = _filters()
    rows = _service_requests(get_session(), get_settings().county_code, conditions)
    return _respond("service_requests", rows)


def _filters() -> list[Any]:
    codes = _list("service_code")
    statuses = _list("status", max_items=10)
    unknown = sorted(set(statuses) - {"open", "closed"})
    if unknown:
        raise Open311Error(400, f"status must be open or closed (comma-separated), not {', '.join(unknown)}")
    start, end = _datetime("start_date"), _datetime("end_date")
    if start is None and end is None:
        end = datetime.now(UTC)
        start = end - WINDOW
    elif start is None:
        start = end - WINDOW
    elif end is None:
        end = start + WINDOW
    if end < start:
        raise Open311Error(400, "end_date is before start_date")
    if end - start > WINDOW:
        raise Open311Error(400, "start_date and end_date may not span more than 90 days")
    conditions: list[Any] = [m.Case.reported_at >= start, m.Case.reported_at <= end]
    if codes:
        conditions.append(m.Category.code.in_(codes))  # the query joins the category
    if set(statuses) == {"open"}:
        conditions.append(m.Case.status.in_(vocab.OPEN_STATUSES))
    elif set(statuses) == {"closed"}:
        conditions.append(m.Case.status.in_(CLOSED_STATUSES))
    return conditions


@bp.get(f"/v2/requests/<service_request_id>.{FMT}")
@public
def service_request(service_request_id: str, fmt: str) -> Response:
    """Return one request (as a list of one, like the specification)."""
    _check_jurisdiction()
    value = _text("service_request_id", value=service_request_id, max_len=64) or ""
    rows = _service_requests(get_session(), get_settings().county_code, [m.Case.case_no == value])
    if not rows:
        raise Open311Error(404, f"service_request_id {value!r} was not found")
    return _respond("service_requests", rows)


@bp.get(f"/discovery.{FMT}")
@public
def discovery(fmt: str) -> Response:
    """Describe the endpoint: specification, URL, formats and whom to ask for a key."""
    db = get_session()
    bureau = db.scalar(select(m.Agency).where(m.Agency.county_code == get_settings().county_code,
                                              m.Agency.kind == "bureau").order_by(m.Agency.code).limit(1))
    who = bureau.name if bureau is not None else "综合行政执法局"
    contact = f"{who}指挥中心" + (f"，电话 {bureau.phone}" if bureau is not None and bureau.phone else "")
    base = url_for("open311.services", fmt="xml", _external=True).removesuffix("/services.xml")
    return _respond("discovery", {
        "changeset": CHANGESET,
        "contact": f"{contact}。Contact the command centre of the county's law-enforcement bureau.",
        "key_service": f"api_key 由平台管理员签发，请联系{contact}。API keys are issued by the platform "
                       f"administrator; ask the command centre.",
        "endpoints": [{"specification": SPECIFICATION, "url": base, "changeset": CHANGESET, "type": "production",
                       "formats": ["text/xml", "application/json"]}],
    })


ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE"]


class AnyPathConverter(PathConverter):
    """Like ``path``, but across newlines too (``%0A``): nothing under /open311 escapes the catch-all below."""

    regex = "(?s:[^/].*?)"


bp.record_once(lambda state: state.app.url_map.converters.setdefault("any_path", AnyPathConverter))


@bp.route("/", defaults={"rest": ""}, methods=ANY_METHOD)
@bp.route("/<any_path:rest>", methods=ANY_METHOD)
@public
def unknown(rest: str) -> Response:
    """Answer anything else under /open311 in the specification's error format (404, or 405)."""
    allowed = _other_methods()
    if allowed:
        raise Open311Error(405, f"{request.method} is not allowed here; use {', '.join(allowed)}",
                           headers={"Allow": ", ".join(allowed)})
    last = rest.rsplit("/", 1)[-1]
    if "." in last and last.rsplit(".", 1)[-1] not in CONTENT_TYPES:
        raise Open311Error(404, f"unknown format {last.rsplit('.', 1)[-1]!r}: use .xml or .json")
    raise Open311Error(404, f"no such Open311 resource: {request.path}")


def _other_methods() -> list[str]:
    """Return the methods a real Open311 route at this path accepts (a catch-all must not hide a 405)."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    allowed = []
    for method in ("GET", "POST"):
        if method == request.method:
            continue
        try:
            endpoint, _ = adapter.match(method=method)
        except (HTTPException, RoutingException):
            continue
        if endpoint != "open311.unknown":
            allowed.append(method)
    return allowed
