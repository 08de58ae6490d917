"""Trigger parameters: what a job declares it takes, and the values one run gets.

A job declares its parameters in ``params``, a list of::

    {"name": "TARGET", "description": "Where to deploy", "required": true,
     "default": "staging", "allowed": ["staging", "prod"],      (or "pattern": "v[0-9]+")
     "secret": false, "as": "env"}                               (or "as": "arg")

A trigger gives values (``POST /jobs/{id}/trigger {"params": {"TARGET": "prod"}}``): each run
gets one value per parameter that has one, the given value or else the default, checked
against the declaration by :func:`resolve` (errors name the parameter). A run that starts
on its own (a cron tick, ``scheduled_at``) uses the defaults, so a job with a schedule may not
declare a required parameter without a default; a job without a schedule that does is stored
at submit and runs when a trigger gives the value (:func:`needs_values`).

How a value reaches the command (``hydra.execution.command``):

* ``"as": "env"`` (the default): the environment variable ``HYDRA_PARAM_<NAME>``
  (:data:`ENV_PREFIX`), set after the job's own ``env``. The prefix keeps a parameter from
  replacing a variable the command relies on (``PATH``, ``LD_PRELOAD``).
* ``"as": "arg"``: one argument each, in the order declared, after the job's ``args`` (no
  shell), or as the positional parameters ``$1``, ``$2``, ... of a bash or sh ``command``
  (``bash -c "$command" hydra "$1" ...``). A value is never put into a command line, so no
  value is ever read by a shell as code; ``"$1"`` in the command is the value, as typed.
  Such a parameter needs a value for every run (required, or a default).

A ``secret`` value is write-only, like ``env``: every answer, the audit trail and Flower show
``<redacted>``; it goes to the command in its environment only (arguments are visible to every
user of the machine), and it has no default and no list of allowed values (they would show it).

``pattern`` is an RE2 expression (linear time: no value can make a check run long) that the
whole value must match. The values are part of the signed task message (``param_values``)
and of its execution digest, and the worker checks them against the declaration again.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import re2
from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates_schema

from hydra.model.bodies import text_problem
from hydra.model.redaction import REDACTED

#: How a parameter's name is spelled (it becomes part of an environment variable's name).
PARAM_NAME_RE = r"^[A-Za-z_][A-Za-z0-9_]*$"
#: The environment variable of parameter ``NAME`` is ``HYDRA_PARAM_NAME``.
ENV_PREFIX = "HYDRA_PARAM_"
#: Ways a value reaches the command.
DELIVERIES = ("env", "arg")
#: Parameters a job may declare, values one may allow, and characters in a value.
MAX_PARAMS, MAX_ALLOWED, MAX_VALUE = 50, 200, 8192
#: Shells that read extra arguments as their positional parameters ($1, $2, ...).
POSITIONAL_SHELLS = ("bash", "sh")
#: The ``$0`` of a shell command given positional parameters.
ARG_ZERO = "hydra"

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


@functools.lru_cache(maxsize=512)
def compiled(pattern: str) -> Any:
    """The RE2 program of ``pattern``; raises ValueError when it is not an RE2 expression."""
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        raise ValueError(str(exc.args[0] if exc.args else exc).removeprefix("b'").removesuffix("'")) from None


def value_problem(declared: Mapping[str, Any], value: Any) -> str | None:
    """Why ``value`` is not a valid value of the parameter ``declared``, or None. The value is
    never quoted (it may be a secret)."""
    if not isinstance(value, str):
        return "must be a string"
    if len(value) > MAX_VALUE:
        return f"at most {MAX_VALUE} characters"
    problem = text_problem(value)
    if problem:
        return problem
    allowed = declared.get("allowed")
    if allowed and value not in allowed:
        return f"must be one of: {', '.join(allowed)}"
    pattern = declared.get("pattern")
    if pattern is not None and compiled(pattern).fullmatch(value) is None:
        return f"must match the pattern {pattern}"
    return None


class ParamSchema(Schema):
    """One declared parameter."""

    class Meta:
        unknown = RAISE
        ordered = True

    name = fields.String(
        required=True,
        validate=[
            validate.Length(1, 64),
            validate.Regexp(PARAM_NAME_RE, error="letters, digits and '_', not starting with a digit"),
        ],
        metadata={"description": f"The parameter's name; in the environment it is `{ENV_PREFIX}<name>`."},
    )
    description = fields.String(
        load_default=None,
        validate=validate.Length(max=1000),
        metadata={"description": "What it is, for the people who trigger the job."},
    )
    required = fields.Boolean(
        load_default=False, metadata={"description": "Every run needs a value (given, or the default)."}
    )
    default = fields.String(
        load_default=None,
        validate=validate.Length(max=MAX_VALUE),
        metadata={"description": "The value when a trigger gives none (cron ticks always use it)."},
    )
    allowed = fields.List(
        fields.String(validate=validate.Length(max=MAX_VALUE)),
        load_default=None,
        validate=validate.Length(1, MAX_ALLOWED),
        metadata={"description": "The only values it may take (not with `pattern`)."},
    )
    pattern = fields.String(
        load_default=None,
        validate=validate.Length(1, 1000),
        metadata={"description": "An RE2 regular expression every value must match as a whole (not with `allowed`)."},
    )
    secret = fields.Boolean(
        load_default=False,
        metadata={
            "description": f"Its values are write-only: answers, the audit trail and Flower show `{REDACTED}`. "
            "Passed in the environment only; no default, no allowed values."
        },
    )
    as_ = fields.String(
        data_key="as",
        attribute="as",
        load_default="env",
        validate=validate.OneOf(DELIVERIES),
        metadata={
            "description": f"env (default): the variable `{ENV_PREFIX}<name>`; arg: an argument after `args`, "
            "or the positional parameters $1, $2, ... of a bash or sh `command` (in the order declared)."
        },
    )

    @validates_schema
    def check_declaration(self, data: dict, **kwargs: Any) -> None:
        errors: dict[str, list[str]] = {}
        if data.get("allowed") is not None and data.get("pattern") is not None:
            errors["pattern"] = ["give allowed values or a pattern, not both"]
        elif data.get("pattern") is not None:
            try:
                compiled(data["pattern"])
            except ValueError as exc:
                errors["pattern"] = [f"not an RE2 regular expression: {exc}"]
        if data.get("secret"):
            if data.get("allowed") is not None:
                errors["allowed"] = ["a secret parameter lists no values (they would be shown); use a pattern"]
            if data.get("default") is not None:
                errors["default"] = [
                    "a secret parameter has no default (it would be shown); its value comes with a trigger"
                ]
            if data.get("as") == "arg":
                errors["as"] = ["a secret goes in the environment: arguments are visible to every user of the machine"]
        if data.get("as") == "arg" and not data.get("required") and data.get("default") is None:
            errors.setdefault("as", []).append(
                "a parameter passed as an argument needs a value for every run: make it required or give a default"
            )
        if data.get("default") is not None and "default" not in errors and "pattern" not in errors:
            problem = value_problem(data, data["default"])
            if problem:
                errors["default"] = [problem]
        if errors:
            raise ValidationError(errors)

    @post_load
    def set_only(self, data: dict, **kwargs: Any) -> dict:
        return {key: value for key, value in data.items() if value is not None}


def _distinct_names(declared: list[dict]) -> None:
    seen: set[str] = set()
    twice: set[str] = set()
    for item in declared:
        (twice if item["name"] in seen else seen).add(item["name"])
    if twice:
        raise ValidationError(f"declared more than once: {', '.join(sorted(twice))}")


def params_field() -> fields.Field:
    """The ``params`` field of a job body: the parameters it declares."""
    return fields.List(
        fields.Nested(ParamSchema),
        load_default=None,
        validate=[validate.Length(max=MAX_PARAMS), _distinct_names],
        metadata={
            "description": "Parameters a trigger may give values for (name, description, required, default, "
            "allowed or pattern, secret, as); they reach the command as environment variables "
            f"`{ENV_PREFIX}<name>` or as arguments."
        },
    )


def values_field() -> fields.Field:
    """The ``param_values`` field of a task message: the run's value of each parameter."""
    return fields.Dict(keys=fields.String(), values=fields.Raw(), load_default=None)


def declaration(text: str) -> dict:
    """A declaration as people type it (``hydra submit --param``, the console's submit form): a
    JSON object with any of its fields, or ``NAME`` (optional), ``NAME=DEFAULT``, ``NAME!``
    (required, no default). Raises ValueError for text that is neither."""
    import json

    text = text.strip()
    if text.startswith("{"):
        try:
            found = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{text!r} is not JSON: {exc}") from None
        if not isinstance(found, dict):
            raise ValueError(f"{text!r} is not a JSON object")
        return found
    name, sep, default = text.partition("=")
    if name.endswith("!"):
        if sep:
            raise ValueError(f"{text!r}: a required parameter (NAME!) has no default")
        return {"name": name[:-1], "required": True}
    return {"name": name, "default": default} if sep else {"name": name}


def needs_values(spec: Mapping[str, Any]) -> list[str]:
    """The parameters of a job body that have no value unless a trigger gives one."""
    return [item["name"] for item in spec.get("params") or () if item.get("required") and item.get("default") is None]


def combination_problems(spec: Mapping[str, Any]) -> dict[str, list[str]]:
    """What the parameters of a (loaded) job body conflict with in the rest of it."""
    declared = spec.get("params") or []
    if not declared:
        return {}
    if spec.get("executor") == "http":
        return {"params": ["an http job takes no parameters"]}
    if spec.get("shell") in ("cmd", "powershell") and any(item.get("as") == "arg" for item in declared):
        return {"params": [f"parameters passed as arguments need bash or sh (or an args list), not {spec['shell']}"]}
    lacking = needs_values(spec)
    if lacking and (spec.get("schedule") or spec.get("scheduled_at")):
        return {
            "params": [
                f"a job that starts on its own (schedule, scheduled_at) runs with the defaults: "
                f"{', '.join(lacking)} {'is' if len(lacking) == 1 else 'are'} required without a default"
            ]
        }
    return {}


def resolve(declared: list[dict] | None, given: Mapping[str, Any] | None) -> tuple[dict[str, str], dict]:
    """The values of a run: each declared parameter's given value, else its default, checked
    against its declaration. Returns (values, errors by parameter name)."""
    declared = declared or []
    given = given or {}
    known = {item["name"] for item in declared}
    errors: dict[str, list[str]] = {
        str(name): [f"not a parameter of this job ({', '.join(sorted(known)) or 'it declares none'})"]
        for name in given
        if name not in known
    }
    values: dict[str, str] = {}
    for item in declared:
        name = item["name"]
        value = given.get(name, item.get("default"))
        if value is None or (value == "" and item.get("required")):
            if item.get("required"):
                errors[name] = ["required: this parameter has no default"]
            continue
        problem = value_problem(item, value)
        if problem:
            errors[name] = [problem]
        else:
            values[name] = value
    return values, errors


def still_declared(declared: list[dict] | None, values: Mapping[str, Any] | None) -> dict[str, Any]:
    """The values of parameters ``declared`` still names (a retry of a run after its job
    changed leaves out values of parameters it no longer declares)."""
    names = {item.get("name") for item in declared or ()}
    return {name: value for name, value in (values or {}).items() if name in names}


def message_values(data: dict) -> None:
    """Settle a task message's ``param_values`` (post-load): the resolved values when its job
    declares parameters, else none; raises ValidationError naming the parameter."""
    declared, given = data.get("params"), data.get("param_values")
    if not declared:
        if given:
            raise ValidationError({"param_values": ["the job declares no parameters"]})
        data["param_values"] = None
        return
    values, errors = resolve(declared, given)
    if errors:
        raise ValidationError({"param_values": errors})
    data["param_values"] = values


def environment(message: Mapping[str, Any]) -> dict[str, str]:
    """The variables that carry a (validated) message's values to its command."""
    values = message.get("param_values") or {}
    return {
        ENV_PREFIX + item["name"]: values[item["name"]]
        for item in message.get("params") or ()
        if item.get("as", "env") == "env" and item["name"] in values
    }


def arguments(message: Mapping[str, Any]) -> list[str]:
    """The arguments that carry a (validated) message's values to its command, in the order declared."""
    values = message.get("param_values") or {}
    return [values[item["name"]] for item in message.get("params") or () if item.get("as") == "arg"]


@dataclass(frozen=True)
class Values:
    """A run's parameter values, and which of them are secret (what its record keeps)."""

    values: dict[str, str]
    secret: tuple[str, ...] = ()

    @classmethod
    def of_message(cls, message: Mapping[str, Any]) -> Values | None:
        """The values a (validated) message carries; None when its job declares no parameters."""
        if not message.get("params"):
            return None
        secret = tuple(item["name"] for item in message["params"] if item.get("secret"))
        return cls(dict(message.get("param_values") or {}), secret)

    def fields(self) -> dict[str, Any]:
        """The fields of a run record that keep them (``Run.params``, ``Run.secret_params``)."""
        return {"params": self.values, "secret_params": list(self.secret)}

    def shown(self) -> dict[str, str]:
        """The values as answers show them: secret ones as :data:`REDACTED`."""
        return shown(self.values, self.secret) or {}


def shown(values: Mapping[str, str] | None, secret: Any = ()) -> dict[str, str] | None:
    """``values`` with those named in ``secret`` replaced by :data:`REDACTED` (None stays None)."""
    if values is None:
        return None
    hidden = set(secret or ())
    return {name: REDACTED if name in hidden else value for name, value in values.items()}
