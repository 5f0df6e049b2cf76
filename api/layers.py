"""Map layers as GeoJSON (RFC 7946) with OGC API Features parameters, and the case list.

- ``GET /api/v1/layers``: every layer with its titles, geometry type, time field, filters, style and legend;
- ``GET /api/v1/layers/{name}``: one of them;
- ``GET /api/v1/layers/{name}/items``: a FeatureCollection (``application/geo+json``) with
  ``numberMatched``, ``numberReturned``, ``timeStamp`` and self/next/prev ``links``;
- ``GET /api/v1/layers/{name}/items/{id}``: one Feature;
- ``GET /api/v1/cases``: the ``cases`` layer as a JSON list of case summaries, for lists and tables.

Parameters follow OGC API Features Part 1: ``bbox`` (minLon,minLat,maxLon,maxLat in WGS 84),
``datetime`` (an instant, or a closed interval ``start/end`` with ``..`` for an open end; ISO 8601
with a time zone), ``limit`` (default 100; above 10,000 the maximum is used, as the standard asks)
and ``offset``; ``at`` chooses the versions in force (versioned layers) and the moment of the case
clock. Every other query parameter is one of the layer's filters: unknown names are refused with 400.

Who sees what is decided here, on the server: patrollers see only the cases assigned to their
squad and liaisons only those assigned to their agency, in every case-based layer (the cases and
themed case layers, seized items, and hotline tickets through their case), in the case list and by id.
The restriction is an internal layer filter (``layers.base.ASSIGNED_FILTER``) that no query string
can name. As in the vector tiles, it follows the assignment only: a patroller's own report routed
to another squad is read through ``GET /api/v1/cases/{id}``, not in these lists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, Dict, Float, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range
from flask import Response, current_app, request, url_for
from marshmallow import ValidationError as SchemaError

from api.auth import SECURITY, STAFF, current_actor, require
from api.deps import get_session, get_settings
from gis_platform.errors import FieldError, Forbidden, NotFound, ValidationError
from layers.base import ASSIGNED_FILTER, MAX_LIMIT, Layer, LayerPage, LayerQuery
from layers.registry import all_layers, get_layer

bp = APIBlueprint("layers", __name__, url_prefix="/api/v1", tag="图层 Layers")

GEOJSON = "application/geo+json"
JSON = "application/json"
RESERVED = ("f", "bbox", "datetime", "limit", "offset", "at")
DEFAULT_LIMIT = 100
MAX_OFFSET = 2**31 - 1
MAX_ID = 2**63 - 1
OWN_UNIT_ROLES = ("patroller", "liaison")
# PostgreSQL keeps microseconds, so the half-open [t, t + 1 µs) holds exactly the instant t.
RESOLUTION = timedelta(microseconds=1)
OPEN_END = ("", "..")
CASES_TAG = "案件 Cases"


# -- parsing -------------------------------------------------------------------------------------------
def parse_instant(value: str) -> datetime:
    """Return an ISO 8601 date-time that carries a time zone, or raise ValueError saying what is wrong."""
    # An unencoded "+08:00" arrives as " 08:00" (a plus means a space in a query string).
    value = re.sub(r" (\d{2}(:?\d{2})?)$", r"+\1", value.strip())
    if len(value) > 40:
        raise ValueError("is too long for an ISO 8601 date-time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 date-time, e.g. 2021-05-01T08:00:00+08:00") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{value!r} must carry a time zone, e.g. 2021-05-01T08:00:00+08:00 or …Z")
    return moment


def parse_datetime(value: str) -> tuple[datetime | None, datetime | None]:
    """Return the half-open [start, end) of an OGC ``datetime``: an instant or a closed interval."""
    parts = value.split("/")
    if len(parts) > 2:
        raise ValidationError(FieldError("datetime", "give an instant or one interval start/end"))
    try:
        if len(parts) == 1:
            moment = parse_instant(parts[0])
            return moment, moment + RESOLUTION
        start, end = (None if p.strip() in OPEN_END else parse_instant(p) for p in parts)
    except ValueError as exc:
        raise ValidationError(FieldError("datetime", str(exc))) from None
    if start is None and end is None:
        raise ValidationError(FieldError("datetime", "an interval needs at least one end; use .. for the other"))
    if start is not None and end is not None and end < start:
        raise ValidationError(FieldError("datetime", "the interval ends before it starts"))
    return start, (end + RESOLUTION if end is not None else None)


class Instant(String):
    """An ISO 8601 date-time with a time zone."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        try:
            return parse_instant(super()._deserialize(value, attr, data, **kwargs))
        except ValueError as exc:
            raise SchemaError(str(exc)) from None


def layer_filters(layer: Layer) -> dict[str, list[str]]:
    """Return the layer filters of the query string, refusing names that are neither reserved nor the layer's."""
    names = [name for name in request.args if name not in RESERVED]
    unknown = [name[:40] for name in names if name not in layer.filters]
    if unknown:
        accepted = ", ".join(layer.filters) or "none"
        raise ValidationError([FieldError(name, f"layer {layer.name} has no filter {name!r}; accepted: {accepted} "
                                                f"(reserved: {', '.join(RESERVED)})") for name in unknown])
    return {name: [v for raw in request.args.getlist(name) for v in raw.split(",")] for name in names}


def visibility(layer: Layer) -> dict[str, str]:
    """Return the internal filter that keeps patrollers and liaisons to their own unit's cases."""
    actor = current_actor()
    if actor.role not in OWN_UNIT_ROLES or ASSIGNED_FILTER not in layer.internal_filters:
        return {}
    if actor.agency_id is None:
        raise Forbidden("your account belongs to no unit, so no case is assigned to you; ask an administrator")
    return {ASSIGNED_FILTER: str(actor.agency_id)}


def layer_query(layer: Layer, query: Mapping[str, Any]) -> LayerQuery:
    """Return the layer query of a request: the parsed parameters, its filters and the user's visibility."""
    start, end = parse_datetime(query["interval"]) if query.get("interval") else (None, None)
    if query.get("interval") and layer.temporal_field is None:
        raise ValidationError(FieldError("datetime", f"layer {layer.name} has no time field; drop datetime"))
    return LayerQuery(get_settings().county_code, bbox=query.get("bbox"), start=start, end=end,
                      filters={**layer_filters(layer), **visibility(layer)},
                      limit=min(query["limit"], MAX_LIMIT), offset=query["offset"], at=query.get("at"))


# -- links and descriptions ------------------------------------------------------------------------------
def _href(offset: int, limit: int) -> str:
    """Return this request's URL with its query string, at another offset."""
    args = [(k, v) for k, v in request.args.items(multi=True) if k not in ("offset", "limit")]
    if "limit" in request.args:
        args.append(("limit", str(limit)))
    if offset:
        args.append(("offset", str(offset)))
    return request.base_url + ("?" + urlencode(args) if args else "")


def page_links(page: LayerPage, q: LayerQuery, media_type: str) -> list[dict[str, str]]:
    """Return the self, next and prev links of a page."""
    links = [{"href": _href(q.offset, q.limit), "rel": "self", "type": media_type, "title": "this page"}]
    if q.offset + page.number_returned < page.number_matched:
        links.append({"href": _href(q.offset + q.limit, q.limit), "rel": "next", "type": media_type,
                      "title": "next page"})
    if q.offset > 0:
        links.append({"href": _href(max(0, q.offset - q.limit), q.limit), "rel": "prev", "type": media_type,
                      "title": "previous page"})
    return links


def describe(layer: Layer) -> dict[str, Any]:
    """Return a layer's metadata, style and legend, with a link to its items."""
    style = layer.style
    return {
        "name": layer.name, "title_zh": layer.title_zh, "title_en": layer.title_en,
        "geometry_type": layer.geometry_type, "temporal": layer.temporal_field is not None,
        "temporal_field": layer.temporal_field,
        "filters": [{"name": name, "description": text} for name, text in layer.filters.items()],
        "style": {"options": style.options(), "color_property": style.color_property,
                  "by_property": {prop: {value: dict(opts) for value, opts in cases.items()}
                                  for prop, cases in style.by_property.items()}},
        "legend": [{"label_zh": e.label_zh, "label_en": e.label_en, "style": dict(e.style)}
                   for e in layer.legend.entries],
        "links": [{"href": url_for("layers.layer_items", name=layer.name, _external=True), "rel": "items",
                   "type": GEOJSON, "title": f"{layer.title_zh} · {layer.title_en}"}],
    }


def _time_stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _json_response(body: dict[str, Any], media_type: str) -> Response:
    return current_app.response_class(current_app.json.dumps(body), mimetype=media_type)


# -- schemas ---------------------------------------------------------------------------------------------
class PageQuery(Schema):
    bbox = String(validate=Length(1, 200), metadata={"description": "minLon,minLat,maxLon,maxLat in WGS 84",
                                                     "example": "115.70,36.00,115.80,36.05"})
    interval = String(data_key="datetime", validate=Length(1, 100), metadata={
        "description": "an instant, or a closed interval start/end with .. for an open end; ISO 8601 with a "
                       "time zone, e.g. 2021-05-01T00:00:00+08:00/.. (the layer's time field, see temporal_field)"})
    limit = Integer(load_default=DEFAULT_LIMIT, validate=Range(min=1), metadata={
        "description": f"page size, default {DEFAULT_LIMIT}; above {MAX_LIMIT:,} the maximum is used"})
    offset = Integer(load_default=0, validate=Range(0, MAX_OFFSET), metadata={"description": "features to skip"})
    at = Instant(metadata={"format": "date-time", "description": "the moment: versions in force and the case "
                                                                 "clock (default now)"})


def _layer_filter_fields() -> dict[str, String]:
    """Return a documented query field per filter name, saying which layers accept it (the layer checks values)."""
    described: dict[str, list[str]] = {}
    for layer in all_layers():
        for name, text in layer.filters.items():
            described.setdefault(name, []).append(f"{layer.name}: {text}")
    return {name: String(metadata={"description": "layer filter; comma-separated values. " + " | ".join(lines)})
            for name, lines in described.items()}


class ItemsQuery(PageQuery):
    f = String(validate=OneOf(("geojson", "json")), metadata={
        "description": "geojson (default, application/geo+json) or json (the same body as application/json)"})


LayerItemsQuery = type("LayerItemsQuery", (ItemsQuery,), _layer_filter_fields())
CaseListQuery = type("CaseListQuery", (PageQuery,), {
    "f": String(validate=OneOf(("json",)), metadata={"description": "json (the only format)"}),
    **{name: String(metadata={"description": "comma-separated values. " + text})
       for name, text in get_layer("cases").filters.items()},
})


class LinkOut(Schema):
    href = String()
    rel = String()
    type = String()
    title = String()


class FilterOut(Schema):
    name = String()
    description = String()


class LegendEntryOut(Schema):
    label_zh = String()
    label_en = String()
    style = Dict()


class LayerOut(Schema):
    name = String()
    title_zh = String()
    title_en = String()
    geometry_type = String()
    temporal = Boolean()
    temporal_field = String(allow_none=True)
    filters = List(Nested(FilterOut))
    style = Dict(metadata={"description": "Leaflet options, overrides by property value, colour property"})
    legend = List(Nested(LegendEntryOut))
    links = List(Nested(LinkOut))


class OneLayerOut(LayerOut):
    """One layer (a schema of its own: apispec warns when one schema is both nested and top-level)."""


class LayersOut(Schema):
    layers = List(Nested(LayerOut))
    links = List(Nested(LinkOut))


class FeatureOut(Schema):
    type = String(metadata={"example": "Feature"})
    id = Integer()
    geometry = Dict(allow_none=True, metadata={"description": "RFC 7946 geometry, [longitude, latitude]"})
    properties = Dict()
    links = List(Nested(LinkOut))


class OneFeatureOut(FeatureOut):
    """One feature, with self and collection links."""


class FeatureCollectionOut(Schema):
    type = String(metadata={"example": "FeatureCollection"})
    numberMatched = Integer()  # noqa: N815  (OGC API Features member names)
    numberReturned = Integer()  # noqa: N815
    timeStamp = String()  # noqa: N815
    links = List(Nested(LinkOut))
    features = List(Nested(FeatureOut))


class CaseSummaryOut(Schema):
    id = Integer()
    case_no = String()
    url = String()
    lon = Float()
    lat = Float()
    category_code = String()
    category_name = String()
    category_name_en = String()
    theme = String()
    theme_zh = String()
    status = String()
    status_zh = String()
    urgency = String()
    urgency_zh = String()
    source = String()
    source_zh = String()
    reported_at = String()
    dispatched_at = String(allow_none=True)
    due_at = String(allow_none=True)
    handled_at = String(allow_none=True)
    closed_at = String(allow_none=True)
    limit_hours = Float(allow_none=True)
    overdue = Boolean()
    overrun_multiple = Float(allow_none=True)
    agency_code = String(allow_none=True)
    agency_name = String(allow_none=True)
    grid_code = String(allow_none=True)
    near_boundary = Boolean()
    address = String(allow_none=True)


class CaseListOut(Schema):
    numberMatched = Integer()  # noqa: N815
    numberReturned = Integer()  # noqa: N815
    timeStamp = String()  # noqa: N815
    links = List(Nested(LinkOut))
    cases = List(Nested(CaseSummaryOut))


# -- views -----------------------------------------------------------------------------------------------
@bp.get("/layers")
@require(*STAFF)
@bp.output(LayersOut)
@bp.doc(summary="The map layers: titles, geometry, time field, filters, style and legend", security=SECURITY)
def list_layers() -> dict[str, Any]:
    return {"layers": [describe(layer) for layer in all_layers()],
            "links": [{"href": request.base_url, "rel": "self", "type": JSON, "title": "map layers"}]}


@bp.get("/layers/<name>")
@require(*STAFF)
@bp.output(OneLayerOut)
@bp.doc(summary="One map layer", security=SECURITY, responses={404: "no such layer (the detail lists them)"})
def one_layer(name: str) -> dict[str, Any]:
    return describe(get_layer(name))


@bp.get("/layers/<name>/items")
@require(*STAFF)
@bp.input(LayerItemsQuery, location="query", arg_name="query")
@bp.output(FeatureCollectionOut, content_type=GEOJSON)
@bp.doc(summary="A layer's features (GeoJSON, OGC API Features parameters)", security=SECURITY,
        description="Every query parameter other than f, bbox, datetime, limit, offset and at is one of the "
                    "layer's filters (GET /api/v1/layers lists them); unknown names are refused. Patrollers and "
                    "liaisons see only their own unit's cases in case-based layers.",
        responses={400: "invalid parameter or unknown filter", 404: "no such layer (the detail lists them)"})
def layer_items(name: str, query: dict[str, Any]) -> Response:
    layer = get_layer(name)
    q = layer_query(layer, query)
    page = layer.query(get_session(), q)
    media_type = JSON if query.get("f") == "json" else GEOJSON
    return _json_response({
        "type": "FeatureCollection", "numberMatched": page.number_matched, "numberReturned": page.number_returned,
        "timeStamp": _time_stamp(), "links": page_links(page, q, media_type), "features": page.features,
    }, media_type)


@bp.get("/layers/<name>/items/<int:item_id>")
@require(*STAFF)
@bp.output(OneFeatureOut, content_type=GEOJSON)
@bp.doc(summary="One feature of a layer", security=SECURITY,
        responses={404: "no such layer, or no such feature that you may see"})
def layer_item(name: str, item_id: int) -> Response:
    layer = get_layer(name)
    feature = None
    if item_id <= MAX_ID:
        feature = layer.get(get_session(), get_settings().county_code, item_id, filters=visibility(layer))
    if feature is None:
        raise NotFound(f"layer {name} has no feature {item_id}")
    collection = url_for("layers.layer_items", name=name, _external=True)
    feature["links"] = [{"href": request.base_url, "rel": "self", "type": GEOJSON, "title": "this feature"},
                        {"href": collection, "rel": "collection", "type": GEOJSON, "title": layer.title_zh}]
    return _json_response(feature, GEOJSON)


@bp.get("/cases")
@require(*STAFF)
@bp.input(CaseListQuery, location="query", arg_name="query")
@bp.output(CaseListOut)
@bp.doc(summary="List cases (案件列表): the cases layer as JSON summaries", security=SECURITY, tags=[CASES_TAG],
        description="The same engine, parameters and filters as GET /api/v1/layers/cases/items, answered as a "
                    "JSON list. Patrollers see only their squad's cases, liaisons only their agency's.",
        responses={400: "invalid parameter or unknown filter"})
def list_cases(query: dict[str, Any]) -> dict[str, Any]:
    layer = get_layer("cases")
    q = layer_query(layer, query)
    page = layer.query(get_session(), q)
    return {"numberMatched": page.number_matched, "numberReturned": page.number_returned,
            "timeStamp": _time_stamp(), "links": page_links(page, q, JSON),
            "cases": [case_summary(f) for f in page.features]}


def case_summary(feature: dict[str, Any]) -> dict[str, Any]:
    """Return a case feature of the cases layer as a flat summary with its position and URL."""
    lon, lat = feature["geometry"]["coordinates"]
    return {"id": feature["id"], "case_no": feature["properties"]["case_no"],
            "url": url_for("cases.get_case", case_id=feature["id"]), "lon": lon, "lat": lat,
            **feature["properties"]}
