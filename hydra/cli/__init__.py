"""The ``hydra`` command line (click): the operators' commands (``admin``; ``keys``: the
signing keys) and the users' commands that talk to the API (``console``: submit and follow; ``manage``: jobs and runs
afterwards, and the rest of the API; ``access``: tokens, audit, namespaces).

Shell completion is click's: ``eval "$(hydra completion bash)"`` (or zsh, fish)."""

from __future__ import annotations

import click

from hydra import logs
from hydra.cli import (
    access,
    admin,
    console,
    keys,
    manage,
    related,
)


@click.group()
@click.option(
    "--log-level", envvar="LOG_LEVEL", default="INFO", show_default=True, help="DEBUG, INFO, WARNING or ERROR."
)
@click.pass_context
def main(ctx: click.Context, log_level: str) -> None:
    """Hydra: distributed command jobs on Celery."""
    # Logs go to stderr as text or JSON (LOG_FORMAT); the component is the command's name.
    logs.configure(ctx.invoked_subcommand or "hydra", level=log_level)


for _command in (
    *admin.COMMANDS,
    *keys.COMMANDS,
    *console.COMMANDS,
    *access.COMMANDS,
    *manage.COMMANDS,
    *related.COMMANDS,
):
    main.add_command(_command)

__all__ = ["main"]
