"""The ``hydra`` commands people use against the API::

    hydra submit [--os linux --tag gpu --user rich --timeout 60 --retries 2 --priority 80 --wait] -- make test
    hydra submit --at +10m | --cron '0 3 * * *' --tz Europe/Paris  [--args] -- ./nightly.sh
    hydra submit --http https://hooks.example.com/build --header 'X-Token: t' --body '{"a": 1}'
    hydra jobs [--status failed] [--user rich]        hydra runs JOB
    hydra logs [-f] [--head N | --tail N] RUN          hydra cancel RUN   (hydra.cli.output)
    hydra workers

Each prints an aligned table (or a few ``key  value`` lines), or JSON with ``--json``. They
talk to ``--api-url`` (default ``$HYDRA_API_URL``, else http://127.0.0.1:8000).

``submit --wait`` reports progress on stderr (placement, status changes, retries), streams
the command's stdout and stderr to its own, and exits with the command's exit code (124
timed out, 130 cancelled, 128+N killed by signal N, 1 when it never ran).
Ctrl-C while waiting stops waiting, says that the run goes on and how to cancel it, and
exits with 130; ``--cancel-on-interrupt`` cancels the run instead.
Errors of Hydra itself (API unreachable, invalid job, unknown id) exit with 3.
"""

from __future__ import annotations

import sys

import click

from hydra.cli import fanout
from hydra.cli.dependants import dependency_options
from hydra.cli.fanout import fanout_options
from hydra.cli.helpers import (
    api_command,
    command_line,
    cursor_option,
    emit_json,
    interrupted,
    limit_option,
    note,
    pairs,
    parse_env,
    parse_headers,
    seconds,
    show_listing,
    watch,
    when,
    when_option,
    where,
)
from hydra.cli.limits import limit_options
from hydra.cli.notify import notify_option
from hydra.cli.params import declare_option
from hydra.client import Client
from hydra.model.params import needs_values
from hydra.model.status import RunStatus


@click.command(context_settings={"ignore_unknown_options": False})
@click.option("--name", help="Job name (default: made from the command).")
@click.option("--user", help="User the job runs as (default: the token's user; another needs the act-as right).")
@click.option("--namespace", "-n", help="Namespace of the job (default: your only one, else 'default').")
@click.option("--os", "os_names", multiple=True, metavar="OS", help="linux, macos or windows (repeatable).")
@click.option("--tag", "tags", multiple=True, help="Tag every chosen worker must have (repeatable).")
@click.option("--allow-user", "allowed_users", multiple=True, help="Restrict the job to these users (repeatable).")
@click.option("--shell", type=click.Choice(["bash", "sh", "cmd", "powershell"]), help="Shell to run it in.")
@click.option("--args", "as_args", is_flag=True, help="Run the words as an argument list, without any shell (`args`).")
@click.option("--timeout", type=float, help="Seconds before the command is killed.")
@click.option("--retries", type=int, help="Further attempts after a failure.")
@click.option("--priority", type=click.IntRange(0, 100), help="0 (lowest) to 100 (highest).")
@click.option("--env", "env", multiple=True, metavar="NAME=VALUE", help="Environment variable (repeatable).")
@click.option("--cwd", help="Working directory on the worker.")
@click.option("--at", "at", metavar="TIME", help="Run once at TIME: ISO 8601 (e.g. 2026-12-01T18:00+01:00) or +10m.")
@click.option("--cron", metavar="EXPR", help="Run on a 5-field cron schedule, e.g. '0 3 * * *'.")
@click.option("--tz", "timezone", metavar="ZONE", help="Time zone of --cron (IANA name, e.g. Europe/Paris).")
@click.option("--http", "http_url", metavar="URL", help="Call this URL (the http executor) instead of a command.")
@click.option("--method", default=None, help="HTTP method of --http (default POST).")
@click.option("--header", "http_headers", multiple=True, metavar="NAME:VALUE", help="Header of --http (repeatable).")
@click.option("--body", "http_body", metavar="TEXT", help="Body of --http (sent as is).")
@click.option("--monitor", is_flag=True, help="Count its ended runs per job on /metrics (`monitor: true`).")
@click.option(
    "--idempotency-key", metavar="KEY", help="Send again with the same KEY to get the same job, not a new one."
)
@declare_option
@click.option("--wait", is_flag=True, help="Wait for the run: show progress and output, exit with its exit code.")
@click.option("--cancel-on-interrupt", is_flag=True, help="With --wait: Ctrl-C cancels the run (else it goes on).")
@dependency_options
@limit_options
@fanout_options
@notify_option
@click.argument("command", nargs=-1)
@api_command
def submit(
    client: Client,
    as_json: bool,
    command,
    limits,
    dependants,
    placement,
    notify,
    name,
    user,
    namespace,
    os_names,
    tags,
    allowed_users,
    shell,
    as_args,
    timeout,
    retries,
    priority,
    env,
    cwd,
    at,
    cron,
    timezone,
    http_url,
    method,
    http_headers,
    http_body,
    monitor,
    idempotency_key,
    params,
    wait,
    cancel_on_interrupt,
):
    """Submit COMMAND as a job (put `--` before it), or an HTTP call with --http URL."""
    if bool(command) == bool(http_url):
        raise click.UsageError("give a COMMAND (after --) or --http URL, not both")
    if (method or http_headers or http_body) and not http_url:
        raise click.UsageError("--method, --header and --body go with --http")
    if timezone and not cron:
        raise click.UsageError("--tz is the time zone of --cron")
    if wait and cron:  # (a fan-out too: every tick is one)
        raise click.UsageError("a --cron job has no single run to --wait for (see `hydra runs JOB`)")
    if wait and needs_values({"params": params}):
        raise click.UsageError("a job with a required --param (NAME!) runs when triggered: submit it, then trigger it")
    http = None
    if http_url:
        http = {"url": http_url, "method": (method or "POST").upper()}
        if http_headers:
            http["headers"] = parse_headers(http_headers)
        if http_body is not None:
            http["body"] = http_body
    submitted = client.submit(
        None if as_args or http else command_line(command),
        args=list(command) if as_args else None,
        http=http,
        name=name,
        user=user,
        namespace=namespace,
        os=list(os_names) or None,
        tags=list(tags) or None,
        allowed_users=list(allowed_users) or None,
        shell=shell,
        timeout=timeout,
        retries=retries,
        priority=priority,
        env=parse_env(env) or None,
        cwd=cwd,
        scheduled_at=when_option(at),
        schedule=cron,
        timezone=timezone,
        monitor=monitor or None,
        idempotency_key=idempotency_key,
        params=params,
        **limits,
        notify=notify,
        **dependants,
        **({"placement": placement} if placement else {}),
    )
    if wait and placement:
        note(f"job {submitted.job_id}: fanned out; waiting for every worker's run")
        fanout.wait_and_exit(client, submitted.job_id, as_json=as_json)
    if not wait:
        if as_json:
            emit_json(submitted.raw)
        else:
            shown = [
                ("job", submitted.job_id),
                ("run", submitted.run_id),
                ("status", where(submitted.status, submitted.worker_id, submitted.pending_reason)),
            ]
            if submitted.scheduled_at:
                shown.append(("starts", when(submitted.scheduled_at)))
            if submitted.run_id is None and not submitted.scheduled_at:
                shown.append(("starts", f"when triggered: hydra job trigger {submitted.job_id} -p NAME=VALUE"))
            if submitted.replayed:
                shown.append(("replayed", "yes: the job this key made before"))
            if placement:
                shown.append(("fan-out", f"every eligible worker: hydra job fanout {submitted.job_id}"))
            click.echo(pairs(shown))
        return
    if not as_json:
        note(
            f"job {submitted.job_id}, run {submitted.run_id}: "
            f"{where(submitted.status, submitted.worker_id, submitted.pending_reason)}"
        )
    following = {"run_id": submitted.run_id}
    try:
        run = watch(client, submitted.run_id, stream=not as_json, first_status=submitted.status, current=following)
    except KeyboardInterrupt:
        sys.exit(interrupted(client, following["run_id"], cancel=cancel_on_interrupt))
    if as_json:
        emit_json(run.raw)
    sys.exit(run.exit_code)


@click.command()
@click.option("--status", help="Only jobs whose latest run has this status.")
@click.option("--user", help="Only jobs of this user.")
@click.option("--namespace", "-n", help="Only jobs of this namespace.")
@limit_option(50)
@cursor_option
@api_command
def jobs(client: Client, as_json: bool, status, user, namespace, limit, cursor):
    """List jobs, newest first."""
    show_listing(
        client.jobs(status=status, user=user, namespace=namespace, limit=limit, cursor=cursor),
        as_json,
        ["JOB", "NAME", "NAMESPACE", "USER", "STATUS", "CREATED", "COMMAND"],
        lambda job: [
            job.id,
            job.name,
            job.namespace,
            job.user,
            job.status,
            when(job.created_at),
            job.command if job.command else " ".join(job.args or []),
        ],
        more="hydra jobs",
    )


@click.command()
@click.argument("job_id", metavar="JOB")
@limit_option(100)
@api_command
def runs(client: Client, as_json: bool, job_id, limit):
    """List the runs (attempts) of JOB, newest first."""
    show_listing(
        client.runs(job_id, limit=limit),
        as_json,
        ["RUN", "ATTEMPT", "STATUS", "EXIT", "WORKER", "STARTED", "DURATION", "ERROR"],
        lambda run: [
            run.id,
            run.attempt,
            run.status,
            run.returncode,
            run.worker_id,
            when(run.started_at),
            seconds(run.duration),
            run.error or run.pending_reason,
        ],
    )


@click.command()
@click.argument("run_id", metavar="RUN")
@api_command
def cancel(client: Client, as_json: bool, run_id):
    """Cancel RUN: at once when it has not started, else its command is killed."""
    run = client.cancel(run_id)
    if as_json:
        emit_json(run.raw)
    elif run.status == RunStatus.CANCELLED.value:
        click.echo(f"run {run.id} cancelled")
    else:
        click.echo(f"run {run.id}: kill requested ({where(run.status, run.worker_id, None)})")


@click.command()
@api_command
def workers(client: Client, as_json: bool):
    """List workers: status (and whether drained), profile, load."""
    show_listing(
        client.workers(),
        as_json,
        ["WORKER", "STATUS", "OS", "TAGS", "USERS", "RUNNING", "LOAD", "LAST HEARTBEAT"],
        lambda w: [
            w.id,
            f"{w.status}, draining" if w.drained else w.status,
            w.os,
            ",".join(w.tags or []) or "-",
            ",".join(w.allowed_users) if w.allowed_users else "any",
            f"{w.current_running or 0}/{w.max_concurrency or '?'}",
            w.load,
            when(w.last_heartbeat),
        ],
    )


COMMANDS = (submit, jobs, runs, cancel, workers)
