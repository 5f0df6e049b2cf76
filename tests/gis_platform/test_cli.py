"""The command line lists its commands and every (sub)command answers --help."""

import click
import pytest
from click.testing import CliRunner

from gis_platform.cli import cli


def _walk(group: click.Group, ctx: click.Context, prefix=()):
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _walk(command, click.Context(command, parent=ctx), (*prefix, name))


ALL = list(_walk(cli, click.Context(cli)))


def test_top_level_help_lists_commands():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in ("db", "demo", "serve"):
        assert name in result.output


@pytest.mark.parametrize("path", ALL, ids=[" ".join(p) for p in ALL])
def test_every_command_has_help(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    # The first help line says what the command does.
    assert len(result.output.splitlines()) >= 3


def test_invalid_configuration_names_the_variable(monkeypatch):
    monkeypatch.setenv("GIS_COUNTY_CODE", "12")
    result = CliRunner().invoke(cli, ["db", "status"])
    assert result.exit_code != 0
    assert "county_code" in result.output


def test_db_commands_refuse_external_database(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@127.0.0.1:1/x")
    result = CliRunner().invoke(cli, ["db", "stop"])
    assert result.exit_code != 0
    assert "DATABASE_URL" in result.output
