"""Notifications: who hears about a job's runs, for which events, and what they get.

A job (and a namespace, as the default for its jobs that name none) may list targets::

    "notify": [
      {"on": ["failed", "recovered"], "webhook": {"url": "https://ops.example/hooks/hydra", "secret": "..."}},
      {"on": ["dead_letter"], "slack": {"url": "https://hooks.slack.com/services/T0/B0/XYZ"}}
    ]

The events (:data:`EVENTS`):

* ``succeeded`` - a run succeeded;
* ``recovered`` - a run succeeded and the job's previous run that ended for good had not
  (failed, timed out or dead-lettered);
* ``failed`` - a run failed for good: failed or timed out with no retry left, or dead-lettered;
* ``dead_letter`` - a run was dead-lettered (retries or failovers used up, or never runnable);
* ``lost`` - an attempt was lost with its worker (also when it fails over to another one).

A cancelled run notifies nobody, and neither does an attempt followed by a retry.

A ``webhook`` target gets a JSON body (:func:`webhook_body`) signed with HMAC-SHA256 over
``<timestamp>.<body>`` with its ``secret`` (:func:`signature`), in the headers
``X-Hydra-Signature: sha256=<hex>`` and ``X-Hydra-Timestamp: <unix seconds>``; a ``slack``
target (any Slack-compatible incoming webhook: Slack, Mattermost, Rocket.Chat) gets
``{"text": ..., "blocks": [...]}`` (:func:`slack_body`). The webhook's ``secret`` and the
Slack URL (which is itself the credential) are write-only: answers show :data:`REDACTED`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates_schema

from hydra.model.redaction import REDACTED
from hydra.model.status import RunStatus

#: The events a target may listen for, from the most to the least specific (a run that is
#: several at once - a dead letter is also a failure - is sent as the first its target lists).
EVENTS = ("recovered", "succeeded", "dead_letter", "lost", "failed")
#: Targets one job (or namespace) may list at most.
MAX_TARGETS = 10
#: Ends that count as "not ok" for ``recovered`` (the job's previous final end).
FAILING = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.DEAD_LETTER})
#: Final ends whose outcome ``recovered`` compares with.
SETTLED = FAILING | {RunStatus.SUCCEEDED}
#: The HTTP headers of a webhook delivery.
SIGNATURE_HEADER, TIMESTAMP_HEADER = "X-Hydra-Signature", "X-Hydra-Timestamp"
EVENT_HEADER, DELIVERY_HEADER = "X-Hydra-Event", "X-Hydra-Delivery"
MIN_SECRET = 16


def _url(description: str) -> fields.Url:
    return fields.Url(
        required=True,
        schemes={"http", "https"},
        require_tld=False,
        validate=validate.Length(max=2048),
        error_messages={"invalid": "not an http(s) URL"},
        metadata={"description": description},
    )


class WebhookTargetSchema(Schema):
    class Meta:
        unknown = RAISE

    url = _url("Where the signed JSON body is POSTed (http or https).")
    secret = fields.String(
        required=True,
        validate=[
            validate.NoneOf([REDACTED], error=f"give the secret itself: answers show it as {REDACTED!r}"),
            validate.Length(MIN_SECRET, 512),
        ],
        metadata={
            "description": "The HMAC-SHA256 key the body is signed with (X-Hydra-Signature). Write-only: "
            f"answers show `{REDACTED}`."
        },
    )


class SlackTargetSchema(Schema):
    class Meta:
        unknown = RAISE

    url = _url(
        f"A Slack-compatible incoming webhook URL; it is the credential, so write-only: answers show `{REDACTED}`."
    )


class TargetSchema(Schema):
    """One notification target: the events it hears and where they go (a webhook or Slack)."""

    class Meta:
        unknown = RAISE
        ordered = True

    on = fields.List(
        fields.String(validate=validate.OneOf(EVENTS, error="unknown event {input!r}; use one of {choices}")),
        required=True,
        validate=validate.Length(1, len(EVENTS)),
        metadata={"description": f"Events to send: {', '.join(EVENTS)}."},
    )
    webhook = fields.Nested(
        WebhookTargetSchema, metadata={"description": "A generic webhook: a JSON body signed with HMAC-SHA256."}
    )
    slack = fields.Nested(SlackTargetSchema, metadata={"description": "A Slack-compatible incoming webhook."})

    @validates_schema
    def one_destination(self, data: Any, **kwargs: Any) -> None:
        given = [kind for kind in ("webhook", "slack") if data.get(kind) is not None]
        if len(given) != 1:
            raise ValidationError("give exactly one of webhook or slack", "_schema")

    @post_load
    def dedupe(self, data: Any, **kwargs: Any) -> Any:
        data["on"] = [event for event in EVENTS if event in data["on"]]
        return data


def notify_field(description: str) -> fields.List:
    """The ``notify`` field of a job body or a namespace's settings."""
    return fields.List(
        fields.Nested(TargetSchema),
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=MAX_TARGETS),
        metadata={"description": description},
    )


def load_targets(value: Any) -> list[dict]:
    """Validate a list of targets (a namespace's default); raises ValidationError."""
    return fields.List(fields.Nested(TargetSchema), validate=validate.Length(max=MAX_TARGETS)).deserialize(value)


def kind_of(target: Mapping[str, Any]) -> str:
    return "webhook" if target.get("webhook") else "slack"


def redacted_targets(targets: Iterable[Mapping[str, Any]] | None) -> list[dict] | None:
    """Targets as answers show them: a webhook's URL with its secret redacted, a Slack URL redacted."""
    if targets is None:
        return None
    shown = []
    for target in targets:
        item: dict[str, Any] = {"on": list(target.get("on") or [])}
        if target.get("webhook"):
            item["webhook"] = {"url": target["webhook"].get("url"), "secret": REDACTED}
        if target.get("slack"):
            item["slack"] = {"url": REDACTED}
        shown.append(item)
    return shown


def shown_url(target: Mapping[str, Any]) -> str:
    """Where a target points, as answers may show it (a Slack URL is a secret)."""
    return target["webhook"]["url"] if target.get("webhook") else REDACTED


def listened(targets: Iterable[Mapping[str, Any]] | None) -> list[str]:
    """Every event some target listens for, in :data:`EVENTS` order."""
    wanted = {event for target in targets or () for event in target.get("on") or ()}
    return [event for event in EVENTS if event in wanted]


def events_of(status: RunStatus, outcome: RunStatus | None, previous: RunStatus | None) -> list[str]:
    """The events of an attempt that ended as ``status`` (its raw ``outcome``), given the job's
    previous final end ``previous`` (None: unknown or none), most specific first."""
    events: list[str] = []
    if status == RunStatus.SUCCEEDED:
        if previous in FAILING:
            events.append("recovered")
        events.append("succeeded")
    if status == RunStatus.DEAD_LETTER:
        events.append("dead_letter")
    if status == RunStatus.LOST or (status == RunStatus.DEAD_LETTER and outcome == RunStatus.LOST):
        events.append("lost")
    if status in FAILING:
        events.append("failed")
    return events


def event_for(target: Mapping[str, Any], events: Iterable[str]) -> str | None:
    """The event a target is sent for a run with ``events`` (None: it listens for none of them)."""
    wanted = set(target.get("on") or ())
    return next((event for event in events if event in wanted), None)


def webhook_body(
    event: str, events: list[str], job: Mapping[str, Any], run: Mapping[str, Any], console_url: str
) -> dict:
    """The JSON body a webhook target gets."""
    return {
        "event": event,
        "events": list(events),
        "job": {key: job.get(key) for key in ("id", "name", "namespace", "user")},
        "run": {
            key: run.get(key)
            for key in (
                "id",
                "attempt",
                "status",
                "outcome",
                "reason",
                "returncode",
                "worker_id",
                "queued_at",
                "started_at",
                "finished_at",
                "duration",
            )
        },
        "console_url": console_url,
    }


_EMOJI = {"recovered": ":white_check_mark:", "succeeded": ":white_check_mark:", "lost": ":warning:"}


def slack_body(event: str, job: Mapping[str, Any], run: Mapping[str, Any], console_url: str) -> dict:
    """The body a Slack-compatible incoming webhook gets: ``text`` (every such service reads
    it) and ``blocks`` (Slack's richer layout)."""
    mark = _EMOJI.get(event, ":x:")
    name = job.get("name") or job.get("id")
    reason = run.get("reason") or ""
    text = f"{mark} Hydra job {name!r} {event.replace('_', ' ')}: run {run.get('id')} ended {run.get('status')}"
    if reason:
        text += f" ({reason})"
    text += f" <{console_url}|open in the console>"
    details = (
        f"*namespace* {job.get('namespace')}  *attempt* {run.get('attempt')}  *worker* {run.get('worker_id') or '-'}"
    )
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": details}]},
        ],
    }


def encoded(body: Mapping[str, Any]) -> bytes:
    """The bytes sent (and signed): compact JSON, keys sorted."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``<timestamp>.<body>`` keyed with ``secret``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(secret: str, timestamp: str, body: bytes, given: str, *, now: float, tolerance: float = 300.0) -> bool:
    """What a receiver checks (also the documented recipe): the signature matches and the
    timestamp is within ``tolerance`` seconds of ``now`` (a replayed delivery is refused)."""
    try:
        moment = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(now - moment) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, moment, body), given or "")


def retry_delay(attempts: int, base: float) -> float:
    """Seconds before delivery attempt ``attempts + 1`` (``attempts`` made): base, 2x, 4x ... capped at 1 h."""
    return min(3600.0, base * 2 ** max(0, attempts - 1))


def shown_deliveries(deliveries: Iterable[Mapping[str, Any]]) -> list[dict]:
    """A notice's deliveries as answers show them: no secret, a Slack URL redacted."""
    shown = []
    for delivery in deliveries:
        kind = delivery.get("kind")
        shown.append(
            {
                "kind": kind,
                "event": delivery.get("event"),
                "url": delivery.get("url") if kind == "webhook" else REDACTED,
                "state": delivery.get("state"),
                "attempts": [
                    {"at": item.get("at"), "status_code": item.get("status_code"), "error": item.get("error")}
                    for item in delivery.get("attempts") or ()
                ],
            }
        )
    return shown


LINE_SYNTAX = "EVENTS webhook URL SECRET, EVENTS slack URL (EVENTS comma separated), or a JSON object"


def target_line(text: str) -> dict:
    """One target as ``hydra submit --notify`` and the console's form take it: ``failed,recovered
    webhook https://ops.example/hook SECRET``, ``dead_letter slack https://hooks.slack.com/...``,
    or a JSON object; raises ValueError. (Its values are checked by :class:`TargetSchema`.)"""
    text = text.strip()
    if text.startswith("{"):
        target = json.loads(text)
        if not isinstance(target, dict):
            raise ValueError(f"write {LINE_SYNTAX}")
        return target
    parts = text.split()
    shapes = {"webhook": 4, "slack": 3}
    if len(parts) < 2 or parts[1] not in shapes or len(parts) != shapes[parts[1]]:
        raise ValueError(f"write {LINE_SYNTAX}")
    events = [event for event in parts[0].split(",") if event]
    if parts[1] == "webhook":
        return {"on": events, "webhook": {"url": parts[2], "secret": parts[3]}}
    return {"on": events, "slack": {"url": parts[2]}}
