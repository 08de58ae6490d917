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

import json
import re
import shlex
import sys
import time
from datetime import UTC, datetime, timedelta

import click

from hydra import clock
from hydra.cli import fanout
from hydra.cli.dependants import dependency_options
from hydra.cli.fanout import fanout_options
from hydra.cli.limits import limit_options
from hydra.cli.notify import notify_option
from hydra.cli.params import declare_option
from hydra.client import Client, ClientError, Conflict, InvalidRequest, Run
from hydra.model.params import needs_values
from hydra.model.status import FOLLOWED, RunStatus

#: Exit status when Hydra itself fails (not the command).
EXIT_HYDRA_ERROR = 3
#: Statuses after which another attempt of the job follows.
FOLLOWED_BY_ANOTHER = frozenset(status.value for status in FOLLOWED)


# --- output helpers -------------------------------------------------------------------------------


def when(value) -> str:
    """A time as local ``YYYY-MM-DD HH:MM:SS`` ('-' for none)."""
    if not isinstance(value, datetime):
        return "-" if value in (None, "") else str(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def seconds(value) -> str:
    if value is None:
        return "-"
    value = float(value)
    if value < 60:
        return f"{value:.2f}s"
    minutes, secs = divmod(int(value), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def cell(value, width: int = 60) -> str:
    text = "-" if value is None or value == "" or value == [] else str(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def table(headers: list[str], rows: list[list]) -> str:
    """Left-aligned columns separated by two spaces; the last column is not padded."""
    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = []
    for row in [headers, *cells]:
        padded = [text.ljust(widths[i]) for i, text in enumerate(row[:-1])] + [row[-1]]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def pairs(items: list[tuple[str, object]]) -> str:
    width = max(len(key) for key, _ in items)
    return "\n".join(f"{key.ljust(width)}  {cell(value, 200)}" for key, value in items)


def emit_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def note(message: str) -> None:
    """Progress for people, on stderr (stdout carries the command's output)."""
    click.echo(f"hydra: {message}", err=True)


def limit_option(default: int):
    """``--limit``: how many records a listing shows at most (the API's page size)."""
    return click.option("--limit", type=click.IntRange(1, 1000), default=default, show_default=True)


#: ``--cursor``: a listing's next page.
cursor_option = click.option("--cursor", help="The page after the one that printed this cursor.")


def show_listing(found, as_json: bool, headers: list[str], row, *, more: str | None = None) -> None:
    """A listing's records: as JSON with ``--json``, else a table of ``row(record)``; when there
    is a next page, how to ask for it (``more``: the command that pages, before ``--cursor``)."""
    if as_json:
        emit_json([record.raw for record in found])
        return
    click.echo(table(headers, [row(record) for record in found]))
    cursor = getattr(found, "next_cursor", None)
    if more and cursor:
        note(f"more: {more} --cursor {cursor}")


def placement(status: str, worker: str | None, reason: str | None) -> str:
    if status == RunStatus.QUEUED.value:
        return f"queued on {worker}"
    if status == RunStatus.RUNNING.value:
        return f"running on {worker}"
    if status == RunStatus.PENDING.value:
        return f"pending ({reason})" if reason else "pending"
    return status


def ending(run: Run) -> str:
    """``failed (exit 7) in 0.12s on cpu1@host``, ``timed_out (timed out after 1s) ...``."""
    parts = [run.status]
    if run.outcome and run.outcome != run.status:
        parts.append(f"[{run.outcome}]")
    details = [] if run.returncode is None else [f"exit {run.returncode}"]
    if run.error and (run.returncode is None or run.returncode < 0):
        details.append(run.error)
    if details:
        parts.append(f"({'; '.join(details)})")
    if run.duration is not None:
        parts.append(f"in {seconds(run.duration)}")
    if run.worker_id:
        parts.append(f"on {run.worker_id}")
    return " ".join(parts)


# --- shared options -----------------------------------------------------------------------------------


def api_command(func):
    """--api-url, --token and --json for a command that talks to the API; ClientError -> exit 3."""
    func = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(func)
    func = click.option(
        "--token",
        envvar="HYDRA_TOKEN",
        default=None,
        metavar="TOKEN",
        show_envvar=True,
        help="The API token (default: $HYDRA_TOKEN, else the file $HYDRA_TOKEN_FILE or .hydra/admin.token).",
    )(func)
    func = click.option(
        "--api-url",
        envvar="HYDRA_API_URL",
        default=None,
        metavar="URL",
        help="The Hydra API (default: $HYDRA_API_URL or http://127.0.0.1:8000).",
    )(func)

    def run(api_url, token, as_json, **kwargs):
        client = Client(api_url, token=token)
        try:
            return func(client=client, as_json=as_json, **kwargs)
        except ClientError as exc:
            click.echo(f"hydra: error: {exc.message}", err=True)
            if isinstance(exc, InvalidRequest):
                for location in exc.errors.values():
                    for name, messages in location.items() if isinstance(location, dict) else []:
                        click.echo(f"  {name}: {' '.join(map(str, _flatten(messages)))}", err=True)
            sys.exit(EXIT_HYDRA_ERROR)
        finally:
            client.close()

    run.__name__ = func.__name__
    run.__doc__ = func.__doc__
    run.__click_params__ = getattr(func, "__click_params__", [])
    return run


def _flatten(messages):
    if isinstance(messages, dict):
        for key, value in messages.items():
            for message in _flatten(value):
                yield f"{key}: {message}"
    elif isinstance(messages, (list, tuple)):
        for item in messages:
            yield from _flatten(item)
    else:
        yield messages


def parse_env(values: tuple[str, ...]) -> dict[str, str]:
    env = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--env")
        env[key] = value
    return env


def command_line(words: tuple[str, ...]) -> str:
    """One word is a command line as typed (``'make && ./run'``); several are quoted back
    into one (``-- echo 'a b'`` arrives as two words, and runs as ``echo 'a b'``)."""
    return words[0] if len(words) == 1 else shlex.join(words)


# --- commands ---------------------------------------------------------------------------------------------


def when_option(value: str | None) -> str | None:
    """``--at``: an ISO 8601 time (with a zone, or local), or ``+30s`` / ``+5m`` / ``+2h`` / ``+1d`` from now."""
    if value is None:
        return None
    relative = re.fullmatch(r"\+(\d+(?:\.\d+)?)([smhd])", value.strip())
    if relative:
        amount = float(relative.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[relative.group(2)]
        return (datetime.now(UTC) + timedelta(seconds=amount)).isoformat()
    try:
        moment = clock.parse_iso(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time nor +N[smhd]", param_hint="--at") from None
    return (moment if moment.tzinfo else moment.astimezone()).isoformat()


def parse_headers(values: tuple[str, ...]) -> dict[str, str]:
    headers = {}
    for item in values:
        key, sep, value = item.partition(":")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not NAME: VALUE", param_hint="--header")
        headers[key.strip()] = value.strip()
    return headers


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
                ("status", placement(submitted.status, submitted.worker_id, submitted.pending_reason)),
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
            f"{placement(submitted.status, submitted.worker_id, submitted.pending_reason)}"
        )
    following = {"run_id": submitted.run_id}
    try:
        run = watch(client, submitted.run_id, stream=not as_json, first_status=submitted.status, current=following)
    except KeyboardInterrupt:
        sys.exit(interrupted(client, following["run_id"], cancel=cancel_on_interrupt))
    if as_json:
        emit_json(run.raw)
    sys.exit(run.exit_code)


#: Exit status after Ctrl-C (as a shell reports SIGINT).
EXIT_INTERRUPTED = 130


def interrupted(client: Client, run_id: str, *, cancel: bool) -> int:
    """What Ctrl-C during ``--wait`` does: say that the run goes on and how to cancel it, or
    (``--cancel-on-interrupt``) cancel it. Returns the exit status."""
    if not cancel:
        note(f"interrupted: stopped waiting, but run {run_id} goes on (Hydra runs it whether or not you wait)")
        note(f"  follow it: hydra logs -f {run_id}    cancel it: hydra run cancel {run_id}")
        return EXIT_INTERRUPTED
    try:
        run = client.cancel(run_id)
    except Conflict:
        note(f"interrupted: run {run_id} had already ended; nothing to cancel")
        return EXIT_INTERRUPTED
    if run.status == RunStatus.CANCELLED.value:
        note(f"interrupted: run {run_id} cancelled")
    else:
        note(f"interrupted: run {run_id} is being cancelled (its worker kills the command)")
    return EXIT_INTERRUPTED


def watch(
    client: Client, run_id: str, *, stream: bool, first_status: str | None = None, current: dict | None = None
) -> Run:
    """Follow a run (and the attempts that follow it) to the end; return the last attempt.
    ``current["run_id"]`` is kept up to date with the attempt being followed."""
    current = current if current is not None else {}
    while True:
        current["run_id"] = run_id
        seen = {"status": first_status}

        def on_status(status: str, run_id: str = run_id, seen: dict = seen) -> None:
            if status != seen["status"] and stream:
                run = client.run(run_id)
                if not run.ended:
                    note(f"run {run_id}: {placement(status, run.worker_id, run.pending_reason)}")
            seen["status"] = status

        for chunk in client.follow(run_id, on_status=on_status):
            if stream:
                out = sys.stdout if chunk.stream == "stdout" else sys.stderr
                out.write(chunk.text)
                out.flush()
        run = client.run(run_id)
        if stream:
            note(f"run {run_id}: {ending(run)}")
        if run.status not in FOLLOWED_BY_ANOTHER:
            return run
        following = _wait_next(client, run)
        if following is None:
            return run
        if stream:
            note(
                f"{run.decision or 'next attempt'}: run {following.id} (attempt {following.attempt}), "
                f"{placement(following.status, following.worker_id, following.pending_reason)}"
            )
        run_id, first_status = following.id, following.status


def _wait_next(client: Client, run: Run, timeout: float = 30.0) -> Run | None:
    """The attempt recorded after ``run`` (it is recorded right after ``run``'s end)."""
    deadline = time.monotonic() + timeout
    while True:
        following = client.next_attempt(run)
        if following is not None or time.monotonic() >= deadline:
            return following
        time.sleep(0.3)


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
        click.echo(f"run {run.id}: kill requested ({placement(run.status, run.worker_id, None)})")


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
