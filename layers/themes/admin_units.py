"""行政区划 · Administrative units: the county, its subdistricts, towns and development zones."""

from __future__ import annotations

from typing import Any

from gis_platform import vocab
from layers.base import Filter, Legend, LegendEntry, SqlLayer, Style


class AdminUnitsLayer(SqlLayer):
    """County, subdistrict, town and zone polygons with their GB/T 2260-style codes."""

    name = "admin_units"
    title_zh = "行政区划"
    title_en = "Administrative units"
    geometry_type = "MultiPolygon"
    style = Style(color="#555555", weight=1.5, fill_opacity=0.05,
                  by_property={"level": {"county": {"weight": 3, "fillOpacity": 0.0, "color": "#222222"}}})
    legend = Legend((LegendEntry("县界", "County boundary", {"color": "#222222", "weight": 3}),
                     LegendEntry("街道、乡镇、开发区", "Subdistricts, towns and zones", {"color": "#555555"})))

    table = "admin_unit u"
    alias = "u"
    geom_column = "u.geom"
    select_columns = ("u.code", "u.name", "u.name_en", "u.level", "p.code AS parent_code", "u.synthetic",
                      "u.grid_cell_size_m", "u.source")
    joins = ("LEFT JOIN admin_unit p ON p.id = u.parent_id",)
    filter_columns = {
        "level": Filter("u.level", "层级 / level: " + ", ".join(vocab.ADMIN_LEVELS), choices=vocab.ADMIN_LEVELS),
    }

    def to_properties(self, row: Any) -> dict[str, Any]:
        """Return the unit's code, names, level and provenance."""
        return {"code": row.code, "name": row.name, "name_en": row.name_en, "level": row.level,
                "level_zh": vocab.ADMIN_LEVEL_LABELS[row.level], "parent_code": row.parent_code,
                "synthetic": row.synthetic, "grid_cell_size_m": row.grid_cell_size_m, "source": row.source}
