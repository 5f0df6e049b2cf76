"""餐饮油烟 · Restaurant fume sites with their latest inspection (GB 18483-2001)."""

from __future__ import annotations

from typing import Any

from gis_platform import vocab
from layers.base import Filter, Legend, LegendEntry, SqlLayer, Style, iso

SIZE_LABELS = {"small": "小型（1–2 个灶头）", "medium": "中型（3–5 个灶头）", "large": "大型（6 个及以上灶头）"}
EXCEEDED_RED = "#d7191c"


class FumeSitesLayer(SqlLayer):
    """Restaurant points; the latest inspection at or before the query's moment decides the colour."""

    name = "fume_sites"
    title_zh = "餐饮油烟"
    title_en = "Restaurant fume sites"
    geometry_type = "Point"
    style = Style(color="#636363", fill_color="#bdbdbd", weight=1, fill_opacity=0.9, radius=5, by_property={
        "exceeded": {"false": {"fillColor": "#31a354"}, "true": {"color": EXCEEDED_RED, "fillColor": EXCEEDED_RED,
                                                                 "radius": 8, "weight": 2}},
    })
    legend = Legend((
        LegendEntry("最近一次检测达标", "Latest inspection within the limit", {"fillColor": "#31a354"}),
        LegendEntry("最近一次检测超标", "Latest inspection over the limit", {"fillColor": EXCEEDED_RED}),
        LegendEntry("尚未检测", "Not yet inspected", {"fillColor": "#bdbdbd"}),
    ))

    table = "fume_site f"
    alias = "f"
    geom_column = "f.geom"
    select_columns = ("f.name", "f.address", "f.licence_no", "f.cooking_heads", "f.size_class",
                      "f.purifier_installed", "f.purifier_efficiency", "li.inspected_at AS last_inspected_at",
                      "li.concentration_mg_m3 AS last_concentration_mg_m3", "li.limit_mg_m3", "li.exceeded",
                      "sq.code AS squad_code", "sq.name AS squad_name")
    # LATERAL: one index probe per site for its latest inspection, instead of ranking every inspection.
    joins = ("LEFT JOIN LATERAL (SELECT fi.inspected_at, fi.concentration_mg_m3, fi.limit_mg_m3, fi.exceeded "
             "FROM fume_inspection fi WHERE fi.site_id = f.id AND fi.inspected_at <= CAST(:at AS timestamptz) "
             "ORDER BY fi.inspected_at DESC, fi.id DESC LIMIT 1) li ON true",
             "LEFT JOIN agency sq ON sq.id = f.squad_id")
    filter_columns = {
        "size_class": Filter("f.size_class", "规模 / size class: " + ", ".join(vocab.FUME_SIZE_CLASSES),
                             choices=vocab.FUME_SIZE_CLASSES),
        "exceeded": Filter("COALESCE(li.exceeded, false)", "最近一次检测超标 / latest inspection over the limit: "
                           "true or false", boolean=True),
        "squad": Filter("sq.code", "中队编码 / squad code(s)"),
    }

    def to_properties(self, row: Any) -> dict[str, Any]:
        """Return the premises, its purifier and its latest measurement against the limit."""
        return {"name": row.name, "address": row.address, "licence_no": row.licence_no,
                "cooking_heads": row.cooking_heads, "size_class": row.size_class,
                "size_class_zh": SIZE_LABELS[row.size_class], "purifier_installed": row.purifier_installed,
                "purifier_efficiency": row.purifier_efficiency, "last_inspected_at": iso(row.last_inspected_at),
                "last_concentration_mg_m3": row.last_concentration_mg_m3, "limit_mg_m3": row.limit_mg_m3,
                "exceeded": row.exceeded, "squad_code": row.squad_code, "squad_name": row.squad_name}
