"""Planner analytics: hot spots (Gi*, Local Moran's I), emerging hot spots and kernel density of cases.

``compute_hotspots``, ``compute_emerging`` and ``kernel_density`` read the database; the pure-array
cores under them (``hotspots_from_counts``, ``emerging_from_cube``, ``density_surface``) do not.
"""

from layers.analytics.aggregate import CELL_KINDS, STEPS
from layers.analytics.density import DensitySurface, density_surface, kernel_density
from layers.analytics.emerging import EmergingResult, compute_emerging, emerging_from_cube
from layers.analytics.hotspots import HotspotResult, compute_hotspots, hotspots_from_counts

__all__ = ["CELL_KINDS", "STEPS", "DensitySurface", "EmergingResult", "HotspotResult", "compute_emerging",
           "compute_hotspots", "density_surface", "emerging_from_cube", "hotspots_from_counts", "kernel_density"]
