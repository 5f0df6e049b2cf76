"""The patrol page in headless Chromium on a phone-sized screen: locate, report through a flaky network, tasks.

One signed-in phone (a west-squad patroller standing at ``WEST_POINT``) serves the whole module; the tests
run in file order, as a patroller's day would. The end-to-end test adds the command centre (the operator's
page from ``tests/webmap/conftest.py``) next to it.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gis_platform import models as m
from tests.factories import add_categories
from tests.webmap.conftest import COUNTY, WEST_POINT, save_screenshot, sign_in

PAYLOAD = "<img src=x onerror=alert(1)>"
LIVE_DEADLINE_S = 2.0  # the figure: reported on a phone, on /command within 2 s
PHONE = {"width": 360, "height": 740}
GRID_WEST = f"{COUNTY}10100101"  # tests/factories.make_county: the west town's one grid cell
EXTRA_CATEGORIES = ("IO01", "IO03", "MU01", "DP04")  # a few groups of the default dictionary


def _png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _photo(name: str, colour: tuple[int, int, int]) -> dict[str, Any]:
    return {"name": name, "mimeType": "image/png", "buffer": _png(colour)}


@dataclass
class Phone:
    """The patroller's signed-in phone page, with every request it made, dialogs and script errors."""

    page: Any
    origin: str
    requests: list[tuple[str, str]] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # script errors and Content-Security-Policy violations

    def posts(self, path: str) -> int:
        """Return how many POSTs the page sent to a path."""
        return sum(1 for method, url in self.requests if method == "POST" and urlsplit(url).path == path)


@pytest.fixture(scope="module")
def categories(map_world) -> None:
    """Give the mini county a few more categories of the default dictionary (once; other modules may share it)."""
    with Session(map_world.engine) as session, session.begin():
        have = set(session.scalars(select(m.Category.code).where(m.Category.county_code == COUNTY)))
        missing = tuple(code for code in EXTRA_CATEGORIES if code not in have)
        if missing:
            add_categories(session, map_world.county, missing)


@pytest.fixture(scope="module")
def phone(browser, map_world, categories) -> Iterator[Phone]:
    """Sign in as the west squad's patroller on a 360 × 740 touch screen whose position is WEST_POINT."""
    context = browser.new_context(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, locale="zh-CN",
        timezone_id="Asia/Shanghai", permissions=["geolocation"],
        geolocation={"longitude": WEST_POINT[0], "latitude": WEST_POINT[1], "accuracy": 12})
    page = context.new_page()
    page.set_default_timeout(10_000)
    session = Phone(page=page, origin=map_world.origin)
    page.on("request", lambda request: session.requests.append((request.method, request.url)))
    page.on("dialog", lambda dialog: (session.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: session.errors.append(error.stack or str(error)))
    page.on("console", lambda message: session.errors.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text else None)
    sign_in(page, map_world.origin, "pw", path="/patrol")
    page.wait_for_selector(".leaflet-container")
    try:
        yield session
    finally:
        context.close()


def _submit(page) -> str:
    """Submit the report form and return the idempotency key of the report it put in the outbox."""
    keys = page.evaluate("() => Array.from(document.querySelectorAll('#outbox-list > li'), n => n.dataset.key)")
    page.click("#panel-report button[type=submit]")
    return page.wait_for_function("""(keys) => {
        const newest = document.querySelector('#outbox-list > li');  // newest first
        return newest && !keys.includes(newest.dataset.key) && newest.dataset.key;
    }""", arg=keys).json_value()


def _item(page, key: str):
    return page.locator(f'#outbox-list > li[data-key="{key}"]')


def _wait_state(page, key: str, state: str, timeout_ms: float = 10_000) -> None:
    page.wait_for_function("""([key, state]) => {
        const node = document.querySelector(`#outbox-list > li[data-key="${key}"]`);
        return node && node.dataset.state === state;
    }""", arg=[key, state], timeout=timeout_ms)


def _fill_report(page, *, category: str = "TD02", description: str, address: str = "",
                 photo: dict[str, Any] | None = None) -> None:
    page.click("#tab-report")
    page.fill("#category-search", "")
    page.select_option("#category", category)
    page.fill("#description", description)
    page.fill("#address", address)
    if photo:
        page.set_input_files("#photo", files=[photo])
        page.wait_for_selector("#photo-preview-img[src^='blob:']")


def _cases_with_key(map_world, key: str) -> list[tuple[int, str]]:
    with Session(map_world.engine) as session:
        return [tuple(row) for row in session.execute(
            select(m.Case.id, m.Case.case_no).where(m.Case.county_code == COUNTY, m.Case.idempotency_key == key))]


def _photo_count(map_world, case_id: int, stage: str) -> int:
    with Session(map_world.engine) as session:
        return session.scalar(select(func.count()).select_from(m.Attachment)
                              .where(m.Attachment.case_id == case_id, m.Attachment.stage == stage))


def _off_loopback(urls) -> list[str]:
    bad = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme in ("data", "about"):
            continue
        host = urlsplit(parts.path).hostname if parts.scheme == "blob" else parts.hostname
        if host != "127.0.0.1":
            bad.append(url)
    return bad


def test_the_page_loads_on_a_phone_and_shows_the_grid_and_squad_where_the_patroller_stands(phone, map_world):
    page = phone.page
    page.wait_for_function("() => document.getElementById('where-text').textContent.includes('west中队')")
    where = page.inner_text("#where-text")
    assert f"网格 {GRID_WEST}" in where and "中队 west中队" in where
    assert page.evaluate("Object.keys(GisMap.layers).sort()") == ["grid_cells", "jurisdictions"]
    assert page.locator(".leaflet-control-locate").count() == 1
    # The map follows the phone to the grid zoom: the position's cell is drawn.
    page.wait_for_function("() => GisMap.map.getZoom() >= 15 && GisMap.layers.grid_cells.getLayers().length >= 1")
    assert "36.02000, 115.72000" in page.inner_text("#report-point")  # the report goes where the phone is
    page.wait_for_function("() => GisMap.liveState === 'live'")
    # Made for the phone: nothing wider than the screen, the form's controls reachable.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert page.locator("#panel-report button[type=submit]").is_visible()
    save_screenshot(page, "patrol")
    assert phone.requests and _off_loopback(url for _, url in phone.requests) == []
    assert phone.errors == [] and phone.dialogs == []


def test_categories_are_grouped_in_chinese_and_searchable(phone, map_world):
    page = phone.page
    groups = page.eval_on_selector_all("#category optgroup", "nodes => nodes.map(n => n.label)")
    assert {"街面秩序", "公用设施"} <= set(groups)
    page.fill("#category-search", "摊贩")
    assert page.input_value("#category") == "IO03"  # one match: chosen
    assert page.eval_on_selector_all("#category option[value]:not([value=''])", "ns => ns.map(n => n.value)") == [
        "IO03"]
    page.wait_for_function("() => document.getElementById('report-routed').textContent.includes('west中队')")
    page.fill("#category-search", "井盖")
    assert page.input_value("#category") == "MU01" and "1 项" in page.inner_text("#category-count")
    page.fill("#category-search", "没有这种类别")
    assert "没有匹配的类别" in page.inner_text("#category-count") and page.input_value("#category") == ""
    page.fill("#category-search", "")
    assert page.locator("#category option[value]:not([value=''])").count() >= 6


def test_a_report_made_offline_waits_in_the_outbox_and_goes_when_the_network_is_back(phone, map_world):
    page = phone.page
    _fill_report(page, description="离线时上报：乱堆乱放", photo=_photo("offline.png", (200, 120, 40)))
    before = phone.posts("/api/v1/cases")
    page.context.set_offline(True)
    try:
        key = _submit(page)
        item = _item(page, key)
        _wait_state(page, key, "queued")
        page.click("#tab-outbox")
        assert "待发送" in item.inner_text() and "网络已断开" in page.inner_text("#panel-outbox")
        assert page.inner_text("#outbox-count") == "1"
        page.wait_for_timeout(300)
        assert phone.posts("/api/v1/cases") == before  # nothing is tried while the phone is offline
    finally:
        page.context.set_offline(False)
    _wait_state(page, key, "sent")
    assert "已发送" in item.inner_text() and item.get_attribute("data-case-no") in item.inner_text()
    cases = _cases_with_key(map_world, key)
    assert len(cases) == 1 and cases[0][1] == item.get_attribute("data-case-no")
    assert _photo_count(map_world, cases[0][0], "before") == 1  # the photo waited as a Blob in IndexedDB


def test_a_lost_answer_and_a_503_are_retried_with_the_same_key_and_make_one_case(phone, map_world):
    page = phone.page
    attempts: list[tuple[float, str | None]] = []

    def problem(route, status: int, headers: dict[str, str]) -> None:
        route.fulfill(status=status, headers=headers, content_type="application/problem+json",
                      body=json.dumps({"type": "about:blank", "title": "refused by the test", "status": status}))

    def flaky(route, request):
        if request.method != "POST":
            route.continue_()
            return
        attempts.append((time.monotonic(), request.headers.get("idempotency-key")))
        if len(attempts) == 1:
            route.fetch()  # the server makes the case ...
            route.abort("connectionreset")  # ... and its answer never reaches the phone
        elif len(attempts) == 2:
            problem(route, 503, {"Retry-After": "1"})
        elif len(attempts) == 3:
            problem(route, 401, {})  # signed out meanwhile: the report waits for the next page load
        else:
            route.continue_()

    def cases_path(url: str) -> bool:
        return urlsplit(url).path == "/api/v1/cases"

    page.route(cases_path, flaky)
    try:
        _fill_report(page, description="网络不稳时上报", photo=_photo("flaky.png", (30, 90, 200)))
        key = _submit(page)
        item = _item(page, key)
        page.click("#tab-outbox")
        _wait_state(page, key, "auth")
        assert "需重新登录" in item.inner_text() and "已尝试 3 次" in item.inner_text()
        assert len(_cases_with_key(map_world, key)) == 1  # made by the first attempt, whose answer was lost
        page.wait_for_timeout(500)
        assert len(attempts) == 3  # not retried by itself
        # The page loads again (signed in): the report is still in the outbox (IndexedDB) and is sent at once.
        page.reload()
        page.wait_for_selector(".leaflet-container")
        _wait_state(page, key, "sent")
    finally:
        page.unroute(cases_path, flaky)
    assert [k for _, k in attempts] == [key] * 4
    assert attempts[1][0] - attempts[0][0] >= 1.4  # backed off (2 s, ±25 %) after the network error
    assert attempts[2][0] - attempts[1][0] >= 0.9  # waited as the 503's Retry-After said
    cases = _cases_with_key(map_world, key)
    assert len(cases) == 1 and item.get_attribute("data-case-no") == cases[0][1]
    assert _photo_count(map_world, cases[0][0], "before") == 1
    assert phone.errors == []


def test_a_refused_report_shows_the_field_and_is_not_retried(phone, map_world):
    page = phone.page
    page.click("#tab-report")
    # Tap the map outside the county: the report's location moves there.
    page.evaluate("void GisMap.map.setView([36.07, 115.75], 14, {animate: false})")
    box = page.locator(".gis-p-map .leaflet-container").bounding_box()
    page.touchscreen.tap(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function("() => document.getElementById('report-point').textContent.includes('地图选点')")
    assert float(page.inner_text("#report-point").split(",")[0]) > 36.05  # north of the county
    _fill_report(page, description="县外的点")
    before = phone.posts("/api/v1/cases")
    key = _submit(page)
    item = _item(page, key)
    _wait_state(page, key, "failed")
    page.click("#tab-outbox")
    assert "发送失败" in item.inner_text() and "geometry:" in item.inner_text()
    assert "geometry:" in page.inner_text("#report-message")  # the form's status line says so too
    page.wait_for_timeout(2600)  # longer than the first backoff: a retry would have gone by now
    assert phone.posts("/api/v1/cases") == before + 1
    assert item.get_attribute("data-state") == "failed"
    item.locator('button[data-action="discard"]').click()
    item.wait_for(state="detached")
    page.click("#tab-report")
    page.click("#use-gps")
    assert "当前位置" in page.inner_text("#report-point")


def test_end_to_end_a_report_reaches_the_command_centre_is_dispatched_and_handled(phone, command, map_world):
    page, desk = phone.page, command.page
    county = map_world.county
    stacks: list[str] = []  # where the command centre's script errors come from, should there be any
    desk.on("pageerror", lambda error: stacks.append(error.stack or str(error)))
    desk.wait_for_function("() => GisMap.liveState === 'live'")
    description = "端到端：占道经营，请派人处理"
    _fill_report(page, description=description, address="西镇 人民路 8 号", photo=_photo("before.png", (90, 90, 90)))
    with page.expect_response(lambda r: r.request.method == "POST" and urlsplit(r.url).path == "/api/v1/cases"):
        key = _submit(page)
    reported = time.monotonic()  # the case exists from here on
    page.wait_for_function("(key) => document.querySelector(`#outbox-list > li[data-key=\"${key}\"]`).dataset.caseId",
                           arg=key)
    case_id = int(_item(page, key).get_attribute("data-case-id"))
    queued = desk.locator(f'#queue-list [data-case-id="{case_id}"]')
    queued.wait_for(timeout=LIVE_DEADLINE_S * 1000)
    assert time.monotonic() - reported < LIVE_DEADLINE_S
    assert "待核实" in queued.inner_text() and "west中队" in queued.inner_text()  # routed to the squad X
    _wait_state(page, key, "sent")

    # A supervisor verifies it; the operator dispatches it from the command centre to the routed squad.
    case = map_world.api().get(f"/api/v1/cases/{case_id}", headers=map_world.token("op")).get_json()
    assert case["assigned"]["id"] == county.agencies["squad_west"] and case["source"] == "patroller"
    map_world.step(case, "file", "sup1")
    queued.locator(".gis-status-filed").wait_for(timeout=LIVE_DEADLINE_S * 1000)
    queued.click()
    desk.wait_for_selector(f"#details .gis-d-no >> text={case['case_no']}")
    assert desk.inner_text("#details .gis-description") == description
    desk.click('#details button[data-action="dispatch"]')
    assert desk.input_value('#details select[name="target"]') == str(county.agencies["squad_west"])
    desk.click("#details .gis-dispatch button[type=submit]")
    desk.wait_for_selector("#details .gis-status-dispatched")

    # The patroller's task list follows the event stream: the task arrives without a reload.
    page.evaluate("window.__sameDocument = true")
    page.click("#tab-tasks")
    task = page.locator(f'#tasks-list [data-case-id="{case_id}"]')
    task.wait_for(timeout=5000)
    assert page.evaluate("window.__sameDocument") is True
    text = task.inner_text()
    assert "已派遣" in text and "TD02" in text and "西镇 人民路 8 号" in text and "处置时限" in text
    task.click()
    page.wait_for_selector(f"#task .gis-d-no >> text={case['case_no']}")
    assert page.inner_text("#task .gis-description") == description
    page.wait_for_selector("#task .gis-photo img")  # the before-photo sent from the phone
    page.click('#task button[data-action="accept"]')
    page.wait_for_selector("#task .gis-status-accepted")
    page.click('#task button[data-action="feedback"]')
    page.click("#task .gis-feedback button[type=submit]")  # no after-photo: refused on the page
    page.wait_for_selector("#task .gis-form-problem >> text=请拍摄处置后照片")
    page.set_input_files('#task input[name="after_photo"]', files=[_photo("after.png", (20, 160, 60))])
    page.fill('#task textarea[name="note"]', "已劝离，现场已清理")
    page.click("#task .gis-feedback button[type=submit]")
    page.wait_for_selector("#task .gis-status-handled")
    page.wait_for_selector("#task .alert-success")
    save_screenshot(page, "patrol-task")

    stored = map_world.api().get(f"/api/v1/cases/{case_id}", headers=map_world.token("op")).get_json()
    assert stored["status"] == "handled"
    events = map_world.api().get(f"/api/v1/cases/{case_id}/events", headers=map_world.token("op")).get_json()
    feedback = events["events"][-1]
    assert feedback["action"] == "feedback" and feedback["note"] == "已劝离，现场已清理"
    assert feedback["actor_role"] == "patroller" and len(feedback["data"]["attachments"]) == 1
    assert _photo_count(map_world, case_id, "after") == 1 and _photo_count(map_world, case_id, "before") == 1
    page.click("#task-back")
    page.locator(f'#tasks-list [data-case-id="{case_id}"]').wait_for(state="detached")  # handled: not a task now
    assert phone.errors == [] and command.errors == [], stacks
    _back_to_queue(desk)


def _back_to_queue(desk) -> None:
    if desk.is_visible("#details-close"):
        desk.click("#details-close")
    desk.wait_for_selector("#queue-panel", state="visible")


def test_html_in_a_report_is_shown_as_text_on_both_pages_and_runs_nothing(phone, command, map_world):
    page, desk = phone.page, command.page
    _back_to_queue(desk)
    _fill_report(page, description=PAYLOAD, address=f"西镇 {PAYLOAD}")
    key = _submit(page)
    item = _item(page, key)
    _wait_state(page, key, "sent")
    page.click("#tab-outbox")
    assert item.locator(".gis-ob-description").inner_text() == PAYLOAD
    assert item.locator(".gis-ob-address").inner_text() == f"西镇 {PAYLOAD}"
    case_id = int(item.get_attribute("data-case-id"))
    queued = desk.locator(f'#queue-list [data-case-id="{case_id}"]')
    queued.wait_for(timeout=LIVE_DEADLINE_S * 1000)
    assert PAYLOAD in queued.inner_text()
    queued.click()
    desk.wait_for_selector("#details .gis-description")
    assert desk.inner_text("#details .gis-description") == PAYLOAD
    # Dispatched to the squad, it is the patroller's task: shown as text there too.
    case = map_world.api().get(f"/api/v1/cases/{case_id}", headers=map_world.token("op")).get_json()
    map_world.step(map_world.step(case, "file", "sup1"), "dispatch", "op")
    page.click("#tab-tasks")
    task = page.locator(f'#tasks-list [data-case-id="{case_id}"]')
    task.wait_for(timeout=5000)
    assert f"西镇 {PAYLOAD}" in task.inner_text()
    task.click()
    page.wait_for_selector("#task .gis-description")
    assert page.inner_text("#task .gis-description") == PAYLOAD
    page.wait_for_timeout(300)  # an injected image would have failed to load and fired its handler by now
    for p in (page, desk):
        assert p.locator('img[src="x"]').count() == 0
    assert phone.dialogs == [] and command.dialogs == [] and phone.errors == [] and command.errors == []
    page.click("#task-back")
    _back_to_queue(desk)


def test_the_language_switch_changes_the_labels(phone, map_world):
    page = phone.page
    page.click("#tab-report")
    page.click("#lang-switch")
    page.wait_for_function("() => document.documentElement.lang === 'en'")
    assert page.inner_text("#tab-report") == "Report" and "My tasks" in page.inner_text("#tab-tasks")
    assert "Mobile hawkers (IO03)" in page.inner_text("#category")
    assert page.get_attribute("#category-search", "placeholder").startswith("Search categories")
    assert f"Grid {GRID_WEST}" in page.inner_text("#where-text")
    save_screenshot(page, "patrol-en")
    page.click("#lang-switch")
    page.wait_for_function("() => document.documentElement.lang === 'zh-CN'")
    assert page.inner_text("#tab-report") == "上报"
    assert any(c["name"] == "gis_lang" and c["value"] == "zh" for c in page.context.cookies())
    # Whatever the page did in this module, it asked no other host for anything.
    assert _off_loopback(url for _, url in phone.requests) == []
    assert phone.errors == [] and phone.dialogs == []

