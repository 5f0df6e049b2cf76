"""万米单元网格 · Unit grid cells, versioned: the cells in force at the query's moment."""

from __future__ import annotations

from typing import Any

from layers.base import Filter, Legend, LegendEntry, SqlLayer, Style, iso


class GridCellsLayer(SqlLayer):
    """Coded cells with their unit, community, area and squad."""

    name = "grid_cells"
    title_zh = "单元网格"
    title_en = "Unit grid cells"
    geometry_type = "MultiPolygon"
    style = Style(color="#6a6a6a", weight=0.8, opacity=0.8, fill_opacity=0.0)
    legend = Legend((LegendEntry("万米单元网格", "Unit grid cell (about 10,000 m²)",
                                 {"color": "#6a6a6a", "weight": 0.8}),))

    table = "grid_cell g"
    alias = "g"
    geom_column = "g.geom"
    select_columns = ("g.code", "g.community", "g.area_m2", "u.code AS unit_code", "u.name AS unit_name",
                      "sq.code AS squad_code", "sq.name AS squad_name", "g.valid_from", "g.valid_to")
    joins = ("JOIN admin_unit u ON u.id = g.admin_unit_id", "LEFT JOIN agency sq ON sq.id = g.squad_id")
    validity = ("g.valid_from", "g.valid_to")
    filter_columns = {
        "unit": Filter("u.code", "街道/乡镇编码 / administrative unit code(s)"),
        "squad": Filter("sq.code", "中队编码 / squad code(s)"),
    }

    def to_properties(self, row: Any) -> dict[str, Any]:
        """Return the cell's code, community, area, unit and squad."""
        return {"code": row.code, "community": row.community, "area_m2": round(row.area_m2, 1),
                "unit_code": row.unit_code, "unit_name": row.unit_name, "squad_code": row.squad_code,
                "squad_name": row.squad_name, "valid_from": iso(row.valid_from), "valid_to": iso(row.valid_to)}
