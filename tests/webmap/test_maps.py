"""Folium maps whose every resource is the platform's own copy; Folium's shared lists are never touched."""

from __future__ import annotations

import copy
import re

import folium
import folium.plugins as plugins
import pytest

from gis_platform.settings import Settings
from layers.registry import get_layer
from webmap import assets, i18n
from webmap.command import command_map
from webmap.elements import ApiGeoJsonLayer, LiveCasesLayer, legend_section, style_spec
from webmap.maps import (RESOURCES, STATIC_URL, UnknownResource, basemap_from, county_map, localise, render_map,
                         resource_url)

PLUGINS = (folium.Map, plugins.MarkerCluster, plugins.FastMarkerCluster, plugins.HeatMap, plugins.LocateControl)
EXTERNAL = re.compile(r"""(?:https?:)?//[^\s"'<>)]+""")
STATIC_REF = re.compile(r"""(?:src|href)=["'](/static/[^"']+)["']""")


def settings(**values) -> Settings:
    return Settings(_env_file=None, county_code="371521", **values)


@pytest.fixture(scope="module")
def class_lists():
    """Snapshot Folium's class-level lists (objects and contents) before any map of ours is built."""
    return {cls: (cls.default_js, cls.default_css, copy.deepcopy(cls.default_js), copy.deepcopy(cls.default_css))
            for cls in PLUGINS}


def _assert_untouched(class_lists):
    for cls, (js, css, js_copy, css_copy) in class_lists.items():
        assert cls.default_js is js and cls.default_js == js_copy, cls
        assert cls.default_css is css and cls.default_css == css_copy, cls
        assert any("http" in url for _, url in cls.default_js + cls.default_css), "Folium's own lists keep CDN links"


def _plugin_map() -> folium.Map:
    """A county map with the plugins the patrol and planning pages use: clusters, heat map, locate control."""
    fmap = county_map(settings())
    cluster = plugins.MarkerCluster(name="clusters").add_to(fmap)
    folium.CircleMarker([36.1, 115.8], radius=4).add_to(cluster)
    plugins.FastMarkerCluster([[36.1, 115.8], [36.11, 115.81]]).add_to(fmap)
    plugins.HeatMap([[36.1, 115.8, 1.0], [36.12, 115.82, 2.0]]).add_to(fmap)
    plugins.LocateControl().add_to(fmap)
    folium.LayerControl().add_to(fmap)
    return fmap


def _static_file(url: str):
    assert url.startswith(STATIC_URL + "/"), url
    return assets.HERE / "static" / url.removeprefix(STATIC_URL + "/")


def test_each_map_gets_lists_of_its_own_and_folium_keeps_its_shared_lists(class_lists):
    first, second = county_map(settings()), county_map(settings())
    assert first.default_js is not second.default_js and first.default_css is not second.default_css
    assert first.default_js is not folium.Map.default_js
    first.default_js.append(("extra", "/static/webmap/extra.js"))
    assert ("extra", "/static/webmap/extra.js") not in second.default_js
    assert all(url.startswith(STATIC_URL) for _, url in second.default_js + second.default_css)
    render_map(_plugin_map())
    render_map(command_map(settings(), None))
    _assert_untouched(class_lists)


def test_plugins_are_localised_on_copies(class_lists):
    fmap = _plugin_map()
    rendered = render_map(fmap)
    cluster = next(c for c in fmap._children.values() if isinstance(c, plugins.MarkerCluster))
    assert cluster.default_js is not plugins.MarkerCluster.default_js
    assert cluster.default_js == [("markerclusterjs", resource_url("markerclusterjs"))]
    for name in ("markerclusterjs", "leaflet-heat.js", "Control_locate_min_js", "Control_locate_min_css"):
        assert resource_url(name) in rendered.header
    _assert_untouched(class_lists)


@pytest.mark.parametrize("build", [_plugin_map, lambda: command_map(settings(), (115.7, 36.0, 115.8, 36.05))],
                         ids=["plugins", "command"])
def test_rendered_maps_reference_no_other_host_and_only_files_that_exist(build, built_assets):
    rendered = render_map(build())
    html = "\n".join((rendered.header, rendered.html, rendered.script))
    assert EXTERNAL.findall(html) == []
    refs = STATIC_REF.findall(html)
    assert len(refs) >= 10
    missing = [url for url in refs if not _static_file(url).is_file()]
    assert missing == []


def test_every_known_resource_exists(built_assets):
    assert [name for name, path in RESOURCES.items() if not (assets.HERE / "static" / path).is_file()] == []


def test_a_plugin_without_a_local_copy_is_refused():
    fmap = county_map(settings())
    plugins.Draw().add_to(fmap)  # leaflet.draw is not among the platform's packages
    with pytest.raises(UnknownResource, match="'leaflet_draw_js'"):
        render_map(fmap)
    assert plugins.Draw.default_js[0][1].startswith("https://")


def test_localise_returns_the_element_with_local_links():
    marker_cluster = localise(plugins.MarkerCluster())
    assert {url for _, url in marker_cluster.default_css} == {
        resource_url("markerclustercss"), resource_url("markerclusterdefaultcss")}


# -- the basemap -------------------------------------------------------------------------------------------------
def test_no_tile_url_means_no_basemap():
    basemap = basemap_from(settings(tile_url=""))
    assert not basemap.enabled and basemap.refused is None
    rendered = render_map(county_map(settings(tile_url="")))
    assert "L.tileLayer" not in rendered.script


def test_the_configured_basemap_is_the_only_external_url_with_its_attribution():
    url = "http://127.0.0.1:9/tiles/{z}/{x}/{y}.png"
    rendered = render_map(command_map(settings(tile_url=url, tile_attribution="© 县自然资源局"), None))
    html = "\n".join((rendered.header, rendered.html, rendered.script))
    assert set(EXTERNAL.findall(html)) == {url}
    assert "L.tileLayer" in rendered.script and '"attribution": "\\u00a9 \\u53bf' in rendered.script


def test_a_basemap_without_attribution_credits_its_host():
    tianditu = "https://t0.tianditu.gov.cn/vec_w/wmts?TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk=k"
    basemap = basemap_from(settings(tile_url=tianditu))
    assert basemap.enabled and basemap.attribution == "t0.tianditu.gov.cn"


@pytest.mark.parametrize("url, datum", [
    ("https://webrd01.is.autonavi.com/appmaptile?x={x}&y={y}&z={z}&style=8", "GCJ-02"),
    ("https://rt0.map.gtimg.com/tile?z={z}&x={x}&y={y}", "GCJ-02"),
    ("https://maponline0.bdimg.com/tile/?x={x}&y={y}&z={z}", "BD-09"),
])
def test_shifted_datum_basemaps_are_refused_with_a_message(url, datum):
    basemap = basemap_from(settings(tile_url=url))
    assert not basemap.enabled and datum in basemap.refused and "WGS-84" in basemap.refused
    assert "L.tileLayer" not in render_map(county_map(settings(tile_url=url))).script


def test_a_tile_url_that_is_not_a_template_is_refused():
    basemap = basemap_from(settings(tile_url="https://tiles.example/osm.png"))
    assert not basemap.enabled and "{z}" in basemap.refused


# -- styles and labels from the registry -------------------------------------------------------------------------
def test_layers_carry_the_registry_style_and_legend():
    cases = get_layer("cases")
    layer = LiveCasesLayer(cases, detail_zoom=14, statuses=("reported",))
    assert layer.options["style"] == style_spec(cases.style)
    assert layer.options["style"]["by_property"]["overdue"]["true"]["color"] == "#d7191c"
    squads = ApiGeoJsonLayer(get_layer("jurisdictions"), pane="areas", label_property="agency_name")
    assert squads.options["style"]["color_property"] == "color"
    assert 'class="gis-zh">中队辖区<' in squads.layer_name and 'class="gis-en">Squad jurisdictions<' in squads.layer_name
    structures = legend_section(get_layer("illegal_structures"))
    assert structures["geometry"] == "area"
    assert all(e["style"]["fillColor"] == e["style"]["color"] for e in structures["entries"])
    with pytest.raises(ValueError, match="unknown pane"):
        ApiGeoJsonLayer(get_layer("cases"), pane="nowhere")


def test_both_languages_have_every_label():
    table = i18n.messages()
    assert set(table["zh"]) == set(table["en"])
    assert all(table["zh"].values()) and all(table["en"].values())


def test_every_label_the_page_names_exists():
    template = (assets.HERE / "templates" / "webmap" / "command.html").read_text(encoding="utf-8")
    script = (assets.HERE / "static" / "command.js").read_text(encoding="utf-8")
    # Keys built from a value (status.{{ status }}) are checked through the tables they come from.
    keys = set(re.findall(r'data-i18n(?:-title)?="([a-z_0-9.]+)"', template))
    keys |= set(re.findall(r"""\bt\("([a-z_0-9.]+)"\)""", script))
    keys |= set(re.findall(r"""t\['([a-z_0-9.]+)'\]""", template))
    assert len(keys) > 40
    assert sorted(keys - set(i18n.messages()["zh"])) == []
