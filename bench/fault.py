"""Load and fault: patrollers keep reporting while the app's PostgreSQL is stopped and started again.

``python -m bench.fault [--reports 10000] [--clients 64] [--outage 4] [--time-limit 1200]``
(or ``python -m bench fault``)

The platform runs as deployed (``gis-platform serve --no-demo --no-migrate``, gunicorn gthread workers)
on loopback, against a PostgreSQL cluster of its own under ``var/bench-fault-cluster`` (never the test
suite's or another benchmark's: this one gets restarted), loaded with the demo county once and reused.
``DATABASE_URL`` / ``GIS_BENCH_DATABASE_URL`` are ignored, since the benchmark must be able to restart
the server.

Each simulated patroller holds the bearer token of one of the county's patroller accounts (signed in
once per account before the run: scrypt sign-ins are not what is measured) and submits its share of a
fixed number of reports, each at its own point inside the county, with a real point category. Like
the patrol page, it keeps one ``Idempotency-Key`` per report and retries on timeouts, connection errors
and 5xx answers, waiting what ``Retry-After`` asks (capped, with jitter). When a set share of the
reports has been accepted, PostgreSQL is stopped (``pg_ctl stop -m fast``), left down for a few seconds,
and started again on the same port; a probe records the moment it accepts connections again.

Afterwards the database is checked: every report answered 201 (or 200 for a replay) is stored exactly
once, under its key and with the case id it was answered with; every stored case has its one 'report'
event and its routing; nothing carries the run's keys that was never answered. The answers are counted:
during the outage the API must answer 503 with ``Retry-After``, never another 5xx, and be back within
``--recovery-target`` seconds of PostgreSQL accepting connections. The command is bounded in requests
(``--reports``, ``--max-attempts``) and in time (``--time-limit`` for the clients, a hard alarm for the
whole run) and stops by itself; it writes a Markdown table to ``var/bench/fault.md``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import platform
import random
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.api import HOST, REPORT_PATH, free_port, serving
from bench.routing import COUNTY, METRIC_CRS, ROOT

FAULT_DATA_DIR = ROOT / "var" / "bench-fault-cluster"
FAULT_DBNAME = "gis_bench_fault"
DEMO_PASSWORD = "Yanggu@2021"  # layers.demo_reference.DEMO_PASSWORD
Attempt = tuple[float, float, int | str, str | None]  # sent, answered (monotonic s), status or error, Retry-After


def _say(message: str) -> None:
    print(f"· {message}", file=sys.stderr, flush=True)


# -- the workload ---------------------------------------------------------------------------------------


def county_points(engine: Any, county: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return n distinct points (to 1e-6°) drawn uniformly inside the county's outline."""
    import shapely
    from sqlalchemy import text

    with engine.connect() as conn:
        wkb = conn.execute(text("SELECT ST_AsBinary(geom) FROM admin_unit WHERE county_code = :c AND level = 'county'"),
                           {"c": county}).scalars().all()
    if not wkb:
        raise RuntimeError(f"county {county} has no outline: is it loaded?")
    # A little inside the edge: a point outside the county is refused, which is not what is measured here.
    outline = shapely.union_all(shapely.from_wkb([bytes(b) for b in wkb])).buffer(-0.0005)
    shapely.prepare(outline)
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = outline.bounds
    seen: set[tuple[int, int]] = set()
    while len(seen) < n:
        x, y = rng.uniform(minx, maxx, 2 * n), rng.uniform(miny, maxy, 2 * n)
        inside = shapely.contains_xy(outline, x, y)
        for px, py in zip(x[inside], y[inside]):
            seen.add((round(px * 1e6), round(py * 1e6)))
            if len(seen) == n:
                break
    keys = sorted(seen)
    rng.shuffle(keys)
    return np.array([k[0] / 1e6 for k in keys]), np.array([k[1] / 1e6 for k in keys])


def report_bodies(engine: Any, county: str, n: int, seed: int, tag: str) -> list[bytes]:
    """Return n report bodies at distinct points of the county, with its active point categories mixed."""
    from sqlalchemy import text

    with engine.connect() as conn:
        categories = list(conn.execute(text(
            "SELECT code FROM category WHERE county_code = :c AND active AND geometry_kind = 'point' ORDER BY code"),
            {"c": county}).scalars())
    if not categories:
        raise RuntimeError(f"county {county} has no active point categories")
    lon, lat = county_points(engine, county, n, seed)
    picks = np.random.default_rng(seed + 1).integers(0, len(categories), n)
    return [json.dumps({"category": categories[k], "description": f"故障压测上报 fault bench {tag}-{i}",
                        "geometry": {"type": "Point", "coordinates": [float(x), float(y)]}},
                       ensure_ascii=False).encode() for i, (x, y, k) in enumerate(zip(lon, lat, picks))]


def patroller_accounts(engine: Any, county: str) -> list[str]:
    """Return the usernames of the county's active patrollers."""
    from sqlalchemy import text

    with engine.connect() as conn:
        return list(conn.execute(text(
            "SELECT username FROM app_user WHERE county_code = :c AND role = 'patroller' AND is_active "
            "ORDER BY username"), {"c": county}).scalars())


# -- the patrollers -------------------------------------------------------------------------------------


@dataclass
class Plan:
    """What one client process does: its patrollers (account and report indices) and their reports."""

    port: int
    patrollers: list[tuple[str, list[int]]]  # Authorization header, report indices
    bodies: dict[int, bytes]
    key_prefix: str
    deadline: float  # time.monotonic(): no attempt starts after it (CLOCK_MONOTONIC is system-wide)
    request_timeout_s: float
    retry_cap_s: float
    max_attempts: int


@dataclass
class Report:
    """One report's fate: its final answer, the case it was answered with, and every attempt."""

    index: int
    final: int | str | None = None  # HTTP status of the last answer, or "gave up"
    case_id: int | None = None
    case_no: str | None = None
    ids_seen: set[int] = field(default_factory=set)  # case ids of every 2xx answer (a replay must agree)
    attempts: list[Attempt] = field(default_factory=list)


@dataclass
class ProcessResult:
    """What one client process brings back."""

    reports: list[Report] = field(default_factory=list)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: not something this API sends; fall back to the client's own backoff


def sign_in(port: int, username: str, password: str) -> tuple[str, int]:
    """Return a bearer token header for an account and the token's id, retrying transient failures."""
    body = json.dumps({"username": username, "password": password, "name": "bench.fault"})
    last = ""
    for attempt in range(5):
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        try:
            conn.request("POST", "/api/v1/auth/tokens", body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            payload = json.loads(response.read() or b"{}")
            if response.status == 201:
                return f"Bearer {payload['token']}", payload["id"]
            last = f"{response.status} {payload}"
            if response.status < 500:
                break
        except (OSError, http.client.HTTPException, ValueError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()
        time.sleep(0.5 * (attempt + 1))
    raise RuntimeError(f"sign-in as {username} failed: {last}")


def revoke(port: int, auth: str, token_id: int) -> None:
    """Revoke a bearer token, so none stays valid in the database after the run; never raise."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("DELETE", f"/api/v1/auth/tokens/{token_id}", headers={"Authorization": auth})
        conn.getresponse().read()
    except (OSError, http.client.HTTPException):
        pass
    finally:
        conn.close()


def _submit(plan: Plan, index: int, auth: str, conn: http.client.HTTPConnection, rng: random.Random,
            progress: Any) -> tuple[Report, http.client.HTTPConnection]:
    """Submit one report until it gets an answer other than 5xx, as the patrol page does."""
    report = Report(index)
    headers = {"Content-Type": "application/json", "Authorization": auth,
               "Idempotency-Key": f"{plan.key_prefix}{index}"}
    backoff = 0.1
    while True:
        if len(report.attempts) >= plan.max_attempts or time.monotonic() > plan.deadline:
            report.final = "gave up"
            return report, conn
        t0 = time.monotonic()
        try:
            conn.request("POST", REPORT_PATH, body=plan.bodies[index], headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out, closed early
            report.attempts.append((t0, time.monotonic(), type(exc).__name__, None))
            conn.close()
            conn = http.client.HTTPConnection(HOST, plan.port, timeout=plan.request_timeout_s)
            time.sleep(min(backoff, plan.retry_cap_s) * rng.uniform(0.5, 1.0))
            backoff *= 2
            continue
        retry_after = response.getheader("Retry-After")
        report.attempts.append((t0, time.monotonic(), response.status, retry_after))
        report.final = response.status
        if response.status in (200, 201):
            payload = json.loads(data)
            report.case_id, report.case_no = payload["id"], payload["case_no"]
            report.ids_seen.add(payload["id"])
            with progress.get_lock():
                progress.value += 1
            return report, conn
        if response.status < 500:
            return report, conn  # refused for good (4xx): the page shows it to the patroller, no retry
        wait = _retry_after(retry_after)
        time.sleep(min(backoff if wait is None else wait, plan.retry_cap_s) * rng.uniform(0.5, 1.0))
        backoff *= 2


def _patroller(plan: Plan, n: int, go: threading.Event, result: ProcessResult, lock: threading.Lock,
               progress: Any) -> None:
    auth, indices = plan.patrollers[n]
    go.wait()
    rng = random.Random(f"{plan.key_prefix}{n}")
    conn = http.client.HTTPConnection(HOST, plan.port, timeout=plan.request_timeout_s)
    mine = []
    for index in indices:
        report, conn = _submit(plan, index, auth, conn, rng, progress)
        mine.append(report)
    conn.close()
    with lock:
        result.reports += mine


def client_process(plan: Plan, ready: Any, go: Any, results: Any, progress: Any) -> None:
    """Run this process's patrollers: report ready, wait for go, then submit and retry."""
    result, lock = ProcessResult(), threading.Lock()
    local_go = threading.Event()
    threads = [threading.Thread(target=_patroller, args=(plan, n, local_go, result, lock, progress), daemon=True)
               for n in range(len(plan.patrollers))]
    for t in threads:
        t.start()
    ready.put(None)
    go.wait()
    local_go.set()
    for t in threads:
        t.join()
    results.put(result)


# -- the fault ------------------------------------------------------------------------------------------


@dataclass
class Timeline:
    """When the run started, when PostgreSQL went down, and when it accepted connections again."""

    go: float = 0.0
    stop_begin: float | None = None
    stopped: float | None = None
    start_begin: float | None = None
    started: float | None = None
    accepting: float | None = None
    end: float = 0.0
    error: str | None = None


def libpq_conninfo(url: str) -> str:
    """Return a SQLAlchemy URL as a libpq connection string."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _probe(conninfo: str, timeline: Timeline, until: float) -> None:
    """Record the first moment the server accepts a connection (and a query) again."""
    import psycopg

    while time.monotonic() < until:
        try:
            with psycopg.connect(conninfo, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            timeline.accepting = time.monotonic()
            return
        except psycopg.Error:
            time.sleep(0.02)


def restart_when(cluster: Any, url: str, progress: Any, trigger: int, outage_s: float, deadline: float,
                 timeline: Timeline, finished: threading.Event) -> None:
    """Once ``trigger`` reports are accepted, stop PostgreSQL (fast), wait ``outage_s``, and start it again."""
    try:
        while progress.value < trigger:
            if finished.is_set() or time.monotonic() > deadline:
                timeline.error = f"the fault never fired: {progress.value} of {trigger} reports accepted in time"
                return
            time.sleep(0.02)
        timeline.stop_begin = time.monotonic()
        cluster.stop()  # pg_ctl stop -m fast: open transactions are cut off, the server goes down
        timeline.stopped = time.monotonic()
        time.sleep(outage_s)
        probe = threading.Thread(target=_probe, args=(libpq_conninfo(url), timeline, time.monotonic() + 120),
                                 daemon=True)
        probe.start()
        timeline.start_begin = time.monotonic()
        cluster.start()
        timeline.started = time.monotonic()
        if cluster.url(cluster.dbname).rsplit("/", 1)[0] != url.rsplit("/", 1)[0]:
            timeline.error = f"PostgreSQL came back at {cluster.url()} instead of {url}: the app cannot follow"
        probe.join(timeout=60)
        if timeline.accepting is None:
            timeline.error = timeline.error or "PostgreSQL did not accept connections within 60 s of its start"
    except Exception as exc:  # reported in the table; the run goes on so the servers are stopped cleanly
        timeline.error = f"{type(exc).__name__}: {exc}"


def pin_port(cluster: Any) -> None:
    """Have a stopped cluster start on a free port below the kernel's ephemeral range.

    A restart prefers the cluster's recorded port (``<cluster>/port``, see ``gis_platform.pgcluster``),
    and the app only follows the server if it comes back there. Below the ephemeral range, no outgoing
    connection made meanwhile can be sitting on that port when the server starts again.
    """
    if cluster.is_running():
        return
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1025, low - 12000), low)
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
        root = Path(cluster.status()["directory"])
        root.mkdir(parents=True, exist_ok=True)
        (root / "port").write_text(f"{port}\n")
        return


# -- one run --------------------------------------------------------------------------------------------


@dataclass
class Scenario:
    """The knobs of one load-and-fault run."""

    reports: int = 10_000
    clients: int = 64
    workers: int = 2
    client_processes: int = 2
    fault_after: float = 0.4  # share of the reports accepted before PostgreSQL is stopped
    outage_s: float = 4.0
    retry_cap_s: float = 1.0
    request_timeout_s: float = 10.0
    max_attempts: int = 200
    time_limit_s: float = 1200.0
    recovery_target_s: float = 5.0
    seed: int = 2021


@dataclass(frozen=True)
class AppLog:
    """What the app's own log says went wrong."""

    tracebacks: int
    worker_failures: int  # gunicorn: a worker timed out, was killed, or exited with an error
    first_error: str | None  # the exception line of the first traceback

    @classmethod
    def read(cls, text: str) -> AppLog:
        """Summarise a gunicorn + app log."""
        lines = text.splitlines()
        first = None
        for k, line in enumerate(lines):
            if line.startswith("Traceback (most recent call last)"):
                # The exception line is the first unindented line after the frames.
                first = next((x for x in lines[k + 1:] if x and not x.startswith(" ")), None)
                break
        worker = sum(1 for line in lines if "WORKER TIMEOUT" in line or "was sent SIG" in line
                     or ("Worker (pid:" in line and "exited with code" in line))
        return cls(text.count("Traceback (most recent call last)"), worker, first and first[:200])


@dataclass
class FaultRun:
    """Everything one run measured and checked."""

    scenario: Scenario
    run_id: str
    timeline: Timeline
    reports: list[Report]
    db: dict[str, int]
    log: AppLog
    facts: dict[str, str] = field(default_factory=dict)

    # -- answers ----------------------------------------------------------------------------------
    @property
    def attempts(self) -> list[Attempt]:
        return [a for r in self.reports for a in r.attempts]

    @property
    def statuses(self) -> Counter:
        """Return how often each HTTP status or connection error came back, over every attempt."""
        return Counter(a[2] for a in self.attempts)

    @property
    def accepted(self) -> list[Report]:
        return [r for r in self.reports if r.final in (200, 201)]

    @property
    def seconds(self) -> float:
        return self.timeline.end - self.timeline.go

    @property
    def throughput(self) -> float:
        """Return accepted reports per second over the whole run, outage included."""
        return len(self.accepted) / self.seconds if self.seconds > 0 else 0.0

    def rate_between(self, start: float | None, end: float | None) -> float | None:
        """Return reports accepted per second with their answer between two moments."""
        if start is None or end is None or end <= start:
            return None
        done = sum(1 for r in self.accepted if start <= r.attempts[-1][1] < end)
        return done / (end - start)

    def attempt_ms(self, q: float) -> float:
        """Return a percentile of the latency of the attempts the server answered 2xx, in ms."""
        values = [(a[1] - a[0]) * 1000 for a in self.attempts if a[2] in (200, 201)]
        return float(np.percentile(values, q)) if values else float("nan")

    def report_ms(self, q: float) -> float:
        """Return a percentile of the time from a report's first send to its 2xx answer, retries included."""
        values = [(r.attempts[-1][1] - r.attempts[0][0]) * 1000 for r in self.accepted]
        return float(np.percentile(values, q)) if values else float("nan")

    @property
    def unavailable_503(self) -> int:
        return self.statuses.get(503, 0)

    @property
    def missing_retry_after(self) -> int:
        return sum(1 for a in self.attempts if a[2] == 503 and _retry_after(a[3]) is None)

    @property
    def other_5xx(self) -> int:
        return sum(n for s, n in self.statuses.items() if isinstance(s, int) and s >= 500 and s != 503)

    @property
    def rejected_4xx(self) -> int:
        return sum(1 for r in self.reports if isinstance(r.final, int) and 400 <= r.final < 500)

    @property
    def connection_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if isinstance(s, str))

    @property
    def gave_up(self) -> int:
        return sum(1 for r in self.reports if r.final == "gave up")

    @property
    def first_ok_after_s(self) -> float | None:
        """Return seconds from PostgreSQL accepting connections again to the first 2xx answer after the stop."""
        t = self.timeline
        if t.accepting is None or t.stopped is None:
            return None
        after = [a[1] for a in self.attempts if a[2] in (200, 201) and a[1] > t.stopped]
        return min(after) - t.accepting if after else None

    @property
    def last_503_after_s(self) -> float | None:
        """Return seconds from PostgreSQL accepting again to the last 503 answered (0 if none came after)."""
        t = self.timeline
        if t.accepting is None or t.stop_begin is None:
            return None
        late = [a[1] for a in self.attempts if a[2] == 503 and a[1] >= t.stop_begin]
        return max(0.0, max(late) - t.accepting) if late else 0.0

    def _outside_outage(self, attempt: Attempt) -> bool:
        t = self.timeline
        if t.stop_begin is None or t.accepting is None:
            return True
        return not t.stop_begin <= attempt[1] <= t.accepting + self.scenario.recovery_target_s

    @property
    def unavailable_outside_outage(self) -> int:
        """Return 503s answered before the stop, or later than the recovery target after PostgreSQL is back."""
        return sum(1 for a in self.attempts if a[2] == 503 and self._outside_outage(a))

    @property
    def connection_errors_outside_outage(self) -> int:
        return sum(1 for a in self.attempts if isinstance(a[2], str) and self._outside_outage(a))

    def verdicts(self) -> list[tuple[str, str, str, bool]]:
        """Return (check, measured, wanted, met) for every target of the run."""
        d, target = self.db, self.scenario.recovery_target_s
        first, last, log = self.first_ok_after_s, self.last_503_after_s, self.log

        def secs(v: float | None) -> str:
            return "never" if v is None else f"{v:.2f} s"

        return [
            ("PostgreSQL stopped and started again on the same address",
             self.timeline.error or f"down {self._down_s():.1f} s", "yes",
             self.timeline.error is None and self.timeline.accepting is not None),
            ("the API answered 503 during the outage", f"{self.unavailable_503:,}", "> 0", self.unavailable_503 > 0),
            ("503 without Retry-After", f"{self.missing_retry_after}", "0", self.missing_retry_after == 0),
            ("5xx other than 503", f"{self.other_5xx}", "0", self.other_5xx == 0),
            ("unhandled errors in the app's log", f"{log.tracebacks}" + (f" (first: {log.first_error})"
             if log.first_error else ""), "0", log.tracebacks == 0),
            ("gunicorn workers killed or crashed", f"{log.worker_failures}", "0", log.worker_failures == 0),
            ("first 2xx after PostgreSQL accepts again", secs(first), f"≤ {target:g} s",
             first is not None and first <= target),
            ("last 503 after PostgreSQL accepts again", secs(last), f"≤ {target:g} s",
             last is not None and last <= target),
            ("503s before the stop or after the recovery target", f"{self.unavailable_outside_outage}", "0",
             self.unavailable_outside_outage == 0),
            ("reports answered 2xx", f"{len(self.accepted):,} / {len(self.reports):,}", "all",
             len(self.accepted) == self.scenario.reports),
            ("lost (answered 2xx, not stored under its key and id)", f"{d['lost']}", "0", d["lost"] == 0),
            ("duplicated (a key or a report stored twice, or answered with two ids)", f"{d['duplicated']}", "0",
             d["duplicated"] == 0),
            ("stored with the run's keys but never answered", f"{d['unanswered']}", "0", d["unanswered"] == 0),
            ("half-written (no single 'report' event, no routing or holder, routing ≠ event, orphan events)",
             f"{d['half_written']}", "0", d["half_written"] == 0),
        ]

    def _down_s(self) -> float:
        t = self.timeline
        return (t.accepting - t.stop_begin) if t.accepting is not None and t.stop_begin is not None else float("nan")

    @property
    def ok(self) -> bool:
        return all(v[3] for v in self.verdicts())


def check_database(engine: Any, county: str, key_prefix: str, tag: str, reports: list[Report]) -> dict[str, int]:
    """Compare what was answered with what is stored; count lost, duplicated, unanswered and half-written."""
    from sqlalchemy import text

    with engine.connect() as conn:
        rows = conn.execute(text(
            'SELECT c.id, c.idempotency_key, c.description, c.routing IS NOT NULL AND c.assigned_agency_id IS NOT NULL '
            "  AND c.owner_agency_id IS NOT NULL AND c.admin_unit_id IS NOT NULL, "
            "  (c.routing->>'grid_cell') IS NOT DISTINCT FROM g.code, "
            "  (SELECT count(*) FROM case_event e WHERE e.case_id = c.id AND e.action = 'report'), "
            "  (SELECT bool_and(e.data->'route' = c.routing) FROM case_event e "
            "   WHERE e.case_id = c.id AND e.action = 'report') "
            'FROM "case" c LEFT JOIN grid_cell g ON g.id = c.grid_cell_id '
            "WHERE c.county_code = :c AND (starts_with(c.idempotency_key, :p) OR c.description LIKE :d)"),
            {"c": county, "p": key_prefix, "d": f"%fault bench {tag}-%"}).all()
        orphans = conn.execute(text(
            'SELECT count(*) FROM case_event e WHERE e.county_code = :c AND NOT EXISTS '
            '(SELECT 1 FROM "case" c WHERE c.id = e.case_id)'), {"c": county}).scalar_one()
    by_key = Counter(r[1] for r in rows)
    by_text = Counter(r[2] for r in rows)
    by_id = {r[0]: r for r in rows}
    answered = {f"{key_prefix}{r.index}": r for r in reports if r.case_id is not None}
    lost = sum(1 for key, r in answered.items() if r.case_id not in by_id or by_id[r.case_id][1] != key)
    duplicated = (sum(n - 1 for n in by_key.values()) + sum(n - 1 for n in by_text.values())
                  + sum(1 for r in answered.values() if len(r.ids_seen) > 1))
    unanswered = sum(1 for key in by_key if key not in answered)
    half = sum(1 for r in rows if not (r[3] and r[4] and r[5] == 1 and r[6])) + orphans
    return {"stored": len(rows), "lost": lost, "duplicated": duplicated, "unanswered": unanswered,
            "half_written": half, "orphan_events": orphans}


def run_fault(cluster: Any, url: str, county: str, password: str, scenario: Scenario, work_dir: Path,
              progress_say: Callable[[str], None] = _say) -> FaultRun:
    """Serve the platform on ``url``, drive the patrollers, restart ``cluster`` mid-run, and check the result."""
    from sqlalchemy import create_engine

    run_id = uuid.uuid4().hex[:8]
    key_prefix = f"fault-{run_id}-"
    engine = create_engine(url)
    try:
        accounts = patroller_accounts(engine, county)
        if not accounts:
            raise RuntimeError(f"county {county} has no active patroller accounts")
        progress_say(f"making {scenario.reports:,} report bodies at distinct points of county {county}…")
        bodies = report_bodies(engine, county, scenario.reports, scenario.seed + int(run_id, 16) % 10_000, run_id)
    finally:
        engine.dispose()
    port = free_port()
    app_dir = work_dir / f"app-{run_id}"
    app_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DATABASE_URL": url, "GIS_DATA_DIR": str(app_dir), "GIS_COUNTY_CODE": county,
           "GIS_LOG_LEVEL": "WARNING", "GIS_WORKERS": str(scenario.workers), "GIS_HOST": HOST}
    env.pop("GIS_BENCH_DATABASE_URL", None)
    argv = [str(Path(sys.executable).parent / "gis-platform"), "serve", "--no-demo", "--no-migrate", "--host", HOST,
            "--port", str(port), "--workers", str(scenario.workers)]
    timeline = Timeline()
    ctx = mp.get_context("spawn")
    progress = ctx.Value("i", 0)
    procs_n = max(1, min(scenario.client_processes, scenario.clients))
    reports: list[Report] = []
    log_name = f"fault-app-{run_id}"
    with serving(log_name, argv, env, port, "/api/v1/health", work_dir):
        progress_say(f"platform serving on {HOST}:{port}; signing in {len(accounts)} patroller accounts…")
        # One token per account, shared by the patrollers using it: scrypt sign-ins are not what is measured.
        tokens = {name: sign_in(port, name, password) for name in accounts}
        ready, go, results = ctx.Queue(), ctx.Event(), ctx.Queue()
        deadline = time.monotonic() + scenario.time_limit_s + 30  # the clients' budget, plus their start-up
        procs, parts = [], []
        try:
            for p in range(procs_n):
                mine = list(range(p, scenario.clients, procs_n))
                patrollers = [(tokens[accounts[c % len(accounts)]][0],
                               list(range(c, scenario.reports, scenario.clients))) for c in mine]
                plan = Plan(port=port, patrollers=patrollers,
                            bodies={i: bodies[i] for _, idx in patrollers for i in idx}, key_prefix=key_prefix,
                            deadline=deadline, request_timeout_s=scenario.request_timeout_s,
                            retry_cap_s=scenario.retry_cap_s, max_attempts=scenario.max_attempts)
                proc = ctx.Process(target=client_process, args=(plan, ready, go, results, progress), daemon=True)
                proc.start()
                procs.append(proc)
            for _ in procs:
                ready.get(timeout=120)
            finished = threading.Event()
            trigger = max(1, int(scenario.reports * scenario.fault_after))
            timeline.go = time.monotonic()
            fault = threading.Thread(target=restart_when, args=(cluster, url, progress, trigger, scenario.outage_s,
                                                                timeline.go + scenario.time_limit_s, timeline,
                                                                finished), daemon=True)
            fault.start()
            go.set()
            progress_say(f"{scenario.clients} patrollers submitting {scenario.reports:,} reports; PostgreSQL "
                         f"restarts after {trigger:,} are accepted…")
            parts = [results.get(timeout=scenario.time_limit_s + 120) for _ in procs]
            timeline.end = time.monotonic()
            finished.set()
            fault.join(timeout=120)
        finally:
            go.set()
            for proc in procs:
                proc.join(timeout=30)
                if proc.is_alive():
                    proc.kill()
            if cluster.is_running():
                for auth, token_id in tokens.values():
                    revoke(port, auth, token_id)
        for part in parts:
            reports += part.reports
    if not cluster.is_running():  # the fault thread failed half-way: bring the server back for the check
        cluster.start()
    log_text = (work_dir / f"{log_name}.log").read_text(errors="replace")
    engine = create_engine(url)
    try:
        db = check_database(engine, county, key_prefix, run_id, reports)
    finally:
        engine.dispose()
    reports.sort(key=lambda r: r.index)
    return FaultRun(scenario=scenario, run_id=run_id, timeline=timeline, reports=reports, db=db,
                    log=AppLog.read(log_text),
                    facts={"Idempotency-Key prefix": key_prefix, "patroller accounts": str(len(accounts)),
                           "app log": str(work_dir / f"{log_name}.log")})


# -- the report -----------------------------------------------------------------------------------------


def render(run: FaultRun) -> str:
    """Return the Markdown report of a run."""
    s, t = run.scenario, run.timeline
    load = os.getloadavg()

    def rel(v: float | None) -> str:
        return "–" if v is None else f"{v - t.go:.2f}"

    def rate(v: float | None) -> str:
        return "–" if v is None else f"{v:,.0f}"

    statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(run.statuses.items(), key=lambda kv: str(kv[0])))
    recovered = None if t.accepting is None else t.accepting + s.recovery_target_s
    lines = [
        f"## Load and fault: PostgreSQL restarted under report load ({datetime.now().astimezone():%Y-%m-%d %H:%M %Z})",
        "",
        f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} at "
        f"the end; Python {platform.python_version()}; loopback {HOST}; gunicorn {s.workers} workers × gthread. "
        f"{s.clients} patrollers, {s.reports:,} reports at distinct points of the county; PostgreSQL stopped "
        f"(`pg_ctl stop -m fast`) after {s.fault_after:.0%} were accepted and started again {s.outage_s:g} s "
        f"later. Retries keep the Idempotency-Key and wait Retry-After, capped at {s.retry_cap_s:g} s.",
        "",
        "| measurement | value |",
        "|---|---:|",
        f"| reports accepted (201, or 200 replaying one) | {len(run.accepted):,} of {s.reports:,} |",
        f"| of them 201 on a retry / 200 replays | "
        f"{sum(1 for r in run.accepted if r.final == 201 and len(r.attempts) > 1):,} / "
        f"{sum(1 for r in run.accepted if r.final == 200):,} |",
        f"| wall time (s) | {run.seconds:.1f} |",
        f"| throughput, whole run incl. outage (reports/s) | {run.throughput:,.0f} |",
        f"| throughput before the fault / after recovery (reports/s) | {rate(run.rate_between(t.go, t.stop_begin))}"
        f" / {rate(run.rate_between(recovered, t.end))} |",
        f"| attempt latency p50 / p95 / p99 (ms, 2xx answers) | {run.attempt_ms(50):.1f} / {run.attempt_ms(95):.1f}"
        f" / {run.attempt_ms(99):.1f} |",
        f"| report latency p50 / p95 / p99 (ms, first send to 2xx, retries included) | {run.report_ms(50):.1f} / "
        f"{run.report_ms(95):.1f} / {run.report_ms(99):.1f} |",
        f"| attempts | {len(run.attempts):,} |",
        f"| 503 answers (all with Retry-After: {'yes' if run.missing_retry_after == 0 else 'NO'}) | "
        f"{run.unavailable_503:,} |",
        f"| other 5xx / 4xx refusals | {run.other_5xx} / {run.rejected_4xx} |",
        f"| connection errors and timeouts, retried (of them outside the outage window) | {run.connection_errors} "
        f"({run.connection_errors_outside_outage}) |",
        f"| PostgreSQL stop requested / stopped / start requested / accepting (s from start) | {rel(t.stop_begin)} / "
        f"{rel(t.stopped)} / {rel(t.start_begin)} / {rel(t.accepting)} |",
        f"| recovery: first 2xx after PostgreSQL accepts (s) | "
        f"{'–' if run.first_ok_after_s is None else f'{run.first_ok_after_s:.2f}'} |",
        f"| recovery: last 503 after PostgreSQL accepts (s) | "
        f"{'–' if run.last_503_after_s is None else f'{run.last_503_after_s:.2f}'} |",
        f"| stored cases carrying the run's keys or texts | {run.db['stored']:,} |",
        f"| lost / duplicated | {run.db['lost']} / {run.db['duplicated']} |",
        "",
        f"Statuses of every attempt: {statuses}.",
        "",
        "| check | measured | wanted | |",
        "|---|---:|---:|---|",
    ]
    lines += [f"| {name} | {got} | {want} | {'met' if ok else '**MISSED**'} |"
              for name, got, want, ok in run.verdicts()]
    lines += ["", "| fact | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in run.facts.items()]
    missed = [name for name, _, _, ok in run.verdicts() if not ok]
    lines += ["", ("Checks missed: " + "; ".join(missed)) if missed else "All checks met."]
    return "\n".join(lines) + "\n"


# -- the command ----------------------------------------------------------------------------------------


def demo_cluster(data_dir: Path) -> tuple[Any, str]:
    """Start the benchmark's own cluster (on a pinned port) with the demo county loaded; return it and the URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session

    from gis_platform.cli import upgrade_database
    from gis_platform.pgcluster import LocalCluster
    from gis_platform.settings import Settings
    from layers.demo import load_demo

    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o755)  # run as root, the cluster's user must reach it, or the cluster moves elsewhere
    cluster = LocalCluster(data_dir=data_dir, dbname=FAULT_DBNAME)
    pin_port(cluster)
    url = cluster.ensure(progress=_say)
    upgrade_database(url)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            loaded = conn.execute(text("SELECT count(*) FROM admin_unit WHERE county_code = :c AND level = 'county'"),
                                  {"c": COUNTY}).scalar_one() > 0
        if not loaded:
            _say("loading the demo county into the fault bench database (once; later runs reuse it)…")
            settings = Settings(_env_file=None, database_url=None, data_dir=data_dir, county_code=COUNTY,
                                metric_crs=METRIC_CRS)
            with Session(engine) as session, session.begin():
                load_demo(session, settings, progress=_say)
    finally:
        engine.dispose()
    return cluster, url


class HardTimeout(Exception):
    """The whole command ran past its hard limit."""


def _alarm(signum: int, frame: Any) -> None:
    raise HardTimeout(f"stopped by the hard time limit (signal {signum})")


def main(argv: list[str] | None = None) -> int:
    """Parse options, run the load-and-fault scenario, print and write the table; 1 if a check is missed."""
    parser = argparse.ArgumentParser(prog="python -m bench.fault", description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=10_000, help="reports to submit (each once, retried)")
    parser.add_argument("--clients", type=int, default=64, help="simulated patrollers")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--client-processes", type=int, default=2, help="processes the patrollers are spread over")
    parser.add_argument("--fault-after", type=float, default=0.4, help="share of reports accepted before the stop")
    parser.add_argument("--outage", type=float, default=4.0, help="seconds PostgreSQL stays down")
    parser.add_argument("--retry-cap", type=float, default=1.0, help="longest wait between retries, seconds")
    parser.add_argument("--max-attempts", type=int, default=200, help="attempts per report before giving up")
    parser.add_argument("--time-limit", type=float, default=1200.0, help="seconds the patrollers may take")
    parser.add_argument("--recovery-target", type=float, default=5.0, help="seconds allowed to recover")
    parser.add_argument("--keep-running", action="store_true", help="leave the fault cluster running")
    parser.add_argument("--data-dir", default=str(FAULT_DATA_DIR), help="the benchmark's own cluster")
    parser.add_argument("--out", default=str(ROOT / "var" / "bench" / "fault.md"))
    # `python -m bench` passes every benchmark the same options: ignore the other benchmarks' ones.
    args, ignored = parser.parse_known_args(argv)
    if ignored:
        _say(f"bench.fault ignores {' '.join(ignored)}")
    for name in ("reports", "clients", "workers", "client_processes", "max_attempts"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 < args.fault_after < 1:
        parser.error("--fault-after must be between 0 and 1")
    if not 0 < args.outage <= 60 or args.time_limit <= 0 or args.retry_cap <= 0:
        parser.error("--outage (0–60 s), --time-limit and --retry-cap must be positive")
    scenario = Scenario(reports=args.reports, clients=args.clients, workers=args.workers,
                        client_processes=args.client_processes, fault_after=args.fault_after,
                        outage_s=args.outage, retry_cap_s=args.retry_cap, max_attempts=args.max_attempts,
                        time_limit_s=args.time_limit, recovery_target_s=args.recovery_target)
    data_dir = Path(args.data_dir).resolve()
    if data_dir == (ROOT / "var" / "test-cluster").resolve():
        parser.error("--data-dir must not be the test suite's cluster")
    # Setup (a first demo load takes about half a minute), the clients' limit, then shutdowns: all bounded.
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(int(args.time_limit + 600))
    cluster = None
    work_dir = Path(tempfile.mkdtemp(prefix="bench-fault-"))
    try:
        cluster, url = demo_cluster(data_dir)
        run = run_fault(cluster, url, COUNTY, DEMO_PASSWORD, scenario, work_dir)
        log = Path(args.out).with_name("fault-app.log")
        log.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run.facts["app log"], log)
        run.facts["app log"] = str(log.relative_to(ROOT) if log.is_relative_to(ROOT) else log)
        run.facts["PostgreSQL cluster"] = str(data_dir.relative_to(ROOT) if data_dir.is_relative_to(ROOT)
                                              else data_dir)
    except HardTimeout as exc:
        _say(str(exc))
        return 2
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        if cluster is not None and not args.keep_running:
            _say("stopping the fault bench cluster")
            cluster.stop()
        shutil.rmtree(work_dir, ignore_errors=True)
    report = render(run)
    print(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report, encoding="utf-8")
    _say(f"written {out}")
    return 0 if run.ok else 1


if __name__ == "__main__":
    sys.exit(main())
