"""Read the collections of a live PocketBase: the only stage of hapta-gen that uses the network.

``pull_collections`` checks that the URL is a PocketBase (``GET /api/health``), authenticates as a
superuser (``POST /api/collections/_superusers/auth-with-password``, PocketBase 0.23+) and reads
every page of ``GET /api/collections``. Every failure is a ``PullError`` whose one-line message
says what to do next. The token and password are never logged, printed or put in a message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from ..errors import PullError

DEFAULT_PAGE_SIZE = 500
_MAX_PAGES = 10_000
_CREDENTIALS_HINT = "check --email/--password (PB_SUPERUSER_EMAIL / PB_SUPERUSER_PASSWORD)"
_TOO_OLD = (
    "PocketBase older than 0.23 is not supported ({why}); upgrade PocketBase, or export the "
    "collections from the Dashboard (Settings > Export collections) and use that file"
)

Progress = Callable[[str], None]


def pull_collections(
    url: str,
    email: str,
    password: str,
    *,
    timeout: float = 10.0,
    page_size: int = DEFAULT_PAGE_SIZE,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Every collection of the PocketBase at ``url``, exactly as its API returns them."""
    base = normalize_url(url)
    shown = display_url(base)
    say = progress or (lambda _line: None)
    if page_size < 1:
        raise PullError(f"page size must be at least 1, not {page_size}")
    say(f"connecting to {shown}")
    with httpx.Client(base_url=base, timeout=timeout, follow_redirects=False) as client:
        _check_health(client, shown)
        token = _authenticate(client, shown, email, password)
        say(f"authenticated as superuser {email}")
        collections = _read_collections(client, shown, token, page_size)
    say(f"read {len(collections)} collections")
    return collections


def normalize_url(url: str) -> str:
    """``http(s)://host[:port][/prefix]`` without a trailing slash; anything else is a PullError."""
    raw = url.strip()
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise PullError(
            f"invalid PocketBase URL {display_url(raw)!r}: expected http://host:port "
            "(set --url or PB_URL)"
        )
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def display_url(url: str) -> str:
    """The URL without any ``user:password@`` part, safe to print."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _send(client: httpx.Client, shown: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    try:
        return client.request(method, path, **kwargs)
    except httpx.TimeoutException:
        raise PullError(
            f"cannot reach PocketBase at {shown}: timed out after {client.timeout.read or 0:g}s "
            "(check the URL, or raise --timeout)"
        ) from None
    except httpx.TransportError as exc:
        reason = _one_line(str(exc)) or type(exc).__name__
        raise PullError(
            f"cannot reach PocketBase at {shown}: {reason} (is the server running? check --url / PB_URL)"
        ) from None


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _message(resp: httpx.Response) -> str:
    body = _json(resp)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return _one_line(body["message"])
    return _one_line(resp.text) or resp.reason_phrase


def _check_health(client: httpx.Client, shown: str) -> None:
    resp = _send(client, shown, "GET", "/api/health")
    body = _json(resp)
    is_pocketbase = (
        isinstance(body, dict)
        and isinstance(body.get("message"), str)
        and "code" in body
        and "data" in body
    )
    location = resp.headers.get("location")
    if resp.is_redirect and location:
        raise PullError(
            f"{shown} redirects to {display_url(location)}; pass the final URL with --url / PB_URL"
        )
    if not is_pocketbase:
        kind = resp.headers.get("content-type", "no content type").split(";")[0]
        raise PullError(
            f"{shown} does not look like a PocketBase server (GET /api/health answered "
            f"HTTP {resp.status_code}, {kind}); check --url / PB_URL"
        )
    if resp.status_code != 200:
        raise PullError(
            f"PocketBase at {shown} is not healthy: HTTP {resp.status_code} {_message(resp)}"
        )


def _authenticate(client: httpx.Client, shown: str, email: str, password: str) -> str:
    resp = _send(
        client,
        shown,
        "POST",
        "/api/collections/_superusers/auth-with-password",
        json={"identity": email, "password": password},
    )
    if resp.status_code == 404:
        raise PullError(_TOO_OLD.format(why="no _superusers collection"))
    if resp.status_code in (400, 401, 403):
        raise PullError(
            f"PocketBase at {shown} refused the superuser login for {email!r}: "
            f"{_message(resp)} ({_CREDENTIALS_HINT})"
        )
    if resp.status_code == 429:
        raise PullError(
            f"PocketBase at {shown} rate-limited the superuser login; wait a moment and retry"
        )
    body = _json(resp)
    token = body.get("token") if isinstance(body, dict) else None
    if resp.status_code != 200 or not isinstance(token, str) or not token:
        raise PullError(
            f"superuser login at {shown} failed: HTTP {resp.status_code} {_message(resp)}"
        )
    return token


def _read_collections(
    client: httpx.Client, shown: str, token: str, page_size: int
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    headers = {"Authorization": token}
    for page in range(1, _MAX_PAGES + 1):
        resp = _send(
            client,
            shown,
            "GET",
            "/api/collections",
            params={"page": page, "perPage": page_size},
            headers=headers,
        )
        if resp.status_code in (401, 403):
            raise PullError(
                f"PocketBase at {shown} refused to list collections: {_message(resp)} "
                "(the account must be a superuser)"
            )
        body = _json(resp)
        if resp.status_code != 200 or not isinstance(body, dict):
            raise PullError(
                f"listing collections at {shown} failed: HTTP {resp.status_code} {_message(resp)}"
            )
        batch = body.get("items")
        if not isinstance(batch, list) or not all(isinstance(c, dict) for c in batch):
            raise PullError(f"{shown} answered GET /api/collections without a list of collections")
        for collection in batch:
            if "fields" not in collection:
                raise PullError(_TOO_OLD.format(why="collections have no `fields`"))
        items.extend(batch)
        total_pages = body.get("totalPages")
        if not batch or (isinstance(total_pages, int) and page >= total_pages):
            break
        if not isinstance(total_pages, int) and len(batch) < page_size:
            break
    else:
        raise PullError(f"{shown} kept returning collections after {_MAX_PAGES} pages")
    return items
