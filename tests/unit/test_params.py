"""Trigger parameters' rules: what a job may declare, which values a run takes, and how they
reach the command (hydra.model.params, the job and message schemas, hydra.execution.command)."""

from __future__ import annotations

import pytest

from hydra.errors import InvalidJob
from hydra.execution.command import build_argv
from hydra.model.message import execution_digest, load_message, message_kwargs
from hydra.model.params import ENV_PREFIX, Values, arguments, declaration, environment, needs_values, resolve
from hydra.model.records import Run
from hydra.model.redaction import REDACTED
from hydra.model.spec import load_job
from hydra.store.retention import run_line

BODY = {"name": "deploy", "command": 'deploy.sh "$1"'}
TARGET = {"name": "TARGET", "required": True, "allowed": ["staging", "prod"], "as": "arg"}
TOKEN = {"name": "TOKEN", "secret": True}
LEVEL = {"name": "LEVEL", "default": "info", "pattern": "info|debug"}


def job(*declared, **fields):
    return load_job({**BODY, **fields, "params": list(declared)})


def refused(body) -> dict:
    with pytest.raises(InvalidJob) as info:
        load_job(body)
    return info.value.errors


def test_a_declaration_keeps_what_was_set_and_the_defaults_of_required_secret_and_as():
    spec = job(TARGET, TOKEN, LEVEL)
    assert spec["params"] == [
        {"name": "TARGET", "required": True, "allowed": ["staging", "prod"], "secret": False, "as": "arg"},
        {"name": "TOKEN", "required": False, "secret": True, "as": "env"},
        {"name": "LEVEL", "required": False, "default": "info", "pattern": "info|debug", "secret": False, "as": "env"},
    ]
    assert load_job(BODY)["params"] is None  # a job without parameters has none (its digest is unchanged)


@pytest.mark.parametrize(
    ("declared", "field", "words"),
    [
        ({"name": "1X"}, "name", "not starting with a digit"),
        ({"name": "A.B"}, "name", "letters, digits"),
        ({"name": "X", "allowed": ["a"], "pattern": "a"}, "pattern", "not both"),
        ({"name": "X", "pattern": "(a)\\1"}, "pattern", "not an RE2 regular expression"),
        ({"name": "X", "pattern": "(?=a)"}, "pattern", "not an RE2 regular expression"),
        ({"name": "X", "default": "c", "allowed": ["a", "b"]}, "default", "must be one of: a, b"),
        ({"name": "X", "default": "v1x", "pattern": "v[0-9]+"}, "default", "must match the pattern"),
        ({"name": "X", "secret": True, "default": "s3cret"}, "default", "has no default"),
        ({"name": "X", "secret": True, "allowed": ["a"]}, "allowed", "lists no values"),
        ({"name": "X", "secret": True, "required": True, "as": "arg"}, "as", "goes in the environment"),
        ({"name": "X", "as": "arg"}, "as", "needs a value for every run"),
        ({"name": "X", "as": "stdin"}, "as", "Must be one of"),
        ({"name": "X", "colour": "red"}, "colour", "Unknown field"),
    ],
)
def test_a_bad_declaration_is_refused_naming_its_field(declared, field, words):
    errors = refused({**BODY, "params": [declared]})
    assert words in " ".join(errors["params"][0][field])


def test_the_job_level_rules_name_params():
    assert "more than once: X" in refused({**BODY, "params": [{"name": "X"}, {"name": "X"}]})["params"][0]
    assert "maximum length 50" in refused({**BODY, "params": [{"name": f"P{i}"} for i in range(51)]})["params"][0]
    http = {"name": "hook", "executor": "http", "http": {"url": "http://example.com/"}, "params": [{"name": "X"}]}
    assert refused(http)["params"] == ["an http job takes no parameters"]
    cmd = {**BODY, "shell": "cmd", "params": [{"name": "X", "default": "a", "as": "arg"}]}
    assert "need bash or sh" in refused(cmd)["params"][0]


@pytest.mark.parametrize("when", [{"schedule": "0 3 * * *"}, {"scheduled_at": "2999-01-01T00:00:00Z"}])
def test_a_job_that_starts_on_its_own_needs_a_default_for_each_required_parameter(when):
    assert "TARGET is required without a default" in refused({**BODY, **when, "params": [TARGET]})["params"][0]
    with_default = {**TARGET, "default": "staging"}
    assert load_job({**BODY, **when, "params": [with_default, TOKEN]})["params"][0]["default"] == "staging"


def test_needs_values_names_the_required_parameters_without_default():
    assert needs_values(job(TARGET, TOKEN, LEVEL)) == ["TARGET"]
    assert needs_values(job({**TARGET, "default": "prod"})) == []


def test_resolve_gives_each_value_or_its_default_and_names_each_bad_one():
    declared = job(TARGET, TOKEN, LEVEL)["params"]
    assert resolve(declared, {"TARGET": "prod"}) == ({"TARGET": "prod", "LEVEL": "info"}, {})
    values, errors = resolve(declared, {"TARGET": "dev", "LEVEL": "trace", "TOKEN": 7, "COLOUR": "red"})
    assert values == {}
    assert errors == {
        "TARGET": ["must be one of: staging, prod"],
        "LEVEL": ["must match the pattern info|debug"],
        "TOKEN": ["must be a string"],
        "COLOUR": ["not a parameter of this job (LEVEL, TARGET, TOKEN)"],
    }
    assert resolve(declared, {})[1] == {"TARGET": ["required: this parameter has no default"]}
    assert resolve(declared, {"TARGET": ""})[1] == {"TARGET": ["required: this parameter has no default"]}
    assert resolve(declared, {"TARGET": "prod", "TOKEN": "a\x00b"})[1] == {"TOKEN": ["holds a NUL character"]}
    assert resolve(declared, {"TARGET": "prod", "TOKEN": "x" * 8193})[1] == {"TOKEN": ["at most 8192 characters"]}
    assert resolve(None, {"X": "1"})[1] == {"X": ["not a parameter of this job (it declares none)"]}


def test_an_error_never_quotes_the_value():
    _values, errors = resolve(job(TOKEN, {"name": "PIN", "pattern": "[0-9]{4}"})["params"], {"PIN": "hunter2"})
    assert "hunter2" not in repr(errors)


def test_a_pattern_is_matched_in_linear_time():
    # (a+)+$ against a long run of a's that fails at the end backtracks exponentially in
    # Python's re; RE2 answers at once, so a user's pattern cannot hold a thread.
    declared = job({"name": "X", "pattern": "(a+)+"})["params"]
    assert resolve(declared, {"X": "a" * 5000 + "!"})[1] == {"X": ["must match the pattern (a+)+"]}
    assert resolve(declared, {"X": "a" * 5000})[1] == {}


def test_a_message_carries_the_values_and_the_worker_checks_them_again():
    spec = job(TARGET, TOKEN, LEVEL)
    kwargs = message_kwargs(spec, job_id="j1", attempt=1, values={"TARGET": "prod", "TOKEN": "s3"})
    message = load_message({**kwargs, "user": "rich"})
    assert message["param_values"] == {"TARGET": "prod", "TOKEN": "s3", "LEVEL": "info"}
    assert load_message(message)["param_values"] == message["param_values"]  # validating again changes nothing
    with pytest.raises(InvalidJob) as info:
        load_message({**message, "param_values": {"TARGET": "dev"}})
    assert info.value.errors == {"param_values": {"TARGET": ["must be one of: staging, prod"]}}
    with pytest.raises(InvalidJob) as info:
        load_message({"user": "rich", "command": "true", "param_values": {"X": "1"}})
    assert info.value.errors == {"param_values": ["the job declares no parameters"]}


def test_the_values_are_part_of_the_execution_digest():
    spec = job(TARGET)
    prod = load_message({**message_kwargs(spec, job_id="j", attempt=1, values={"TARGET": "prod"}), "user": "u"})
    staging = load_message({**prod, "param_values": {"TARGET": "staging"}})
    assert execution_digest(prod) != execution_digest(staging)
    plain = load_message({**message_kwargs(load_job(BODY), job_id="j", attempt=1), "user": "u"})
    assert "params" not in repr({k: v for k, v in plain.items() if v is not None})


def test_values_reach_the_command_as_variables_and_arguments_never_inside_a_command_line():
    free = job({"name": "TARGET", "required": True, "as": "arg"}, TOKEN)
    message = load_message(
        {**message_kwargs(free, job_id="j", attempt=1, values={"TARGET": "prod; rm -rf /", "TOKEN": "t"}), "user": "u"}
    )
    assert environment(message) == {f"{ENV_PREFIX}TOKEN": "t"}
    assert arguments(message) == ["prod; rm -rf /"]
    argv = build_argv(command=message["command"], args=None, shell="bash", os_name="linux", extra=arguments(message))
    assert argv == ["bash", "-c", 'deploy.sh "$1"', "hydra", "prod; rm -rf /"]
    assert build_argv(command=None, args=["deploy"], shell=None, os_name="linux", extra=["x"]) == ["deploy", "x"]
    assert build_argv(command="true", args=None, shell="bash", os_name="linux") == ["bash", "-c", "true"]
    with pytest.raises(ValueError, match="need bash or sh"):
        build_argv(command="echo", args=None, shell="cmd", os_name="windows", extra=["x"])


def test_a_run_shows_its_secret_values_redacted_everywhere_it_is_shown():
    values = Values({"TARGET": "prod", "TOKEN": "s3cret"}, ("TOKEN",))
    assert values.shown() == {"TARGET": "prod", "TOKEN": REDACTED}
    run = Run(id="r1", params=values.values, secret_params=list(values.secret))
    assert run.shown_params == {"TARGET": "prod", "TOKEN": REDACTED}
    assert run.given == values
    assert "s3cret" not in run_line(run) and '"TOKEN": "<redacted>"' in run_line(run)
    assert Run(id="r2").shown_params is None and Run(id="r2").given is None


@pytest.mark.parametrize(
    ("text", "declared"),
    [
        ("TARGET", {"name": "TARGET"}),
        ("TARGET=staging", {"name": "TARGET", "default": "staging"}),
        ("TARGET=", {"name": "TARGET", "default": ""}),
        ("TARGET!", {"name": "TARGET", "required": True}),
        (' {"name": "T", "secret": true} ', {"name": "T", "secret": True}),
    ],
)
def test_the_short_form_of_a_declaration(text, declared):
    assert declaration(text) == declared


@pytest.mark.parametrize(
    ("text", "words"), [("T!=x", "has no default"), ("{nope", "not JSON"), ('{"a": 1', "not JSON")]
)
def test_a_short_form_that_is_neither_is_refused(text, words):
    with pytest.raises(ValueError, match=words):
        declaration(text)


@pytest.mark.parametrize("pattern", ["v[0-9]+", "v[0-9]+$", "^v[0-9]+$"])
def test_a_pattern_matches_the_whole_value_and_a_trailing_newline_does_not_pass(pattern):
    """RE2's fullmatch: `$` (without multi-line mode) matches only at the very end, unlike
    Python's re.match(...$), which lets 'v1\\n' through."""
    from hydra.model.params import value_problem

    declared = {"name": "V", "pattern": pattern}
    assert value_problem(declared, "v12") is None
    for bad in ("v1\n", "v1\r\n", "xv1", "v1x", "\nv1"):
        assert value_problem(declared, bad) == f"must match the pattern {pattern}", repr(bad)
