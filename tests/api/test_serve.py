"""``gis-platform serve`` end to end: the local cluster, gunicorn, and a clean shutdown."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gis_platform.pgcluster import LocalCluster

pytestmark = pytest.mark.slow

STARTUP_TIMEOUT_S = 60
EXIT_TIMEOUT_S = 60
WORKERS = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _command() -> list[str]:
    script = Path(sys.executable).with_name("gis-platform")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from gis_platform.cli import main; main()"]


@dataclass
class Serve:
    """One ``gis-platform serve`` subprocess and the files its output goes to."""

    proc: subprocess.Popen[bytes]
    port: int
    out: Path
    err: Path

    def logs(self) -> str:
        return f"--- stdout\n{self.out.read_text()}\n--- stderr\n{self.err.read_text()}"

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, dict(exc.headers), exc.read()

    def wait_healthy(self) -> dict[str, str]:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"serve exited with {self.proc.returncode}\n{self.logs()}")
            try:
                status, headers, _ = self.get("/api/v1/health")
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                status, headers = 0, {}
            if status == 200:
                return headers
            time.sleep(0.3)
        pytest.fail(f"serve not healthy within {STARTUP_TIMEOUT_S} s\n{self.logs()}")

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve did not exit after SIGTERM\n{self.logs()}")

    def children(self) -> list[int]:
        """Return the pids whose parent is the serve process (its gunicorn workers)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                found.append(int(stat.parent.name))
        return found


@pytest.fixture()
def data_dir() -> Iterator[Path]:
    """A data directory with no cluster yet; any cluster left running is stopped afterwards."""
    # World-traversable, so a cluster started as root needs no relocation out of the tmp dir.
    path = Path(tempfile.mkdtemp(prefix="gis-serve-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        LocalCluster(data_dir=path).stop()
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture()
def start(data_dir: Path, tmp_path: Path) -> Iterator:
    """Start ``gis-platform serve --no-demo`` on a free port against the data dir's local cluster."""
    started: list[Serve] = []
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "GIS_DATABASE_URL")}
    env.update(GIS_DATA_DIR=str(data_dir), GIS_HOST="127.0.0.1", GIS_WORKERS=str(WORKERS))

    def _start(*extra: str, port: int | None = None) -> Serve:
        port = port or _free_port()
        n = len(started)
        out, err = tmp_path / f"serve{n}.out", tmp_path / f"serve{n}.err"
        with open(out, "wb") as out_fh, open(err, "wb") as err_fh:
            proc = subprocess.Popen(
                [*_command(), "serve", "--no-demo", "--port", str(port), *extra],
                env=env, stdout=out_fh, stderr=err_fh, cwd=tmp_path,
            )
        serve = Serve(proc, port, out, err)
        started.append(serve)
        return serve

    try:
        yield _start
    finally:
        for serve in started:
            if serve.proc.poll() is None:
                serve.proc.kill()
            serve.proc.wait()


def test_serve_runs_gunicorn_and_stops_its_cluster(start, data_dir: Path) -> None:
    serve = start()
    headers = serve.wait_healthy()
    assert headers["Server"].startswith("gunicorn")
    assert len(serve.children()) == WORKERS
    assert f"running at http://127.0.0.1:{serve.port}/" in serve.out.read_text()
    cluster = LocalCluster(data_dir=data_dir)
    assert cluster.is_running()

    status, _, body = serve.get("/")
    assert status == 200 and "阳谷" in body.decode()

    assert serve.terminate() == 0, serve.logs()
    assert not cluster.is_running()
    err = serve.err.read_text()
    assert "stopping the local database" in err
    assert "Traceback" not in err


def test_second_serve_keeps_the_cluster_alive(start, data_dir: Path) -> None:
    first = start()
    first.wait_healthy()
    second = start()
    second.wait_healthy()
    cluster = LocalCluster(data_dir=data_dir)

    assert first.terminate() == 0, first.logs()
    assert cluster.is_running()
    assert "another serve still uses the local database" in first.err.read_text()
    status, _, _ = second.get("/api/v1/health")
    assert status == 200

    assert second.terminate() == 0, second.logs()
    assert not cluster.is_running()


def test_port_in_use_is_a_clear_error(start) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        serve = start(port=busy.getsockname()[1])
        assert serve.proc.wait(timeout=EXIT_TIMEOUT_S) != 0
    err = serve.err.read_text()
    assert "already in use" in err
    assert "Traceback" not in err
