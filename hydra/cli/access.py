"""The access commands, through the API: ``hydra token create|list|revoke``, ``hydra audit``,
``hydra namespace show|set|delete``. (``hydra token bootstrap``, which needs no token, is an
operator's command: ``hydra.cli.admin``.)"""

from __future__ import annotations

import click

from hydra.cli.helpers import api_command, emit_json, limit_option, pairs, show_listing, when
from hydra.cli.notify import described_targets, notify_option
from hydra.client import Client


@click.group()
def token() -> None:
    """API tokens: make, list, revoke."""


@token.command("create")
@click.option("--name", required=True, help="What the token is for (ci, alice-laptop, ...).")
@click.option(
    "--user",
    metavar="NAME",
    help="The user it authenticates as, e.g. a viewer's own name (default: yours; another user needs your act-as right).",
)
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    metavar="NAMESPACE=ROLE",
    help="A role: viewer, operator or admin in a namespace (* for all). Repeatable.",
)
@click.option("--act-as", "act_as", multiple=True, metavar="USER", help="A user it may submit as (* any). Repeatable.")
@click.option(
    "--expires-days",
    type=float,
    help="Days until it stops working (default: never; a token made with a token: no later than that one).",
)
@api_command
def create_token(client: Client, as_json: bool, name, user, roles, act_as, expires_days):
    """Make a token; its secret is printed this once."""
    grants = {}
    for item in roles:
        namespace, sep, role = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not NAMESPACE=ROLE", param_hint="--role")
        grants[namespace] = role
    made = client.create_token(name, roles=grants, user=user, act_as=list(act_as) or None, expires_days=expires_days)
    if as_json:
        emit_json(made.raw)
        return
    click.echo(
        pairs([("id", made.id), ("user", made.user), ("roles", made.raw["roles"]), ("expires", when(made.expires_at))])
    )
    click.echo(f"token  {made.token}")
    click.echo("(shown this once: keep it, e.g. export HYDRA_TOKEN=...)", err=True)
    if user is None:
        click.echo(f"(it acts as {made.user}, as you do; --user NAME makes a token of another user)", err=True)


@token.command("list")
@api_command
def list_tokens(client: Client, as_json: bool):
    """List tokens (never their secrets)."""
    show_listing(
        client.tokens(),
        as_json,
        ["ID", "NAME", "USER", "ROLES", "ACT AS", "CREATED", "EXPIRES", "REVOKED", "MADE WITH"],
        lambda t: [
            t.id,
            t.name,
            t.user,
            ",".join(f"{ns}={r}" for ns, r in sorted(t.roles.items())),
            ",".join(t.act_as),
            when(t.created_at),
            when(t.expires_at),
            when(t.revoked_at),
            t.parent or "-",
        ],
    )


@token.command("revoke")
@click.argument("token_id", metavar="ID")
@api_command
def revoke_token(client: Client, as_json: bool, token_id):
    """Revoke a token."""
    revoked = client.revoke_token(token_id)
    if as_json:
        emit_json(revoked.raw)
    else:
        click.echo(f"token {revoked.id} revoked")


@click.command()
@click.option("--namespace", help="Only this namespace.")
@click.option("--actor", help="Only what this user did.")
@click.option("--target", help="Only what was done to this job, run or token.")
@limit_option(100)
@api_command
def audit(client: Client, as_json: bool, namespace, actor, target, limit):
    """The audit trail: who did what, and when (admins)."""
    show_listing(
        client.audit(namespace=namespace, actor=actor, target=target, limit=limit),
        as_json,
        ["WHEN", "ACTOR", "ACTION", "NAMESPACE", "TARGET", "DETAILS"],
        lambda e: [
            when(e.at),
            e.actor,
            e.action,
            e.namespace,
            e.target,
            " ".join(f"{k}={v}" for k, v in sorted(e.details.items())),
        ],
    )


@click.group()
def namespace() -> None:
    """A namespace's quotas and default notification targets."""


@namespace.command("show")
@click.argument("name")
@api_command
def show_namespace(client: Client, as_json: bool, name):
    """Show a namespace's quotas."""
    limits = client.namespace_limits(name)
    if as_json:
        emit_json(limits)
    else:
        click.echo(
            pairs(
                [
                    ("namespace", name),
                    ("max running", limits.get("max_running")),
                    ("max queued", limits.get("max_queued")),
                    ("default memory MB", limits.get("default_memory_mb")),
                    ("default cpu", limits.get("default_cpu")),
                    ("max memory MB", limits.get("max_memory_mb")),
                    ("max cpu", limits.get("max_cpu")),
                    ("notify", described_targets(limits.get("notify"))),
                ]
            )
        )


@namespace.command("set")
@click.argument("name")
@click.option("--max-running", type=click.IntRange(0), help="In-flight runs (queued or running) at most.")
@click.option("--max-queued", type=click.IntRange(0), help="Runs waiting in workers' queues at most.")
@click.option("--default-memory-mb", type=click.IntRange(1), help="Memory (MiB) of its jobs that set none.")
@click.option("--default-cpu", type=click.FloatRange(0, min_open=True), help="CPU (cores) of its jobs that set none.")
@click.option("--max-memory-mb", type=click.IntRange(1), help="Memory (MiB) a job may ask at most.")
@click.option("--max-cpu", type=click.FloatRange(0, min_open=True), help="CPU (cores) a job may ask at most.")
@notify_option
@api_command
def set_namespace(client: Client, as_json: bool, name, max_running, max_queued, notify, **resources):
    """Set a namespace's quotas, its jobs' default notification targets and their default and
    maximum resource limits (left out: the default quotas, no targets, no limits)."""
    limits = client.set_namespace_limits(
        name, max_running=max_running, max_queued=max_queued, notify=notify, **resources
    )
    if as_json:
        emit_json(limits)
    else:
        click.echo(f"namespace {name}: max running {limits.get('max_running')}, max queued {limits.get('max_queued')}")


@namespace.command("delete")
@click.argument("name")
@api_command
def delete_namespace(client: Client, as_json: bool, name):
    """Delete a namespace's quotas: the defaults hold again."""
    client.delete_namespace_limits(name)
    if as_json:
        emit_json({"namespace": name, "deleted": True})
    else:
        click.echo(f"namespace {name}: quotas deleted (the defaults hold)")


COMMANDS = (token, audit, namespace)
