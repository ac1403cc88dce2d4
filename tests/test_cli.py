"""The CLI: help everywhere, and one clear line for bad input."""

from __future__ import annotations

import click
from click.testing import CliRunner

from tests.conftest import run_cli
from vedfin_cli.main import cli


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _all_commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def test_every_command_has_help() -> None:
    runner = CliRunner()
    commands = _all_commands(cli)
    assert {("up",), ("down",), ("status",), ("env",), ("db", "init")} <= set(commands)
    for path in commands:
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output
        assert (cli.get_command(click.Context(cli), path[0]) if path else cli).help


def test_unreachable_database_is_one_clear_line() -> None:
    result = run_cli("db", "init", env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nowhere"})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert "127.0.0.1:1/nowhere" in lines[0]
    assert "DATABASE_URL" in lines[0]


def test_unknown_target_is_refused() -> None:
    result = run_cli("env", "--no-start", env={"DBT_TARGET": "qa"})
    assert result.returncode != 0
    assert "DBT_TARGET='qa'" in result.stderr
    assert "Traceback" not in result.stderr
