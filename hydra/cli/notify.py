"""The ``--notify`` option (``hydra submit``, ``hydra job update``, ``hydra namespace set``) and
how the commands show targets and what a run's targets were told (``hydra.model.notify``)."""

from __future__ import annotations

import functools

import click

from hydra.model.notify import LINE_SYNTAX, target_line


def parse_targets(values: tuple[str, ...] | list[str]) -> list[dict] | None:
    """``--notify`` values -> targets (None when none was given); the API checks what they say."""
    targets = []
    for value in values:
        try:
            targets.append(target_line(value))
        except ValueError:
            raise click.BadParameter(f"{value!r}: write {LINE_SYNTAX}", param_hint="--notify") from None
    return targets or None


def notify_option(func):
    """``--notify TARGET`` (repeatable), handed to the command as ``notify``: a list, or None."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **{**kwargs, "notify": parse_targets(kwargs.pop("notify", ()) or ())})

    return click.option(
        "--notify",
        "notify",
        multiple=True,
        metavar="TARGET",
        help="Tell a target about runs (repeatable): 'failed,recovered webhook URL SECRET' or "
        "'dead_letter slack URL'; events: failed, dead_letter, lost, succeeded, recovered.",
    )(wrapper)


def described_targets(targets: list[dict] | None) -> str | None:
    """``failed,recovered -> webhook https://ops.example/hook; dead_letter -> slack <redacted>``."""
    if not targets:
        return None
    shown = []
    for target in targets:
        kind = "webhook" if target.get("webhook") else "slack"
        shown.append(f"{','.join(target.get('on') or [])} -> {kind} {(target.get(kind) or {}).get('url')}")
    return "; ".join(shown)


def described_notifications(notifications: dict | None) -> list[tuple[str, str]]:
    """Lines of ``hydra run show``: one per delivery, with its attempts."""
    if not notifications:
        return []
    lines = [
        (
            "notified",
            ", ".join(notifications.get("events") or []) + ("" if notifications.get("done") else " (under way)"),
        )
    ]
    for delivery in notifications.get("deliveries") or []:
        attempts = [
            " ".join(str(part) for part in (item.get("status_code"), item.get("error")) if part is not None) or "?"
            for item in delivery.get("attempts") or []
        ]
        tried = f"; attempts: {' | '.join(attempts)}" if attempts else ""
        lines.append(
            (
                f"  {delivery.get('kind')}",
                f"{delivery.get('url')} {delivery.get('event')}: {delivery.get('state')}{tried}",
            )
        )
    return lines
