"""The operators' commands: ``hydra controller``, ``hydra init-db``, ``hydra bootstrap-token``
(on the control machine, with the stores' credentials) and ``hydra export`` (through the
API, with an admin's token).

They import the runtime when they run, not when the CLI loads: the users' commands
(``hydra submit``, ...) only talk HTTP and should not pay for loading Celery and the stores.
"""

from __future__ import annotations

import click

from hydra.cli.helpers import api_command


@click.command()
def controller() -> None:
    """Run the controller (worker registry from Celery events, failover, pending placement)."""
    from hydra.celery.app import app
    from hydra.control.controller import Controller
    from hydra.store import credentials
    from hydra.store.schema import ensure_schema

    credentials.check()  # a wrong password stops it now, in one line
    ensure_schema()
    Controller(app).run()


@click.command("init-db")
def init_db() -> None:
    """Create Hydra's MongoDB collections and indexes (idempotent)."""
    from hydra.store.schema import ensure_schema

    ensure_schema()
    click.echo("schema ready")


@click.command("export")
@click.option(
    "--older-than",
    "days",
    type=click.FloatRange(0, 36500),
    default=None,
    help="Days: runs that ended longer ago (default: HYDRA_RETENTION_DAYS, what retention prunes next; 0: every run).",
)
@click.option("--namespace", "namespaces", multiple=True, help="Only this namespace (repeatable; default: all).")
@click.option(
    "--out",
    type=click.File("w", encoding="utf-8", lazy=False),
    default="-",
    help="The file to write (default: stdout).",
)
@api_command
def export(client, as_json: bool, days: float | None, namespaces: tuple[str, ...], out) -> None:
    """Write runs as JSON Lines (one run record per line, times in ISO 8601), job by job,
    oldest jobs first - before retention prunes them, or to keep an archive. Through the API
    (GET /export/runs), with an admin's token: no store credentials needed."""
    count = 0
    for namespace in namespaces or (None,):
        for line in client.export_runs(older_than=days, namespace=namespace):
            out.write(line)
            count += 1
    out.flush()
    click.echo(f"exported {count} runs", err=True)


@click.command("bootstrap-token")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=".hydra/admin.token",
    show_default=True,
    help="Where to keep the token (mode 0600).",
)
@click.option("--user", default="admin", show_default=True, help="The user it authenticates as.")
def bootstrap_token(out: str, user: str) -> None:
    """Make the first admin token (every namespace, may act as anyone) unless OUT holds a
    working one. Talks to MongoDB directly: for installing, when no token exists yet."""
    from pathlib import Path

    from hydra.auth.tokens import bootstrap
    from hydra.store.schema import ensure_schema
    from hydra.store.tokens import TokenStore

    ensure_schema()
    _token, made = bootstrap(TokenStore(), Path(out), user=user)
    click.echo(f"{'made' if made else 'kept'} the admin token in {out}")


COMMANDS = (controller, init_db, export, bootstrap_token)
