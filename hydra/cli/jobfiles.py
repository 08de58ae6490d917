"""``hydra job export`` and ``hydra job apply``: jobs as files (``hydra.model.jobfile``),
in JSON or YAML, applied idempotently by namespace and name (``POST /jobs/apply``)."""

from __future__ import annotations

import json
import os

import click
import yaml

from hydra.cli.helpers import api_command, emit_json, table
from hydra.cli.manage import job
from hydra.client import Client


def parse(text: str, what: str) -> object:
    """A file's text as JSON, else YAML (``safe_load``: plain data only)."""
    stripped = text.lstrip()
    try:
        if stripped.startswith(("{", "[")):
            return json.loads(text)
        return yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise click.BadParameter(f"neither JSON nor YAML: {exc}", param_hint=what) from None


def read_jobs(path: str) -> list:
    """The jobs of a job file: one job (an object) or a list of them."""
    with click.open_file(path) as handle:
        found = parse(handle.read(), "-f")
    if isinstance(found, dict):
        return [found]
    if not isinstance(found, list) or not found:
        raise click.BadParameter("a job file holds a job (an object) or a list of jobs", param_hint="-f")
    return found


def read_secrets(path: str | None) -> dict:
    """A secrets file: ``{JOB NAME: {"env": {NAME: value}, "headers": {NAME: value}, "body": value}}``."""
    if not path:
        return {}
    with click.open_file(path) as handle:
        found = parse(handle.read(), "--secrets")
    if not isinstance(found, dict) or not all(isinstance(item, dict) for item in found.values()):
        raise click.BadParameter("a secrets file maps each job's name to its values", param_hint="--secrets")
    return found


def dump(data: object, as_yaml: bool) -> str:
    if as_yaml:
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


@job.command("export")
@click.argument("job_ids", nargs=-1, metavar="[JOB]...")
@click.option("--yaml", "as_yaml", is_flag=True, help="YAML instead of JSON.")
@click.option("--namespace", "-n", metavar="NS", help="Every job of this namespace (a list).")
@click.option("--user", metavar="USER", help="Every job running as this user (a list).")
@click.option("--status", metavar="STATUS", help="Every job whose latest run has this status (a list).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), help="Write to this file.")
@api_command
def job_export(client: Client, as_json: bool, job_ids, as_yaml, namespace, user, status, output):
    """Print the job file of JOB: every field a user can set, write-only values (env values,
    webhook headers and body) as {"secret": true}. With several JOBs, or --namespace/--user/
    --status instead, a list. `hydra job apply -f FILE` applies it back."""
    selector = namespace or user or status
    if bool(job_ids) == bool(selector):
        raise click.UsageError("give JOB ids, or a selector (--namespace, --user, --status)")
    if job_ids:
        files = [client.job_file(job_id) for job_id in job_ids]
        data: object = files[0] if len(files) == 1 else files
    else:
        data = client.job_files(namespace=namespace, user=user, status=status)
    text = dump(data, as_yaml)
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        click.echo(text, nl=False)


@job.command("apply")
@click.option(
    "--file",
    "-f",
    "path",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="The job file (JSON or YAML; one job or a list); - reads stdin.",
)
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
@click.option(
    "--secrets",
    "secrets_path",
    type=click.Path(dir_okay=False, exists=True),
    help='Values for {"secret": true} references, by job name: {JOB: {env: {NAME: v}, headers: {NAME: v}, body: v}}.',
)
@click.option(
    "--env-from-shell",
    is_flag=True,
    help="An env reference takes the value of the variable of that name in this shell, if set.",
)
@api_command
def job_apply(client: Client, as_json: bool, path, dry_run, secrets_path, env_from_shell):
    """Create, update or leave each job of a job file, by namespace and name (idempotent).

    A job that does not exist is created (and runs as `hydra submit` would); one that differs
    is updated; an equal one is left unchanged. A {"secret": true} reference keeps the value the
    job stored unless --secrets or --env-from-shell supplies one. Every job is checked before
    anything changes."""
    jobs = read_jobs(path)
    secrets = read_secrets(secrets_path)
    results = client.apply_jobs(
        jobs, dry_run=dry_run, secrets=secrets, shell_env=dict(os.environ) if env_from_shell else None
    )
    if as_json:
        emit_json(results)
        return
    prefix = "would be " if dry_run else ""
    rows = [
        [
            item["namespace"],
            item["name"],
            prefix + item["action"],
            item.get("id") or "-",
            ", ".join(item.get("changes") or []) or "-",
        ]
        for item in results
    ]
    click.echo(table(["NAMESPACE", "NAME", "ACTION", "JOB", "CHANGES"], rows))
