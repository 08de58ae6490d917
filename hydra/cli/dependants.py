"""The options of ``hydra submit`` that name the jobs a job starts (``hydra.model.dependencies``)."""

from __future__ import annotations

import functools

import click

from hydra.model.dependencies import FIELDS


def dependency_options(func):
    """``--on-success``, ``--on-failure``, ``--on-completion`` (each repeatable), handed to the
    command as one ``dependants`` dict of the fields given."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        given = {name: list(kwargs.pop(name, ()) or ()) for name in FIELDS}
        return func(*args, dependants={name: ids for name, ids in given.items() if ids}, **kwargs)

    for name in reversed(FIELDS):
        flag = "--" + name.replace("_", "-")
        when = name.split("_", 1)[1]
        wrapper = click.option(
            flag, name, multiple=True, metavar="JOB", help=f"Start JOB (its id) after a run's {when} (repeatable)."
        )(wrapper)
    return wrapper
