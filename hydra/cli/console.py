"""The ``hydra`` commands people use against the API::

    hydra submit [--os linux --tag gpu --user rich --timeout 60 --retries 2 --priority 80 --wait] -- make test
    hydra jobs [--status failed] [--user rich]        hydra runs JOB
    hydra logs [-f] RUN                                hydra cancel RUN
    hydra workers

Each prints an aligned table (or a few ``key  value`` lines), or JSON with ``--json``. They
talk to ``--api-url`` (default ``$HYDRA_API_URL``, else http://127.0.0.1:8000).

``submit --wait`` reports progress on stderr (placement, status changes, retries), streams
the command's stdout and stderr to its own, and exits with the command's exit code (124
timed out, 130 cancelled, 128+N killed by signal N, 1 when it never ran).
Errors of Hydra itself (API unreachable, invalid job, unknown id) exit with 3.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from datetime import UTC, datetime

import click

from hydra.client import Client, ClientError, InvalidRequest, Run
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


@click.command(context_settings={"ignore_unknown_options": False})
@click.option("--name", help="Job name (default: made from the command).")
@click.option("--user", help="User the job runs as (default: the token's user; another needs the act-as right).")
@click.option("--os", "os_names", multiple=True, metavar="OS", help="linux, macos or windows (repeatable).")
@click.option("--tag", "tags", multiple=True, help="Tag every chosen worker must have (repeatable).")
@click.option("--allow-user", "allowed_users", multiple=True, help="Restrict the job to these users (repeatable).")
@click.option("--shell", type=click.Choice(["bash", "sh", "cmd", "powershell"]), help="Shell to run it in.")
@click.option("--timeout", type=float, help="Seconds before the command is killed.")
@click.option("--retries", type=int, help="Further attempts after a failure.")
@click.option("--priority", type=click.IntRange(0, 100), help="0 (lowest) to 100 (highest).")
@click.option("--env", "env", multiple=True, metavar="NAME=VALUE", help="Environment variable (repeatable).")
@click.option("--cwd", help="Working directory on the worker.")
@click.option("--wait", is_flag=True, help="Wait for the run: show progress and output, exit with its exit code.")
@click.argument("command", nargs=-1, required=True)
@api_command
def submit(
    client: Client,
    as_json: bool,
    command,
    name,
    user,
    os_names,
    tags,
    allowed_users,
    shell,
    timeout,
    retries,
    priority,
    env,
    cwd,
    wait,
):
    """Submit COMMAND as a job (put `--` before it)."""
    submitted = client.submit(
        command_line(command),
        name=name,
        user=user,
        os=list(os_names) or None,
        tags=list(tags) or None,
        allowed_users=list(allowed_users) or None,
        shell=shell,
        timeout=timeout,
        retries=retries,
        priority=priority,
        env=parse_env(env) or None,
        cwd=cwd,
    )
    if not wait:
        if as_json:
            emit_json(submitted.raw)
        else:
            click.echo(
                pairs(
                    [
                        ("job", submitted.job_id),
                        ("run", submitted.run_id),
                        ("status", placement(submitted.status, submitted.worker_id, submitted.pending_reason)),
                    ]
                )
            )
        return
    if not as_json:
        note(
            f"job {submitted.job_id}, run {submitted.run_id}: "
            f"{placement(submitted.status, submitted.worker_id, submitted.pending_reason)}"
        )
    run = watch(client, submitted.run_id, stream=not as_json, first_status=submitted.status)
    if as_json:
        emit_json(run.raw)
    sys.exit(run.exit_code)


def watch(client: Client, run_id: str, *, stream: bool, first_status: str | None = None) -> Run:
    """Follow a run (and the attempts that follow it) to the end; return the last attempt."""
    while True:
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
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@api_command
def jobs(client: Client, as_json: bool, status, user, limit):
    """List jobs, newest first."""
    found = client.jobs(status=status, user=user, limit=limit)
    if as_json:
        emit_json([job.raw for job in found])
        return
    click.echo(
        table(
            ["JOB", "NAME", "USER", "STATUS", "CREATED", "COMMAND"],
            [
                [
                    job.id,
                    job.name,
                    job.user,
                    job.status,
                    when(job.created_at),
                    job.command if job.command else " ".join(job.args or []),
                ]
                for job in found
            ],
        )
    )


@click.command()
@click.argument("job_id", metavar="JOB")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@api_command
def runs(client: Client, as_json: bool, job_id, limit):
    """List the runs (attempts) of JOB, newest first."""
    found = client.runs(job_id, limit=limit)
    if as_json:
        emit_json([run.raw for run in found])
        return
    click.echo(
        table(
            ["RUN", "ATTEMPT", "STATUS", "EXIT", "WORKER", "STARTED", "DURATION", "ERROR"],
            [
                [
                    run.id,
                    run.attempt,
                    run.status,
                    run.returncode,
                    run.worker_id,
                    when(run.started_at),
                    seconds(run.duration),
                    run.error or run.pending_reason,
                ]
                for run in found
            ],
        )
    )


@click.command()
@click.argument("run_id", metavar="RUN")
@click.option("-f", "--follow", is_flag=True, help="Keep streaming until the run ends.")
@api_command
def logs(client: Client, as_json: bool, run_id, follow):
    """Print the output of RUN (stdout to stdout, stderr to stderr)."""
    printed = False

    def show(chunk) -> None:
        nonlocal printed
        printed = True
        if as_json:
            click.echo(json.dumps({"seq": chunk.seq, "stream": chunk.stream, "text": chunk.text, "cut": chunk.cut}))
            return
        out = sys.stdout if chunk.stream == "stdout" else sys.stderr
        out.write(chunk.text)
        out.flush()

    if follow:
        for chunk in client.follow(run_id):
            show(chunk)
    else:
        after = -1
        while True:
            page = client.output(run_id, after=after)
            for chunk in page.chunks:
                show(chunk)
            if not page.chunks:
                break
            after = page.next
    if not printed:
        # No live output recorded (e.g. a run from before live output): the run's record.
        run = client.run(run_id)
        if as_json:
            for stream in ("stdout", "stderr"):
                if getattr(run, stream):
                    click.echo(json.dumps({"seq": None, "stream": stream, "text": getattr(run, stream)}))
        else:
            sys.stdout.write(run.stdout or "")
            sys.stderr.write(run.stderr or "")


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
    """List workers: status, profile, load."""
    found = client.workers()
    if as_json:
        emit_json([worker.raw for worker in found])
        return
    click.echo(
        table(
            ["WORKER", "STATUS", "OS", "TAGS", "USERS", "RUNNING", "LOAD", "LAST HEARTBEAT"],
            [
                [
                    w.id,
                    w.status,
                    w.os,
                    ",".join(w.tags or []) or "-",
                    ",".join(w.allowed_users) if w.allowed_users else "any",
                    f"{w.current_running or 0}/{w.max_concurrency or '?'}",
                    w.load,
                    when(w.last_heartbeat),
                ]
                for w in found
            ],
        )
    )


COMMANDS = (submit, jobs, runs, logs, cancel, workers)
