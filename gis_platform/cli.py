"""The ``gis-platform`` command line: database management here, other groups via entry points."""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from pathlib import Path

import click

from gis_platform.errors import PlatformError
from gis_platform.settings import Settings

def migrations_dir() -> Path:
    """Return the Alembic scripts folder: beside the packages in a checkout, else in the working dir."""
    for candidate in (Path(__file__).resolve().parent.parent / "migrations", Path.cwd() / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise click.ClickException("cannot find the migrations folder (run from the project directory)")


class PlatformGroup(click.Group):
    """A click group that adds the sub-commands other packages register as entry points."""

    @staticmethod
    def _plugins() -> dict[str, object]:
        return {ep.name: ep for ep in entry_points(group="gis_platform.commands")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._plugins()))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is None and name in (plugins := self._plugins()):
            # Load only the group asked for, so one package's import cost is not paid by all.
            command = plugins[name].load()
        return command


def load_settings() -> Settings:
    """Read settings, turning a validation failure into a message that names the variable."""
    from pydantic import ValidationError as PydanticValidationError

    try:
        return Settings()
    except PydanticValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise click.ClickException("invalid configuration:\n" + "\n".join(lines)) from exc


def echo_progress(message: str) -> None:
    """Print one progress line to stderr."""
    click.echo(f"· {message}", err=True)


def alembic_config(url: str):
    """Return an Alembic config bound to a database URL."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["database_url"] = url
    return cfg


def upgrade_database(url: str, revision: str = "head") -> None:
    """Bring the schema to a revision with Alembic, the only way the schema changes."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


@click.group(cls=PlatformGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="yanggu-gis-platform")
def cli() -> None:
    """阳谷县数字城管平台 — digital city management platform for county law enforcement."""


@cli.group()
def db() -> None:
    """Manage the database: the self-managed local PostGIS or an existing one (DATABASE_URL)."""


@db.command("start")
def db_start() -> None:
    """Create (first time) and start the local PostGIS cluster, then print its URL."""
    settings = load_settings()
    if not settings.uses_local_cluster:
        raise click.ClickException("DATABASE_URL is set: the platform does not manage that database")
    from gis_platform.pgcluster import cluster_from_settings

    click.echo(cluster_from_settings(settings).ensure(progress=echo_progress))


@db.command("stop")
def db_stop() -> None:
    """Stop the local PostGIS cluster cleanly."""
    settings = load_settings()
    if not settings.uses_local_cluster:
        raise click.ClickException("DATABASE_URL is set: the platform does not manage that database")
    from gis_platform.pgcluster import cluster_from_settings

    was_running = cluster_from_settings(settings).stop()
    click.echo("stopped" if was_running else "not running")


@db.command("status")
def db_status() -> None:
    """Show whether the local cluster runs, where, and on which port."""
    settings = load_settings()
    if not settings.uses_local_cluster:
        click.echo("external database (DATABASE_URL)")
        return
    from gis_platform.pgcluster import cluster_from_settings

    for key, value in cluster_from_settings(settings).status().items():
        click.echo(f"{key}: {value}")


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply Alembic migrations up to REVISION (default: head)."""
    from gis_platform.db import resolve_database_url

    url, _ = resolve_database_url(load_settings(), progress=echo_progress)
    echo_progress(f"migrating to {revision}…")
    upgrade_database(url, revision)
    click.echo(f"database at {revision}")


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert Alembic migrations down to REVISION (use 'base' to drop everything)."""
    from alembic import command

    from gis_platform.db import resolve_database_url

    url, _ = resolve_database_url(load_settings(), progress=echo_progress)
    command.downgrade(alembic_config(url), revision)
    click.echo(f"database at {revision}")


def _backup_failed(exc: Exception) -> click.ClickException:
    """Turn a backup error into a CLI error with its exit status (3: bad archive, 4: target not empty)."""
    error = click.ClickException(str(exc))
    error.exit_code = getattr(exc, "exit_code", 1)
    return error


@db.command("backup")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Archive to write (default: GIS_DATA_DIR/backups/gis-platform-<county>-<UTC time>.tar).")
def db_backup(output: Path | None) -> None:
    """Write the database (pg_dump custom format) and the photos into one checked .tar archive."""
    from gis_platform import backup
    from gis_platform.db import resolve_database_url

    settings = load_settings()
    url, _ = resolve_database_url(settings, progress=echo_progress)
    output = output or backup.default_archive_path(settings.resolved_data_dir, settings.county_code)
    try:
        result = backup.backup(url, settings.resolved_data_dir, output, county_code=settings.county_code,
                               pg_bin=settings.pg_bin, progress=echo_progress)
    except backup.BackupError as exc:
        raise _backup_failed(exc) from exc
    for problem in result.manifest.attachment_problems:
        click.echo(f"warning: attachment {problem.id} ({problem.path}): {problem.problem}", err=True)
    click.echo(result.summary())


@db.command("restore")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace what the database and the photo folder already hold.")
@click.option("--verify-only", is_flag=True, help="Check the archive's checksums and stop; nothing is written.")
def db_restore(archive: Path, force: bool, verify_only: bool) -> None:
    """Restore a backup archive into an empty database and photo folder, checking every checksum."""
    from gis_platform import backup

    try:
        if verify_only:
            manifest = backup.verify_archive(archive)
            click.echo(f"{archive}: intact — {len(manifest.tables)} tables, {manifest.rows:,} rows, "
                       f"{len(manifest.attachments)} photos, revision {manifest.database.alembic_revision}, "
                       f"made {manifest.created_at:%Y-%m-%d %H:%M} UTC")
            return
        from gis_platform.db import resolve_database_url

        settings = load_settings()
        url, _ = resolve_database_url(settings, progress=echo_progress)
        result = backup.restore(archive, url, settings.resolved_data_dir, force=force, pg_bin=settings.pg_bin,
                                script_location=migrations_dir(), progress=echo_progress)
    except backup.BackupError as exc:
        raise _backup_failed(exc) from exc
    if settings.county_code not in result.manifest.counties:
        click.echo(f"warning: the archive holds counties {', '.join(result.manifest.counties) or 'none'}, "
                   f"but GIS_COUNTY_CODE is {settings.county_code}", err=True)
    click.echo(result.summary())


@db.command("url")
def db_url() -> None:
    """Print the SQLAlchemy URL of the database in use (starting the local cluster if needed)."""
    from gis_platform.db import resolve_database_url

    url, _ = resolve_database_url(load_settings(), progress=echo_progress)
    click.echo(url)


def main() -> None:
    """Run the command line, showing platform errors as short messages rather than tracebacks."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except PlatformError as exc:
        click.echo(f"error: {exc.detail}", err=True)
        sys.exit(2)
