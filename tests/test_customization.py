"""hapta.yaml's `json_schemas` and `templates` at build time: typed models and schemas in the
output, template overrides (with the drift check), `--list-templates`, and every bad setting as
one `error:` line, exit 2, nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hapta_gen.cli.main import app

ROOT = Path(__file__).resolve().parent.parent
POSTLY = ROOT / "examples" / "postly"
runner = CliRunner()
META = {"type": "object", "properties": {"lang": {"type": "string"}}, "required": ["lang"]}


def _project(tmp_path: Path, config: str, files: dict[str, str] | None = None) -> list[str]:
    """A project folder in tmp_path: hapta.yaml, pb_schema.json and ``files``; build's args."""
    shutil.copy(POSTLY / "pb_schema.json", tmp_path / "pb_schema.json")
    (tmp_path / "hapta.yaml").write_text(config, encoding="utf-8")
    for rel, text in (files or {}).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    return ["build", "--schema", str(tmp_path / "pb_schema.json"), "--config",
            str(tmp_path / "hapta.yaml"), "--out", str(tmp_path / "out"), "-q"]


def test_typed_json_field_in_models_openapi_and_types(tmp_path: Path) -> None:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
              "properties": {"item": {"$ref": "#/$defs/item"}}, "$defs": {"item": {"enum": ["a", "b"]}}}
    args = _project(tmp_path, "json_schemas:\n  audit_log.payload: s/payload.json\n",
                    {"s/payload.json": json.dumps(schema)})
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    out = tmp_path / "out"
    module = (out / "gateway" / "models" / "json_fields" / "audit_log_payload.py").read_text()
    assert "class AuditLogPayload(BaseModel):" in module
    models = (out / "gateway" / "models" / "audit_log.py").read_text()
    assert "from .json_fields.audit_log_payload import AuditLogPayload" in models
    assert models.count("payload: AuditLogPayload | None = None") == 3  # Record, Create, Update
    components = json.loads((out / "openapi.json").read_text())["components"]["schemas"]
    ref = components["AuditLogPayload"]["properties"]["item"]["$ref"].rsplit("/", 1)[-1]
    assert components[ref] == {"enum": ["a", "b"]} and "$schema" not in components["AuditLogPayload"]
    assert components["AuditLogRecord"]["properties"]["payload"]["anyOf"][0] == {"$ref": "#/components/schemas/AuditLogPayload"}
    assert 'export type AuditLogPayload = { item?: "a" | "b" }' in (out / "types.ts").read_text()


def test_an_override_changes_the_output_and_the_drift_check_sees_it(tmp_path: Path) -> None:
    readme = (ROOT / "templates" / "service" / "README.md.jinja").read_text()
    args = _project(tmp_path, "templates: overrides/\n", {
        "overrides/README.md.jinja": "# {{ ir.title }}, our way\n",
        "overrides/package/errors.py": (ROOT / "templates/service/package/errors.py").read_text()
        + "\nTEAM = 'ours'\n",
    })
    assert runner.invoke(app, args).exit_code == 0
    out = tmp_path / "out"
    assert (out / "README.md").read_text().endswith("# PocketBase gateway, our way\n")
    assert "TEAM = 'ours'" in (out / "gateway" / "errors.py").read_text()
    assert readme.splitlines()[0] not in (out / "README.md").read_text()
    clean = runner.invoke(app, [*args, "--check"])
    assert clean.exit_code == 0, clean.output
    (tmp_path / "overrides" / "README.md.jinja").write_text("# {{ ir.title }}, changed\n")
    stale = runner.invoke(app, [*args, "--check"])
    assert stale.exit_code == 1 and "README.md" in stale.stdout and "1 changed" in stale.stderr
    (tmp_path / "overrides" / "README.md.jinja").unlink()  # back to the built-in one: drift too
    assert runner.invoke(app, [*args, "--check"]).exit_code == 1


def test_list_templates_names_what_can_be_overridden() -> None:
    done = runner.invoke(app, ["build", "--list-templates"])
    assert done.exit_code == 0
    listed = dict(line.split("  # ", 1) for line in done.stdout.splitlines())
    assert "per collection" in listed["package/models/collection.py.jinja"]
    assert listed["README.md.jinja"].endswith("README.md")
    assert "copied as is" in listed["package/validation.py"]
    built_in = ROOT / "templates" / "service"
    assert all((built_in / rel).is_file() for rel in listed)


BAD = [
    ("json_schemas:\n  posts.meta: s/missing.json\n", {}, "json_schemas: posts.meta: s/missing.json: no such file"),
    ("json_schemas:\n  posts.meta: s/m.json\n", {"s/m.json": "{not json"}, "s/m.json is not valid JSON (line 1"),
    ("json_schemas:\n  posts.meta: s/m.json\n", {"s/m.json": '{"type": "nope"}'}, "s/m.json is not a valid JSON Schema"),
    ("json_schemas:\n  posts.meta: s/m.json\n", {"s/m.json": '{"$ref": "#/nowhere"}'}, "is not a valid JSON Schema"),
    ("json_schemas:\n  posts.meta: s/m.json\n", {"s/m.json": "[1]"}, "expected an object at the top level"),
    ("json_schemas:\n  postz.meta: s/m.json\n", {"s/m.json": json.dumps(META)}, "json_schemas: postz.meta: the schema has no collection 'postz'"),
    ("json_schemas:\n  posts.mata: s/m.json\n", {"s/m.json": json.dumps(META)}, "collection 'posts' has no field 'mata'"),
    ("json_schemas:\n  posts.title: s/m.json\n", {"s/m.json": json.dumps(META)}, "field 'title' is a text field, not json"),
    ("exclude: [audit_log]\njson_schemas:\n  audit_log.payload: s/m.json\n", {"s/m.json": json.dumps(META)},
     "collection 'audit_log' is not exposed by the gateway"),
    ("json_schemas:\n  postsmeta: s/m.json\n", {}, "json_schemas key 'postsmeta' must be <collection>.<field>"),
    ("templates: nowhere/\n", {}, "templates: nowhere/: no such folder"),
    ("templates: o/\n", {"o/README.jinja": "x"}, "templates: o/: README.jinja replaces no built-in template"),
    ("templates: o/\n", {"o/README.md.jinja": "{% if %}\n"}, "templates: README.md.jinja, line 1:"),
    ("templates: o/\n", {"o/README.md.jinja": "{{ nope.x }}\n"}, "templates: README.md.jinja: 'nope' is undefined"),
]


@pytest.mark.parametrize(("config", "files", "expected"), BAD, ids=[e[:40] for _, _, e in BAD])
def test_bad_settings_are_one_line_exit_2_and_nothing_written(
    tmp_path: Path, config: str, files: dict[str, str], expected: str
) -> None:
    args = _project(tmp_path, config, files)
    done = runner.invoke(app, args)
    assert done.exit_code == 2, done.output
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], done.stderr
    assert "Traceback" not in done.output and not (tmp_path / "out").exists()


TS = [
    ({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": ["string", "null"]}},
      "required": ["a"]}, "{ a: number; b?: string | null }"),
    ({"type": "array", "items": {"enum": ["x", 1]}}, 'Array<"x" | 1>'),
    ({"type": "object", "additionalProperties": {"type": "boolean"}}, "Record<string, boolean>"),
    ({"anyOf": [{"type": "string"}, {"$ref": "#/$defs/n"}], "$defs": {"n": {"const": None}}}, "(string | null)"),
    ({"not": {"type": "string"}}, "unknown"),  # not simple: the gateway checks it, TypeScript does not
    ({"$ref": "https://example.org/far.json"}, "unknown"),
]


@pytest.mark.parametrize(("schema", "expected"), TS, ids=[e for _, e in TS])
def test_simple_schemas_become_typescript_types(schema: dict[str, object], expected: str) -> None:
    from hapta_gen.emit.typescript import schema_ts

    assert schema_ts(schema) == expected
