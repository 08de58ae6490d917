"""``hydra worker drain NAME`` and ``hydra worker undrain NAME``: take a worker out of
placement before maintenance, and put it back (``hydra.control.drain``)."""

from __future__ import annotations

import click

from hydra.cli.helpers import api_command, emit_json
from hydra.client import Client

#: Subcommands of ``hydra worker`` have their own --help (``hydra worker --help`` is Celery's).
SETTINGS = {"help_option_names": ["-h", "--help"]}


@click.command("drain", context_settings=SETTINGS)
@click.argument("name")
@click.option("--reason", default=None, help="Why (shown with the worker in `hydra workers` and the console).")
@api_command
def drain(client: Client, as_json: bool, name: str, reason: str | None):
    """Drain worker NAME: no new run is placed on it; what runs there finishes, and what waits
    in its queue goes to another worker (or waits, with the reason "draining")."""
    found = client.drain_worker(name, reason=reason)
    if as_json:
        emit_json(found)
    else:
        why = f" ({found['reason']})" if found.get("reason") else ""
        click.echo(f"worker {name} drained by {found.get('by')}{why}: it takes no new runs")


@click.command("undrain", context_settings=SETTINGS)
@click.argument("name")
@api_command
def undrain(client: Client, as_json: bool, name: str):
    """Undrain worker NAME: it takes new runs again."""
    client.undrain_worker(name)
    if as_json:
        emit_json({"worker": name, "drained": False})
    else:
        click.echo(f"worker {name} undrained: it takes new runs again")


COMMANDS = (drain, undrain)
