"""Routing throughput: the in-process engine, PostGIS's two plans, geopandas.sjoin and a naive loop.

``python -m bench.routing [--points 1000000] [--pg-points 200000] [--naive-points 2000] [--lookups 200]``

Points are a realistic mix on the demo county: 80 % clustered around the demo's hotspot anchors (about
150 m spread; along the main streets for the street anchors), 20 % uniform over the county, each with a
category drawn from the category dictionary. Every baseline runs in the same process on the same points,
so the ratios compare like with like on this machine at this moment. Timings are the best of
``--repeat`` runs (the fastest run is the least disturbed by other work on the machine), except for the
long single runs noted in the table.

The database: ``GIS_BENCH_DATABASE_URL`` or ``DATABASE_URL`` when set (the demo is loaded there only if
that database has no county 371521 yet), otherwise a database ``gis_bench`` in a private cluster under
``var/bench-cluster``, loaded once and reused by later runs. The benchmark only reads: its temporary
tables go with a transaction that is rolled back.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
COUNTY = "371521"
METRIC_CRS = "EPSG:4548"
CHUNK = 50_000
TARGETS = {"in-process hits vs geopandas.sjoin": 1.5, "PostGIS polygon-driven vs point-by-point": 3.0}


@dataclass
class Row:
    """One line of the results table; ``key`` names it for the ratios."""

    key: str
    name: str
    points: int
    seconds: float
    note: str = ""

    @property
    def rate(self) -> float:
        """Return points per second."""
        return self.points / self.seconds if self.seconds > 0 else float("inf")


def _say(message: str) -> None:
    print(f"· {message}", file=sys.stderr, flush=True)


def _best(run: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Return the fastest of ``repeat`` runs and the last run's value."""
    best, value = float("inf"), None
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        value = run()
        best = min(best, time.perf_counter() - started)
    return best, value


def _peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


# -- the database --------------------------------------------------------------------------------------


def bench_database() -> tuple[str, object | None]:
    """Return the URL of a database holding the demo county, and the cluster this run started (or None)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session

    from gis_platform.cli import upgrade_database
    from gis_platform.settings import Settings
    from layers.demo import load_demo

    external = os.environ.get("GIS_BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL")
    started = None
    if external:
        url = Settings(_env_file=None, database_url=external).database_url or external
        _say("using the database from GIS_BENCH_DATABASE_URL / DATABASE_URL")
    else:
        from gis_platform.pgcluster import LocalCluster

        cluster = LocalCluster(data_dir=ROOT / "var" / "bench-cluster", dbname="gis_bench")
        started = None if cluster.is_running() else cluster
        url = cluster.ensure(progress=_say)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            has_table = conn.execute(text("SELECT to_regclass('admin_unit') IS NOT NULL")).scalar_one()
            loaded = has_table and conn.execute(text(
                "SELECT count(*) FROM admin_unit WHERE county_code = :c AND level = 'county'"),
                {"c": COUNTY}).scalar_one() > 0
        if not loaded:
            _say("loading the demo county into the bench database (once; later runs reuse it)…")
            upgrade_database(url)
            settings = Settings(_env_file=None, database_url=None, data_dir=ROOT / "var" / "bench-cluster",
                                county_code=COUNTY, metric_crs=METRIC_CRS)
            with Session(engine) as session, session.begin():
                load_demo(session, settings, progress=_say)
    finally:
        engine.dispose()
    return url, started


# -- the points ----------------------------------------------------------------------------------------


def make_points(n: int, categories: list[str], seed: int = 2021) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return lon, lat and category arrays: 80 % around the hotspot anchors, 20 % uniform in the county."""
    import shapely
    from pyproj import Transformer

    from grids.demo_geography import build_demo_geography, load_county_outline, reproject

    geo = build_demo_geography(load_county_outline())
    county = reproject(geo.county.outline.geometry, "EPSG:4326", METRIC_CRS)
    shapely.prepare(county)
    anchors = [reproject(a.geometry, "EPSG:4326", METRIC_CRS) for a in geo.anchors]
    weights = np.array([a.weight for a in geo.anchors], float)
    weights /= weights.sum()
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = county.bounds
    xs, ys, have = np.empty(n), np.empty(n), 0
    while have < n:
        batch = max(1024, int((n - have) * 1.3))
        clustered = rng.random(batch) < 0.8
        pick = rng.choice(len(anchors), size=batch, p=weights)
        x = rng.uniform(minx, maxx, batch)
        y = rng.uniform(miny, maxy, batch)
        for k, anchor in enumerate(anchors):
            mine = np.flatnonzero(clustered & (pick == k))
            if anchor.geom_type == "LineString":
                base = shapely.line_interpolate_point(anchor, rng.random(len(mine)), normalized=True)
                bx, by = shapely.get_x(base), shapely.get_y(base)
                spread = 50.0  # streets: tight across the street, anywhere along it
            else:
                bx, by, spread = anchor.x, anchor.y, 150.0
            x[mine] = bx + rng.normal(0, spread, len(mine))
            y[mine] = by + rng.normal(0, spread, len(mine))
        inside = shapely.contains_xy(county, x, y)
        take = np.flatnonzero(inside)[: n - have]
        xs[have: have + len(take)] = x[take]
        ys[have: have + len(take)] = y[take]
        have += len(take)
    order = rng.permutation(n)  # clusters interleaved, as reports arrive
    lon, lat = Transformer.from_crs(METRIC_CRS, "EPSG:4326", always_xy=True).transform(xs[order], ys[order])
    cats = np.array(categories)[rng.integers(0, len(categories), n)]
    return np.asarray(lon), np.asarray(lat), cats


# -- the measurements ----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Run every measurement, print the table, write it to ``--out``; return 1 if a target is missed."""
    import geopandas as gpd
    import shapely
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session

    from grids.engine import InProcessEngine
    from grids.pg_engine import PgEngine
    from grids.routing import Router, load_catalogue, route_point

    url, started = bench_database()
    rows: list[Row] = []
    facts: dict[str, str] = {}
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            at = datetime.now(UTC)
            catalogue = load_catalogue(session, COUNTY, at)
            _say(f"making {args.points:,} points…")
            lon, lat, cats = make_points(args.points, sorted(catalogue.categories))
            n = len(lon)

            # In-process: build once, then the spatial part alone, then the whole decision.
            build_s, inproc = _best(lambda: InProcessEngine.from_session(session, COUNTY, at, METRIC_CRS), 1)
            router = Router(catalogue, inproc, at=at)
            # The router's own grouping of categories, so both engines get exactly what route_many passes.
            groups = np.array([router._group_of[c] for c in cats], np.int64)
            inside = inproc.in_county(lon, lat)
            facts["points outside the county (clusters at the edge)"] = f"{int((~inside).sum()):,}"
            _say("in-process engine: hits…")
            secs, hits = _best(lambda: inproc.hits(lon, lat, groups, router._group_agencies), args.repeat)
            rows.append(Row("hits", "in-process `engine.hits` (spatial part)", n, secs))
            covered = int((hits.first_cell() >= 0).sum())
            _say("in-process engine: Router.route_many in chunks…")
            started_at = time.perf_counter()
            routed = 0
            for i in range(0, n, CHUNK):
                out = router.route_many(lon[i:i + CHUNK], lat[i:i + CHUNK], cats[i:i + CHUNK].tolist())
                routed += sum(not isinstance(o, Exception) for o in out)
            rows.append(Row("route_many", "in-process `Router.route_many` (whole decision)", n, time.perf_counter() - started_at,
                            f"{CHUNK:,} per call, one run; {routed:,} routed"))
            facts["peak RSS after in-process routing"] = f"{_peak_rss_mb():,.0f} MB"

            # geopandas.sjoin: points → cells, units, squad jurisdictions, from the same coordinates.
            squads = {a.id for a in catalogue.agencies.values() if a.kind == "squad"}
            is_squad = np.isin(inproc.j_agency, list(squads))
            layers = {
                "cells": (inproc.cell_ids, inproc.cell_geoms),
                "units": (inproc.unit_ids, inproc.unit_geoms),
                "squads": (inproc.j_ids[is_squad], inproc.j_geoms[is_squad]),
            }
            # Fresh, unprepared copies: geopandas builds its own index and prepares what it needs.
            frames = {k: gpd.GeoDataFrame({"ref": ids}, geometry=shapely.from_wkb(shapely.to_wkb(g)), crs=4326)
                      for k, (ids, g) in layers.items()}

            def sjoin(predicate: str) -> int:
                points = gpd.GeoDataFrame({"i": np.arange(n)}, geometry=gpd.points_from_xy(lon, lat), crs=4326)
                found = 0
                for frame in frames.values():
                    polygons = frame.copy()  # no spatial index carried over between runs
                    found += len(gpd.sjoin(points, polygons, predicate=predicate))
                return found

            _say("geopandas.sjoin (within)…")
            secs, pairs = _best(lambda: sjoin("within"), args.repeat)
            rows.append(Row("sjoin", "`geopandas.sjoin` predicate=within", n, secs,
                            f"3 joins (cells, units, squads), {pairs:,} pairs; geopandas runs it polygon-driven"))
            if not args.skip_covered_by:
                _say("geopandas.sjoin (covered_by)…")
                secs, pairs = _best(lambda: sjoin("covered_by"), 1)
                rows.append(Row("sjoin_covered_by", "`geopandas.sjoin` predicate=covered_by", n, secs,
                                "same joins with the exact covers semantics; point-driven, one run"))

            # PostGIS: both plans on the same subset, inside a transaction rolled back at the end.
            m = min(n, args.pg_points)
            sub = slice(0, m)
            for plan, label in (("polygon", "PostGIS polygon-driven `hits` (`force_plan=\"polygon\"`)"),
                                ("point-table", "PostGIS point-by-point `hits` (`force_plan=\"point-table\"`)")):
                _say(f"PostGIS {plan} on {m:,} points…")
                pg = PgEngine(session, COUNTY, at=at, force_plan=plan)
                repeat = args.repeat if plan == "polygon" else 1
                secs, pg_hits = _best(lambda: pg.hits(lon[sub], lat[sub], groups[sub], router._group_agencies),
                                      repeat)
                note = "temp table, binary COPY, one query per layer" if plan == "polygon" else "one run"
                rows.append(Row(plan, label, m, secs, note))
                session.rollback()
            if args.pg_route_points:
                k = min(n, args.pg_route_points)
                _say(f"PostGIS Router.route_many on {k:,} points…")
                pg_router = Router(catalogue, PgEngine(session, COUNTY, at=at, force_plan="polygon"), at=at)
                secs, _ = _best(lambda: pg_router.route_many(lon[:k], lat[:k], cats[:k].tolist()), 1)
                rows.append(Row("pg_route_many", "PostGIS `Router.route_many` (whole decision)", k, secs, "one run"))
                session.rollback()

            # The naive loop: every point against every polygon, one covers call at a time.
            k = min(n, args.naive_points)
            naive_polys = list(shapely.from_wkb(shapely.to_wkb(np.concatenate(
                [inproc.unit_geoms, inproc.cell_geoms, inproc.j_geoms[is_squad]]))))

            def naive() -> int:
                found = 0
                for x, y in zip(lon[:k], lat[:k]):
                    p = shapely.Point(x, y)
                    for poly in naive_polys:
                        if poly.covers(p):
                            found += 1
                return found

            _say(f"naive per-point loop on {k:,} points…")
            secs, _ = _best(naive, 1)
            rows.append(Row("naive", "naive loop (every polygon, `covers`)", k, secs,
                            f"{len(naive_polys):,} polygons per point, one run"))

            # Single lookups through PostGIS, as the API does per report.
            rng = np.random.default_rng(7)
            picks = rng.choice(np.flatnonzero(inside), size=args.lookups)
            latency = []
            for i in picks:
                t0 = time.perf_counter()
                route_point(session, COUNTY, float(lon[i]), float(lat[i]), str(cats[i]), at=at)
                latency.append(time.perf_counter() - t0)
            pg_single = Router(catalogue, PgEngine(session, COUNTY, at=at), at=at)
            cached = []
            for i in picks:
                t0 = time.perf_counter()
                pg_single.route(float(lon[i]), float(lat[i]), str(cats[i]))
                cached.append(time.perf_counter() - t0)
            session.rollback()
            facts["PostGIS"] = session.execute(text("SELECT postgis_lib_version()")).scalar_one()
    finally:
        engine.dispose()
        if started is not None and not args.keep_running:
            _say("stopping the bench cluster this run started")
            started.stop()

    facts["points"] = f"{n:,} (grid cells covering {covered:,} of them)"
    facts["in-process engine build (`InProcessEngine.from_session`)"] = f"{build_s:.2f} s"
    facts["peak RSS at the end"] = f"{_peak_rss_mb():,.0f} MB"
    ms = lambda xs, q: np.percentile(np.array(xs) * 1000, q)  # noqa: E731
    facts[f"`route_point` latency, {len(latency)} lookups"] = (
        f"p50 {ms(latency, 50):.1f} ms, p95 {ms(latency, 95):.1f} ms (loads the catalogue each time)")
    facts[f"`Router.route` with PgEngine, catalogue kept, {len(cached)} lookups"] = (
        f"p50 {ms(cached, 50):.1f} ms, p95 {ms(cached, 95):.1f} ms")
    report = render(rows, facts)
    print(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report, encoding="utf-8")
    _say(f"written {out}")
    return 1 if any(target is not None and ratio < target for _, ratio, target in ratios(rows)) else 0


def ratios(rows: list[Row]) -> list[tuple[str, float, float | None]]:
    """Return (name, ratio, target) for the comparisons the benchmark exists for."""
    rate = {r.key: r.rate for r in rows}
    pairs = [
        ("in-process hits vs geopandas.sjoin", "hits", "sjoin"),
        ("in-process route_many vs geopandas.sjoin", "route_many", "sjoin"),
        ("PostGIS polygon-driven vs point-by-point", "polygon", "point-table"),
        ("in-process hits vs PostGIS polygon-driven", "hits", "polygon"),
        ("in-process hits vs naive loop", "hits", "naive"),
    ]
    return [(name, rate[a] / rate[b], TARGETS.get(name)) for name, a, b in pairs if a in rate and b in rate]


def render(rows: list[Row], facts: dict[str, str]) -> str:
    """Return the results as Markdown: throughput, ratios against targets, and the facts of the run."""
    load = os.getloadavg()
    import geopandas
    import shapely

    lines = [
        f"## Routing benchmark ({datetime.now().astimezone():%Y-%m-%d %H:%M %Z})",
        "",
        f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}; "
        f"Python {platform.python_version()}, Shapely {shapely.__version__} (GEOS "
        f"{'.'.join(map(str, shapely.geos_version))}), geopandas {geopandas.__version__}, "
        f"PostGIS {facts.pop('PostGIS', '?')}",
        "",
        "| measurement | points | seconds | points/s | note |",
        "|---|---:|---:|---:|---|",
    ]
    lines += [f"| {r.name} | {r.points:,} | {r.seconds:.2f} | {r.rate:,.0f} | {r.note} |" for r in rows]
    lines += ["", "| ratio | measured | target | |", "|---|---:|---:|---|"]
    for name, ratio, target in ratios(rows):
        verdict = "" if target is None else ("met" if ratio >= target else "**MISSED**")
        lines.append(f"| {name} | {ratio:.1f}× | {'' if target is None else f'≥ {target:g}×'} | {verdict} |")
    lines += ["", "| fact | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in facts.items()]
    missed = [name for name, ratio, target in ratios(rows) if target is not None and ratio < target]
    lines += ["", "Targets missed: " + ", ".join(missed) if missed else "All targets met."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Parse options and run the routing benchmark."""
    parser = argparse.ArgumentParser(prog="python -m bench.routing", description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000, help="points for the in-process runs and sjoin")
    parser.add_argument("--pg-points", type=int, default=200_000, help="subset for the two PostGIS plans")
    parser.add_argument("--pg-route-points", type=int, default=50_000,
                        help="subset for Router.route_many on PostGIS (0 to skip)")
    parser.add_argument("--naive-points", type=int, default=2_000, help="sample for the naive loop")
    parser.add_argument("--lookups", type=int, default=200, help="single PostGIS lookups for latency")
    parser.add_argument("--repeat", type=int, default=2, help="runs per short measurement (best is kept)")
    parser.add_argument("--skip-covered-by", action="store_true", help="skip the slow exact-semantics sjoin")
    parser.add_argument("--keep-running", action="store_true", help="leave the bench cluster running")
    parser.add_argument("--out", default=str(ROOT / "var" / "bench" / "routing.md"))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
