"""The command centre's map and the data its page needs: county extent, categories, squads, dispatch targets.

The queue's service targets are the command centre's own (wall-clock minutes from the report, since the
centre is staffed round the clock): verify, then dispatch, sooner for urgent and emergency reports. The
handling clock in working hours starts only at dispatch and is the case service's (``layers.cases.clock``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import folium
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gis_platform import models as m
from gis_platform import vocab
from gis_platform.settings import Settings
from layers.registry import get_layer
from webmap.elements import ApiGeoJsonLayer, LiveCasesLayer, LiveEvents, MapLegend, legend_section
from webmap.maps import Basemap, basemap_from, county_map

ROLES = ("operator", "supervisor", "admin")
QUEUE_STATUSES = ("reported", "filed", "returned")
# Minutes from the report by urgency: (verify within, dispatch within).
QUEUE_TARGETS_MIN: dict[str, tuple[int, int]] = {"normal": (60, 120), "urgent": (30, 60), "emergency": (15, 30)}
QUEUE_LIMIT = 100  # cases per queue page; the urgent and emergency ones get a page of their own
QUEUE_URGENT = ("urgent", "emergency")
DETAIL_ZOOM = 14  # api.tiles.CLUSTER_BELOW_ZOOM: below it the case tiles are aggregates
GRID_MIN_ZOOM = 15  # unit grids are drawn from here on (about 100 m cells are a few pixels below it)
FOOTPRINT_MIN_ZOOM = 12
FUME_MIN_ZOOM = 13
MAX_MARKERS = 2000
DISPATCH_KINDS = ("squad", "dept_team", "department", "township_office")


@dataclass(frozen=True)
class Option:
    """One choice of a filter or of the dispatch form."""

    value: str
    zh: str
    en: str
    id: int | None = None
    kind: str | None = None


def county_extent(session: Session, county_code: str) -> tuple[float, float, float, float] | None:
    """Return the county's bounding box (minLon, minLat, maxLon, maxLat), or None when it has no boundary."""
    box = select(func.ST_Extent(m.AdminUnit.geom).label("box")).where(
        m.AdminUnit.county_code == county_code, m.AdminUnit.level == "county").subquery()
    row = session.execute(select(func.ST_XMin(box.c.box), func.ST_YMin(box.c.box), func.ST_XMax(box.c.box),
                                 func.ST_YMax(box.c.box))).one()
    return None if row[0] is None else (float(row[0]), float(row[1]), float(row[2]), float(row[3]))


def category_options(session: Session, county_code: str) -> list[Option]:
    """Return the county's categories, by code."""
    rows = session.execute(select(m.Category.code, m.Category.name, m.Category.name_en)
                           .where(m.Category.county_code == county_code).order_by(m.Category.code))
    return [Option(code, f"{code} {name}", f"{code} {name_en}") for code, name, name_en in rows]


def agency_options(session: Session, county_code: str, kinds: tuple[str, ...]) -> list[Option]:
    """Return the county's agencies of the given kinds, in kind order then by code."""
    rows = session.execute(select(m.Agency.id, m.Agency.code, m.Agency.name, m.Agency.name_en, m.Agency.kind)
                           .where(m.Agency.county_code == county_code, m.Agency.kind.in_(kinds))
                           .order_by(m.Agency.code))
    options = [Option(code, name, name_en, id=id_, kind=kind) for id_, code, name, name_en, kind in rows]
    return sorted(options, key=lambda o: kinds.index(o.kind or ""))


@dataclass(frozen=True)
class CommandPage:
    """What the command page is built from (plain values, so the page template escapes them)."""

    extent: tuple[float, float, float, float] | None
    categories: list[Option]
    squads: list[Option]
    dispatch_targets: list[Option]

    def client_config(self) -> dict[str, Any]:
        """Return the page's settings for command.js."""
        return {
            "queueStatuses": list(QUEUE_STATUSES), "queueLimit": QUEUE_LIMIT, "queueUrgent": list(QUEUE_URGENT),
            "queueTargetsMin": {k: list(v) for k, v in QUEUE_TARGETS_MIN.items()},
            "openStatuses": list(vocab.OPEN_STATUSES), "statuses": list(vocab.CASE_STATUSES),
            "detailZoom": DETAIL_ZOOM,
            "dispatchTargets": [asdict(o) for o in self.dispatch_targets],
            "squads": [asdict(o) for o in self.squads],
        }


def load_command_page(session: Session, county_code: str) -> CommandPage:
    """Read what the command page needs from the database."""
    return CommandPage(extent=county_extent(session, county_code),
                       categories=category_options(session, county_code),
                       squads=agency_options(session, county_code, ("squad",)),
                       dispatch_targets=agency_options(session, county_code, DISPATCH_KINDS))


# Popup fields per layer: (property, Chinese label, English label). Values are set as text by gismap.js.
CASE_FIELDS = (("category_name", "类别", "Category"), ("status_zh", "状态", "Status"),
               ("urgency_zh", "紧急程度", "Urgency"), ("agency_name", "承办单位", "Assigned unit"),
               ("reported_at", "上报时间", "Reported"), ("address", "地址", "Address"))
JURISDICTION_FIELDS = (("agency_name", "中队", "Squad"), ("agency_code", "编码", "Code"),
                       ("version", "版本", "Version"))
GRID_FIELDS = (("code", "网格编码", "Grid code"), ("unit_name", "街道/乡镇", "Township"),
               ("squad_name", "中队", "Squad"), ("area_m2", "面积（m²）", "Area (m²)"))
STRUCTURE_FIELDS = (("stage_zh", "阶段", "Stage"), ("area_m2", "面积（m²）", "Area (m²)"),
                    ("address", "地址", "Address"), ("squad_name", "中队", "Squad"),
                    ("discovered_at", "发现时间", "Discovered"), ("case_no", "案卷号", "Case"))
FUME_FIELDS = (("address", "地址", "Address"), ("size_class_zh", "规模", "Size"),
               ("last_concentration_mg_m3", "最近检测（mg/m³）", "Last measured (mg/m³)"),
               ("last_inspected_at", "检测时间", "Inspected"), ("squad_name", "中队", "Squad"))
ADMIN_FIELDS = (("level_zh", "层级", "Level"), ("code", "代码", "Code"))


def command_map(settings: Settings, extent: tuple[float, float, float, float] | None, *,
                basemap: Basemap | None = None) -> folium.Map:
    """Return the command centre's map: areas, grids, footprints, fume sites and live cases, with a legend."""
    fmap = county_map(settings, extent, basemap=basemap or basemap_from(settings))
    admin, squads, grids = get_layer("admin_units"), get_layer("jurisdictions"), get_layer("grid_cells")
    structures, fumes, cases = get_layer("illegal_structures"), get_layer("fume_sites"), get_layer("cases")
    ApiGeoJsonLayer(admin, pane="areas", by_view=False, title_property="name", fields=ADMIN_FIELDS,
                    show=False).add_to(fmap)
    ApiGeoJsonLayer(squads, pane="areas", by_view=False, label_property="agency_name",
                    title_property="agency_name", fields=JURISDICTION_FIELDS).add_to(fmap)
    ApiGeoJsonLayer(grids, pane="grids", min_zoom=GRID_MIN_ZOOM, title_property="code",
                    fields=GRID_FIELDS).add_to(fmap)
    ApiGeoJsonLayer(structures, pane="footprints", min_zoom=FOOTPRINT_MIN_ZOOM, title_property="address",
                    fields=STRUCTURE_FIELDS).add_to(fmap)
    ApiGeoJsonLayer(fumes, pane="points", min_zoom=FUME_MIN_ZOOM, title_property="name",
                    fields=FUME_FIELDS).add_to(fmap)
    LiveCasesLayer(cases, detail_zoom=DETAIL_ZOOM, max_markers=MAX_MARKERS, statuses=vocab.OPEN_STATUSES,
                   fields=CASE_FIELDS).add_to(fmap)
    LiveEvents().add_to(fmap)
    clusters = {"title": {"zh": "案件聚合", "en": "Case clusters"}, "geometry": "point", "entries": [
        {"label": {"zh": "多件案件（圆越大越多）", "en": "Several cases (bigger = more)"},
         "style": {"color": "#1d4e89", "fillColor": "#4a90d9", "fillOpacity": 0.6, "weight": 1, "radius": 8}},
        {"label": {"zh": "含超期案件", "en": "Some overdue"},
         "style": {"color": "#d7191c", "fillColor": "#4a90d9", "fillOpacity": 0.6, "weight": 3, "radius": 8}}]}
    MapLegend([legend_section(cases), legend_section(squads), legend_section(structures),
               legend_section(fumes)], extra=[clusters]).add_to(fmap)
    folium.LayerControl(position="topright", collapsed=False).add_to(fmap)
    return fmap
