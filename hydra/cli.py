"""The ``hydra`` command line (click)."""
from __future__ import annotations

import logging
import sys

import click


@click.group()
@click.option("--log-level", envvar="LOG_LEVEL", default="INFO", show_default=True,
              help="DEBUG, INFO, WARNING or ERROR.")
def main(log_level: str) -> None:
    """Hydra: distributed command jobs on Celery."""
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


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


if __name__ == "__main__":
    main()
