"""The client's HTTP transport: the session (one retry of an idempotent request on a connection
the API closed), the API token it sends, and the mapping of every answer to a result or to a
:class:`hydra.client.errors.ClientError` - as requests keeps its adapters apart from its API.

:class:`Transport` is the base of :class:`hydra.client.Client`, whose typed operations (and the
mixins beside it: output, relations, fan-outs, exports, job files) send through its ``request``
and ``_exchange``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from hydra.client.errors import ServerError, Unavailable, error_of
from hydra.client.records import Page
from hydra.settings import get_settings


def find_token() -> str | None:
    """The API token to send: ``HYDRA_TOKEN``, else the file ``HYDRA_TOKEN_FILE`` names (by
    default ``.hydra/admin.token``, which ``make up`` writes), else None."""
    settings = get_settings()
    if settings.token:
        return settings.token.strip()
    try:
        return Path(settings.token_file).expanduser().read_text().strip() or None
    except OSError:
        return None


def http_session() -> requests.Session:
    """A session that sends an idempotent request (GET, PUT, DELETE, ...) once more when its
    kept-alive connection was closed by the API just as it was reused: gunicorn drops a
    connection idle for 2 s, and a request sent on it then fails ("Remote end closed
    connection without response") before the API saw it. Never a POST: a submission is not
    sent twice behind the caller's back (send an Idempotency-Key to retry one safely)."""
    retry = Retry(total=1, connect=1, read=1, status=0, other=0, redirect=0, raise_on_status=False)
    adapter = HTTPAdapter(max_retries=retry)
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class Transport:
    """Talks to one Hydra API (``url``, default ``HYDRA_API_URL``) with an API token (``token``,
    default :func:`find_token`)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        session: requests.Session | None = None,
    ):
        self.url = (url or get_settings().api_url).rstrip("/")
        self.timeout = timeout
        self.session = session or http_session()
        token = token or find_token()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- transport ----------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json: Any = None,
        headers: dict | None = None,
        timeout: float | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> Any:
        """One request; the decoded JSON answer (None for 204), or a ClientError."""
        return self._exchange(method, path, params=params, json=json, headers=headers, timeout=timeout, ok=ok)[0]

    def _exchange(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json: Any = None,
        headers: dict | None = None,
        timeout: float | None = None,
        ok: tuple[int, ...] = (200,),
        text: bool = False,
        stream: bool = False,
    ) -> tuple[Any, requests.structures.CaseInsensitiveDict]:
        """The answer (decoded JSON; its text with ``text``; the response itself, its body
        still to be read, with ``stream``) and its headers, or a ClientError."""
        url = self.url + path
        try:
            response = self.session.request(
                method, url, params=params, json=json, headers=headers, timeout=timeout or self.timeout, stream=stream
            )
        except requests.Timeout as exc:
            raise Unavailable(f"the Hydra API at {self.url} did not answer {method} {path} in time") from exc
        except requests.RequestException as exc:
            raise Unavailable(
                f"cannot reach the Hydra API at {self.url} ({type(exc).__name__}; is it "
                "running? HYDRA_API_URL says where it is)"
            ) from exc
        if response.status_code in ok and stream:
            return response, response.headers
        if response.status_code in ok and (text or response.status_code == 204):
            return (response.text if text else None), response.headers
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code in ok:
            if body is None:
                raise ServerError(f"{method} {path}: answer is not JSON", status_code=response.status_code)
            return body, response.headers
        raise error_of(f"{method} {path}", response.status_code, body)

    def _page(self, path: str, params: dict, record) -> Page:
        answer, headers = self._exchange("GET", path, params={k: v for k, v in params.items() if v is not None})
        return Page([record.from_json(item) for item in answer], headers.get("X-Next-Cursor"))
