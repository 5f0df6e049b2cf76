"""违法建设 · Illegal structures: footprints with their stage from discovery to demolition."""

from __future__ import annotations

from typing import Any

from gis_platform import vocab
from layers.base import Filter, Legend, LegendEntry, SqlLayer, Style, iso

DEMOLISHED = ("self_demolished", "forced_demolished")
STAGE_COLOURS = {"discovered": "#e66101", "filed": "#e66101", "order_served": "#b2182b",
                 "self_demolished": "#4d9221", "forced_demolished": "#4d9221", "closed": "#878787"}


class IllegalStructuresLayer(SqlLayer):
    """Footprint polygons, red while standing and green once demolished."""

    name = "illegal_structures"
    title_zh = "违法建设"
    title_en = "Illegal structures"
    geometry_type = "MultiPolygon"
    temporal_field = "discovered_at"
    temporal_column = "s.discovered_at"
    style = Style(color="#e66101", weight=2, fill_opacity=0.5,
                  by_property={"stage": {k: {"color": c, "fillColor": c} for k, c in STAGE_COLOURS.items()}})
    legend = Legend((
        LegendEntry("未拆除（发现、立案）", "Standing (discovered, filed)", {"color": STAGE_COLOURS["discovered"]}),
        LegendEntry("已下达限拆通知", "Demolition order served", {"color": STAGE_COLOURS["order_served"]}),
        LegendEntry("已拆除（自行、强制）", "Demolished (by the builder or by force)",
                    {"color": STAGE_COLOURS["self_demolished"]}),
        LegendEntry("结案", "Closed", {"color": STAGE_COLOURS["closed"]}),
    ))

    table = "illegal_structure s"
    alias = "s"
    geom_column = "s.footprint"
    select_columns = ("s.stage", "s.area_m2", "s.address", "s.discovered_at", "s.order_served_at", "s.demolished_at",
                      "c.case_no", "u.name AS unit_name", "sq.code AS squad_code", "sq.name AS squad_name")
    joins = ('LEFT JOIN "case" c ON c.id = s.case_id', "LEFT JOIN admin_unit u ON u.id = s.admin_unit_id",
             "LEFT JOIN agency sq ON sq.id = s.squad_id")
    filter_columns = {
        "stage": Filter("s.stage", "阶段 / stage: " + ", ".join(vocab.STRUCTURE_STAGES), choices=vocab.STRUCTURE_STAGES),
        "squad": Filter("sq.code", "中队编码 / squad code(s)"),
    }

    def to_properties(self, row: Any) -> dict[str, Any]:
        """Return the stage with its label, the measured area and the dates."""
        return {"stage": row.stage, "stage_zh": vocab.STRUCTURE_STAGE_LABELS[row.stage],
                "demolished": row.stage in DEMOLISHED, "area_m2": round(row.area_m2, 1), "address": row.address,
                "discovered_at": iso(row.discovered_at), "order_served_at": iso(row.order_served_at),
                "demolished_at": iso(row.demolished_at), "case_no": row.case_no, "unit_name": row.unit_name,
                "squad_code": row.squad_code, "squad_name": row.squad_name}
