"""The signing keys' commands: ``hydra keys generate`` and ``hydra keys public``.

Publishers (API, gRPC, controller) hold an Ed25519 private key, workers only its public half
(``hydra.dispatch.signing``). These make a key pair and print what a worker is given.
"""

from __future__ import annotations

import os

import click


@click.group()
def keys() -> None:
    """Task-message signing keys: publishers hold the private key, workers the public ones."""


@keys.command("generate")
@click.argument("path", required=False, type=click.Path(dir_okay=False, writable=True))
@click.option(
    "--env", "as_env", is_flag=True, help="Print HYDRA_SIGNING_KEY=... and HYDRA_VERIFY_KEYS=... lines instead."
)
def generate(path: str | None, as_env: bool) -> None:
    """Make a new Ed25519 private key: written to PATH (PEM, mode 0600; never overwritten) for
    HYDRA_SIGNING_KEY_FILE, and its public key printed as HYDRA_VERIFY_KEYS=... for the workers.
    With --env, both are printed as lines for an env file (docker compose's .env)."""
    from hydra.dispatch import signing

    key = signing.generate()
    public = signing.public_text(key.public_key())
    if as_env:
        click.echo(f"HYDRA_SIGNING_KEY={signing.private_text(key)}\nHYDRA_VERIFY_KEYS={public}")
        return
    if not path:
        raise click.UsageError("give the file to write the private key to (or --env)")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise click.ClickException(
            f"{path} exists: a key file is never overwritten (rotation: docs/operating/security.md)"
        ) from None
    with os.fdopen(fd, "w") as fh:
        fh.write(signing.private_pem(key))
    click.echo(f"HYDRA_VERIFY_KEYS={public}")


@keys.command("public")
def public() -> None:
    """Print the settings a worker needs to verify what this configuration signs (its public
    keys, never a private one)."""
    from hydra.dispatch import signing

    try:
        settings = signing.worker_settings()
    except (signing.KeyMissing, OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    for name, value in settings.items():
        click.echo(f"{name}={value}")


COMMANDS = (keys,)
