"""Hot spots: Getis-Ord Gi* and Local Moran's I on cases counted onto cells, with FDR-corrected inference.

**Gi\\*** is esda's ``G_Local(star=True)`` on binary queen-contiguity weights with each cell its own
neighbour: ``gi_z`` is its ``Zs``, the classic Getis-Ord Gi* z-score.

**Permutation inference** is esda's conditional randomisation: the cell keeps its value and its
neighbours are replaced by draws from the other cells, using esda's own draws (``esda.crand``'s
``vec_permutations``, same seed, same order). Two things differ from calling ``G_Local(permutations=…)``:

- *Ties.* esda 2.9's default ("directed") p-value counts permutations tied with the observed value
  on the high side only. In sparse counts a cell of zeros among zeros ties with nearly every
  permutation, yet gets the smallest possible p-value: on the demo year thousands of empty rural
  cells came out as "99 % cold spots". Here each tail counts its ties, ``p_hot = (#{sim ≥ obs} + 1) /
  (R + 1)``, ``p_cold = (#{sim ≤ obs} + 1) / (R + 1)``, and ``gi_p = min(1, 2 · min(p_hot, p_cold))``, the
  two-sided value (esda notes its directed value is half of it). ``Exceedances.directed`` reproduces
  esda's ``p_sim`` from the same counts, which the tests compare.
- *Speed.* Without numba esda evaluates the draws in a Python loop over cells that copies the whole
  value vector for each cell (quadratic). Here the sums of the draws are computed for all cells with
  the same number of neighbours at once: a draw ``k`` names position ``idx`` among the *other* cells,
  which is ``idx`` itself before the cell and ``idx + 1`` after it, so a draw's contribution is a step
  function of the cell's position, summed with one cumulative sum (linear in cells × permutations).

With ``permutations=0`` the analytic normal p-value is used (``2 · p_norm``), as ESRI's tools do.

**Multiple testing**: every cell is a test, so p-values are adjusted with the Benjamini–Hochberg
false discovery rate (``scipy.stats.false_discovery_control``). ``gi_bin`` is ±3, ±2, ±1 when the
adjusted p-value is at most 0.01, 0.05, 0.10 (99, 95, 90 % confidence; sign from ``gi_z``) and 0 otherwise;
``significant`` means adjusted p ≤ ``alpha``. The smallest two-sided permutation p-value is
2 / (permutations + 1), and the correction compares the k-th smallest p-value with k · alpha / cells:
with 999 permutations and 5,000 cells nothing passes unless a hundred cells sit at the floor. For
thousands of cells use 9,999 permutations (the API's default; they cost little here) or the analytic
p-values (``parameters["min_p"]`` reports the floor).

**Local Moran's I** (esda ``Moran_Local``, row-standardised contiguity, no self-weight; permutation
p-values as for Gi*, on the neighbours' sum) labels the cells whose FDR-adjusted p-value is at most
``alpha`` HH, LL, HL or LH (value high or low, neighbours high or low); the others get ``None``.

A field with no variation (no cases, or the same count everywhere) has no clusters: every cell gets
z 0, p 1 and bin 0. The pure-array functions (``gi_star``, ``local_moran``, ``hotspots_from_counts``)
need no database, so tests and the benchmark feed them synthetic data.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import esda
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from esda.crand import vec_permutations
from libpysal.graph import Graph
from scipy import stats
from sqlalchemy.orm import Session

from gis_platform.errors import FieldError, ValidationError
from layers.analytics.aggregate import MAX_CELLS, CellSet, build_cells, count_cases, select_cases
from layers.analytics.labels import GI_BIN_LABELS, GI_BINS, MORAN_QUADRANTS, legend

MIN_PERMUTATIONS = 99
MAX_PERMUTATIONS = 9999
CONFIDENCE_BINS = ((0.01, 3), (0.05, 2), (0.10, 1))  # FDR-adjusted p at most … → |bin|
QUADRANTS = np.array([None, "HH", "LH", "LL", "HL"], dtype=object)  # esda's q: 1 HH, 2 LH, 3 LL, 4 HL


# --- inference helpers -----------------------------------------------------------------------------------

def check_inference(permutations: int, alpha: float, seed: int) -> None:
    """Refuse permutation counts, significance levels and seeds out of range, naming the field."""
    if isinstance(permutations, bool) or not isinstance(permutations, int) or not (
            permutations == 0 or MIN_PERMUTATIONS <= permutations <= MAX_PERMUTATIONS):
        raise ValidationError(FieldError(
            "permutations", f"must be 0 (analytic p-values) or a whole number from {MIN_PERMUTATIONS} "
                            f"to {MAX_PERMUTATIONS}"))
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha <= 0.2:
        raise ValidationError(FieldError("alpha", "must be a significance level above 0 and at most 0.2"))
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValidationError(FieldError("seed", "must be a whole number from 0 to 4294967295"))


def fdr_adjust(p: np.ndarray) -> np.ndarray:
    """Return Benjamini–Hochberg adjusted p-values (reject where adjusted p ≤ alpha)."""
    p = np.asarray(p, dtype=float)
    if p.size == 0:
        return p.copy()
    return stats.false_discovery_control(np.clip(p, 0.0, 1.0), method="bh")


def confidence_bins(z: np.ndarray, p_adjusted: np.ndarray) -> np.ndarray:
    """Return -3…3: the confidence (99/95/90 %) at which each cell is a hot (+) or cold (−) spot, else 0."""
    level = np.zeros(len(z), dtype=np.int8)
    for cut, value in reversed(CONFIDENCE_BINS):
        level[p_adjusted <= cut] = value
    return (np.sign(z).astype(np.int8) * level).astype(np.int8)


@contextmanager
def quiet_esda() -> Iterator[None]:
    """Run esda without its noise and without leaving numpy's global random state changed.

    esda 2.9 warns on every permutation run that its default alternative will change (the value it
    returns is documented above), sets numpy's global seed, and switches a sparse warning filter on.
    """
    state = np.random.get_state()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The alternative hypothesis", category=DeprecationWarning)
            with np.errstate(divide="ignore", invalid="ignore"):
                yield
    finally:
        np.random.set_state(state)


def _varies(y: np.ndarray) -> bool:
    return len(y) >= 3 and bool(np.ptp(y) > 0) and bool(y.sum() > 0)


# --- the statistics ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LocalGi:
    """Gi* per cell: z-score, two-sided p, FDR-adjusted p, confidence bin (−3…3) and significance."""

    z: np.ndarray
    p: np.ndarray
    p_fdr: np.ndarray
    bins: np.ndarray
    significant: np.ndarray


def draws(graph: Graph, permutations: int, seed: int) -> np.ndarray:
    """Return esda's conditional-permutation draws for a graph: (permutations × most neighbours) positions."""
    n = graph.n
    most = int(graph.cardinalities.max()) if n else 0
    if permutations == 0 or most == 0 or n - 1 < most:
        return np.zeros((permutations, 0), dtype=np.int64)
    state = np.random.get_state()
    try:
        return np.asarray(vec_permutations(most, n, permutations, seed), dtype=np.int64)
    finally:
        np.random.set_state(state)


@dataclass(frozen=True)
class Exceedances:
    """Per cell, how many permuted sums were at least (``ge``) and at most (``le``) the observed one."""

    ge: np.ndarray
    le: np.ndarray
    permutations: int

    def two_sided(self) -> np.ndarray:
        """Return min(1, 2 · the smaller tail's pseudo p-value), each tail counting its ties."""
        r = self.permutations + 1.0
        return np.minimum(1.0, 2.0 * np.minimum(self.ge + 1.0, self.le + 1.0) / r)

    def directed(self) -> np.ndarray:
        """Return esda's directed pseudo p-value (ties on the high side, folded to the nearer tail)."""
        larger = self.ge.copy()
        low = (self.permutations - larger) < larger
        larger[low] = self.permutations - larger[low]
        return (larger + 1.0) / (self.permutations + 1.0)


def exceedances(values: np.ndarray, adjacency: Any, observed: np.ndarray, own: np.ndarray,
                ids: np.ndarray, *, max_block: int = 4_000_000) -> Exceedances:
    """Count, per cell, the draws whose sum (own term + drawn neighbours) is ≥ and ≤ the observed sum.

    ``adjacency`` is the binary neighbour matrix (CSR, no self-loops); cell ``i`` with ``c`` neighbours
    uses the first ``c`` columns of ``ids`` (positions among the other n − 1 cells, as esda draws them).
    """
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    permutations = ids.shape[0]
    cardinality = np.diff(adjacency.indptr)
    ge = np.zeros(n, dtype=np.int64)
    le = np.zeros(n, dtype=np.int64)
    isolated = cardinality == 0  # nothing to draw: every permutation equals the observed value
    ge[isolated] = le[isolated] = permutations
    for c in np.unique(cardinality[~isolated]):
        cells = np.flatnonzero(cardinality == c)  # ascending positions
        rows = max(1, min(permutations, max_block // (len(cells) + 1)))
        for r0 in range(0, permutations, rows):
            idx = ids[r0:r0 + rows, :c]
            m = idx.shape[0]
            after = values[idx + 1]
            # Sum over the draws of the value at idx + 1, corrected by (value[idx] − value[idx + 1]) for
            # every cell lying after idx: a step in the cell position, accumulated with one cumsum.
            first = np.searchsorted(cells, idx, side="right")
            width = len(cells) + 1
            step = np.bincount((np.arange(m)[:, None] * width + first).ravel(),
                               weights=(values[idx] - after).ravel(), minlength=m * width).reshape(m, width)
            sums = np.cumsum(step, axis=1)[:, :-1]
            sums += (after.sum(axis=1)[:, None] + own[cells][None, :])
            observed_c = observed[cells][None, :]
            ge[cells] += np.count_nonzero(sums >= observed_c, axis=0)
            le[cells] += np.count_nonzero(sums <= observed_c, axis=0)
    return Exceedances(ge, le, permutations)


def gi_star(y: np.ndarray, graph: Graph, *, permutations: int = 999, alpha: float = 0.05, seed: int = 12345,
            n_jobs: int = 1, ids: np.ndarray | None = None) -> LocalGi:
    """Return Gi* with FDR-corrected confidence bins for values ``y`` on a binary contiguity graph.

    ``ids`` are precomputed ``draws(graph, permutations, seed)`` (the emerging analysis shares them
    between time steps); ``n_jobs`` is accepted for interface stability and unused (no process pool).
    """
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    if not _varies(y):
        return LocalGi(np.zeros(n), np.ones(n), np.ones(n), np.zeros(n, dtype=np.int8), np.zeros(n, dtype=bool))
    with quiet_esda():
        g = esda.G_Local(y, graph, transform="B", star=True, permutations=0)
    z = np.nan_to_num(np.asarray(g.Zs, dtype=float))
    if permutations:
        adjacency = binary_adjacency(graph)
        counts = exceedances(y, adjacency, adjacency @ y + y, y,
                             draws(graph, permutations, seed) if ids is None else ids)
        p = counts.two_sided()
    else:
        p = np.minimum(1.0, 2.0 * np.asarray(g.p_norm, dtype=float))
    p = np.where(np.isfinite(p), p, 1.0)
    p_fdr = fdr_adjust(p)
    return LocalGi(z, p, p_fdr, confidence_bins(z, p_fdr), p_fdr <= alpha)


def binary_adjacency(graph: Graph) -> Any:
    """Return the graph's 0/1 neighbour matrix (CSR, sorted, no self-loops)."""
    matrix = graph.sparse.tocsr(copy=True)
    matrix.setdiag(0)
    matrix.eliminate_zeros()
    matrix.data[:] = 1.0
    matrix.sort_indices()
    return matrix


@dataclass(frozen=True)
class LocalMoran:
    """Local Moran's I per cell: statistic, two-sided p, FDR-adjusted p and the quadrant where significant."""

    i: np.ndarray
    p: np.ndarray
    p_fdr: np.ndarray
    quadrant: np.ndarray


def local_moran(y: np.ndarray, graph: Graph, *, permutations: int = 999, alpha: float = 0.05, seed: int = 12345,
                n_jobs: int = 1, ids: np.ndarray | None = None) -> LocalMoran:
    """Return Local Moran's I with HH/LL/HL/LH labels for the FDR-significant cells (``ids``: see gi_star)."""
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    if not _varies(y):
        return LocalMoran(np.zeros(n), np.ones(n), np.ones(n), np.full(n, None, dtype=object))
    with quiet_esda():
        m = esda.Moran_Local(y, graph, transformation="r", permutations=0)
    if permutations:
        # I_i = z_i · lag_i · const, and the lag's sum of z is an increasing function of the sum of the
        # counts: compare the neighbours' count sums (exact, so true ties stay ties), flipping the
        # tails where z_i < 0.
        adjacency = binary_adjacency(graph)
        z = np.asarray(m.z, dtype=float)
        counts = exceedances(y, adjacency, adjacency @ y, np.zeros(n),
                             draws(graph, permutations, seed) if ids is None else ids)
        negative = z < 0
        ge = np.where(negative, counts.le, counts.ge)
        le = np.where(negative, counts.ge, counts.le)
        flat = z == 0  # I is 0 whatever the neighbours: every permutation ties
        ge[flat] = le[flat] = permutations
        p = Exceedances(ge, le, permutations).two_sided()
    else:
        p = np.minimum(1.0, 2.0 * _moran_p_norm(m))
    i = np.nan_to_num(np.asarray(m.Is, dtype=float))
    p = np.where(np.isfinite(p), p, 1.0)
    p_fdr = fdr_adjust(p)
    quadrant = np.where(p_fdr <= alpha, QUADRANTS[np.asarray(m.q, dtype=int)], None).astype(object)
    return LocalMoran(i, p, p_fdr, quadrant)


def _moran_p_norm(m: Any) -> np.ndarray:
    """Return the one-sided normal p-value of Local Moran's I under conditional randomisation's moments."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (m.Is - m.EIc) / np.sqrt(m.VIc)
    return stats.norm.sf(np.abs(np.nan_to_num(z)))


# --- results ---------------------------------------------------------------------------------------------

COLUMNS = ("cell_id", "cell_code", "count", "area_m2", "gi_z", "gi_p", "gi_p_fdr", "gi_bin",
           "significant", "moran_i", "moran_p", "moran_quadrant")


@dataclass
class HotspotResult:
    """Cells with their counts and local statistics (a GeoDataFrame in EPSG:4326) and how they were made.

    ``cells`` has one row per cell: ``cell_id``, ``cell_code``, ``count``, ``area_m2``, ``gi_z``, ``gi_p``
    (two-sided), ``gi_p_fdr`` (Benjamini–Hochberg), ``gi_bin`` (−3…3), ``significant``
    (after FDR), ``moran_i``, ``moran_p``, ``moran_quadrant`` (HH/LL/HL/LH or None) and ``geometry``.
    """

    cells: gpd.GeoDataFrame
    parameters: dict[str, Any] = field(default_factory=dict)

    def top(self, n: int = 10) -> gpd.GeoDataFrame:
        """Return the ``n`` hottest significant cells: highest bin, then z-score, then count."""
        hot = self.cells[self.cells["significant"] & (self.cells["gi_z"] > 0)]
        ordered = hot.sort_values(["gi_bin", "gi_z", "count", "cell_id"], ascending=[False, False, False, True])
        return ordered.head(max(0, int(n)))

    def summary(self) -> dict[str, Any]:
        """Return the number of cases and cells, and of cells in each Gi* bin and Moran quadrant."""
        bins = self.cells["gi_bin"].value_counts()
        quads = self.cells["moran_quadrant"].value_counts()
        return {"cases": int(self.cells["count"].sum()), "cells": len(self.cells),
                "significant": int(self.cells["significant"].sum()),
                "hot": int(((self.cells["gi_z"] > 0) & self.cells["significant"]).sum()),
                "cold": int(((self.cells["gi_z"] < 0) & self.cells["significant"]).sum()),
                "by_bin": {str(label.key): int(bins.get(label.key, 0)) for label in GI_BINS},
                "by_quadrant": {q: int(quads.get(q, 0)) for q in ("HH", "LL", "HL", "LH")}}

    @staticmethod
    def legend() -> dict[str, Any]:
        """Return the legends of ``gi_bin`` and ``moran_quadrant``, Chinese first."""
        return {"gi_bin": legend(GI_BINS), "moran_quadrant": legend(MORAN_QUADRANTS)}

    def to_geojson(self, *, precision: int = 6) -> dict[str, Any]:
        """Return an RFC 7946 FeatureCollection (lon/lat, ``precision`` decimals) with legend and parameters."""
        features = [{"type": "Feature", "id": props["cell_id"], "geometry": geometry, "properties": props}
                    for props, geometry in zip(self._properties(), _geojson_geometries(self.cells.geometry.values,
                                                                                      precision))]
        return {"type": "FeatureCollection", "features": features, "parameters": self.parameters,
                "summary": self.summary(), "legend": self.legend()}

    def _properties(self) -> list[dict[str, Any]]:
        c = self.cells
        labels = {k: (v.label_zh, v.label_en) for k, v in GI_BIN_LABELS.items()}
        out = []
        for row in zip(*(c[name].tolist() for name in COLUMNS)):
            props = dict(zip(COLUMNS, row))
            props["count"] = int(props["count"])
            props["area_m2"] = round(float(props["area_m2"]), 1)
            for key in ("gi_z", "gi_p", "gi_p_fdr", "moran_i", "moran_p"):
                value = props[key]
                props[key] = None if value is None or not math.isfinite(value) else round(float(value), 6)
            props["gi_bin"] = int(props["gi_bin"])
            quadrant = props["moran_quadrant"]  # pandas keeps "no quadrant" as a missing value (NaN)
            props["moran_quadrant"] = quadrant if isinstance(quadrant, str) else None
            props["significant"] = bool(props["significant"])
            props["gi_label_zh"], props["gi_label_en"] = labels[props["gi_bin"]]
            out.append(props)
        return out


def _geojson_geometries(geoms: np.ndarray, precision: int) -> list[dict[str, Any] | None]:
    """Return GeoJSON geometry objects with coordinates rounded to ``precision`` decimals."""
    if len(geoms) == 0:
        return []
    rounded = shapely.transform(np.asarray(geoms, dtype=object), lambda xy: np.round(xy, precision))
    return [None if text is None else json.loads(text) for text in shapely.to_geojson(rounded)]


def hotspots_from_counts(cells: CellSet, counts: np.ndarray, *, permutations: int = 999, alpha: float = 0.05,
                         seed: int = 12345, moran: bool = True, n_jobs: int = 1,
                         parameters: dict[str, Any] | None = None) -> HotspotResult:
    """Return Gi* (and Local Moran's I) of counted cells; the pure part of ``compute_hotspots``."""
    check_inference(permutations, alpha, seed)
    counts = np.asarray(counts, dtype=np.float64)
    if counts.shape != (len(cells),):
        raise ValueError(f"{len(counts)} counts for {len(cells)} cells")
    graph = cells.graph
    ids = draws(graph, permutations, seed) if _varies(counts) else None  # one set of draws for both statistics
    gi = gi_star(counts, graph, permutations=permutations, alpha=alpha, seed=seed, n_jobs=n_jobs, ids=ids)
    n = len(cells)
    if moran:
        lm = local_moran(counts, graph, permutations=permutations, alpha=alpha, seed=seed, n_jobs=n_jobs, ids=ids)
        moran_i, moran_p, quadrant = lm.i, lm.p, lm.quadrant
    else:
        moran_i, moran_p, quadrant = np.full(n, np.nan), np.full(n, np.nan), np.full(n, None, dtype=object)
    frame = gpd.GeoDataFrame({
        "cell_id": cells.ids.astype(np.int64), "cell_code": cells.codes, "count": counts.astype(np.int64),
        "area_m2": cells.area_m2, "gi_z": gi.z, "gi_p": gi.p, "gi_p_fdr": gi.p_fdr,
        "gi_bin": gi.bins, "significant": gi.significant, "moran_i": moran_i, "moran_p": moran_p,
        "moran_quadrant": pd.Series(quadrant, dtype=object),  # None, not NaN, where no quadrant
    }, geometry=gpd.GeoSeries(cells.geometry, crs="EPSG:4326"), crs="EPSG:4326")
    params = {"cell": cells.kind, "size_m": cells.size_m, "cells": n, "permutations": permutations,
              "alpha": alpha, "seed": seed, "inference": "permutation" if permutations else "analytic",
              "min_p": (2.0 / (permutations + 1)) if permutations else None, "fdr": "benjamini-hochberg",
              "weights": "queen contiguity, binary, self included (Gi*)", **(parameters or {})}
    return HotspotResult(frame, params)


def compute_hotspots(session: Session, county_code: str, *, category: str | Sequence[str] | None = None,
                     start: datetime | None = None, end: datetime | None = None, cell: str = "grid",
                     size_m: float | None = None, permutations: int = 999, alpha: float = 0.05,
                     seed: int = 12345, theme: str | Sequence[str] | None = None, unit: str | None = None,
                     assigned_to: Sequence[int] | None = None, moran: bool = True,
                     metric_crs: str = "EPSG:4548", at: datetime | None = None, max_cells: int = MAX_CELLS,
                     n_jobs: int = 1) -> HotspotResult:
    """Count the selected cases onto cells and return their Gi* hot and cold spots and Local Moran's I.

    ``category`` and ``theme`` take one code or several; ``start``/``end`` bound ``reported_at``
    (half-open); ``unit`` limits the study area to one township; ``cell`` is ``grid`` (the unit grid
    cells in force at ``at``), ``fishnet`` or ``hexagon`` (``size_m``, default 500 m).
    """
    check_inference(permutations, alpha, seed)
    selection = select_cases(session, county_code, category=category, theme=theme, start=start, end=end,
                             unit=unit, assigned_to=assigned_to)
    cells = build_cells(session, selection, cell=cell, size_m=size_m, metric_crs=metric_crs, at=at,
                        max_cells=max_cells)
    counts = count_cases(session, cells, selection, at=at)
    return hotspots_from_counts(cells, counts, permutations=permutations, alpha=alpha, seed=seed, moran=moran,
                                n_jobs=n_jobs, parameters=_selection_parameters(selection))


def _selection_parameters(selection: Any) -> dict[str, Any]:
    return {"county_code": selection.county_code, "category": list(selection.categories) or None,
            "theme": list(selection.themes) or None, "unit": selection.unit,
            "start": None if selection.start is None else selection.start.isoformat(),
            "end": None if selection.end is None else selection.end.isoformat()}
