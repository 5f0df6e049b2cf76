"""Hot-spot analytics: the platform's path against esda's bare computation on the same data.

``python -m bench analytics`` or ``python -m bench.analytics [--permutations 999] [--points 1000000]``

- **Hot spots** on about 10,000 and 100,000 fishnet cells over the demo county (demo year 2021):
  the platform's whole path, ``compute_hotspots`` (cells generated and clipped, cases counted in
  PostGIS, contiguity built, Gi* with permutation inference, FDR, the result frame), against
  ``esda.G_Local(star=True, permutations=…)`` alone on the same counts and the same prebuilt weights.
  At 10,000 cells also with Local Moran's I, against ``G_Local`` + ``Moran_Local``, and with 9,999
  permutations (the API's default), against ``G_Local`` with as many.
- **Emerging hot spots** on about 10,000 cells × 52 weeks: ``compute_emerging`` (cube counted in
  PostGIS, Gi* per week, Mann-Kendall, categories) against 52 bare ``G_Local`` runs on the same cube.
- **Kernel density** of 1,000,000 points (80 % around the demo's hotspot anchors, as the routing
  benchmark makes them): ``density_surface`` (bandwidth rule, binning, Gaussian filter) against the
  bare ``numpy.histogram2d`` + ``scipy.ndimage.gaussian_filter`` on the same raster, and, for scale, an
  exact ``sklearn`` ``KernelDensity`` evaluated at a sample of the raster cells (extrapolated).

Ratios are platform / baseline seconds measured in the same run (target ≤ 1.3×). The database is the
routing benchmark's (``GIS_BENCH_DATABASE_URL``, ``DATABASE_URL`` or the private bench cluster); the
benchmark only reads.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench.routing import COUNTY, METRIC_CRS, ROOT, _peak_rss_mb, _say, bench_database, make_points

TARGET = 1.3
SHANGHAI_YEAR = ("2021-01-01T00:00:00+08:00", "2022-01-01T00:00:00+08:00")
FIRST_MONDAY = "2021-01-04T00:00:00+08:00"  # 52 whole ISO weeks from here


@dataclass
class Row:
    """One comparison: the platform's seconds and the baseline's on the same data."""

    name: str
    size: str
    platform_s: float
    baseline_name: str
    baseline_s: float
    note: str = ""
    target: float | None = TARGET

    @property
    def ratio(self) -> float:
        """Return platform / baseline."""
        return self.platform_s / self.baseline_s if self.baseline_s > 0 else float("inf")


def _timed(run: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = run()
    return time.perf_counter() - started, value


def _bare_gi(y: np.ndarray, graph: Any, permutations: int, seed: int) -> Any:
    import esda

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            return esda.G_Local(y, graph, transform="B", star=True, permutations=permutations,
                                keep_simulations=False, n_jobs=1, seed=seed)


def _bare_moran(y: np.ndarray, graph: Any, permutations: int, seed: int) -> Any:
    import esda

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            return esda.Moran_Local(y, graph, transformation="r", permutations=permutations,
                                    keep_simulations=False, n_jobs=1, seed=seed)


def _size_for(session: Any, cells: int) -> float:
    """Return the fishnet side (m) that gives about ``cells`` squares over the county."""
    from sqlalchemy import text

    area = session.execute(text("SELECT ST_Area(ST_Transform(geom, 4548)) FROM admin_unit "
                                "WHERE county_code = :c AND level = 'county'"), {"c": COUNTY}).scalar_one()
    return round(math.sqrt(area / cells), 1)


def hotspot_rows(session: Any, cells: int, permutations: int, seed: int, moran: bool) -> list[Row]:
    """Measure compute_hotspots against bare esda on about ``cells`` fishnet squares."""
    from layers.analytics import compute_hotspots

    start, end = (datetime.fromisoformat(v) for v in SHANGHAI_YEAR)
    size = _size_for(session, cells)
    _say(f"hot spots: {cells:,} cells ({size} m), platform path…")
    secs, result = _timed(lambda: compute_hotspots(session, COUNTY, start=start, end=end, cell="fishnet",
                                                   size_m=size, permutations=permutations, seed=seed, moran=False))
    n = len(result.cells)
    y = result.cells["count"].to_numpy(dtype=float)
    # The same weights, built outside the timing: the baseline is esda's statistic and nothing else.
    from layers.analytics.aggregate import build_cells, select_cases

    graph = build_cells(session, select_cases(session, COUNTY, start=start, end=end), cell="fishnet",
                        size_m=size).graph
    _say(f"hot spots: {n:,} cells, bare esda G_Local…")
    bare, _ = _timed(lambda: _bare_gi(y, graph, permutations, seed))
    hot = int((result.cells["significant"] & (result.cells["gi_z"] > 0)).sum())
    rows = [Row(f"aggregate → Gi* → FDR ({permutations} permutations)", f"{n:,} cells", secs,
                "`esda.G_Local` alone", bare, f"{int(y.sum()):,} cases; {hot} FDR-significant hot cells")]
    if moran:
        _say(f"hot spots: {n:,} cells with Local Moran, platform path…")
        secs_m, _ = _timed(lambda: compute_hotspots(session, COUNTY, start=start, end=end, cell="fishnet",
                                                    size_m=size, permutations=permutations, seed=seed, moran=True))
        _say("… bare esda G_Local + Moran_Local…")
        bare_m, _ = _timed(lambda: (_bare_gi(y, graph, permutations, seed), _bare_moran(y, graph, permutations, seed)))
        rows.append(Row(f"aggregate → Gi* + Local Moran → FDR ({permutations} permutations)", f"{n:,} cells",
                        secs_m, "`esda.G_Local` + `esda.Moran_Local`", bare_m))
    return rows


def emerging_row(session: Any, cells: int, permutations: int, seed: int) -> Row:
    """Measure compute_emerging (52 weeks) against 52 bare G_Local runs on the same cube."""
    from layers.analytics import compute_emerging

    start = datetime.fromisoformat(FIRST_MONDAY)
    end = start + timedelta(weeks=52)
    size = _size_for(session, cells)
    _say(f"emerging: {cells:,} cells × 52 weeks, platform path…")
    secs, result = _timed(lambda: compute_emerging(session, COUNTY, start=start, end=end, cell="fishnet", size_m=size,
                                                   step="week", permutations=permutations, seed=seed))
    from layers.analytics.aggregate import build_cells, select_cases

    graph = build_cells(session, select_cases(session, COUNTY, start=start, end=end), cell="fishnet",
                        size_m=size).graph
    _say("emerging: 52 bare esda G_Local runs…")
    bare, _ = _timed(lambda: [_bare_gi(result.cube[:, k], graph, permutations, seed)
                              for k in range(result.cube.shape[1])])
    counts = {k: v for k, v in result.category_counts().items() if v and k != "no_pattern"}
    shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:4]) or "none"
    return Row(f"emerging hot spots, 52 weeks ({permutations} permutations)",
               f"{len(result.cells):,} cells × {result.cube.shape[1]} weeks", secs, "52 × `esda.G_Local`", bare,
               f"categories: {shown}")


def density_rows(points: int, sample: int) -> list[Row]:
    """Measure density_surface on synthetic points against a bare histogram + Gaussian filter, and sklearn."""
    from pyproj import Transformer
    from scipy import ndimage

    from layers.analytics.density import density_surface, raster_for, silverman_bandwidth

    _say(f"density: making {points:,} points…")
    lon, lat, _ = make_points(points, ["X"])
    x, y = Transformer.from_crs("EPSG:4326", METRIC_CRS, always_xy=True).transform(lon, lat)
    x, y = np.asarray(x), np.asarray(y)
    bounds = (x.min(), y.min(), x.max(), y.max())
    _say("density: platform…")
    secs, surface = _timed(lambda: density_surface(x, y, bounds=bounds))
    raster = surface.raster

    def bare() -> np.ndarray:
        bandwidth = silverman_bandwidth(x, y)
        frame = raster_for(bounds, bandwidth)
        edges_x = frame.x0 + np.arange(frame.nx + 1) * frame.cell_m
        edges_y = frame.y0 + np.arange(frame.ny + 1) * frame.cell_m
        counts, _, _ = np.histogram2d(y, x, bins=[edges_y, edges_x])
        return ndimage.gaussian_filter(counts, bandwidth / frame.cell_m, mode="constant", truncate=4.0)

    _say("density: bare histogram2d + gaussian_filter…")
    bare_s, reference = _timed(bare)
    agree = np.allclose(surface.values * (raster.cell_m**2 / 1e6), reference, rtol=1e-6, atol=1e-9)
    rows = [Row("kernel density (Gaussian, binned)", f"{points:,} points → {raster.nx}×{raster.ny} raster", secs,
                "`numpy.histogram2d` + `ndimage.gaussian_filter`", bare_s,
                f"bandwidth {surface.bandwidth_m:.0f} m, cell {raster.cell_m:.0f} m; surfaces equal: {agree}")]
    if sample:
        from sklearn.neighbors import KernelDensity

        _say(f"density: sklearn KernelDensity at {sample} cells…")
        gx, gy = surface.centres()
        pick = np.random.default_rng(1).choice(gx.size, sample, replace=False)
        queries = np.column_stack((gx.ravel()[pick], gy.ravel()[pick]))
        fit_s, kde = _timed(lambda: KernelDensity(bandwidth=surface.bandwidth_m).fit(np.column_stack((x, y))))
        eval_s, _ = _timed(lambda: kde.score_samples(queries))
        whole = fit_s + eval_s * gx.size / sample
        rows.append(Row("kernel density, exact", f"{points:,} points, {sample} of {gx.size:,} cells", secs,
                        "`sklearn` `KernelDensity`, extrapolated to the raster", whole,
                        f"measured {fit_s + eval_s:.1f} s for {sample} cells", target=None))
    return rows


def _warm_up(session: Any) -> None:
    """Run each path once on a coarse grid, so no measurement pays for first-time set-up."""
    from layers.analytics import compute_emerging, compute_hotspots

    start, end = (datetime.fromisoformat(v) for v in SHANGHAI_YEAR)
    compute_hotspots(session, COUNTY, start=start, end=end, cell="fishnet", size_m=5000.0, permutations=99)
    compute_emerging(session, COUNTY, start=start, end=end, cell="fishnet", size_m=5000.0, step="month",
                     permutations=99)
    _bare_gi(np.arange(9.0), build_lattice_graph(), 99, 1)


def build_lattice_graph() -> Any:
    """Return a 3 × 3 queen lattice graph (for warming esda up)."""
    from libpysal.graph import Graph
    from libpysal.weights import lat2W

    return Graph.from_W(lat2W(3, 3, rook=False))


def render(rows: list[Row], facts: dict[str, str]) -> str:
    """Return the results as Markdown."""
    load = os.getloadavg()
    lines = [f"## Analytics benchmark ({datetime.now().astimezone():%Y-%m-%d %H:%M %Z})", "",
             f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}; "
             f"Python {platform.python_version()}; {facts.pop('versions', '')}", "",
             "| measurement | size | platform s | baseline | baseline s | ratio | target | note |",
             "|---|---|---:|---|---:|---:|---:|---|"]
    for r in rows:
        verdict = "" if r.target is None else (" met" if r.ratio <= r.target else " **MISSED**")
        target = "" if r.target is None else f"≤ {r.target:g}×{verdict}"
        lines.append(f"| {r.name} | {r.size} | {r.platform_s:.2f} | {r.baseline_name} | {r.baseline_s:.2f} | "
                     f"{r.ratio:.2f}× | {target} | {r.note} |")
    lines += ["", "| fact | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in facts.items())]
    missed = [r.name for r in rows if r.target is not None and r.ratio > r.target]
    lines += ["", "Targets missed: " + ", ".join(missed) if missed else "All targets met."]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    """Run the measurements, print the table and write it to ``--out``; return 1 if a target is missed."""
    import esda
    import libpysal
    import scipy
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    rows: list[Row] = []
    facts = {"versions": f"esda {esda.__version__}, libpysal {libpysal.__version__}, scipy {scipy.__version__}, "
                         f"numpy {np.__version__}, numba {'present' if _has_numba() else 'absent'}"}
    url, started = bench_database()
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            _say("warming up (imports, projections, the first query plans)…")
            _warm_up(session)
            for count in args.cells:
                rows += hotspot_rows(session, count, args.permutations, args.seed, moran=count <= 10_000)
            if args.more_permutations and args.cells:
                rows += hotspot_rows(session, min(args.cells), args.more_permutations, args.seed, moran=False)
            if args.emerging_cells:
                rows.append(emerging_row(session, args.emerging_cells, args.permutations, args.seed))
            session.rollback()
        if args.points:
            rows += density_rows(args.points, args.sklearn_sample)
    finally:
        engine.dispose()
        if started is not None and not args.keep_running:
            _say("stopping the bench cluster this run started")
            started.stop()
    facts["permutations"] = (f"{args.permutations} (and {args.more_permutations} in the last hot-spot row) for every "
                             f"Gi*/Moran run, platform and esda alike; esda's loop over cells is plain Python here "
                             f"(no numba); the platform uses esda's own draws, evaluated for all cells at once")
    facts["why few significant cells at 999"] = ("the two-sided floor is 2/1,000 and Benjamini–Hochberg needs the "
                                                 "k-th smallest p ≤ k·0.05/cells: about 4 % of the cells at the floor")
    facts["peak RSS at the end"] = f"{_peak_rss_mb():,.0f} MB"
    report = render(rows, facts)
    print(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report, encoding="utf-8")
    _say(f"written {out}")
    return 1 if any(r.target is not None and r.ratio > r.target for r in rows) else 0


def _has_numba() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Parse options (ignoring other benchmarks' options) and run the analytics benchmark."""
    parser = argparse.ArgumentParser(prog="python -m bench.analytics", description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[10_000, 100_000], help="hot-spot cell counts")
    parser.add_argument("--emerging-cells", type=int, default=10_000, help="cells of the 52-week cube (0 skips)")
    parser.add_argument("--permutations", type=int, default=999, help="permutations for every Gi*/Moran run")
    parser.add_argument("--more-permutations", type=int, default=9999,
                        help="also run the smallest hot-spot size with this many (0 skips)")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--points", type=int, default=1_000_000, help="kernel-density points (0 skips)")
    parser.add_argument("--sklearn-sample", type=int, default=300, help="raster cells for the exact KDE (0 skips)")
    parser.add_argument("--keep-running", action="store_true", help="leave the bench cluster running")
    parser.add_argument("--out", default=str(ROOT / "var" / "bench" / "analytics.md"))
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
