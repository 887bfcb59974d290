"""Schema cases as directories (sqlc style): ``cases/<name>/schema.json`` plus either
``error.txt`` (the one-line error `hapta-gen build` must print) or ``expect.json`` (facts about
the intermediate model). Adding coverage means adding a directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hapta_gen.cli.main import app
from hapta_gen.errors import SchemaError
from hapta_gen.ir.analyze import analyze
from hapta_gen.ir.config import Config
from hapta_gen.schema.loader import load_file

CASES = Path(__file__).parent / "cases"
ERROR_CASES = sorted(p.name for p in CASES.iterdir() if (p / "error.txt").exists())
OK_CASES = sorted(p.name for p in CASES.iterdir() if (p / "expect.json").exists())


@pytest.mark.parametrize("case", ERROR_CASES)
def test_bad_schema_is_one_clear_error(case: str, tmp_path: Path) -> None:
    expected = (CASES / case / "error.txt").read_text().strip()
    with pytest.raises(SchemaError) as info:
        load_file(CASES / case / "schema.json")
    assert expected in str(info.value)

    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["build", "--schema", str(CASES / case / "schema.json"), "--out", str(out)])
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0]
    assert "Traceback" not in result.output + result.stderr
    assert not out.exists()  # changes nothing


@pytest.mark.parametrize("case", OK_CASES)
def test_accepted_shape(case: str) -> None:
    expect: dict[str, Any] = json.loads((CASES / case / "expect.json").read_text())
    schema = load_file(CASES / case / "schema.json")
    ir = analyze(schema, Config())
    if "warnings" in expect:
        assert len(ir.warnings) == expect.pop("warnings")
    for name, facts in expect.items():
        c = ir.collection(name)
        if "fields" in facts:
            assert [f.name for f in c.fields if f.name not in ("passwordConfirm", "oldPassword")] == facts["fields"]
        if "attrs" in facts:
            assert [f.attr for f in c.fields] == facts["attrs"]
        if "record" in facts:
            assert [f.name for f in c.record_fields] == facts["record"]
        if "expands" in facts:
            assert [e.key for e in c.expands] == facts["expands"]
        if "multiple" in facts:
            assert {e.key: e.multiple for e in c.expands} == facts["multiple"]
        if "depends_on" in facts:
            assert list(c.depends_on) == facts["depends_on"]
        if "create" in facts:
            assert c.create_class == facts["create"]
