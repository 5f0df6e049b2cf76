"""``gis-platform grids``: unit grids and jurisdictions on the command line."""

from __future__ import annotations

import click
from sqlalchemy.orm import Session

from gis_platform.cli import echo_progress, load_settings
from gis_platform.db import make_engine, resolve_database_url
from grids.coding import GridCodeLayout
from grids.importer import import_command
from grids.topology import check_command


@click.group()
def grids() -> None:
    """Unit grids and jurisdictions (网格与辖区): generate, import, check topology, reindex."""


def _size(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, float]:
    sizes = {}
    for value in values:
        code, _, metres = value.partition("=")
        try:
            sizes[code.strip()] = float(metres)
        except ValueError:
            raise click.BadParameter(f"{value!r}: expected UNIT_CODE=METRES, e.g. 371521001=100") from None
    return sizes


@grids.command("generate")
@click.option("--size", "sizes", multiple=True, callback=_size, metavar="UNIT=METRES",
              help="Cell size for a unit (repeatable); others keep their configured size.")
@click.option("--layout", default="6+3+3+2", show_default=True, help="Grid code layout: county+town+community+seq.")
@click.option("--commit", is_flag=True, help="Write the cells (default: dry run that reports what would change).")
def generate_command(sizes: dict[str, float], layout: str, commit: bool) -> None:
    """Generate unit grids (万米单元网格) from the administrative units; dry run unless --commit."""
    from grids.regenerate import regenerate_grid

    settings = load_settings()
    url, _ = resolve_database_url(settings, progress=echo_progress)
    engine = make_engine(url)
    try:
        with Session(engine) as session, session.begin():
            report = regenerate_grid(session, settings.county_code, settings.metric_crs, sizes=sizes,
                                     layout=GridCodeLayout.from_string(layout), commit=commit,
                                     progress=echo_progress)
            if not commit:
                session.rollback()
        for line in report.lines():
            click.echo(line)
    finally:
        engine.dispose()


@grids.command("reindex")
def reindex_command() -> None:
    """Rebuild the ST_Subdivide routing lookup from units, grid cells and jurisdictions."""
    from grids.pg_engine import rebuild_lookup

    settings = load_settings()
    url, _ = resolve_database_url(settings, progress=echo_progress)
    engine = make_engine(url)
    try:
        with Session(engine) as session, session.begin():
            pieces = rebuild_lookup(session, settings.county_code)
        click.echo(f"routing lookup rebuilt: {pieces:,} pieces")
    finally:
        engine.dispose()


grids.add_command(import_command, "import")
grids.add_command(check_command, "check")
