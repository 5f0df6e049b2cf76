"""Load and fault, small: patrollers keep reporting over gunicorn while PostgreSQL is restarted.

The same scenario as ``python -m bench fault`` (bench/fault.py), at a few hundred reports and one restart,
on a PostgreSQL cluster of this test's own (restarting the shared test cluster would break other runs).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, update
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from bench.fault import AppLog, FaultRun, Report, Scenario, Timeline, check_database, pin_port, render, run_fault
from gis_platform import models as m
from gis_platform.cli import upgrade_database
from gis_platform.pgcluster import LocalCluster
from tests.factories import make_county

pytestmark = pytest.mark.slow

COUNTY = "379961"
PASSWORD = "Fault@2026"
# One gunicorn worker (the benchmark runs two): the test's budget is under a minute, cluster start included.
SCENARIO = Scenario(reports=200, clients=16, workers=1, client_processes=1, fault_after=0.4, outage_s=2.0,
                    retry_cap_s=0.5, request_timeout_s=10.0, max_attempts=100, time_limit_s=90.0,
                    recovery_target_s=5.0)


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """A cluster of this test's own, stopped and removed afterwards."""
    # World-traversable, so a cluster started as root needs no relocation out of the tmp dir.
    path = Path(tempfile.mkdtemp(prefix="gis-fault-test-"))
    path.chmod(0o755)
    cluster = LocalCluster(data_dir=path, dbname=f"gis_fault_{os.getpid()}")
    pin_port(cluster)
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def fault_run(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> tuple[FaultRun, str]:
    """Run the scenario once on a committed mini county; return the run and the database URL."""
    url = cluster.ensure()
    upgrade_database(url)
    engine = create_engine(url)
    with Session(engine) as session, session.begin():
        make_county(session, COUNTY)
        session.execute(update(m.User).where(m.User.county_code == COUNTY)
                        .values(password_hash=generate_password_hash(PASSWORD)))
    engine.dispose()
    run = run_fault(cluster, url, COUNTY, PASSWORD, SCENARIO, tmp_path_factory.mktemp("fault"),
                    progress_say=lambda _: None)
    return run, url


def test_restart_under_load_loses_and_duplicates_nothing(fault_run: tuple[FaultRun, str]) -> None:
    run, _ = fault_run
    table = render(run)
    assert run.timeline.error is None, table
    assert run.timeline.stop_begin is not None and run.timeline.accepting is not None, table
    assert len(run.accepted) == SCENARIO.reports, table
    assert run.db["stored"] == SCENARIO.reports, table
    assert (run.db["lost"], run.db["duplicated"], run.db["unanswered"], run.db["half_written"]) == (0, 0, 0, 0), table


def test_outage_is_answered_503_with_retry_after_and_recovers_fast(fault_run: tuple[FaultRun, str]) -> None:
    run, _ = fault_run
    table = render(run)
    assert run.unavailable_503 > 0, table
    assert run.missing_retry_after == 0, table
    assert run.other_5xx == 0 and run.log.tracebacks == 0 and run.log.worker_failures == 0, table
    assert run.first_ok_after_s is not None and run.first_ok_after_s <= SCENARIO.recovery_target_s, table
    assert run.last_503_after_s is not None and run.last_503_after_s <= SCENARIO.recovery_target_s, table
    assert run.unavailable_outside_outage == 0, table
    assert run.ok, table


def test_the_check_sees_a_lost_and_a_doubly_answered_report(fault_run: tuple[FaultRun, str]) -> None:
    run, url = fault_run
    prefix = run.facts["Idempotency-Key prefix"]
    answered = [r for r in run.reports if r.case_id is not None]
    # A report answered with a case id that does not exist, and one answered with two different ids.
    lost = Report(index=10**6, final=201, case_id=2**40, ids_seen={2**40})
    twice = Report(index=answered[0].index, final=200, case_id=answered[0].case_id,
                   ids_seen={answered[0].case_id, answered[1].case_id})
    engine = create_engine(url)
    try:
        db = check_database(engine, COUNTY, prefix, run.run_id, [*answered[1:], lost, twice])
    finally:
        engine.dispose()
    assert db["lost"] == 1
    assert db["duplicated"] == 1
    assert db["half_written"] == 0


def _synthetic_run(*attempts: tuple[float, float, int | str, str | None]) -> FaultRun:
    """Return a run of one report whose attempts are given, around a restart at t = 10 s (back at t = 15 s)."""
    last = attempts[-1]
    report = Report(index=0, final=last[2], case_id=1 if last[2] in (200, 201) else None,
                    ids_seen={1} if last[2] in (200, 201) else set(), attempts=list(attempts))
    timeline = Timeline(go=0.0, stop_begin=10.0, stopped=11.0, start_begin=14.0, started=15.0, accepting=15.0,
                        end=30.0)
    db = {"stored": 1, "lost": 0, "duplicated": 0, "unanswered": 0, "half_written": 0, "orphan_events": 0}
    return FaultRun(scenario=Scenario(reports=1), run_id="synthetic", timeline=timeline, reports=[report], db=db,
                    log=AppLog(0, 0, None))


def test_the_verdicts_fail_on_500s_missing_retry_after_and_slow_recovery() -> None:
    good = _synthetic_run((10.5, 10.6, 503, "5"), (15.5, 15.8, 201, None))
    assert good.ok, render(good)
    assert good.first_ok_after_s == pytest.approx(0.8)
    failed = {name for name, _, _, ok in _synthetic_run((10.5, 10.6, 500, None), (15.5, 15.8, 201, None)).verdicts()
              if not ok}
    assert failed == {"5xx other than 503", "the API answered 503 during the outage"}
    failed = {name for name, _, _, ok in _synthetic_run((10.5, 10.6, 503, None), (15.5, 15.8, 201, None)).verdicts()
              if not ok}
    assert failed == {"503 without Retry-After"}
    slow = _synthetic_run((10.5, 10.6, 503, "5"), (20.5, 20.6, 503, "5"), (21.0, 21.2, 201, None))
    failed = {name for name, _, _, ok in slow.verdicts() if not ok}
    assert failed == {"first 2xx after PostgreSQL accepts again", "last 503 after PostgreSQL accepts again",
                      "503s before the stop or after the recovery target"}
    gave_up = _synthetic_run((10.5, 10.6, 503, "5"), (11.0, 11.1, "ConnectionRefusedError", None))
    assert "reports answered 2xx" in {name for name, _, _, ok in gave_up.verdicts() if not ok}


def test_the_app_log_summary_counts_tracebacks_and_dead_workers() -> None:
    log = AppLog.read(
        "[2026-11-26 13:24:29 +0000] [7] [WARNING] api.errors: POST /api/v1/cases: database unavailable: x\n"
        "[2026-11-26 13:24:30 +0000] [7] [ERROR] api.errors: unhandled error on POST /api/v1/cases\n"
        "Traceback (most recent call last):\n"
        '  File "/work/main/api/cases.py", line 1, in create_case\n'
        "psycopg.errors.UndefinedTable: relation \"catalogue_change\" does not exist\n"
        "[2026-11-26 13:25:00 +0000] [5] [CRITICAL] WORKER TIMEOUT (pid:7)\n"
        "[2026-11-26 13:25:01 +0000] [5] [ERROR] Worker (pid:7) was sent SIGKILL! Perhaps out of memory?\n")
    assert log.tracebacks == 1
    assert log.worker_failures == 2
    assert log.first_error == 'psycopg.errors.UndefinedTable: relation "catalogue_change" does not exist'
