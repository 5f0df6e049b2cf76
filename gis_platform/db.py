"""Engine and session construction; one engine per process, sessions owned by the caller."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from gis_platform.settings import Settings


@dataclass
class Database:
    """The process's engine and session factory, plus the local cluster it may own."""

    engine: Engine
    sessions: sessionmaker[Session]
    cluster: object | None = None  # a pgcluster.LocalCluster when self-managed

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Yield a session in a transaction that commits on success and rolls back on error."""
        with self.sessions.begin() as session:
            yield session

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """Create an engine with settings suited to short OLTP requests."""
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=10,
        pool_pre_ping=True,
        pool_timeout=5,
        # PostGIS marks its functions expensive, which makes PostgreSQL JIT-compile short spatial queries
        # (about a second each); interactive work is faster without it.
        connect_args={"connect_timeout": 5, "application_name": "gis-platform", "options": "-c jit=off"},
    )


def resolve_database_url(settings: Settings, progress=None) -> tuple[str, object | None]:
    """Return the database URL, starting the self-managed cluster when DATABASE_URL is unset."""
    if settings.database_url:
        return settings.database_url, None
    from gis_platform.pgcluster import cluster_from_settings

    cluster = cluster_from_settings(settings)
    return cluster.ensure(progress=progress), cluster


def open_database(settings: Settings, progress=None) -> Database:
    """Connect to the configured store (never silently another one)."""
    url, cluster = resolve_database_url(settings, progress=progress)
    engine = make_engine(url)
    return Database(engine=engine, sessions=sessionmaker(engine, expire_on_commit=False), cluster=cluster)


def postgis_version(engine: Engine) -> str:
    """Return the PostGIS library version, raising if the extension is absent."""
    with engine.connect() as conn:
        return conn.execute(text("SELECT postgis_lib_version()")).scalar_one()
