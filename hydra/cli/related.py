"""The ``hydra`` commands about what jobs and runs lead to::

    hydra submit --on-success JOB --on-failure JOB --on-completion JOB -- CMD   (the options)
    hydra job deps JOB      the jobs that start JOB, and those JOB starts
    hydra job fanout JOB    a fan-out of JOB (placement mode all), worker by worker
    hydra run flow RUN      what started RUN, and what its end started or left not run
    hydra task submit FILE  a Celery-style task: {"kwargs": {...}, "options": {"link": ..., "chain": [...]}}
    hydra task chord FILE   a chord before its header tasks: {"group_id", "parts": [...], "body": {...}}

(``hydra job update JOB --set 'on_success=["JOB"]'`` changes a stored job's.)
"""

from __future__ import annotations

import json

import click

from hydra.cli import fanout
from hydra.cli.helpers import api_command, emit_json, pairs, table
from hydra.cli.manage import job, run
from hydra.client import Client


@job.command("fanout")
@click.argument("job_id", metavar="JOB")
@click.option("--id", "fanout_id", default=None, help="Which fan-out (default: the job's latest).")
@api_command
def job_fanout(client: Client, as_json: bool, job_id, fanout_id):
    """How a fan-out of JOB (placement mode all) went, worker by worker; exits 1 when a
    worker's run failed or was lost, naming them."""
    found = client.job_fanout(job_id, fanout_id)
    if as_json:
        emit_json(found.raw)
    else:
        click.echo(pairs([("fan-out", found.id), ("done", "yes" if found.done else "no")]))
        rows = [[w["worker"], w["state"], w["run_id"], w.get("reason") or ""] for w in found.workers]
        click.echo(table(["WORKER", "STATE", "RUN", "WHY"], rows))
    problem = fanout.verdict(found) if found.done else None
    if problem:
        click.echo(f"hydra: {problem}", err=True)
        raise SystemExit(1)


@job.command("deps")
@click.argument("job_id", metavar="JOB")
@api_command
def job_deps(client: Client, as_json: bool, job_id):
    """The jobs that start JOB when one of their runs ends, and the jobs JOB starts."""
    found = client.job_dependencies(job_id)
    if as_json:
        emit_json(found)
        return
    for side, title in (("upstream", "started by"), ("downstream", "starts")):
        rows = [
            [r["id"], r.get("name") or "", ", ".join(r["via"]), r["state"], r.get("status") or ""] for r in found[side]
        ]
        click.echo(f"{title}: " + ("(none)" if not rows else ""))
        if rows:
            click.echo(table(["JOB", "NAME", "WHEN", "STATE", "LAST RUN"], rows))


@run.command("flow")
@click.argument("run_id", metavar="RUN")
@api_command
def run_flow(client: Client, as_json: bool, run_id):
    """What started RUN (a Celery canvas step, a chord, another job's run), and what its end
    started or left not run."""
    found = client.run_flow(run_id)
    if as_json:
        emit_json(found)
        return
    upstream = found.get("started_by")
    items: list[tuple[str, object]] = [("run", found["run_id"])]
    if upstream:
        ended = ", ".join(f"{r} ({s})" for r, s in zip(upstream["runs"], upstream["statuses"], strict=False))
        items.append(("started by", f"{ended} via {upstream['via']}"))
    if found.get("first"):
        items.append(("first attempt", found["first"]))
    if found.get("next"):
        items.append(("next attempt", found["next"]))
    click.echo(pairs(items))
    started = found.get("started") or []
    if started:
        rows = [
            [e.get("run_id") or "-", e.get("job_name") or e["job_id"], e["via"], e.get("note") or "started"]
            for e in started
        ]
        click.echo(table(["RUN", "JOB", "VIA", "WHAT"], rows))


@click.group()
def task() -> None:
    """Celery-style task submissions, as run_command.apply_async sends them through the API."""


def _read(path: str) -> dict:
    with click.open_file(path) as handle:
        try:
            found = json.load(handle)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="FILE") from None
    if not isinstance(found, dict):
        raise click.BadParameter("the file holds one JSON object", param_hint="FILE")
    return found


@task.command("submit")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False, allow_dash=True))
@api_command
def task_submit(client: Client, as_json: bool, path):
    """Submit the task FILE describes (- for stdin): {"kwargs": {...}, "options": {...}}."""
    found = _read(path)
    answer = client.submit_task(found.get("kwargs") or {}, **(found.get("options") or {}))
    emit_json(answer) if as_json else click.echo(
        pairs([("run", answer["run_id"]), ("job", answer["job_id"]), ("status", answer["status"])])
    )


@task.command("chord")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False, allow_dash=True))
@api_command
def task_chord(client: Client, as_json: bool, path):
    """Publish the chord FILE describes: {"group_id", "parts": [...], "body": {...}}."""
    found = _read(path)
    answer = client.publish_chord(found.get("group_id", ""), found.get("parts") or [], found.get("body") or {})
    emit_json(answer) if as_json else click.echo(
        pairs([("chord", answer["group_id"]), ("body run", answer["body_run_id"])])
    )


COMMANDS = (task,)
