"""The ``hydra`` commands that manage jobs and runs once submitted, and the rest of the API::

    hydra job show|delete|pause|resume JOB     hydra job trigger JOB [-p TARGET=prod] [--ask TOKEN]
    hydra job update JOB [--priority 80 --cron '0 4 * * *' --set timeout=60 ...]   (PATCH)
    hydra job update JOB --replace body.json                                        (PUT)
    hydra run show|retry|cancel RUN          hydra dead-letters [--job JOB] [--all]
    hydra schedule add [--at TIME] -- CMD    hydra schedule show TASK    (one-off tasks)
    hydra health      hydra metrics          hydra completion bash|zsh|fish

``OPERATIONS`` maps every operation of the REST API to the command that calls it (a test
checks that none is missing and that each command exists).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from click.shell_completion import get_completion_class

from hydra.cli.console import cancel
from hydra.cli.helpers import (
    api_command,
    command_line,
    cursor_option,
    emit_json,
    ending,
    limit_option,
    pairs,
    show_listing,
    when,
    when_option,
    where,
)
from hydra.cli.notify import described_notifications, described_targets, notify_option
from hydra.cli.params import described, given, trigger_options, values_of
from hydra.client import Client, Job, Run, Submitted
from hydra.model import wording
from hydra.model.dependencies import FIELDS

#: ``"METHOD /path"`` of the OpenAPI description -> the ``hydra`` command that calls it.
OPERATIONS = {
    "POST /jobs/": "submit",
    "GET /jobs/": "jobs",
    "GET /jobs/{job_id}": "job show",
    "PUT /jobs/{job_id}": "job update",
    "PATCH /jobs/{job_id}": "job update",
    "DELETE /jobs/{job_id}": "job delete",
    "POST /jobs/{job_id}/pause": "job pause",
    "POST /jobs/{job_id}/resume": "job resume",
    "POST /jobs/{job_id}/trigger": "job trigger",
    "GET /jobs/{job_id}/runs": "runs",
    "GET /runs/{run_id}": "run show",
    "POST /runs/{run_id}/cancel": "run cancel",
    "POST /runs/{run_id}/retry": "run retry",
    "GET /runs/{run_id}/output": "logs",
    "GET /runs/{run_id}/output.txt": "logs",
    "GET /runs/{run_id}/output/events": "logs",
    "GET /dead-letter/": "dead-letters",
    "POST /schedule/": "schedule add",
    "GET /schedule/{task_id}": "schedule show",
    "GET /workers/": "workers",
    "POST /workers/{worker_id}/drain": "worker drain",
    "DELETE /workers/{worker_id}/drain": "worker undrain",
    "GET /health/": "health",
    "GET /metrics": "metrics",
    "GET /export/runs": "export",
    "POST /tokens/": "token create",
    "GET /tokens/": "token list",
    "DELETE /tokens/{token_id}": "token revoke",
    "GET /audit/": "audit",
    "GET /namespaces/{namespace}": "namespace show",
    "PUT /namespaces/{namespace}": "namespace set",
    "DELETE /namespaces/{namespace}": "namespace delete",
    "GET /jobs/{job_id}/dependencies": "job deps",
    "GET /jobs/{job_id}/fanout": "job fanout",
    "GET /runs/{run_id}/flow": "run flow",
    "POST /tasks/": "task submit",
    "POST /tasks/chords": "task chord",
    # job files (hydra.cli.jobfiles)
    "POST /jobs/apply": "job apply",
}


def show_job(job: Job) -> None:
    what = job.command or " ".join(job.args or []) or (job.http or {}).get("url")
    items = [
        ("job", job.id),
        ("name", job.name),
        ("namespace", job.namespace),
        ("user", job.user),
        ("command", what),
        ("status", job.status),
        ("last run", job.last_run_id),
        ("priority", job.priority),
        ("runs on", wording.affinity(job.affinity)),
        ("retries", wording.retries(job.retries, job.raw.get("backoff"), job.raw.get("max_lost"))),
        ("timeout", job.timeout),
    ]
    if job.schedule:
        items += [("schedule", wording.schedule(job.schedule, job.timezone)), ("paused", bool(job.paused))]
        items += [("next run", when(job.next_run_at))]
    if job.scheduled_at:
        items.append(("scheduled at", when(job.scheduled_at)))
    if job.env:
        items.append(("env", ", ".join(sorted(job.env))))  # names only: values never come back
    items += [(name.replace("_", " "), ", ".join(job.raw[name])) for name in FIELDS if job.raw.get(name)]
    if job.params:
        items.append(("params", described(job.params)))
    if job.resources:
        items.append(("limits", wording.limits(job.resources)))
    if job.max_concurrent:
        items.append(("max concurrent", job.max_concurrent))
    if job.notify:
        items.append(("notify", described_targets(job.notify)))
    items += [("created", when(job.created_at)), ("updated", when(job.updated_at))]
    if job.deleted_at:
        items.append(("deleted", when(job.deleted_at)))
    click.echo(pairs(items))


def show_run(run: Run) -> None:
    click.echo(
        pairs(
            [
                ("run", run.id),
                ("job", f"{run.job_id} ({run.job_name})"),
                ("attempt", run.attempt),
                ("status", ending(run) if run.ended else where(run.status, run.worker_id, run.pending_reason)),
                ("exit", run.returncode),
                ("error", run.error),
                ("params", given(run.params)),
                ("retry of", run.retry_of),
                ("queued", when(run.queued_at)),
                ("started", when(run.started_at)),
                ("finished", when(run.finished_at)),
                *described_notifications(run.notifications),
            ]
        )
    )


def show_submitted(submitted: Submitted) -> None:
    click.echo(
        pairs(
            [
                ("job", submitted.job_id),
                ("run", submitted.run_id),
                ("status", where(submitted.status, submitted.worker_id, submitted.pending_reason)),
            ]
        )
    )


def job_out(as_json: bool, job: Job) -> None:
    emit_json(job.raw) if as_json else show_job(job)


# --- hydra job ... ----------------------------------------------------------------------------


@click.group()
def job() -> None:
    """One job: show, update, delete, pause, resume, trigger."""


@job.command("show")
@click.argument("job_id", metavar="JOB")
@api_command
def job_show(client: Client, as_json: bool, job_id):
    """Show JOB's definition and the status of its latest run."""
    job_out(as_json, client.job(job_id))


def parse_sets(values: tuple[str, ...]) -> dict:
    fields = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not FIELD=VALUE", param_hint="--set")
        try:
            fields[key] = json.loads(value)
        except ValueError:
            fields[key] = value  # a plain word: a string
    return fields


@job.command("update")
@click.argument("job_id", metavar="JOB")
@click.option("--name", help="New name.")
@click.option("--priority", type=click.IntRange(0, 100))
@click.option("--timeout", type=float)
@click.option("--retries", type=int)
@click.option("--cron", metavar="EXPR", help="New cron schedule.")
@click.option("--tz", "timezone", metavar="ZONE", help="Time zone of the schedule.")
@click.option("--at", "at", metavar="TIME", help="New one-off time (ISO 8601 or +10m).")
@click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE", help="Any field; VALUE is JSON or a word.")
@click.option(
    "--replace",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    help="Replace the whole body with this JSON file (- for stdin) instead.",
)
@notify_option
@click.argument("command", nargs=-1)
@api_command
def job_update(
    client: Client,
    as_json: bool,
    job_id,
    name,
    priority,
    timeout,
    retries,
    cron,
    timezone,
    at,
    sets,
    replace,
    command,
    notify,
):
    """Change JOB for its future runs: the fields given (after `--`, a new command), or with
    --replace the whole body."""
    fields = {
        "name": name,
        "priority": priority,
        "timeout": timeout,
        "retries": retries,
        "schedule": cron,
        "timezone": timezone,
        "scheduled_at": when_option(at),
        "command": command_line(command) if command else None,
        "notify": notify,
    }
    fields = {key: value for key, value in fields.items() if value is not None}
    fields.update(parse_sets(sets))
    if replace:
        if fields:
            raise click.UsageError("--replace takes the whole body: give no other field")
        text = sys.stdin.read() if replace == "-" else Path(replace).read_text()
        try:
            body = json.loads(text)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--replace") from None
        job_out(as_json, client.replace_job(job_id, body))
        return
    if not fields:
        raise click.UsageError("nothing to change: give a field (--priority, --set FIELD=VALUE, ...) or --replace")
    job_out(as_json, client.update_job(job_id, **fields))


@job.command("delete")
@click.argument("job_id", metavar="JOB")
@api_command
def job_delete(client: Client, as_json: bool, job_id):
    """Delete JOB: its schedule stops, runs not started are cancelled; its history stays."""
    client.delete_job(job_id)
    emit_json({"id": job_id, "deleted": True}) if as_json else click.echo(f"job {job_id} deleted")


@job.command("pause")
@click.argument("job_id", metavar="JOB")
@api_command
def job_pause(client: Client, as_json: bool, job_id):
    """Pause JOB: no cron ticks, and no runs started by the jobs that name it, until resumed."""
    job_out(as_json, client.pause_job(job_id))


@job.command("resume")
@click.argument("job_id", metavar="JOB")
@api_command
def job_resume(client: Client, as_json: bool, job_id):
    """Resume JOB from now (ticks and starts during the pause are not run later)."""
    job_out(as_json, client.resume_job(job_id))


@job.command("trigger")
@click.argument("job_id", metavar="JOB")
@trigger_options
@api_command
def job_trigger(client: Client, as_json: bool, job_id, pairs, asked):
    """Run JOB once now, whatever its schedule, with values for its parameters (-p NAME=VALUE)."""
    submitted = client.trigger_job(job_id, params=values_of(pairs, asked) or None)
    emit_json(submitted.raw) if as_json else show_submitted(submitted)


# --- hydra run ... ------------------------------------------------------------------------------


@click.group()
def run() -> None:
    """One run (attempt): show, retry, cancel."""


@run.command("show")
@click.argument("run_id", metavar="RUN")
@api_command
def run_show(client: Client, as_json: bool, run_id):
    """Show RUN: status, exit code, worker, times (its output: hydra logs RUN)."""
    found = client.run(run_id)
    emit_json(found.raw) if as_json else show_run(found)


@run.command("retry")
@click.argument("run_id", metavar="RUN")
@api_command
def run_retry(client: Client, as_json: bool, run_id):
    """Start one more attempt after RUN failed, timed out, was cancelled or dead-lettered."""
    submitted = client.retry(run_id)
    emit_json(submitted.raw) if as_json else show_submitted(submitted)


run.add_command(cancel, "cancel")


@click.command("dead-letters")
@click.option("--job", "job_id", metavar="JOB", help="Only this job's.")
@click.option("--all", "include_retried", is_flag=True, help="Also those retried already.")
@limit_option(100)
@cursor_option
@api_command
def dead_letters(client: Client, as_json: bool, job_id, include_retried, limit, cursor):
    """Runs that used up their retries, newest first (retry one: hydra run retry RUN)."""
    show_listing(
        client.dead_letters(job_id=job_id, include_retried=include_retried, limit=limit, cursor=cursor),
        as_json,
        ["RUN", "JOB", "NAME", "ATTEMPT", "OUTCOME", "EXIT", "FINISHED", "ERROR"],
        lambda r: [r.id, r.job_id, r.job_name, r.attempt, r.outcome, r.returncode, when(r.finished_at), r.error],
        more="hydra dead-letters",
    )


# --- hydra schedule ... (one-off tasks) ---------------------------------------------------------------


@click.group()
def schedule() -> None:
    """One-off tasks of /schedule: add, show."""


@schedule.command("add")
@click.option("--at", "at", metavar="TIME", help="When (ISO 8601 or +10m; default now).")
@click.argument("command", nargs=-1, required=True)
@api_command
def schedule_add(client: Client, as_json: bool, at, command):
    """Run COMMAND once at TIME (put `--` before it)."""
    task = client.schedule_task(command_line(command), scheduled_at=when_option(at))
    if as_json:
        emit_json(task.raw)
    else:
        click.echo(pairs([("task", task.id), ("status", task.status), ("at", when(task.scheduled_at))]))


@schedule.command("show")
@click.argument("task_id", metavar="TASK")
@api_command
def schedule_show(client: Client, as_json: bool, task_id):
    """Show TASK's status, times and output."""
    task = client.task(task_id)
    if as_json:
        emit_json(task.raw)
        return
    click.echo(
        pairs(
            [
                ("task", task.id),
                ("command", task.command),
                ("status", task.status),
                ("at", when(task.scheduled_at)),
                ("worker", task.worker_id),
                ("exit", task.returncode),
                ("finished", when(task.completed_at or task.failed_at)),
            ]
        )
    )


# --- the rest -------------------------------------------------------------------------------------


@click.command()
@api_command
def health(client: Client, as_json: bool):
    """Is Hydra up (Redis, MongoDB, a controller) and how many workers are online; exit 1 when down."""
    answer = client.health()
    if as_json:
        emit_json(answer)
    else:
        workers = answer.get("workers") or {}
        click.echo(
            pairs(
                [
                    ("status", answer.get("status")),
                    ("down", ", ".join(answer.get("down") or []) or "-"),
                    ("workers", f"{workers.get('online', 0)} online, {workers.get('offline', 0)} offline"),
                ]
            )
        )
    sys.exit(0 if answer.get("status") == "ok" else 1)


@click.command()
@api_command
def metrics(client: Client, as_json: bool):
    """Print Prometheus's metrics (needs a role in '*' or the scrape token)."""
    click.echo(client.metrics(), nl=False)


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@click.pass_context
def completion(ctx: click.Context, shell: str):
    """Print the shell completion script (click's), e.g. `eval "$(hydra completion bash)"`."""
    root = ctx.find_root().command
    cls = get_completion_class(shell)
    assert cls is not None  # the choice lists only the shells click completes
    click.echo(cls(root, {}, "hydra", "_HYDRA_COMPLETE").source())


COMMANDS = (job, run, dead_letters, schedule, health, metrics, completion)
