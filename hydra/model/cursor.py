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

from hydra import clock

#: No cursor this API makes is longer (a time, an id); longer ones are refused unread.
MAX_LENGTH = 512


class BadCursor(ValueError):
    """A cursor this API did not make."""


def encode(moment: datetime | None, ident: str) -> str:
    raw = json.dumps([moment.isoformat() if moment is not None else None, ident], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(token: str) -> tuple[datetime | None, str]:
    """(moment, id) of a cursor; raises BadCursor for anything :func:`encode` did not make."""
    if not isinstance(token, str) or len(token) > MAX_LENGTH:
        raise BadCursor("not a cursor this API returned")
    try:
        moment, ident = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(ident, (str, int)) or not (moment is None or isinstance(moment, str)):
            raise TypeError(ident)
        return (clock.parse_iso(moment) if moment is not None else None), str(ident)
    except (ValueError, TypeError, RecursionError):
        raise BadCursor("not a cursor this API returned") from None
