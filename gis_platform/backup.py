"""Back up and restore the platform: the database (pg_dump custom format) and the photo attachments.

An archive is one plain tar file (the dump is compressed already, and so are JPEG, PNG and WebP)::

    database.dump                       pg_dump -Fc, taken in the snapshot the counts below were read in
    attachments/<county>/<stored_name>  every photo the dumped ``attachment`` rows point to
    manifest.json                       versions, county, Alembic revision, row count and content digest
                                        of every table, SHA-256 and size of the dump and of every photo

The manifest comes last so that the photos are read once while the archive is written.

Restore checks every checksum before it touches anything. It then stages the photos next to the photo
folder and feeds the dump through ``psql`` in ONE transaction that also clears a ``--force``d target and
ends with a check of every table against the manifest: it commits only when every row came back. Only
then is the staged photo folder renamed into place, and the placed photos are hashed once more.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, Annotated, Literal

import psycopg
from psycopg.conninfo import make_conninfo
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from gis_platform.errors import PlatformError

Progress = Callable[[str], None]

FORMAT = "gis-platform-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DUMP = "database.dump"
ATTACHMENTS_DIR = "attachments"
CHUNK = 1 << 20
MAX_MANIFEST_BYTES = 256 << 20
# Output settings under which a row's text form, and so its digest, is the same on every server.
OUTPUT_SETTINGS = (
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "1"),
    ("bytea_output", "hex"),
)


def _noop(_: str) -> None:
    """Ignore a progress message."""


# ---------------------------------------------------------------------------------------------- errors


class BackupError(PlatformError):
    """A backup or restore could not be done; the message says why and what to do."""

    title = "Backup or restore failed"
    type_slug = "backup"
    #: Exit status of the command line for this kind of failure.
    exit_code = 1


class ArchiveInvalid(BackupError):
    """The file is not a platform backup, or its contents do not match their checksums."""

    status = 400
    exit_code = 3


class TargetNotEmpty(BackupError):
    """The database or the photo folder to restore into already holds data."""

    status = 409
    exit_code = 4


# -------------------------------------------------------------------------------------------- manifest

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
# A PostgreSQL identifier as the catalog holds it; quoted wherever it is used, control characters refused.
Name = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=r"^[^\x00-\x1f\x7f]+$")]
Digest = Annotated[str, StringConstraints(pattern=r"^\d{1,20}:-?\d{1,40}:-?\d{1,40}$")]
CountyCode = Annotated[str, StringConstraints(pattern=r"^\d{6}$")]
# Stored names are random hex plus an extension; nothing else (no "..", no slashes) can get in.
ATTACHMENT_PATH = rf"^{ATTACHMENTS_DIR}/\d{{6}}/[A-Za-z0-9_-][A-Za-z0-9._-]{{0,79}}$"
AttachmentPath = Annotated[str, StringConstraints(pattern=ATTACHMENT_PATH)]


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class DumpEntry(_Entry):
    """The database dump inside the archive."""

    path: Literal["database.dump"] = DUMP
    sha256: Sha256
    size: int = Field(ge=0)


class AttachmentEntry(_Entry):
    """One photo file inside the archive and the row it belongs to."""

    id: int
    path: AttachmentPath
    sha256: Sha256
    size: int = Field(ge=0)


class AttachmentProblem(_Entry):
    """An attachment row whose file was missing or differed from its recorded checksum at backup time."""

    id: int
    path: str = Field(max_length=200)
    problem: str = Field(max_length=200)


class TableEntry(_Entry):
    """A table with its row count and an order-independent digest of its rows."""

    schema_name: Name = Field(alias="schema")
    name: Name
    rows: int = Field(ge=0)
    digest: Digest

    @property
    def qualified(self) -> str:
        return f"{_ident(self.schema_name)}.{_ident(self.name)}"


class SequenceEntry(_Entry):
    """A sequence that feeds a table column; after a restore it must be past the column's largest value."""

    schema_name: Name = Field(alias="schema")
    name: Name
    table_schema: Name
    table: Name
    column: Name


class DatabaseInfo(_Entry):
    """Versions of the server and tools that made the dump, and the schema's Alembic revision."""

    server_version: str = Field(max_length=200)
    server_version_num: int
    pg_dump_version: str = Field(max_length=200)
    postgis_version: str | None = Field(default=None, max_length=100)
    alembic_revision: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_]{1,64}$")

    @property
    def pg_dump_major(self) -> int:
        match = _VERSION.search(self.pg_dump_version)
        return int(match.group(1)) if match else 0


class Manifest(_Entry):
    """What an archive holds, with the checksums that restore verifies."""

    format: Literal["gis-platform-backup"]
    format_version: Literal[1]
    created_at: AwareDatetime
    platform_version: str = Field(max_length=100)
    county_code: CountyCode
    counties: list[CountyCode]
    database: DatabaseInfo
    dump: DumpEntry
    tables: list[TableEntry]
    sequences: list[SequenceEntry]
    attachments: list[AttachmentEntry]
    attachment_problems: list[AttachmentProblem] = []

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        paths = [a.path for a in self.attachments]
        if len(set(paths)) != len(paths):
            raise ValueError("attachments: a path is listed twice")
        tables = [(t.schema_name, t.name) for t in self.tables]
        if len(set(tables)) != len(tables):
            raise ValueError("tables: a table is listed twice")
        for table in self.tables:
            if int(table.digest.split(":", 1)[0]) != table.rows:
                raise ValueError(f"tables: {table.schema_name}.{table.name} rows disagree with its digest")
        return self

    @property
    def rows(self) -> int:
        """Return the number of rows over all tables."""
        return sum(t.rows for t in self.tables)


# ---------------------------------------------------------------------------------------- SQL building


def _ident(name: str) -> str:
    """Quote a PostgreSQL identifier (any text without NUL)."""
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    """Quote a string literal for a session with standard_conforming_strings on."""
    return "'" + value.replace("'", "''") + "'"


_USER_SCHEMA = "n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'"


def _not_in_extension(catalog: str, oid: str) -> str:
    """Return a condition true when the object is not part of an extension (PostGIS's tables, say)."""
    return (f"NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = "
            f"'pg_catalog.{catalog}'::pg_catalog.regclass AND d.objid = {oid} AND d.deptype = 'e')")


# Every statement is schema-qualified: the restore script runs with an empty search_path.
USER_TABLES_SQL = (
    "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    f"WHERE c.relkind IN ('r', 'p') AND {_USER_SCHEMA} AND {_not_in_extension('pg_class', 'c.oid')} "
    'ORDER BY n.nspname COLLATE "C", c.relname COLLATE "C"'
)

OWNED_SEQUENCES_SQL = (
    "SELECT n.nspname, s.relname, tn.nspname, t.relname, a.attname FROM pg_catalog.pg_class s "
    "JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace "
    "JOIN pg_catalog.pg_depend dep ON dep.classid = 'pg_catalog.pg_class'::pg_catalog.regclass "
    "  AND dep.objid = s.oid AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass "
    "  AND dep.deptype IN ('a', 'i') "
    "JOIN pg_catalog.pg_class t ON t.oid = dep.refobjid "
    "JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace "
    "JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum = dep.refobjsubid "
    f"WHERE s.relkind = 'S' AND {_USER_SCHEMA} AND {_not_in_extension('pg_class', 's.oid')} "
    "  AND a.atttypid IN ('pg_catalog.int2'::pg_catalog.regtype, 'pg_catalog.int4'::pg_catalog.regtype, "
    "                     'pg_catalog.int8'::pg_catalog.regtype) "
    'ORDER BY n.nspname COLLATE "C", s.relname COLLATE "C"'
)

# Everything a restore would collide with, as (order, description, DROP statement). Extensions and
# their objects (PostGIS, btree_gist) are kept, so a target prepared with them stays usable.
_RELKINDS = ("CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' "
             "WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'c' THEN 'TYPE' ELSE 'TABLE' END")
USER_OBJECTS_SQL = (
    "SELECT 1 AS ord, 'schema ' || pg_catalog.quote_ident(n.nspname) AS description, "
    "       pg_catalog.format('DROP SCHEMA IF EXISTS %I CASCADE', n.nspname) AS drop_sql "
    "FROM pg_catalog.pg_namespace n "
    f"WHERE {_USER_SCHEMA} AND n.nspname <> 'public' AND {_not_in_extension('pg_namespace', 'n.oid')} "
    "  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE e.extnamespace = n.oid) "
    "UNION ALL "
    f"SELECT 2, pg_catalog.lower({_RELKINDS}) || ' ' || pg_catalog.format('%I.%I', n.nspname, c.relname), "
    f"       pg_catalog.format('DROP %s IF EXISTS %I.%I CASCADE', {_RELKINDS}, n.nspname, c.relname) "
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    f"WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c') AND {_USER_SCHEMA} "
    # A composite type's pg_class row is not an extension member, its pg_type row is (PostGIS's geometry_dump).
    f"  AND {_not_in_extension('pg_class', 'c.oid')} AND {_not_in_extension('pg_type', 'c.reltype')} "
    "UNION ALL "
    "SELECT 3, 'function ' || p.oid::pg_catalog.regprocedure::text, "
    "       pg_catalog.format('DROP %s IF EXISTS %s CASCADE', "
    "         CASE p.prokind WHEN 'a' THEN 'AGGREGATE' WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, "
    "         p.oid::pg_catalog.regprocedure) "
    "FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
    f"WHERE {_USER_SCHEMA} AND {_not_in_extension('pg_proc', 'p.oid')} "
    "UNION ALL "
    "SELECT 4, 'type ' || pg_catalog.format('%I.%I', n.nspname, t.typname), "
    "       pg_catalog.format('DROP TYPE IF EXISTS %I.%I CASCADE', n.nspname, t.typname) "
    "FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace "
    f"WHERE t.typtype IN ('e', 'd', 'r') AND {_USER_SCHEMA} AND {_not_in_extension('pg_type', 't.oid')}"
)

# Runs inside the restore transaction when --force is given; the statement list is built from the
# catalog at that moment, so nothing created after the emptiness check is missed.
CLEAR_SQL = f"""
DO $clear$
DECLARE
    stmt text;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog', true);
    FOREACH stmt IN ARRAY ARRAY(SELECT o.drop_sql FROM ({USER_OBJECTS_SQL}) AS o ORDER BY o.ord) LOOP
        EXECUTE stmt;
    END LOOP;
END
$clear$;
"""

EXPECT_FUNCTION_SQL = """
CREATE FUNCTION pg_temp.gis_backup_expect(what text, expected text, actual text) RETURNS void
LANGUAGE plpgsql AS $expect$
BEGIN
    IF actual IS DISTINCT FROM expected THEN
        RAISE EXCEPTION 'restore check failed: % is %, the archive says %',
            what, coalesce(actual, 'missing'), expected;
    END IF;
END
$expect$;
"""


def table_digest_sql(schema: str, table: str) -> str:
    """Return a query giving ``rows:sum1:sum2``, sums over the two halves of each row's MD5.

    The sum does not depend on row order, needs no sort and no memory per row, and changes when any
    value of any row changes; row text is stable under the OUTPUT_SETTINGS.
    """
    return (
        "SELECT pg_catalog.count(*)::text || ':' "
        "|| COALESCE(pg_catalog.sum(('x' || pg_catalog.substr(r.h, 1, 16))::bit(64)::bigint), 0)::text || ':' "
        "|| COALESCE(pg_catalog.sum(('x' || pg_catalog.substr(r.h, 17, 16))::bit(64)::bigint), 0)::text "
        f"FROM (SELECT pg_catalog.md5((gis_backup_row.*)::text) AS h "
        f"FROM {_ident(schema)}.{_ident(table)} AS gis_backup_row) AS r"
    )


def _expect(what: str, expected: str, actual_sql: str) -> str:
    """Return a statement that aborts the restore transaction when actual_sql differs from expected."""
    return f"SELECT pg_temp.gis_backup_expect({_literal(what)}, {_literal(expected)}, ({actual_sql}));"


def check_sql(manifest: Manifest) -> str:
    """Return the statements that compare the restored database with the manifest, table by table."""
    lines = ["SET standard_conforming_strings = on;", EXPECT_FUNCTION_SQL]
    lines += [f"SELECT pg_catalog.set_config({_literal(k)}, {_literal(v)}, true);" for k, v in OUTPUT_SETTINGS]
    lines.append(_expect("the number of tables", str(len(manifest.tables)),
                         f"SELECT pg_catalog.count(*)::text FROM ({USER_TABLES_SQL}) AS x"))
    for table in manifest.tables:
        label = f"{table.schema_name}.{table.name}"
        lines.append(_expect(f"table {label}", "present",
                             f"SELECT CASE WHEN pg_catalog.to_regclass({_literal(table.qualified)}) IS NULL "
                             "THEN 'absent' ELSE 'present' END"))
        lines.append(_expect(f"rows:digest of {label}", table.digest, table_digest_sql(table.schema_name, table.name)))
    for seq in manifest.sequences:
        column = f"{_ident(seq.table_schema)}.{_ident(seq.table)}"
        lines.append(_expect(
            f"sequence {seq.schema_name}.{seq.name} being past the largest {seq.table}.{seq.column}", "true",
            f"SELECT ((SELECT last_value FROM {_ident(seq.schema_name)}.{_ident(seq.name)}) >= "
            f"(SELECT COALESCE(pg_catalog.max({_ident(seq.column)}), 0) FROM {column}))::text"))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ connection


@dataclass(frozen=True)
class Target:
    """A database to back up or restore into, as a libpq connection string and a password kept apart."""

    conninfo: str
    password: str | None
    label: str

    @classmethod
    def from_url(cls, url: str) -> Target:
        """Parse a SQLAlchemy or libpq URL (postgresql://user:pw@host:port/db?sslmode=...)."""
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise BackupError(f"not a database URL: {exc}") from None
        if not parsed.drivername.startswith("postgresql"):
            raise BackupError(f"only PostgreSQL databases can be backed up, not {parsed.drivername}")
        params = {k: v for k, v in parsed.query.items() if isinstance(v, str)}
        conninfo = make_conninfo("", host=parsed.host, port=parsed.port, user=parsed.username,
                                 dbname=parsed.database, **params)
        label = f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database or ''}"
        return cls(conninfo=conninfo, password=parsed.password, label=label)

    @property
    def env(self) -> dict[str, str]:
        """Return the environment for pg_dump, pg_restore and psql: the password never goes on a command line."""
        env = dict(os.environ)
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        env.setdefault("PGCONNECT_TIMEOUT", "10")
        return env

    def connect(self) -> psycopg.Connection:
        """Open an autocommit connection, turning a failure into a message naming the database."""
        try:
            return psycopg.connect(self.conninfo, password=self.password, autocommit=True, connect_timeout=10,
                                   application_name="gis-platform-backup")
        except psycopg.OperationalError as exc:
            first = (str(exc).strip().splitlines() or ["unknown error"])[0]
            raise BackupError(f"cannot connect to the database {self.label}: {first}") from None


@dataclass(frozen=True)
class ServerInfo:
    """The server's version and its PostGIS."""

    version: str
    version_num: int
    postgis: str | None

    @property
    def major(self) -> int:
        return self.version_num // 10000


def _server_info(conn: psycopg.Connection) -> ServerInfo:
    """Return the version of the server and of PostGIS in the connected database."""
    version_text = conn.execute("SELECT pg_catalog.current_setting('server_version')").fetchone()[0]
    number = int(conn.execute("SELECT pg_catalog.current_setting('server_version_num')").fetchone()[0])
    postgis = conn.execute("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'postgis'").fetchone()
    return ServerInfo(version_text, number, postgis[0] if postgis else None)


def user_objects(conn: psycopg.Connection) -> list[str]:
    """Describe the schemas, tables, functions and types a database holds beyond its extensions."""
    rows = conn.execute(f"SELECT o.description FROM ({USER_OBJECTS_SQL}) AS o "
                        "ORDER BY o.ord, o.description NOT LIKE 'table %', o.description")
    return [r[0] for r in rows]


# ----------------------------------------------------------------------------------------- client tools

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.\d+)?")


@dataclass(frozen=True)
class ClientTools:
    """A folder holding pg_dump, pg_restore and psql of one PostgreSQL version."""

    bindir: Path
    version: str
    major: int

    def path(self, program: str) -> str:
        """Return the full path of one program."""
        return str(self.bindir / program)


def _tool_version(program: Path) -> tuple[str, int] | None:
    """Return the version line and major version a PostgreSQL program reports."""
    try:
        out = subprocess.run([str(program), "--version"], capture_output=True, text=True, timeout=30,
                             check=True, stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION.search(out)
    return (out.strip(), int(match.group(1))) if match else None


def find_client_tools(server_major: int, pg_bin: Path | None, programs: tuple[str, ...]) -> ClientTools:
    """Find programs whose version matches the server: GIS_PG_BIN, else Debian's folder for that version.

    pg_dump refuses a server newer than itself, and the SQL a newer pg_restore writes may not load
    into an older server, so the server's own version is preferred and an older one never used.
    """
    if pg_bin is not None:
        candidates = [Path(pg_bin).expanduser()]
    else:
        candidates = [Path(f"/usr/lib/postgresql/{server_major}/bin")]
        if found := shutil.which(programs[0]):
            candidates.append(Path(found).parent)
        newer = [p for p in Path("/usr/lib/postgresql").glob("*/bin")
                 if p.parent.name.isdigit() and int(p.parent.name) > server_major]
        candidates.extend(sorted(newer, key=lambda p: int(p.parent.name)))
    rejected: list[str] = []
    for bindir in candidates:
        if not all(os.access(bindir / name, os.X_OK) for name in programs):
            continue
        described = _tool_version(bindir / programs[0])
        if described is None:
            continue
        if described[1] >= server_major:
            return ClientTools(bindir=bindir, version=described[0], major=described[1])
        rejected.append(f"{bindir} has PostgreSQL {described[1]}")
    where = f" in GIS_PG_BIN={pg_bin}" if pg_bin is not None else ""
    seen = f" ({'; '.join(rejected)})" if rejected else ""
    raise BackupError(
        f"{' and '.join(programs)} for PostgreSQL {server_major} not found{where}{seen}: install "
        f"postgresql-client-{server_major} (apt-get install postgresql-client-{server_major}), "
        "or set GIS_PG_BIN to the folder that holds them"
    )


def _run(argv: list[str], *, env: dict[str, str], what: str) -> str:
    """Run a PostgreSQL program and return its output, or raise with the last lines of its errors."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise BackupError(f"cannot run {what}: {exc}") from None
    if result.returncode != 0:
        raise BackupError(f"{what} failed: {_tail(result.stderr)}", log_detail=result.stderr)
    return result.stdout


def _tail(text: str, lines: int = 3) -> str:
    """Return the last few non-empty lines of a program's error output."""
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) or "no message"


# -------------------------------------------------------------------------------------------- files


def attachment_path(data_dir: Path, county_code: str, stored_name: str) -> Path:
    """Return where a photo is kept: ``<data dir>/attachments/<county>/<stored name>``."""
    return data_dir / ATTACHMENTS_DIR / county_code / stored_name


class _HashingReader:
    """A file wrapper that hashes what is read through it (tarfile reads members through it)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.hash.update(data)
        return data


def sha256_file(path: Path) -> str:
    """Return the SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    """Make a rename or a new file in a folder durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _files_under(folder: Path) -> list[Path]:
    """Return the files below a folder (none when it does not exist)."""
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


def platform_version() -> str:
    """Return the installed platform version."""
    try:
        return version("yanggu-gis-platform")
    except PackageNotFoundError:
        return "unknown"


def default_archive_path(data_dir: Path, county_code: str, now: datetime | None = None) -> Path:
    """Return ``<data dir>/backups/gis-platform-<county>-<UTC time>.tar``."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return data_dir / "backups" / f"gis-platform-{county_code}-{stamp}.tar"


# ---------------------------------------------------------------------------------------------- backup


@dataclass(frozen=True)
class BackupResult:
    """What a backup wrote."""

    archive: Path
    manifest: Manifest
    size: int
    seconds: float

    def summary(self) -> str:
        """Return a one-paragraph report for the command line."""
        m = self.manifest
        return (f"backup written: {self.archive}\n"
                f"  {len(m.tables)} tables, {m.rows:,} rows, revision {m.database.alembic_revision or 'none'}, "
                f"{len(m.attachments)} photos, {self.size / 1e6:,.1f} MB in {self.seconds:.1f} s")


def _read_snapshot_facts(conn: psycopg.Connection) -> tuple[list[TableEntry], list[SequenceEntry], str | None,
                                                            list[str], list[tuple[int, str, str, str]]]:
    """Read tables with digests, owned sequences, revision, counties and photo rows in the open snapshot."""
    for name, value in OUTPUT_SETTINGS:
        conn.execute("SELECT pg_catalog.set_config(%s, %s, true)", (name, value))
    tables = []
    for schema, table in conn.execute(USER_TABLES_SQL).fetchall():
        digest = conn.execute(table_digest_sql(schema, table)).fetchone()[0]
        tables.append(TableEntry(schema=schema, name=table, rows=int(digest.split(":", 1)[0]), digest=digest))
    sequences = [SequenceEntry(schema=r[0], name=r[1], table_schema=r[2], table=r[3], column=r[4])
                 for r in conn.execute(OWNED_SEQUENCES_SQL).fetchall()]
    names = {(t.schema_name, t.name) for t in tables}
    revision = None
    if ("public", "alembic_version") in names:
        row = conn.execute("SELECT version_num FROM public.alembic_version").fetchone()
        revision = row[0] if row else None
    counties: list[str] = []
    if ("public", "admin_unit") in names:
        counties = [r[0] for r in conn.execute(
            "SELECT DISTINCT county_code FROM public.admin_unit WHERE level = 'county' ORDER BY 1")]
    photos: list[tuple[int, str, str, str]] = []
    if ("public", "attachment") in names:
        photos = conn.execute(
            "SELECT id, county_code, stored_name, sha256 FROM public.attachment ORDER BY id").fetchall()
    return tables, sequences, revision, counties, photos


def backup(url: str, data_dir: Path, output: Path, *, county_code: str, pg_bin: Path | None = None,
           progress: Progress = _noop) -> BackupResult:
    """Write the database and its photos to one archive at output, then read it back to check it."""
    started = time.monotonic()
    data_dir = Path(data_dir).expanduser().resolve()
    output = Path(output).expanduser().absolute()
    if output.exists():
        raise BackupError(f"{output} already exists; choose another --output")
    target = Target.from_url(url)
    output.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        with target.connect() as conn:
            server = _server_info(conn)
            tools = find_client_tools(server.major, pg_bin, ("pg_dump",))
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            with conn.transaction():
                # pg_dump reads the same snapshot, so the counts and photo list match the dump exactly
                # even while the platform keeps taking reports.
                snapshot = conn.execute("SELECT pg_catalog.pg_export_snapshot()").fetchone()[0]
                progress(f"reading {target.label} (PostgreSQL {server.version})…")
                tables, sequences, revision, counties, photo_rows = _read_snapshot_facts(conn)
                progress(f"dumping the database with {tools.path('pg_dump')}…")
                _run([tools.path("pg_dump"), "--format=custom", "--no-password", f"--snapshot={snapshot}",
                      "--lock-wait-timeout=60s", f"--file={work / DUMP}", f"--dbname={target.conninfo}"],
                     env=target.env, what="pg_dump")
        dump = DumpEntry(sha256=sha256_file(work / DUMP), size=(work / DUMP).stat().st_size)
        progress(f"archiving the dump ({dump.size / 1e6:,.1f} MB) and {len(photo_rows)} photos…")

        def describe(attachments: list[AttachmentEntry], problems: list[AttachmentProblem]) -> Manifest:
            return Manifest(
                format=FORMAT, format_version=FORMAT_VERSION, created_at=datetime.now(UTC),
                platform_version=platform_version(), county_code=county_code, counties=counties,
                database=DatabaseInfo(server_version=server.version, server_version_num=server.version_num,
                                      pg_dump_version=tools.version, postgis_version=server.postgis,
                                      alembic_revision=revision),
                dump=dump, tables=tables, sequences=sequences, attachments=attachments,
                attachment_problems=problems,
            )

        partial = work / "archive.tar"
        manifest = _write_archive(partial, work / DUMP, data_dir, photo_rows, describe)
        try:
            os.link(partial, output)  # unlike a rename, never replaces a file that appeared meanwhile
        except FileExistsError:
            raise BackupError(f"{output} already exists; choose another --output") from None
        _fsync_dir(output.parent)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    progress("reading the archive back to check it…")
    verify_archive(output)
    return BackupResult(archive=output, manifest=manifest, size=output.stat().st_size,
                        seconds=time.monotonic() - started)


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    """Return the header of a regular file member, readable by its owner only."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = int(time.time())
    return info


def _write_archive(path: Path, dump: Path, data_dir: Path, photo_rows: Iterable[tuple[int, str, str, str]],
                   describe: Callable[[list[AttachmentEntry], list[AttachmentProblem]], Manifest]) -> Manifest:
    """Write the dump, every photo and, last, the manifest describe() makes from them into a new tar file."""
    attachments: list[AttachmentEntry] = []
    problems: list[AttachmentProblem] = []
    # The archive holds personal data (reporters' contacts), so only its owner may read it.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as raw:
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            with open(dump, "rb") as handle:
                tar.addfile(_tar_info(DUMP, dump.stat().st_size), handle)
            for photo_id, county, stored_name, recorded in photo_rows:
                entry = _archive_photo(tar, data_dir, photo_id, county, stored_name, problems)
                if entry is not None:
                    attachments.append(entry)
                    if entry.sha256 != recorded:
                        problems.append(AttachmentProblem(id=photo_id, path=entry.path,
                                                          problem="file differs from the checksum recorded at upload"))
            manifest = describe(attachments, problems)
            body = manifest.model_dump_json(by_alias=True, indent=1).encode()
            tar.addfile(_tar_info(MANIFEST, len(body)), io.BytesIO(body))
        raw.flush()
        os.fsync(raw.fileno())
    return manifest


def _archive_photo(tar: tarfile.TarFile, data_dir: Path, photo_id: int, county: str, stored_name: str,
                   problems: list[AttachmentProblem]) -> AttachmentEntry | None:
    """Add one photo to the archive, hashing it on the way; record a problem instead when it cannot be."""
    name = f"{ATTACHMENTS_DIR}/{county}/{stored_name}"
    if not re.fullmatch(ATTACHMENT_PATH, name):
        problems.append(AttachmentProblem(id=photo_id, path=name[:200], problem="unsafe file name, not archived"))
        return None
    source = attachment_path(data_dir, county, stored_name)
    try:
        handle = open(source, "rb")
    except FileNotFoundError:
        problems.append(AttachmentProblem(id=photo_id, path=name, problem="file missing on disk"))
        return None
    with handle:
        size = os.fstat(handle.fileno()).st_size
        reader = _HashingReader(handle)
        try:
            tar.addfile(_tar_info(name, size), reader)
        except OSError as exc:
            raise BackupError(f"{source} changed while it was being archived ({exc}); run the backup again") from None
    return AttachmentEntry(id=photo_id, path=name, sha256=reader.hash.hexdigest(), size=size)


# ---------------------------------------------------------------------------------------------- verify


def _parse_manifest(data: bytes, archive: Path) -> Manifest:
    """Validate manifest.json, naming the first field that is wrong."""
    try:
        return Manifest.model_validate_json(data)
    except PydanticValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(document)"
        raise ArchiveInvalid(f"{archive.name}: manifest.json is not valid: {where}: {err['msg']}") from None


def verify_archive(archive: Path, *, extract_to: Path | None = None) -> Manifest:
    """Check every member of an archive against the manifest's sizes and SHA-256; return the manifest.

    With extract_to, also write each checked member below that folder (it must be empty); the caller
    removes it when this raises.
    """
    archive = Path(archive)
    try:
        tar = tarfile.open(archive, mode="r:")
    except (tarfile.TarError, OSError) as exc:
        raise ArchiveInvalid(f"{archive} is not a gis-platform backup archive (a .tar file): {exc}") from None
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, OSError) as exc:
            raise ArchiveInvalid(f"{archive.name} is damaged: {exc}") from None
        names = [m.name for m in members]
        if len(set(names)) != len(names):
            raise ArchiveInvalid(f"{archive.name} lists a file twice; it was altered")
        by_name = {m.name: m for m in members}
        head = by_name.get(MANIFEST)
        if head is None or not head.isreg():
            raise ArchiveInvalid(f"{archive.name} has no manifest.json: it is not a gis-platform backup")
        if head.size > MAX_MANIFEST_BYTES:
            raise ArchiveInvalid(f"{archive.name}: manifest.json is implausibly large")
        manifest = _parse_manifest(_extract(tar, head).read(), archive)
        expected: dict[str, DumpEntry | AttachmentEntry] = {DUMP: manifest.dump}
        expected.update({a.path: a for a in manifest.attachments})
        if unexpected := sorted(set(names) - set(expected) - {MANIFEST}):
            raise ArchiveInvalid(f"{archive.name} holds {unexpected[0]!r}, which the manifest does not list")
        if missing := sorted(set(expected) - set(names)):
            raise ArchiveInvalid(f"{archive.name} lacks {missing[0]!r}, which the manifest lists")
        for member in members:
            if member.name == MANIFEST:
                continue
            entry = expected[member.name]
            if not member.isreg():
                raise ArchiveInvalid(f"{archive.name}: {member.name} is not a regular file")
            if member.size != entry.size:
                raise ArchiveInvalid(f"{archive.name}: {member.name} has {member.size} bytes, the manifest "
                                     f"says {entry.size}: the archive is damaged or was altered")
            destination = None if extract_to is None else extract_to / member.name
            if _copy_hashing(_extract(tar, member), destination) != entry.sha256:
                raise ArchiveInvalid(f"{archive.name}: checksum mismatch for {member.name}: the archive is "
                                     "damaged or was altered")
    return manifest


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    """Open a member for reading, as a damaged-archive error when that fails."""
    try:
        handle = tar.extractfile(member)
    except (tarfile.TarError, OSError) as exc:
        raise ArchiveInvalid(f"cannot read {member.name}: {exc}") from None
    if handle is None:
        raise ArchiveInvalid(f"{member.name} is not a regular file")
    return handle


def _copy_hashing(source: IO[bytes], destination: Path | None) -> str:
    """Hash a stream, also writing it to a new file when a destination is given."""
    digest = hashlib.sha256()
    out: IO[bytes] | None = None
    if destination is not None:
        destination.parent.mkdir(parents=True, exist_ok=True)
        out = open(destination, "xb")
    try:
        while True:
            try:
                chunk = source.read(CHUNK)
            except (tarfile.TarError, OSError) as exc:
                raise ArchiveInvalid(f"the archive is truncated or damaged: {exc}") from None
            if not chunk:
                break
            digest.update(chunk)
            if out is not None:
                out.write(chunk)
        if out is not None:
            out.flush()
            os.fsync(out.fileno())
    finally:
        if out is not None:
            out.close()
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------- restore


@dataclass(frozen=True)
class RestoreResult:
    """What a restore put back."""

    manifest: Manifest
    database: str
    photos_dir: Path
    revision_state: str  # "head", "behind", "unknown" or "none"
    replaced: bool
    seconds: float

    def summary(self) -> str:
        """Return a short report for the command line."""
        m = self.manifest
        replaced = ", replacing what it held" if self.replaced else ""
        lines = [f"restored the backup of {m.created_at:%Y-%m-%d %H:%M} UTC into {self.database}{replaced}",
                 f"  {len(m.tables)} tables and {m.rows:,} rows checked against the manifest, "
                 f"{len(m.attachments)} photos in {self.photos_dir} ({self.seconds:.1f} s)"]
        if self.revision_state == "behind":
            lines.append(f"  the schema is at revision {m.database.alembic_revision}, older than this version's: "
                         "run `gis-platform db upgrade`")
        return "\n".join(lines)


def revision_state(revision: str | None, script_location: Path | None) -> str:
    """Say how an Alembic revision relates to this code's migrations: head, behind, unknown or none."""
    if revision is None or script_location is None:
        return "none"
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    script = ScriptDirectory(str(script_location))
    if revision in script.get_heads():
        return "head"
    try:
        found = script.get_revision(revision)
    except CommandError:
        return "unknown"
    return "behind" if found is not None else "unknown"


def _extensions_in(toc: str) -> list[str]:
    """Return the extensions a pg_restore table of contents creates."""
    return re.findall(r"^\d+; \d+ \d+ EXTENSION - (\S+)", toc, flags=re.MULTILINE)


def _restore_list(toc: str) -> str:
    """Return the table of contents with extension comments skipped.

    COMMENT ON EXTENSION needs the extension's owner, which a database owner restoring into a database
    prepared by an administrator is not; the comment carries nothing of the platform's.
    """
    return re.sub(r"^(\d+; \d+ \d+ COMMENT - EXTENSION )", r";\1", toc, flags=re.MULTILINE)


def restore(archive: Path, url: str, data_dir: Path, *, force: bool = False, pg_bin: Path | None = None,
            script_location: Path | None = None, progress: Progress = _noop) -> RestoreResult:
    """Restore an archive into an empty database and photo folder (or replace them, with force)."""
    started = time.monotonic()
    archive = Path(archive)
    progress(f"checking every checksum in {archive.name}…")
    manifest = verify_archive(archive)
    state = revision_state(manifest.database.alembic_revision, script_location)
    if state == "unknown":
        raise BackupError(f"the archive's schema is at revision {manifest.database.alembic_revision}, which this "
                          "version of the platform does not know: restore it with the version that made it")
    target = Target.from_url(url)
    photos = (Path(data_dir).expanduser().resolve() / ATTACHMENTS_DIR).resolve()  # a symlinked folder stays put
    with target.connect() as conn:
        server = _server_info(conn)
        occupied = user_objects(conn)
        available = {r[0] for r in conn.execute("SELECT name FROM pg_catalog.pg_available_extensions")}
    files = _files_under(photos)
    if (occupied or files) and not force:
        held = [*occupied[:3], *(f"file {p}" for p in files[:max(0, 3 - len(occupied))])]
        more = len(occupied) + len(files) - len(held)
        raise TargetNotEmpty(
            f"the target is not empty ({', '.join(held)}{f' and {more} more' if more else ''}); restore into an "
            "empty database and photo folder, or pass --force to replace what they hold")
    tools = find_client_tools(server.major, pg_bin, ("pg_restore", "psql"))
    if tools.major < manifest.database.pg_dump_major:
        raise BackupError(f"the archive was written by {manifest.database.pg_dump_version}; restoring it needs "
                          f"pg_restore {manifest.database.pg_dump_major} or newer (found {tools.version})")
    photos.parent.mkdir(parents=True, exist_ok=True)
    # Staged beside the photo folder, on the same file system, so that moving it into place is a rename.
    work = Path(tempfile.mkdtemp(prefix=".restore-", dir=photos.parent))
    try:
        progress("unpacking the archive…")
        verify_archive(archive, extract_to=work)
        toc = _run([tools.path("pg_restore"), "--list", str(work / DUMP)], env=target.env, what="pg_restore --list")
        if lacking := sorted(set(_extensions_in(toc)) - available):
            raise BackupError(f"the target server lacks the extension(s) {', '.join(lacking)} the archive needs: "
                              f"install them there (PostGIS: postgresql-{server.major}-postgis-3)")
        (work / "restore.list").write_text(_restore_list(toc))
        progress(f"loading the database into {target.label} in one transaction…")
        _load(tools, target, work / DUMP, work / "restore.list", manifest, clear=force)
        progress("moving the photos into place…")
        _swap_in(work / ATTACHMENTS_DIR, photos, work)
        progress("checking the placed photos…")
        _check_placed(photos, manifest, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return RestoreResult(manifest=manifest, database=target.label, photos_dir=photos, revision_state=state,
                         replaced=bool(occupied or files), seconds=time.monotonic() - started)


def _load(tools: ClientTools, target: Target, dump: Path, toc_list: Path, manifest: Manifest, *,
          clear: bool) -> None:
    """Load the dump through psql in one transaction that commits only when every check passes.

    pg_restore writes the SQL; psql runs it after our BEGIN (and, with clear, the DROPs). The checks and
    COMMIT are sent only when pg_restore finished cleanly: if anything fails, psql stops (ON_ERROR_STOP)
    or sees the end of its input inside the transaction, and the server rolls everything back.
    """
    prelude = "SET client_min_messages = warning;\nSET standard_conforming_strings = on;\nBEGIN;\n"
    if clear:
        prelude += CLEAR_SQL
    finale = check_sql(manifest) + "COMMIT;\n"
    with tempfile.TemporaryFile() as psql_err, tempfile.TemporaryFile() as restore_err:
        psql = subprocess.Popen(
            [tools.path("psql"), "--no-psqlrc", "--quiet", "--no-password", "--set=ON_ERROR_STOP=1",
             f"--dbname={target.conninfo}"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=psql_err, env=target.env)
        pg_restore = subprocess.Popen(
            [tools.path("pg_restore"), "--no-owner", "--no-privileges", f"--use-list={toc_list}", "--file=-",
             str(dump)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=restore_err, env=target.env)
        sent = False
        try:
            psql.stdin.write(prelude.encode())
            shutil.copyfileobj(pg_restore.stdout, psql.stdin, CHUNK)
            pg_restore.stdout.close()
            if pg_restore.wait() == 0:
                psql.stdin.write(finale.encode())
                sent = True
        except BrokenPipeError:
            pass  # psql stopped at an error; its message says which
        finally:
            pg_restore.stdout.close()
            restore_rc = pg_restore.wait()
            with contextlib.suppress(BrokenPipeError):
                psql.stdin.close()
            psql_rc = psql.wait()
        psql_err.seek(0)
        restore_err.seek(0)
        psql_text = psql_err.read().decode(errors="replace")
        restore_text = restore_err.read().decode(errors="replace")
    if psql_rc != 0:
        errors = [line.split("ERROR:", 1)[1].strip() for line in psql_text.splitlines() if "ERROR:" in line]
        reason = errors[0] if errors else _tail(psql_text)
        raise BackupError(f"the restore was rolled back, the database is as it was: {reason}", log_detail=psql_text)
    if restore_rc != 0 or not sent:
        raise BackupError(f"pg_restore failed, the database is as it was: {_tail(restore_text)}",
                          log_detail=restore_text)


def _swap_in(staged: Path, photos: Path, work: Path) -> None:
    """Put the staged photo folder in place with renames; put the old one back if that fails."""
    staged.mkdir(exist_ok=True)
    old: Path | None = None
    if photos.exists():
        old = work / "attachments.replaced"
        os.replace(photos, old)
    try:
        os.replace(staged, photos)
    except OSError as exc:
        if old is not None:
            os.replace(old, photos)
        raise BackupError(f"the database was restored but the photos could not be moved to {photos}: {exc}") from None
    _fsync_dir(photos.parent)


def _check_placed(photos: Path, manifest: Manifest, target: Target) -> None:
    """Hash every placed photo and compare it with the manifest and with its restored database row."""
    by_path = {a.path: a for a in manifest.attachments}
    for entry in manifest.attachments:
        path = photos / entry.path.split("/", 1)[1]
        if not path.is_file() or sha256_file(path) != entry.sha256:
            raise BackupError(f"photo {path} does not match the archive after the restore")
    if not any((t.schema_name, t.name) == ("public", "attachment") for t in manifest.tables):
        return
    known_problems = {p.id for p in manifest.attachment_problems}
    with target.connect() as conn:
        rows = conn.execute("SELECT id, county_code, stored_name, sha256 FROM public.attachment").fetchall()
    for photo_id, county, stored_name, recorded in rows:
        entry = by_path.get(f"{ATTACHMENTS_DIR}/{county}/{stored_name}")
        if photo_id not in known_problems and (entry is None or entry.sha256 != recorded):
            raise BackupError(f"attachment {photo_id} has no matching photo after the restore")
