"""The client's history export (``GET /export/runs``), streamed line by line."""

from __future__ import annotations

from collections.abc import Iterator

import requests

from hydra.client.errors import Unavailable


class Exports:
    """:class:`hydra.client.Client`'s export method (kept beside the client: a streamed
    answer read line by line, unlike every other operation)."""

    url: str
    _exchange: object  # Client._exchange

    def export_runs(self, *, older_than: float | None = None, namespace: str | None = None) -> Iterator[str]:
        """The runs that ended more than ``older_than`` days ago (default: what retention
        prunes next; 0: every run that ended) as JSON Lines, one line (with its newline) at a
        time, of ``namespace`` (default: every one the token administers)."""
        params = {"older_than": older_than, "namespace": namespace}
        response, _ = self._exchange(  # type: ignore[operator]
            "GET", "/export/runs", params={k: v for k, v in params.items() if v is not None}, stream=True
        )
        response.encoding = "utf-8"  # JSON Lines are UTF-8 (the media type names no charset)
        with response:
            try:
                yield from (line + "\n" for line in response.iter_lines(decode_unicode=True) if line)
            except requests.RequestException as exc:
                raise Unavailable(f"the export from {self.url} broke off ({type(exc).__name__})") from exc
