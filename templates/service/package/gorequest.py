"""How Go reads the parts of a request PocketBase binds, mirrored so the gateway checks the very
values PocketBase will use, and refuses what it cannot read the same way.

* Query strings: ``url.ParseQuery`` splits on ``&`` only and drops a pair holding ``;`` or a bad
  ``%`` escape; ``Values.Get`` is the first value. Reading a form (``Request.ParseForm``) fails
  on such a pair instead: ``strict``.
* Content types: PocketBase's ``BindBody`` picks the decoder by a case-sensitive prefix of the
  header (``application/json``, ``multipart/form-data``, ``application/x-www-form-urlencoded``,
  XML); ``body_kind`` gives the same answer (``XML`` is never read here: refused).
* Forms: ``Request.Form`` is the urlencoded body then the URL's query, or the URL's query then
  the multipart text fields; PocketBase then merges every ``@jsonPayload`` over the plain
  fields. Two payloads are ambiguous and refused, never guessed.
* JSON: PocketBase refuses duplicate object keys, and binds its structs' keys case-insensitively
  (Unicode folding: U+017F, the long s, is ``s``); ``strict_json`` refuses duplicates (``fold``: also keys
  that differ only by case), ``canonical`` refuses a struct key spelt otherwise than the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_to_bytes

from .errors import BAD_REQUEST, ApiError
from .files import boundary_of, multipart_fields

JSON = "json"
FORM = "form"
MULTIPART = "multipart"
XML = "xml"
OTHER = "other"
PAYLOAD = "@jsonPayload"
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


class Unreadable(ValueError):
    """Input Go reads otherwise than Python, or not at all."""


# ----------------------------------------------------------------------------- query strings


def query_pairs(raw: bytes, *, strict: bool = False) -> list[tuple[str, str]]:
    """The ``(key, value)`` pairs Go's ``url.ParseQuery`` keeps, in order."""
    pairs: list[tuple[str, str]] = []
    for pair in raw.split(b"&"):
        if b";" in pair:
            if strict:
                raise Unreadable("semicolon in a query")
            continue
        if not pair:
            continue
        key, _, value = pair.partition(b"=")
        try:
            pairs.append((_unescape(key), _unescape(value)))
        except Unreadable:
            if strict:
                raise
    return pairs


def pair_name(pair: bytes) -> str | None:
    """The name Go's ``url.ParseQuery`` reads in one ``&``-separated pair (``%74oken`` is
    ``token``), or ``None`` when it drops the pair."""
    if not pair or b";" in pair:
        return None
    key, _, value = pair.partition(b"=")
    try:
        _unescape(value)
        return _unescape(key)
    except Unreadable:
        return None


def first(pairs: Iterable[tuple[str, str]], key: str) -> str:
    """``Values.Get``: the first value of ``key``, ``""`` when there is none."""
    return next((v for k, v in pairs if k == key), "")


def _unescape(part: bytes) -> str:
    """``url.QueryUnescape``: ``+`` is a space, ``%XX`` a byte, any other ``%`` an error."""
    if b"%" not in part and b"+" not in part:
        return part.decode("utf-8", "replace")
    if _BAD_ESCAPE.search(part):
        raise Unreadable("bad escape")
    return unquote_to_bytes(part.replace(b"+", b" ")).decode("utf-8", "replace")


# ----------------------------------------------------------------------------- bodies


def body_kind(content_type: bytes) -> str:
    """Which of PocketBase's decoders reads a body of this declared type."""
    if content_type.startswith(b"application/json"):
        return JSON
    if content_type.startswith(b"multipart/form-data"):
        return MULTIPART
    if content_type.startswith(b"application/x-www-form-urlencoded"):
        return FORM
    if content_type.startswith((b"text/xml", b"application/xml")):
        return XML
    return OTHER


def multipart_boundary(content_type: bytes) -> bytes:
    """The boundary Go's ``mime.ParseMediaType`` finds, or a 400 (none, or two)."""
    boundary = boundary_of(content_type)
    if boundary is None or content_type.lower().count(b"boundary=") != 1:
        raise ApiError(400, BAD_REQUEST)
    return boundary


def form_pairs(kind: str, raw: bytes, content_type: bytes, query: bytes) -> list[tuple[str, str]]:
    """``Request.Form`` of a urlencoded or multipart body (already in memory), or a 400."""
    try:
        url_pairs = query_pairs(query, strict=True)
        if kind == FORM:
            return query_pairs(raw, strict=True) + url_pairs
    except Unreadable:
        raise ApiError(400, BAD_REQUEST) from None
    boundary = multipart_boundary(content_type)
    try:
        fields = multipart_fields(raw, boundary)
    except ApiError:
        raise
    except Exception:  # a malformed body: PocketBase cannot read it either
        raise ApiError(400, BAD_REQUEST) from None
    return url_pairs + fields


def url_form_pairs(query: bytes) -> list[tuple[str, str]]:
    """The URL's part of ``Request.Form`` (it comes before streamed multipart fields)."""
    try:
        return query_pairs(query, strict=True)
    except Unreadable:
        raise ApiError(400, BAD_REQUEST) from None


def payload(pairs: Iterable[tuple[str, str]], *, fold: bool) -> dict[str, Any] | None:
    """The one ``@jsonPayload`` object of a form (``None`` without one); two are a 400."""
    found = [v for k, v in pairs if k == PAYLOAD]
    if not found:
        return None
    if len(found) > 1:
        raise ApiError(400, BAD_REQUEST)
    data = json_body(found[0].encode(), fold=fold)
    if not isinstance(data, dict):
        raise ApiError(400, BAD_REQUEST)
    return data


# ----------------------------------------------------------------------------- JSON


def strict_json(raw: bytes | str, *, fold: bool) -> Any:
    """``raw`` decoded, or ``Unreadable`` for a duplicate key (``fold``: or two keys equal but
    for case), ``NaN``/``Infinity``, or anything that is not one JSON value."""

    def pairs_hook(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen = {k.casefold() if fold else k for k, _ in items}
        if len(seen) != len(items):
            raise Unreadable("duplicate key")
        return dict(items)

    def no_constant(name: str) -> Any:
        raise Unreadable(name)

    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw  # Go reads UTF-8 only
        return json.loads(text, object_pairs_hook=pairs_hook, parse_constant=no_constant)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, Unreadable
        raise Unreadable("not JSON") from None


def json_body(raw: bytes | str, *, fold: bool, message: str = BAD_REQUEST) -> Any:
    """``strict_json`` with PocketBase's 400 for what it refuses (``{}`` for an empty body)."""
    if not raw.strip():
        return {}
    try:
        return strict_json(raw, fold=fold)
    except Unreadable:
        raise ApiError(400, message) from None


def canonical(data: Any, fields: tuple[str, ...], message: str = BAD_REQUEST) -> Any:
    """``data`` when no key of it is one of ``fields`` spelt another way (Go binds ``URL``,
    ``Url`` or a long-s ``subscriptions`` to a struct field as it binds the field's own name)."""
    if isinstance(data, dict):
        folded = {f.casefold(): f for f in fields}
        for key in data:
            name = folded.get(key.casefold())
            if name is not None and key != name:
                raise ApiError(400, message)
    return data


def json_field_value(value: Any) -> Any:
    """What PocketBase stores in a ``json`` field sent ``value`` (JSON body or form alike,
    observed on 0.40): a string holding one JSON value, not starting with white space, is that
    value (``"123"`` → ``123``, ``'{"a":1} '`` → ``{"a": 1}``); any other string, ``" 123"`` and
    ``""`` included, stays a string."""
    if isinstance(value, str) and value and value[0] not in " \t\n\r":
        try:
            return json.loads(value, parse_constant=_not_json)
        except ValueError:
            return value
    return value


def _not_json(constant: str) -> Any:
    """``NaN``, ``Infinity``, ``-Infinity``: Python's ``json`` takes them, Go's does not (the
    string stays a string)."""
    raise ValueError(constant)
