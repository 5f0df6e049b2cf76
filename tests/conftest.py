"""Shared fixtures: a real PostGIS (never SQLite, never mocks), migrated by Alembic.

The database comes from ``GIS_TEST_DATABASE_URL`` when set (an existing PostGIS whose databases the
tests may create and drop); otherwise from the platform's own self-managed cluster under
``var/test-cluster``. If neither can be brought up the run fails: database tests are never skipped.
Each test that uses ``db_session`` runs inside a transaction that is rolled back afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from gis_platform.cli import upgrade_database
from gis_platform.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
TEST_DATA_DIR = ROOT / "var" / "test-cluster"


class _Server:
    """Create databases on the test server, whichever kind it is."""

    def __init__(self) -> None:
        external = os.environ.get("GIS_TEST_DATABASE_URL")
        self.cluster = None
        if external:
            self.base_url = Settings(_env_file=None, database_url=external).database_url or external
        else:
            from gis_platform.pgcluster import LocalCluster

            self.cluster = LocalCluster(data_dir=TEST_DATA_DIR)
            self.started_here = not self.cluster.is_running()
            self.base_url = self.cluster.ensure()
        self.created: list[str] = []

    def create(self, name: str) -> str:
        """Create an empty database with PostGIS and return its URL."""
        self.created.append(name)
        if self.cluster is not None:
            return self.cluster.create_database(name, drop_existing=True)
        admin = create_engine(self.base_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = make_url(self.base_url).set(database=name).render_as_string(hide_password=False)
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS btree_gist"))
        engine.dispose()
        return url


    def close(self) -> None:
        """Drop the databases this run created and stop a cluster this run started."""
        admin = create_engine(self.base_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for name in self.created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        # On CI, stop the cluster this run started; locally leave it for the next run (and for
        # concurrent runs sharing it), `gis-platform db stop` style: GIS_DATA_DIR=var/test-cluster.
        if self.cluster is not None and self.started_here and os.environ.get("CI"):
            self.cluster.stop()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[_Server]:
    """Return the PostgreSQL server the tests use; fail loudly if none can be started."""
    server = _Server()
    yield server
    server.close()


@pytest.fixture(scope="session")
def database_url(pg_server: _Server) -> str:
    """Return the URL of an empty database migrated to head."""
    url = pg_server.create(f"gis_test_{os.getpid()}")
    upgrade_database(url)
    return url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    """Return an engine on the migrated test database."""
    eng = create_engine(database_url)
    yield eng
    eng.dispose()


@contextmanager
def rolled_back_session(engine: Engine) -> Iterator[Session]:
    """Yield a session inside an outer transaction that is rolled back at the end, commits included."""
    with engine.connect() as conn:
        outer = conn.begin()
        session = Session(bind=conn, join_transaction_mode="create_savepoint")
        try:
            yield session
        finally:
            session.close()
            outer.rollback()


@pytest.fixture()
def db_session(engine: Engine) -> Iterator[Session]:
    """Yield a session on the empty migrated database, rolled back after the test."""
    with rolled_back_session(engine) as session:
        yield session


@pytest.fixture(scope="session")
def settings() -> Settings:
    """Return settings for the demo county, independent of the developer's environment."""
    return Settings(_env_file=None, database_url=None, data_dir=TEST_DATA_DIR, county_code="371521",
                    metric_crs="EPSG:4548")


@pytest.fixture(scope="session")
def demo_url(pg_server: _Server, settings: Settings) -> str:
    """Return the URL of a database holding the loaded demo county (loaded once per run)."""
    from layers.demo import load_demo

    url = pg_server.create(f"gis_demo_{os.getpid()}")
    upgrade_database(url)
    eng = create_engine(url)
    with Session(eng) as session, session.begin():
        load_demo(session, settings)
    eng.dispose()
    return url


@pytest.fixture(scope="session")
def demo_engine(demo_url: str) -> Iterator[Engine]:
    """Return an engine on the demo database."""
    eng = create_engine(demo_url)
    yield eng
    eng.dispose()


@pytest.fixture()
def demo_session(demo_engine: Engine) -> Iterator[Session]:
    """Yield a session on the demo database, rolled back after the test."""
    with rolled_back_session(demo_engine) as session:
        yield session
