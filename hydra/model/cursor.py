"""Keyset cursors: an opaque token naming the last item a page showed (``hydra.store.pages``
runs the query).

Lists are sorted newest first on (a time field, ``_id``); the cursor encodes that pair of
the page's last item, and the next page is every item strictly before it in that order:
``time < t or (time == t and _id < id)``. Unlike an offset, it stays correct while new items
arrive, and each page costs the same.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime


class BadCursor(ValueError):
    """A cursor this API did not make."""


def encode(moment: datetime | None, ident: str) -> str:
    raw = json.dumps([moment.isoformat() if moment is not None else None, ident], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(token: str) -> tuple[datetime | None, str]:
    """(moment, id) of a cursor; raises BadCursor for anything :func:`encode` did not make."""
    try:
        moment, ident = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return (datetime.fromisoformat(moment) if moment is not None else None), str(ident)
    except (ValueError, TypeError):
        raise BadCursor("not a cursor this API returned") from None
