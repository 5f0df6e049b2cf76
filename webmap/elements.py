"""The platform's own Leaflet behaviour as Folium elements, styled from the layer registry.

Each element renders a short call into ``gismap.js`` (served by the platform, loaded through the element's
own resource list) with its options as JSON: the layer's URL, the registry's style and legend, zoom limits.
The behaviour itself lives in that one script, so it is written, read and tested as JavaScript, and every
element stays a few lines of Python with a Jinja template.

- ``ApiGeoJsonLayer``: a registry layer read from ``/api/v1/layers/{name}/items`` (by view box, refreshed
  when the map moves), styled by the registry, with text-only popups and optional permanent labels.
- ``LiveCasesLayer``: cases as points when they are few in view (at most ``max_markers`` DOM markers), as
  vector tiles (aggregated by the server at low zoom) otherwise; it follows ``/api/v1/events``.
- ``LiveEvents``: one ``EventSource`` on ``/api/v1/events`` per page, re-announced as DOM events.
- ``MapLegend``: a legend control built from the registry's legends, in both languages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from folium.elements import JSCSSMixin
from folium.map import Layer as FoliumLayer
from folium.template import Template

from layers.base import Layer, Style
from webmap.maps import GISMAP_CSS, GISMAP_JS, VECTORGRID_JS, bilingual, localise

# Panes keep the drawing order when layers reload: areas under grids under footprints under points.
PANES = {"areas": 410, "grids": 420, "footprints": 430, "points": 440, "cases": 450, "highlight": 460}


def style_spec(style: Style) -> dict[str, Any]:
    """Return a registry style as the JSON ``gismap.js`` applies per feature (the API's ``style`` member)."""
    return {"options": style.options(), "color_property": style.color_property,
            "by_property": {prop: {value: dict(opts) for value, opts in cases.items()}
                            for prop, cases in style.by_property.items()}}


def legend_section(layer: Layer, geometry: str | None = None) -> dict[str, Any]:
    """Return a layer's legend for ``MapLegend``: its title and entries, each with a full style."""
    base = layer.style.options()
    kind = geometry or ("point" if layer.geometry_type.endswith("Point") else "area")

    def full(entry: Mapping[str, Any]) -> dict[str, Any]:
        style = {**base, **dict(entry)}
        if kind == "area" and "color" in entry and "fillColor" not in entry:
            style["fillColor"] = entry["color"]  # the registry colours areas' outline and fill alike
        return style

    return {"title": {"zh": layer.title_zh, "en": layer.title_en}, "geometry": kind,
            "entries": [{"label": {"zh": e.label_zh, "en": e.label_en}, "style": full(e.style)}
                        for e in layer.legend.entries]}


class _GisLayer(JSCSSMixin, FoliumLayer):
    """A layer of ours in the layer control, labelled in both languages, loading ``gismap.js``."""

    default_js = GISMAP_JS
    default_css = GISMAP_CSS

    def __init__(self, key: str, title_zh: str, title_en: str, *, show: bool = True) -> None:
        super().__init__(name=bilingual(title_zh, title_en), overlay=True, control=True, show=show)
        self.key = key
        localise(self)


class ApiGeoJsonLayer(_GisLayer):
    """A registry layer drawn from the features API, refreshed by view box when it is large."""

    _template = Template("""
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = GisMap.apiGeoJson({{ this.options|tojson }});
            GisMap.register({{ this.key|tojson }}, {{ this.get_name() }}, {{ this._parent.get_name() }});
        {% endmacro %}
    """)

    def __init__(self, layer: Layer, *, pane: str, min_zoom: int = 0, by_view: bool = True, limit: int = 2000,
                 params: Mapping[str, str] | None = None, label_property: str | None = None,
                 title_property: str | None = None, fields: Sequence[tuple[str, str, str]] = (),
                 show: bool = True, key: str | None = None) -> None:
        super().__init__(key or layer.name, layer.title_zh, layer.title_en, show=show)
        if pane not in PANES:
            raise ValueError(f"unknown pane {pane!r}; panes: {', '.join(PANES)}")
        self.options = {
            "url": f"/api/v1/layers/{layer.name}/items", "pane": pane, "paneZ": PANES[pane], "minZoom": min_zoom,
            "byView": by_view, "limit": limit, "params": dict(params or {}), "style": style_spec(layer.style),
            "labelProperty": label_property, "titleProperty": title_property,
            "title": {"zh": layer.title_zh, "en": layer.title_en},
            "fields": [{"property": p, "zh": zh, "en": en} for p, zh, en in fields],
        }


class LiveCasesLayer(_GisLayer):
    """Cases kept current by the event stream: points when few in view, vector tiles (aggregates) otherwise."""

    default_js = [*VECTORGRID_JS, *GISMAP_JS]

    _template = Template("""
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = GisMap.liveCases({{ this.options|tojson }});
            GisMap.register({{ this.key|tojson }}, {{ this.get_name() }}, {{ this._parent.get_name() }});
        {% endmacro %}
    """)

    def __init__(self, layer: Layer, *, detail_zoom: int, max_markers: int = 2000,
                 statuses: Sequence[str] = (), fields: Sequence[tuple[str, str, str]] = (),
                 key: str = "cases") -> None:
        super().__init__(key, layer.title_zh, layer.title_en)
        self.options = {
            "itemsUrl": f"/api/v1/layers/{layer.name}/items", "tilesUrl": "/api/v1/tiles/cases/{z}/{x}/{y}.mvt",
            "pane": "cases", "paneZ": PANES["cases"], "detailZoom": detail_zoom, "maxMarkers": max_markers,
            "style": style_spec(layer.style), "statuses": list(statuses),
            "fields": [{"property": p, "zh": zh, "en": en} for p, zh, en in fields],
        }


class LiveEvents(JSCSSMixin):
    """The page's one connection to ``/api/v1/events``; case changes become ``gis:case`` DOM events."""

    default_js = GISMAP_JS
    default_css = GISMAP_CSS

    _template = Template("""
        {% macro script(this, kwargs) %}
            GisMap.connectEvents({{ this.options|tojson }});
        {% endmacro %}
    """)

    def __init__(self, events_url: str = "/api/v1/events",
                 items_url: str = "/api/v1/layers/cases/items") -> None:
        super().__init__()
        self._name = "LiveEvents"
        self.options = {"eventsUrl": events_url, "itemsUrl": items_url}
        localise(self)


class MapLegend(JSCSSMixin):
    """A legend control of the map's layers, from the registry's legends, in the page's language."""

    default_js = GISMAP_JS
    default_css = GISMAP_CSS

    _template = Template("""
        {% macro script(this, kwargs) %}
            GisMap.legend({{ this._parent.get_name() }}, {{ this.options|tojson }});
        {% endmacro %}
    """)

    def __init__(self, sections: Sequence[Mapping[str, Any]], *, position: str = "bottomright",
                 extra: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__()
        self._name = "MapLegend"
        self.options = {"position": position, "title": {"zh": "图例", "en": "Legend"},
                        "sections": [*sections, *extra]}
        localise(self)
