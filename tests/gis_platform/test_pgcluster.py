"""Tests for the self-managed PostgreSQL + PostGIS cluster, against real PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from gis_platform.errors import ConfigurationError
from gis_platform.pgcluster import RELOCATION_ROOT, LocalCluster, find_binaries

REPO = Path(__file__).resolve().parents[2]


def traversable_dir(prefix: str) -> Path:
    """Create a scratch directory the service user can enter."""
    # pytest's tmp_path lives under /tmp/pytest-of-<user>, which pytest makes mode 700; as root
    # that would force every cluster into the relocated directory, so build our own here.
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    """Open an autocommit connection from a SQLAlchemy URL."""
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def postmasters(data: Path) -> list[int]:
    """Return the pids of live postmasters serving the data directory."""
    target = os.path.realpath(data)
    found: list[int] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().decode().split("\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z" or Path(argv[0]).name != "postgres" or "-D" not in argv[:-1]:
            continue
        if os.path.realpath(argv[argv.index("-D") + 1]) == target:
            found.append(int(proc.name))
    return found


def wait_until_stopped(cluster: LocalCluster, timeout: float = 5.0) -> None:
    """Wait for the postmaster to disappear."""
    deadline = time.monotonic() + timeout
    while cluster.is_running() and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """Yield a started cluster shared by the tests of this module."""
    base = traversable_dir("gis-pgcluster-")
    local = LocalCluster(base / "data")
    local.ensure()
    yield local
    local.stop()
    shutil.rmtree(base)


@pytest.fixture
def fresh_dir() -> Iterator[Path]:
    """Yield a data directory for a cluster of the test's own, stopping it afterwards."""
    base = traversable_dir("gis-pgcluster-fresh-")
    yield base / "data"
    LocalCluster(base / "data").stop()
    shutil.rmtree(base)


def test_ensure_creates_cluster_with_postgis(cluster: LocalCluster) -> None:
    messages: list[str] = []
    url = cluster.ensure(progress=messages.append)

    assert url == f"postgresql+psycopg://postgres@127.0.0.1:{cluster.status()['port']}/gis_platform"
    assert messages and messages[0].startswith("using running PostgreSQL on 127.0.0.1:")
    with connect(url) as conn:
        assert conn.execute("SELECT postgis_version()").fetchone() is not None
        extensions = {row[0] for row in conn.execute("SELECT extname FROM pg_extension")}
        assert {"postgis", "btree_gist"} <= extensions
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        socket_dir = conn.execute("SHOW unix_socket_directories").fetchone()
    assert socket_dir == (str(cluster.data_dir / "pg" / "run"),)
    assert (cluster.data_dir / "pg" / "data" / "PG_VERSION").is_file()
    assert not (cluster.data_dir / "pg" / "LOCATION").exists()


def test_status_describes_running_cluster(cluster: LocalCluster) -> None:
    status = cluster.status()

    assert status["running"] is True
    assert status["directory"] == str(cluster.data_dir / "pg")
    assert status["pid"] in postmasters(cluster.data_dir / "pg" / "data")
    binaries = find_binaries()
    assert binaries is not None
    assert status["version"] == binaries.version
    assert int((cluster.data_dir / "pg" / "port").read_text()) == status["port"]


def test_second_instance_reuses_running_cluster(cluster: LocalCluster) -> None:
    before = cluster.status()

    url = LocalCluster(cluster.data_dir).ensure()

    assert url == cluster.url()
    assert cluster.status()["pid"] == before["pid"]
    assert postmasters(cluster.data_dir / "pg" / "data") == [before["pid"]]


def test_create_database_drop_existing_starts_empty(cluster: LocalCluster) -> None:
    url = cluster.create_database("gis_scratch")
    with connect(url) as conn:
        conn.execute("CREATE TABLE leftover (id int)")

    again = cluster.create_database("gis_scratch", drop_existing=True)

    assert again == cluster.url("gis_scratch")
    with connect(again) as conn:
        assert conn.execute("SELECT to_regclass('leftover')").fetchone() == (None,)
        assert conn.execute("SELECT ST_AsText(ST_Point(1, 2))").fetchone() == ("POINT(1 2)",)


def test_stop_then_ensure_keeps_data(cluster: LocalCluster) -> None:
    with connect(cluster.url()) as conn:
        conn.execute("CREATE TABLE kept (name text)")
        conn.execute("INSERT INTO kept VALUES ('survives restart')")
    port = cluster.status()["port"]

    assert cluster.stop() is True
    assert cluster.is_running() is False
    assert cluster.stop() is False
    assert postmasters(cluster.data_dir / "pg" / "data") == []
    url = cluster.ensure()

    assert cluster.status()["port"] == port  # still free, so preferred again
    with connect(url) as conn:
        assert conn.execute("SELECT name FROM kept").fetchall() == [("survives restart",)]


def test_ensure_recovers_after_kill_9(cluster: LocalCluster) -> None:
    with connect(cluster.url()) as conn:
        conn.execute("CREATE TABLE crash_safe (n int)")
        conn.execute("INSERT INTO crash_safe VALUES (42)")
    old_pid = cluster.status()["pid"]

    os.kill(old_pid, signal.SIGKILL)
    wait_until_stopped(cluster)
    assert cluster.is_running() is False
    assert (cluster.data_dir / "pg" / "data" / "postmaster.pid").exists()  # stale
    url = cluster.ensure()

    new_pid = cluster.status()["pid"]
    assert new_pid != old_pid
    assert postmasters(cluster.data_dir / "pg" / "data") == [new_pid]
    with connect(url) as conn:
        assert conn.execute("SELECT n FROM crash_safe").fetchall() == [(42,)]


def test_concurrent_ensure_from_two_processes_starts_one_postmaster(fresh_dir: Path) -> None:
    script = (
        "import sys; from pathlib import Path; from gis_platform.pgcluster import LocalCluster; "
        "print(LocalCluster(Path(sys.argv[1])).ensure())"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(fresh_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        )
        for _ in range(2)
    ]
    results = [proc.communicate(timeout=120) for proc in procs]

    assert [proc.returncode for proc in procs] == [0, 0], results
    urls = {out.strip() for out, _ in results}
    assert len(urls) == 1
    assert len(postmasters(fresh_dir / "pg" / "data")) == 1
    with connect(urls.pop()) as conn:
        assert conn.execute("SELECT postgis_version()").fetchone() is not None


@pytest.mark.skipif(os.geteuid() != 0, reason="relocation only happens when running as root")
def test_relocates_cluster_out_of_non_traversable_dir() -> None:
    private = Path(tempfile.mkdtemp(prefix="gis-pgcluster-private-"))  # mode 700, owned by root
    data_dir = private / "data"
    relocated = RELOCATION_ROOT / hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    local = LocalCluster(data_dir)
    try:
        url = local.ensure()

        assert (data_dir / "pg" / "LOCATION").read_text().strip() == str(relocated)
        assert local.status()["directory"] == str(relocated)
        assert (relocated / "data" / "PG_VERSION").is_file()
        assert oct(private.stat().st_mode & 0o777) == oct(0o700)  # left as the operator made it
        with connect(url) as conn:
            assert conn.execute("SELECT postgis_version()").fetchone() is not None
        assert LocalCluster(data_dir).ensure() == url
        assert len(postmasters(relocated / "data")) == 1
    finally:
        local.stop()
        shutil.rmtree(relocated, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)


def test_missing_binaries_raise_configuration_error(tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    local = LocalCluster(tmp_path / "data", pg_bin=empty_bin, auto_install=False)

    with pytest.raises(ConfigurationError) as caught:
        local.ensure()

    message = str(caught.value)
    assert "postgresql-" in message
    assert "DATABASE_URL" in message
    assert local.stop() is False  # safe without programs when nothing runs
    assert local.status()["running"] is False
