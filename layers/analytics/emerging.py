"""Emerging hot spots: a space-time cube of cases, Gi* in every time step, a Mann-Kendall trend per cell.

The cube has a row per cell and a column per week (ISO, Monday 00:00 Asia/Shanghai) or month. Each
column gets Gi* as in ``layers.analytics.hotspots`` (same weights and inference, FDR within the step),
so a cell is a *hot* (or *cold*) step where its Gi* is significant after the correction with z > 0
(or < 0). The Mann-Kendall test (``mann_kendall``, vectorised over cells; it equals
``pymannkendall.original_test``, ties included) tells whether the cell's Gi* z-score rises or falls over
the steps at ``alpha``: the *intensity* of clustering, as in ESRI's emerging hot spot analysis.

**Categories** (``classify``), with n steps, "hot" meaning a significant hot step and "the share" the
hot steps / n; the cold categories are the mirror image (cold steps, and for the trend "stronger"
means the z-score falls). The rules are applied in this order and the first that holds wins:

1. **intensifying**: the share is at least 90 %, the final step is hot, and the z-score trend is
   significantly up (for cold: down);
2. **diminishing**: the same, with the trend significantly the other way;
3. **persistent**: the same, with no significant trend;
4. **oscillating**: the final step is hot, and some earlier step was a *cold* one;
5. **new**: the final step is the only hot step (and no step was cold, rule 4);
6. **consecutive**: the final steps form one unbroken run of two or more hot steps and there is no
   hot step before that run (and no cold step, rule 4; under 90 %, rules 1–3);
7. **sporadic**: the final step is hot, with hot steps before it that were interrupted (on and off),
   under 90 %, never cold;
8. **historical**: the final step is *not* hot, but at least 90 % of the steps are;
9. **no pattern**: none of the above (also every cell when the cube is empty).

A cell's final step is either hot, cold or neither, so the hot rules (final step hot), the cold rules
(final step cold) and the two historical rules (final step neither; 90 % hot and 90 % cold cannot both
hold) never compete. Where ESRI's wording lets a cell be both "new" and "oscillating" (cold before,
hot only now), the flip is the more telling fact, so oscillating comes first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import geopandas as gpd
import numpy as np
from scipy import stats
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis_platform.errors import FieldError, ValidationError
from layers.analytics.aggregate import (MAX_CELLS, STEPS, CaseSelection, CellSet, build_cells, count_cube,
                                        next_step, select_cases, step_starts)
from layers.analytics.hotspots import _geojson_geometries, _selection_parameters, check_inference, draws, gi_star
from layers.analytics.labels import EMERGING_CATEGORIES, EMERGING_LABELS, EMERGING_PATTERNS, NO_PATTERN, legend

SHARE = 0.9  # "at least 90 % of the time steps"
MIN_STEPS = 4
MAX_STEPS = 520
DEFAULT_STEPS = {"week": 52, "month": 24}
CATEGORY_CODES = tuple(f"{p}_{side}" for side in ("hot", "cold") for p in EMERGING_PATTERNS) + (NO_PATTERN,)


# --- Mann-Kendall --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MannKendall:
    """The Mann-Kendall test per row: S, its variance (ties corrected), z, two-sided p and trend −1/0/+1."""

    s: np.ndarray
    var_s: np.ndarray
    z: np.ndarray
    p: np.ndarray
    trend: np.ndarray


def mann_kendall(series: np.ndarray, alpha: float = 0.05) -> MannKendall:
    """Return the Mann-Kendall trend test of every row of ``series`` (cells × steps), vectorised."""
    x = np.atleast_2d(np.asarray(series, dtype=np.float64))
    rows, n = x.shape
    s = np.zeros(rows)
    for k in range(n - 1):  # a loop over steps, not cells: each pass handles every cell at once
        s += np.sign(x[:, k + 1:] - x[:, k:k + 1]).sum(axis=1)
    # Ties: sort each row and measure the runs of equal values; Σ t(t−1)(2t+5) over the runs.
    ordered = np.sort(x, axis=1)
    starts = np.ones_like(ordered, dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    run = np.bincount(np.cumsum(starts.ravel()) - 1).astype(np.float64)
    owner = np.repeat(np.arange(rows), starts.sum(axis=1))
    ties = np.bincount(owner, weights=run * (run - 1) * (2 * run + 5), minlength=rows)
    var_s = (n * (n - 1) * (2 * n + 5) - ties) / 18.0
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(s > 0, (s - 1) / np.sqrt(var_s), np.where(s < 0, (s + 1) / np.sqrt(var_s), 0.0))
    z = np.where(var_s > 0, z, 0.0)
    p = 2 * stats.norm.sf(np.abs(z))
    trend = np.where(p < alpha, np.sign(z), 0).astype(np.int8)
    return MannKendall(s, var_s, z, p, trend)


# --- classification -------------------------------------------------------------------------------------

def _trailing_run(flags: np.ndarray) -> np.ndarray:
    """Return the length of the run of True values that ends each row."""
    reverse = flags[:, ::-1]
    first_false = np.argmax(~reverse, axis=1)
    return np.where(reverse.all(axis=1), flags.shape[1], first_false)


def _side(flags: np.ndarray, opposite: np.ndarray, stronger: np.ndarray, weaker: np.ndarray,
          side: str) -> np.ndarray:
    """Return the category of each row whose final step is of this side (hot or cold), else ''."""
    n = flags.shape[1]
    out = np.full(flags.shape[0], "", dtype=object)
    last = flags[:, -1]
    share = flags.sum(axis=1) / n if n else np.zeros(flags.shape[0])
    total = flags.sum(axis=1)
    run = _trailing_run(flags)
    mostly = last & (share >= SHARE)
    rules = (
        ("intensifying", mostly & stronger),
        ("diminishing", mostly & weaker),
        ("persistent", mostly),
        ("oscillating", last & opposite[:, :-1].any(axis=1)),
        ("new", last & (total == 1)),
        ("consecutive", last & (run >= 2) & (total == run)),
        ("sporadic", last),
    )
    for name, holds in rules:
        out[(out == "") & holds] = f"{name}_{side}"
    out[(out == "") & ~last & (share >= SHARE)] = f"historical_{side}"
    return out


def classify(z: np.ndarray, significant: np.ndarray, trend: np.ndarray) -> np.ndarray:
    """Return each cell's category from its per-step Gi* z and significance and its z-score trend (−1/0/+1)."""
    z = np.atleast_2d(z)
    significant = np.atleast_2d(significant).astype(bool)
    trend = np.asarray(trend)
    hot = significant & (z > 0)
    cold = significant & (z < 0)
    out = np.full(z.shape[0], NO_PATTERN, dtype=object)
    if z.shape[1] == 0:
        return out
    hot_class = _side(hot, cold, trend > 0, trend < 0, "hot")
    cold_class = _side(cold, hot, trend < 0, trend > 0, "cold")
    out = np.where(hot_class != "", hot_class, out)
    out = np.where((hot_class == "") & (cold_class != ""), cold_class, out)
    return out.astype(object)


# --- results --------------------------------------------------------------------------------------------

@dataclass
class EmergingResult:
    """Each cell's category and trend (a GeoDataFrame in EPSG:4326), with the cube and per-step Gi*.

    ``cells`` columns: ``cell_id``, ``cell_code``, ``count`` (cases over all steps), ``category`` (e.g.
    ``new_hot``), ``trend`` (−1/0/+1 of the Gi* z-score), ``trend_z``, ``trend_p``, ``hot_steps``,
    ``cold_steps``, ``last_bin`` (Gi* bin of the final step) and ``geometry``. ``steps`` are the step
    starts; ``cube``, ``z`` and ``bins`` are cells × steps arrays.
    """

    cells: gpd.GeoDataFrame
    steps: list[datetime]
    cube: np.ndarray
    z: np.ndarray
    bins: np.ndarray
    parameters: dict[str, Any] = field(default_factory=dict)

    def category_counts(self) -> dict[str, int]:
        """Return how many cells fall in each category (every category listed, zeros included)."""
        counts = self.cells["category"].value_counts()
        return {code: int(counts.get(code, 0)) for code in CATEGORY_CODES}

    def overall_trend(self) -> dict[str, Any]:
        """Return the Mann-Kendall trend of the study area's case count per step."""
        totals = self.cube.sum(axis=0)
        if totals.size < 2:
            return {"trend": 0, "z": 0.0, "p": 1.0}
        mk = mann_kendall(totals[None, :], float(self.parameters.get("alpha", 0.05)))
        return {"trend": int(mk.trend[0]), "z": round(float(mk.z[0]), 4), "p": round(float(mk.p[0]), 6)}

    @staticmethod
    def legend() -> list[dict[str, Any]]:
        """Return the category legend, Chinese first, with each category's rule."""
        return legend(EMERGING_CATEGORIES)

    def to_geojson(self, *, precision: int = 6, series: bool = False) -> dict[str, Any]:
        """Return an RFC 7946 FeatureCollection of the cells; ``series`` adds per-step counts and Gi* bins."""
        c = self.cells
        columns = ("cell_id", "cell_code", "count", "category", "trend", "trend_z", "trend_p", "hot_steps",
                   "cold_steps", "last_bin")
        geometries = _geojson_geometries(c.geometry.values, precision)
        features = []
        for k, row in enumerate(zip(*(c[name].tolist() for name in columns))):
            props = dict(zip(columns, row))
            label = EMERGING_LABELS[props["category"]]
            props.update(cell_id=int(props["cell_id"]), count=int(props["count"]), trend=int(props["trend"]),
                         trend_z=round(float(props["trend_z"]), 4), trend_p=round(float(props["trend_p"]), 6),
                         hot_steps=int(props["hot_steps"]), cold_steps=int(props["cold_steps"]),
                         last_bin=int(props["last_bin"]), category_label_zh=label.label_zh,
                         category_label_en=label.label_en)
            if series:
                props["counts"] = [int(v) for v in self.cube[k]]
                props["bins"] = [int(v) for v in self.bins[k]]
            features.append({"type": "Feature", "id": props["cell_id"], "geometry": geometries[k],
                             "properties": props})
        return {"type": "FeatureCollection", "features": features, "parameters": self.parameters,
                "steps": [s.isoformat() for s in self.steps], "summary": {
                    "cases": int(self.cube.sum()), "cells": len(c), "by_category": self.category_counts(),
                    "overall_trend": self.overall_trend()},
                "legend": self.legend()}


def emerging_from_cube(cells: CellSet, cube: np.ndarray, steps: Sequence[datetime], *, permutations: int = 999,
                       alpha: float = 0.05, seed: int = 12345, n_jobs: int = 1,
                       parameters: dict[str, Any] | None = None) -> EmergingResult:
    """Return the emerging hot-spot categories of a counted cube; the pure part of ``compute_emerging``."""
    check_inference(permutations, alpha, seed)
    cube = np.asarray(cube, dtype=np.float64)
    if cube.shape != (len(cells), len(steps)):
        raise ValueError(f"a cube of shape {cube.shape} for {len(cells)} cells and {len(steps)} steps")
    n, t = cube.shape
    z = np.zeros((n, t))
    bins = np.zeros((n, t), dtype=np.int8)
    significant = np.zeros((n, t), dtype=bool)
    graph = cells.graph
    # esda's draws depend only on the graph, the permutation count and the seed: make them once and use
    # them in every step (each step's test is valid on its own; the steps' z-scores are analytic).
    ids = draws(graph, permutations, seed) if permutations and t else None
    for k in range(t):  # one Gi* per time step; each is vectorised over the cells
        gi = gi_star(cube[:, k], graph, permutations=permutations, alpha=alpha, seed=seed, n_jobs=n_jobs, ids=ids)
        z[:, k], bins[:, k], significant[:, k] = gi.z, gi.bins, gi.significant
    mk = mann_kendall(z, alpha) if t >= 2 else MannKendall(*(np.zeros(n) for _ in range(4)),
                                                           np.zeros(n, dtype=np.int8))
    categories = classify(z, significant, mk.trend)
    frame = gpd.GeoDataFrame({
        "cell_id": cells.ids.astype(np.int64), "cell_code": cells.codes, "count": cube.sum(axis=1).astype(np.int64),
        "category": categories, "trend": mk.trend, "trend_z": mk.z, "trend_p": mk.p,
        "hot_steps": (significant & (z > 0)).sum(axis=1), "cold_steps": (significant & (z < 0)).sum(axis=1),
        "last_bin": bins[:, -1] if t else np.zeros(n, dtype=np.int8),
    }, geometry=gpd.GeoSeries(cells.geometry, crs="EPSG:4326"), crs="EPSG:4326")
    params = {"cell": cells.kind, "size_m": cells.size_m, "cells": n, "steps": t, "permutations": permutations,
              "alpha": alpha, "seed": seed, "inference": "permutation" if permutations else "analytic",
              "fdr": "benjamini-hochberg, within each step", "trend": "mann-kendall on the Gi* z-scores",
              **(parameters or {})}
    return EmergingResult(frame, list(steps), cube, z, bins, params)


def _default_window(session: Session, selection: CaseSelection, step: str) -> tuple[datetime, datetime]:
    """Return [start, end) when not given: up to the step after the last case, at most the default span."""
    open_selection = CaseSelection(selection.county_code, selection.categories, selection.themes, None, None,
                                   selection.unit, selection.assigned_to)
    where, params = open_selection.where()
    first, last = session.execute(text(
        f'SELECT min(c.reported_at), max(c.reported_at) FROM "case" c JOIN category cat ON cat.id = c.category_id '
        f"WHERE {where}"), params).one()
    end = selection.end or (next_step(step_starts(step, last, last + timedelta(microseconds=1))[0], step)
                            if last is not None else datetime.now(UTC))
    if selection.start is not None:
        return selection.start, end
    span = DEFAULT_STEPS[step]
    start = end - timedelta(weeks=span) if step == "week" else _months_before(end, span)
    if first is not None and first > start and len(step_starts(step, first, end)) >= MIN_STEPS:
        start = first
    return start, end


def _months_before(moment: datetime, months: int) -> datetime:
    total = moment.year * 12 + moment.month - 1 - months
    return moment.replace(year=total // 12, month=total % 12 + 1, day=1)


def compute_emerging(session: Session, county_code: str, *, category: str | Sequence[str] | None = None,
                     start: datetime | None = None, end: datetime | None = None, cell: str = "grid",
                     size_m: float | None = None, step: str = "week", permutations: int = 999,
                     alpha: float = 0.05, seed: int = 12345, theme: str | Sequence[str] | None = None,
                     unit: str | None = None, assigned_to: Sequence[int] | None = None,
                     metric_crs: str = "EPSG:4548", at: datetime | None = None, max_cells: int = MAX_CELLS,
                     n_jobs: int = 1) -> EmergingResult:
    """Build the cells × steps cube of the selected cases and classify each cell's emerging pattern.

    Without ``start``/``end`` the window ends with the step of the latest matching case and spans 52
    weeks or 24 months (less if the cases begin later). Steps are whole weeks or months in Asia/Shanghai
    time; cases still count only inside [start, end), so a window cut mid-step leaves that step short.
    """
    if step not in STEPS:
        raise ValidationError(FieldError("step", f"unknown step {step!r}; use {', '.join(STEPS)}"))
    check_inference(permutations, alpha, seed)
    selection = select_cases(session, county_code, category=category, theme=theme, start=start, end=end,
                             unit=unit, assigned_to=assigned_to)
    window_start, window_end = _default_window(session, selection, step)
    if window_start >= window_end:
        raise ValidationError(FieldError("end", "must be later than start"))
    starts = step_starts(step, window_start, window_end)
    if not MIN_STEPS <= len(starts) <= MAX_STEPS:
        raise ValidationError(FieldError(
            "end", f"the window holds {len(starts)} {step}s; give between {MIN_STEPS} and {MAX_STEPS}"))
    selection = CaseSelection(selection.county_code, selection.categories, selection.themes, window_start,
                              window_end, selection.unit, selection.assigned_to)
    cells = build_cells(session, selection, cell=cell, size_m=size_m, metric_crs=metric_crs, at=at,
                        max_cells=max_cells)
    cube = count_cube(session, cells, selection, step, starts, at=at)
    return emerging_from_cube(cells, cube, starts, permutations=permutations, alpha=alpha, seed=seed,
                              n_jobs=n_jobs, parameters={**_selection_parameters(selection), "step": step})
