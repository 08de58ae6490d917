"""Who submits a ``hydra.run_command`` from Python, what they may submit, and its audit trail.

``run_command.apply_async(...)`` reaches ``Pipeline.accept`` in one of two ways:

* in a process that holds the private signing key (the API's own, the controller, a Python
  process an operator trusts with the key): the submitter is *the key*. Whoever holds it may
  publish anything - it is operator trust - and each submission is audited as
  ``signing-key:<key id>``, via ``apply_async``;
* through the API (``POST /tasks/``: a Python process configured as a client, with an API
  URL and a token, ``hydra.celery.remote``): the submitter is the token's principal, and
  each message - the task and every step of its canvas - must be one it may submit (its
  namespace role, the user it runs as), exactly as a REST submission; audited as that user.

Every message accepted - the task, each canvas step, a chord's body - gets a ``job.submit``
event naming its run, its job and the user it runs as, never a secret (environment
variables are named, not valued).
"""

from __future__ import annotations

from dataclasses import dataclass

from hydra.dispatch import dependants, signing
from hydra.errors import Forbidden
from hydra.model.access import Principal
from hydra.model.dependencies import FIELDS
from hydra.model.flow import Step
from hydra.model.namespaces import DEFAULT_NAMESPACE
from hydra.store.audit import AuditStore
from hydra.store.jobs import JobStore

#: ``via`` of the audit events of submissions made with the signing key.
VIA_KEY = "apply_async"
#: The ``apply_async`` options a submission through the API may carry (``POST /tasks/``):
#: what describes the task and its canvas; where it goes is the router's.
API_OPTIONS = frozenset(
    {"task_id", "link", "link_error", "chain", "chord", "group_id", "group_index", "root_id", "parent_id"}
    | {"countdown", "eta", "expires", "time_limit", "soft_time_limit", "priority", "headers", "shadow"}
)
#: Options that choose a queue: refused through the API.
PLACING_OPTIONS = frozenset({"queue", "routing_key", "exchange"})


@dataclass(frozen=True)
class Submitter:
    """Who publishes: a principal (through the API), or None for the holder of the signing key."""

    principal: Principal | None = None

    @property
    def actor(self) -> str:
        if self.principal is not None:
            return self.principal.user
        try:
            return f"signing-key:{signing.keyring_id()}"
        except (OSError, ValueError):
            return "signing-key"

    @property
    def via(self) -> str:
        return f"{self.principal.via or 'token'} apply_async" if self.principal is not None else VIA_KEY

    def settle(self, kwargs: object) -> object:
        """A message's kwargs with the principal's user and home namespace where it names none."""
        if self.principal is None or not isinstance(kwargs, dict):
            return kwargs
        settled = dict(kwargs)
        if not settled.get("job_id"):
            settled.setdefault("user", self.principal.user)
            settled.setdefault("namespace", self.principal.home)
        return settled

    def check(self, message: dict, jobs: JobStore, option: str | None = None) -> None:
        """Raise Forbidden when the principal may not submit ``message`` (a validated one), and
        InvalidJob for dependants it may not name (``hydra.dispatch.dependants``)."""
        dependants.check(message, job_id=message.get("job_id"), jobs=jobs, principal=self.principal)
        if self.principal is None:
            return
        where = f" ({option})" if option else ""
        namespace = message.get("namespace") or DEFAULT_NAMESPACE
        if not self.principal.can("submit", namespace):
            raise Forbidden(
                f"{self.principal.user!r} may not submit in namespace {namespace!r}{where} (needs operator)"
            )
        user = message.get("user") or ""
        if not self.principal.may_act_as(user):
            raise Forbidden(f"{self.principal.user!r} may not submit as {user!r}{where} (needs the act-as right)")


KEY_HOLDER = Submitter()


def audit_submission(
    submitter: Submitter, run_id: str, message: dict, steps: dict[str, Step], *, parent: str | None = None
) -> None:
    """One ``job.submit`` event for the submitted run and one for each step it carries; and
    the reverse view of the dependants any of them names (``hydra.store.edges``)."""
    for body in [message, *(s.kwargs for s in steps.values())]:
        if any(body.get(name) for name in FIELDS):
            dependants.keep(str(body.get("job_id")), body)
    store = AuditStore()
    for ident, body, extra in [
        (run_id, message, {}),
        *((s.run_id, s.kwargs, {"step_of": parent or run_id}) for s in steps.values() if s.run_id != run_id),
    ]:
        store.record(
            actor=submitter.actor,
            via=submitter.via,
            action="job.submit",
            namespace=body.get("namespace") or DEFAULT_NAMESPACE,
            target=body.get("job_id"),
            details={
                "run": ident,
                "source": "python",
                "user": body.get("user"),
                "name": body.get("name"),
                "env": sorted(body.get("env") or {}),
                **extra,
            },
        )
