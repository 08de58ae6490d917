"""Pure parts of the CLI and client: tables, command lines, exit codes, names, error bodies."""

from __future__ import annotations

import re

import click
import pytest

from hydra.cli.helpers import command_line, parse_env, table
from hydra.client import InvalidRequest, Run, default_name
from hydra.model.spec import NAME_RE


def test_table_aligns_columns_and_abbreviates():
    text = table(["ID", "STATUS", "COMMAND"], [["a", "running", "echo hi"], ["bbbb", None, "x" * 100]])
    lines = text.splitlines()
    assert lines[0] == "ID    STATUS   COMMAND"
    assert lines[1] == "a     running  echo hi"
    assert lines[2].startswith("bbbb  -        xxx") and lines[2].endswith("...") and len(lines[2]) < 90


def test_command_words_are_joined_as_a_shell_would_read_them():
    assert command_line(("make test && ./run",)) == "make test && ./run"
    assert command_line(("echo", "two words", "$HOME")) == "echo 'two words' '$HOME'"


def test_env_options():
    assert parse_env(("A=1", "B=x=y", "C=")) == {"A": "1", "B": "x=y", "C": ""}
    with pytest.raises(click.BadParameter):
        parse_env(("novalue",))


@pytest.mark.parametrize(
    "fields,code",
    [
        ({"status": "succeeded", "returncode": 0}, 0),
        ({"status": "failed", "returncode": 7}, 7),
        ({"status": "dead_letter", "outcome": "failed", "returncode": 4}, 4),
        ({"status": "failed", "returncode": -9}, 137),
        ({"status": "timed_out", "returncode": -15}, 124),
        ({"status": "timed_out", "returncode": None}, 124),
        ({"status": "dead_letter", "outcome": "timed_out"}, 124),
        ({"status": "cancelled"}, 130),
        ({"status": "failed", "returncode": None, "error": "command not found"}, 1),
        ({"status": "lost"}, 1),
    ],
)
def test_exit_code_of_a_run(fields, code):
    assert Run.from_json({"id": "r", "job_id": "j", **fields}).exit_code == code


def test_default_job_names_are_valid_names():
    assert default_name("echo 'hello world' | wc -l", None) == "echo hello world wc -l"
    assert default_name(None, ["/bin/ls", "-la"]) == "bin/ls -la"
    assert default_name("!!!", None) == "command"
    for command in ("echo 'hello world' | wc -l", "/x", "-- weird", "\u00e9t\u00e9 && ls", "a" * 500):
        assert re.match(NAME_RE, default_name(command, None)) and len(default_name(command, None)) <= 200


def test_invalid_request_exposes_field_errors():
    error = InvalidRequest("bad", status_code=422, body={"errors": {"json": {"user": ["bad"]}}})
    assert error.errors == {"json": {"user": ["bad"]}}
    assert InvalidRequest("bad", body=None).errors == {}
