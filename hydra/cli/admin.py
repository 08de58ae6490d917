"""The operators' commands: ``hydra controller``, ``hydra init-db``, ``hydra export``.

They import the runtime when they run, not when the CLI loads: the users' commands
(``hydra submit``, ...) only talk HTTP and should not pay for loading Celery and the stores.
"""

from __future__ import annotations

import click


@click.command()
def controller() -> None:
    """Run the controller (worker registry from Celery events, failover, pending placement)."""
    from hydra.celery.app import app
    from hydra.control.controller import Controller
    from hydra.store.schema import ensure_schema

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
    type=float,
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
def export(days: float | None, namespaces: tuple[str, ...], out) -> None:
    """Write runs as JSON Lines (one run record per line, times in ISO 8601), job by job,
    oldest jobs first - before retention prunes them, or to keep an archive."""
    from datetime import timedelta

    from hydra import clock
    from hydra.settings import get_settings
    from hydra.store.retention import Retention

    retention = Retention()
    if not retention.index.built():
        raise click.ClickException(
            "the Redis indexes are being rebuilt (is a controller running?); try again when it is done"
        )
    if days is None:
        days = get_settings().retention_days
        if days <= 0:
            raise click.ClickException("HYDRA_RETENTION_DAYS is 0 (keep everything): give --older-than DAYS")
        days = max(days, 1.0)
    now = clock.utcnow()
    cutoff = now - timedelta(days=days) if days > 0 else now + timedelta(days=1)
    count = retention.export(out, cutoff, namespaces=list(namespaces) or None)
    click.echo(f"exported {count} runs that ended before {cutoff.isoformat(timespec='seconds')}", err=True)


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
