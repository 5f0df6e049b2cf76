"""``gis-platform serve``: prepare the database, then run the app under gunicorn."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from gunicorn.app.base import BaseApplication
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from api.errors import first_line
from gis_platform.cli import echo_progress, load_settings, upgrade_database
from gis_platform.settings import Settings

SERVE_LOCK_FILE = "serve.lock"
# pg_advisory_lock key that serialises migrations and the demo load between concurrent serves.
PREPARE_LOCK_KEY = 0x67_69_73_5F_70_72_65_70  # "gis_prep"
GUNICORN_TIMEOUT_S = 30
# gthread workers: a live-event stream (api.events) holds a thread, not the whole worker; api.events
# caps streams per process below this so ordinary requests always find a free thread.
GUNICORN_THREADS = 16


class ServeLock:
    """A shared flock every running serve holds on ``<data_dir>/serve.lock``.

    The local cluster is shared by every serve on one data directory, so a serve stops it at exit
    only when it can take the lock exclusively, i.e. no other serve still holds it shared.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire_shared(self) -> None:
        """Hold the lock shared, waiting while another serve is stopping the cluster."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            echo_progress("another serve is stopping the local database; waiting for it…")
            fcntl.flock(fd, fcntl.LOCK_SH)
        self._fd = fd

    def try_exclusive(self) -> bool:
        """Return True if no other serve holds the lock (it is then held exclusively)."""
        if self._fd is None:
            return False
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        """Drop the lock."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class PlatformServer(BaseApplication):
    """Gunicorn running the platform; every worker builds its own app and engine (no preload)."""

    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from api.app import create_app

        return create_app(self.settings)


def gunicorn_logging(level: str) -> dict[str, Any]:
    """Return a dictConfig sending gunicorn's error and access logs and the app's logs to stderr."""
    stderr = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "generic": {
                "format": "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s",
                "datefmt": "[%Y-%m-%d %H:%M:%S %z]",
            },
            "access": {"format": "%(message)s"},
        },
        "handlers": {
            "stderr": {**stderr, "formatter": "generic"},
            "access": {**stderr, "formatter": "access"},
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        },
    }


def host_port(host: str, port: int) -> str:
    """Return ``host:port``, bracketing an IPv6 literal."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def public_url(host: str, port: int) -> str:
    """Return the URL a browser on this machine can open for a bind address."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://{host_port(host, port)}/"


def check_port_free(host: str, port: int) -> None:
    """Raise a ClickException naming the address if it cannot be bound."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise click.ClickException(f"cannot resolve --host {host!r}: {exc.strerror}") from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        # Gunicorn binds with SO_REUSEADDR too, so a port in TIME_WAIT is not "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            where = host_port(host, port)
            if exc.errno == errno.EADDRINUSE:
                message = f"{where} is already in use; stop what listens there or choose --port / GIS_PORT"
            elif exc.errno == errno.EACCES:
                message = f"no permission to listen on {where}; use a port above 1023 or run with privileges"
            else:
                message = f"cannot listen on {where}: {exc.strerror}"
            raise click.ClickException(message) from exc


@contextmanager
def _prepare_lock(url: str) -> Iterator[Engine]:
    """Hold a PostgreSQL advisory lock so concurrent serves migrate and load the demo one at a time."""
    from gis_platform.db import make_engine

    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": PREPARE_LOCK_KEY})
            conn.commit()
            try:
                yield engine
            finally:
                # Closing the connection releases the lock too, so a failure here must not mask the first.
                with contextlib.suppress(SQLAlchemyError):
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": PREPARE_LOCK_KEY})
                    conn.commit()
    finally:
        engine.dispose()


def _load_demo_if_absent(session: Session, settings: Settings) -> None:
    """Load the demo county unless the county already has a boundary."""
    from gis_platform.models import AdminUnit

    present = session.scalar(
        select(AdminUnit.id)
        .where(AdminUnit.county_code == settings.county_code, AdminUnit.level == "county")
        .limit(1)
    )
    if present is not None:
        echo_progress(f"county {settings.county_code} already loaded; skipping the demo data")
        return
    try:
        from layers.demo import load_demo
    except ModuleNotFoundError as exc:
        if exc.name not in ("layers", "layers.demo"):
            raise
        raise click.ClickException("the demo loader (layers.demo) is not installed; start with --no-demo") from exc
    echo_progress(f"loading the demo county {settings.county_code}…")
    load_demo(session, settings, progress=echo_progress)


def prepare_database(url: str, settings: Settings, *, migrate: bool, demo: bool) -> str:
    """Migrate and load the demo as asked; return the county's display name."""
    from api.health import county_name

    with _prepare_lock(url) as engine:
        if migrate:
            echo_progress("bringing the schema to the latest revision…")
            upgrade_database(url)
        with Session(engine) as session, session.begin():
            if demo:
                _load_demo_if_absent(session, settings)
            name, _ = county_name(session, settings.county_code)
    return name


def _raise_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


@click.command()
@click.option("--host", default=None, help="Address to listen on [default: GIS_HOST or 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port [default: GIS_PORT or 8000].")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Gunicorn workers [default: GIS_WORKERS].")
@click.option("--demo/--no-demo", default=True, show_default=True, help="Load the demo county if it is absent.")
@click.option("--migrate/--no-migrate", default=True, show_default=True, help="Apply database migrations first.")
def serve(host: str | None, port: int | None, workers: int | None, demo: bool, migrate: bool) -> None:
    """Run the platform under gunicorn, starting the local PostGIS when DATABASE_URL is unset."""
    from gis_platform.db import resolve_database_url

    settings = load_settings()
    host = settings.host if host is None else host
    port = settings.port if port is None else port
    workers = settings.workers if workers is None else workers
    level = settings.log_level.upper()
    if not isinstance(logging.getLevelName(level), int):
        raise click.ClickException(f"GIS_LOG_LEVEL: unknown level {settings.log_level!r}")
    check_port_free(host, port)

    master_pid = os.getpid()
    lock = ServeLock(settings.resolved_data_dir / SERVE_LOCK_FILE) if settings.uses_local_cluster else None
    cluster = None
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    try:
        if lock is not None:
            lock.acquire_shared()
        url, cluster = resolve_database_url(settings, progress=echo_progress)
        resolved = settings.model_copy(update={"database_url": url})
        try:
            name = prepare_database(url, resolved, migrate=migrate, demo=demo)
        except OperationalError as exc:
            raise click.ClickException(f"cannot use the database: {first_line(exc.orig or exc)}") from exc
        click.echo(f"{name}数字城管平台 running at {public_url(host, port)}")
        options = {
            "bind": [host_port(host, port)],
            "workers": workers,
            "worker_class": "gthread",
            "threads": GUNICORN_THREADS,
            "timeout": GUNICORN_TIMEOUT_S,
            # Live-event streams never end by themselves; do not hold a shutdown for them.
            "graceful_timeout": 5,
            # Phones and the patrol page reuse connections between reports; a close racing the next
            # request costs the client a retry.
            "keepalive": 5,
            "preload_app": False,
            "proc_name": "gis-platform",
            "loglevel": level.lower(),
            "logconfig_dict": gunicorn_logging(level),
        }
        PlatformServer(resolved, options).run()
    finally:
        # Gunicorn workers are forks of this process and leave through here too; only the master
        # may touch the lock (the workers share its open file description) or the cluster.
        if os.getpid() == master_pid:
            signal.signal(signal.SIGTERM, previous_sigterm)
            _shutdown(lock, cluster)


def _shutdown(lock: ServeLock | None, cluster: Any) -> None:
    """Stop the self-managed cluster if this is the last serve using it; never an external database."""
    if lock is None:
        return
    # A second Ctrl-C or SIGTERM must not cut a clean database shutdown short.
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if cluster is None:
            return
        if lock.try_exclusive():
            echo_progress("stopping the local database…")
            cluster.stop()
        else:
            echo_progress("another serve still uses the local database; leaving it running")
    finally:
        lock.release()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
