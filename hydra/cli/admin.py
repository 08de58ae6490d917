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


COMMANDS = (controller, init_db)
