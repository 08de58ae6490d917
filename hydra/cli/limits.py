"""``hydra submit --memory-mb N --cpu C --max-concurrent N``: a job's resource limits and how
many of its runs may be in flight at once (``hydra.model.resources``)."""

from __future__ import annotations

import functools

import click

#: The options, as ``Client.submit`` takes them.
FIELDS = ("memory_mb", "cpu", "max_concurrent")


def limit_options(func):
    """The three options, handed to the command as one ``limits`` dict of those given."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        given = {name: kwargs.pop(name, None) for name in FIELDS}
        return func(*args, limits={name: value for name, value in given.items() if value is not None}, **kwargs)

    wrapper = click.option(
        "--max-concurrent",
        "max_concurrent",
        type=click.IntRange(1),
        help="Runs of the job in flight at once, at most (more wait pending).",
    )(wrapper)
    wrapper = click.option(
        "--cpu", "cpu", type=click.FloatRange(0, min_open=True), help="CPU of each run, in cores (0.5: half a core)."
    )(wrapper)
    wrapper = click.option(
        "--memory-mb", "memory_mb", type=click.IntRange(1), help="Memory of each run, in MiB (over it: out of memory)."
    )(wrapper)
    return wrapper
