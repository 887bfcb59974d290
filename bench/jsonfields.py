"""The cost of a typed json field's check on the hot path, and how the candidates compare.

    python bench/jsonfields.py [--number 20000]

For postly's ``posts.meta`` (examples/postly/schemas/post_meta.json) and a typical create body:
the whole body check of the generated gateway (``validation.check_json_body``, run from
``generated/``) with the JSON Schema check (as committed) and without it (the same models,
``jsonchecks`` emptied); and each candidate validator alone on the decoded value: jsonschema_rs
(the one the gateway uses), fastjsonschema (when installed; drafts 4-7 only), jsonschema, and
the generated pydantic model. Best of 5 runs, microseconds per call; printed, not stored.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema_rs
import orjson

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((REPO_ROOT / "examples/postly/schemas/post_meta.json").read_text())
META = {"lang": "en", "tags": ["python", "news", "go"], "wordCount": 900, "featured": True,
        "sources": ["https://example.org/a", "https://example.org/b"]}
BODY = {"title": "A post about typed json", "status": "draft", "author": "usr000000000002",
        "body": "<p>" + "words " * 200 + "</p>", "tags": ["python"], "meta": META}


def best(fn: Callable[[], Any], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000)
    number = parser.parse_args().number
    sys.path.insert(0, str(REPO_ROOT / "generated"))
    validation = importlib.import_module("gateway.validation")
    jsonchecks = importlib.import_module("gateway.jsonchecks")
    catalog = importlib.import_module("gateway.catalog")
    models = importlib.import_module("gateway.models")
    spec = catalog.BY_NAME["posts"]
    raw = orjson.dumps(BODY)
    rows: list[tuple[str, float]] = []
    rows.append(("body check, posts.meta typed (as committed)",
                 best(lambda: validation.check_json_body("records.create", spec, raw), number)))
    saved = dict(jsonchecks._VALIDATORS)
    jsonchecks._VALIDATORS.clear()
    validation.TYPED = frozenset()
    rows.append(("body check, JSON Schema check left out",
                 best(lambda: validation.check_json_body("records.create", spec, raw), number)))
    jsonchecks._VALIDATORS.update(saved)
    rs = jsonschema_rs.validator_for(SCHEMA, validate_formats=True)
    rows.append(("jsonschema_rs on the decoded value", best(lambda: rs.is_valid(META), number)))
    try:
        import fastjsonschema  # type: ignore[import-untyped]

        draft7 = {k: v for k, v in SCHEMA.items() if k != "$schema"}
        fast = fastjsonschema.compile(draft7)
        rows.append(("fastjsonschema on the decoded value", best(lambda: fast(META), number)))
    except ImportError:
        pass
    js = jsonschema.validators.validator_for(SCHEMA)(SCHEMA)
    rows.append(("jsonschema on the decoded value", best(lambda: js.is_valid(META), number // 10)))
    rows.append(("pydantic PostsMeta.model_validate", best(lambda: models.PostsMeta.model_validate(META), number)))
    rows.append(("orjson.loads of the body", best(lambda: orjson.loads(raw), number)))
    for name, micros in rows:
        print(f"{name:48s} {micros:8.2f} µs")


if __name__ == "__main__":
    main()
