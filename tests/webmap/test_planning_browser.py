"""The planning page in headless Chromium: offline, the month slider, exports, languages, the analytics layers.

One signed-in planner's page serves the module (tests run in file order and build on what is on screen).
The page runs under the platform's Content-Security-Policy, so every wait here passes a function, never a
string Playwright would have to evaluate.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from gis_platform.workcalendar import SHANGHAI
from tests.webmap.conftest import CommandSession, planning_cell_counts, save_screenshot, sign_in

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CSP_PROBE = """
document.addEventListener("securitypolicyviolation", function (event) {
  (window.__cspViolations = window.__cspViolations || []).push(event.violatedDirective + " " + event.blockedURI);
});
"""


def _month(n: int) -> tuple[datetime, datetime]:
    start = datetime(2021, n, 1, tzinfo=SHANGHAI)
    return start, datetime(2021 + n // 12, n % 12 + 1, 1, tzinfo=SHANGHAI)


def _wait_loaded(page: Any, key: str) -> None:
    """Wait until the counts, the heat map and both charts show the filter ``start|end|category``."""
    page.wait_for_function("""key => ['cells', 'heat', 'chart-squad', 'chart-township']
        .every(part => GisPlanning.state.loaded[part] === key)""", arg=key)


def _shown_counts(page: Any) -> dict[str, int]:
    return page.evaluate("""() => Object.fromEntries(GisMap.layers.cells.getLayers()
        .map(shape => [shape.feature.properties.code, shape.feature.properties.count]))""")


@pytest.fixture(scope="module")
def planning(browser: Any, planning_world) -> Iterator[CommandSession]:
    """Sign in as the planner and open /planning, recording requests, dialogs and script errors."""
    context = browser.new_context(viewport={"width": 1600, "height": 900}, locale="zh-CN",
                                  timezone_id="Asia/Shanghai", accept_downloads=True)
    context.add_init_script(CSP_PROBE)
    page = context.new_page()
    page.set_default_timeout(15_000)
    session = CommandSession(page=page, origin=planning_world.origin)
    page.on("request", lambda request: session.requests.append(request.url))
    page.on("dialog", lambda dialog: (session.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: session.errors.append(str(error)))
    sign_in(page, planning_world.origin, "pl", path="/planning")
    page.wait_for_selector(".leaflet-container")
    try:
        yield session
    finally:
        context.close()


def test_the_page_loads_offline_with_the_heat_map_counts_and_charts(planning, planning_world):
    page = planning.page
    _wait_loaded(page, "2021-01|2021-12|")
    assert sorted(page.evaluate("() => Object.keys(GisMap.layers)")) == ["cells", "emerging", "heat", "hotspots"]
    controls = page.inner_text(".leaflet-control-layers")
    for title in ("案件热力图", "网格案件数", "热点分析", "时空热点趋势"):
        assert title in controls
    # The whole year: every cell with cases is drawn with its count, the heat map holds every case.
    year = planning_cell_counts(planning_world, datetime(2021, 1, 1, tzinfo=SHANGHAI),
                                datetime(2022, 1, 1, tzinfo=SHANGHAI))
    assert _shown_counts(page) == year
    total = page.evaluate("() => GisPlanning.state.cells.total")
    assert total == sum(year.values()) + 2  # and two cases outside every cell
    assert page.evaluate("() => GisMap.layers.heat._latlngs.reduce((n, p) => n + p[2], 0)") == total
    assert page.evaluate("() => GisMap.map.hasLayer(GisMap.layers.heat) && !!GisMap.layers.heat._canvas")
    assert f"共 {total:,} 件案件" in page.inner_text("#summary")
    # The legend names the count classes; the charts are drawn, a bar per squad or township.
    assert "网格案件数" in page.inner_text(".gis-planning-legend") and "件" in page.inner_text(".gis-planning-legend")
    squads = page.evaluate("() => GisPlanning.state.charts.squad.data.labels")
    assert {"west中队", "east中队"} <= set(squads)
    townships = page.evaluate("() => GisPlanning.state.charts.township.data.labels")
    assert set(townships) == {"west镇", "east镇"}
    due = page.evaluate("() => GisPlanning.state.charts.township.data.datasets[0].data")
    assert sum(due) == total
    assert page.locator("#chart-squad").bounding_box()["height"] > 150
    # Nothing came from another host, nothing broke, nothing was refused by the Content-Security-Policy.
    assert [url for url in planning.requests if not url.startswith(planning.origin + "/")] == []
    assert planning.errors == [] and page.evaluate("() => window.__cspViolations || []") == []


def test_moving_the_slider_changes_what_is_shown(planning, planning_world):
    page = planning.page
    before = _shown_counts(page)
    page.locator('#filters input[name="month"]').fill("2")  # 2021-03
    _wait_loaded(page, "2021-03|2021-03|")
    assert page.locator('#filters input[name="all"]').is_checked() is False
    assert page.inner_text("#month-label") == "2021年3月"
    march = _shown_counts(page)
    assert march == planning_cell_counts(planning_world, *_month(3)) and march != before
    march_total = page.evaluate("() => GisPlanning.state.cells.total")
    assert page.evaluate("() => GisMap.layers.heat._latlngs.reduce((n, p) => n + p[2], 0)") == march_total
    assert page.evaluate("() => GisPlanning.state.indicators.squad.start").startswith("2021-03-01T00:00:00+08:00")
    # The charts ask for the year-on-year comparison (同比): here against March 2020, which had no case.
    assert page.evaluate("() => GisPlanning.state.indicators.squad.base_start").startswith("2020-03-01")
    page.locator('#filters input[name="month"]').fill("6")  # 2021-07: the eastern night market is busy
    _wait_loaded(page, "2021-07|2021-07|")
    july = _shown_counts(page)
    assert july == planning_cell_counts(planning_world, *_month(7)) and july != march
    assert page.evaluate("() => GisPlanning.state.cells.total") != march_total
    # The category narrows everything on the page.
    page.select_option('#filters select[name="category"]', "MS03")
    _wait_loaded(page, "2021-07|2021-07|MS03")
    assert _shown_counts(page) == planning_cell_counts(planning_world, *_month(7), category="MS03")
    assert page.evaluate("() => GisPlanning.state.indicators.township.category") == "MS03"
    page.select_option('#filters select[name="category"]', "")
    page.locator('#filters input[name="month"]').fill("2")
    _wait_loaded(page, "2021-03|2021-03|")
    assert planning.errors == []


def test_the_csv_export_downloads_the_counts_of_the_filter(planning, planning_world):
    page = planning.page
    with page.expect_download() as info:
        page.click("#export-cells")
    download = info.value
    assert download.suggested_filename == "grid-counts_2021-03_2021-03_all.csv"
    body = Path(download.path()).read_bytes()
    assert body.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][0] == "网格编码 Grid code" and rows[0][-1] == "案件数 Cases"
    assert {r[0]: int(r[3]) for r in rows[1:]} == planning_cell_counts(planning_world, *_month(3))
    assert {r[0]: int(r[3]) for r in rows[1:]} == _shown_counts(page)


def test_the_png_exports_are_valid_images_of_what_is_shown(planning):
    page = planning.page
    with page.expect_download() as info:
        page.click('[data-export-chart="squad"][data-format="png"]')
    chart = Path(info.value.path()).read_bytes()
    assert chart.startswith(PNG_SIGNATURE) and info.value.suggested_filename.endswith(".png")
    image = Image.open(io.BytesIO(chart))
    assert image.width > 200 and image.height > 150
    assert image.convert("RGB").getpixel((1, 1)) == (255, 255, 255)  # a white background, not transparent
    with page.expect_download() as info:
        page.click('[data-export-chart="township"][data-format="csv"]')
    rows = list(csv.reader(io.StringIO(Path(info.value.path()).read_bytes().decode("utf-8-sig"))))
    assert rows[0][0] == "街道/乡镇 Township" and rows[0][1].startswith("应处置数")
    shown = page.evaluate("() => GisPlanning.state.indicators.township.rows.map(r => [r.label, r.due])")
    assert sorted((r[0], int(r[1])) for r in rows[1:]) == sorted((label, due) for label, due in shown)
    assert rows[0][-2].startswith("应处置数去年同期") and {r[-2] for r in rows[1:]} == {"0"}
    with page.expect_download(timeout=30_000) as info:
        page.click("#export-map")
    shot = Path(info.value.path()).read_bytes()
    assert shot.startswith(PNG_SIGNATURE)
    image = Image.open(io.BytesIO(shot)).convert("RGB")
    size = page.locator(".gis-map .folium-map").bounding_box()
    assert abs(image.width - size["width"]) <= 2 and abs(image.height - size["height"]) <= 2
    # The cells' purples and the heat map's reds are in the picture, not just the background.
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50
    assert planning.errors == [] and page.evaluate("() => window.__cspViolations || []") == []


def test_the_hot_spot_layers_load_or_say_they_are_not_served(planning):
    page = planning.page
    served = page.evaluate("() => JSON.parse(document.getElementById('gis-config').textContent).analytics")
    # Emerging hot spots for the year up to the window's month, week by week; hot spots for the window (March).
    for key, title, window in (("emerging", "时空热点趋势", "start=2021-01-01T00%3A00%3A00%2B08%3A00"),
                               ("hotspots", "热点分析", "start=2021-03-01T00%3A00%3A00%2B08%3A00")):
        box = page.locator(".leaflet-control-layers label", has_text=title).locator("input")
        box.check()
        if served[key] is None:
            note = page.locator("#analytics-note")
            note.wait_for()
            assert "尚未提供热点分析" in note.inner_text()
            assert "尚未提供热点分析" in page.inner_text(".gis-planning-legend")
        else:
            page.wait_for_function("key => ['ready', 'failed'].includes(GisPlanning.state.analytics[key].status)",
                                   arg=key, timeout=60_000)
            state = page.evaluate("key => GisPlanning.state.analytics[key]", key)
            assert state["status"] == "ready", state.get("message")
            assert page.evaluate("key => GisMap.layers[key].getLayers().length", key) > 0
            assert title in page.inner_text(".gis-planning-legend")
            asked = [url for url in planning.requests if url.startswith(planning.origin + served[key] + "?")]
            assert asked and window in asked[-1] and "end=2021-04-01T00%3A00%3A00%2B08%3A00" in asked[-1]
        box.uncheck()
        page.wait_for_function("() => document.getElementById('analytics-note').hidden")
        assert title not in page.inner_text(".gis-planning-legend")
    assert planning.errors == []


def test_the_briefing_picker_points_at_the_township_and_week(planning):
    page = planning.page
    served = page.evaluate("() => JSON.parse(document.getElementById('gis-config').textContent).analytics")
    assert page.input_value('#briefing input[name="week"]') == "2021-W13"  # 31 March 2021 is in week 13
    page.select_option('#briefing select[name="township"]', "379961102")
    page.fill('#briefing input[name="week"]', "2021-W20")
    link = page.locator("#briefing-html")
    if served["briefing"] is None:
        assert link.get_attribute("href") is None and link.get_attribute("aria-disabled") == "true"
        assert page.locator("#briefing-note").is_visible()
    else:
        assert link.get_attribute("href") == f"{served['briefing']}?township=379961102&week=2021-W20&format=html"
        assert page.get_attribute("#briefing-csv", "href").endswith("format=csv")
        assert not page.locator("#briefing-note").is_visible()


def test_the_language_switch_changes_the_labels(planning):
    page = planning.page
    save_screenshot(page, "planning")
    page.click("#lang-switch")
    page.wait_for_function("() => document.documentElement.lang === 'en'")
    assert page.inner_text("#month-label") == "Mar 2021"
    assert "Cases per grid cell" in page.inner_text(".gis-planning-legend")
    assert "cases in" in page.inner_text("#summary")
    assert set(page.evaluate("() => GisPlanning.state.charts.township.data.labels")) == {"west", "east"}
    assert "Due for handling" in page.evaluate("() => GisPlanning.state.charts.squad.data.datasets[0].label")
    assert "Case heat map" in page.inner_text(".leaflet-control-layers")
    save_screenshot(page, "planning-en")
    page.click("#lang-switch")
    page.wait_for_function("() => document.documentElement.lang === 'zh-CN'")
    assert page.inner_text("#month-label") == "2021年3月"
    assert [url for url in planning.requests if not url.startswith(planning.origin + "/")] == []
    assert planning.errors == [] and planning.dialogs == []
    assert page.evaluate("() => window.__cspViolations || []") == []
