"""``files.MultipartReader``: a multipart body read as it streams in, checked part by part, and
spooled byte for byte; ``files.sniff`` tells the types PocketBase tells the same way."""

from __future__ import annotations

import pytest
from gateway.catalog import BY_NAME
from gateway.errors import ApiError
from gateway.files import MultipartReader, boundary_of, multipart_fields, sniff

BOUNDARY = b"b0undary"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 600
POSTS = BY_NAME["posts"]


def part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    return b"--" + BOUNDARY + b"\r\nContent-Disposition: " + disposition.encode() + b"\r\n\r\n" + value + b"\r\n"


def body(*parts: bytes) -> bytes:
    return b"".join(parts) + b"--" + BOUNDARY + b"--\r\n"


def read(raw: bytes, *, chunk: int = 7, limit: int = 10**8, text_limit: int = 10**6) -> MultipartReader:
    reader = MultipartReader(BOUNDARY, POSTS, "records.create", limit=limit, text_limit=text_limit)
    for i in range(0, len(raw), chunk):
        reader.feed(raw[i : i + chunk])
    return reader


def test_fields_uploads_and_the_exact_bytes() -> None:
    raw = body(part("title", b"hello"), part("tags", b"a"), part("tags", b"b"), part("cover", PNG, "c.png"))
    reader = read(raw)
    parsed = reader.finish()
    assert parsed.fields == [("title", "hello"), ("tags", "a"), ("tags", "b")]
    assert [(u.key, u.filename, u.size, u.mime) for u in parsed.uploads] == [("cover", "c.png", len(PNG), "image/png")]
    assert parsed.length == len(raw)
    parsed.spool.seek(0)
    assert parsed.spool.read() == raw
    parsed.close()


def test_too_many_files_refused_at_the_first_extra_one() -> None:
    raw = body(part("cover", PNG, "1.png"), part("cover", PNG, "2.png"))
    with pytest.raises(ApiError) as caught:
        read(raw, chunk=len(raw)).finish()
    assert caught.value.status == 400
    assert caught.value.data["cover"]["code"] == "validation_too_many_values"


def test_wrong_type_refused_while_streaming() -> None:
    raw = body(part("cover", b"%PDF-1.4 " + b"x" * 600, "doc.png"))
    with pytest.raises(ApiError) as caught:
        read(raw)
    assert caught.value.data["cover"]["code"] == "validation_invalid_mime_type"


def test_oversized_file_refused_before_the_end() -> None:
    big = PNG + b"\x00" * (2 * POSTS.file_fields["cover"].max_size)
    raw = body(part("cover", big, "big.png"))
    reader = MultipartReader(BOUNDARY, POSTS, "records.create", limit=10**9, text_limit=10**6)
    with pytest.raises(ApiError) as caught:
        for i in range(0, len(raw), 65536):
            reader.feed(raw[i : i + 65536])
    assert caught.value.data["cover"]["code"] == "validation_file_size_limit"
    assert reader.body.length < len(raw)  # refused before the whole body was read
    reader.body.close()


def test_limits_are_413() -> None:
    with pytest.raises(ApiError) as caught:
        read(body(part("title", b"x" * 100)), limit=50)
    assert caught.value.status == 413
    with pytest.raises(ApiError) as caught:
        read(body(part("title", b"x" * 100)), text_limit=50)
    assert caught.value.status == 413


def test_boundary_and_whole_body_fields() -> None:
    assert boundary_of(b"multipart/form-data; boundary=" + BOUNDARY) == BOUNDARY
    assert boundary_of(b"application/json") is None
    assert boundary_of(b"multipart/form-data") is None
    raw = body(part("@jsonPayload", b'{"a":1}'), part("cover", PNG, "c.png"))
    assert multipart_fields(raw, BOUNDARY) == [("@jsonPayload", '{"a":1}')]


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (PNG, "image/png"),
        (b"\xff\xd8\xff\xe0", "image/jpeg"),
        (b"GIF89a", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8", "image/webp"),
        (b"%PDF-1.7", "application/pdf"),
        (b"PK\x03\x04", None),
        (b"plain words\n", "text/plain"),
        (b"<html>", None),
        (b"\x00\x01\x02", None),
    ],
)
def test_sniff(head: bytes, mime: str | None) -> None:
    assert sniff(head) == mime
