"""Alembic is the only way the schema changes: round-trip it and compare it with the models."""

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from geoalchemy2 import Geometry, alembic_helpers
from sqlalchemy import create_engine, inspect, text

from gis_platform.cli import alembic_config
from gis_platform.models import Base


def _tables(url):
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"spatial_ref_sys", "alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(pg_server):
    url = pg_server.create("gis_test_migrations")
    cfg = alembic_config(url)
    command.upgrade(cfg, "head")
    assert _tables(url) == set(Base.metadata.tables)
    command.downgrade(cfg, "base")
    assert _tables(url) == set()
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pg_proc WHERE proname = 'case_event_append_only'")).scalar() == 0
    engine.dispose()
    command.upgrade(cfg, "head")
    assert _tables(url) == set(Base.metadata.tables)


def test_autogenerate_finds_no_difference(engine):
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_object": alembic_helpers.include_object,
                "compare_type": True,
                "target_metadata": Base.metadata,
            },
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_every_geometry_column_has_a_gist_index(engine):
    with engine.connect() as conn:
        columns = conn.execute(text(
            "SELECT f_table_name, f_geometry_column FROM geometry_columns WHERE f_table_schema = 'public'"
        )).all()
        expected = {(t.name, c.name) for t in Base.metadata.tables.values() for c in t.c
                    if isinstance(c.type, Geometry)}
        assert set(columns) == expected
        for table, column in columns:
            found = conn.execute(text(
                "SELECT count(*) FROM pg_indexes WHERE tablename = :t AND indexdef ILIKE '%USING gist%' "
                "AND indexdef LIKE '%' || :c || '%'"
            ), {"t": table, "c": f"({column})"}).scalar()
            assert found >= 1, f"{table}.{column} has no GiST index"


def test_every_geometry_is_4326(engine):
    with engine.connect() as conn:
        srids = set(conn.execute(text(
            "SELECT srid FROM geometry_columns WHERE f_table_schema = 'public'")).scalars())
    assert srids == {4326}


# Tables that describe the database, not a county's data: the catalogue's change log.
DATABASE_WIDE = {"catalogue_change"}


def test_every_table_carries_county_code():
    for table in Base.metadata.tables.values():
        if table.name not in DATABASE_WIDE:
            assert "county_code" in table.c, table.name


def test_catalogue_changes_are_logged_once_per_transaction_and_never_erased(engine):
    revision_sql = text("SELECT (SELECT count(*) FROM catalogue_change), "
                        "coalesce(current_setting('gis.catalogue_dirty', true) = 'on', false)")
    with engine.connect() as reader:
        start, dirty = reader.execute(revision_sql).one()
        reader.rollback()
        assert not dirty
        with engine.connect() as writer:
            for table in ("admin_unit", "agency", "power", "category", "time_limit", "jurisdiction", "grid_cell"):
                writer.execute(text(f"DELETE FROM {table} WHERE false"))  # a statement, even touching no row
            assert writer.execute(revision_sql).one() == (start + 1, True)  # one row for the transaction
            # Another transaction sees neither the row nor the mark until commit, and is not blocked.
            assert reader.execute(revision_sql).one() == (start, False)
            reader.rollback()
            writer.rollback()
            writer.execute(text("DELETE FROM case_follower WHERE false"))  # not a catalogue table
            assert writer.execute(revision_sql).one() == (start, False)
            writer.rollback()
            writer.execute(text("UPDATE agency SET name = name WHERE false"))
            writer.commit()
        assert reader.execute(revision_sql).one() == (start + 1, False)
        reader.rollback()
        with pytest.raises(Exception, match="append-only"):
            reader.execute(text("DELETE FROM catalogue_change"))
        reader.rollback()
