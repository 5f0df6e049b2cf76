"""The Content-Security-Policy in headless Chromium: the pages run under it with no violation, injections do not.

Violations are caught two ways: the ``securitypolicyviolation`` DOM event (listened to from an init
script, which runs before any of the page's own) and Chromium's "Refused to …" console errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.webmap.conftest import MapWorld, save_screenshot, sign_in

LISTEN = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (event) {
  window.__cspViolations.push(event.violatedDirective + " " + event.blockedURI + " " + (event.sample || ""));
});
"""


@dataclass
class Watched:
    """A browser page with the CSP violations and script errors it reported."""

    page: Any
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def violations(self) -> list[str]:
        """Return every violation seen so far: DOM events of this document, and console reports."""
        events = self.page.evaluate("window.__cspViolations || []")
        return events + [text for text in self.console if "Content Security Policy" in text or "Refused to" in text]


@pytest.fixture()
def watched(browser: Any) -> Iterator[Watched]:
    """Return a fresh page (its own cookies) that records CSP violations, console errors and page errors."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.add_init_script(LISTEN)
    seen = Watched(page=page)
    page.on("console", lambda message: message.type == "error" and seen.console.append(message.text))
    page.on("pageerror", lambda error: seen.errors.append(str(error)))
    try:
        yield seen
    finally:
        context.close()


def test_the_login_page_runs_under_the_policy(watched: Watched, map_world: MapWorld):
    page = watched.page
    response = page.goto(map_world.origin + "/login")
    assert "nonce-" in response.headers["content-security-policy"]
    # The page's own style sheet (nonce'd) applies: the form is the narrow centred column.
    assert page.evaluate("getComputedStyle(document.querySelector('section.narrow')).maxWidth") != "none"
    assert watched.violations() == [] and watched.errors == []
    save_screenshot(page, "login")


def test_the_command_page_and_its_map_run_under_the_policy(watched: Watched, map_world: MapWorld):
    page = watched.page
    sign_in(page, map_world.origin, "op")  # the login form posts to this origin (form-action 'self') and redirects
    assert page.url == map_world.origin + "/command"
    page.wait_for_selector(".leaflet-container")
    page.wait_for_function("() => window.GisMap && GisMap.liveState === 'live'")
    # The map initialised from Folium's script: its layers are registered and the squads' areas drawn.
    page.wait_for_selector(".gis-label >> text=west中队")
    assert set(page.evaluate("Object.keys(GisMap.layers)")) >= {"jurisdictions", "grid_cells", "cases", "legend"}
    assert page.evaluate("document.querySelector('.folium-map').getBoundingClientRect().height") > 200
    assert page.locator(".leaflet-control-layers").count() == 1
    assert watched.violations() == [] and watched.errors == []


def test_injected_inline_code_is_refused_and_reported(watched: Watched, map_world: MapWorld):
    page = watched.page
    page.goto(map_world.origin + "/login")
    page.evaluate("""() => {
        const script = document.createElement("script");
        script.textContent = "window.__injected = true";
        document.body.append(script);
        document.body.insertAdjacentHTML("beforeend", '<img src="http://203.0.113.9/x.png">');
    }""")
    page.wait_for_function("() => window.__cspViolations.length >= 2")
    assert page.evaluate("window.__injected === undefined")
    directives = {violation.split()[0] for violation in page.evaluate("window.__cspViolations")}
    assert directives == {"script-src-elem", "img-src"}


def test_the_api_docs_run_under_the_policy(watched: Watched, map_world: MapWorld):
    page = watched.page
    page.goto(map_world.origin + "/api/v1/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    page.wait_for_function("() => document.querySelectorAll('.opblock').length > 20")
    page.click(".opblock-summary >> nth=0")  # an operation opens (React renders with inline style properties)
    page.wait_for_selector(".opblock.is-open")
    assert watched.violations() == [] and watched.errors == []
    save_screenshot(page, "api-docs")

