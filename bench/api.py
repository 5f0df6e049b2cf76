"""Report submission over HTTP on loopback, against a bare gunicorn JSON endpoint measured in the same run.

``python -m bench.api [--requests 2000] [--levels 8,32,64] [--workers 2] [--time-limit 120]``

The platform runs as it is deployed: ``gis-platform serve --no-demo --no-migrate`` (gunicorn, gthread
workers), on the bench database of ``bench.routing`` (``GIS_BENCH_DATABASE_URL`` / ``DATABASE_URL``, else
the private cluster under ``var/bench-cluster``, with the demo county loaded once). A second gunicorn
with the same worker settings serves ``bare_app``, which reads the body and answers ``{"ok": true}``:
the ceiling this machine puts on any Python WSGI endpoint, measured by the same clients.

Clients are threads spread over a few processes (so the client's own GIL is not the limit), one
keep-alive connection each (``http.client``). Each signs in once for a bearer token of the demo
operator, then POSTs its share of a bounded number of reports, each with its own ``Idempotency-Key``, at
its own random point inside the urban subdistricts, with a category drawn from the county's point
categories. Every level is bounded by ``--requests`` and ``--time-limit``. After each level the database
is checked: every case number answered with 201 must exist exactly once, and the cases carrying the
level's keys must number exactly the 201s (nothing lost, nothing duplicated, nothing stored unanswered).

CPU seconds are read from /proc for the client processes, the gunicorn master and its workers, and the
PostgreSQL postmaster and its backends (local cluster only), so the table says where the time went.
The benchmark writes reports into the bench database; they stay there (the case history is append-only).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.routing import COUNTY, ROOT, bench_database

HOST = "127.0.0.1"  # loopback only: the benchmark never listens on or sends to another address
REPORT_PATH = "/api/v1/cases"
RATIO_TARGET = 0.40  # submission throughput vs the bare endpoint, at every level
P95_TARGET_MS = 50.0  # at the highest level
P95_TARGET_CLIENTS = 64
READY_TIMEOUT_S = 90
DEMO_USER, DEMO_PASSWORD = "operator", "Yanggu@2021"  # layers.demo_reference.DEMO_PASSWORD


def bare_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Answer every request with ``{"ok": true}`` after reading its body, as any JSON endpoint must."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    body = b'{"ok": true}'
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _say(message: str) -> None:
    print(f"· {message}", file=sys.stderr, flush=True)


# -- CPU accounting from /proc ------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int, *, reaped: bool) -> float:
    """Return a process's CPU seconds; with ``reaped``, also those of the children it has waited for."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0
    # Fields 14–17 of proc(5), counted from 1 with the command name as field 2.
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime + ((cutime + cstime) if reaped else 0)) / _TICK


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return out


def tree_cpu(pid: int | None) -> float | None:
    """Return the CPU seconds of a process, its live children, and the children it has reaped."""
    if pid is None or not Path(f"/proc/{pid}").exists():
        return None
    return _proc_cpu(pid, reaped=True) + sum(_proc_cpu(c, reaped=True) for c in _children(pid))


def machine_cpu() -> tuple[float, float]:
    """Return (busy, total) CPU seconds of the whole machine since boot."""
    values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # without guest time, already counted in user
    return (total - idle) / _TICK, total / _TICK


def postmaster_pid(engine: Any) -> int | None:
    """Return the PostgreSQL postmaster's pid if it runs on this machine and we may read its pid file."""
    from sqlalchemy import text

    try:
        with engine.connect() as conn:
            data = conn.execute(text("SELECT current_setting('data_directory')")).scalar_one()
        pid = int((Path(data) / "postmaster.pid").read_text().split()[0])
    except Exception:  # not a superuser, another host, unreadable: CPU of the database is then unknown
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def db_counters(engine: Any) -> dict[str, int]:
    """Return the bench database's cumulative sessions opened, commits and rollbacks."""
    from sqlalchemy import text

    with engine.connect() as conn:
        row = conn.execute(text("SELECT sessions, xact_commit, xact_rollback FROM pg_stat_database "
                                "WHERE datname = current_database()")).one()
    # Our own query's session and transaction are counted too; one each is noise at these counts.
    return {"sessions": row[0], "commits": row[1], "rollbacks": row[2]}


# -- servers --------------------------------------------------------------------------------------------


def free_port() -> int:
    """Return a loopback port that is free now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A gunicorn running in a child process: its master pid and port."""

    name: str
    port: int
    proc: subprocess.Popen


@contextmanager
def serving(name: str, argv: list[str], env: dict[str, str], port: int, ready_path: str,
            log_dir: Path) -> Iterator[Server]:
    """Start a gunicorn, wait until ``ready_path`` answers 200, and stop it gracefully afterwards."""
    log = log_dir / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            conn = http.client.HTTPConnection(HOST, port, timeout=5)
            try:
                conn.request("GET", ready_path)
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            finally:
                conn.close()  # also after a poll that timed out while the workers were still starting
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready after {READY_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield Server(name, port, proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # gunicorn's graceful stop; the workers go with the master
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def gunicorn_options(workers: int) -> list[str]:
    """Return the worker settings of ``gis-platform serve`` as gunicorn command-line options."""
    from api.cli import GUNICORN_THREADS, GUNICORN_TIMEOUT_S

    return ["--workers", str(workers), "--worker-class", "gthread", "--threads", str(GUNICORN_THREADS),
            "--timeout", str(GUNICORN_TIMEOUT_S)]


# -- the workload ---------------------------------------------------------------------------------------


def urban_points(engine: Any, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return n distinct points (to 1e-6°) drawn uniformly inside the county's urban subdistricts."""
    import shapely
    from sqlalchemy import text

    with engine.connect() as conn:
        wkb = conn.execute(text("SELECT ST_AsBinary(geom) FROM admin_unit WHERE county_code = :c "
                                "AND level = 'subdistrict'"), {"c": COUNTY}).scalars().all()
    if not wkb:
        raise RuntimeError(f"county {COUNTY} has no subdistricts: is the demo loaded?")
    urban = shapely.union_all(shapely.from_wkb([bytes(b) for b in wkb]))
    # A little inside the edge, so no point lands on a boundary (those are flagged, not typical).
    urban = urban.buffer(-0.0003)
    shapely.prepare(urban)
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = urban.bounds
    seen: set[tuple[int, int]] = set()
    lon, lat = [], []
    while len(lon) < n:
        x = rng.uniform(minx, maxx, 4 * n)
        y = rng.uniform(miny, maxy, 4 * n)
        inside = shapely.contains_xy(urban, x, y)
        for px, py in zip(x[inside], y[inside]):
            key = (round(px * 1e6), round(py * 1e6))
            if key not in seen:
                seen.add(key)
                lon.append(key[0] / 1e6)
                lat.append(key[1] / 1e6)
                if len(lon) == n:
                    break
    return np.array(lon), np.array(lat)


def point_categories(engine: Any) -> list[str]:
    """Return the codes of the county's active point categories."""
    from sqlalchemy import text

    with engine.connect() as conn:
        return list(conn.execute(text(
            "SELECT code FROM category WHERE county_code = :c AND active AND geometry_kind = 'point' ORDER BY code"),
            {"c": COUNTY}).scalars())


def report_bodies(engine: Any, n: int, seed: int) -> list[bytes]:
    """Return n report bodies, each at a different urban point, categories mixed."""
    lon, lat = urban_points(engine, n, seed)
    categories = point_categories(engine)
    picks = np.random.default_rng(seed + 1).integers(0, len(categories), n)
    return [json.dumps({"category": categories[k], "description": f"压测上报 bench report {i}",
                        "geometry": {"type": "Point", "coordinates": [float(x), float(y)]}},
                       ensure_ascii=False).encode() for i, (x, y, k) in enumerate(zip(lon, lat, picks))]


@dataclass
class ClientPlan:
    """What one client process does: its clients' request indices, bodies and keys."""

    port: int
    sign_in: bool
    clients: list[list[int]]
    bodies: dict[int, bytes]
    warm_bodies: list[bytes]  # one per client, at points of their own
    key_prefix: str
    time_limit_s: float
    username: str = DEMO_USER
    password: str = DEMO_PASSWORD


@dataclass
class ClientResult:
    """What one client process measured."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    case_nos: list[str] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    started: float = 0.0
    finished: float = 0.0
    cpu_s: float = 0.0
    timed_out: bool = False
    setup_error: str | None = None


def _sign_in(conn: http.client.HTTPConnection, plan: ClientPlan) -> tuple[str, int | None]:
    if not plan.sign_in:
        return "Bearer " + "x" * 47, None  # same header size as a real token, for a like-for-like request
    body = json.dumps({"username": plan.username, "password": plan.password, "name": "bench.api"})
    conn.request("POST", "/api/v1/auth/tokens", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    payload = json.loads(response.read())
    if response.status != 201:
        raise RuntimeError(f"sign-in as {plan.username} failed: {response.status} {payload}")
    return f"Bearer {payload['token']}", payload["id"]


def _client(plan: ClientPlan, n: int, ready: threading.Barrier, go: threading.Event,
            result: ClientResult, lock: threading.Lock) -> None:
    indices = plan.clients[n]
    conn = http.client.HTTPConnection(HOST, plan.port, timeout=30)
    try:
        auth, token_id = _sign_in(conn, plan)
        headers = {"Content-Type": "application/json", "Authorization": auth}
        # Warm the connection and the worker's lazy imports with one report that is not measured.
        conn.request("POST", REPORT_PATH, body=plan.warm_bodies[n],
                     headers={**headers, "Idempotency-Key": f"{plan.key_prefix}warm-{n}"})
        conn.getresponse().read()
    except Exception as exc:
        with lock:
            result.setup_error = result.setup_error or f"{type(exc).__name__}: {exc}"
        ready.abort()
        return
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    case_nos: list[str] = []
    failures: dict[str, int] = {}
    ready.wait()
    go.wait()
    deadline = time.monotonic() + plan.time_limit_s
    timed_out = False
    for i in indices:
        if time.monotonic() > deadline:
            timed_out = True
            break
        t0 = time.perf_counter()
        try:
            conn.request("POST", REPORT_PATH, body=plan.bodies[i],
                         headers={**headers, "Idempotency-Key": f"{plan.key_prefix}{i}"})
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
            conn.close()
            conn = http.client.HTTPConnection(HOST, plan.port, timeout=30)
            continue
        latencies.append((time.perf_counter() - t0) * 1000)
        statuses[response.status] = statuses.get(response.status, 0) + 1
        if plan.sign_in and response.status == 201:
            case_nos.append(json.loads(data)["case_no"])
    if token_id is not None:
        conn.request("DELETE", f"/api/v1/auth/tokens/{token_id}", headers={"Authorization": auth})
        conn.getresponse().read()
    conn.close()
    with lock:
        result.latencies_ms += latencies
        for status, count in statuses.items():
            result.statuses[status] = result.statuses.get(status, 0) + count
        result.case_nos += case_nos
        for name, count in failures.items():
            result.failures[name] = result.failures.get(name, 0) + count
        result.timed_out |= timed_out


def client_process(plan: ClientPlan, ready: Any, go: Any, results: Any) -> None:
    """Run this process's clients: sign in and warm up, report ready, wait for go, then send and measure."""
    result, lock = ClientResult(), threading.Lock()
    local_ready = threading.Barrier(len(plan.clients) + 1)
    local_go = threading.Event()
    threads = [threading.Thread(target=_client, args=(plan, n, local_ready, local_go, result, lock), daemon=True)
               for n in range(len(plan.clients))]
    for t in threads:
        t.start()
    try:
        local_ready.wait()
    except threading.BrokenBarrierError:
        ready.put(result.setup_error or "a client failed to start")
        return
    ready.put(None)
    go.wait()
    cpu0 = time.process_time()
    result.started = time.monotonic()
    local_go.set()
    for t in threads:
        t.join()
    result.finished = time.monotonic()
    result.cpu_s = time.process_time() - cpu0
    results.put(result)


# -- one level ------------------------------------------------------------------------------------------


@dataclass
class Level:
    """The measurements of one server at one number of concurrent clients."""

    server: str
    clients: int
    requests: int
    ok: int
    errors: int
    seconds: float
    latencies_ms: np.ndarray
    case_nos: list[str]
    statuses: dict[int, int]
    failures: dict[str, int]
    timed_out: bool
    cpu: dict[str, float | None]
    db: dict[str, int]
    lost: int | None = None
    duplicated: int | None = None
    stored: int | None = None

    @property
    def rate(self) -> float:
        """Return completed responses per second."""
        return len(self.latencies_ms) / self.seconds if self.seconds > 0 else 0.0

    def pct(self, q: float) -> float:
        """Return a latency percentile in milliseconds."""
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else float("nan")


def _delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def run_level(server: Server, *, clients: int, requests: int, bodies: list[bytes], warm_bodies: list[bytes],
              key_prefix: str, sign_in: bool, ok_status: int, processes: int, time_limit_s: float,
              pg_pid: int | None = None, engine: Any = None) -> Level:
    """Drive one server with ``clients`` concurrent keep-alive clients and a bounded number of requests.

    Client c sends requests c, c + clients, c + 2·clients, …: the count is fixed in advance, not by time.
    """
    ctx = mp.get_context("spawn")
    procs_n = max(1, min(processes, clients))
    ready, go, results = ctx.Queue(), ctx.Event(), ctx.Queue()
    procs = []
    for p in range(procs_n):
        mine = list(range(p, clients, procs_n))
        part = [list(range(c, requests, clients)) for c in mine]
        plan = ClientPlan(port=server.port, sign_in=sign_in, clients=part,
                          bodies={i: bodies[i] for idx in part for i in idx},
                          warm_bodies=[warm_bodies[c] for c in mine], key_prefix=key_prefix,
                          time_limit_s=time_limit_s)
        proc = ctx.Process(target=client_process, args=(plan, ready, go, results), daemon=True)
        proc.start()
        procs.append(proc)
    problems = [ready.get(timeout=300) for _ in procs]
    if any(problems):
        go.set()
        for proc in procs:
            proc.join(timeout=30)
        raise RuntimeError(f"{server.name}: clients could not start: {next(p for p in problems if p)}")
    server_cpu0, pg_cpu0 = tree_cpu(server.proc.pid), tree_cpu(pg_pid)
    db0 = db_counters(engine) if engine is not None else None
    busy0, total0 = machine_cpu()
    t0 = time.monotonic()
    go.set()
    parts = [results.get(timeout=time_limit_s + 120) for _ in procs]
    seconds = max(p.finished for p in parts) - t0
    busy1, total1 = machine_cpu()
    cpu = {"server": _delta(server_cpu0, tree_cpu(server.proc.pid)), "postgres": _delta(pg_cpu0, tree_cpu(pg_pid)),
           "clients": sum(p.cpu_s for p in parts)}
    db = {k: v - db0[k] for k, v in db_counters(engine).items()} if db0 is not None else {}
    for proc in procs:
        proc.join(timeout=30)
    cpu["machine busy"] = busy1 - busy0
    cpu["machine capacity"] = total1 - total0
    statuses: dict[int, int] = {}
    failures: dict[str, int] = {}
    for p in parts:
        for s, n in p.statuses.items():
            statuses[s] = statuses.get(s, 0) + n
        for s, n in p.failures.items():
            failures[s] = failures.get(s, 0) + n
    latencies = np.array([x for p in parts for x in p.latencies_ms])
    ok = statuses.get(ok_status, 0)
    return Level(server=server.name, clients=clients, requests=requests, ok=ok,
                 errors=sum(statuses.values()) - ok + sum(failures.values()), seconds=seconds,
                 latencies_ms=latencies, case_nos=[c for p in parts for c in p.case_nos], statuses=statuses,
                 failures=failures, timed_out=any(p.timed_out for p in parts), cpu=cpu, db=db)


def check_cases(engine: Any, level: Level, key_prefix: str) -> None:
    """Count lost, duplicated and unanswered cases of a level in the database."""
    from sqlalchemy import text

    answered = level.case_nos
    with engine.connect() as conn:
        found = dict(conn.execute(text(
            'SELECT case_no, count(*) FROM "case" WHERE county_code = :c AND case_no = ANY(:nos) GROUP BY case_no'),
            {"c": COUNTY, "nos": answered}).all())
        rows, keys = conn.execute(text(
            'SELECT count(*), count(DISTINCT idempotency_key) FROM "case" '
            "WHERE county_code = :c AND starts_with(idempotency_key, :p) AND NOT starts_with(idempotency_key, :w)"),
            {"c": COUNTY, "p": key_prefix, "w": f"{key_prefix}warm-"}).one()
    level.lost = len(set(answered) - set(found))
    level.duplicated = (sum(n - 1 for n in found.values()) + (len(answered) - len(set(answered)))
                        + (rows - keys))
    level.stored = rows


# -- the run --------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Start both servers, drive every level against each, check the database, print and write the table."""
    from sqlalchemy import create_engine, text

    from gis_platform.cli import upgrade_database

    levels = [int(x) for x in args.levels.split(",")]
    url, started = bench_database()
    upgrade_database(url)  # the app under test expects the schema at head
    engine = create_engine(url)
    run_id = uuid.uuid4().hex[:8]
    seed = int(run_id, 16)
    results: list[Level] = []
    facts: dict[str, str] = {}
    try:
        with engine.connect() as conn:
            facts["PostgreSQL"] = conn.execute(text("SHOW server_version")).scalar_one()
            before = conn.execute(text('SELECT count(*) FROM "case" WHERE county_code = :c'),
                                  {"c": COUNTY}).scalar_one()
        facts["cases in the county before the run"] = f"{before:,}"
        pg_pid = postmaster_pid(engine)
        per_level = args.requests + max(levels)  # the measured reports and one warm-up per client
        _say(f"making {per_level * len(levels):,} report bodies at distinct urban points…")
        bodies = report_bodies(engine, per_level * len(levels), seed)
        bin_dir = Path(sys.executable).parent
        with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
            tmp_dir = Path(tmp)
            env = {**os.environ, "DATABASE_URL": url, "GIS_DATA_DIR": str(tmp_dir), "GIS_COUNTY_CODE": COUNTY,
                   "GIS_LOG_LEVEL": "WARNING", "GIS_WORKERS": str(args.workers), "GIS_HOST": HOST}
            platform_port, bare_port = free_port(), free_port()
            platform_argv = [str(bin_dir / "gis-platform"), "serve", "--no-demo", "--no-migrate", "--host", HOST,
                             "--port", str(platform_port), "--workers", str(args.workers)]
            bare_argv = [sys.executable, "-m", "gunicorn", "--chdir", str(ROOT), "--bind", f"{HOST}:{bare_port}",
                         *gunicorn_options(args.workers), "--log-level", "warning", "bench.api:bare_app"]
            for n, clients in enumerate(levels):
                share = bodies[n * per_level:n * per_level + args.requests]
                warm = bodies[n * per_level + args.requests:(n + 1) * per_level]
                with serving("bare", bare_argv, env, bare_port, "/", tmp_dir) as bare:
                    _say(f"bare endpoint, {clients} clients, {args.requests:,} requests…")
                    results.append(run_level(bare, clients=clients, requests=args.requests, bodies=share,
                                             warm_bodies=warm, key_prefix=f"bare-{run_id}-{clients}-", sign_in=False, ok_status=200,
                                             processes=args.client_processes, time_limit_s=args.time_limit))
                with serving("platform", platform_argv, env, platform_port, "/api/v1/health", tmp_dir) as app:
                    _say(f"report submission, {clients} clients, {args.requests:,} requests…")
                    prefix = f"bench-{run_id}-{clients}-"
                    level = run_level(app, clients=clients, requests=args.requests, bodies=share,
                                      warm_bodies=warm, key_prefix=prefix,
                                      sign_in=True, ok_status=201, processes=args.client_processes,
                                      time_limit_s=args.time_limit, pg_pid=pg_pid, engine=engine)
                    check_cases(engine, level, prefix)
                    results.append(level)
                    _say(f"  {level.rate:,.0f} req/s, p95 {level.pct(95):.1f} ms, statuses {level.statuses}")
    finally:
        engine.dispose()
        if started is not None and not args.keep_running:
            _say("stopping the bench cluster this run started")
            started.stop()
    facts["run id (Idempotency-Key prefix)"] = f"bench-{run_id}-"
    facts["gunicorn"] = f"{args.workers} workers × gthread, {' '.join(gunicorn_options(args.workers)[4:6])}"
    facts["client processes"] = str(args.client_processes)
    report, missed = render(results, facts, args)
    print(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report, encoding="utf-8")
    _say(f"written {out}")
    return 1 if missed else 0


def verdicts(results: list[Level]) -> list[tuple[str, str, str, bool]]:
    """Return (target, measured, wanted, met) for every target of the benchmark."""
    bare = {r.clients: r for r in results if r.server == "bare"}
    out = []
    for r in results:
        if r.server != "platform":
            continue
        ratio = r.rate / bare[r.clients].rate if r.clients in bare and bare[r.clients].rate else 0.0
        out.append((f"throughput vs bare, {r.clients} clients", f"{ratio:.0%}", f"≥ {RATIO_TARGET:.0%}",
                    ratio >= RATIO_TARGET))
        if r.clients == P95_TARGET_CLIENTS:
            out.append((f"p95 at {r.clients} clients", f"{r.pct(95):.1f} ms", f"≤ {P95_TARGET_MS:g} ms",
                        r.pct(95) <= P95_TARGET_MS))
        out.append((f"lost / duplicated / unanswered rows, {r.clients} clients",
                    f"{r.lost} / {r.duplicated} / {(r.stored or 0) - r.ok}", "0 / 0 / 0",
                    r.lost == 0 and r.duplicated == 0 and r.stored == r.ok))
    return out


def render(results: list[Level], facts: dict[str, str], args: argparse.Namespace) -> tuple[str, bool]:
    """Return the Markdown report and whether any target was missed."""
    load = os.getloadavg()
    bare = {r.clients: r for r in results if r.server == "bare"}
    lines = [
        f"## HTTP report-submission benchmark ({datetime.now().astimezone():%Y-%m-%d %H:%M %Z})",
        "",
        f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} "
        f"at the end; Python {platform.python_version()}, PostgreSQL {facts.pop('PostgreSQL', '?')}; loopback "
        f"{HOST}; {args.requests:,} requests per level, time limit {args.time_limit:g} s per level.",
        "",
        "| server | clients | requests | ok | errors | seconds | req/s | p50 ms | p95 ms | p99 ms | lost | duplicated "
        "| rows = 201s | vs bare |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in results:
        platform_row = r.server == "platform"
        ratio = r.rate / bare[r.clients].rate if platform_row and r.clients in bare else None
        lines.append(
            f"| {'report POST' if platform_row else 'bare JSON'} | {r.clients} | {len(r.latencies_ms):,} | {r.ok:,} "
            f"| {r.errors:,} | {r.seconds:.2f} | {r.rate:,.0f} | {r.pct(50):.1f} | {r.pct(95):.1f} "
            f"| {r.pct(99):.1f} | {'' if r.lost is None else r.lost} | {'' if r.duplicated is None else r.duplicated} "
            f"| {'' if r.stored is None else ('yes' if r.stored == r.ok else f'no ({r.stored:,} rows)')} "
            f"| {'' if ratio is None else f'{ratio:.0%}'} |")
    lines += ["", "CPU seconds per 1,000 requests (where the time went; machine = all processes on this host):", "",
              "| server | clients | gunicorn | PostgreSQL | clients | machine busy | machine busy % "
              "| DB sessions opened | DB commits per request |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        per_k = 1000 / max(1, len(r.latencies_ms))

        def cell(v: float | None, k: float = per_k) -> str:
            return "n/a" if v is None else f"{v * k:.2f}"

        busy = r.cpu["machine busy"] / r.cpu["machine capacity"] if r.cpu["machine capacity"] else 0
        commits = f"{r.db['commits'] / max(1, len(r.latencies_ms)):.1f}" if "commits" in r.db else "–"
        lines.append(f"| {'report POST' if r.server == 'platform' else 'bare JSON'} | {r.clients} "
                     f"| {cell(r.cpu['server'])} | {cell(r.cpu['postgres']) if r.server == 'platform' else '–'} "
                     f"| {cell(r.cpu['clients'])} | {cell(r.cpu['machine busy'])} | {busy:.0%} "
                     f"| {r.db.get('sessions', '–')} | {commits} |")
    odd = [f"{r.server} {r.clients}: statuses {r.statuses}, failures {r.failures}"
           + (" (time limit hit)" if r.timed_out else "") for r in results if r.errors or r.timed_out]
    if odd:
        lines += ["", "Errors: " + "; ".join(odd)]
    lines += ["", "| target | measured | wanted | |", "|---|---:|---:|---|"]
    checks = verdicts(results)
    lines += [f"| {name} | {got} | {want} | {'met' if ok else '**MISSED**'} |" for name, got, want, ok in checks]
    lines += ["", "| fact | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in facts.items()]
    missed = [name for name, _, _, ok in checks if not ok]
    lines += ["", ("Targets missed: " + ", ".join(missed)) if missed else "All targets met."]
    return "\n".join(lines) + "\n", bool(missed)


def main(argv: list[str] | None = None) -> int:
    """Parse options and run the HTTP benchmark."""
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per level and server")
    parser.add_argument("--levels", default="8,32,64", help="concurrent clients, comma-separated")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers for both servers")
    parser.add_argument("--client-processes", type=int, default=2, help="processes the clients are spread over")
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds per level before clients stop")
    parser.add_argument("--keep-running", action="store_true", help="leave the bench cluster running")
    parser.add_argument("--out", default=str(ROOT / "var" / "bench" / "api.md"))
    # `python -m bench` passes every benchmark the same options: ignore the other benchmarks' ones.
    args, ignored = parser.parse_known_args(argv)
    if ignored:
        _say(f"bench.api ignores {' '.join(ignored)}")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
