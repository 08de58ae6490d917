"""What a namespace may be called: one rule for job bodies, role grants and namespaces' limits.

A namespace is a DNS label, as in Kubernetes and Nomad: lowercase letters, digits and ``-``, at
most 63, starting and ending with a letter or digit. A role may also be given for ``*``: every
namespace. Nothing else can name one, so no namespace name is ever a MongoDB operator
(``$where``), a dotted path or a control character when it becomes a key of a stored document
(a token's roles).
"""

from __future__ import annotations

import re

from marshmallow import ValidationError, validate

#: The pattern (also what the OpenAPI description shows); matched whole, never up to a newline.
NAMESPACE_RE = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
DEFAULT_NAMESPACE = "default"
#: The namespace a role is given for to hold in all of them.
EVERY_NAMESPACE = "*"
MESSAGE = "a namespace is lowercase letters, digits and '-' (at most 63, starting and ending with a letter or digit)"

_NAMESPACE = re.compile(NAMESPACE_RE.removeprefix("^").removesuffix("$"))


def problem(name: object, *, every: bool = False) -> str | None:
    """Why ``name`` cannot be a namespace (None: it can); with ``every``, ``*`` is one too."""
    if every and name == EVERY_NAMESPACE:
        return None
    if isinstance(name, str) and _NAMESPACE.fullmatch(name):
        return None
    return MESSAGE if not every else f"{MESSAGE}; or * for every namespace"


class Namespace(validate.Regexp):
    """The marshmallow validator of a namespace (``every``: ``*`` too). A ``Regexp``, so the
    OpenAPI description shows the pattern, but matched whole: Python's ``$`` also matches
    before a final newline."""

    def __init__(self, *, every: bool = False):
        pattern = NAMESPACE_RE if not every else r"^(\*|[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)$"
        super().__init__(pattern, error=problem("", every=every))
        self.every = every

    def __call__(self, value):  # type: ignore[no-untyped-def]  # a str, as for the Regexp it refines
        if problem(value, every=self.every) is not None:
            raise ValidationError(self._format_error(value))
        return value
