"""Folium maps of the county whose every script, style sheet, font and icon is served by the platform.

Folium keeps its resource links in class-level lists (``default_js`` / ``default_css``, CDN URLs) shared by
every map and plugin. ``localise`` gives one element lists of its own that point at the copies under
``/static/webmap/vendor/`` (made by ``webmap.assets``), and never touches the shared lists, so one map's
change cannot leak into another. A resource this module does not know is an error, never a CDN link.

The basemap is configuration (``GIS_TILE_URL`` with ``GIS_TILE_ATTRIBUTION``): an intranet tile server,
Tianditu with its key, OpenStreetMap, or nothing (a plain background). Basemaps in the shifted Chinese
datums (GCJ-02 of AutoNavi and Tencent, BD-09 of Baidu) are refused with a message: the platform's data
are WGS-84/CGCS2000 and would sit several hundred metres off on them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import folium
from branca.element import Element
from folium.elements import JSCSSMixin
from folium.template import Template
from markupsafe import Markup, escape

from gis_platform.settings import Settings

STATIC_URL = "/static/webmap"

# Every resource an element may load, by the name Folium (or webmap.elements) gives it, as a path under
# /static/webmap/. Folium's names are matched exactly, so a Folium upgrade that adds or renames one fails
# loudly in ``localise`` instead of loading it from a CDN.
RESOURCES: dict[str, str] = {
    # folium.Map
    "leaflet": "vendor/leaflet/leaflet.js",
    "jquery": "vendor/jquery/jquery.min.js",
    "bootstrap": "vendor/bootstrap/js/bootstrap.bundle.min.js",
    "awesome_markers": "vendor/leaflet.awesome-markers/leaflet.awesome-markers.js",
    "leaflet_css": "vendor/leaflet/leaflet.css",
    "bootstrap_css": "vendor/bootstrap/css/bootstrap.min.css",
    "glyphicons_css": "vendor/bootstrap3/css/bootstrap-glyphicons.css",
    "awesome_markers_font_css": "vendor/fontawesome/css/all.min.css",
    "awesome_markers_css": "vendor/leaflet.awesome-markers/leaflet.awesome-markers.css",
    "awesome_rotate_css": "vendor/leaflet.awesome-markers/leaflet.awesome.rotate.css",
    # folium.plugins.MarkerCluster / FastMarkerCluster
    "markerclusterjs": "vendor/leaflet.markercluster/leaflet.markercluster.js",
    "markerclustercss": "vendor/leaflet.markercluster/MarkerCluster.css",
    "markerclusterdefaultcss": "vendor/leaflet.markercluster/MarkerCluster.Default.css",
    # folium.plugins.HeatMap (folium's own build of Leaflet.heat)
    "leaflet-heat.js": "vendor/leaflet.heat/leaflet_heat.min.js",
    # folium.plugins.LocateControl
    "Control_locate_min_js": "vendor/leaflet.locatecontrol/L.Control.Locate.min.js",
    "Control_locate_min_css": "vendor/leaflet.locatecontrol/L.Control.Locate.min.css",
    # webmap.elements
    "vectorgrid_js": "vendor/leaflet.vectorgrid/Leaflet.VectorGrid.bundled.min.js",
    "gismap_js": "gismap.js",
    "gismap_css": "gismap.css",
}

# The resource lists of webmap's own elements (already local; localise still gives each instance a copy).
GISMAP_JS = [("gismap_js", f"{STATIC_URL}/{RESOURCES['gismap_js']}")]
GISMAP_CSS = [("gismap_css", f"{STATIC_URL}/{RESOURCES['gismap_css']}")]
VECTORGRID_JS = [("vectorgrid_js", f"{STATIC_URL}/{RESOURCES['vectorgrid_js']}")]

# Datums of Chinese commercial basemaps, by host: refused rather than drawn under WGS-84 overlays.
SHIFTED_BASEMAPS: dict[str, str] = {
    "autonavi.com": "GCJ-02（高德 AutoNavi）",
    "amap.com": "GCJ-02（高德 AutoNavi）",
    "map.qq.com": "GCJ-02（腾讯 Tencent）",
    "gtimg.com": "GCJ-02（腾讯 Tencent）",
    "map.baidu.com": "BD-09（百度 Baidu）",
    "bdimg.com": "BD-09（百度 Baidu）",
    "bdstatic.com": "BD-09（百度 Baidu）",
}

# Map extent used when the county has no boundary yet: the demo county's (WGS-84, minLon, minLat, maxLon, maxLat).
DEFAULT_EXTENT = (115.645, 35.929, 116.110, 36.304)
MIN_ZOOM = 8
MAX_ZOOM = 19


class UnknownResource(LookupError):
    """An element wants a resource the platform does not serve (it would come from a CDN)."""


def resource_url(name: str) -> str:
    """Return the platform's URL of a named resource."""
    try:
        return f"{STATIC_URL}/{RESOURCES[name]}"
    except KeyError:
        raise UnknownResource(
            f"no local copy of the resource {name!r}: add it to webmap/package.json, webmap.assets.COPIES and "
            "webmap.maps.RESOURCES") from None


def localise(element: JSCSSMixin) -> JSCSSMixin:
    """Give an element its own resource lists pointing at the platform's copies; the shared lists stay as they are."""
    for attribute in ("default_js", "default_css"):
        links = getattr(element, attribute)
        # A new list on the instance: folium's class-level list is read here and never written.
        setattr(element, attribute, [(name, resource_url(name)) for name, _url in links])
    return element


def walk(element: Element) -> Iterator[Element]:
    """Yield an element and all its descendants."""
    yield element
    for child in list(element._children.values()):
        yield from walk(child)


def localise_tree(root: Element) -> None:
    """Localise every element under a root that loads resources (plugins added by anyone included)."""
    for element in walk(root):
        if isinstance(element, JSCSSMixin):
            localise(element)


# -- the basemap ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Basemap:
    """The configured basemap: a tile URL template and its attribution, or none (with the reason if refused)."""

    url: str = ""
    attribution: str = ""
    refused: str | None = None

    @property
    def enabled(self) -> bool:
        """Return whether tiles are drawn."""
        return bool(self.url) and self.refused is None


def basemap_from(settings: Settings) -> Basemap:
    """Return the basemap of the settings, refusing shifted-datum providers and URLs that are not templates."""
    url = settings.tile_url.strip()
    if not url:
        return Basemap()
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    for suffix, datum in SHIFTED_BASEMAPS.items():
        if host == suffix or host.endswith("." + suffix):
            return Basemap(url, settings.tile_attribution, refused=(
                f"底图 {host} 使用 {datum} 偏移坐标，与平台的 WGS-84 数据相差数百米，已停用；请改用天地图、"
                f"OpenStreetMap 或内网 WGS-84 瓦片。The basemap at {host} uses the shifted {datum} datum and "
                "would sit hundreds of metres off the platform's WGS-84 data, so it is not shown; configure "
                "Tianditu, OpenStreetMap or an intranet WGS-84 tile server in GIS_TILE_URL."))
    if "{z}" not in url or "{x}" not in url or "{y}" not in url:
        return Basemap(url, settings.tile_attribution, refused=(
            "GIS_TILE_URL 不是瓦片地址模板（需含 {z}、{x}、{y}），底图未显示。GIS_TILE_URL is not a tile URL "
            "template with {z}, {x} and {y}; no basemap is shown."))
    # Folium refuses custom tiles without attribution; the host is the least that must be credited.
    return Basemap(url, settings.tile_attribution.strip() or escape(host or url))


def bilingual(zh: str, en: str) -> Markup:
    """Return a label in both languages; the page's language decides which one shows (CSS)."""
    return Markup('<span class="gis-zh">{}</span><span class="gis-en">{}</span>').format(zh, en)


# -- the map -------------------------------------------------------------------------------------------------------
class FitBounds(JSCSSMixin):
    """Fit the map to a box at once (no animation), before the layers added after it load anything."""

    default_js = GISMAP_JS
    default_css = GISMAP_CSS

    _template = Template("""
        {% macro script(this, kwargs) %}
            GisMap.fitBounds({{ this._parent.get_name() }}, {{ this.bounds|tojson }});
        {% endmacro %}
    """)

    def __init__(self, bounds: Sequence[Sequence[float]]) -> None:
        super().__init__()
        self._name = "FitBounds"
        self.bounds = [list(corner) for corner in bounds]
        localise(self)


def county_map(settings: Settings, extent: Sequence[float] | None = None, *, basemap: Basemap | None = None,
               **options: object) -> folium.Map:
    """Return a map of the county: the configured basemap (or a plain background) fitted to its extent."""
    basemap = basemap or basemap_from(settings)
    west, south, east, north = extent or DEFAULT_EXTENT
    fmap = folium.Map(location=[(south + north) / 2, (west + east) / 2], zoom_start=11, tiles=None,
                      min_zoom=MIN_ZOOM, max_zoom=MAX_ZOOM, control_scale=True, **options)
    localise(fmap)
    if basemap.enabled:
        folium.TileLayer(tiles=basemap.url, attr=basemap.attribution, name=bilingual("底图", "Basemap"),
                         overlay=False, control=True, max_zoom=MAX_ZOOM).add_to(fmap)
    FitBounds([[south, west], [north, east]]).add_to(fmap)
    return fmap


# An opening <script> or <style> tag without a src: Folium writes a few inline ones into the head.
_INLINE_TAG = re.compile(r"<(script|style)(?=[\s>])(?![^>]*\bsrc=)", re.IGNORECASE)


def with_nonce(markup: Markup, nonce: str) -> Markup:
    """Return rendered map markup whose inline ``<script>`` and ``<style>`` elements carry a CSP nonce."""
    return Markup(_INLINE_TAG.sub(lambda tag: f'<{tag.group(1)} nonce="{escape(nonce)}"', str(markup)))


@dataclass(frozen=True)
class RenderedMap:
    """A rendered map in the three parts a page places: head links and styles, the map's div, its script.

    The page places the script in its own ``<script nonce="{{ csp_nonce }}">`` and the head part as
    ``{{ map.header_with_nonce(csp_nonce) }}``, so that all of it runs under the Content-Security-Policy.
    """

    name: str
    header: Markup
    html: Markup
    script: Markup

    def header_with_nonce(self, nonce: str) -> Markup:
        """Return the head part with the request's CSP nonce on Folium's inline styles and script."""
        return with_nonce(self.header, nonce)


def render_map(fmap: folium.Map) -> RenderedMap:
    """Render a map for embedding in a page, after localising every element that loads resources."""
    localise_tree(fmap)
    figure = fmap.get_root()
    figure.render()
    return RenderedMap(name=fmap.get_name(), header=Markup(figure.header.render()),
                       html=Markup(figure.html.render()), script=Markup(figure.script.render()))
