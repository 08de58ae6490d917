"""``hydra submit --all [--max-parallel N] [--stop-on-failure]``: run on every eligible online
worker (``placement.mode: all``), and ``--wait`` for all of them: exit 0 when every worker's
run succeeded, 1 naming the workers whose run failed or was lost (or that were not reached).
``hydra job fanout JOB`` (``hydra.cli.related``) shows a fan-out worker by worker."""

from __future__ import annotations

import functools
import json
import sys

import click

from hydra.client import Client, Fanout


def fanout_options(func):
    """``--all``, ``--max-parallel``, ``--stop-on-failure``, handed to the command as one
    ``placement`` dict (None without --all)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        every, most, stop = kwargs.pop("fan_all"), kwargs.pop("max_parallel"), kwargs.pop("stop_on_failure")
        if (most is not None or stop) and not every:
            raise click.UsageError("--max-parallel and --stop-on-failure go with --all")
        placement = {"mode": "all", "max_parallel": most, "stop_on_failure": stop} if every else None
        return func(*args, placement=placement, **kwargs)

    wrapper = click.option(
        "--stop-on-failure", is_flag=True, help="With --all: after a worker's run fails, skip the workers not started."
    )(wrapper)
    wrapper = click.option(
        "--max-parallel", type=click.IntRange(1), metavar="N", help="With --all: at most N workers' runs at once."
    )(wrapper)
    return click.option(
        "--all",
        "fan_all",
        is_flag=True,
        help="Run on every eligible online worker (not drained), each its own run (placement mode all).",
    )(wrapper)


def describe(found: Fanout) -> list[str]:
    """One line per worker: its state, run and why it was skipped."""
    lines = []
    for item in found.workers:
        why = f" ({item['reason']})" if item.get("reason") else ""
        lines.append(f"{item['worker']}: {item['state']}, run {item['run_id']}{why}")
    return lines


def verdict(found: Fanout) -> str | None:
    """What went wrong, naming the workers (None: every worker's run succeeded)."""
    if found.ok:
        return None
    parts = [
        f"{label} on {', '.join(workers)}"
        for label, workers in (("failed", found.failed), ("lost", found.lost), ("not reached", found.not_reached))
        if workers
    ]
    return "fan-out " + ("; ".join(parts) if parts else "reached no worker")


def wait_and_exit(client: Client, job_id: str, *, as_json: bool) -> None:
    """Wait for the job's fan-out, show it worker by worker, and exit 0 only if every run succeeded."""
    found = client.wait_fanout(job_id)
    if as_json:
        click.echo(json.dumps(found.raw, indent=2, sort_keys=True))
    else:
        for line in describe(found):
            click.echo(line)
    problem = verdict(found)
    if problem:
        click.echo(f"hydra: {problem}", err=True)
        sys.exit(1)
    sys.exit(0)
