"""The operators' commands: ``hydra controller``, ``hydra init-db``.

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


COMMANDS = (controller, init_db, bootstrap_token)
