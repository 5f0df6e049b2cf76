"""执法中队辖区 · Squad jurisdictions, versioned: the versions in force at the query's moment."""

from __future__ import annotations

import re
import zlib
from typing import Any

from gis_platform import vocab
from layers.base import Filter, Legend, LegendEntry, SqlLayer, Style, iso

# Ten clearly distinct colours (one per squad of "3+5+2"), picked by the code's number so that a
# squad keeps its colour across sessions and maps.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def palette_colour(code: str) -> str:
    """Return the fixed colour of an agency code (its trailing number, else a checksum, picks it)."""
    digits = re.search(r"(\d+)$", code)
    index = int(digits.group(1)) - 1 if digits else zlib.crc32(code.encode("utf-8"))
    return PALETTE[index % len(PALETTE)]


class JurisdictionsLayer(SqlLayer):
    """Each agency unit's area; squads by default, coloured by squad code."""

    name = "jurisdictions"
    title_zh = "中队辖区"
    title_en = "Squad jurisdictions"
    geometry_type = "MultiPolygon"
    style = Style(weight=2, fill_opacity=0.15, color_property="color")
    legend = Legend((LegendEntry("执法中队辖区（按中队着色）", "Squad jurisdiction (one colour per squad)",
                                 {"color": PALETTE[0], "fillOpacity": 0.15}),))

    table = "jurisdiction j"
    alias = "j"
    geom_column = "j.geom"
    select_columns = ("a.code AS agency_code", "a.name AS agency_name", "a.name_en AS agency_name_en",
                      "a.kind AS agency_kind", "j.version", "j.valid_from", "j.valid_to", "j.note")
    joins = ("JOIN agency a ON a.id = j.agency_id",)
    validity = ("j.valid_from", "j.valid_to")
    filter_columns = {
        "kind": Filter("a.kind", "单位类型 / agency kind (default squad): " + ", ".join(vocab.AGENCY_KINDS),
                       choices=vocab.AGENCY_KINDS, default=("squad",)),
        "agency": Filter("a.code", "单位编码 / agency code(s)"),
    }

    def to_properties(self, row: Any) -> dict[str, Any]:
        """Return the agency, the version and its validity, and the squad's colour."""
        return {"agency_code": row.agency_code, "agency_name": row.agency_name,
                "agency_name_en": row.agency_name_en, "agency_kind": row.agency_kind,
                "agency_kind_zh": vocab.AGENCY_KIND_LABELS[row.agency_kind], "version": row.version,
                "valid_from": iso(row.valid_from), "valid_to": iso(row.valid_to), "note": row.note,
                "color": palette_colour(row.agency_code)}
