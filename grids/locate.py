"""Vectorised point-in-polygon lookup with `covers` semantics and a deterministic tie-break."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely
from shapely import STRtree


class PolygonIndex:
    """Locate many points in a fixed set of polygons at once.

    The query is polygon-driven (the tree holds the points, each polygon asks for what it covers),
    which is the fast direction when polygons are few and points are many. A point on a shared
    boundary is covered by both polygons; it goes to the polygon with the lowest ``priority``
    (then the lowest position), so the answer never depends on iteration order.
    """

    def __init__(self, polygons: Sequence[shapely.Geometry], priority: Sequence[float] | None = None) -> None:
        self.polygons = np.asarray(polygons, dtype=object)
        if self.polygons.size and not np.all(shapely.is_valid(self.polygons)):
            raise ValueError("PolygonIndex: every polygon must be valid")
        shapely.prepare(self.polygons)
        self.priority = np.asarray(priority if priority is not None else np.arange(len(self.polygons)), float)

    def locate(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Return, for each point, the index of the covering polygon, or -1 when none covers it."""
        points = shapely.points(np.asarray(xs, float), np.asarray(ys, float))
        result = np.full(len(points), -1, dtype=np.int64)
        if not len(points) or not len(self.polygons):
            return result
        tree = STRtree(points)
        poly_idx, point_idx = tree.query(self.polygons, predicate="covers")
        if not len(point_idx):
            return result
        # Sort hits by point, then by priority, and keep the first hit of each point.
        order = np.lexsort((poly_idx, self.priority[poly_idx], point_idx))
        point_sorted, poly_sorted = point_idx[order], poly_idx[order]
        first = np.ones(len(point_sorted), dtype=bool)
        first[1:] = point_sorted[1:] != point_sorted[:-1]
        result[point_sorted[first]] = poly_sorted[first]
        return result
