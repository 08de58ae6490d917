"""Helpers of the ``hydra`` commands: formatting (tables, ``key  value`` lines, times, a run's
placement and end), parsing (``--env``, ``--header``, ``--at``, a command's words), the options
every API command shares (``api_command``: ``--api-url``, ``--token``, ``--json``, errors ->
exit 3), and waiting for a run (``watch``: ``submit --wait``) - as rq keeps ``cli/helpers.py``
apart from ``cli/cli.py``. The commands are in ``hydra.cli.console`` and its siblings.
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
from hydra.client import Client, ClientError, Conflict, InvalidRequest, Run
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


def where(status: str, worker: str | None, reason: str | None) -> str:
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


# --- parsing ----------------------------------------------------------------------------------------------


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


# --- waiting for a run -------------------------------------------------------------------------------


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
                    note(f"run {run_id}: {where(status, run.worker_id, run.pending_reason)}")
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
                f"{where(following.status, following.worker_id, following.pending_reason)}"
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
