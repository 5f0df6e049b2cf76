"""Regenerating the grid keeps unchanged cells and versions changed ones."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text

from gis_platform import models as m
from gis_platform.errors import ValidationError
from grids.regenerate import regenerate_grid

C = "371521"


def test_regenerating_the_demo_grid_changes_nothing(demo_session):
    report = regenerate_grid(demo_session, C, "EPSG:4548", commit=False)
    assert report.new == report.changed == report.retired == 0
    assert report.unchanged == demo_session.scalar(select(func.count()).select_from(m.GridCell))


def test_finer_cells_in_one_unit_version_the_old_ones(demo_session):
    zone = demo_session.scalar(select(m.AdminUnit).where(m.AdminUnit.name == "祥光生态工业园"))
    before = demo_session.scalar(select(func.count()).select_from(m.GridCell).where(m.GridCell.admin_unit_id == zone.id))
    dry = regenerate_grid(demo_session, C, "EPSG:4548", sizes={zone.code: 125.0})
    # About four times as many cells; the dry run wrote nothing.
    assert dry.new + dry.changed > 3 * before and not dry.committed
    assert demo_session.scalar(select(func.count()).select_from(m.GridCell).where(
        m.GridCell.admin_unit_id == zone.id)) == before
    at = datetime(2023, 1, 1, tzinfo=UTC)
    done = regenerate_grid(demo_session, C, "EPSG:4548", sizes={zone.code: 125.0}, commit=True, at=at)
    assert (done.new, done.changed) == (dry.new, dry.changed)
    in_force = demo_session.scalar(select(func.count()).select_from(m.GridCell).where(
        m.GridCell.admin_unit_id == zone.id, m.GridCell.valid_to.is_(None)))
    closed = demo_session.scalar(select(func.count()).select_from(m.GridCell).where(
        m.GridCell.admin_unit_id == zone.id, m.GridCell.valid_to == at))
    assert in_force == done.per_unit[zone.code] and closed == before
    # Every new cell got a squad and a median area of about 125 m × 125 m.
    median = demo_session.execute(text(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY area_m2) FROM grid_cell "
        "WHERE admin_unit_id = :u AND valid_to IS NULL"), {"u": zone.id}).scalar_one()
    assert median == pytest.approx(125 * 125, rel=0.01)
    assert demo_session.scalar(select(func.count()).select_from(m.GridCell).where(
        m.GridCell.valid_to.is_(None), m.GridCell.squad_id.is_(None))) == 0


def test_bad_sizes_name_the_problem(demo_session):
    with pytest.raises(ValidationError, match="unknown administrative unit"):
        regenerate_grid(demo_session, C, "EPSG:4548", sizes={"999999999": 100.0})
    with pytest.raises(ValidationError, match="outside"):
        regenerate_grid(demo_session, C, "EPSG:4548", sizes={"371521001": 1.0})
