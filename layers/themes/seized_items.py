"""暂扣物品 · Seized items, drawn at the location of the case they were seized under."""

from __future__ import annotations

from typing import Any

from gis_platform import vocab
from layers.base import ASSIGNED_FILTER, Filter, Legend, LegendEntry, SqlLayer, Style, assigned_filter, iso

STATUS_LABELS = {"held": "暂扣中", "returned": "已退还", "confiscated": "已没收"}
STATUS_COLOURS = {"held": "#e66101", "returned": "#1a9641", "confiscated": "#5e3c99"}


class SeizedItemsLayer(SqlLayer):
    """Goods temporarily seized, coloured by what became of them."""

    name = "seized_items"
    title_zh = "暂扣物品"
    title_en = "Seized items"
    geometry_type = "Point"
    temporal_field = "seized_at"
    temporal_column = "s.seized_at"
    style = Style(color="#333333", weight=1, fill_opacity=0.9, radius=5,
                  by_property={"status": {k: {"fillColor": c} for k, c in STATUS_COLOURS.items()}})
    legend = Legend(tuple(LegendEntry(STATUS_LABELS[k], k.capitalize(), {"fillColor": c})
                          for k, c in STATUS_COLOURS.items()))

    table = "seized_item s"
    alias = "s"
    geom_column = "c.location"
    select_columns = ("s.description", "s.quantity", "s.status", "s.seized_at", "s.resolved_at", "c.case_no")
    joins = ('JOIN "case" c ON c.id = s.case_id',)
    filter_columns = {
        "status": Filter("s.status", "状态 / status: " + ", ".join(vocab.SEIZED_STATUSES),
                         choices=vocab.SEIZED_STATUSES),
        ASSIGNED_FILTER: assigned_filter("c.assigned_agency_id"),  # visibility, set by the API
    }

    def to_properties(self, row: Any) -> dict[str, Any]:
        """Return what was seized, how many, when, and its status."""
        return {"description": row.description, "quantity": row.quantity, "status": row.status,
                "status_zh": STATUS_LABELS[row.status], "seized_at": iso(row.seized_at),
                "resolved_at": iso(row.resolved_at), "case_no": row.case_no}
