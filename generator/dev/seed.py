"""Example data for the postly schema, loaded into a running PocketBase through its records API.

``examples/postly/seed.json`` maps collection names (in creation order) to records with fixed
ids, so tests can refer to them. Values of file fields are file names: ``*.png`` becomes a small
PNG generated here (no imaging library needed), anything else a short text file.
Users' passwords are in the seed file (they are test accounts).
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

from ..errors import HaptaError
from .pbserver import PocketBaseServer

_HERE = Path(__file__).resolve().parent.parent  # the package: hapta_gen/ (generator/ in a checkout)


def postly_dir() -> Path:
    """The postly example: packaged next to the generator in a wheel, else in the repository."""
    for candidate in (_HERE / "examples" / "postly", _HERE.parent / "examples" / "postly"):
        if (candidate / "pb_schema.json").is_file():
            return candidate
    raise HaptaError("the postly example (examples/postly/pb_schema.json) is missing")


def postly_schema() -> list[dict[str, Any]]:
    """The committed postly ``pb_schema.json`` (a PocketBase import array)."""
    data: list[dict[str, Any]] = json.loads((postly_dir() / "pb_schema.json").read_text("utf-8"))
    return data


def postly_seed() -> dict[str, list[dict[str, Any]]]:
    """The seed records by collection, in the order they must be created."""
    data: dict[str, list[dict[str, Any]]] = json.loads(
        (postly_dir() / "seed.json").read_text("utf-8")
    )
    return data


def png_bytes(width: int = 16, height: int = 16, seed: str = "") -> bytes:
    """A valid RGB PNG, two-colour checkerboard derived from ``seed`` (deterministic)."""
    digest = zlib.crc32(seed.encode()).to_bytes(4, "big") + zlib.crc32(seed[::-1].encode()).to_bytes(4, "big")
    one, two = digest[:3], digest[4:7]
    rows = b"".join(
        b"\x00" + b"".join(one if (x // 4 + y // 4) % 2 == 0 else two for x in range(width))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def file_content(name: str) -> tuple[str, bytes, str]:
    """``(filename, content, mime type)`` for a file name in the seed data."""
    if name.lower().endswith(".png"):
        return name, png_bytes(seed=name), "image/png"
    return name, f"{name}: example attachment for postly\n".encode(), "text/plain"


def seed_records(
    server: PocketBaseServer, seed: dict[str, list[dict[str, Any]]]
) -> dict[str, list[dict[str, Any]]]:
    """Create ``seed`` records as superuser; returns PocketBase's answers by collection."""
    file_fields = {
        c["name"]: {f["name"] for f in c.get("fields", []) if f.get("type") == "file"}
        for c in server.list_collections()
    }
    created: dict[str, list[dict[str, Any]]] = {}
    for collection, records in seed.items():
        if collection not in file_fields:
            raise HaptaError(f"seed data names collection {collection!r}, which the server lacks")
        created[collection] = []
        for record in records:
            payload = {k: v for k, v in record.items() if k not in file_fields[collection]}
            if "password" in payload:
                payload.setdefault("passwordConfirm", payload["password"])
            files: list[tuple[str, tuple[str, bytes, str]]] = []
            for name in sorted(file_fields[collection] & record.keys()):
                value = record[name]
                for filename in value if isinstance(value, list) else [value]:
                    if filename:
                        files.append((name, file_content(str(filename))))
            path = f"/api/collections/{collection}/records"
            if files:
                resp = server.request(
                    "POST", path, data={"@jsonPayload": json.dumps(payload)}, files=files
                )
            else:
                resp = server.request("POST", path, json=payload)
            created[collection].append(resp.json())
    return created


def seed_postly(server: PocketBaseServer) -> dict[str, list[dict[str, Any]]]:
    """Load ``examples/postly/seed.json`` into ``server`` (which must have the postly schema)."""
    return seed_records(server, postly_seed())
