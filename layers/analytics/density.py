"""Kernel density of cases for the heatmap: points binned onto a raster, smoothed with a Gaussian filter.

An exact Gaussian kernel density costs points × raster cells. Binning the points onto the raster
(linear in the points; done in PostGIS for cases) and convolving the counts with a Gaussian
(``scipy.ndimage.gaussian_filter``: separable, cells × kernel width) gives the same surface up to the
binning error, which stays small while a cell is at most a quarter of the bandwidth (the default);
a million points take well under a second.

Values are cases per km² (the intensity: number of points × density). The bandwidth, when not given,
is Silverman's rule of thumb on the projected coordinates, ``0.9 · min(σ, IQR / 1.34) · n^(−1/5)``,
averaged over x and y and kept within [``MIN_BANDWIDTH_M``, ``MAX_BANDWIDTH_M``].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from scipy import ndimage
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis_platform.errors import FieldError, ValidationError
from layers.analytics.aggregate import jit_off, metric_srid, select_cases, transformer

MIN_BANDWIDTH_M = 50.0
MAX_BANDWIDTH_M = 5_000.0
DEFAULT_BANDWIDTH_M = 300.0  # with fewer than two distinct points the rule of thumb has nothing to go on
MIN_CELL_M = 5.0
MAX_RASTER_CELLS = 4_000_000
TRUNCATE = 4.0  # the Gaussian is cut at four bandwidths


def silverman_bandwidth(x: np.ndarray, y: np.ndarray) -> float:
    """Return Silverman's rule-of-thumb bandwidth (metres) of projected points, within the allowed range."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return _rule_of_thumb(len(x), *(_spread(v) for v in (x, y)))


def _spread(v: np.ndarray) -> tuple[float, float]:
    if len(v) < 2:
        return 0.0, 0.0
    q1, q3 = np.percentile(v, [25, 75])
    return float(np.std(v, ddof=1)), float(q3 - q1)


def _rule_of_thumb(n: int, *spreads: tuple[float, float]) -> float:
    if n < 2:
        return DEFAULT_BANDWIDTH_M
    scales = [min(s, iqr / 1.34) if iqr > 0 else s for s, iqr in spreads]
    scale = float(np.mean(scales))
    if not scale > 0:
        return DEFAULT_BANDWIDTH_M
    return float(np.clip(0.9 * scale * n ** (-0.2), MIN_BANDWIDTH_M, MAX_BANDWIDTH_M))


@dataclass(frozen=True)
class Raster:
    """A raster frame in the metric CRS: lower-left corner, cell size and shape (rows from the south)."""

    x0: float
    y0: float
    cell_m: float
    nx: int
    ny: int


def raster_for(bounds: Sequence[float], bandwidth_m: float, cell_m: float | None = None) -> Raster:
    """Return a raster over ``bounds`` (minx, miny, maxx, maxy) with cells of ``cell_m`` (default bandwidth / 4)."""
    x0, y0, x1, y1 = (float(b) for b in bounds)
    width, height = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    cell = max(MIN_CELL_M, cell_m if cell_m is not None else bandwidth_m / 4.0)
    if (width / cell) * (height / cell) > MAX_RASTER_CELLS:
        cell = math.sqrt(width * height / MAX_RASTER_CELLS) * 1.0001
    return Raster(x0, y0, cell, int(math.ceil(width / cell)), int(math.ceil(height / cell)))


def bin_points(x: np.ndarray, y: np.ndarray, raster: Raster, weights: np.ndarray | None = None) -> np.ndarray:
    """Return the number (or weight) of points in each raster cell; points outside are dropped."""
    col = np.floor((np.asarray(x, dtype=float) - raster.x0) / raster.cell_m).astype(np.int64)
    row = np.floor((np.asarray(y, dtype=float) - raster.y0) / raster.cell_m).astype(np.int64)
    inside = (col >= 0) & (col < raster.nx) & (row >= 0) & (row < raster.ny)
    flat = row[inside] * raster.nx + col[inside]
    w = None if weights is None else np.asarray(weights, dtype=float)[inside]
    return np.bincount(flat, weights=w, minlength=raster.nx * raster.ny).astype(np.float64).reshape(raster.ny,
                                                                                                 raster.nx)


def smooth(counts: np.ndarray, raster: Raster, bandwidth_m: float) -> np.ndarray:
    """Return cases per km² from binned counts: a Gaussian of ``bandwidth_m``, per cell area."""
    sigma = bandwidth_m / raster.cell_m
    density = ndimage.gaussian_filter(counts, sigma=sigma, mode="constant", cval=0.0, truncate=TRUNCATE)
    return density / (raster.cell_m * raster.cell_m / 1e6)


@dataclass
class DensitySurface:
    """A density raster (cases per km²; row 0 is the southern edge) in the metric CRS, and how it was made."""

    values: np.ndarray
    raster: Raster
    bandwidth_m: float
    srid: int
    points: int

    @property
    def cell_m(self) -> float:
        """Return the raster cell size in metres."""
        return self.raster.cell_m

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the metric x and y of every cell centre, shaped like ``values``."""
        r = self.raster
        xs = r.x0 + (np.arange(r.nx) + 0.5) * r.cell_m
        ys = r.y0 + (np.arange(r.ny) + 0.5) * r.cell_m
        return np.meshgrid(xs, ys)

    def to_points(self, *, max_points: int = 20_000, threshold: float = 0.01) -> list[list[float]]:
        """Return [lat, lon, value] of the cells above ``threshold`` × the maximum, the densest first.

        At most ``max_points`` are returned (the weakest are dropped), the shape Leaflet.heat takes.
        """
        peak = float(self.values.max()) if self.values.size else 0.0
        if peak <= 0:
            return []
        flat = self.values.ravel()
        chosen = np.flatnonzero(flat >= threshold * peak)
        if len(chosen) > max_points:
            chosen = chosen[np.argpartition(flat[chosen], -max_points)[-max_points:]]
        chosen = chosen[np.argsort(-flat[chosen], kind="stable")]
        xs, ys = (a.ravel()[chosen] for a in self.centres())
        lon, lat = transformer(self.srid, 4326).transform(xs, ys)
        return [[round(float(a), 6), round(float(b), 6), round(float(v), 3)]
                for a, b, v in zip(lat, lon, flat[chosen])]

    def bounds_lonlat(self) -> list[float]:
        """Return the raster's extent as [minLon, minLat, maxLon, maxLat]."""
        r = self.raster
        xs = np.array([r.x0, r.x0 + r.nx * r.cell_m, r.x0, r.x0 + r.nx * r.cell_m])
        ys = np.array([r.y0, r.y0, r.y0 + r.ny * r.cell_m, r.y0 + r.ny * r.cell_m])
        lon, lat = transformer(self.srid, 4326).transform(xs, ys)
        return [round(float(min(lon)), 6), round(float(min(lat)), 6), round(float(max(lon)), 6),
                round(float(max(lat)), 6)]

    def to_json(self, *, max_points: int = 20_000, threshold: float = 0.01) -> dict[str, Any]:
        """Return the heatmap as JSON: points [lat, lon, cases/km²], the maximum, bandwidth, cell, bounds."""
        points = self.to_points(max_points=max_points, threshold=threshold)
        return {"unit": "cases per km²", "unit_zh": "件/平方公里", "count": self.points,
                "bandwidth_m": round(self.bandwidth_m, 1), "cell_m": round(self.cell_m, 2),
                "max": round(float(self.values.max()), 3) if self.values.size else 0.0,
                "threshold": threshold, "bounds": self.bounds_lonlat(), "points": points}


def density_surface(x: np.ndarray, y: np.ndarray, *, bounds: Sequence[float] | None = None,
                    bandwidth_m: float | None = None, cell_m: float | None = None,
                    weights: np.ndarray | None = None, srid: int = 4548) -> DensitySurface:
    """Return the kernel density of projected points (metres) over ``bounds`` (default: the points' extent)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    bandwidth = _bandwidth(bandwidth_m, lambda: silverman_bandwidth(x, y))
    if bounds is None:
        bounds = (x.min(), y.min(), x.max(), y.max()) if len(x) else (0.0, 0.0, 1.0, 1.0)
    raster = raster_for(bounds, bandwidth, _cell(cell_m))
    values = smooth(bin_points(x, y, raster, weights), raster, bandwidth)
    return DensitySurface(values, raster, bandwidth, srid, len(x))


def _bandwidth(value: float | None, default: Any) -> float:
    if value is None:
        return float(default())
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            MIN_BANDWIDTH_M <= value <= MAX_BANDWIDTH_M):
        raise ValidationError(FieldError(
            "bandwidth_m", f"must lie between {MIN_BANDWIDTH_M:g} and {MAX_BANDWIDTH_M:g} metres"))
    return float(value)


def _cell(value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not MIN_CELL_M <= value <= 1000:
        raise ValidationError(FieldError("cell_m", f"must lie between {MIN_CELL_M:g} and 1000 metres"))
    return float(value)


def kernel_density(session: Session, county_code: str, *, category: str | Sequence[str] | None = None,
                   start: datetime | None = None, end: datetime | None = None,
                   theme: str | Sequence[str] | None = None, unit: str | None = None,
                   assigned_to: Sequence[int] | None = None, bandwidth_m: float | None = None,
                   cell_m: float | None = None, metric_crs: str = "EPSG:4548") -> DensitySurface:
    """Return the heatmap surface of the selected cases over the county (or ``unit``), binned in PostGIS."""
    cell = _cell(cell_m)
    selection = select_cases(session, county_code, category=category, theme=theme, start=start, end=end,
                             unit=unit, assigned_to=assigned_to)
    srid = metric_srid(metric_crs)
    where, params = selection.where()
    params.update(srid=srid, unit_code=unit)
    area = session.execute(text(
        "SELECT ST_XMin(g), ST_YMin(g), ST_XMax(g), ST_YMax(g) FROM (SELECT ST_Transform(geom, :srid) AS g "
        "FROM admin_unit WHERE county_code = :county AND (CASE WHEN CAST(:unit_code AS text) IS NULL "
        "THEN level = 'county' ELSE code = :unit_code END) ORDER BY code LIMIT 1) a"), params).one_or_none()
    if area is None:
        raise ValidationError(FieldError("county_code", f"no outline for {county_code!r} in the database"))
    points = (f"SELECT ST_X(q.p) AS x, ST_Y(q.p) AS y FROM \"case\" c JOIN category cat ON cat.id = c.category_id "
              f"CROSS JOIN LATERAL (SELECT ST_Transform(c.location, :srid) AS p) q WHERE {where}")
    with jit_off(session):
        n, sx, sy, x25, x75, y25, y75 = session.execute(text(
            f"SELECT count(*), stddev_samp(x), stddev_samp(y), "
            f"percentile_cont(0.25) WITHIN GROUP (ORDER BY x), percentile_cont(0.75) WITHIN GROUP (ORDER BY x), "
            f"percentile_cont(0.25) WITHIN GROUP (ORDER BY y), percentile_cont(0.75) WITHIN GROUP (ORDER BY y) "
            f"FROM ({points}) pts"), params).one()
        bandwidth = _bandwidth(bandwidth_m, lambda: _rule_of_thumb(
            int(n), (float(sx or 0), float((x75 or 0) - (x25 or 0))), (float(sy or 0), float((y75 or 0) - (y25 or 0)))))
        raster = raster_for(tuple(area), bandwidth, cell)
        rows = session.execute(text(
            f"SELECT floor((x - :x0) / :cell)::bigint AS col, floor((y - :y0) / :cell)::bigint AS row, "
            f"count(*) AS n FROM ({points}) pts GROUP BY 1, 2"),
            {**params, "x0": raster.x0, "y0": raster.y0, "cell": raster.cell_m}).all()
    counts = np.zeros((raster.ny, raster.nx))
    if rows:
        col = np.array([r.col for r in rows], dtype=np.int64)
        row = np.array([r.row for r in rows], dtype=np.int64)
        inside = (col >= 0) & (col < raster.nx) & (row >= 0) & (row < raster.ny)
        np.add.at(counts, (row[inside], col[inside]), np.array([r.n for r in rows], dtype=float)[inside])
    return DensitySurface(smooth(counts, raster, bandwidth), raster, bandwidth, srid, int(n))
