"""Time to the first interactive ``/command`` map and the bytes it transfers, with 10,000 and 1,000,000 cases.

``python -m bench.webmap [--cases 10000,1000000] [--runs 3] [--workers 2] [--keep] [--out var/bench/webmap.md]``

Two databases in the private cluster under ``var/bench-cluster`` (never the test suite's): the demo county
is loaded once into ``gis_bench_webmap`` and reused; each run copies it (``CREATE DATABASE … TEMPLATE``)
and tops the copy up with synthetic cases (``bench.synthetic``) to the first count, then copies that and
tops it up to the second. The copies are dropped at the end unless ``--keep``. ``DATABASE_URL`` is
ignored: the benchmark needs a server on which it may create databases.

Each database is served as deployed (``gis-platform serve --no-demo --no-migrate``, gunicorn, loopback,
no basemap), both servers at once, and Debian's Chromium (headless, driven by Playwright; nothing is
downloaded) opens ``/command`` as the demo operator, alternating between the two servers so that both
see the same machine. Every measured load is cold: a new browser context (empty cache) that carries only
the session cookie. One load per server is made first and not measured (the workers' first requests).

**Time to first interactive map**, per load, measured in the page from navigation start
(``performance.now()``, checked on every animation frame by a script installed before the page's own):
the first frame at which (1) Leaflet has its view (``map._loaded``), (2) the squads' jurisdictions are
drawn, and (3) the cases layer has drawn its first view: all the vector tiles of the view loaded and
rendered, or its markers added. **Bytes** are the sum of ``transferSize`` (headers and encoded body) of
the document and every resource, read from Resource Timing once the network has been quiet for a second
(the live event stream stays open and is not counted). Markers are counted in the DOM (the cases'
``path.gis-case`` elements and any marker icon). Two further changes of view are timed, each on a page of
its own once it is ready, until the network is quiet again: the status filter set to "all" (every case,
closed ones included, aggregated by the server), and a zoom to level 16 at the county seat (points, when
they fit under the 2,000-marker cap).
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.api import HOST, Server, free_port, serving
from bench.routing import COUNTY, METRIC_CRS, ROOT
from bench.synthetic import SyntheticSpec, insert_cases

CLUSTER_DIR = ROOT / "var" / "bench-cluster"
BASE_DB = "gis_bench_webmap"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]
VIEWPORT = {"width": 1600, "height": 900}
USERNAME, PASSWORD = "operator", "Yanggu@2021"  # the demo's operator (layers.demo_reference)
SEAT = (115.79, 36.11)  # the county seat, where the cases are densest
RATIO_TARGET = 1.5
MARKER_CAP = 2000
READY_TIMEOUT_S = 180
QUIET_S = 1.0
SEED = 2021

# Installed before the page's scripts: records when each part of the map is first drawn.
PROBE = """
(() => {
  performance.setResourceTimingBufferSize(10000);
  const marks = (window.__gisBench = {});
  const tilesLoaded = (grid) => {
    if (!grid || !grid._map) return false;
    const tiles = Object.values(grid._tiles || {});
    return tiles.length > 0 && tiles.every((tile) => tile.loaded);
  };
  const casesDrawn = (layer) =>
    layer && (layer.mode === "markers" || (layer.mode === "tiles" && tilesLoaded(layer._tiles)));
  const tick = () => {
    const G = window.GisMap;
    const now = performance.now();
    if (G && G.map) {
      if (marks.map == null && G.map._loaded) marks.map = now;
      const areas = G.layers.jurisdictions;
      if (marks.areas == null && areas && areas.getLayers().length > 0) marks.areas = now;
      if (marks.cases == null && casesDrawn(G.layers.cases)) marks.cases = now;
    }
    if (marks.map != null && marks.areas != null && marks.cases != null) { marks.ready = now; return; }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  window.__gisCasesDrawn = () => casesDrawn(window.GisMap && window.GisMap.layers.cases);
})();
"""

# Read once the network is quiet: bytes by kind, markers, DOM size, the queue, the view.
SNAPSHOT = """
() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const kinds = {document: 0, static: 0, tiles: 0, data: 0};
  const counts = {document: 1, static: 0, tiles: 0, data: 0};
  let slowestTile = 0;
  kinds.document = nav.transferSize;
  for (const entry of performance.getEntriesByType("resource")) {
    const path = new URL(entry.name).pathname;
    const kind = path.startsWith("/static/") ? "static" : path.startsWith("/api/v1/tiles/") ? "tiles" : "data";
    kinds[kind] += entry.transferSize;
    counts[kind] += 1;
    if (kind === "tiles") slowestTile = Math.max(slowestTile, entry.responseEnd - entry.requestStart);
  }
  const layer = GisMap.layers.cases;
  return {
    marks: window.__gisBench, bytes: kinds, requests: counts, html_bytes: nav.decodedBodySize,
    dom_markers: document.querySelectorAll("path.gis-case, .leaflet-marker-icon").length,
    layer_markers: layer.markerCount(), mode: layer.mode, zoom: GisMap.map.getZoom(),
    dom_nodes: document.getElementsByTagName("*").length,
    queue_items: document.querySelectorAll("#queue-list > li").length,
    queue_count: Number(document.getElementById("queue-count").textContent),
    slowest_tile_ms: slowestTile, dcl_ms: nav.domContentLoadedEventEnd, load_ms: nav.loadEventEnd,
  };
}
"""


def _say(message: str) -> None:
    print(f"· {message}", file=sys.stderr, flush=True)


# -- databases ----------------------------------------------------------------------------------------


def base_database(cluster: Any) -> str:
    """Return the URL of the demo database of this benchmark, migrated, loaded once and reused."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from gis_platform.cli import upgrade_database
    from gis_platform.settings import Settings
    from layers.demo import is_loaded, load_demo

    url = cluster.create_database(BASE_DB)
    upgrade_database(url)
    engine = create_engine(url)
    try:
        with Session(engine) as session, session.begin():
            if not is_loaded(session, COUNTY):
                _say(f"loading the demo county into {BASE_DB} (once; later runs reuse it)…")
                settings = Settings(_env_file=None, database_url=None, data_dir=CLUSTER_DIR, county_code=COUNTY,
                                    metric_crs=METRIC_CRS)
                load_demo(session, settings, progress=_say)
    finally:
        engine.dispose()
    return url


def copy_database(cluster: Any, template: str, name: str) -> str:
    """Create ``name`` as a copy of ``template`` (which must have no other session) and return its URL."""
    from sqlalchemy import create_engine, text

    admin = create_engine(cluster.url("postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))  # names are this module's
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    finally:
        admin.dispose()
    return cluster.url(name)


def drop_database(cluster: Any, name: str) -> None:
    """Drop a database this run made."""
    from sqlalchemy import create_engine, text

    admin = create_engine(cluster.url("postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@dataclass
class Dataset:
    """One database of the comparison: its URL, its cases, and how they were made."""

    name: str
    url: str
    cases: int
    open_cases: int = 0
    queue_cases: int = 0
    synthetic: int = 0
    load_s: float = 0.0
    size_mb: float = 0.0


def top_up(name: str, url: str, target: int, seed: int) -> Dataset:
    """Add synthetic cases until the county has ``target`` cases; vacuum and analyse; describe the result."""
    from sqlalchemy import create_engine, text

    from gis_platform import vocab

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            have = conn.execute(text('SELECT count(*) FROM "case" WHERE county_code = :c'), {"c": COUNTY}).scalar_one()
        added, seconds = 0, 0.0
        if have < target:
            _say(f"{name}: adding {target - have:,} synthetic cases to the {have:,} there…")
            started = time.perf_counter()
            with engine.begin() as conn:
                result = insert_cases(conn, COUNTY, SyntheticSpec(target - have, seed=seed), _say)
            seconds = time.perf_counter() - started
            added = result.cases
            parts = ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items())
            _say(f"{name}: {added:,} cases in {seconds:.0f} s ({parts})")
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text('VACUUM ANALYZE "case"'))  # as a database in service would be
            row = conn.execute(text(
                'SELECT count(*), count(*) FILTER (WHERE status = ANY(:open)), '
                "count(*) FILTER (WHERE status IN ('reported', 'filed', 'returned')), "
                'pg_database_size(current_database()) FROM "case" WHERE county_code = :c'),
                {"c": COUNTY, "open": list(vocab.OPEN_STATUSES)}).one()
    finally:
        engine.dispose()
    return Dataset(name, url, cases=row[0], open_cases=row[1], queue_cases=row[2], synthetic=added, load_s=seconds,
                   size_mb=row[3] / 1e6)


# -- the browser --------------------------------------------------------------------------------------


@dataclass
class Load:
    """What one cold load of /command measured."""

    dataset: str
    marks: dict[str, float]
    bytes: dict[str, int]
    requests: dict[str, int]
    html_bytes: int
    dom_markers: int
    layer_markers: int
    mode: str
    zoom: int
    dom_nodes: int
    queue_items: int
    queue_count: int
    slowest_tile_ms: float
    dcl_ms: float
    load_ms: float

    @property
    def ready_ms(self) -> float:
        """Return the time to first interactive map."""
        return self.marks["ready"]

    @property
    def total_bytes(self) -> int:
        """Return the bytes of the document and every resource."""
        return sum(self.bytes.values())

    @property
    def data_bytes(self) -> int:
        """Return the bytes of the data: tiles and API answers (no document, no static files)."""
        return self.bytes["tiles"] + self.bytes["data"]


@dataclass
class ViewChange:
    """A change of view on a loaded page: how long until the network settled and what it drew."""

    dataset: str
    what: str
    seconds: float
    bytes: int
    dom_markers: int
    mode: str
    matched: int | None


@dataclass
class Browser:
    """Debian's Chromium under Playwright, and the signed-in session cookie of each server."""

    chromium: Any
    states: dict[str, Any] = field(default_factory=dict)

    def sign_in(self, origin: str) -> None:
        """Sign in as the demo operator through the login form and keep the session cookie."""
        context = self.chromium.new_context(viewport=VIEWPORT, locale="zh-CN", timezone_id="Asia/Shanghai")
        try:
            page = context.new_page()
            page.goto(f"{origin}/login?next=/api/v1/health")
            page.fill("input[name=username]", USERNAME)
            page.fill("input[name=password]", PASSWORD)
            with page.expect_navigation():
                page.click("button[type=submit]")
            if "/login" in page.url:
                raise RuntimeError(f"signing in as {USERNAME} at {origin} failed: {page.inner_text('body')[:300]}")
            self.states[origin] = context.storage_state()
        finally:
            context.close()

    @contextmanager
    def cold_page(self, origin: str) -> Iterator[Any]:
        """Yield a page in a new context (empty cache) carrying only the session, with the probe installed."""
        context = self.chromium.new_context(viewport=VIEWPORT, locale="zh-CN", timezone_id="Asia/Shanghai",
                                            storage_state=self.states[origin])
        try:
            context.add_init_script(PROBE)
            page = context.new_page()
            page.set_default_timeout(READY_TIMEOUT_S * 1000)
            yield page
        finally:
            context.close()


class Network:
    """The requests of a page still open (the live event stream aside) and when the last one ended."""

    def __init__(self, page: Any) -> None:
        self.open: set[Any] = set()
        self.last_end = time.monotonic()
        page.on("request", self._start)
        page.on("requestfinished", self._end)
        page.on("requestfailed", self._end)

    def _start(self, request: Any) -> None:
        if "/api/v1/events" not in request.url:
            self.open.add(request)

    def _end(self, request: Any) -> None:
        if request in self.open:
            self.open.discard(request)
            self.last_end = time.monotonic()

    def wait_quiet(self, page: Any, quiet_s: float = QUIET_S, limit_s: float = READY_TIMEOUT_S) -> float:
        """Wait until no request has been open for ``quiet_s``; return when the last one ended (monotonic)."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            page.wait_for_timeout(100)
            if not self.open and time.monotonic() - self.last_end >= quiet_s:
                return self.last_end
        raise RuntimeError(f"the page still had {len(self.open)} requests open after {limit_s:.0f} s")


def measure_load(browser: Browser, origin: str, dataset: str) -> Load:
    """Open /command cold, wait for the first interactive map and a quiet network, read the snapshot."""
    with browser.cold_page(origin) as page:
        network = Network(page)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{origin}/command")
        if "/login" in page.url:
            raise RuntimeError("the session cookie was refused: /command sent the browser to the login page")
        page.wait_for_function("() => window.__gisBench && window.__gisBench.ready != null",
                               timeout=READY_TIMEOUT_S * 1000)
        network.wait_quiet(page)
        snap = page.evaluate(SNAPSHOT)
        if errors:
            raise RuntimeError(f"script errors on /command: {errors[:3]}")
    return Load(dataset=dataset, **snap)


def _transfer(page: Any) -> int:
    return int(page.evaluate("() => performance.getEntriesByType('resource')"
                             ".reduce((n, e) => n + e.transferSize, 0)"))


def measure_views(browser: Browser, origin: str, dataset: str) -> list[ViewChange]:
    """Time two changes of view, each on a page of its own once loaded: every status, and a zoom to 16."""
    actions = [
        ("all statuses, county view",
         lambda page: page.select_option("#filters select[name=status]", "all")),
        ("zoom 16 at the county seat, open cases",
         lambda page: page.evaluate(f"() => GisMap.map.setView([{SEAT[1]}, {SEAT[0]}], 16, {{animate: false}})")),
    ]
    out = []
    for what, act in actions:
        with browser.cold_page(origin) as page:
            network = Network(page)
            page.goto(f"{origin}/command")
            page.wait_for_function("() => window.__gisBench && window.__gisBench.ready != null")
            network.wait_quiet(page)
            before = _transfer(page)
            started = time.monotonic()
            act(page)
            page.wait_for_timeout(50)
            ended = network.wait_quiet(page)
            page.wait_for_function("() => window.__gisCasesDrawn()")
            state = page.evaluate("() => ({markers: document.querySelectorAll('path.gis-case, .leaflet-marker-icon')"
                                  ".length, mode: GisMap.layers.cases.mode, matched: GisMap.layers.cases.matched})")
            out.append(ViewChange(dataset, what, max(0.0, ended - started), _transfer(page) - before,
                                  state["markers"], state["mode"], state["matched"]))
    return out


# -- the run ------------------------------------------------------------------------------------------


@contextmanager
def browser_session() -> Iterator[Browser]:
    """Yield Debian's Chromium, headless, under Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield Browser(chromium)
        finally:
            chromium.close()


def run(args: argparse.Namespace) -> int:
    """Build both databases, serve them, load /command cold in turns, print and write the table."""
    from gis_platform.pgcluster import LocalCluster

    counts = [int(x) for x in args.cases.split(",")]
    if len(counts) != 2 or not 0 < counts[0] < counts[1]:
        raise SystemExit("--cases takes two increasing counts, e.g. 10000,1000000")
    cluster = LocalCluster(data_dir=CLUSTER_DIR, dbname="gis_bench")
    started_cluster = None if cluster.is_running() else cluster
    names = [f"{BASE_DB}_{n}" for n in counts]
    datasets: list[Dataset] = []
    loads: list[Load] = []
    views: list[ViewChange] = []
    try:
        cluster.ensure(progress=_say)
        base_database(cluster)
        template = BASE_DB
        for name, n in zip(names, counts):
            url = copy_database(cluster, template, name)
            datasets.append(top_up(name, url, n, SEED + n))
            template = name
        bin_dir = Path(sys.executable).parent
        secret = secrets.token_hex(32)
        with tempfile.TemporaryDirectory(prefix="bench-webmap-") as tmp, ExitStack() as stack:
            servers: dict[str, Server] = {}
            for ds in datasets:
                data_dir = Path(tmp) / ds.name
                data_dir.mkdir()
                port = free_port()
                env = {**os.environ, "DATABASE_URL": ds.url, "GIS_DATA_DIR": str(data_dir), "GIS_COUNTY_CODE": COUNTY,
                       "GIS_LOG_LEVEL": "WARNING", "GIS_WORKERS": str(args.workers), "GIS_HOST": HOST,
                       "GIS_TILE_URL": "", "GIS_SECRET_KEY": secret}
                argv = [str(bin_dir / "gis-platform"), "serve", "--no-demo", "--no-migrate", "--host", HOST,
                        "--port", str(port), "--workers", str(args.workers)]
                servers[ds.name] = stack.enter_context(serving(ds.name, argv, env, port, "/api/v1/health", Path(tmp)))
            browser = stack.enter_context(browser_session())
            origins = {name: f"http://{HOST}:{server.port}" for name, server in servers.items()}
            for name, origin in origins.items():
                browser.sign_in(origin)
                _say(f"{name}: warming up (one load, not measured)…")
                measure_load(browser, origin, name)
            for i in range(args.runs):
                for ds in datasets:
                    load = measure_load(browser, origins[ds.name], ds.name)
                    loads.append(load)
                    _say(f"run {i + 1}, {ds.cases:,} cases: ready {load.ready_ms:,.0f} ms, "
                         f"{load.total_bytes / 1024:,.0f} KiB, {load.dom_markers} markers")
            for ds in datasets:
                views += measure_views(browser, origins[ds.name], ds.name)
    finally:
        if not args.keep:
            for name in names:
                drop_database(cluster, name)
        if started_cluster is not None and not args.keep:
            _say("stopping the bench cluster this run started")
            started_cluster.stop()
    report, missed = render(datasets, loads, views, args)
    print(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report, encoding="utf-8")
    _say(f"written {out}")
    return 1 if missed else 0


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def render(datasets: list[Dataset], loads: list[Load], views: list[ViewChange],
           args: argparse.Namespace) -> tuple[str, bool]:
    """Return the Markdown report and whether a target was missed."""
    load_avg = os.getloadavg()
    lines = [
        f"## /command at scale ({datetime.now().astimezone():%Y-%m-%d %H:%M %Z})",
        "",
        f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load_avg[0]:.1f}/{load_avg[1]:.1f}/"
        f"{load_avg[2]:.1f} at the end; Chromium headless ({VIEWPORT['width']}×{VIEWPORT['height']}), "
        f"{args.runs} cold loads per database, alternating; gunicorn {args.workers} workers per server; medians.",
        "",
        "| cases | open | waiting (queue) | database | synthetic added | load time |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for ds in datasets:
        lines.append(f"| {ds.cases:,} | {ds.open_cases:,} | {ds.queue_cases:,} | {ds.size_mb:,.0f} MB "
                     f"| {ds.synthetic:,} | {ds.load_s:.0f} s |")
    lines += ["", "| cases | first interactive map (ms) | map | areas | cases layer | DOMContentLoaded | bytes "
              "| of which data | requests | HTML bytes | DOM markers | cases mode, zoom | queue shown / count "
              "| DOM nodes | slowest tile (ms) |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    medians: dict[str, dict[str, float]] = {}
    for ds in datasets:
        mine = [x for x in loads if x.dataset == ds.name]
        if not mine:
            continue
        m = {"ready": _median([x.ready_ms for x in mine]), "bytes": _median([x.total_bytes for x in mine]),
             "data": _median([x.data_bytes for x in mine]),
             "markers": max(x.dom_markers for x in mine), "html": _median([x.html_bytes for x in mine])}
        medians[ds.name] = m
        last = mine[-1]
        lines.append(
            f"| {ds.cases:,} | **{m['ready']:,.0f}** | {_median([x.marks['map'] for x in mine]):,.0f} "
            f"| {_median([x.marks['areas'] for x in mine]):,.0f} | {_median([x.marks['cases'] for x in mine]):,.0f} "
            f"| {_median([x.dcl_ms for x in mine]):,.0f} | {m['bytes'] / 1024:,.0f} KiB | {m['data'] / 1024:,.0f} KiB "
            f"| {sum(last.requests.values())} | {m['html'] / 1024:,.1f} KiB | {m['markers']} "
            f"| {last.mode}, z{last.zoom} | {last.queue_items} / {last.queue_count:,} | {last.dom_nodes:,} "
            f"| {_median([x.slowest_tile_ms for x in mine]):,.0f} |")
    lines += ["", "Each load: " + "; ".join(
        f"{x.dataset.rsplit('_', 1)[-1]} cases {x.ready_ms:,.0f} ms / {x.total_bytes / 1024:,.0f} KiB" for x in loads)]
    lines += ["", "| cases | change of view | until the network settled | bytes | DOM markers | cases mode "
              "| cases matched in view |", "|---:|---|---:|---:|---:|---|---:|"]
    by_name = {ds.name: ds for ds in datasets}
    for v in views:
        matched = "" if v.matched is None else f"{v.matched:,}"
        lines.append(f"| {by_name[v.dataset].cases:,} | {v.what} | {v.seconds * 1000:,.0f} ms "
                     f"| {v.bytes / 1024:,.0f} KiB | {v.dom_markers} | {v.mode} | {matched} |")
    small, large = (medians.get(ds.name) for ds in datasets)
    checks: list[tuple[str, str, str, bool]] = []
    if small and large:
        for key, label in (("ready", "time to first interactive map"), ("bytes", "bytes transferred")):
            ratio = large[key] / small[key]
            checks.append((f"{label}, {datasets[1].cases:,} vs {datasets[0].cases:,} cases", f"{ratio:.2f}×",
                           f"≤ {RATIO_TARGET}×", ratio <= RATIO_TARGET))
        checks.append(("data bytes (tiles and API), same ratio", f"{large['data'] / small['data']:.2f}×",
                       "(reported)", True))
    most = max([x.dom_markers for x in loads] + [v.dom_markers for v in views], default=0)
    checks.append(("DOM markers at any view measured", f"{most:,}", f"≤ {MARKER_CAP:,}", most <= MARKER_CAP))
    lines += ["", "| target | measured | wanted | |", "|---|---:|---:|---|"]
    lines += [f"| {name} | {got} | {want} | {'met' if ok else '**MISSED**'} |" for name, got, want, ok in checks]
    missed = [name for name, _, _, ok in checks if not ok]
    lines += ["", ("Targets missed: " + ", ".join(missed)) if missed else "All targets met."]
    lines += ["", "First interactive map: from navigation start to the first animation frame at which Leaflet has "
              "its view, the squads' areas are drawn and the cases layer has drawn its first view (every vector "
              "tile of the view loaded and rendered, or its markers added). Bytes: transferSize of the document and "
              "every resource once the network has been quiet for 1 s (the live event stream excluded); data = "
              "tiles and API answers."]
    return "\n".join(lines) + "\n", bool(missed)


def main(argv: list[str] | None = None) -> int:
    """Parse options and run the map benchmark."""
    parser = argparse.ArgumentParser(prog="python -m bench.webmap", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="10000,1000000", help="the two case counts compared")
    parser.add_argument("--runs", type=int, default=3, help="cold loads per database")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per server")
    parser.add_argument("--keep", action="store_true", help="keep the two databases (and the cluster running)")
    parser.add_argument("--out", default=str(ROOT / "var" / "bench" / "webmap.md"))
    # `python -m bench` passes every benchmark the same options: ignore the other benchmarks' ones.
    args, ignored = parser.parse_known_args(argv)
    if ignored:
        _say(f"bench.webmap ignores {' '.join(ignored)}")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
