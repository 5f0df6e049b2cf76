"""Live case events over a real HTTP server, on a committed mini county in a database of its own.

Cases are reported and committed from another connection, as a patroller's phone would; the
command centre's stream must show them within 2 s, and only to those allowed to see them.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from flask import Flask
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import BaseWSGIServer, make_server

from api.auth import issue_token
from api.events import CLOSE, Audience, CaseEventHub, Message, Subscription, hub_for, libpq_url, stop_hub
from gis_platform.cli import upgrade_database
from gis_platform.db import Database
from gis_platform.settings import Settings
from layers.cases import Actor, act, report_case
from tests.factories import make_county

COUNTY = "379931"
WEST = {"type": "Point", "coordinates": [115.72, 36.02]}
EAST = {"type": "Point", "coordinates": [115.78, 36.02]}
SSE_LINE = re.compile(r"^(?::.*|(?:id|event|data|retry): .*|)$")
DEADLINE_S = 2.0
# This run's listener only: other runs may share the server.
LISTENERS = ("SELECT {} FROM pg_stat_activity "
             "WHERE application_name = 'gis-platform-events' AND datname = current_database()")


@dataclass
class Live:
    app: Flask
    engine: Engine
    port: int
    tokens: dict[str, str]
    actors: dict[str, Actor]
    agencies: dict[str, int]

    def stream(self, user: str, last_event_id: str | None = None) -> SseClient:
        return SseClient(self.port, self.tokens[user], last_event_id)

    def report(self, where: dict, *, commit: bool = True) -> tuple[str, float]:
        """Report a case from another connection; return its number and the time of the commit."""
        with Session(self.engine) as session:
            outcome = report_case(session, COUNTY, category="TD02", geometry=where, source="patroller",
                                  reporter=self.actors["pw"], description="占道经营")
            case_no = outcome.case.case_no
            if not commit:
                session.rollback()
                return case_no, time.perf_counter()
            session.commit()
            return case_no, time.perf_counter()


@dataclass
class SseClient:
    """A minimal EventSource: parses the stream on a thread into events and comments."""

    port: int
    token: str
    last_event_id: str | None = None
    status: int = 0
    lines: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    events: queue.Queue = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "text/event-stream"}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        self._conn.request("GET", "/api/v1/events", headers=headers)
        self._sock = self._conn.sock  # the response keeps using it after the connection lets go
        self.response = self._conn.getresponse()
        self.status = self.response.status
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        if self.status == 200:
            self._thread.start()

    def _read(self) -> None:
        block: dict[str, str] = {}
        try:
            while not self._stop.is_set():
                raw = self.response.readline()
                if not raw:
                    return
                line = raw.decode("utf-8").rstrip("\r\n")
                self.lines.append(line)
                if line == "":
                    if "event" in block:
                        self.events.put((time.perf_counter(), block))
                    block = {}
                elif line.startswith(":"):
                    self.comments.append(line)
                else:
                    name, _, value = line.partition(": ")
                    block[name] = value
        except (OSError, http.client.HTTPException):
            return

    def next(self, event: str = "case", timeout: float = 5.0, case_no: str | None = None) -> tuple[float, dict]:
        """Return (arrival time, event) of the next event of a kind (and case), failing after timeout."""
        deadline = time.perf_counter() + timeout
        while True:
            try:
                at, block = self.events.get(timeout=max(0.0, deadline - time.perf_counter()))
            except queue.Empty:
                raise AssertionError(f"no {event!r} event within {timeout} s") from None
            data = json.loads(block["data"])
            if block["event"] == event and (case_no is None or data.get("case_no") == case_no):
                return at, {**block, "data": data}

    def case_numbers(self, wait: float) -> list[str]:
        """Return the case numbers of the case events that arrive within ``wait`` seconds."""
        time.sleep(wait)
        found = []
        while not self.events.empty():
            _, block = self.events.get_nowait()
            if block["event"] == "case":
                found.append(json.loads(block["data"])["case_no"])
        return found

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the reader blocked in readline
        if self._thread.is_alive():
            self._thread.join(5)
        self.response.close()
        self._conn.close()


@pytest.fixture(scope="module")
def live(pg_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    url = pg_server.create(f"gis_test_events_{os.getpid()}")
    upgrade_database(url)
    engine = create_engine(url)
    with Session(engine) as session, session.begin():
        county = make_county(session, COUNTY)
        users = county.users
        tokens = {name: issue_token(session, users[name], "sse test")[1] for name in ("op", "pw", "pe", "li", "sup1")}
        actors = {name: Actor.of(users[name]) for name in users}
        agencies = dict(county.agencies)
    settings = Settings(_env_file=None, database_url=url, county_code=COUNTY, secret_key="test-key",
                        data_dir=Path(tmp_path_factory.mktemp("events")))
    from api.app import create_app

    app = create_app(settings, database=Database(engine=engine, sessions=sessionmaker(engine, expire_on_commit=False)))
    app.config["EVENTS_HEARTBEAT_S"] = 0.5
    # A closed stream is noticed at the next heartbeat but one; tests open streams faster than that.
    hub_for(app).max_streams = 64
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield Live(app, engine, server.server_port, tokens, actors, agencies)
    finally:
        stop_hub(app)
        server.shutdown()
        server.server_close()
        thread.join(5)
        engine.dispose()


@pytest.fixture()
def streams(live: Live) -> Iterator[dict[str, SseClient]]:
    """Open streams for the operator, both patrollers and the liaison, each past its ready event."""
    opened: dict[str, SseClient] = {}
    try:
        for user in ("op", "pw", "pe", "li"):
            opened[user] = live.stream(user)
            assert opened[user].status == 200
            _, ready = opened[user].next("ready")
            assert ready["data"]["listening"] is True
        yield opened
    finally:
        for client in opened.values():
            client.close()


def test_a_new_case_reaches_every_open_page_within_2_s(live: Live, streams: dict[str, SseClient]) -> None:
    case_no, committed = live.report(WEST)
    arrived, event = streams["op"].next(case_no=case_no, timeout=DEADLINE_S)
    latency = arrived - committed
    print(f"SSE latency commit → operator page: {latency * 1000:.1f} ms")
    assert latency < DEADLINE_S
    data = event["data"]
    assert data["op"] == "INSERT" and data["status"] == "reported" and data["county_code"] == COUNTY
    assert data["assigned_agency_id"] == live.agencies["squad_west"]
    assert data["lon"] == pytest.approx(115.72) and data["lat"] == pytest.approx(36.02)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9]+", event["id"])
    # The west squad's patroller sees it; the east squad's and the market team's liaison do not.
    streams["pw"].next(case_no=case_no, timeout=DEADLINE_S)
    assert case_no not in streams["pe"].case_numbers(wait=0.5)
    assert case_no not in streams["li"].case_numbers(wait=0.0)


def test_a_changed_case_is_announced_too(live: Live, streams: dict[str, SseClient]) -> None:
    case_no, _ = live.report(EAST)
    _, created = streams["op"].next(case_no=case_no)
    with Session(live.engine) as session:
        act(session, created["data"]["id"], "file", live.actors["sup1"])
        session.commit()
    _, filed = streams["op"].next(case_no=case_no, timeout=DEADLINE_S)
    assert filed["data"]["op"] == "UPDATE" and filed["data"]["status"] == "filed"
    assert filed["data"]["version"] > created["data"]["version"]
    assert int(filed["id"].rpartition("-")[2]) > int(created["id"].rpartition("-")[2])
    _, east = streams["pe"].next(case_no=case_no)
    assert east["data"]["status"] in ("reported", "filed")


def test_only_committed_changes_are_announced(live: Live, streams: dict[str, SseClient]) -> None:
    rolled_back, _ = live.report(WEST, commit=False)
    committed, _ = live.report(WEST)
    streams["op"].next(case_no=committed)
    assert rolled_back not in streams["op"].case_numbers(wait=0.3)


def test_the_stream_is_well_formed_server_sent_events(live: Live, streams: dict[str, SseClient]) -> None:
    live.report(WEST)
    streams["op"].next()
    time.sleep(1.2)  # at least two heartbeats at the test's 0.5 s
    lines = list(streams["op"].lines)
    assert lines[0] == "retry: 3000"
    assert all(SSE_LINE.match(line) for line in lines), [line for line in lines if not SSE_LINE.match(line)]
    assert streams["op"].comments.count(": heartbeat") >= 2


def test_one_listener_connection_serves_every_stream(live: Live, streams: dict[str, SseClient]) -> None:
    with live.engine.connect() as conn:
        listeners = conn.execute(text(LISTENERS.format("count(*)"))).scalar_one()
    assert listeners == 1
    assert hub_for(live.app).streams >= len(streams)


def test_last_event_id_replays_what_was_missed(live: Live, streams: dict[str, SseClient]) -> None:
    first, _ = live.report(WEST)
    _, seen = streams["op"].next(case_no=first)
    missed = [live.report(WEST)[0] for _ in range(2)]
    for case_no in missed:
        streams["op"].next(case_no=case_no)
    again = live.stream("op", last_event_id=seen["id"])
    try:
        again.next("ready")
        assert [again.next()[1]["data"]["case_no"] for _ in missed] == missed
    finally:
        again.close()
    stranger = live.stream("op", last_event_id="0badf00d-7")
    try:
        stranger.next("ready")
        _, resync = stranger.next("resync")
        assert resync["data"]["reason"] == "unknown_last_event_id"
    finally:
        stranger.close()


def test_the_listener_reconnects_when_its_connection_dies(live: Live, streams: dict[str, SseClient]) -> None:
    hub = hub_for(live.app)
    before = hub.reconnects
    with live.engine.connect() as conn:
        killed = conn.execute(text(LISTENERS.format("count(pg_terminate_backend(pid))"))).scalar_one()
    assert killed == 1
    _, resync = streams["op"].next("resync", timeout=8.0)  # backoff starts at 1 s
    assert resync["data"]["reason"] == "listener_reconnected" and hub.reconnects == before + 1
    case_no, committed = live.report(WEST)
    arrived, _ = streams["op"].next(case_no=case_no, timeout=DEADLINE_S)
    assert arrived - committed < DEADLINE_S


def test_a_full_server_answers_503_and_anonymous_callers_401(live: Live) -> None:
    hub = hub_for(live.app)
    limit = hub.max_streams
    hub.max_streams = 0  # whatever other streams are still closing, a new one is over the cap
    try:
        busy = live.stream("op")
        assert busy.status == 503 and busy.response.getheader("Retry-After")
        assert json.loads(busy.response.read())["status"] == 503
        busy.close()
    finally:
        hub.max_streams = limit
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=5)
    try:
        conn.request("GET", "/api/v1/events")
        response = conn.getresponse()
        assert response.status == 401 and response.getheader("Content-Type") == "application/problem+json"
        response.read()
    finally:
        conn.close()


# --------------------------------------------------------------------------- the hub without a server


def test_a_slow_client_loses_its_oldest_events_not_memory() -> None:
    sub = Subscription(Audience(COUNTY), size=3)
    for seq in range(1, 6):
        sub.offer(Message(seq, "case", {}))
    assert sub.dropped == 2
    assert [sub.get(0.01).seq for _ in range(3)] == [3, 4, 5] and sub.get(0.01) is None


def test_the_hub_filters_by_county_and_unit_and_ends_streams_on_stop() -> None:
    hub = CaseEventHub("postgresql://unused")
    hub.start = lambda: None  # no listener: events are published by hand
    everyone = hub.subscribe(Audience(COUNTY))
    squad = hub.subscribe(Audience(COUNTY, restricted=True, agency_id=7))
    no_unit = hub.subscribe(Audience(COUNTY, restricted=True, agency_id=None))
    for payload in ({"county_code": COUNTY, "case_no": "A", "assigned_agency_id": 7},
                    {"county_code": COUNTY, "case_no": "B", "assigned_agency_id": 8},
                    {"county_code": "379999", "case_no": "C", "assigned_agency_id": 7}):
        hub.publish(json.dumps(payload))
    assert hub.publish("not json") is None

    def drain(sub: Subscription) -> list[str]:
        out = []
        while (message := sub.get(0.01)) is not None:
            out.append(message.data.get("case_no", message.event))
        return out

    assert drain(everyone) == ["A", "B"] and drain(squad) == ["A"] and drain(no_unit) == []
    hub.stop()
    assert everyone.get(0.01) is CLOSE


def test_streams_opened_while_the_database_is_away_are_told_to_reload(live: Live) -> None:
    attempts = []

    def flaky_connect(conninfo: str, **kwargs):
        attempts.append(time.perf_counter())
        if len(attempts) == 1:
            raise psycopg.OperationalError("the database is restarting")
        return psycopg.connect(conninfo, **kwargs)

    hub = CaseEventHub(libpq_url(live.engine.url), connect=flaky_connect, backoff_s=(0.2, 0.5))
    try:
        early = hub.subscribe(Audience(COUNTY))
        assert hub.mark_ready(early) is False  # its page was told "ready" without a listener
        assert hub.wait_listening(5.0) and len(attempts) == 2
        late = hub.subscribe(Audience(COUNTY))
        assert hub.mark_ready(late) is True
        resync = early.get(1.0)
        assert resync is not None and resync.event == "resync" and resync.data["reason"] == "listener_connected"
        case_no, _ = live.report(WEST)
        for sub in (early, late):
            message = sub.get(DEADLINE_S)
            assert message is not None and message.data["case_no"] == case_no
    finally:
        hub.stop()
