"""Every operation of the REST API (its OpenAPI description) has a typed method in
hydra.client and a command in the hydra CLI; shell completion is click's and works."""

from __future__ import annotations

import inspect

import click
import pytest
from click.shell_completion import ShellComplete
from click.testing import CliRunner

from api import create_app
from hydra.cli import main
from hydra.cli.manage import OPERATIONS as CLI_OPERATIONS
from hydra.client import OPERATIONS as CLIENT_OPERATIONS
from hydra.client import Client


@pytest.fixture(scope="module")
def operations() -> set[str]:
    spec = create_app().test_client().get("/openapi.json").json
    return {
        f"{method.upper()} {path}"
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }


def command_at(path: str) -> click.Command | None:
    command: click.Command | None = main
    for word in path.split():
        if not isinstance(command, click.Group):
            return None
        command = command.commands.get(word)
    return command


def test_every_operation_has_a_typed_client_method(operations):
    assert operations - set(CLIENT_OPERATIONS) == set(), "operations without a client method"
    assert set(CLIENT_OPERATIONS) - operations == set(), "client methods of operations the API lacks"
    for name in set(CLIENT_OPERATIONS.values()):
        method = getattr(Client, name)
        hints = inspect.signature(method).return_annotation
        assert hints is not inspect.Signature.empty, f"Client.{name} declares no return type"


def test_every_operation_has_a_cli_command(operations):
    assert operations - set(CLI_OPERATIONS) == set(), "operations without a CLI command"
    assert set(CLI_OPERATIONS) - operations == set(), "CLI entries of operations the API lacks"
    for operation, path in CLI_OPERATIONS.items():
        command = command_at(path)
        assert command is not None and not isinstance(command, click.Group), f"{operation}: no `hydra {path}`"


def completions(words: list[str], incomplete: str) -> list[str]:
    return [
        item.value for item in ShellComplete(main, {}, "hydra", "_HYDRA_COMPLETE").get_completions(words, incomplete)
    ]


def test_shell_completion_completes_commands_and_options():
    assert {"job", "jobs"} <= set(completions([], "jo"))
    assert set(completions(["job"], "")) >= {"show", "update", "delete", "pause", "resume", "trigger"}
    assert set(completions(["run"], "")) >= {"show", "retry", "cancel"}
    assert "--cancel-on-interrupt" in completions(["submit"], "--can")
    script = CliRunner().invoke(main, ["completion", "bash"])
    assert script.exit_code == 0 and "_HYDRA_COMPLETE=bash_complete" in script.output
