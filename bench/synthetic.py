"""Synthetic cases in bulk, made by PostgreSQL itself (``INSERT … SELECT`` over ``generate_series``).

``python -m bench.synthetic --cases 1000000 --database-url URL [--county 371521] [--seed 2021] [--span-days N]``

990,000 cases take 70–95 s on the 2-core benchmark machine (points and routing about 15 s, insert 45–55 s,
index builds 15–20 s): no row crosses the wire, the random draws are SQL's own (``setseed`` makes a run
repeatable; parallel workers are off so the draws keep their order), and routing is one set-based
spatial join of the points with the grid cells' subdivided ``route_lookup`` pieces.

What the rows look like, so that maps, filters and aggregates behave as they would on real data:

- **where**: 80 % near hotspots (Gaussian, ``spread_m`` standard deviation), 20 % uniform over the
  county's bounding box; points in no grid cell (outside the county) are drawn again. The hotspots are
  a sample of the county's own case locations when it has cases (so the density follows its history),
  otherwise random points of the county. The grid cell holding a point gives its unit and squad (cells
  are cut from both; the lowest code wins on a shared edge); bureau powers go to that squad, department
  powers to the power's own agency, which owns the case either way;
- **what**: categories in the proportions of the county's own history (each active point category at
  least once in a thousand), urgency 92.5 / 6.7 / 0.8 % normal / urgent / emergency, sources 40 % patrollers,
  40 % citizens, 12 % video, 6 % hotline, 2 % referrals;
- **when**: reports over ``span_days`` up to ``end``, 85 % between 07:00 and 21:00 Shanghai time, each
  going through the closed loop with random delays (verification, dispatch, acceptance, handling against
  the category's time limit, closing, evaluation for 70 %), 2.5 % cancelled on verification, 1 % sent
  back once, 0.1 % deferred. The status is the stage reached at ``end``, and every lifecycle time of a
  stage reached is set, in order (``due_at`` counts 8 working hours a day, 5 days a week). So the
  recent cases are open in every state and the old ones are closed, about 7 % of them late. Over the
  default five years, a million cases leave about 1,800 open and a few dozen waiting; a short span
  (``--span-days 3``) makes a backlog.

Rows are labelled: case numbers ``SY<year><id>``, ``routing.synthetic = true`` with the seed, and a
description saying so. They carry no ``case_event`` history (the lifecycle is on the row), so the
indicators computed from the event log do not count them. The ``case_notify`` trigger does not fire (a
bulk load is not live activity, and a million notifications would flood the live stream): as a
superuser, triggers are off for the loading transaction (``session_replication_role = replica``) and the
foreign keys are then checked set-based, one anti-join each; otherwise the trigger is disabled inside
the transaction and the foreign keys are checked row by row. Check constraints always apply. From
``REBUILD_FROM`` cases, the table's plain indexes are dropped and built again in the same transaction.
Other sessions see the rows at commit, and never the table without its trigger or indexes (the locks of
``ALTER TABLE`` and ``DROP INDEX`` make them wait until the load commits).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text

COUNTY = "371521"
OVERSAMPLE = 1.15  # points drawn per case wanted; those outside the county are dropped
MAX_ROUNDS = 8
ANCHORS = 400  # hotspot anchors sampled from the county's own cases
SLOTS = 1000  # weighted choices are made by indexing an array of this many slots
REBUILD_FROM = 200_000  # from this many cases, the plain indexes are dropped and built again after the load


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate: how many cases, where, over which period, from which seed."""

    cases: int
    seed: int = 2021
    end: datetime | None = None  # the moment the statuses are taken at; default now
    span_days: float = 5 * 365.0
    clustered: float = 0.8
    spread_m: float = 150.0
    announce: bool = False  # keep the case_notify trigger on (a million NOTIFYs: only for small loads)

    def __post_init__(self) -> None:
        if self.cases < 1:
            raise ValueError("cases must be at least 1")
        if not 0 <= self.clustered <= 1:
            raise ValueError("clustered must lie in 0–1")
        if self.span_days <= 0 or self.spread_m <= 0:
            raise ValueError("span_days and spread_m must be positive")


@dataclass(frozen=True)
class SyntheticResult:
    """What was inserted, and how long each part took."""

    cases: int
    first_id: int
    last_id: int
    seconds: dict[str, float]
    by_status: dict[str, int]


# Categories by the county's own history (+1, so a category without cases still appears), as an array
# of about SLOTS ids to index with one random number. The power decides who the case goes to.
_CATEGORIES = """
CREATE TEMP TABLE syn_category ON COMMIT DROP AS
SELECT k.id, p.exercised_by AS holder, p.agency_id AS owner_id,
       GREATEST(1, round(:slots * w.n / sum(w.n) OVER ()))::int AS slots
FROM category k JOIN power p ON p.id = k.power_id
CROSS JOIN LATERAL (SELECT count(*) + 1 AS n FROM "case" c WHERE c.category_id = k.id) w
WHERE k.county_code = :county AND k.active AND k.geometry_kind = 'point'"""

# The draws are stored first (a MATERIALIZED CTE): the point reads the anchor number and the offsets
# more than once, and a random() left in an expression the planner inlines would be drawn at each use.
_POINTS = """
INSERT INTO syn_point (i, p)
WITH r AS MATERIALIZED (
    SELECT g, random() < :clustered AS near, sqrt(-2 * ln(1 - random())) AS radial, 2 * pi() * random() AS angle,
           random() AS ux, random() AS uy, 1 + floor(random() * :anchors)::int AS k
    FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) g
)
SELECT g, ST_SetSRID(CASE WHEN near THEN ST_MakePoint(
           (CAST(:anchor_lon AS float8[]))[k] + :spread * radial * cos(angle)
               / (111320.0 * cos(radians((CAST(:anchor_lat AS float8[]))[k]))),
           (CAST(:anchor_lat AS float8[]))[k] + :spread * radial * sin(angle) / 110540.0)
       ELSE ST_MakePoint(:x0 + ux * (:x1 - :x0), :y0 + uy * (:y1 - :y0)) END, 4326)
FROM r"""

# Polygon-driven: the lookup's pieces of the grid cells in force ask the points' GiST index which points
# they hold. The cell gives the unit and the squad (cells are cut from both); the lowest code wins on a
# shared border, as in grids.routing. Points in no cell are outside the county and are dropped.
_ROUTE = """
INSERT INTO syn_routed (i, p, cell_id, unit_id, squad_id)
SELECT DISTINCT ON (p.i) p.i, p.p, x.id, x.admin_unit_id, x.squad_id
FROM route_lookup r
JOIN grid_cell x ON x.id = r.ref_id
JOIN syn_point p ON r.geom && p.p AND ST_Intersects(r.geom, p.p)
WHERE r.county_code = :county AND r.layer = 'grid_cell'
  AND x.valid_from <= :end AND (x.valid_to IS NULL OR x.valid_to > :end)
ORDER BY p.i, x.code"""

# Every random draw of a case, stored once: the lifecycle below reads each value several times, and a
# random() left in an expression the planner may copy would be drawn again at each copy. Uniform draws
# are u_*, unit exponentials e_*.
_DRAWS = """
CREATE TEMP TABLE syn_draw ON COMMIT DROP AS
SELECT r.i, r.p, r.cell_id, r.unit_id, r.squad_id,
       (CAST(:category_ids AS int[]))[1 + floor(random() * :slots)::int] AS category_id,
       random() AS u_urgency, random() AS u_source, floor(random() * :span_days) AS day, random() AS u_daytime,
       random() AS u_time, -ln(1 - random()) AS e_file, random() AS u_cancel, -ln(1 - random()) AS e_dispatch,
       random() AS u_back, -ln(1 - random()) AS e_back, -ln(1 - random()) AS e_redispatch,
       -ln(1 - random()) AS e_accept, random() AS u_defer, -ln(1 - random()) AS e_handle,
       -ln(1 - random()) AS e_close, random() AS u_evaluate, -ln(1 - random()) AS e_evaluate, random() AS u_score
FROM syn_routed r"""

# Each level computes its columns once: without the OFFSET 0 fences the planner would inline every
# reference to a column of the level below as its whole expression, and the status, read by every
# lifecycle time, would be worked out again for each of them.
#
# The closed loop in hours after the report, each delay exponential: verification (mean 0.5 h), dispatch
# (1 h), acceptance (0.5 h), handling (mean 0.376 of the limit, so about 7 % run late), closing (8 h),
# evaluation (24 h, for 70 %). A return sends the case back 1 h after dispatch and it is dispatched again
# 2 h later. The limit is the category's working hours at 8 a day, 5 days a week, in wall-clock hours.
# Reports fall on a uniform day of the span, 85 % between 07:00 and 21:00 (Shanghai has no summer time,
# so whole days are added in UTC); a time still to come on the last day wraps round to the first.
_INSERT = """
INSERT INTO "case" (id, county_code, case_no, category_id, source, status, urgency, description, geom, location,
                    admin_unit_id, grid_cell_id, owner_agency_id, assigned_agency_id, routing, reported_at,
                    filed_at, dispatched_at, due_at, handled_at, closed_at, evaluation, version,
                    created_at, updated_at)
SELECT id, :county, 'SY' || EXTRACT(YEAR FROM reported_at AT TIME ZONE 'Asia/Shanghai') || lpad(id::text, 10, '0'),
       category_id, source, status, urgency, :description, p, p, unit_id, cell_id, owner_id, assigned_id,
       CAST(:routing AS jsonb), reported_at, filed_at, dispatched_at, due_at, handled_at, closed_at, evaluation,
       version, reported_at, COALESCE(closed_at, handled_at, dispatched_at, filed_at, reported_at)
FROM (
    SELECT nextval(pg_get_serial_sequence('"case"', 'id')) AS id, o.* FROM (
        SELECT s.i, s.p, s.cell_id, s.unit_id, s.squad_id, s.category_id, s.source, s.urgency, s.status,
               s.owner_id, s.assigned_id, s.reported_at,
               CASE WHEN s.status NOT IN ('reported', 'cancelled') THEN s.reported_at + s.file_h * h END AS filed_at,
               CASE WHEN s.status IN ('reported', 'cancelled', 'filed') THEN NULL
                    ELSE s.reported_at + s.dispatch_h * h END AS dispatched_at,
               CASE WHEN s.status IN ('reported', 'cancelled', 'filed') THEN NULL
                    ELSE s.reported_at + (s.dispatch_h + s.limit_h) * h END AS due_at,
               CASE WHEN s.status IN ('handled', 'closed', 'evaluated') THEN s.reported_at + s.handle_h * h END
                   AS handled_at,
               CASE WHEN s.status IN ('closed', 'evaluated') THEN s.reported_at + s.close_h * h END AS closed_at,
               CASE WHEN s.status = 'evaluated' THEN 3 + floor(s.u_score * 2.6)::int END AS evaluation,
               -- One version per step taken; the report is version 1.
               1 + CASE s.status WHEN 'reported' THEN 0 WHEN 'cancelled' THEN 1 WHEN 'filed' THEN 1
                        WHEN 'returned' THEN 3 WHEN 'dispatched' THEN 2 WHEN 'deferred' THEN 4
                        WHEN 'accepted' THEN 3 WHEN 'handled' THEN 4 WHEN 'closed' THEN 5 ELSE 6 END
                 + CASE WHEN s.sent_back AND s.status NOT IN ('reported', 'cancelled', 'filed', 'returned')
                        THEN 2 ELSE 0 END AS version
        FROM (
            SELECT t.*, interval '1 hour' AS h,
                   CASE WHEN t.age_h < t.file_h THEN 'reported'
                        WHEN t.u_cancel < 0.025 THEN 'cancelled'
                        WHEN t.age_h < t.dispatch1_h THEN 'filed'
                        WHEN t.sent_back AND t.age_h >= t.dispatch1_h + t.back_h AND t.age_h < t.dispatch_h
                            THEN 'returned'
                        WHEN t.age_h < t.dispatch_h THEN 'dispatched'
                        WHEN t.age_h < t.accept_h THEN 'dispatched'
                        WHEN t.u_defer < 0.001 THEN 'deferred'
                        WHEN t.age_h < t.handle_h THEN 'accepted'
                        WHEN t.age_h < t.close_h THEN 'handled'
                        WHEN t.u_evaluate < 0.7 AND t.age_h >= t.close_h + 24 * t.e_evaluate THEN 'evaluated'
                        ELSE 'closed' END AS status
            FROM (
                SELECT q.*, q.dispatch_h + 0.5 * q.e_accept AS accept_h,
                       q.dispatch_h + 0.5 * q.e_accept + 0.376 * q.e_handle * q.limit_h AS handle_h,
                       q.dispatch_h + 0.5 * q.e_accept + 0.376 * q.e_handle * q.limit_h + 8 * q.e_close AS close_h,
                       EXTRACT(EPOCH FROM CAST(:end AS timestamptz) - q.reported_at) / 3600 AS age_h
                FROM (
                    SELECT d.*, k.owner_id,
                           CASE WHEN k.holder = 'bureau' THEN COALESCE(d.squad_id, k.owner_id) ELSE k.owner_id END
                               AS assigned_id,
                           0.5 * d.e_file AS file_h,
                           0.5 * d.e_file + d.e_dispatch AS dispatch1_h,
                           d.u_back < 0.01 AS sent_back, d.e_back AS back_h,
                           0.5 * d.e_file + d.e_dispatch
                               + CASE WHEN d.u_back < 0.01 THEN d.e_back + 2 * d.e_redispatch ELSE 0 END AS dispatch_h,
                           COALESCE(tl.working_hours::float8, 16) * 3 * 7 / 5 AS limit_h,
                           CASE WHEN r.at < CAST(:end AS timestamptz) THEN r.at
                                ELSE r.at - :span_days * interval '1 day' END AS reported_at
                    FROM (
                        SELECT syn_draw.*,
                               CASE WHEN u_urgency < 0.925 THEN 'normal' WHEN u_urgency < 0.992 THEN 'urgent'
                                    ELSE 'emergency' END AS urgency,
                               CASE WHEN u_source < 0.40 THEN 'patroller' WHEN u_source < 0.80 THEN 'citizen'
                                    WHEN u_source < 0.92 THEN 'video' WHEN u_source < 0.98 THEN 'hotline'
                                    ELSE 'referral' END AS source
                        FROM syn_draw
                    ) d
                    CROSS JOIN LATERAL (
                        SELECT CAST(:end_day AS timestamptz) - d.day * interval '1 day'
                               + CASE WHEN d.u_daytime < 0.85 THEN 7 + 14 * d.u_time ELSE 24 * d.u_time END
                                 * interval '1 hour' AS at
                    ) r
                    JOIN syn_category k ON k.id = d.category_id
                    LEFT JOIN time_limit tl ON tl.category_id = d.category_id AND tl.urgency = d.urgency
                    OFFSET 0
                ) q
                OFFSET 0
            ) t
            OFFSET 0
        ) s
        ORDER BY s.reported_at, s.i
    ) o
) c"""


def _say(message: str) -> None:
    print(f"· {message}", file=sys.stderr, flush=True)


def _seed_fraction(seed: int) -> float:
    """Map an integer seed to setseed()'s range [-1, 1]."""
    return ((seed * 2654435761) % 2_000_001) / 1_000_000 - 1


def _check_foreign_keys(conn: Connection, first_id: int, last_id: int) -> None:
    """Check every foreign key of the rows inserted, one anti-join per key; raise if one has no target."""
    quote = conn.dialect.identifier_preparer.quote
    keys = conn.execute(text("""
        SELECT c.conname, a.attname, c.confrelid::regclass::text, f.attname
        FROM pg_constraint c
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
        JOIN pg_attribute f ON f.attrelid = c.confrelid AND f.attnum = c.confkey[1]
        WHERE c.conrelid = '"case"'::regclass AND c.contype = 'f' AND cardinality(c.conkey) = 1""")).all()
    for name, column, table, target in keys:
        # Names from the catalogue; the table comes already quoted by regclass.
        missing = conn.execute(text(
            f'SELECT count(*) FROM "case" x WHERE x.id BETWEEN :a AND :b AND x.{quote(column)} IS NOT NULL '
            f"AND NOT EXISTS (SELECT 1 FROM {table} t WHERE t.{quote(target)} = x.{quote(column)})"),
            {"a": first_id, "b": last_id}).scalar_one()
        if missing:
            raise RuntimeError(f"{missing} synthetic cases break the foreign key {name}")


def _drop_plain_indexes(conn: Connection) -> list[str]:
    """Drop the case table's indexes that back no constraint; return their definitions, to run again."""
    # Building an index once over a million rows is several times faster than growing it row by row.
    # The definitions come from the catalogue, so the indexes come back exactly as the migrations made
    # them, in the same transaction: no other session ever sees the table without them.
    rows = conn.execute(text("""
        SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
        FROM pg_index i
        WHERE i.indrelid = '"case"'::regclass
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)""")).all()
    for name, _definition in rows:
        conn.execute(text(f"DROP INDEX {name}"))  # a name from the catalogue, already quoted by regclass
    return [definition for _name, definition in rows]


def insert_cases(conn: Connection, county_code: str, spec: SyntheticSpec,
                 progress: Callable[[str], None] | None = None) -> SyntheticResult:
    """Insert synthetic cases into the county in the connection's transaction; the caller commits."""
    say = progress or (lambda _m: None)
    end = spec.end or conn.execute(text("SELECT now()")).scalar_one()
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    # The draws must come in one order for a seed to repeat: no parallel workers. JIT compiles these
    # long expressions for longer than they take to run.
    conn.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
    conn.execute(text("SET LOCAL jit = off"))
    conn.execute(text("SELECT setseed(:s)"), {"s": _seed_fraction(spec.seed)})
    box = conn.execute(text("SELECT ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) FROM admin_unit "
                            "WHERE county_code = :c AND level = 'county'"), {"c": county_code}).first()
    if box is None:
        raise ValueError(f"county {county_code} has no boundary (admin_unit of level county)")
    conn.execute(text(_CATEGORIES), {"county": county_code, "slots": SLOTS})
    slots = [row[0] for row in conn.execute(text(
        "SELECT id FROM syn_category, generate_series(1, slots) ORDER BY id"))]
    if not slots:
        raise ValueError(f"county {county_code} has no active point category")
    anchors = conn.execute(text(
        "SELECT ST_X(location), ST_Y(location) FROM \"case\" WHERE county_code = :c ORDER BY random() LIMIT :n"),
        {"c": county_code, "n": ANCHORS}).all()
    if not anchors:
        anchors = conn.execute(text(
            "SELECT ST_X(d.geom), ST_Y(d.geom) FROM admin_unit u, ST_Dump(ST_GeneratePoints(u.geom, 40, :seed)) d "
            "WHERE u.county_code = :c AND u.level = 'county'"), {"c": county_code, "seed": spec.seed}).all()
    conn.execute(text("CREATE TEMP TABLE syn_point (i bigint PRIMARY KEY, p geometry(Point, 4326)) ON COMMIT DROP"))
    conn.execute(text("CREATE TEMP TABLE syn_routed (i bigint, p geometry(Point, 4326), cell_id int, unit_id int, "
                      "squad_id int) ON COMMIT DROP"))
    seconds["setup"] = time.perf_counter() - started

    t0 = time.perf_counter()
    drawn = routed = 0
    params = {"anchor_lon": [a[0] for a in anchors], "anchor_lat": [a[1] for a in anchors],
              "anchors": len(anchors), "spread": spec.spread_m, "clustered": spec.clustered,
              "x0": box[0], "y0": box[1], "x1": box[2], "y1": box[3]}
    for _round in range(MAX_ROUNDS):
        wanted = spec.cases - routed
        if wanted <= 0:
            break
        batch = int(wanted * (OVERSAMPLE if drawn == 0 else max(OVERSAMPLE, 1.2 * drawn / max(routed, 1)))) + 16
        conn.execute(text("TRUNCATE syn_point"))
        conn.execute(text(_POINTS), {**params, "first": drawn + 1, "last": drawn + batch})
        drawn += batch
        conn.execute(text("CREATE INDEX syn_point_p ON syn_point USING gist (p)"))
        conn.execute(text("ANALYZE syn_point"))
        conn.execute(text(_ROUTE + " LIMIT :n"), {"county": county_code, "end": end, "n": wanted})
        conn.execute(text("DROP INDEX syn_point_p"))
        routed = conn.execute(text("SELECT count(*) FROM syn_routed")).scalar_one()
        say(f"{routed:,} of {spec.cases:,} points placed and routed ({drawn:,} drawn)")
    if routed < spec.cases:
        raise RuntimeError(f"only {routed:,} of {spec.cases:,} points fell inside county {county_code}")
    conn.execute(text("ANALYZE syn_routed"))
    seconds["points and routing"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    # As a superuser, triggers are off for this transaction (replica role): the case_notify trigger, and
    # the foreign keys' per-row checks, which are then made once, set-based, after the load. Otherwise
    # the per-row checks run, and only case_notify is disabled (which needs the table's owner).
    replica = not spec.announce and conn.execute(text("SELECT current_setting('is_superuser') = 'on'")).scalar_one()
    if replica:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
    elif not spec.announce:
        conn.execute(text('ALTER TABLE "case" DISABLE TRIGGER case_notify'))
    end_day = conn.execute(text("SELECT date_trunc('day', CAST(:e AS timestamptz) AT TIME ZONE 'Asia/Shanghai') "
                                "AT TIME ZONE 'Asia/Shanghai'"), {"e": end}).scalar_one()
    rebuilt = _drop_plain_indexes(conn) if spec.cases >= REBUILD_FROM else []
    span = max(1, int(spec.span_days))
    conn.execute(text(_DRAWS), {"category_ids": slots, "slots": len(slots), "span_days": span})
    ids = conn.execute(text(_INSERT + " RETURNING id"), {
        "county": county_code, "end": end, "end_day": end_day, "span_days": span,
        "description": "合成案件（压测数据）synthetic case for benchmarks",
        "routing": f'{{"synthetic": true, "engine": "bench.synthetic", "seed": {int(spec.seed)}}}',
    }).scalars().all()
    if replica:
        conn.execute(text("SET LOCAL session_replication_role = DEFAULT"))
        _check_foreign_keys(conn, min(ids), max(ids))
    elif not spec.announce:
        conn.execute(text('ALTER TABLE "case" ENABLE TRIGGER case_notify'))
    seconds["insert"] = time.perf_counter() - t0
    if rebuilt:
        t0 = time.perf_counter()
        for definition in rebuilt:
            conn.execute(text(definition))
        seconds["indexes"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    conn.execute(text('ANALYZE "case"'))
    seconds["analyze"] = time.perf_counter() - t0
    by_status = dict(conn.execute(text(
        'SELECT status, count(*) FROM "case" WHERE id BETWEEN :a AND :b AND county_code = :c GROUP BY status'),
        {"a": min(ids), "b": max(ids), "c": county_code}).all())
    return SyntheticResult(cases=len(ids), first_id=min(ids), last_id=max(ids), seconds=seconds,
                           by_status={k: int(v) for k, v in sorted(by_status.items(), key=lambda kv: -kv[1])})


def main(argv: list[str] | None = None) -> int:
    """Insert synthetic cases into a database and commit."""
    from sqlalchemy import create_engine

    from gis_platform.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m bench.synthetic", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, required=True)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                        help="default: DATABASE_URL (required: this never guesses a database to write into)")
    parser.add_argument("--county", default=os.environ.get("GIS_COUNTY_CODE", COUNTY))
    parser.add_argument("--seed", type=int, default=2021)
    parser.add_argument("--span-days", type=float, default=5 * 365.0)
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("give --database-url or set DATABASE_URL")
    url = Settings(_env_file=None, database_url=args.database_url).database_url or args.database_url
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            result = insert_cases(conn, args.county, SyntheticSpec(args.cases, seed=args.seed,
                                                                   span_days=args.span_days), _say)
    finally:
        engine.dispose()
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    print(f"inserted {result.cases:,} synthetic cases (ids {result.first_id}–{result.last_id}): {timings}")
    print("by status: " + ", ".join(f"{k} {v:,}" for k, v in result.by_status.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
