"""The protocol every map layer follows, the values it trades in, and a SQL base class that implements it.

A layer is a small declaration: names and titles, geometry type, style and legend, the filters it
accepts, and the table, joins and columns it reads. ``SqlLayer`` turns that declaration into two
parameterised queries (a count and a page). Column names and joins are constants of the layer's own
module; every value a caller supplies travels as a bound parameter, never as SQL text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, Protocol, runtime_checkable

from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from gis_platform.errors import FieldError, ValidationError
from gis_platform.workcalendar import SHANGHAI

MAX_LIMIT = 10_000
MAX_FILTER_VALUES = 200
MAX_FILTER_VALUE_LENGTH = 64
BBOX_ORDER = "minLon,minLat,maxLon,maxLat"
# The internal filter on the agency a feature's case is assigned to. Only the server sets it (the API
# refuses query names that are not a layer's public ``filters``), so a user cannot widen what they see.
ASSIGNED_FILTER = "_assigned"
_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n"}


# --- values -------------------------------------------------------------------------------------------

def parse_bbox(value: str | Sequence[Any]) -> tuple[float, float, float, float]:
    """Return a validated (minLon, minLat, maxLon, maxLat) from four numbers or "a,b,c,d" text."""
    parts: Sequence[Any] = value.split(",") if isinstance(value, str) else value
    if isinstance(parts, (bytes, Mapping)) or not isinstance(parts, Sequence) or len(parts) != 4:
        raise ValidationError(FieldError("bbox", f"give four numbers {BBOX_ORDER}"))
    try:
        x0, y0, x1, y1 = (float(p) for p in parts)
    except (TypeError, ValueError):
        raise ValidationError(FieldError("bbox", f"give four numbers {BBOX_ORDER}")) from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise ValidationError(FieldError("bbox", "coordinates must be finite numbers (no NaN or infinity)"))
    if any(abs(y) > 90 for y in (y0, y1)):
        hint = "; latitude and longitude look swapped" if all(abs(x) <= 90 for x in (x0, x1)) else ""
        raise ValidationError(FieldError("bbox", f"latitude must lie in −90…90{hint}; the order is {BBOX_ORDER}"))
    if any(abs(x) > 180 for x in (x0, x1)):
        raise ValidationError(FieldError("bbox", f"longitude must lie in −180…180; the order is {BBOX_ORDER}"))
    if x0 >= x1 or y0 >= y1:
        raise ValidationError(FieldError(
            "bbox", f"minimum must be less than maximum on both axes (swapped order?); the order is {BBOX_ORDER}"))
    return x0, y0, x1, y1


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise ValidationError(FieldError(name, "must be a date-time"))
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(FieldError(name, "must carry a time zone (ISO 8601 with offset)"))
    return value


def _filter_values(name: str, value: Any) -> tuple[str, ...]:
    """Return a filter's values: one string, a comma-separated string, or a list of strings."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
        raise ValidationError(FieldError(name, "give a text value or a list of text values"))
    values = tuple(v.strip() for v in items if v.strip())
    if not values:
        raise ValidationError(FieldError(name, "give at least one value"))
    if len(values) > MAX_FILTER_VALUES:
        raise ValidationError(FieldError(name, f"at most {MAX_FILTER_VALUES} values"))
    if any(len(v) > MAX_FILTER_VALUE_LENGTH for v in values):
        raise ValidationError(FieldError(name, f"values are at most {MAX_FILTER_VALUE_LENGTH} characters"))
    return values


@dataclass(frozen=True)
class LayerQuery:
    """What to fetch from a layer: county, box, time range, filters, page and the moment of validity.

    ``start``/``end`` bound the layer's time field as the half-open interval [start, end); either may
    be open. ``at`` chooses the versions in force for versioned layers, and is "now" for clocks.
    Filter values may be a string, a comma-separated string or a list; they are kept as tuples.
    """

    county_code: str
    bbox: tuple[float, float, float, float] | None = None
    start: datetime | None = None
    end: datetime | None = None
    filters: Mapping[str, str | list[str]] = field(default_factory=dict)
    limit: int = 100
    offset: int = 0
    at: datetime | None = None
    ids: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.county_code, str) and len(self.county_code) == 6 and self.county_code.isdigit()):
            raise ValidationError(FieldError("county_code", "must be a six-digit GB/T 2260 code"))
        if self.bbox is not None:
            object.__setattr__(self, "bbox", parse_bbox(self.bbox))
        start, end = _aware(self.start, "start"), _aware(self.end, "end")
        if start is not None and end is not None and start >= end:
            raise ValidationError(FieldError("end", "must be later than start"))
        _aware(self.at, "at")
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or not 1 <= self.limit <= MAX_LIMIT:
            raise ValidationError(FieldError("limit", f"must be a whole number from 1 to {MAX_LIMIT:,}"))
        if isinstance(self.offset, bool) or not isinstance(self.offset, int) or self.offset < 0:
            raise ValidationError(FieldError("offset", "must be a whole number, 0 or more"))
        if not isinstance(self.filters, Mapping):
            raise ValidationError(FieldError("filters", "give a mapping of filter name to value(s)"))
        object.__setattr__(self, "filters", {str(k): _filter_values(str(k), v) for k, v in self.filters.items()})
        if self.ids is not None:
            ids = tuple(self.ids)
            if len(ids) > MAX_LIMIT or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
                raise ValidationError(FieldError("ids", f"give up to {MAX_LIMIT:,} whole-number ids"))
            object.__setattr__(self, "ids", ids)


@dataclass(frozen=True)
class LayerPage:
    """One page of features and how many match the query in all."""

    features: list[dict[str, Any]]
    number_matched: int
    number_returned: int


@dataclass(frozen=True)
class Style:
    """Leaflet path and circle-marker options, with overrides chosen by feature properties.

    ``by_property`` maps a property name to {value: option overrides}; rules apply in order, so a later
    rule (say ``overdue``) wins over an earlier one (``status``). Booleans match "true"/"false".
    ``color_property`` names a property that carries the feature's own colour (a palette by code).
    """

    color: str = "#3388ff"
    fill_color: str | None = None
    weight: float = 2.0
    opacity: float = 1.0
    fill_opacity: float = 0.2
    radius: float | None = None
    color_property: str | None = None
    by_property: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)

    def options(self) -> dict[str, Any]:
        """Return the base Leaflet options (camelCase keys)."""
        out: dict[str, Any] = {"color": self.color, "fillColor": self.fill_color or self.color,
                               "weight": self.weight, "opacity": self.opacity, "fillOpacity": self.fill_opacity}
        if self.radius is not None:
            out["radius"] = self.radius
        return out

    def for_properties(self, properties: Mapping[str, Any]) -> dict[str, Any]:
        """Return the Leaflet options for one feature."""
        out = self.options()
        own = properties.get(self.color_property) if self.color_property else None
        if own:
            out.update(color=own, fillColor=own)
        for prop, cases in self.by_property.items():
            value = properties.get(prop)
            key = ("true" if value else "false") if isinstance(value, bool) else str(value)
            out.update(cases.get(key, {}))
        return out


@dataclass(frozen=True)
class LegendEntry:
    """One line of a legend: Chinese and English labels and the Leaflet options drawn beside them."""

    label_zh: str
    label_en: str
    style: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Legend:
    """A layer's legend."""

    entries: tuple[LegendEntry, ...] = ()


@dataclass(frozen=True)
class Filter:
    """A filter a layer accepts: the SQL expression it tests (a layer constant) and what values mean.

    ``choices`` limits values to a vocabulary; ``boolean`` filters take true/false and compare the
    expression itself; ``default`` applies when the caller gives no value (never to ``get``).
    ``integer`` filters take whole numbers (ids). ``internal`` filters are set by the server, for
    visibility: they are not listed in a layer's ``filters``, which is all a caller may send.
    """

    column: str
    description: str
    choices: tuple[str, ...] | None = None
    boolean: bool = False
    default: tuple[str, ...] = ()
    integer: bool = False
    internal: bool = False


def assigned_filter(column: str) -> Filter:
    """Return the internal filter restricting a case-based layer to cases assigned to given agency ids."""
    return Filter(column, "承办单位 id（服务端设定）/ assigned agency id(s), set by the server", integer=True,
                  internal=True)


# --- the protocol -------------------------------------------------------------------------------------

@runtime_checkable
class Layer(Protocol):
    """A thematic map layer: metadata, style, a paged query and conversion to GeoJSON features."""

    name: str
    title_zh: str
    title_en: str
    geometry_type: str
    temporal_field: str | None
    style: Style
    legend: Legend

    @property
    def filters(self) -> Mapping[str, str]:
        """Return the accepted filter names and what each means."""
        ...

    @property
    def internal_filters(self) -> frozenset[str]:
        """Return the names of the filters only the server sets (e.g. ``ASSIGNED_FILTER``)."""
        ...

    def query(self, session: Session, q: LayerQuery) -> LayerPage:
        """Return one page of features matching the query."""
        ...

    def get(self, session: Session, county_code: str, id: int, *,
            filters: Mapping[str, str | list[str]] | None = None) -> dict[str, Any] | None:
        """Return one feature by id, or None; ``filters`` (say, visibility) must hold for it too."""
        ...

    def to_feature(self, row: Any) -> dict[str, Any]:
        """Return an RFC 7946 Feature for one row."""
        ...


# --- helpers for properties ----------------------------------------------------------------------------

def iso(value: datetime | None) -> str | None:
    """Return ISO 8601 with the Asia/Shanghai offset, or None."""
    return None if value is None else value.astimezone(SHANGHAI).isoformat()


def num(value: Decimal | float | int | None) -> float | None:
    """Return a JSON number for a numeric column, or None."""
    return None if value is None else float(value)


# --- the SQL base class --------------------------------------------------------------------------------

class SqlLayer:
    """A layer read from one table with joins; subclasses only declare constants and ``to_properties``."""

    name: ClassVar[str]
    title_zh: ClassVar[str]
    title_en: ClassVar[str]
    geometry_type: ClassVar[str]
    style: ClassVar[Style] = Style()
    legend: ClassVar[Legend] = Legend()
    temporal_field: ClassVar[str | None] = None  # property name of the time field
    temporal_column: ClassVar[str | None] = None  # its SQL expression

    table: ClassVar[str]  # FROM item with its alias, e.g. '"case" c'
    alias: ClassVar[str]  # the alias: id and county_code are read from it
    geom_column: ClassVar[str]
    select_columns: ClassVar[tuple[str, ...]] = ()
    joins: ClassVar[tuple[str, ...]] = ()
    filter_columns: ClassVar[Mapping[str, Filter]] = {}
    # Versioned layers: (valid_from, valid_to) columns; a query shows the versions in force at ``at``.
    validity: ClassVar[tuple[str, str] | None] = None

    @property
    def conditions(self) -> tuple[str, ...]:
        """Return SQL conditions that always hold for this layer (constants with bound parameters)."""
        return ()

    @property
    def params(self) -> Mapping[str, Any]:
        """Return the bound values of ``conditions``."""
        return {}

    @property
    def filters(self) -> Mapping[str, str]:
        """Return the accepted filter names and what each means."""
        return {name: f.description for name, f in self.filter_columns.items() if not f.internal}

    @property
    def internal_filters(self) -> frozenset[str]:
        """Return the names of the filters only the server sets."""
        return frozenset(name for name, f in self.filter_columns.items() if f.internal)

    def to_properties(self, row: Row[Any]) -> dict[str, Any]:
        """Return the feature properties of one row."""
        raise NotImplementedError

    def to_feature(self, row: Row[Any]) -> dict[str, Any]:
        """Return an RFC 7946 Feature (lon/lat, 7 decimals) for one row of this layer's query."""
        return {"type": "Feature", "id": row.id,
                "geometry": json.loads(row.geometry) if row.geometry is not None else None,
                "properties": self.to_properties(row)}

    def query(self, session: Session, q: LayerQuery) -> LayerPage:
        """Return one page of features (ordered by id) and the number matched in all."""
        where, params = self._where(q, applied=True)
        return self._run(session, where, params, q.limit, q.offset)

    def get(self, session: Session, county_code: str, id: int, *,
            filters: Mapping[str, str | list[str]] | None = None) -> dict[str, Any] | None:
        """Return one feature by id, or None; filter defaults and validity do not apply, given filters do."""
        where, params = self._where(LayerQuery(county_code, ids=(id,), filters=filters or {}, limit=1),
                                    applied=False)
        page = self._run(session, where, params, 1, 0, count=False)
        return page.features[0] if page.features else None

    def _run(self, session: Session, where: list[str], params: dict[str, Any], limit: int, offset: int,
             *, count: bool = True) -> LayerPage:
        source = self._source(where)
        columns = ", ".join((f"{self.alias}.id AS id", f"ST_AsGeoJSON({self.geom_column}, 7) AS geometry",
                             *self.select_columns))
        # A separate count keeps ST_AsGeoJSON off the rows that are not on the page.
        rows = session.execute(text(f"SELECT {columns} {source} ORDER BY {self.alias}.id LIMIT :limit OFFSET :offset"),
                               {**params, "limit": limit, "offset": offset}).all()
        features = [self.to_feature(r) for r in rows]
        matched = len(rows)
        if count and (offset > 0 or len(rows) == limit):
            matched = session.execute(text(f"SELECT count(*) {source}"), params).scalar_one()
        return LayerPage(features, int(matched), len(features))

    def _source(self, where: list[str]) -> str:
        """Return the FROM … WHERE … part shared by the page and the count."""
        return " ".join((f"FROM {self.table}", *self.joins, "WHERE", " AND ".join(where)))

    def _where(self, q: LayerQuery, *, applied: bool) -> tuple[list[str], dict[str, Any]]:
        """Return the WHERE conditions and bound parameters; ``applied`` adds validity and defaults."""
        a = self.alias
        where = [f"{a}.county_code = :county_code", *self.conditions]
        params: dict[str, Any] = {"county_code": q.county_code, "at": q.at or datetime.now(UTC), **self.params}
        unknown = sorted(set(q.filters) - set(self.filter_columns))
        if unknown:
            accepted = ", ".join(self.filters) or "none"
            raise ValidationError([FieldError(n, f"layer {self.name} has no filter {n!r}; accepted: {accepted}")
                                   for n in unknown])
        if q.ids is not None:
            where.append(f"{a}.id = ANY(:ids)")
            params["ids"] = list(q.ids)
        if applied and self.validity is not None:
            valid_from, valid_to = self.validity
            where.append(f"{valid_from} <= :at AND ({valid_to} IS NULL OR {valid_to} > :at)")
        if q.bbox is not None:
            where.append(f"ST_Intersects({self.geom_column}, ST_MakeEnvelope(:xmin, :ymin, :xmax, :ymax, 4326))")
            params.update(zip(("xmin", "ymin", "xmax", "ymax"), q.bbox))
        if q.start is not None or q.end is not None:
            if self.temporal_column is None:
                field_name = "start" if q.start is not None else "end"
                raise ValidationError(FieldError(field_name, f"layer {self.name} has no time field; drop start/end"))
            if q.start is not None:
                where.append(f"{self.temporal_column} >= :start")
                params["start"] = q.start
            if q.end is not None:
                where.append(f"{self.temporal_column} < :end")
                params["end"] = q.end
        for name, spec in self.filter_columns.items():
            values = q.filters.get(name) or (spec.default if applied else ())
            if values:
                condition, value = self._filter(name, spec, tuple(values))
                where.append(condition)
                params[f"f_{name}"] = value
        return where, params

    @staticmethod
    def _filter(name: str, spec: Filter, values: tuple[str, ...]) -> tuple[str, Any]:
        """Return one filter's SQL condition (from the layer's constants) and its bound value."""
        if spec.boolean:
            word = values[0].lower() if len(values) == 1 else ""
            if word not in _TRUE | _FALSE:
                raise ValidationError(FieldError(name, "must be true or false"))
            return f"({spec.column}) = :f_{name}", word in _TRUE
        if spec.integer:
            if not all(v.isascii() and v.isdigit() and len(v) <= 18 for v in values):
                raise ValidationError(FieldError(name, "give whole-number ids"))
            return f"{spec.column} = ANY(:f_{name})", [int(v) for v in values]
        if spec.choices is not None:
            bad = [v for v in values if v not in spec.choices]
            if bad:
                raise ValidationError(FieldError(
                    name, f"unknown value {bad[0]!r}; use one or more of {', '.join(spec.choices)}"))
        return f"{spec.column} = ANY(:f_{name})", list(values)
