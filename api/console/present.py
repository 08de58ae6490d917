"""How the console writes things, the same on every page.

* Times: one format, UTC, ``2026-05-01 14:03:07Z`` (``hydra.model.wording.timestamp``), in a
  ``<time>`` element whose title console.js sets to the reader's local time with its offset;
  the charts' time axes are UTC and 24-hour too (console.js).
* Durations and a job's settings in words (``hydra.model.wording``, which the CLI uses too).
* Status glyphs: plain symbols that DejaVu Sans has (``make install`` installs it with
  Chromium; tests/browser checks that an installed font covers every one), never emoji.
  run.js reads the same map from the page (``<body data-glyphs>``).
* A page of a listing sorted by a column (:func:`sort_rows`): only the rows of that page,
  which is what a bounded listing can sort.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlencode

from api.console.blueprint import bp
from hydra import clock
from hydra.model import wording

#: A symbol per status, beside its word (never the symbol alone).
GLYPHS = {
    "succeeded": "✓",
    "completed": "✓",
    "failed": "✗",
    "timed_out": "◷",
    "cancelled": "⊘",
    "lost": "?",
    "dead_letter": "☠",
    "running": "▶",
    "queued": "…",
    "pending": "‖",
    "retrying": "↻",
    "scheduled": "◔",
}
#: What a status without a glyph, or no status, shows.
NO_GLYPH = "•"


def moment(value: datetime | str | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    return clock.parse_iso(str(value))


@bp.app_template_filter("utc")
def utc(value: datetime | str | None) -> str:
    """``2026-05-01 14:03:07Z`` ('—' for none)."""
    found = moment(value)
    return "—" if found is None else wording.timestamp(found)


@bp.app_template_filter("duration")
def duration(seconds: float | None) -> str:
    return "—" if seconds is None else wording.duration(seconds)


@bp.app_template_filter("percent")
def percent(fraction: float | None) -> str:
    return "—" if fraction is None else f"{fraction:.0%}"


@bp.app_context_processor
def presentation():
    return {"glyphs": GLYPHS, "no_glyph": NO_GLYPH, "words": wording}


#: Columns a page of jobs sorts by: the key of a row ({"job": ..., "summary": ...}), and
#: whether it reads best from the largest (desc) when first chosen.
JOB_SORTS: dict[str, tuple[Callable[[dict], object], str]] = {
    "name": (lambda row: row["job"]["name"].lower(), "asc"),
    "status": (lambda row: row["job"].get("status") or "", "asc"),
    "last_run": (lambda row: row["summary"].last.at if row["summary"].last else -1, "desc"),
    "next_run": (
        lambda row: row["summary"].next_run.timestamp() if row["summary"].next_run else float("inf"),
        "asc",
    ),
    "success": (
        lambda row: row["summary"].success_rate if row["summary"].success_rate is not None else -1.0,
        "asc",
    ),
    "created": (lambda row: row["job"].get("created_at") or "", "desc"),
}


def sort_rows(rows: list[dict], column: str | None, order: str | None) -> tuple[list[dict], str | None, str]:
    """The rows sorted by ``column`` (None or unknown: as listed) in ``order`` (``asc`` or
    ``desc``; default the column's own); returns (rows, the column, the order)."""
    if column not in JOB_SORTS:
        return rows, None, "desc"
    key, natural = JOB_SORTS[column]
    order = order if order in ("asc", "desc") else natural
    return sorted(rows, key=key, reverse=order == "desc"), column, order


@bp.app_template_filter("ms_iso")
def ms_iso(millis: int | None) -> str | None:
    """Epoch milliseconds (as the indexes keep times) as an ISO time, for ``when``."""
    return None if millis is None else clock.from_millis(int(millis)).isoformat()


@bp.app_template_filter("with_sort")
def with_sort(args, column: str, order: str | None) -> str:
    """The query string of this page sorted by ``column`` (``order`` None: the column's own)."""
    kept = {k: v for k, v in args.to_dict().items() if k not in ("sort", "order")}
    kept["sort"] = column
    if order:
        kept["order"] = order
    return urlencode(kept)
