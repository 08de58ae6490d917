"""Trigger parameters on the command line: declaring them (``hydra submit --param``), giving
their values (``hydra job trigger JOB -p TARGET=prod``, ``--ask TOKEN`` for a secret), and
showing them (``hydra job show``, ``hydra run show``).

A declaration is short or JSON::

    --param TARGET              optional, no default        --param TARGET=staging   its default
    --param 'TARGET!'           required (no default: the job runs when triggered with a value)
    --param '{"name": "TARGET", "allowed": ["staging", "prod"], "description": "Where to"}'
    --param '{"name": "TOKEN", "secret": true}'     --param '{"name": "FILE", "required": true, "as": "arg"}'
"""

from __future__ import annotations

import click

from hydra.model.params import declaration


def _declarations(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[dict] | None:
    try:
        return [declaration(value) for value in values] or None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--param") from None


#: ``hydra submit --param SPEC`` (repeatable): the job's parameters.
declare_option = click.option(
    "--param",
    "params",
    multiple=True,
    metavar="SPEC",
    callback=_declarations,
    help="Declare a parameter a trigger may set (repeatable): NAME, NAME=DEFAULT, NAME! (required) or a JSON "
    "object; the command gets it as $HYDRA_PARAM_NAME.",
)


def values_of(pairs: tuple[str, ...], asked: tuple[str, ...]) -> dict[str, str]:
    """``-p NAME=VALUE`` pairs, then each ``--ask NAME`` prompted for (hidden, not echoed)."""
    values: dict[str, str] = {}
    for item in pairs:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="-p")
        values[name] = value
    for name in asked:
        values[name] = click.prompt(f"{name}", hide_input=True, err=True)
    return values


def trigger_options(func):
    """``-p NAME=VALUE`` and ``--ask NAME`` of ``hydra job trigger``."""
    func = click.option(
        "--ask",
        "asked",
        multiple=True,
        metavar="NAME",
        help="Prompt for NAME's value without echoing it (for a secret; repeatable).",
    )(func)
    return click.option(
        "-p", "--param", "pairs", multiple=True, metavar="NAME=VALUE", help="A parameter's value (repeatable)."
    )(func)


def described(declared: list[dict] | None) -> str | None:
    """A job's parameters in one line: ``TARGET (required; one of staging|prod), TOKEN (secret)``."""
    if not declared:
        return None
    parts = []
    for item in declared:
        notes = ["required"] if item.get("required") else []
        if item.get("default") is not None:
            notes.append(f"default {item['default']!r}")
        if item.get("allowed"):
            notes.append("one of " + "|".join(item["allowed"]))
        if item.get("pattern"):
            notes.append(f"matching {item['pattern']}")
        notes += [word for word in ("secret",) if item.get(word)]
        if item.get("as") == "arg":
            notes.append("as an argument")
        parts.append(item["name"] + (f" ({'; '.join(notes)})" if notes else ""))
    return ", ".join(parts)


def given(values: dict | None) -> str | None:
    """A run's values in one line: ``TARGET=prod TOKEN=<redacted>``."""
    return " ".join(f"{name}={value}" for name, value in values.items()) if values else None
