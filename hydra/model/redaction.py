"""What an answer shows of a secret: environment values are write-only.

Every interface that shows a job (REST's ``JobSchema``, gRPC's ``Job``) shows its ``env`` as
the variables' names, each with the value :data:`REDACTED`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: What an answer shows for the value of an environment variable.
REDACTED = "<redacted>"


def redacted(env: Mapping[str, Any] | None) -> dict[str, str] | None:
    """``env`` with every value replaced by :data:`REDACTED` (None stays None)."""
    if env is None:
        return None
    return {str(name): REDACTED for name in env}
