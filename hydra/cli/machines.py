"""Another machine in one line: the settings files a worker machine or a Python client needs,
written on the control machine, and starting a worker from such a file::

    hydra worker-config --host 10.0.0.5 --out worker.env      # on the control machine
    hydra worker --config /etc/hydra/worker.env -Q os.linux,tag.gpu   # on the worker machine
    hydra client-config --host 10.0.0.5 --out client.env      # for apply_async elsewhere
    hydra client-config --api-only --token T --out client.env # apply_async through the API

A settings file is ``HYDRA_<NAME>=value`` lines (``hydra.settings``: ``HYDRA_CONFIG`` names it,
the environment wins over it). It holds passwords (a client's also the private signing key; a
worker's only public keys), so it is written with mode 0600; copy it the same way (``scp -p``)
and keep it readable by the worker's user only.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from pathlib import Path

import click

from hydra import clock
from hydra.cli import drain
from hydra.settings import CONFIG_VARIABLE, get_settings, read_file

#: Loopback host names in a URL: the control machine's view of its own servers, which another
#: machine reaches under the address given with --host.
_LOOPBACK = re.compile(r"(?<=[@/,;])(127\.0\.0\.1|localhost|\[::1\])(?=[:/,;?]|$)")


def reachable_from(url: str, host: str | None) -> str:
    """``url`` with its loopback hosts replaced by ``host`` (unchanged without one):
    ``redis://hydra:pw@127.0.0.1:6379/0`` -> ``redis://hydra:pw@10.0.0.5:6379/0``."""
    return _LOOPBACK.sub(host, url) if host else url


def render(values: dict[str, str], *, what: str, command: str, use: list[str], holds: str = "passwords") -> str:
    """A settings file: a header saying what it is and how to use it, then one line per value."""
    lines = [
        f"# Hydra settings for {what}, written by `hydra {command}` on "
        f"{socket.gethostname()} at {clock.utcnow().isoformat(timespec='seconds')}.",
        f"# It holds {holds}: keep it readable by its user only (chmod 600).",
        *(f"# {line}" for line in use),
    ]
    for name, value in values.items():
        quoted = f'"{value}"' if re.search(r"[\s#'\"]", value) else value
        lines.append(f"{name}={quoted}")
    return "\n".join(lines) + "\n"


def write_private(text: str, out: str) -> None:
    """Write ``text`` to ``out`` (``-``: stdout) with mode 0600 from the first byte on."""
    if out == "-":
        click.echo(text, nl=False)
        return
    path = Path(out)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fh.fileno(), 0o600)  # an existing file keeps its mode otherwise
        fh.write(text)
    click.echo(f"hydra: wrote {path} (mode 0600)", err=True)


def _store_settings(host: str | None) -> dict[str, str]:
    """The broker's and the database's settings, as another machine reaches them."""
    settings = get_settings()
    values = {
        "HYDRA_BROKER_URL": reachable_from(settings.broker_url, host),
        "HYDRA_MONGO_URL": reachable_from(settings.mongo_url, host),
        "HYDRA_MONGO_DB": settings.mongo_db,
    }
    if settings.broker_master_name:
        values["HYDRA_BROKER_MASTER_NAME"] = settings.broker_master_name
    if settings.broker_sentinel_password:
        values["HYDRA_BROKER_SENTINEL_PASSWORD"] = settings.broker_sentinel_password
    return values


def _checked(check: bool) -> None:
    """With ``check``: stop, in one line, when the servers refuse the credentials this file
    would hand out (a file that cannot work is worse than none)."""
    if check:
        from hydra.store import credentials

        credentials.check()


host_option = click.option(
    "--host",
    metavar="ADDRESS",
    default=None,
    help="The address other machines reach Redis, MongoDB and the API at (replaces 127.0.0.1 "
    "and localhost in the URLs; default: the URLs as they are).",
)
out_option = click.option(
    "--out", default="-", metavar="FILE", show_default=True, help="Where to write it (mode 0600; -: stdout)."
)
check_option = click.option(
    "--check/--no-check",
    default=True,
    show_default=True,
    help="First make sure Redis and MongoDB accept the credentials it hands out.",
)


@click.command("worker-config")
@host_option
@click.option("--namespaces", default=None, help="Comma-separated namespaces the worker serves (default: all).")
@click.option("--allowed-users", default=None, help="Comma-separated users whose jobs it runs (default: any).")
@out_option
@check_option
def worker_config(host: str | None, namespaces: str | None, allowed_users: str | None, out: str, check: bool) -> None:
    """Write the settings file of a worker on another machine: the broker's and the
    database's URLs with their credentials, the publishers' public keys (HYDRA_VERIFY_KEYS,
    never a private key), and what it serves. Run it
    where this installation's settings are (the control machine); on the worker machine
    `hydra worker --config FILE -Q os.linux` is then the whole start."""
    from hydra.dispatch import signing

    _checked(check)
    values = {**_store_settings(host), **signing.worker_settings()}
    if namespaces:
        values["HYDRA_NAMESPACES"] = namespaces
    if allowed_users:
        values["HYDRA_ALLOWED_USERS"] = allowed_users
    target = "/etc/hydra/worker.env" if out == "-" else out
    use = [
        f"Start a worker with it: hydra worker --config {target} -Q os.linux[,tag.NAME...]",
        f"                    or: HYDRA_CONFIG={target} celery -A hydra worker -Q os.linux",
    ]
    write_private(render(values, what="a worker machine", command="worker-config", use=use), out)


@click.command("client-config")
@host_option
@click.option(
    "--token",
    "token",
    default=None,
    metavar="TOKEN",
    help="An API token to include, for the CLI and hydra.client (default: none; make one with `hydra token create`).",
)
@click.option(
    "--api-only",
    is_flag=True,
    help="Only the API's URL and --token: apply_async goes through the API as the token's user "
    "(no broker, database or signing key in the file).",
)
@out_option
@check_option
def client_config(host: str | None, token: str | None, api_only: bool, out: str, check: bool) -> None:
    """Write the settings file of a Python program on another machine that publishes jobs
    with Celery's apply_async (the broker, the database, the private signing key: give it only
    to a program trusted to publish) and, with --token,
    talks to the API (hydra.client, the CLI). With --api-only, the file holds the API's URL and
    the token only: the program's apply_async goes through the API, with the token's rights."""
    from hydra.dispatch import signing

    _checked(check)
    if api_only and not token:
        raise click.UsageError("--api-only needs --token: the program acts as that token's user")
    values = {} if api_only else {**_store_settings(host), **signing.publisher_settings()}
    values["HYDRA_API_URL"] = reachable_from(get_settings().api_url, host)
    if token:
        values["HYDRA_TOKEN"] = token
    if api_only:
        values["HYDRA_SUBMIT_VIA"] = "api"
    target = "client.env" if out == "-" else out
    use = [f"Use it: HYDRA_CONFIG={target} python my_program.py   (run_command.apply_async, hydra.client)"]
    holds = "an API token" if api_only else "passwords and the private signing key"
    write_private(render(values, what="a client program", command="client-config", use=use, holds=holds), out)


class WorkerGroup(click.Group):
    """``hydra worker [--config FILE] CELERY_ARGS...`` starts a worker (:func:`start`);
    ``hydra worker drain NAME`` / ``undrain NAME`` are subcommands (``hydra.cli.drain``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] in self.commands:
            return super().parse_args(ctx, args)
        ctx.meta[_START_ARGS] = list(args)
        return []

    def invoke(self, ctx: click.Context):
        if _START_ARGS in ctx.meta:
            with start.make_context("hydra worker", ctx.meta.pop(_START_ARGS), parent=ctx) as sub:
                return start.invoke(sub)
        return super().invoke(ctx)


_START_ARGS = "hydra.worker.start_args"
START_SETTINGS = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


@click.group("worker", cls=WorkerGroup, invoke_without_command=True, context_settings=START_SETTINGS)
def worker() -> None:
    """Start a worker (`hydra worker --config FILE CELERY_ARGS`), or drain / undrain one."""


worker.add_command(drain.drain)
worker.add_command(drain.undrain)


@click.command("worker", context_settings=START_SETTINGS)
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False),
    default=None,
    help="The worker's settings file (what `hydra worker-config` wrote); default: $HYDRA_CONFIG.",
)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def start(config: str | None, celery_args: tuple[str, ...]) -> None:
    """Start a worker: `celery -A hydra worker CELERY_ARGS` with the settings file CONFIG,
    e.g. `hydra worker --config /etc/hydra/worker.env -Q os.linux,tag.gpu -c 4`
    (`hydra worker --help` shows Celery's options)."""
    env = dict(os.environ)
    if config:
        env[CONFIG_VARIABLE] = str(Path(config).absolute())
    if env.get(CONFIG_VARIABLE):
        read_file(env[CONFIG_VARIABLE])  # a bad file stops here, in one line
    argv = [sys.executable, "-m", "celery", "-A", "hydra", "worker", *celery_args]
    sys.stdout.flush()
    os.execve(sys.executable, argv, env)


COMMANDS = (worker_config, client_config, worker)
