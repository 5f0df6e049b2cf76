"""Route a report on two axes: *what* it is (power list → agency) and *where* it is (jurisdiction → unit).

The decision is the same whichever engine found the polygons covering a point:

1. The point must be inside the county; swapped latitude/longitude is called out as such.
2. The category's power decides the owner: the bureau (综合行政执法局) or a department.
3. Among the owner's units that hold a jurisdiction covering the point, one is chosen: for bureau
   powers only squads (中队) are candidates; for department powers the department and its teams.
4. ``covers`` semantics: a point on a shared border is covered by both sides. The tie-break is
   deterministic: the lowest agency code wins (for units and grid cells, the lowest code likewise).
   Codes are stable across reloads, unlike row ids.
5. No candidate covers the point: it falls back to the township office of its unit (属地兜底), flagged.
6. A point closer than ``near_boundary_m`` (default 30 m) to the chosen jurisdiction's boundary is
   flagged ``near_boundary`` so an operator confirms it: border reports going to the wrong body is the
   most common complaint against public systems of this kind.

Engines only answer "which polygons cover these points"; see ``grids.engine`` (in-process, Shapely)
and ``grids.pg_engine`` (PostGIS).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis_platform.coords import check_lonlat
from gis_platform.errors import FieldError, ValidationError

DEFAULT_NEAR_BOUNDARY_M = 30.0


@dataclass(frozen=True)
class AgencyRef:
    """An agency as routing reports it."""

    id: int
    code: str
    name: str
    kind: str


@dataclass(frozen=True)
class UnitRef:
    """An administrative unit as routing reports it."""

    id: int
    code: str
    name: str
    level: str


@dataclass(frozen=True)
class CellRef:
    """A grid cell as routing reports it."""

    id: int
    code: str


@dataclass(frozen=True)
class CategoryRule:
    """What the power list says about a category: who owns it, and which units may hold it."""

    id: int
    code: str
    name: str
    holder: str  # "bureau" or "department"
    owner_id: int
    candidate_ids: frozenset[int]
    # What a report of this category needs besides routing (kept here so a report reads no more rows).
    theme: str | None = None
    geometry_kind: str = "point"
    dup_radius_m: float = 0.0
    dup_window_h: float = 0.0


@dataclass(frozen=True)
class RouteResult:
    """The routing decision for one point and category, with the trace that explains it."""

    lon: float
    lat: float
    at: datetime
    category: str
    admin_unit: UnitRef
    grid_cell: CellRef | None
    owner: AgencyRef
    holder: str
    assigned: AgencyRef
    near_boundary: bool
    boundary_distance_m: float | None
    fallback_township: bool
    trace: tuple[str, ...]
    engine: str

    def as_record(self) -> dict[str, Any]:
        """Return the JSON kept on the case (``case.routing``)."""
        return {
            "engine": self.engine, "at": self.at.isoformat(), "category": self.category,
            "admin_unit": self.admin_unit.code, "grid_cell": self.grid_cell.code if self.grid_cell else None,
            "owner": self.owner.code, "holder": self.holder, "assigned": self.assigned.code,
            "assigned_kind": self.assigned.kind, "near_boundary": self.near_boundary,
            "boundary_distance_m": None if self.boundary_distance_m is None else round(self.boundary_distance_m, 2),
            "fallback_township": self.fallback_township, "trace": list(self.trace),
        }


class Hits:
    """Which polygons cover each point, as (point, polygon) pair arrays per layer.

    Arrays keep bulk work vectorised; ``units(k)``, ``cells(k)`` and ``jurisdictions(k)`` give one
    point's hits when the decision is taken.
    """

    def __init__(self, n: int, units: tuple[np.ndarray, np.ndarray], cells: tuple[np.ndarray, np.ndarray],
                 jurisdictions: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        self.n = n
        self._units = self._group(units[0], units[1])
        self._cells = self._group(cells[0], cells[1])
        j_pt, j_id, j_agency = jurisdictions
        self._j = self._group(j_pt, np.column_stack([j_id, j_agency]) if len(j_pt) else np.empty((0, 2), np.int64))

    def _group(self, pt: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pt = np.asarray(pt, np.int64)
        order = np.argsort(pt, kind="stable")
        bounds = np.searchsorted(pt[order], np.arange(self.n + 1))
        return bounds, np.asarray(ref)[order]

    @staticmethod
    def _slice(grouped: tuple[np.ndarray, np.ndarray], k: int) -> np.ndarray:
        bounds, refs = grouped
        return refs[bounds[k]:bounds[k + 1]]

    def units(self, k: int) -> list[int]:
        """Return the unit ids covering point k."""
        return self._slice(self._units, k).tolist()

    def cells(self, k: int) -> list[int]:
        """Return the grid-cell ids covering point k."""
        return self._slice(self._cells, k).tolist()

    def jurisdictions(self, k: int) -> list[tuple[int, int]]:
        """Return the (jurisdiction id, agency id) pairs covering point k."""
        return [(int(a), int(b)) for a, b in self._slice(self._j, k)]

    def first_cell(self) -> np.ndarray:
        """Return, per point, the lowest cell id covering it (-1 for none); for bulk statistics."""
        bounds, refs = self._cells
        out = np.full(self.n, -1, np.int64)
        has = bounds[1:] > bounds[:-1]
        out[has] = refs[bounds[:-1][has]]
        return out


class Engine(Protocol):
    """What an engine answers; the decision itself is shared (``Router``)."""

    name: str

    def in_county(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray: ...

    def hits(self, lon: np.ndarray, lat: np.ndarray, groups: np.ndarray,
             group_agencies: Sequence[frozenset[int]]) -> Hits: ...

    def boundary_distance_m(self, jurisdiction_ids: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray: ...


@dataclass
class Catalogue:
    """The non-spatial facts routing needs: agencies, units, cells' codes, category rules, bounds."""

    county_code: str
    bounds: tuple[float, float, float, float]
    agencies: dict[int, AgencyRef]
    units: dict[int, UnitRef]
    cell_codes: dict[int, str]
    township_office: dict[int, int]  # admin unit id → township office agency id
    categories: dict[str, CategoryRule]
    jurisdiction_agency: dict[int, int] = field(default_factory=dict)
    # (category id, urgency) → working-hour limit, for the case clock.
    time_limits: dict[tuple[int, str], float] = field(default_factory=dict)
    # The ``catalogue_change`` revision it was read at (None: read inside a transaction that changed it).
    revision: int | None = None

    def __post_init__(self) -> None:
        self.categories_by_id = {rule.id: rule for rule in self.categories.values()}

    def rule(self, code: str) -> CategoryRule:
        """Return the category's rule, or raise naming the field."""
        try:
            return self.categories[code]
        except KeyError:
            known = ", ".join(sorted(self.categories)[:12])
            raise ValidationError(FieldError("category", f"unknown category code {code!r} (known: {known} …)")) from None


def load_catalogue(session: Session, county_code: str, at: datetime | None = None) -> Catalogue:
    """Read the facts routing needs for a county from the store."""
    at = at or datetime.now(UTC)
    revision, dirty = session.execute(REVISION_SQL).one()
    revision = None if dirty else revision
    row = session.execute(text(
        "SELECT ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) FROM admin_unit "
        "WHERE county_code = :c AND level = 'county'"), {"c": county_code}).first()
    if row is None:
        raise ValidationError(FieldError("county_code", f"county {county_code} has no boundary loaded"))
    agencies = {r.id: AgencyRef(r.id, r.code, r.name, r.kind) for r in session.execute(text(
        "SELECT id, code, name, kind FROM agency WHERE county_code = :c"), {"c": county_code})}
    parents = dict(session.execute(text(
        "SELECT id, parent_id FROM agency WHERE county_code = :c AND parent_id IS NOT NULL"),
        {"c": county_code}).all())
    units = {r.id: UnitRef(r.id, r.code, r.name, r.level) for r in session.execute(text(
        "SELECT id, code, name, level FROM admin_unit WHERE county_code = :c AND level <> 'county'"),
        {"c": county_code})}
    # Codes of every cell version: the engines decide which versions are in force at a moment.
    cells = dict(session.execute(text("SELECT id, code FROM grid_cell WHERE county_code = :c"),
                                 {"c": county_code}).all())
    offices = dict(session.execute(text(
        "SELECT admin_unit_id, id FROM agency WHERE county_code = :c AND kind = 'township_office' "
        "AND admin_unit_id IS NOT NULL ORDER BY code DESC"), {"c": county_code}).all())
    jurisdiction_agency = dict(session.execute(text(
        "SELECT id, agency_id FROM jurisdiction WHERE county_code = :c"), {"c": county_code}).all())

    def subtree(root: int) -> set[int]:
        found = {root}
        changed = True
        while changed:
            changed = False
            for child, parent in parents.items():
                if parent in found and child not in found:
                    found.add(child)
                    changed = True
        return found

    categories: dict[str, CategoryRule] = {}
    for r in session.execute(text(
        "SELECT c.id, c.code, c.name, p.exercised_by, p.agency_id, c.theme, c.geometry_kind, c.dup_radius_m, "
        "c.dup_window_h FROM category c "
        "JOIN power p ON p.id = c.power_id WHERE c.county_code = :c AND c.active"), {"c": county_code}):
        members = subtree(r.agency_id)
        if r.exercised_by == "bureau":
            candidates = {a for a in members if agencies[a].kind == "squad"}
        else:
            candidates = {a for a in members if agencies[a].kind != "township_office"}
        categories[r.code] = CategoryRule(r.id, r.code, r.name, r.exercised_by, r.agency_id, frozenset(candidates),
                                          r.theme, r.geometry_kind, float(r.dup_radius_m), float(r.dup_window_h))
    limits = {(r[0], r[1]): float(r[2]) for r in session.execute(text(
        "SELECT t.category_id, t.urgency, t.working_hours FROM time_limit t JOIN category c ON c.id = t.category_id "
        "WHERE c.county_code = :c"), {"c": county_code})}
    return Catalogue(county_code, (row[0], row[1], row[2], row[3]), agencies, units, cells, offices, categories,
                     jurisdiction_agency, limits, revision)


class RoutingError(ValidationError):
    """A point could not be routed; carries the field and the reason."""


class Router:
    """Apply the routing rules to points, whichever engine finds the covering polygons."""

    def __init__(self, catalogue: Catalogue, engine: Engine, *, near_boundary_m: float = DEFAULT_NEAR_BOUNDARY_M,
                 at: datetime | None = None) -> None:
        self.catalogue = catalogue
        self.engine = engine
        self.near_boundary_m = near_boundary_m
        self.at = at or datetime.now(UTC)
        rules = sorted(catalogue.categories.values(), key=lambda r: r.code)
        self._group_of = {r.code: i for i, r in enumerate(rules)}
        self._group_agencies = [r.candidate_ids for r in rules]

    def route(self, lon: Any, lat: Any, category: str) -> RouteResult:
        """Route one point, or raise a ValidationError naming the field."""
        outcome = self.route_many([lon], [lat], [category])[0]
        if isinstance(outcome, ValidationError):
            raise outcome
        return outcome

    def route_many(self, lons: Sequence[Any], lats: Sequence[Any],
                   categories: Sequence[str]) -> list[RouteResult | ValidationError]:
        """Route many points at once; each item is a result or the error for that point."""
        n = len(lons)
        out: list[RouteResult | ValidationError | None] = [None] * n
        lon = np.full(n, np.nan)
        lat = np.full(n, np.nan)
        groups = np.full(n, -1, dtype=np.int64)
        for i in range(n):
            try:
                self.catalogue.rule(categories[i])
                lon[i], lat[i] = check_lonlat(lons[i], lats[i], field="location", bounds=self.catalogue.bounds)
                groups[i] = self._group_of[categories[i]]
            except ValidationError as exc:
                out[i] = exc
        ok = np.flatnonzero(groups >= 0)
        if len(ok):
            inside = self.engine.in_county(lon[ok], lat[ok])
            for i in ok[~inside]:
                out[i] = RoutingError(FieldError(
                    "location", f"({lon[i]:.6f}, {lat[i]:.6f}) is outside the county {self.catalogue.county_code}"))
            ok = ok[inside]
        if len(ok):
            hits = self.engine.hits(lon[ok], lat[ok], groups[ok], self._group_agencies)
            chosen: list[Any] = []
            for k, i in enumerate(ok):
                try:
                    chosen.append(self._choose(hits, k, categories[i]))
                except ValidationError as exc:
                    chosen.append(exc)
            with_j = [k for k, c in enumerate(chosen) if not isinstance(c, ValidationError) and c[3] is not None]
            distances = np.full(len(ok), np.nan)
            if with_j:
                idx = np.array(with_j)
                distances[idx] = self.engine.boundary_distance_m(
                    np.array([chosen[k][3] for k in with_j]), lon[ok][idx], lat[ok][idx])
            for k, i in enumerate(ok):
                if isinstance(chosen[k], ValidationError):
                    out[i] = chosen[k]
                else:
                    out[i] = self._result(float(lon[i]), float(lat[i]), categories[i], chosen[k], distances[k])
        return out  # type: ignore[return-value]

    def _choose(self, hits: Hits, k: int, category: str) -> tuple[Any, ...]:
        cat = self.catalogue
        rule = cat.rule(category)
        trace = [f"category {rule.code} {rule.name}: power exercised by the {rule.holder}, "
                 f"owner {cat.agencies[rule.owner_id].code}"]
        units = sorted(hits.units(k), key=lambda u: cat.units[u].code)
        if not units:
            raise RoutingError(FieldError(
                "location", "no administrative unit covers this point: the unit boundaries have a gap here"))
        unit = cat.units[units[0]]
        trace.append(f"admin unit {unit.code} {unit.name}" + (
            f" (on a border with {', '.join(cat.units[u].code for u in units[1:])}; lowest code wins)"
            if len(units) > 1 else ""))
        cells = sorted(hits.cells(k), key=lambda c: cat.cell_codes.get(c, ""))
        cell = CellRef(cells[0], cat.cell_codes[cells[0]]) if cells else None
        trace.append(f"grid cell {cell.code}" if cell else "no grid cell in force here")
        covering = sorted(((cat.agencies[a].code, a, j) for j, a in hits.jurisdictions(k)
                           if a in rule.candidate_ids))
        if covering:
            code, agency_id, jurisdiction_id = covering[0]
            others = sorted({c for c, _, _ in covering[1:] if c != code})
            trace.append(f"jurisdiction of {code} covers the point" + (
                f"; also covered by {', '.join(others)}: lowest code wins" if others else ""))
            return unit, cell, agency_id, jurisdiction_id, False, trace
        office = cat.township_office.get(unit.id)
        if office is None:
            raise RoutingError(FieldError(
                "location", f"no unit of {cat.agencies[rule.owner_id].code} covers this point and "
                            f"{unit.code} has no township office to fall back to"))
        trace.append(f"no unit of the owner covers the point: falls back to the township office "
                     f"{cat.agencies[office].code} (属地兜底)")
        return unit, cell, office, None, True, trace

    def _result(self, lon: float, lat: float, category: str, chosen: tuple[Any, ...], distance: float) -> RouteResult:
        unit, cell, agency_id, jurisdiction_id, fallback, trace = chosen
        rule = self.catalogue.rule(category)
        near = bool(jurisdiction_id is not None and distance < self.near_boundary_m)
        if jurisdiction_id is not None:
            trace.append(f"{distance:.1f} m from the jurisdiction boundary"
                         + (f" (< {self.near_boundary_m:g} m: operator to confirm)" if near else ""))
        return RouteResult(
            lon=lon, lat=lat, at=self.at, category=rule.code, admin_unit=unit, grid_cell=cell,
            owner=self.catalogue.agencies[rule.owner_id], holder=rule.holder,
            assigned=self.catalogue.agencies[agency_id], near_boundary=near,
            boundary_distance_m=None if jurisdiction_id is None else float(distance),
            fallback_township=fallback, trace=tuple(trace), engine=self.engine.name,
        )


def point_array(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Return shapely points for coordinate arrays."""
    return shapely.points(np.asarray(lon, float), np.asarray(lat, float))


# The catalogue changes rarely (an import, a redraw, a new category) but is read on every report: each
# process keeps it in memory, per database and county, under the revision it was read at: the number of
# committed transactions that changed a table it comes from (``catalogue_change``, migration 0006). A
# transaction that changed the catalogue itself ("dirty") reads it fresh and leaves the shared copy alone.
REVISION_SQL = text("SELECT (SELECT count(*) FROM catalogue_change) AS revision, "
                    "coalesce(current_setting('gis.catalogue_dirty', true) = 'on', false) AS dirty")
_CATALOGUES: dict[tuple[str, str], Catalogue] = {}


def _cache_key(session: Session, county_code: str) -> tuple[str, str]:
    return (session.connection().engine.url.render_as_string(hide_password=True), county_code)


def cached_catalogue(session: Session, county_code: str, *, revision: int | None = None,
                     dirty: bool = False) -> Catalogue:
    """Return the county's catalogue, re-reading it only when the underlying tables changed.

    ``revision`` and ``dirty`` are what ``REVISION_SQL`` says now, when the caller has just read them (a
    report reads them in its routing query); otherwise they are read here.
    """
    if revision is None:
        revision, dirty = session.execute(REVISION_SQL).one()
    if dirty:
        return load_catalogue(session, county_code)  # revision None: never mistaken for a shared copy
    key = _cache_key(session, county_code)
    hit = _CATALOGUES.get(key)
    if hit is not None and hit.revision == revision:
        return hit
    catalogue = load_catalogue(session, county_code)
    if catalogue.revision == revision:
        _CATALOGUES[key] = catalogue
    return catalogue


def last_catalogue(session: Session, county_code: str) -> Catalogue | None:
    """Return the catalogue this process last read for the county, current or not (the caller checks)."""
    return _CATALOGUES.get(_cache_key(session, county_code))


def route_point(session: Session, county_code: str, lon: Any, lat: Any, category: str, *,
                at: datetime | None = None, metric_srid: int = 4548,
                near_boundary_m: float = DEFAULT_NEAR_BOUNDARY_M) -> RouteResult:
    """Route one report with the PostGIS engine, as the API does for each request."""
    return route_report(session, county_code, lon, lat, category, at=at, metric_srid=metric_srid,
                        near_boundary_m=near_boundary_m)[0]


def current_catalogue(session: Session, county_code: str) -> Catalogue:
    """Return the catalogue last read by this process, or read it: a report confirms it in its routing query."""
    return last_catalogue(session, county_code) or cached_catalogue(session, county_code)


def route_report(session: Session, county_code: str, lon: Any, lat: Any, category: str, *,
                 at: datetime | None = None, metric_srid: int = 4548,
                 near_boundary_m: float = DEFAULT_NEAR_BOUNDARY_M,
                 catalogue: Catalogue | None = None) -> tuple[RouteResult, Catalogue]:
    """Route one point in one database round trip; return the decision and the catalogue it used.

    The query also reads the catalogue revision: when this process's copy turns out to be stale (or
    does not know the category yet) it is re-read and the point routed again, so a redraw or a new
    category takes effect on the very next report.
    """
    from grids.pg_engine import PgEngine

    at = at or datetime.now(UTC)
    catalogue = catalogue or current_catalogue(session, county_code)
    engine = PgEngine(session, county_code, at=at, metric_srid=metric_srid)
    for attempt in (1, 2):
        if category not in catalogue.categories and attempt == 1:
            catalogue = cached_catalogue(session, county_code)
        rule = catalogue.rule(category)
        x, y = check_lonlat(lon, lat, field="location", bounds=catalogue.bounds)
        found = engine.single(x, y, rule.candidate_ids)
        if (found.revision == catalogue.revision and not found.dirty) or attempt == 2:
            break
        catalogue = cached_catalogue(session, county_code, revision=found.revision, dirty=found.dirty)
    if not found.inside:
        raise RoutingError(FieldError(
            "location", f"({x:.6f}, {y:.6f}) is outside the county {catalogue.county_code}"))
    router = Router(catalogue, engine, near_boundary_m=near_boundary_m, at=at)
    chosen = router._choose(found.hits, 0, category)
    distance = found.distances.get(chosen[3], float("nan")) if chosen[3] is not None else float("nan")
    return router._result(x, y, category, chosen, distance), catalogue
