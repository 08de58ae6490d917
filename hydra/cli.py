"""The ``hydra`` command line (click)."""
from __future__ import annotations

import click

from hydra import logs


@click.group()
@click.option("--log-level", envvar="LOG_LEVEL", default="INFO", show_default=True,
              help="DEBUG, INFO, WARNING or ERROR.")
@click.pass_context
def main(ctx: click.Context, log_level: str) -> None:
    """Hydra: distributed command jobs on Celery."""
    # Logs go to stderr as text or JSON (LOG_FORMAT); the component is the command's name.
    logs.configure(ctx.invoked_subcommand or "hydra", level=log_level)


@main.command()
def controller() -> None:
    """Run the controller (worker registry from Celery events, failover, pending placement)."""
    from hydra.celery import app
    from hydra.controller import Controller
    from hydra.db import ensure_schema

    ensure_schema()
    Controller(app).run()


@main.command("init-db")
def init_db() -> None:
    """Create Hydra's MongoDB collections and indexes (idempotent)."""
    from hydra.db import ensure_schema

    ensure_schema()
    click.echo("schema ready")


# The commands that talk to the API: submit, jobs, runs, logs, cancel, workers.
from hydra.console import COMMANDS  # noqa: E402

for _command in COMMANDS:
    main.add_command(_command)


if __name__ == "__main__":
    main()
