"""The ``hydra`` command line (click): the operators' commands (``admin``; ``keys``: the signing
keys), settings files for
other machines and starting a worker (``machines``), and the users' commands that talk to the
API (``console``: submit and follow; ``output``: logs; ``manage``: jobs and runs afterwards, and the rest of the
API; ``access``: tokens, audit, namespaces). What they share - formatting, parsing, the API
options, waiting for a run - is ``helpers``.

``hydra --config FILE ...`` reads the settings from FILE (as ``HYDRA_CONFIG=FILE`` does). A
setting that cannot work - a bad settings file, credentials a server refuses, no signing
key - ends a command with one line naming it (exit 3), never a traceback.

Shell completion is click's: ``eval "$(hydra completion bash)"`` (or zsh, fish)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from hydra import logs, names
from hydra.cli import (
    access,
    admin,
    console,
    jobfiles,  # noqa: F401 - job export and job apply, on the job group
    keys,
    machines,
    manage,
    output,
    related,
)
from hydra.cli.helpers import EXIT_HYDRA_ERROR
from hydra.errors import CredentialsRefused
from hydra.settings import CONFIG_VARIABLE, SettingsError, get_settings


def _misconfigured() -> tuple[type[Exception], ...]:
    """The errors that mean "a setting is wrong", said in one line. KeyMissing is
    looked up when needed: the users' commands do not load the dispatch package."""
    found: tuple[type[Exception], ...] = (CredentialsRefused, SettingsError)
    signing = sys.modules.get("hydra.dispatch.signing")
    if signing is not None:
        found += (signing.KeyMissing,)
    return found


class HydraGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if not isinstance(exc, _misconfigured()):
                raise
            click.echo(f"hydra: error: {exc}", err=True)
            sys.exit(EXIT_HYDRA_ERROR)


def _use_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value:
        os.environ[CONFIG_VARIABLE] = str(Path(value).absolute())
        get_settings.cache_clear()
    return value


@click.group(cls=HydraGroup)
@click.version_option(names.VERSION, "--version", prog_name="hydra", message="%(prog)s %(version)s")
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    default=None,
    expose_value=False,
    is_eager=True,
    callback=_use_config,
    help="A settings file (HYDRA_NAME=value lines, e.g. from `hydra worker-config`); default: $HYDRA_CONFIG.",
)
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR (default: LOG_LEVEL, else INFO).")
@click.pass_context
def main(ctx: click.Context, log_level: str | None) -> None:
    """Hydra: distributed command jobs on Celery."""
    # Logs go to stderr as text or JSON (LOG_FORMAT); the component is the command's name.
    logs.configure(ctx.invoked_subcommand or "hydra", level=log_level)


for _command in (
    *admin.COMMANDS,
    *keys.COMMANDS,
    *machines.COMMANDS,
    *console.COMMANDS,
    *output.COMMANDS,
    *access.COMMANDS,
    *manage.COMMANDS,
    *related.COMMANDS,
):
    main.add_command(_command)

__all__ = ["main"]
