"""`gis-platform db backup` / `db restore`: a round trip gives back every row, geometry and photo; a damaged
or altered archive and a non-empty target are refused, and then nothing is written."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import shapely
from click.testing import CliRunner
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from gis_platform import backup
from gis_platform import models as m
from gis_platform.cli import cli, upgrade_database
from gis_platform.geometry import to_ewkt
from layers.cases import Actor, act, report_case
from tests.factories import make_county

COUNTY = "379901"
# Text that breaks naive dumping or quoting: quotes, a backslash, a newline, a tab, CJK and an emoji.
AWKWARD = "占道经营 \"quoted\" O'Brien \\ back\\slash\nsecond line\t🚧"


@dataclass
class World:
    """A committed mini county with cases, events, a structure with a hole, photos on disk, and its backup."""

    url: str
    engine: Engine
    data_dir: Path
    archive: Path
    backup_output: str


def _cli(args: list[str], url: str, data_dir: Path):
    env = {"DATABASE_URL": url, "GIS_DATA_DIR": str(data_dir), "GIS_COUNTY_CODE": COUNTY, "GIS_PG_BIN": None}
    return CliRunner().invoke(cli, args, env=env)


def _add_photo(session: Session, data_dir: Path, case: m.Case, content: bytes, stage: str) -> None:
    name = hashlib.sha256(content).hexdigest()[:32] + ".jpg"
    folder = backup.attachment_path(data_dir, case.county_code, name).parent
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(content)
    session.add(m.Attachment(county_code=case.county_code, case_id=case.id, stage=stage, stored_name=name,
                             original_name="现场.jpg", mime_type="image/jpeg", size_bytes=len(content),
                             sha256=hashlib.sha256(content).hexdigest()))


@pytest.fixture(scope="module")
def world(pg_server, tmp_path_factory) -> World:
    url = pg_server.create(f"gis_backup_src_{os.getpid()}")
    upgrade_database(url)
    engine = create_engine(url)
    data_dir = tmp_path_factory.mktemp("backup-src")
    with Session(engine) as session, session.begin():
        county = make_county(session, COUNTY)
        patroller, supervisor = (Actor.of(county.users[u]) for u in ("pw", "sup1"))
        first = report_case(session, COUNTY, category="TD02", source="patroller", reporter=patroller,
                            geometry={"type": "Point", "coordinates": [115.72, 36.02]}, description=AWKWARD)
        second = report_case(session, COUNTY, category="MS03", source="citizen", reporter_contact="13800000000",
                             geometry={"type": "Point", "coordinates": [115.78, 36.03]}, description="无照经营")
        act(session, first.case.id, "file", supervisor, note=AWKWARD)
        hole = shapely.Polygon([(115.71, 36.01), (115.73, 36.01), (115.73, 36.03), (115.71, 36.03)],
                               [[(115.715, 36.015), (115.72, 36.015), (115.72, 36.02), (115.715, 36.015)]])
        session.add(m.IllegalStructure(county_code=COUNTY, case_id=first.case.id, address=AWKWARD, builder="张三",
                                       footprint=to_ewkt(shapely.MultiPolygon([hole])), area_m2=1234.5678901234,
                                       stage="filed", discovered_at=datetime(2021, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)))
        _add_photo(session, data_dir, first.case, b"\xff\xd8\xff\xe0 before " + bytes(range(256)) * 40, "before")
        _add_photo(session, data_dir, second.case, b"\xff\xd8\xff\xe0 after " + os.urandom(5000), "after")
        # A row whose file is gone: backed up with a warning, restored as it was.
        session.add(m.Attachment(county_code=COUNTY, case_id=second.case.id, stage="other",
                                 stored_name="0" * 32 + ".jpg", mime_type="image/jpeg", size_bytes=9,
                                 sha256=hashlib.sha256(b"vanished!").hexdigest()))
    archive = tmp_path_factory.mktemp("backup-out") / "county.tar"
    result = _cli(["db", "backup", "--output", str(archive)], url, data_dir)
    assert result.exit_code == 0, result.output
    yield World(url=url, engine=engine, data_dir=data_dir, archive=archive, backup_output=result.output)
    engine.dispose()


@pytest.fixture(scope="module")
def empty_target(pg_server) -> str:
    """Return a fresh database (PostGIS only) that the refusal tests must leave empty."""
    return pg_server.create(f"gis_backup_empty_{os.getpid()}")


# ------------------------------------------------------------------------------------------ comparison


def _tables(conn) -> list[str]:
    return list(conn.execute(text(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'spatial_ref_sys' "
        "ORDER BY tablename")).scalars())


def _table_fingerprint(conn, table: str) -> tuple[int, str]:
    """Return the row count and the MD5 of every row in primary-key order (an independent check)."""
    pk = conn.execute(text(
        "SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY array_position(i.indkey, a.attnum)) "
        "FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE i.indrelid = CAST(:t AS regclass) AND i.indisprimary"), {"t": f'public."{table}"'}).scalar_one()
    order = pk or "t::text"
    return tuple(conn.execute(text(
        f'SELECT count(*), md5(coalesce(string_agg(t::text, E\'\\n\' ORDER BY {order}), \'\')) '
        f'FROM public."{table}" AS t')).one())


def _geometries(conn) -> list[tuple[str, str]]:
    return [tuple(r) for r in conn.execute(text(
        "SELECT f_table_name, f_geometry_column FROM geometry_columns WHERE f_table_schema = 'public' "
        "ORDER BY 1, 2"))]


def _files(data_dir: Path) -> dict[str, str]:
    root = data_dir / "attachments"
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()} if root.exists() else {}


def _assert_same(source: World, target_url: str, target_dir: Path) -> None:
    """Compare every table (rows and content), every geometry, every sequence and every photo."""
    target = create_engine(target_url)
    try:
        with source.engine.connect() as src, target.connect() as dst:
            tables = _tables(src)
            assert len(tables) > 20 and _tables(dst) == tables
            for table in tables:
                assert _table_fingerprint(dst, table) == _table_fingerprint(src, table), table
            geometry_columns = _geometries(src)
            assert _geometries(dst) == geometry_columns and len(geometry_columns) >= 8
            compared = 0
            for table, column in geometry_columns:
                query = text(f'SELECT id, ST_AsEWKB("{column}") FROM public."{table}" '
                             f'WHERE "{column}" IS NOT NULL ORDER BY id')
                rows = [(i, bytes(g)) for i, g in src.execute(query)]
                assert [(i, bytes(g)) for i, g in dst.execute(query)] == rows, (table, column)
                if rows:
                    equal = dst.execute(text(
                        f'SELECT count(*) FROM public."{table}" t JOIN unnest(CAST(:ids AS bigint[]), '
                        f'CAST(:wkbs AS bytea[])) AS s(id, wkb) ON t.id = s.id '
                        f'WHERE ST_Equals(t."{column}", ST_GeomFromEWKB(s.wkb))'),
                        {"ids": [r[0] for r in rows], "wkbs": [r[1] for r in rows]}).scalar_one()
                    assert equal == len(rows), (table, column)
                    compared += len(rows)
            assert compared >= 10
            for seq_table in ("case", "case_event", "attachment"):
                ahead = dst.execute(text(
                    f"SELECT (SELECT last_value FROM {seq_table}_id_seq) "
                    f">= (SELECT max(id) FROM public.\"{seq_table}\")")).scalar_one()
                assert ahead, seq_table
            assert dst.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == \
                src.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
            # Functions and triggers came back too: the event log is still append-only.
            with pytest.raises(DBAPIError, match="append-only"):
                dst.execute(text("UPDATE case_event SET note = 'rewritten'"))
            dst.rollback()
            photo_rows = dst.execute(text(
                "SELECT county_code || '/' || stored_name, sha256 FROM attachment ORDER BY id")).all()
    finally:
        target.dispose()
    source_files = _files(source.data_dir)
    assert len(source_files) == 2
    assert _files(target_dir) == source_files
    on_disk = {path: digest for path, digest in photo_rows if path in source_files}
    assert on_disk == source_files  # every restored file matches its row's checksum


def _assert_untouched(url: str, data_dir: Path) -> None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert _tables(conn) == []
    finally:
        engine.dispose()
    assert list(data_dir.iterdir()) == []  # no photos, no staging folder left behind


# ------------------------------------------------------------------------------------------- tests


def test_backup_writes_one_private_archive_with_a_full_manifest(world):
    assert "2 photos" in world.backup_output and "warning: attachment" in world.backup_output
    assert world.archive.stat().st_mode & 0o077 == 0
    with tarfile.open(world.archive) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert names[0] == "database.dump" and names[-1] == "manifest.json"
    assert sorted(n for n in names if n.startswith("attachments/")) == \
        sorted(f"attachments/{p}" for p in _files(world.data_dir))
    assert manifest["county_code"] == COUNTY and manifest["counties"] == [COUNTY]
    with world.engine.connect() as conn:
        assert manifest["database"]["alembic_revision"] == \
            conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        rows = {t["name"]: t["rows"] for t in manifest["tables"]}
        assert rows["case"] == 2 and rows["attachment"] == 3
        assert rows["case_event"] == conn.execute(text("SELECT count(*) FROM case_event")).scalar_one()
    assert manifest["database"]["pg_dump_version"].startswith("pg_dump (PostgreSQL)")
    assert [p["problem"] for p in manifest["attachment_problems"]] == ["file missing on disk"]
    result = _cli(["db", "restore", "--verify-only", str(world.archive)], world.url, world.data_dir)
    assert result.exit_code == 0 and "intact" in result.output


def test_round_trip_restores_every_table_geometry_and_photo(world, pg_server, tmp_path):
    url = pg_server.create(f"gis_backup_dst_{os.getpid()}")
    result = _cli(["db", "restore", str(world.archive)], url, tmp_path)
    assert result.exit_code == 0, result.output
    assert "checked against the manifest" in result.output
    _assert_same(world, url, tmp_path)


def _rewrite(archive: Path, out: Path, change) -> None:
    """Copy an archive member by member, letting change(name, data) alter or drop each one."""
    with tarfile.open(archive) as src, tarfile.open(out, "w") as dst:
        for member in src.getmembers():
            data = change(member.name, src.extractfile(member).read())
            if data is not None:
                member.size = len(data)
                dst.addfile(member, io.BytesIO(data))


def _flip_photo_byte(archive: Path, out: Path) -> None:
    shutil.copy(archive, out)
    with tarfile.open(out) as tar:
        photo = next(m for m in tar.getmembers() if m.name.startswith("attachments/"))
    with open(out, "r+b") as handle:
        handle.seek(photo.offset_data + 100)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0x01]))


def _lie_about_rows(archive: Path, out: Path) -> None:
    def change(name, data):
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        for table in manifest["tables"]:
            if table["name"] == "case":
                table["rows"], table["digest"] = 3, "3:" + table["digest"].split(":", 1)[1]
        return json.dumps(manifest).encode()
    _rewrite(archive, out, change)


def _add_member(archive: Path, out: Path) -> None:
    shutil.copy(archive, out)
    with tarfile.open(out, "a") as tar:
        info = tarfile.TarInfo("attachments/379901/../../evil.sh")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"boom"))


TAMPERING = {
    "photo byte flipped": (_flip_photo_byte, 3, "checksum mismatch for attachments/"),
    "dump altered": (lambda a, o: _rewrite(a, o, lambda n, d: d[:-1] + bytes([d[-1] ^ 1]) if n == "database.dump"
                                           else d), 3, "checksum mismatch for database.dump"),
    "member smuggled in": (_add_member, 3, "which the manifest does not list"),
    "photo removed": (lambda a, o: _rewrite(a, o, lambda n, d: None if n.startswith("attachments/") else d), 3,
                      "which the manifest lists"),
    "not an archive": (lambda a, o: o.write_bytes(b"PK\x03\x04" + os.urandom(2000)), 3, "not a gis-platform backup"),
    "manifest lies about rows": (_lie_about_rows, 1, "restore check failed"),
}


@pytest.mark.parametrize("how", TAMPERING, ids=list(TAMPERING))
def test_tampered_archive_is_refused_and_nothing_is_written(world, empty_target, tmp_path, how):
    mutate, exit_code, message = TAMPERING[how]
    bad = tmp_path / "bad.tar"
    mutate(world.archive, bad)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    result = _cli(["db", "restore", str(bad)], empty_target, data_dir)
    assert result.exit_code == exit_code, result.output
    assert message in result.output
    _assert_untouched(empty_target, data_dir)


def test_non_empty_target_is_refused_without_force_and_replaced_with_it(world, pg_server, tmp_path):
    url = pg_server.create(f"gis_backup_force_{os.getpid()}")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE stray (x int PRIMARY KEY)"))
        conn.execute(text("INSERT INTO stray VALUES (1)"))
        conn.execute(text("CREATE FUNCTION stray_fn() RETURNS int LANGUAGE sql AS 'SELECT 1'"))
    stray_photo = tmp_path / "attachments" / COUNTY / "old.jpg"
    stray_photo.parent.mkdir(parents=True)
    stray_photo.write_bytes(b"old photo")

    refused = _cli(["db", "restore", str(world.archive)], url, tmp_path)
    assert refused.exit_code == 4, refused.output
    assert "not empty" in refused.output and "stray" in refused.output and "--force" in refused.output
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM stray")).scalar_one() == 1
    assert stray_photo.read_bytes() == b"old photo"

    forced = _cli(["db", "restore", "--force", str(world.archive)], url, tmp_path)
    assert forced.exit_code == 0, forced.output
    with engine.connect() as conn:
        assert conn.execute(text("SELECT to_regclass('public.stray'), to_regprocedure('stray_fn()')")).one() == \
            (None, None)
    engine.dispose()
    assert not stray_photo.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attachments"]  # no staging folder left
    _assert_same(world, url, tmp_path)


def test_backup_refuses_to_overwrite_and_reports_a_bad_database(world, tmp_path):
    existing = tmp_path / "exists.tar"
    existing.write_bytes(b"keep me")
    result = _cli(["db", "backup", "-o", str(existing)], world.url, world.data_dir)
    assert result.exit_code == 1 and "already exists" in result.output
    assert existing.read_bytes() == b"keep me"
    gone = world.url.rsplit("/", 1)[0] + "/gis_backup_no_such_db"
    result = _cli(["db", "backup", "-o", str(tmp_path / "x.tar")], gone, world.data_dir)
    assert result.exit_code == 1 and "cannot connect to the database" in result.output
    assert list(tmp_path.iterdir()) == [existing]


def test_client_tools_match_the_server_version(world):
    with backup.Target.from_url(world.url).connect() as conn:
        major = conn.execute("SHOW server_version_num").fetchone()[0]
    tools = backup.find_client_tools(int(major) // 10000, None, ("pg_dump", "pg_restore", "psql"))
    assert tools.major == int(major) // 10000
    with pytest.raises(backup.BackupError, match="GIS_PG_BIN"):
        backup.find_client_tools(int(major) // 10000, Path("/nonexistent/bin"), ("pg_dump",))
