"""Golden output: `generated/` is exactly what the generator makes of examples/postly."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hapta_gen import generate, load_config
from hapta_gen.emit.writer import compare, is_generated
from hapta_gen.schema.loader import load_file

ROOT = Path(__file__).resolve().parent.parent
POSTLY = ROOT / "examples" / "postly"
GENERATED = ROOT / "generated"


def build_postly() -> dict[str, str]:
    result = generate(load_file(POSTLY / "pb_schema.json"), load_config(POSTLY / "hapta.yaml"))
    assert result.ok, result.errors
    return result.files


def test_generated_matches_templates_byte_for_byte() -> None:
    files = build_postly()
    changes = compare(files, GENERATED)
    assert changes.clean, f"generated/ is stale; run `task build`: {changes}"
    for rel, text in files.items():
        assert (GENERATED / rel).read_bytes() == text.encode("utf-8"), rel


def test_every_generated_file_carries_the_header() -> None:
    for rel in build_postly():
        assert is_generated(GENERATED / rel), rel


_DIGEST = """
import hashlib, sys
from pathlib import Path

import pytest
from hapta_gen import generate, load_config
from hapta_gen.schema.loader import load_file
root = Path(sys.argv[1])
r = generate(load_file(root / "pb_schema.json"), load_config(root / "hapta.yaml"))
h = hashlib.sha256()
for path, text in sorted(r.files.items()):
    h.update(path.encode() + b"\\0" + text.encode() + b"\\0")
print(h.hexdigest())
"""


def test_build_is_deterministic_across_hash_seeds() -> None:
    digests = set()
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        out = subprocess.run(
            [sys.executable, "-c", _DIGEST, str(POSTLY)], env=env, capture_output=True, text=True, check=True
        )
        digests.add(out.stdout.strip())
    assert len(digests) == 1
    local = hashlib.sha256()
    for path, text in sorted(build_postly().items()):
        local.update(path.encode() + b"\0" + text.encode() + b"\0")
    assert digests == {local.hexdigest()}


def test_parallel_formatting_gives_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.synth import synthetic_schema
    from hapta_gen.emit import formatting

    schema = synthetic_schema(60)
    parallel = generate(schema)
    assert parallel.ok and len(parallel.files) > formatting.PARALLEL_FROM
    monkeypatch.setattr(formatting, "PARALLEL_FROM", 10**9)
    sequential = generate(schema)
    assert parallel.files == sequential.files
