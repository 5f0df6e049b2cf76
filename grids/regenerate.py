"""Regenerate a county's unit grid from its administrative units and their configured cell sizes.

Each unit's ``grid_cell_size_m`` sets its cell size (about 100 m, i.e. 10,000 m², in urban areas).
Cells whose code and shape are unchanged are left alone; a changed or retired cell gets its version
closed and, when it still exists, a new version opened, so cases keep the grid they were routed to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import shapely
from pyproj import Transformer
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from gis_platform import models as m
from gis_platform.errors import FieldError, ValidationError
from gis_platform.geometry import to_ewkt
from grids.coding import GridCodeLayout
from grids.generate import UnitSpec, generate_cells
from grids.locate import PolygonIndex
from grids.pg_engine import rebuild_lookup


@dataclass
class RegenerateReport:
    """What a regeneration would do (or did): cell counts by outcome, per unit."""

    committed: bool
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    retired: int = 0
    per_unit: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """Return a readable summary, Chinese first."""
        verb = "已写入 / written" if self.committed else "试运行，未写入 / dry run, nothing written"
        out = [f"单元网格重新生成（{verb}）",
               f"  新增 new {self.new:,} · 变更 changed {self.changed:,} · 不变 unchanged {self.unchanged:,} · "
               f"停用 retired {self.retired:,}"]
        out += [f"  {code}: {n:,} cells" for code, n in sorted(self.per_unit.items())]
        return out


def regenerate_grid(session: Session, county_code: str, metric_crs: str, *, sizes: dict[str, float] | None = None,
                    layout: GridCodeLayout = GridCodeLayout(), at: datetime | None = None, commit: bool = False,
                    progress: Callable[[str], None] | None = None) -> RegenerateReport:
    """Generate cells for every unit and compare them with the cells in force; write them if asked."""
    say = progress or (lambda _m: None)
    at = at or datetime.now(UTC)
    sizes = sizes or {}
    units = session.scalars(select(m.AdminUnit).where(
        m.AdminUnit.county_code == county_code, m.AdminUnit.level != "county").order_by(m.AdminUnit.code)).all()
    known = {u.code for u in units}
    for code, size in sizes.items():
        if code not in known:
            raise ValidationError(FieldError("size", f"unknown administrative unit {code!r}"))
        if not 10 <= size <= 5000:
            raise ValidationError(FieldError("size", f"{code}: cell size {size} m is outside 10–5000 m"))
    to_metric = Transformer.from_crs("EPSG:4326", metric_crs, always_xy=True)
    to_wgs = Transformer.from_crs(metric_crs, "EPSG:4326", always_xy=True)
    specs = []
    for unit in units:
        size = sizes.get(unit.code) or unit.grid_cell_size_m
        if not size:
            raise ValidationError(FieldError("size", f"{unit.code} {unit.name} has no cell size; give --size"))
        geom = shapely.from_wkb(bytes(session.scalar(select(text("ST_AsBinary(geom)")).select_from(
            m.AdminUnit.__table__).where(m.AdminUnit.id == unit.id))))
        specs.append(UnitSpec(unit.code, shapely.transform(geom, to_metric.transform, interleaved=False), size))
        if unit.code in sizes:
            unit.grid_cell_size_m = sizes[unit.code]
    say(f"generating cells for {len(specs)} units…")
    cells = generate_cells(specs, crs=metric_crs, layout=layout, county_code=county_code)
    new_geoms = []
    for cell in cells:
        g = shapely.transform(cell.geometry, to_wgs.transform, interleaved=False)
        if not g.is_valid:
            g = shapely.make_valid(g)
        new_geoms.append(shapely.MultiPolygon([p for p in shapely.get_parts(g) if p.geom_type == "Polygon"]))
    current = {r.code: r for r in session.scalars(select(m.GridCell).where(
        m.GridCell.county_code == county_code, m.GridCell.valid_from <= at,
        (m.GridCell.valid_to.is_(None)) | (m.GridCell.valid_to > at)))}
    current_geom = {code: shapely.from_wkb(bytes(wkb)) for code, wkb in session.execute(text(
        "SELECT code, ST_AsBinary(geom) FROM grid_cell WHERE id = ANY(:ids)"),
        {"ids": [r.id for r in current.values()]})}
    # The squad of a cell is the squad whose jurisdiction covers the cell's interior point.
    squads = session.execute(text(
        "SELECT j.agency_id, ST_AsBinary(j.geom) FROM jurisdiction j JOIN agency a ON a.id = j.agency_id "
        "WHERE j.county_code = :c AND a.kind = 'squad' AND j.valid_from <= :at "
        "AND (j.valid_to IS NULL OR j.valid_to > :at) ORDER BY a.code"), {"c": county_code, "at": at}).all()
    squad_index = PolygonIndex([shapely.from_wkb(bytes(w)) for _, w in squads])
    inner = shapely.point_on_surface(np.array(new_geoms, dtype=object))
    squad_pos = squad_index.locate(shapely.get_x(inner), shapely.get_y(inner))
    unit_ids = {u.code: u.id for u in units}
    report = RegenerateReport(committed=commit)
    seen = set()
    for cell, geom, sq in zip(cells, new_geoms, squad_pos.tolist()):
        seen.add(cell.code)
        report.per_unit[cell.unit_code] = report.per_unit.get(cell.unit_code, 0) + 1
        old = current.get(cell.code)
        if old is not None and shapely.equals_exact(current_geom[cell.code].normalize(), geom.normalize(), 1e-9):
            report.unchanged += 1
            continue
        if old is None:
            report.new += 1
        else:
            report.changed += 1
            if commit:
                old.valid_to = at
        if commit:
            session.add(m.GridCell(
                county_code=county_code, code=cell.code, admin_unit_id=unit_ids[cell.unit_code],
                squad_id=squads[sq][0] if sq >= 0 else None, community=f"{cell.community:03d}",
                area_m2=round(float(cell.area_m2), 2), valid_from=at, geom=to_ewkt(geom)))
    for code, old in current.items():
        if code not in seen:
            report.retired += 1
            if commit:
                old.valid_to = at
    if commit:
        session.flush()
        say("rebuilding the routing lookup…")
        rebuild_lookup(session, county_code)
    return report
