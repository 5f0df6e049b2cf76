"""Live case events for the command centre: Server-Sent Events backed by PostgreSQL LISTEN/NOTIFY.

A trigger on ``case`` (migration 0005) announces every committed insert or update on the
``case_events`` channel. Each process runs ONE listener thread (started with the first client, a
daemon stopped at process exit) on one autocommit psycopg connection; it fans each notification out
to a bounded queue per open stream, so a worker holds one database connection however many pages
are open. A client too slow to drain its queue loses its oldest events, never the process's memory,
and is sent a ``resync`` event telling it to reload.

``GET /api/v1/events`` streams ``text/event-stream``:

- ``event: ready``: sent once the listener is connected; a page (re)loads its state after it;
- ``event: case`` with the notification as JSON (id, case_no, status, county_code, version, op, lon,
  lat, assigned_agency_id);
- ``event: resync``: events may have been missed (queue overflow, database restart, unknown
  ``Last-Event-ID``); reload the state;
- a ``: heartbeat`` comment every 15 s, which also finds dead connections; ``retry: 3000``.

Event ids are ``<epoch>-<seq>``: ``seq`` increases monotonically within a process and ``epoch`` names
that process's listener. ``Last-Event-ID`` is honoured best-effort: when it names this process's epoch
and the id is still in the last ``HISTORY_SIZE`` events (and the listener has not reconnected since),
the missed events are replayed; otherwise (another gunicorn worker, a restart, too old) the stream
starts with ``resync``.

Patrollers receive only the cases assigned to their squad and liaisons only those assigned to their
agency; everyone only the cases of the county served. A case moved away from a unit's queue is
therefore not announced to that unit.

Each open stream occupies a worker thread for as long as it is open. Under gunicorn's default sync
worker one stream would block the whole worker, so ``gis-platform serve`` runs ``gthread`` workers
(``api.cli.GUNICORN_THREADS`` threads each), and a process accepts at most ``MAX_STREAMS`` streams,
keeping threads free for ordinary requests; beyond that a client gets 503 with ``Retry-After``.
A graceful shutdown waits for open streams up to gunicorn's graceful timeout.
"""

from __future__ import annotations

import atexit
import itertools
import json
import logging
import queue
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from apiflask import APIBlueprint
from flask import Flask, Response, current_app, request
from psycopg import sql
from sqlalchemy.engine import URL

from api.auth import SECURITY, STAFF, current_user, require
from api.deps import DB_KEY, get_settings
from gis_platform.errors import Unavailable

log = logging.getLogger(__name__)

bp = APIBlueprint("events", __name__, url_prefix="/api/v1", tag="实时 Live events")

CHANNEL = "case_events"
HUB_KEY = "gis_platform.events"
HEARTBEAT_S = 15.0
RETRY_MS = 3000
BUSY_RETRY_AFTER_S = 5
QUEUE_SIZE = 256  # events waiting for one client before its oldest are dropped
HISTORY_SIZE = 1000  # events kept for Last-Event-ID replay
MAX_STREAMS = 12  # per process; api.cli runs 16 threads per worker
BACKOFF_S = (1.0, 5.0)  # reconnect delay: first, then doubling up to the last
POLL_S = 1.0  # the listener looks up this often to see whether it should stop
PING_S = 30.0  # and checks its connection this often when the channel is quiet
READY_WAIT_S = 2.0  # a new stream waits this long for the listener before it says "ready" anyway
OWN_UNIT_ROLES = ("patroller", "liaison")

BUSY = "实时连接已满，请稍后重试。Too many live connections on this server; retry shortly."
STOPPING = "实时推送正在重启，请稍后重连。The live event stream is restarting; reconnect shortly."

_hub_lock = threading.Lock()


@dataclass(frozen=True)
class Audience:
    """Whose cases a stream may see: one county, and one agency for squad and department staff."""

    county_code: str
    restricted: bool = False
    agency_id: int | None = None

    def admits(self, data: dict[str, Any]) -> bool:
        """Return True if the event is about a case this audience may see."""
        if data.get("county_code") != self.county_code:
            return False
        return not self.restricted or (self.agency_id is not None and data.get("assigned_agency_id") == self.agency_id)


@dataclass(frozen=True)
class Message:
    """One event as sent: ``event:`` name, ``id:`` sequence (None: keep the client's) and JSON data."""

    seq: int | None
    event: str
    data: dict[str, Any]

    def render(self, epoch: str) -> str:
        """Return the event in text/event-stream framing."""
        body = json.dumps(self.data, ensure_ascii=False, separators=(",", ":"))
        ident = "" if self.seq is None else f"id: {epoch}-{self.seq}\n"
        return f"{ident}event: {self.event}\ndata: {body}\n\n"


CLOSE = Message(None, "close", {})  # the hub is stopping: end the stream


@dataclass(eq=False)
class Subscription:
    """One open stream's queue; the listener drops the oldest event rather than let it grow."""

    audience: Audience
    size: int = QUEUE_SIZE
    dropped: int = 0
    awaiting_listener: bool = False  # told "ready" before the listener was connected
    pending: queue.Queue[Message] = field(init=False)

    def __post_init__(self) -> None:
        self.pending = queue.Queue(maxsize=self.size)

    def offer(self, message: Message) -> None:
        """Queue a message, dropping the oldest one when full (called by one producer at a time)."""
        while True:
            try:
                self.pending.put_nowait(message)
                return
            except queue.Full:
                try:
                    self.pending.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def get(self, timeout: float) -> Message | None:
        """Return the next message, or None after ``timeout`` seconds without one."""
        try:
            return self.pending.get(timeout=timeout)
        except queue.Empty:
            return None


class CaseEventHub:
    """One LISTEN connection per process, fanned out to the open streams' queues."""

    def __init__(self, conninfo: str, *, channel: str = CHANNEL, queue_size: int = QUEUE_SIZE,
                 history_size: int = HISTORY_SIZE, max_streams: int = MAX_STREAMS,
                 backoff_s: tuple[float, float] = BACKOFF_S,
                 connect: Callable[..., psycopg.Connection[Any]] = psycopg.connect) -> None:
        self.conninfo = conninfo
        self.channel = channel
        self.queue_size = queue_size
        self.max_streams = max_streams
        self.backoff_s = backoff_s
        self.epoch = secrets.token_hex(4)
        self._connect = connect
        self._lock = threading.Lock()
        self._subscriptions: set[Subscription] = set()
        self._history: deque[Message] = deque(maxlen=history_size)
        self._seq = itertools.count(1)
        self._last_seq = 0
        self._resync_floor = 0  # ids at or below this may have missed events (listener reconnected)
        self._listening = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.reconnects = 0

    # -- streams -----------------------------------------------------------------------------------------

    def check_capacity(self) -> None:
        """Raise Unavailable when this process may not open another stream now."""
        with self._lock:
            self._check_capacity()

    def _check_capacity(self) -> None:
        if self._stopping.is_set():
            raise Unavailable(STOPPING, retry_after=BUSY_RETRY_AFTER_S)
        if len(self._subscriptions) >= self.max_streams:
            raise Unavailable(BUSY, retry_after=BUSY_RETRY_AFTER_S)

    def subscribe(self, audience: Audience, last_event_id: str | None = None) -> Subscription:
        """Open a queue for a stream, replaying what it missed when it can; start the listener."""
        with self._lock:
            self._check_capacity()
            sub = Subscription(audience, self.queue_size)
            self._subscriptions.add(sub)
            if last_event_id:
                self._replay(sub, last_event_id)
        self.start()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Close a stream's queue."""
        with self._lock:
            self._subscriptions.discard(sub)

    @property
    def streams(self) -> int:
        """Return how many streams are open."""
        with self._lock:
            return len(self._subscriptions)

    @property
    def last_seq(self) -> int:
        """Return the sequence number of the latest event."""
        with self._lock:
            return self._last_seq

    def _replay(self, sub: Subscription, last_event_id: str) -> None:
        epoch, _, number = last_event_id.strip().rpartition("-")
        seq = int(number) if number.isdigit() else -1
        oldest = self._history[0].seq if self._history else self._last_seq + 1
        if epoch != self.epoch or seq < 0 or seq < self._resync_floor or seq < oldest - 1:
            sub.offer(Message(self._last_seq, "resync", {"reason": "unknown_last_event_id"}))
            return
        for message in self._history:
            if message.seq > seq and sub.audience.admits(message.data):
                sub.offer(message)

    def publish(self, payload: str) -> Message | None:
        """Number one notification and queue it for every stream whose audience admits it."""
        try:
            data = json.loads(payload)
        except ValueError:
            log.warning("ignoring a %s notification that is not JSON: %.80s", self.channel, payload)
            return None
        if not isinstance(data, dict):
            return None
        with self._lock:
            message = Message(next(self._seq), "case", data)
            self._last_seq = message.seq
            self._history.append(message)
            for sub in self._subscriptions:
                if sub.audience.admits(data):
                    sub.offer(message)
        return message

    def wait_listening(self, timeout: float) -> bool:
        """Wait until the listener is connected; return whether it is."""
        return self._listening.wait(timeout)

    def mark_ready(self, sub: Subscription) -> bool:
        """Return whether the listener is connected; if not, the stream gets ``resync`` once it is."""
        with self._lock:
            sub.awaiting_listener = not self._listening.is_set()
            return not sub.awaiting_listener

    def _connected(self, first: bool) -> None:
        """Mark the listener connected and tell the streams that may have missed events to reload."""
        with self._lock:
            self._listening.set()
            if not first:
                # Whatever was committed while we were away was announced to nobody.
                self.reconnects += 1
                self._resync_floor = self._last_seq
            reason = "listener_connected" if first else "listener_reconnected"
            message = Message(self._last_seq, "resync", {"reason": reason})
            for sub in self._subscriptions:
                if sub.awaiting_listener or not first:
                    sub.offer(message)
                sub.awaiting_listener = False

    # -- the listener thread -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the listener thread unless it runs (or the hub has stopped)."""
        with self._lock:
            if self._thread is not None or self._stopping.is_set():
                return
            self._thread = threading.Thread(target=self._run, name=f"case-events-{self.epoch}", daemon=True)
            self._thread.start()
        atexit.register(self.stop)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the listener, end every stream and close the connection."""
        self._stopping.set()
        with self._lock:
            thread, self._thread = self._thread, None
            for sub in self._subscriptions:
                sub.offer(CLOSE)
        atexit.unregister(self.stop)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        delay = self.backoff_s[0]
        connected_before = False
        while not self._stopping.is_set():
            try:
                with self._connect(self.conninfo, autocommit=True, connect_timeout=5,
                                   application_name="gis-platform-events", keepalives=1, keepalives_idle=30,
                                   keepalives_interval=10, keepalives_count=3) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self._connected(first=not connected_before)
                    if connected_before:
                        log.info("case events: listening again on %s", self.channel)
                    connected_before = True
                    delay = self.backoff_s[0]
                    self._listen(conn)
            except Exception as exc:  # noqa: BLE001 - the listener must outlive any failure
                self._listening.clear()
                if self._stopping.is_set():
                    break
                log.warning("case events: listener lost its connection (%s); retrying in %.0f s",
                            type(exc).__name__, delay)
                if self._stopping.wait(delay):
                    break
                delay = min(delay * 2, self.backoff_s[1])
        self._listening.clear()

    def _listen(self, conn: psycopg.Connection[Any]) -> None:
        last_ping = time.monotonic()
        while not self._stopping.is_set():
            for notify in conn.notifies(timeout=POLL_S):
                self.publish(notify.payload)
            if time.monotonic() - last_ping >= PING_S:
                # A quiet channel says nothing about the connection: make sure it still answers.
                conn.execute("SELECT 1")
                last_ping = time.monotonic()


def libpq_url(url: URL) -> str:
    """Return a SQLAlchemy URL as a libpq connection string for psycopg."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def hub_for(app: Flask) -> CaseEventHub:
    """Return the app's hub, creating it (not yet listening) on first use."""
    hub = app.extensions.get(HUB_KEY)
    if hub is None:
        with _hub_lock:
            hub = app.extensions.get(HUB_KEY)
            if hub is None:
                hub = CaseEventHub(libpq_url(app.extensions[DB_KEY].engine.url))
                app.extensions[HUB_KEY] = hub
    return hub


def stop_hub(app: Flask) -> None:
    """Stop the app's hub if it was started (also done at process exit)."""
    hub = app.extensions.get(HUB_KEY)
    if hub is not None:
        hub.stop()


def audience_of(user: Any, county_code: str) -> Audience:
    """Return what a user may see: the county, and their own unit only for squad and department staff."""
    return Audience(county_code, restricted=user.role in OWN_UNIT_ROLES, agency_id=user.agency_id)


def event_stream(hub: CaseEventHub, audience: Audience, last_event_id: str | None,
                 heartbeat_s: float = HEARTBEAT_S) -> Iterator[str]:
    """Yield the stream's text: ready, events, resync hints and heartbeats, until the hub stops."""
    try:
        sub = hub.subscribe(audience, last_event_id)
    except Unavailable:
        # Raced past the capacity check: tell the client to come back later and end.
        yield f"retry: {BUSY_RETRY_AFTER_S * 1000}\n: too many live connections\n\n"
        return
    try:
        hub.wait_listening(READY_WAIT_S)
        listening = hub.mark_ready(sub)
        # No id: "ready" must not move the client's Last-Event-ID past events still queued or replayed.
        ready = Message(None, "ready", {"listening": listening, "epoch": hub.epoch})
        yield f"retry: {RETRY_MS}\n" + ready.render(hub.epoch)
        dropped = 0
        while True:
            message = sub.get(timeout=heartbeat_s)
            if message is None:
                yield ": heartbeat\n\n"
                continue
            if message is CLOSE:
                return
            if sub.dropped != dropped:
                dropped = sub.dropped
                yield Message(message.seq, "resync", {"reason": "client_too_slow", "dropped": dropped}).render(
                    hub.epoch)
            yield message.render(hub.epoch)
    finally:
        hub.unsubscribe(sub)


@bp.get("/events")
@require(*STAFF)
@bp.doc(
    summary="Live case events (Server-Sent Events)",
    description="`text/event-stream` of `ready`, `case` and `resync` events with heartbeats every 15 s. "
                "Send `Last-Event-ID` to resume (best-effort). Patrollers and liaisons receive their own "
                "unit's cases only.",
    security=SECURITY,
    responses={200: {"description": "the event stream", "content": {"text/event-stream": {
        "schema": {"type": "string"}}}}, 503: "too many live connections on this server"},
)
def events() -> Response:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    hub = hub_for(app)
    hub.check_capacity()
    audience = audience_of(current_user(), get_settings().county_code)
    heartbeat = float(app.config.get("EVENTS_HEARTBEAT_S", HEARTBEAT_S))
    # The generator runs after this request's session is closed: it needs no database connection.
    body = event_stream(hub, audience, request.headers.get("Last-Event-ID"), heartbeat)
    response = Response(body, mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # tell a reverse proxy not to buffer the stream
    return response
