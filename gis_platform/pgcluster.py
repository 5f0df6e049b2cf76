"""A private PostgreSQL + PostGIS cluster the platform manages itself when DATABASE_URL is unset.

Layout, with ``home = <GIS_DATA_DIR>/pg``::

    home/.lock          fcntl lock held around init, start, stop and database creation
    home/LOCATION       only when relocated: absolute path of the cluster directory
    <cluster>/data      PGDATA (initdb output; ``gis_platform.conf`` is rewritten on every start)
    <cluster>/run       private unix socket directory (mode 700)
    <cluster>/postgres.log
    <cluster>/port      last port used, preferred again on the next start

``<cluster>`` is ``home`` itself, unless the platform runs as root and the unprivileged service
user cannot traverse to the data directory (for example a checkout under ``/root``); then it is
``/var/lib/gis-platform/clusters/<sha256(data dir)[:16]>`` and ``home/LOCATION`` points to it.

Authentication is ``trust``: the server listens on 127.0.0.1 only and its unix socket sits in a
directory only the service user can enter, so nothing off this machine can reach it. Any process
*on* this machine can still connect over loopback as the superuser ``postgres``; on a shared
multi-user host, point DATABASE_URL at a password-protected PostGIS instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import pwd
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from gis_platform.errors import ConfigurationError

if TYPE_CHECKING:
    from gis_platform.settings import Settings

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

SUPERUSER = "postgres"
FALLBACK_SERVICE_USER = "gisplatform"
RELOCATION_ROOT = Path("/var/lib/gis-platform/clusters")
DEFAULT_PG_MAJOR = 15
START_ATTEMPTS = 3
PG_CTL_TIMEOUT_S = 60
# Appended once to postgresql.conf after initdb; the operator may edit these afterwards.
BASE_CONF = """
# --- added by gis-platform: sized for a small single-purpose server ---
max_connections = 200
shared_buffers = 128MB
fsync = on
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
# Port, listen address and socket directory change per start, so they live in their own file.
include_if_exists = 'gis_platform.conf'
"""


def _noop(_: str) -> None:
    """Ignore a progress message."""


def _quote_conf(value: str) -> str:
    """Quote a string for postgresql.conf."""
    return "'" + value.replace("'", "''") + "'"


def _clean_env() -> dict[str, str]:
    """Return the environment without PG* variables that would redirect initdb or pg_ctl."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _port_free(port: int) -> bool:
    """Return True when 127.0.0.1:port can be bound the way the postmaster binds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # The postmaster sets SO_REUSEADDR, so a port held only by TIME_WAIT sockets is usable.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    """Return a loopback port the kernel considers free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _postmaster_alive(pid: int) -> bool:
    """Return True when pid is a live (non-zombie) postgres process."""
    # pg_ctl status only does kill(pid, 0), which also succeeds for a zombie or for an unrelated
    # process that reused the pid after a crash; /proc tells these apart.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    comm = stat[stat.find("(") + 1 : stat.rfind(")")]
    state = stat[stat.rfind(")") + 2 :].split(" ", 1)[0]
    return state not in ("Z", "X") and comm in ("postgres", "postmaster")


def _is_debian_like() -> bool:
    """Return True on Debian, Ubuntu and their derivatives."""
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return False
    ids: list[str] = []
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key in ("ID", "ID_LIKE"):
            ids.extend(value.strip().strip('"').lower().split())
    return any(i in ("debian", "ubuntu") for i in ids)


def _missing_message(what: str, major: int | None) -> str:
    """Return the short 'cannot start' message for missing PostgreSQL/PostGIS."""
    packages = f"postgresql postgresql-{major or DEFAULT_PG_MAJOR}-postgis-3"
    return (
        f"{what} not found. Install `{packages}` (apt-get install {packages}), "
        "or set DATABASE_URL to an existing PostGIS database, or run `docker compose up`."
    )


def _read_lines(path: Path) -> list[str]:
    """Return a file's lines, or none when it is missing or unreadable."""
    try:
        return path.read_text().splitlines()
    except OSError:
        return []


def _pid_in(lock_file: Path, lines: list[str] | None = None) -> int | None:
    """Return the pid on the first line of a PostgreSQL lock file."""
    lines = _read_lines(lock_file) if lines is None else lines
    try:
        return int(lines[0])
    except (IndexError, ValueError):
        return None  # missing, being written right now, or truncated by a crash


@dataclass(frozen=True)
class PgBinaries:
    """Where one PostgreSQL installation's server programs and shared files live."""

    bindir: Path
    version: str
    major: int
    sharedir: Path

    @property
    def initdb(self) -> str:
        """Return the initdb program path."""
        return str(self.bindir / "initdb")

    @property
    def pg_ctl(self) -> str:
        """Return the pg_ctl program path."""
        return str(self.bindir / "pg_ctl")

    def has_extension(self, name: str) -> bool:
        """Return True when the extension's control file is installed for this version."""
        return (self.sharedir / "extension" / f"{name}.control").is_file()


def _complete_bindir(bindir: Path) -> bool:
    """Return True when bindir holds initdb, pg_ctl and postgres."""
    return all(os.access(bindir / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres"))


def _describe(bindir: Path) -> PgBinaries | None:
    """Return the installation in bindir, or None when it is unusable."""
    try:
        out = subprocess.run(
            [str(bindir / "postgres"), "--version"],
            capture_output=True, text=True, timeout=30, check=True, cwd="/", env=_clean_env(),
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\(PostgreSQL\)\s+((\d+)(?:\.\d+)?)", out)
    if match is None:
        return None
    version, major = match.group(1), int(match.group(2))
    sharedir = Path(f"/usr/share/postgresql/{major}")
    pg_config = bindir / "pg_config"
    if os.access(pg_config, os.X_OK):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            found = subprocess.run(
                [str(pg_config), "--sharedir"],
                capture_output=True, text=True, timeout=30, check=True, cwd="/",
            ).stdout.strip()
            if found:
                sharedir = Path(found)
    return PgBinaries(bindir=bindir, version=version, major=major, sharedir=sharedir)


def find_binaries(pg_bin: Path | None = None) -> PgBinaries | None:
    """Find PostgreSQL server programs: pg_bin, else pg_config --bindir, else the newest Debian one."""
    if pg_bin is not None:
        return _describe(pg_bin) if _complete_bindir(pg_bin) else None
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            configured = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=30, check=True, cwd="/"
            ).stdout.strip()
            if configured:
                candidates.append(Path(configured))
    versioned = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()]
    candidates.extend(sorted(versioned, key=lambda p: int(p.parent.name), reverse=True))
    for bindir in candidates:
        if _complete_bindir(bindir) and (found := _describe(bindir)) is not None:
            return found
    return None


@dataclass(frozen=True)
class _Layout:
    """Paths of one cluster; home holds the lock, root holds the cluster itself."""

    home: Path
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def port_file(self) -> Path:
        return self.root / "port"

    @property
    def pid_file(self) -> Path:
        return self.data / "postmaster.pid"

    @property
    def initialised(self) -> bool:
        return (self.data / "PG_VERSION").is_file()


@dataclass
class LocalCluster:
    """The platform's own PostgreSQL + PostGIS cluster under GIS_DATA_DIR (see the module docstring)."""

    data_dir: Path
    pg_bin: Path | None = None
    auto_install: bool = True
    dbname: str = "gis_platform"
    _binaries: PgBinaries | None = field(default=None, init=False, repr=False)
    _user: str | None = field(default=None, init=False, repr=False)
    _thread_lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)
    _lock_depth: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser().resolve()
        if self.pg_bin is not None:
            self.pg_bin = Path(self.pg_bin).expanduser()

    # ------------------------------------------------------------------ public API

    def ensure(self, progress: Progress | None = None) -> str:
        """Initialise, start and create the database as needed; return its SQLAlchemy URL."""
        emit = progress or _noop
        with self._locked(emit):
            self._start_locked(emit)
            return self._create_database_locked(self.dbname, drop_existing=False, emit=emit)

    def start(self) -> None:
        """Initialise the cluster if needed and start it unless it already runs."""
        with self._locked(_noop):
            self._start_locked(_noop)

    def stop(self) -> bool:
        """Stop the server with a fast shutdown; return True if it was running."""
        with self._locked(_noop):
            layout = self._layout()
            if not self._running(layout):
                return False
            # Stopping must never install packages, so look the programs up without apt.
            binaries = self._binaries or find_binaries(self.pg_bin)
            if binaries is None:
                raise ConfigurationError(_missing_message("PostgreSQL server programs", None))
            result = self._run_as_service(
                [binaries.pg_ctl, "stop", "-D", str(layout.data), "-m", "fast",
                 "-w", "-t", str(PG_CTL_TIMEOUT_S), "-s"],
                timeout=PG_CTL_TIMEOUT_S + 30,
            )
            if result.returncode != 0 and self._running(layout):
                raise ConfigurationError(
                    f"PostgreSQL in {layout.data} did not stop; see {layout.log}",
                    log_detail=result.stdout + result.stderr,
                )
            return True

    def is_running(self) -> bool:
        """Return True when the cluster's postmaster is alive."""
        return self._running(self._layout())

    def status(self) -> dict[str, Any]:
        """Describe the cluster: running, port, directory, pid, version (and log, initialised)."""
        layout = self._layout()
        pid_info = self._read_pid_file(layout)
        running = pid_info is not None and _postmaster_alive(pid_info[0])
        version: str | None = None
        if layout.initialised:
            binaries = self._binaries or find_binaries(self.pg_bin)
            pg_version = (layout.data / "PG_VERSION").read_text().strip()
            # Report the full server version only when it matches the data directory's major.
            version = binaries.version if binaries and str(binaries.major) == pg_version else pg_version
        return {
            "running": running,
            "port": pid_info[1] if running and pid_info else self._recorded_port(layout),
            "directory": str(layout.root),
            "pid": pid_info[0] if running and pid_info else None,
            "version": version,
            "initialised": layout.initialised,
            "log": str(layout.log),
        }

    def url(self, dbname: str | None = None) -> str:
        """Return the SQLAlchemy URL of a database in this cluster."""
        port = self._current_port(self._layout())
        if port is None:
            raise ConfigurationError(
                "the local PostgreSQL cluster has never been started; run `gis-platform db start`"
            )
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{port}/{dbname or self.dbname}"

    def create_database(self, dbname: str, *, drop_existing: bool = False) -> str:
        """Create dbname with postgis and btree_gist (starting the cluster if needed); return its URL."""
        with self._locked(_noop):
            self._start_locked(_noop)
            return self._create_database_locked(dbname, drop_existing=drop_existing, emit=_noop)

    # ------------------------------------------------------------------ locking and layout

    @property
    def home(self) -> Path:
        """Return ``<data_dir>/pg``, where the lock and any LOCATION pointer live."""
        return self.data_dir / "pg"

    @contextlib.contextmanager
    def _locked(self, emit: Progress) -> Iterator[None]:
        """Hold the data directory's lock file; re-entrant within this object."""
        with self._thread_lock:
            if self._lock_depth:
                self._lock_depth += 1
                try:
                    yield
                finally:
                    self._lock_depth -= 1
                return
            self.home.mkdir(parents=True, exist_ok=True)
            # Python opens files close-on-exec, so the postmaster never inherits (and pins) the lock.
            with open(self.home / ".lock", "a+b") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    emit("waiting for another gis-platform process using this cluster…")
                    fcntl.flock(handle, fcntl.LOCK_EX)
                self._lock_depth = 1
                try:
                    yield
                finally:
                    self._lock_depth = 0
                    fcntl.flock(handle, fcntl.LOCK_UN)

    def _layout(self) -> _Layout:
        """Return the cluster's paths, following home/LOCATION when present."""
        pointer = self.home / "LOCATION"
        try:
            target = pointer.read_text().strip()
        except FileNotFoundError:
            return _Layout(home=self.home, root=self.home)
        return _Layout(home=self.home, root=Path(target))

    def _relocated_root(self) -> Path:
        """Return the directory used when the service user cannot reach the data directory."""
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:16]
        return RELOCATION_ROOT / digest

    def _prepare_layout(self) -> _Layout:
        """Decide where the cluster lives and create its directories with the right owner."""
        layout = self._layout()
        user = self._service_user()
        if (
            user is not None
            and not layout.initialised
            and layout.root == self.home
            and not self._user_can_traverse(user, self.data_dir)
        ):
            # Never loosen permissions on the operator's directories; move the cluster instead.
            root = self._relocated_root()
            RELOCATION_ROOT.mkdir(parents=True, exist_ok=True)
            for part in (RELOCATION_ROOT.parent, RELOCATION_ROOT):
                part.chmod(0o755)
            self._write_file(self.home / "LOCATION", f"{root}\n", owned=False)
            layout = _Layout(home=self.home, root=root)
        for directory in (layout.root, layout.socket_dir):
            directory.mkdir(parents=True, exist_ok=True)
            self._own(directory)
            directory.chmod(0o700)
        return layout

    # ------------------------------------------------------------------ users and processes

    def _service_user(self) -> str | None:
        """Return the unprivileged user to run PostgreSQL as, or None to run as ourselves."""
        if os.geteuid() != 0:
            return None
        if self._user is None:
            for name in (SUPERUSER, FALLBACK_SERVICE_USER):
                with contextlib.suppress(KeyError):
                    pwd.getpwnam(name)
                    self._user = name
                    break
            else:
                self._user = self._create_service_user()
        return self._user

    def _create_service_user(self) -> str:
        """Create the fallback system user that owns the cluster."""
        if shutil.which("useradd") is None:
            raise ConfigurationError(
                f"cannot create the system user {FALLBACK_SERVICE_USER!r} (no useradd); create it or "
                "set DATABASE_URL to an existing PostGIS database"
            )
        result = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             FALLBACK_SERVICE_USER],
            capture_output=True, text=True, timeout=60,
        )
        # Exit status 9 means another process created it first.
        if result.returncode not in (0, 9):
            raise ConfigurationError(
                f"could not create the system user {FALLBACK_SERVICE_USER!r}: {result.stderr.strip()}"
            )
        return FALLBACK_SERVICE_USER

    def _own(self, path: Path) -> None:
        """Give path to the service user when running as root."""
        user = self._service_user()
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _write_file(self, path: Path, text: str, *, owned: bool = True) -> None:
        """Replace path atomically, owned by the service user unless owned is False."""
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        if owned:
            self._own(tmp)
        tmp.chmod(0o644)
        tmp.replace(path)

    @staticmethod
    def _user_can_traverse(user: str, directory: Path) -> bool:
        """Return True when user can reach directory (access() checks every parent on the way)."""
        result = subprocess.run(
            ["runuser", "-u", user, "--", "test", "-x", str(directory)],
            capture_output=True, timeout=30, cwd="/",
        )
        return result.returncode == 0

    def _run_as_service(self, argv: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program as the service user and capture its output."""
        user = self._service_user()
        command = ["runuser", "-u", user, "--", *argv] if user else argv
        # cwd "/" because the service user may not be allowed into our working directory.
        return subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd="/", env=_clean_env()
        )

    # ------------------------------------------------------------------ binaries and installation

    def _require_binaries(self, emit: Progress) -> PgBinaries:
        """Return a PostgreSQL with PostGIS, installing it with apt when allowed."""
        if self._binaries is not None:
            return self._binaries
        binaries = find_binaries(self.pg_bin)
        if self._binaries_problem(binaries) and self._may_install(binaries):
            self._apt_install(binaries.major if binaries else None, emit)
            binaries = find_binaries(self.pg_bin)
        problem = self._binaries_problem(binaries)
        if problem or binaries is None:
            raise ConfigurationError(_missing_message(problem or "PostgreSQL", binaries.major if binaries else None))
        self._binaries = binaries
        return binaries

    def _binaries_problem(self, binaries: PgBinaries | None) -> str | None:
        """Return what is missing from an installation, or None when it is usable."""
        if binaries is None:
            where = f" in GIS_PG_BIN={self.pg_bin}" if self.pg_bin else ""
            return f"PostgreSQL server programs (initdb, pg_ctl, postgres){where}"
        if not binaries.has_extension("postgis"):
            return f"PostGIS for PostgreSQL {binaries.major}"
        if not binaries.has_extension("btree_gist"):
            return f"the btree_gist extension for PostgreSQL {binaries.major}"
        return None

    def _may_install(self, binaries: PgBinaries | None) -> bool:
        """Return True when installing packages with apt is allowed and could help."""
        # An explicit GIS_PG_BIN without programs stays broken whatever apt installs.
        if binaries is None and self.pg_bin is not None:
            return False
        return (
            self.auto_install
            and os.geteuid() == 0
            and _is_debian_like()
            and shutil.which("apt-get") is not None
        )

    def _apt_install(self, major: int | None, emit: Progress) -> None:
        """Install PostgreSQL and PostGIS with apt-get, streaming its output to emit."""
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        emit("installing PostgreSQL and PostGIS with apt-get…")
        self._stream(["apt-get", "update"], env, emit)
        nn = major or self._apt_candidate_major()
        packages = ["postgresql", f"postgresql-{nn}-postgis-3"]
        emit(f"apt-get install {' '.join(packages)}…")
        # Wait for a concurrent apt/dpkg run instead of failing at once on its lock.
        self._stream(
            ["apt-get", "install", "-y", "-o", "DPkg::Lock::Timeout=300", *packages], env, emit
        )

    @staticmethod
    def _apt_candidate_major() -> int:
        """Return the PostgreSQL major version the `postgresql` package would install."""
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                ["apt-cache", "policy", "postgresql"], capture_output=True, text=True, timeout=60
            ).stdout
            match = re.search(r"Candidate:\s*(\d+)\+", out)
            if match:
                return int(match.group(1))
        return DEFAULT_PG_MAJOR

    @staticmethod
    def _stream(argv: list[str], env: dict[str, str], emit: Progress) -> None:
        """Run a command, passing each output line to emit; raise if it fails."""
        with subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        ) as proc:
            for line in proc.stdout or ():
                emit(line.rstrip())
        if proc.returncode != 0:
            raise ConfigurationError(
                f"`{' '.join(argv)}` failed (exit {proc.returncode}); install PostgreSQL and PostGIS "
                "yourself, or set DATABASE_URL to an existing PostGIS database"
            )

    # ------------------------------------------------------------------ init and start

    def _start_locked(self, emit: Progress) -> _Layout:
        """Initialise and start the cluster unless it already runs; the caller holds the lock."""
        layout = self._layout()
        if self._running(layout):
            emit(f"using running PostgreSQL on 127.0.0.1:{self._current_port(layout)}")
            return layout
        binaries = self._require_binaries(emit)
        layout = self._prepare_layout()
        if not layout.initialised:
            emit(f"initialising PostgreSQL cluster in {layout.data}…")
            self._initdb(layout, binaries)
        self._check_major(layout, binaries)
        self._launch(layout, binaries, emit)
        return layout

    def _initdb(self, layout: _Layout, binaries: PgBinaries) -> None:
        """Create PGDATA via a temporary directory so a crash never leaves half a cluster."""
        staging = layout.root / "data.initdb"
        if staging.exists():
            shutil.rmtree(staging)
        result = self._run_as_service(
            [binaries.initdb, "-D", str(staging), "-U", SUPERUSER, "--auth=trust",
             "-E", "UTF8", "--locale=C.UTF-8"],
            timeout=600,
        )
        if result.returncode != 0:
            raise ConfigurationError(
                f"initdb failed in {staging}: {(result.stderr.strip().splitlines() or [''])[-1]}",
                log_detail=result.stdout + result.stderr,
            )
        with open(staging / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(BASE_CONF)
        staging.rename(layout.data)

    @staticmethod
    def _check_major(layout: _Layout, binaries: PgBinaries) -> None:
        """Refuse to start a data directory with programs of another major version."""
        data_major = (layout.data / "PG_VERSION").read_text().strip()
        if data_major != str(binaries.major):
            raise ConfigurationError(
                f"the cluster in {layout.data} is PostgreSQL {data_major} but the programs found are "
                f"{binaries.major}; set GIS_PG_BIN to /usr/lib/postgresql/{data_major}/bin or "
                "pg_upgrade the cluster"
            )

    def _launch(self, layout: _Layout, binaries: PgBinaries, emit: Progress) -> None:
        """Start the postmaster on a free loopback port, retrying with a fresh port on failure."""
        self._remove_stale_pid_file(layout)
        preferred = self._recorded_port(layout)
        port = preferred if preferred and _port_free(preferred) else _free_port()
        failure = ""
        for attempt in range(START_ATTEMPTS):
            if attempt:
                # Another program may have taken the port, or children of a killed postmaster
                # may still hold its shared memory for a moment.
                time.sleep(0.5 * attempt)
                self._remove_stale_pid_file(layout)
                port = _free_port()
            self._write_run_conf(layout, port)
            emit(f"starting PostgreSQL on 127.0.0.1:{port}…")
            result = self._run_as_service(
                [binaries.pg_ctl, "start", "-D", str(layout.data), "-l", str(layout.log),
                 "-w", "-t", str(PG_CTL_TIMEOUT_S), "-s"],
                timeout=PG_CTL_TIMEOUT_S + 30,
            )
            if result.returncode == 0 and self._running(layout):
                self._write_file(layout.port_file, f"{port}\n")
                return
            failure = (result.stdout + result.stderr).strip()
            log.warning("PostgreSQL start attempt %d on port %d failed: %s", attempt + 1, port, failure)
        tail = self._log_tail(layout)
        raise ConfigurationError(
            f"PostgreSQL did not start (see {layout.log}): {tail[-1] if tail else failure}",
            log_detail="\n".join([failure, *tail]),
        )

    def _write_run_conf(self, layout: _Layout, port: int) -> None:
        """Write the per-start settings included from postgresql.conf."""
        # An include file rather than pg_ctl -o, because pg_ctl passes -o through a shell and
        # a socket path with spaces or quotes would break there.
        self._write_file(
            layout.data / "gis_platform.conf",
            "# Rewritten by gis-platform on every start; edit postgresql.conf for lasting changes.\n"
            "listen_addresses = '127.0.0.1'\n"
            f"port = {port}\n"
            f"unix_socket_directories = {_quote_conf(str(layout.socket_dir))}\n"
            "unix_socket_permissions = 0700\n",
        )

    def _remove_stale_pid_file(self, layout: _Layout) -> None:
        """Delete postmaster.pid and socket lock files whose process is gone, a zombie, or not PostgreSQL."""
        # postgres itself refuses to start while kill(pid, 0) succeeds, which a zombie (seen here
        # after kill -9: PID 1 reaps late) or a recycled pid makes it do. We hold the lock, and the
        # socket directory is private, so no live postmaster of ours uses these files.
        candidates = [layout.pid_file]
        with contextlib.suppress(OSError):
            candidates.extend(layout.socket_dir.glob(".s.PGSQL.*.lock"))
        for lock_file in candidates:
            pid = _pid_in(lock_file)
            if pid is not None and not _postmaster_alive(pid):
                with contextlib.suppress(FileNotFoundError):
                    lock_file.unlink()

    @staticmethod
    def _log_tail(layout: _Layout, lines: int = 15) -> list[str]:
        """Return the last lines of the server log."""
        try:
            return layout.log.read_text(errors="replace").strip().splitlines()[-lines:]
        except OSError:
            return []

    # ------------------------------------------------------------------ state

    @staticmethod
    def _read_pid_file(layout: _Layout) -> tuple[int, int | None] | None:
        """Return (pid, port) from postmaster.pid, or None when there is none."""
        lines = _read_lines(layout.pid_file)
        pid = _pid_in(layout.pid_file, lines)
        if pid is None:
            return None
        port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
        return pid, port

    def _running(self, layout: _Layout) -> bool:
        """Return True when the postmaster named in postmaster.pid is alive."""
        info = self._read_pid_file(layout)
        return info is not None and _postmaster_alive(info[0])

    @staticmethod
    def _recorded_port(layout: _Layout) -> int | None:
        """Return the port written after the last successful start."""
        try:
            text = layout.port_file.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def _current_port(self, layout: _Layout) -> int | None:
        """Return the running server's port, else the last recorded one."""
        info = self._read_pid_file(layout)
        if info is not None and info[1] is not None and _postmaster_alive(info[0]):
            return info[1]
        return self._recorded_port(layout)

    # ------------------------------------------------------------------ databases

    def _connect(self, dbname: str) -> psycopg.Connection[Any]:
        """Open an autocommit superuser connection to dbname."""
        port = self._current_port(self._layout())
        return psycopg.connect(
            host="127.0.0.1", port=port, user=SUPERUSER, dbname=dbname,
            autocommit=True, connect_timeout=10, application_name="gis-platform-cluster",
        )

    def _create_database_locked(self, dbname: str, *, drop_existing: bool, emit: Progress) -> str:
        """Create dbname and its extensions if missing; the caller holds the lock and started the server."""
        with self._connect("postgres") as conn:
            if drop_existing:
                emit(f"dropping database {dbname}…")
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
            if exists is None:
                emit(f"creating database {dbname} with PostGIS…")
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        with self._connect(dbname) as conn:
            # btree_gist: the schema's exclusion constraints mix equality and geometry/range operators.
            for extension in ("postgis", "btree_gist"):
                conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(extension)))
        return self.url(dbname)


def cluster_from_settings(settings: Settings) -> LocalCluster:
    """Build the local cluster described by the settings."""
    return LocalCluster(
        data_dir=settings.resolved_data_dir,
        pg_bin=settings.pg_bin,
        auto_install=settings.pg_auto_install,
    )
