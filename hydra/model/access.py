"""Who may do what, in which namespace (pure: no I/O).

A caller is a :class:`Principal`: a user name, a role per namespace, and the users it may
act as. Roles grow: a ``viewer`` reads jobs, runs and output; an ``operator`` also submits,
cancels, retries, triggers, pauses and resumes; an ``admin`` also changes and deletes jobs
and manages tokens, quotas and the audit trail. A role given for the namespace ``*`` holds in
every namespace.

Whatever a caller may not even read answers as if it did not exist (404) and never appears
in a listing; what it may read but not do answers 403.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum

from hydra.model.namespaces import DEFAULT_NAMESPACE, EVERY_NAMESPACE, problem

#: What ``act_as`` holds to let a caller submit as any user.
ANY_USER = "*"


class Role(IntEnum):
    """Ordered: each role can do what the ones below it can."""

    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @classmethod
    def parse(cls, word: str) -> Role:
        try:
            return cls[word.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown role {word!r}; use viewer, operator or admin") from None

    def __str__(self) -> str:
        return self.name.lower()


#: The role each action needs.
NEEDS: dict[str, Role] = {
    "read": Role.VIEWER,
    "submit": Role.OPERATOR,
    "cancel": Role.OPERATOR,
    "retry": Role.OPERATOR,
    "trigger": Role.OPERATOR,
    "pause": Role.OPERATOR,
    "resume": Role.OPERATOR,
    "drain": Role.OPERATOR,  # a worker, in every namespace it serves
    "update": Role.ADMIN,
    "delete": Role.ADMIN,
    "manage": Role.ADMIN,  # tokens, quotas, the audit trail
}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    user: str
    roles: dict[str, Role] = field(default_factory=dict)
    #: Users it may submit as besides itself (``*``: any user).
    act_as: frozenset[str] = frozenset()
    #: How it authenticated: ``token:<id>``, ``oidc:<issuer>``, ``scrape``.
    via: str = ""
    #: When the Hydra token it authenticated with stops working (None: it does not expire,
    #: or it is no Hydra token). A token it makes expires no later (``hydra.control.admin``).
    expires_at: datetime | None = None

    def role_in(self, namespace: str) -> Role | None:
        """Its role in ``namespace`` (the higher of the namespace's own and ``*``'s)."""
        found = [r for r in (self.roles.get(namespace), self.roles.get(EVERY_NAMESPACE)) if r is not None]
        return max(found) if found else None

    def can(self, action: str, namespace: str) -> bool:
        role = self.role_in(namespace)
        return role is not None and role >= NEEDS[action]

    def sees(self, namespace: str) -> bool:
        return self.can("read", namespace)

    @property
    def sees_everything(self) -> bool:
        return EVERY_NAMESPACE in self.roles

    def visible(self, wanted: list[str] | None = None) -> list[str] | None:
        """The namespaces a listing may show: ``wanted`` (all when None) cut down to those it
        may read; None means no limit (it may read every namespace and wants all)."""
        if self.sees_everything:
            return wanted
        readable = sorted(ns for ns in self.roles if self.sees(ns))
        return readable if wanted is None else [ns for ns in wanted if ns in readable]

    @property
    def home(self) -> str:
        """The namespace its jobs go to when they name none: its only namespace where it may
        submit, else ``default``."""
        own = [ns for ns in self.roles if ns != EVERY_NAMESPACE and self.can("submit", ns)]
        return own[0] if len(own) == 1 else DEFAULT_NAMESPACE

    def may_act_as(self, user: str) -> bool:
        return user == self.user or ANY_USER in self.act_as or user in self.act_as

    def grants(self) -> dict[str, str]:
        """Its roles as words (for answers and tokens)."""
        return {ns: str(role) for ns, role in sorted(self.roles.items())}


def parse_grants(items: dict[str, str] | list[str]) -> dict[str, Role]:
    """``{"default": "operator"}`` or ``["default=operator", "*=viewer"]`` -> roles by namespace.
    ValueError for a grant that is not NAMESPACE=ROLE, a role that is none, or a namespace no
    job can have (``hydra.model.namespaces``)."""
    pairs = items.items() if isinstance(items, dict) else (item.partition("=")[::2] for item in items)
    roles = {}
    for namespace, word in pairs:
        if not namespace or not word:
            raise ValueError("a grant is NAMESPACE=ROLE, e.g. default=operator")
        namespace = namespace.strip()
        wrong = problem(namespace, every=True)
        if wrong:
            raise ValueError(f"{namespace!r}: {wrong}")
        roles[namespace] = Role.parse(word)
    return roles
