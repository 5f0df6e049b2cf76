"""The registry of map layers: every theme, named once. Adding a theme = one module + one line here."""

from __future__ import annotations

from collections.abc import Iterable

from gis_platform.errors import NotFound
from layers.base import Layer
from layers.themes.admin_units import AdminUnitsLayer
from layers.themes.cases import CasesLayer
from layers.themes.fume_sites import FumeSitesLayer
from layers.themes.grid_cells import GridCellsLayer
from layers.themes.hotline_tickets import HotlineTicketsLayer
from layers.themes.illegal_operation import IllegalOperationLayer
from layers.themes.illegal_structures import IllegalStructuresLayer
from layers.themes.jurisdictions import JurisdictionsLayer
from layers.themes.promotion import PromotionLayer
from layers.themes.seized_items import SeizedItemsLayer
from layers.themes.ten_disorders import TenDisordersLayer


def _index(layers: Iterable[Layer]) -> dict[str, Layer]:
    """Return the layers by name, refusing two layers with one name."""
    out: dict[str, Layer] = {}
    for layer in layers:
        if layer.name in out:
            raise ValueError(f"two layers are named {layer.name!r}")
        out[layer.name] = layer
    return out


# Map order: areas first, then the thematic points and footprints drawn over them.
REGISTRY: dict[str, Layer] = _index((
    AdminUnitsLayer(),
    JurisdictionsLayer(),
    GridCellsLayer(),
    CasesLayer(),
    TenDisordersLayer(),
    IllegalOperationLayer(),
    IllegalStructuresLayer(),
    FumeSitesLayer(),
    SeizedItemsLayer(),
    HotlineTicketsLayer(),
    PromotionLayer(),
))


def all_layers() -> tuple[Layer, ...]:
    """Return every registered layer in map order."""
    return tuple(REGISTRY.values())


def get_layer(name: str) -> Layer:
    """Return the layer with this name, or raise NotFound listing the names there are."""
    layer = REGISTRY.get(name)
    if layer is None:
        names = ", ".join(REGISTRY)
        raise NotFound(f"no layer named {name!r}; layers: {names}", layers=list(REGISTRY))
    return layer
