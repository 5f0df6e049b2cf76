"""``gis-platform demo``: load and inspect the Yanggu demo county."""

from __future__ import annotations

import click
from sqlalchemy import text

from gis_platform.cli import echo_progress, load_settings, upgrade_database
from gis_platform.db import make_engine, resolve_database_url
from sqlalchemy.orm import Session


@click.group()
def demo() -> None:
    """Demo county (阳谷县): real outline, synthetic partition, one year of synthetic cases."""


@demo.command("load")
@click.option("--migrate/--no-migrate", default=True, show_default=True,
              help="Bring the schema to head before loading.")
def demo_load(migrate: bool) -> None:
    """Load the demo county; does nothing when it is already loaded (idempotent)."""
    from layers.demo import load_demo

    settings = load_settings()
    url, _ = resolve_database_url(settings, progress=echo_progress)
    if migrate:
        echo_progress("migrating schema to head…")
        upgrade_database(url)
    engine = make_engine(url)
    try:
        with Session(engine) as session, session.begin():
            report = load_demo(session, settings, progress=echo_progress)
        if not report.loaded:
            click.echo("demo county already loaded")
            return
        with engine.connect() as conn:
            size = conn.execute(text("SELECT pg_size_pretty(pg_database_size(current_database()))")).scalar_one()
        click.echo(f"demo county loaded in {report.seconds:.1f} s; database size {size}")
        for table, count in sorted(report.counts.items()):
            click.echo(f"  {table:24s} {count:>8,}")
        click.echo("  cases per theme (valid, excluding reports cancelled as invalid):")
        for theme, count in sorted(report.themes.items()):
            click.echo(f"    {theme:22s} {count:>8,}")
    finally:
        engine.dispose()


@demo.command("info")
def demo_info() -> None:
    """Show the provenance and licence of the loaded demo data."""
    from sqlalchemy import select

    from gis_platform.models import DatasetInfo

    settings = load_settings()
    url, _ = resolve_database_url(settings, progress=echo_progress)
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            info = session.scalars(select(DatasetInfo).where(DatasetInfo.county_code == settings.county_code)).all()
            if not info:
                raise click.ClickException("no dataset loaded; run `gis-platform demo load`")
            for row in info:
                click.echo(f"{row.name} {row.version} (loaded {row.loaded_at:%Y-%m-%d %H:%M})")
                click.echo(f"  source:  {row.source}")
                click.echo(f"  licence: {row.licence}")
                click.echo(f"  note:    {row.note}")
    finally:
        engine.dispose()
