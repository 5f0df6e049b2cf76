"""Hot spots, emerging hot spots and kernel density: equal to esda, finding planted clusters, not inventing them.

The pure-array cores run on small synthetic lattices; the database paths run on the demo county.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import esda
import numpy as np
import pymannkendall
import pytest
import shapely
from esda.significance import calculate_significance
from sqlalchemy import text

from gis_platform.errors import ValidationError
from gis_platform.workcalendar import SHANGHAI
from layers.analytics import compute_emerging, compute_hotspots, kernel_density
from layers.analytics.aggregate import CellSet, contiguity, fishnet, hexagon_edge, hexagons, pack_ij
from layers.analytics.density import density_surface
from layers.analytics.emerging import CATEGORY_CODES, classify, emerging_from_cube, mann_kendall
from layers.analytics.hotspots import (binary_adjacency, draws, exceedances, fdr_adjust, gi_star,
                                       hotspots_from_counts, local_moran)

C = "371521"
YEAR = (datetime(2021, 1, 1, tzinfo=SHANGHAI), datetime(2022, 1, 1, tzinfo=SHANGHAI))
SEAT = shapely.Point(115.79, 36.11)
PERMUTATIONS = 9999


def lattice(rows: int, cols: int, size: float = 100.0) -> CellSet:
    """Return a fishnet CellSet of rows × cols squares without a database."""
    i, j = (a.ravel() for a in np.meshgrid(np.arange(cols), np.arange(rows), indexing="ij"))
    boxes = shapely.box(i * size, j * size, (i + 1) * size, (j + 1) * size)
    return CellSet("fishnet", size, 4548, pack_ij(i, j), np.array([f"{a}:{b}" for a, b in zip(i, j)], dtype=object),
                   boxes, boxes, shapely.area(boxes), np.column_stack((i, j)))


@contextmanager
def esda_quiet() -> Iterator[None]:
    """Silence esda's deprecation notice about its default alternative (the tests pin what they compare)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --- Gi* and Local Moran equal esda's --------------------------------------------------------------------

def test_gi_star_z_and_p_equal_esda_on_the_same_inputs():
    cells = lattice(14, 14)
    y = np.random.default_rng(3).poisson(1.2, len(cells)).astype(float)
    graph = cells.graph
    with esda_quiet():
        ref = esda.G_Local(y, graph, transform="B", star=True, permutations=499, keep_simulations=True, n_jobs=1,
                           seed=42)
    ours = gi_star(y, graph, permutations=499, seed=42)
    np.testing.assert_allclose(ours.z, ref.Zs, rtol=1e-12, atol=1e-12)
    # The same draws: esda's directed p_sim (float32 in esda) and the two tails from its own simulations.
    adjacency = binary_adjacency(graph)
    counts = exceedances(y, adjacency, adjacency @ y + y, y, draws(graph, 499, 42))
    np.testing.assert_allclose(counts.directed(), ref.p_sim, rtol=0, atol=1e-6)
    greater = calculate_significance(ref.Gs, ref.rGs, alternative="greater")
    lesser = calculate_significance(ref.Gs, ref.rGs, alternative="lesser")
    np.testing.assert_array_equal(ours.p, np.minimum(1, 2 * np.minimum(greater, lesser)))
    analytic = gi_star(y, graph, permutations=0)
    np.testing.assert_allclose(analytic.p, np.minimum(1, 2 * ref.p_norm))


def test_fdr_rejects_what_esdas_benjamini_hochberg_cut_off_rejects():
    rng = np.random.default_rng(12)
    rejected_any = 0
    for _ in range(20):
        p = np.concatenate((rng.uniform(size=200), rng.uniform(0, 0.004, rng.integers(0, 12))))
        for alpha in (0.05, 0.1):
            ours = fdr_adjust(p) <= alpha
            assert (ours == (p < esda.fdr(p, alpha))).all()  # esda returns alpha / n when nothing passes
            rejected_any += ours.any()
    assert rejected_any >= 10


def test_ties_are_counted_on_both_sides_unlike_esdas_directed_default():
    cells = lattice(10, 10)
    y = np.zeros(len(cells))
    y[[0, 1, 10, 11]] = [5, 4, 6, 3]  # a few cases in a corner, zeros everywhere else
    with esda_quiet():
        ref = esda.G_Local(y, cells.graph, transform="B", star=True, permutations=999, keep_simulations=False,
                           n_jobs=1, seed=1)
    empty_far = (y == 0) & (cells.graph.sparse @ y == 0)
    # esda's directed default calls a zero among zeros as extreme as can be; it ties with most permutations.
    assert (ref.p_sim[empty_far] <= 0.001).all()
    ours = gi_star(y, cells.graph, permutations=999, seed=1)
    assert (ours.p[empty_far] > 0.5).all() and not ours.significant[empty_far].any()


def test_local_moran_equals_esda_on_continuous_values():
    cells = lattice(12, 12)
    y = np.random.default_rng(8).gamma(2.0, 1.0, len(cells))
    with esda_quiet():
        ref = esda.Moran_Local(y, cells.graph, transformation="r", permutations=299, keep_simulations=True, n_jobs=1,
                               seed=9)
    ours = local_moran(y, cells.graph, permutations=299, seed=9, alpha=1.0)
    np.testing.assert_allclose(ours.i, ref.Is)
    greater = calculate_significance(ref.Is, ref.rlisas, alternative="greater")
    lesser = calculate_significance(ref.Is, ref.rlisas, alternative="lesser")
    np.testing.assert_array_equal(ours.p, np.minimum(1, 2 * np.minimum(greater, lesser)))
    names = np.array([None, "HH", "LH", "LL", "HL"], dtype=object)
    assert list(ours.quadrant) == list(names[ref.q])  # alpha=1: every cell labelled


# --- planted clusters and random fields -----------------------------------------------------------------

def _planted(seed: int) -> tuple[CellSet, np.ndarray, set[int]]:
    cells = lattice(15, 15)
    rng = np.random.default_rng(seed)
    y = rng.poisson(1.0, len(cells)).astype(float)
    i, j = cells.ij[:, 0], cells.ij[:, 1]
    block = np.flatnonzero((i >= 9) & (i <= 11) & (j >= 3) & (j <= 5))
    y[block] = rng.poisson(9.0, len(block))
    return cells, y, set(block.tolist())


def test_a_planted_cluster_is_found_at_the_planted_cells():
    cells, y, block = _planted(11)
    # With 225 tests the Benjamini–Hochberg cut for the best cell is 0.05 / 225: 999 permutations (two-sided
    # floor 0.002) cannot reach it unless nine cells sit at the floor, so use the API's default, 9,999.
    result = hotspots_from_counts(cells, y, permutations=PERMUTATIONS, seed=5)
    frame = result.cells
    hot = set(np.flatnonzero(frame["significant"] & (frame["gi_z"] > 0)).tolist())
    ring = {int(k) for b in block for k in cells.graph.sparse[[b]].indices} | block
    centre = next(b for b in block if set(cells.graph.sparse[[b]].indices) <= block)
    assert centre in hot and len(block & hot) >= 6, "the plant is found (its corners see mostly background)"
    assert hot <= ring, "nothing beyond the plant's own neighbours is hot"
    assert not (frame["significant"] & (frame["gi_z"] < 0)).any()
    assert set(result.top(5).index) <= block and (result.top(5)["gi_bin"] >= 2).all()
    assert set(np.flatnonzero(frame["moran_quadrant"] == "HH").tolist()) <= ring
    assert (frame.loc[sorted(block), "moran_quadrant"] == "HH").sum() >= 5


def test_a_uniform_random_field_has_no_fdr_significant_cell_in_at_least_95_percent_of_seeds():
    cells = lattice(15, 15)  # as the planted test: the same size, permutations and correction
    seeds = range(60)
    ids = draws(cells.graph, PERMUTATIONS, 5)  # draws depend on the graph and seed only: make them once
    flagged, raw = 0, 0
    for seed in seeds:
        y = np.random.default_rng(1000 + seed).poisson(1.0, len(cells)).astype(float)
        gi = gi_star(y, cells.graph, permutations=PERMUTATIONS, ids=ids)
        flagged += bool(gi.significant.any())
        raw += bool((gi.p <= 0.05).any())
    assert flagged <= 3, f"{flagged} of {len(seeds)} random fields had an FDR-significant cell"  # ≥ 95 %
    assert raw >= 50, "without the correction nearly every field has a 'hot spot': the test can tell"
    # And the same machinery, same size and permutations, does find a plant (previous test).


def test_a_flat_or_empty_field_has_no_clusters():
    cells = lattice(5, 5)
    for y in (np.zeros(25), np.full(25, 3.0)):
        result = hotspots_from_counts(cells, y, permutations=99)
        assert (result.cells["gi_bin"] == 0).all() and not result.cells["significant"].any()
        assert result.cells["moran_quadrant"].isna().all()
        json.dumps(result.to_geojson(), allow_nan=False)


def test_inference_parameters_are_checked_by_name():
    cells = lattice(4, 4)
    for kwargs, name in (({"permutations": 50}, "permutations"), ({"permutations": True}, "permutations"),
                         ({"alpha": 0.0}, "alpha"), ({"alpha": 0.5}, "alpha"), ({"seed": -1}, "seed")):
        with pytest.raises(ValidationError) as err:
            hotspots_from_counts(cells, np.arange(16.0), **kwargs)
        assert err.value.errors[0].field == name


# --- lattices and neighbours ----------------------------------------------------------------------------

def _unclipped(kind: str, ij: np.ndarray, size: float, around: shapely.Geometry) -> np.ndarray:
    """Return the whole (unclipped) cells of the given indices."""
    if kind == "fishnet":
        return shapely.box(*(ij.T * size), *((ij.T + 1) * size))
    everyone, shapes = hexagons(shapely.box(*around.bounds).buffer(4 * size), size)
    lookup = {tuple(k): g for k, g in zip(everyone.tolist(), shapes)}
    return np.array([lookup[tuple(k)] for k in ij.tolist()], dtype=object)


@pytest.mark.parametrize("kind", ["fishnet", "hexagon"])
def test_lattice_neighbours_equal_geometric_queen_contiguity(kind):
    area = shapely.Point(500_000, 4_000_000).buffer(1_800, quad_segs=8)
    ij, metric = (fishnet if kind == "fishnet" else hexagons)(area, 500.0)
    cells = CellSet(kind, 500.0, 4548, pack_ij(ij[:, 0], ij[:, 1]), np.array(["x"] * len(ij), dtype=object),
                    metric, metric, shapely.area(metric), ij)
    arithmetic = contiguity(cells).sparse.toarray() > 0
    whole = _unclipped(kind, ij, 500.0, area)
    touching = shapely.dwithin(whole[:, None], whole[None, :], 0.01) & ~np.eye(len(ij), dtype=bool)
    assert (arithmetic == touching).all()
    assert shapely.union_all(metric).symmetric_difference(area).area < 1.0  # the clipped cells tile the area
    assert abs(3 * np.sqrt(3) / 2 * hexagon_edge(500.0) ** 2 - 500.0**2) < 1e-6  # hexagon area = square's


# --- emerging hot spots ----------------------------------------------------------------------------------

def _row(flags: str) -> tuple[list[float], list[bool]]:
    """Turn 'HH.CC' (hot, not significant, cold) into z-scores and significance."""
    z = [{"H": 3.0, "C": -3.0, ".": 0.2}[f] for f in flags]
    return z, [f != "." for f in flags]


# One hand-built series per category: (steps as H/C/., z-score trend, expected category).
SERIES = [
    ("..........H", 0, "new_hot"), ("..........C", 0, "new_cold"),
    ("........HHH", 0, "consecutive_hot"), (".......CCCC", 0, "consecutive_cold"),
    ("HHHHHHHHHHH", 1, "intensifying_hot"), ("CCCCCCCCCCC", -1, "intensifying_cold"),
    ("HHHHHHHHHHH", 0, "persistent_hot"), ("CCCCCCCCCCC", 0, "persistent_cold"),
    ("HHHHHHHHHHH", -1, "diminishing_hot"), ("CCCCCCCCCCC", 1, "diminishing_cold"),
    ("H.H..HH...H", 0, "sporadic_hot"), (".C..C....CC", 0, "sporadic_cold"),
    ("C....H...HH", 0, "oscillating_hot"), ("..H.C....CC", 0, "oscillating_cold"),
    ("HHHHHHHHHH.", 0, "historical_hot"), ("CCCCCCCCCCC.", 0, "historical_cold"),
    ("...H.H.C...", 0, "no_pattern"), ("...........", 0, "no_pattern"),
    (".HHHHHHHHHH", 1, "intensifying_hot"),  # 10 of 11 steps: at least 90 %
    ("..HHHHHHHHH", 0, "consecutive_hot"),  # 9 of 11: under 90 %, one final run
]


@pytest.mark.parametrize(("flags", "trend", "expected"), SERIES)
def test_emerging_categories_match_hand_built_series(flags, trend, expected):
    z, sig = _row(flags)
    assert classify(np.array([z]), np.array([sig]), np.array([trend]))[0] == expected


def test_every_category_has_a_hand_built_series():
    assert {expected for _, _, expected in SERIES} == set(CATEGORY_CODES)


def test_mann_kendall_equals_pymannkendall_ties_included():
    rng = np.random.default_rng(2)
    series = np.vstack([rng.normal(size=20).cumsum(), rng.integers(0, 4, 20), np.arange(20.0), np.ones(20),
                        np.r_[np.zeros(10), np.ones(10)], rng.integers(0, 2, 20)])
    ours = mann_kendall(series, alpha=0.05)
    for k, row in enumerate(series):
        ref = pymannkendall.original_test(row, alpha=0.05)
        assert ours.s[k] == ref.s and ours.var_s[k] == pytest.approx(ref.var_s)
        assert ours.z[k] == pytest.approx(ref.z) and ours.p[k] == pytest.approx(ref.p)
        assert ours.trend[k] == {"increasing": 1, "decreasing": -1, "no trend": 0}[ref.trend]


def test_a_cluster_growing_over_time_is_an_intensifying_or_new_hot_spot():
    cells, _, block = _planted(4)
    rng = np.random.default_rng(4)
    steps = 12
    cube = rng.poisson(1.0, (len(cells), steps)).astype(float)
    for k in range(steps):
        cube[sorted(block), k] = rng.poisson(3.0 + 1.5 * k, len(block))
    starts = [datetime(2021, m, 1, tzinfo=SHANGHAI) for m in range(1, 13)]
    result = emerging_from_cube(cells, cube, starts, permutations=0)
    centre = next(b for b in block if cells.graph.cardinalities.iloc[b] == 8 and all(
        int(n) in block for n in cells.graph.sparse[[b]].indices))
    assert result.cells.loc[centre, "category"] in {"intensifying_hot", "persistent_hot", "consecutive_hot"}
    assert result.cells.loc[centre, "trend"] == 1
    far = [k for k in range(len(cells)) if k not in block and cells.ij[k, 0] < 4]
    assert not result.cells.loc[far, "category"].str.endswith("_hot").any()
    body = result.to_geojson(series=True)
    assert len(body["features"][0]["properties"]["bins"]) == steps and body["legend"][0]["label_zh"] == "新增热点"


# --- kernel density --------------------------------------------------------------------------------------

def test_kernel_density_matches_an_exact_gaussian_kde():
    from sklearn.neighbors import KernelDensity

    rng = np.random.default_rng(6)
    xy = np.vstack([rng.normal([1000, 1000], 150, (3000, 2)), rng.uniform(0, 3000, (1000, 2))])
    surface = density_surface(xy[:, 0], xy[:, 1], bounds=(-1000, -1000, 4000, 4000), bandwidth_m=120.0)
    gx, gy = surface.centres()
    sample = np.flatnonzero(surface.values.ravel() > 0.1 * surface.values.max())[::37]
    points = np.column_stack((gx.ravel()[sample], gy.ravel()[sample]))
    exact = np.exp(KernelDensity(bandwidth=120.0).fit(xy).score_samples(points)) * len(xy) * 1e6
    np.testing.assert_allclose(surface.values.ravel()[sample], exact, rtol=0.03)
    mass = surface.values.sum() * surface.cell_m**2 / 1e6
    assert mass == pytest.approx(len(xy), rel=1e-3)


# --- the database paths, on the demo county --------------------------------------------------------------

def _cases_in_year(session) -> int:
    return session.execute(text(
        'SELECT count(*) FROM "case" c WHERE c.county_code = :c AND c.status NOT IN (\'cancelled\', \'merged\') '
        "AND c.reported_at >= :s AND c.reported_at < :e"), {"c": C, "s": YEAR[0], "e": YEAR[1]}).scalar_one()


@pytest.mark.parametrize(("cell", "size"), [("grid", None), ("fishnet", 1500.0), ("hexagon", 1500.0)])
def test_every_case_of_the_period_lands_in_one_cell(demo_session, cell, size):
    result = compute_hotspots(demo_session, C, start=YEAR[0], end=YEAR[1], cell=cell, size_m=size, permutations=0,
                              moran=False)
    assert result.cells["count"].sum() == _cases_in_year(demo_session)
    assert result.cells["cell_id"].is_unique and result.cells.crs.to_epsg() == 4326
    if cell != "grid":
        county = demo_session.execute(text("SELECT ST_Area(ST_Transform(geom, 4548)) FROM admin_unit "
                                           "WHERE county_code = :c AND level = 'county'"), {"c": C}).scalar_one()
        assert result.cells["area_m2"].sum() == pytest.approx(county, rel=1e-6)


def test_demo_hotspots_sit_at_the_county_seat(demo_session):
    result = compute_hotspots(demo_session, C, start=YEAR[0], end=YEAR[1], cell="fishnet", size_m=1000.0,
                              permutations=PERMUTATIONS)
    top = result.top(5)
    assert len(top) == 5 and (top["gi_bin"] >= 2).all()
    assert all(shapely.distance(SEAT, g) < 0.06 for g in top.geometry)  # within about 6 km
    body = result.to_geojson()
    assert body["type"] == "FeatureCollection" and len(body["features"]) == len(result.cells)
    assert body["legend"]["gi_bin"][0] == {"value": 3, "label_zh": "热点 99% 置信度",
                                           "label_en": "Hot spot, 99% confidence", "color": "#d62f27"}
    json.dumps(body, allow_nan=False, ensure_ascii=False)


def test_cell_numbering_agrees_with_postgis(demo_session):
    box = shapely.box(520000, 3990000, 524000, 3994000)
    for kind, function in (("hexagon", "ST_HexagonGrid"), ("fishnet", "ST_SquareGrid")):
        size = hexagon_edge(700.0) if kind == "hexagon" else 700.0
        rows = demo_session.execute(text(
            f"SELECT h.i, h.j, ST_X(ST_Centroid(h.geom)) AS x, ST_Y(ST_Centroid(h.geom)) AS y "
            f"FROM {function}(:size, ST_MakeEnvelope(520000, 3990000, 524000, 3994000, 4548)) h"),
            {"size": size}).all()
        ij = np.array([(r.i, r.j) for r in rows])
        centres = shapely.centroid(_unclipped(kind, ij, 700.0, box))
        assert len(rows) >= 30
        np.testing.assert_allclose(shapely.get_coordinates(centres), [(r.x, r.y) for r in rows], atol=1e-6)


def test_emerging_and_density_on_the_demo(demo_session):
    result = compute_emerging(demo_session, C, start=YEAR[0], end=YEAR[1], cell="fishnet", size_m=2000.0,
                              step="month", permutations=0)
    assert len(result.steps) == 12 and result.cube.sum() == _cases_in_year(demo_session)
    assert set(result.cells["category"]) <= set(CATEGORY_CODES)
    assert result.cells["category"].str.endswith("_hot").any()
    surface = kernel_density(demo_session, C, start=YEAR[0], end=YEAR[1])
    assert surface.points == _cases_in_year(demo_session)
    lat, lon, _ = surface.to_points(max_points=1)[0]
    assert shapely.distance(SEAT, shapely.Point(lon, lat)) < 0.06


def test_bad_selections_are_refused_by_name(demo_session):
    for kwargs, name in (({"category": "NOPE"}, "category"), ({"theme": "nope"}, "theme"),
                         ({"unit": "999999999"}, "unit"), ({"cell": "triangle"}, "cell"),
                         ({"cell": "fishnet", "size_m": 5.0}, "size_m"), ({"cell": "grid", "size_m": 500.0}, "size_m"),
                         ({"cell": "fishnet", "size_m": 25.0}, "size_m"),
                         ({"start": YEAR[1], "end": YEAR[0]}, "end"), ({"start": datetime(2021, 1, 1)}, "start")):
        with pytest.raises(ValidationError) as err:
            compute_hotspots(demo_session, C, permutations=0, **kwargs)
        assert err.value.errors[0].field == name, kwargs
