"""`hapta-gen schema infer-json`: a JSON Schema proposed from a live PocketBase's records (the
seeded postly server, the pull's superuser credentials from the environment)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
from conftest import CliRun

from hapta_gen.dev.pbserver import PocketBaseServer
from hapta_gen.ir.jsonfields import schema_problem


def _env(pb: PocketBaseServer) -> dict[str, str]:
    return {"PB_URL": pb.url, "PB_SUPERUSER_EMAIL": pb.email, "PB_SUPERUSER_PASSWORD": pb.password}


def test_infer_json_proposes_a_schema_every_live_value_matches(
    pb: PocketBaseServer, pb_seeded: dict[str, list[dict[str, Any]]], run_schema_cli: CliRun
) -> None:
    done = run_schema_cli("infer-json", "posts.meta", env=_env(pb))
    assert done.returncode == 0, done.stderr
    schema = json.loads(done.stdout)
    assert schema_problem(schema) == ""  # hapta.yaml's json_schemas would take it as it is
    assert schema["title"] == "posts.meta" and schema["type"] == "object"
    assert schema["properties"]["lang"] == {"type": "string"}
    assert schema["properties"]["wordCount"] == {"type": "integer"}
    assert schema["properties"]["sources"] == {"type": "array", "items": {"type": "string"}}
    seeded = [p["meta"] for p in pb_seeded["posts"] if p.get("meta") is not None]
    assert seeded and all(jsonschema_rs.is_valid(schema, value) for value in seeded)
    assert not jsonschema_rs.is_valid(schema, {"lang": 5})
    assert pb.password not in done.stdout + done.stderr


def test_infer_json_writes_out_and_refuses_what_it_cannot_read(
    pb: PocketBaseServer, pb_seeded: dict[str, list[dict[str, Any]]], run_schema_cli: CliRun,
    tmp_path: Path,
) -> None:
    done = run_schema_cli("infer-json", "posts.meta", "--sample", "50", "--out", "meta.json", env=_env(pb))
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "meta.json").read_text())["$schema"].endswith("2020-12/schema")
    for key, expected in (("nowhere.meta", "no collection 'nowhere'"), ("posts", "is not <collection>.<field>"),
                          ("posts.nofield", "no posts record has a value")):
        done = run_schema_cli("infer-json", key, env=_env(pb))
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert lines[-1].startswith("error: ") and expected in lines[-1], done.stderr
        assert "Traceback" not in done.stderr and done.stdout == ""
