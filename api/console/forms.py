"""The console's submit form: HTML form fields to a job body, and the API's field errors back
to the form fields they belong to.

The body is validated by the API's own schema (``JobSpecSchema``), so the form accepts exactly
what ``POST /jobs/`` accepts and shows the same messages; only the spelling differs (lists one
per line or comma-separated - affinity lists and the job ids of ``on_success``, ``on_failure``,
``on_completion`` - ``KEY=VALUE`` lines for ``env``, a parameter per line in ``params``: ``NAME``,
``NAME=DEFAULT``, ``NAME!`` or JSON, as ``hydra submit --param``; ``monitor`` a checkbox; the
placement's mode, ``max_parallel`` and ``stop_on_failure`` as fields of their own; a
notification target per line in ``notify``, as ``hydra submit --notify``: ``EVENTS webhook URL
SECRET``, ``EVENTS slack URL`` or JSON). A value that is not a number is
passed on as it was typed, so the schema names it (``timeout: Not a valid number.``).
"""

from __future__ import annotations

from collections.abc import Mapping

from hydra.model.notify import target_line
from hydra.model.params import declaration

#: The form's fields, in the order the page shows them.
FIELDS = (
    "name",
    "namespace",
    "user",
    "command",
    "args",
    "shell",
    "os",
    "tags",
    "allowed_users",
    "timeout",
    "retries",
    "priority",
    "memory_mb",
    "cpu",
    "max_concurrent",
    "schedule",
    "timezone",
    "scheduled_at",
    "env",
    "cwd",
    "on_success",
    "on_failure",
    "on_completion",
    "params",
    "monitor",
    "placement_mode",
    "max_parallel",
    "stop_on_failure",
    "notify",
)
#: Where an error on a body field is shown on the form.
_FIELD_OF = {
    "affinity.os": "os",
    "affinity.tags": "tags",
    "affinity.allowed_users": "allowed_users",
    "resources.memory_mb": "memory_mb",
    "resources.cpu": "cpu",
    "placement.mode": "placement_mode",
    "placement.max_parallel": "max_parallel",
    "placement.stop_on_failure": "stop_on_failure",
}
#: Errors of the body as a whole (and of fields the form does not have).
FORM = "_form"


def _number(text: str, kind: type) -> object:
    try:
        return kind(text)
    except ValueError:
        return text  # the schema says what is wrong with it


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.replace("\n", ",").split(",") if item.strip()]


def body_of(form: Mapping[str, str]) -> tuple[dict, dict[str, list[str]]]:
    """The job body the form describes (only the fields filled in), and errors the form
    itself can tell (a line of ``env`` that is not ``KEY=VALUE``)."""
    value = {name: (form.get(name) or "").strip() for name in FIELDS}
    body: dict = {}
    problems: dict[str, list[str]] = {}
    for name in ("name", "namespace", "user", "command", "shell", "schedule", "timezone", "cwd"):
        if value[name]:
            body[name] = value[name]
    if value["monitor"]:  # a checkbox: sent ("true") only when ticked
        body["monitor"] = True
    if value["scheduled_at"]:
        body["scheduled_at"] = value["scheduled_at"]
    if value["args"]:
        body["args"] = [line for line in (form.get("args") or "").splitlines() if line.strip()]
    body.update({key: _items(value[key]) for key in ("on_success", "on_failure", "on_completion") if value[key]})
    affinity = {key: _items(value[key]) for key in ("os", "tags", "allowed_users") if value[key]}
    if affinity:
        body["affinity"] = affinity
    for name, kind in (("timeout", float), ("retries", int), ("priority", int), ("max_concurrent", int)):
        if value[name]:
            body[name] = _number(value[name], kind)
    resources = {name: _number(value[name], kind) for name, kind in (("memory_mb", int), ("cpu", float)) if value[name]}
    if resources:
        body["resources"] = resources
    env: dict[str, str] = {}
    for number, line in enumerate((form.get("env") or "").splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, val = line.partition("=")
        if not sep or not key.strip():
            problems.setdefault("env", []).append(f"line {number}: write KEY=VALUE")
            continue
        env[key.strip()] = val
    if env:
        body["env"] = env
    declared: list[dict] = []
    for number, line in enumerate((form.get("params") or "").splitlines(), start=1):
        if line.strip():
            try:
                declared.append(declaration(line))
            except ValueError as exc:
                problems.setdefault("params", []).append(f"line {number}: {exc}")
    if declared:
        body["params"] = declared
    placement: dict = {}
    if value["placement_mode"]:
        placement["mode"] = value["placement_mode"]
    if value["max_parallel"]:
        placement["max_parallel"] = _number(value["max_parallel"], int)
    if value["stop_on_failure"]:
        placement["stop_on_failure"] = True
    if placement:
        body["placement"] = placement
    targets: list[dict] = []
    for number, line in enumerate((form.get("notify") or "").splitlines(), start=1):
        if line.strip():
            try:
                targets.append(target_line(line))
            except ValueError as exc:
                problems.setdefault("notify", []).append(f"line {number}: {exc}")
    if targets:
        body["notify"] = targets
    return body, problems


def _messages(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [m for item in value for m in _messages(item)]
    if isinstance(value, Mapping):
        return [
            f"{key}: {m}" if not isinstance(key, str) or key != "_schema" else m
            for key, v in value.items()
            for m in _messages(v)
        ]
    return [str(value)]


def field_errors(errors: Mapping) -> dict[str, list[str]]:
    """The API's ``errors.json`` (marshmallow's messages) by form field: nested fields
    (``affinity.tags``, ``env.KEY``, ``args.0``) go to the field that holds them, the rest to
    :data:`FORM`."""
    found: dict[str, list[str]] = {}
    for key, value in errors.items():
        if key in ("affinity", "resources", "placement") and isinstance(value, Mapping):
            for sub, messages in value.items():
                target = _FIELD_OF.get(f"{key}.{sub}", FORM)
                prefix = "" if target != FORM else f"{key}.{sub}: "
                found.setdefault(target, []).extend(prefix + m for m in _messages(messages))
            continue
        target = key if key in FIELDS else FORM
        prefix = "" if target != FORM or key == "_schema" else f"{key}: "
        found.setdefault(target, []).extend(prefix + m for m in _messages(value))
    return found
