"""Multipart bodies, read as they stream in: uploads are checked against the schema's
``maxSize``, ``mimeTypes`` and ``maxSelect`` part by part, and the request is refused at the
first file that breaks a rule, before PocketBase is touched and without reading further parts.

The raw bytes are spooled (memory, then a temporary file) and forwarded unchanged once every
check has passed, so PocketBase receives exactly what the client sent.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from typing import IO, Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from .errors import BAD_REQUEST, ApiError, field_error
from .spec import CollectionSpec, FieldSpec

_SNIFF_BYTES = 512
#: RFC 2231 parameters (``name*=UTF-8''%40jsonPayload``, ``filename*0=``): Go decodes them into
#: the part's name, this parser does not; such a part could be read two ways, so it is refused.
_EXTENDED_PARAMETER = re.compile(rb"\*\s*=|\*[0-9]")
_SPOOL = 1024 * 1024
_MESSAGES = {
    "records.create": "Failed to create record.",
    "records.update": "Failed to update record.",
}


def sniff(head: bytes) -> str | None:
    """The MIME type of a file from its first bytes, when it is one PocketBase tells the same
    way; ``None`` when unsure (PocketBase, which checks every upload too, then decides)."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"PK\x03\x04"):
        return None  # zip, docx, xlsx, epub...: let PocketBase look inside
    if head.startswith(b"\x1f\x8b"):
        return "application/gzip"
    stripped = head.lstrip()
    if stripped.startswith((b"<svg", b"<?xml")) and b"<svg" in head:
        return "image/svg+xml"
    if stripped[:1] in (b"<", b"{", b"["):
        return None  # html / xml / json: PocketBase's detector is finer than this one
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
        if len(head) >= _SNIFF_BYTES - 3:  # a multi-byte character cut at the boundary
            try:
                text = head[:-3].decode("utf-8")
            except UnicodeDecodeError:
                text = None
    if text is not None and all(c.isprintable() or c in "\r\n\t\f" for c in text):
        return "text/plain"
    return None


@dataclass
class Upload:
    key: str
    filename: str
    size: int = 0
    head: bytes = b""
    mime: str | None = None


@dataclass
class MultipartBody:
    """The spooled raw body plus what was learnt from it while it streamed in."""

    spool: IO[bytes]
    length: int
    fields: list[tuple[str, str]] = field(default_factory=list)
    uploads: list[Upload] = field(default_factory=list)

    def close(self) -> None:
        self.spool.close()


class MultipartReader:
    """Feeds the body to a streaming parser and checks every upload as its bytes arrive."""

    def __init__(
        self,
        boundary: bytes,
        spec: CollectionSpec | None,
        route_name: str,
        *,
        limit: int,
        text_limit: int,
    ) -> None:
        self.spec = spec
        self.message = _MESSAGES.get(route_name, "Failed to process the request.")
        self.limit = limit
        self.text_limit = text_limit
        spool = tempfile.SpooledTemporaryFile(_SPOOL)  # noqa: SIM115
        self.body = MultipartBody(spool, 0)
        self.error: ApiError | None = None
        self._counts: dict[str, int] = {}
        self._text_total = 0
        self._reset_part()
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._reset_part,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )

    def feed(self, chunk: bytes) -> None:
        """One chunk of the raw body; raises ``ApiError`` at the first broken rule."""
        self.body.length += len(chunk)
        if self.body.length > self.limit:
            raise ApiError(413, "Request entity too large.")
        self.body.spool.write(chunk)
        try:
            self.parser.write(chunk)
        except MultipartParseError:  # malformed (or a preamble, folded headers): never guessed
            raise ApiError(400, BAD_REQUEST) from None
        if self.error is not None:
            raise self.error

    def finish(self) -> MultipartBody:
        try:
            self.parser.finalize()
        except MultipartParseError:
            raise ApiError(400, BAD_REQUEST) from None
        if self.error is not None:
            raise self.error
        return self.body

    # -- parser callbacks (synchronous; errors are kept and raised by ``feed``)
    def _reset_part(self) -> None:
        self._hname = b""
        self._hvalue = b""
        self._disposition = b""
        self._upload: Upload | None = None
        self._field: FieldSpec | None = None
        self._name = ""
        self._text: list[bytes] = []

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._hname += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]

    def _header_end(self) -> None:
        name = self._hname.strip().lower()
        # Go reads the first of two Content-Disposition headers and decodes a quoted-printable
        # part; this parser would not: such a part could be read two ways, so it is refused
        twice = name == b"content-disposition" and self._disposition
        quoted = (
            name == b"content-transfer-encoding"
            and self._hvalue.strip().lower() == b"quoted-printable"
        )
        if (twice or quoted) and self.error is None:
            self.error = ApiError(400, BAD_REQUEST)
        elif name == b"content-disposition":
            self._disposition = self._hvalue
        self._hname = self._hvalue = b""

    def _headers_finished(self) -> None:
        if _EXTENDED_PARAMETER.search(self._disposition) and self.error is None:
            self.error = ApiError(400, BAD_REQUEST)
            return
        _, options = parse_options_header(self._disposition)
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if not filename:  # Go: no file name, even an empty one, makes a plain value
            return
        self._upload = Upload(self._name, filename.decode("utf-8", "replace"))
        base = self._name.strip("+")
        spec_field = self.spec.file_fields.get(base) if self.spec is not None else None
        self._field = spec_field
        if spec_field is None:
            return
        count = self._counts[base] = self._counts.get(base, 0) + 1
        if count > spec_field.max_select:
            self._fail(
                base,
                "validation_too_many_values",
                f"Select no more than {spec_field.max_select}.",
                {"maxSelect": spec_field.max_select},
            )

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self.error is not None:
            return
        upload = self._upload
        if upload is None:
            self._text_total += end - start
            if self._text_total > self.text_limit:
                self.error = ApiError(413, "Request entity too large.")
                return
            self._text.append(data[start:end])
            return
        upload.size += end - start
        if len(upload.head) < _SNIFF_BYTES:
            upload.head += data[start : start + _SNIFF_BYTES - len(upload.head)]
            if len(upload.head) >= _SNIFF_BYTES:
                self._check_type(upload)
        spec_field = self._field
        if spec_field is not None and upload.size > spec_field.max_size:
            self._fail(
                spec_field.name,
                "validation_file_size_limit",
                f"Failed to upload {upload.filename!r} - the maximum allowed file size is "
                f"{spec_field.max_size} bytes.",
                {"maxSize": spec_field.max_size},
            )

    def _part_end(self) -> None:
        if self.error is not None:
            return
        upload = self._upload
        if upload is None:
            self.body.fields.append((self._name, b"".join(self._text).decode("utf-8", "replace")))
            return
        if len(upload.head) < _SNIFF_BYTES:
            self._check_type(upload)
        self.body.uploads.append(upload)

    def _check_type(self, upload: Upload) -> None:
        upload.mime = sniff(upload.head)
        spec_field = self._field
        if spec_field is None or not spec_field.mime_types or upload.mime is None:
            return
        if upload.mime not in spec_field.mime_types:
            allowed = ", ".join(spec_field.mime_types)
            self._fail(
                spec_field.name,
                "validation_invalid_mime_type",
                f'"{upload.filename}" mime type must be one of: {allowed}.',
                {"mimeTypes": allowed},
            )

    def _fail(self, name: str, code: str, message: str, params: dict[str, Any]) -> None:
        if self.error is None:
            self.error = ApiError(400, self.message, {name: field_error(code, message, params)})


def boundary_of(content_type: bytes) -> bytes | None:
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        return None
    return options.get(b"boundary") or None


def multipart_fields(raw: bytes, boundary: bytes) -> list[tuple[str, str]]:
    """The text fields of a whole multipart body already in memory (files are skipped)."""
    reader = MultipartReader(boundary, None, "form", limit=len(raw) + 1, text_limit=len(raw) + 1)
    try:
        reader.feed(raw)
        return reader.finish().fields
    finally:
        reader.body.close()


def upload_limit(spec: CollectionSpec | None, base: int) -> int:
    """The largest multipart body worth reading for ``spec``: text plus every file allowed."""
    if spec is None:
        return base
    return base + sum(f.max_size * max(f.max_select, 1) for f in spec.file_fields.values())
