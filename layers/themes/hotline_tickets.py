"""热线工单 · Hotline tickets (12345 and others), tracked to reply and closure."""

from __future__ import annotations

from typing import Any

from gis_platform import vocab
from layers.base import ASSIGNED_FILTER, Filter, Legend, LegendEntry, SqlLayer, Style, assigned_filter, iso

STATUS_LABELS = {"open": "办理中", "replied": "已答复", "closed": "已办结"}
STATUS_COLOURS = {"open": "#e66101", "replied": "#2c7fb8", "closed": "#1a9641"}


class HotlineTicketsLayer(SqlLayer):
    """Ticket points coloured by status; tickets without a location have a null geometry."""

    name = "hotline_tickets"
    title_zh = "热线工单"
    title_en = "Hotline tickets"
    geometry_type = "Point"
    temporal_field = "received_at"
    temporal_column = "h.received_at"
    style = Style(color="#333333", weight=1, fill_opacity=0.9, radius=5,
                  by_property={"status": {k: {"fillColor": c} for k, c in STATUS_COLOURS.items()}})
    legend = Legend(tuple(LegendEntry(STATUS_LABELS[k], k.capitalize(), {"fillColor": c})
                          for k, c in STATUS_COLOURS.items()))

    table = "hotline_ticket h"
    alias = "h"
    geom_column = "h.geom"
    select_columns = ("h.external_no", "h.channel", "h.status", "h.received_at", "h.reply_due_at", "h.replied_at",
                      "h.closed_at", "c.case_no")
    joins = ('LEFT JOIN "case" c ON c.id = h.case_id',)
    filter_columns = {
        "status": Filter("h.status", "状态 / status: " + ", ".join(vocab.HOTLINE_STATUSES),
                         choices=vocab.HOTLINE_STATUSES),
        # Visibility, set by the API: a ticket without a case matches no agency, so units do not see it.
        ASSIGNED_FILTER: assigned_filter("c.assigned_agency_id"),
    }

    def to_properties(self, row: Any) -> dict[str, Any]:
        """Return the ticket's number, channel, status and its deadlines."""
        return {"external_no": row.external_no, "channel": row.channel, "status": row.status,
                "status_zh": STATUS_LABELS[row.status], "received_at": iso(row.received_at),
                "reply_due_at": iso(row.reply_due_at), "replied_at": iso(row.replied_at),
                "closed_at": iso(row.closed_at), "case_no": row.case_no}
