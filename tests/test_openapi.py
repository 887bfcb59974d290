"""The OpenAPI document: valid for every schema, faithful to PocketBase and to the input models.

No servers: records come from the captured PocketBase samples in ../shared/reference, bodies are
checked against both the document (jsonschema) and the generated pydantic models.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import POSTLY_SCHEMA_PATH, REPO_ROOT
from jsonschema import Draft202012Validator, FormatChecker
from openapi_spec_validator import validate
from pydantic import BaseModel, ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from hapta_gen.emit.header import HEADER
from hapta_gen.emit.render import render
from hapta_gen.ir.analyze import analyze
from hapta_gen.ir.config import Config
from hapta_gen.ir.model import SchemaIR
from hapta_gen.openapi.document import MARKER_KEY, openapi_document, openapi_text
from hapta_gen.openapi.schemas import DATE_INPUT_PATTERN, EMAIL_PATTERN
from hapta_gen.schema.loader import load_file, normalize, parse

SHARED = REPO_ROOT.parent / "shared"
REFERENCE = SHARED / "reference"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

Doc = dict[str, Any]


def build(path: Path, config: Config | None = None) -> SchemaIR:
    return analyze(load_file(path), config or Config())


@pytest.fixture(scope="module")
def postly() -> Doc:
    return openapi_document(build(POSTLY_SCHEMA_PATH))


@pytest.fixture(scope="module")
def sample() -> Doc:
    """The document for the reference PocketBase (users, posts, comments, views...)."""
    return openapi_document(build(REFERENCE / "pb_collections_sample.json"))


def validator(doc: Doc, name: str) -> Draft202012Validator:
    """A JSON Schema validator for ``components/schemas/<name>`` with every $ref resolvable."""
    resource = Resource.from_contents(doc, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource("urn:openapi", resource)
    schema = {"$ref": f"urn:openapi#/components/schemas/{name}"}
    return Draft202012Validator(schema, registry=registry, format_checker=FormatChecker())


def operations(doc: Doc) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def resolve(doc: Doc, node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def refs_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if "$ref" in node:
            yield node["$ref"].rsplit("/", 1)[-1]
        for value in node.values():
            yield from refs_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs_in(value)


def response_schema_names(doc: Doc) -> set[str]:
    """Every component schema reachable from any response."""
    todo = [
        name
        for _, _, op in operations(doc)
        for response in op["responses"].values()
        for name in refs_in(resolve(doc, response))
    ]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name not in doc["components"]["schemas"]:
            continue
        seen.add(name)
        todo.extend(refs_in(doc["components"]["schemas"][name]))
    return seen


def property_names(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties":
                yield from value
            yield from property_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from property_names(value)


# --- validity -------------------------------------------------------------------------------


def test_postly_document_validates(postly: Doc) -> None:
    validate(postly)


def test_system_collections_too() -> None:
    ir = build(SHARED / "schemas" / "199fly__Telo.json", Config(include_system=True))
    doc = openapi_document(ir)
    validate(doc)
    assert "authWithPasswordSuperusers" in {op["operationId"] for _, _, op in operations(doc)}


def test_rolling_sessions_document_the_logout_and_the_key(postly: Doc) -> None:
    doc = openapi_document(build(POSTLY_SCHEMA_PATH, Config(sessions="rolling")))
    validate(doc)
    logout = doc["paths"]["/api/hapta/logout"]["post"]
    assert logout["operationId"] == "logout" and logout["security"] == [{"pbAuth": []}]
    assert set(logout["responses"]) == {"204", "401", "429"}
    assert "sessions" in {t["name"] for t in doc["tags"]}
    assert "session key" in doc["components"]["securitySchemes"]["pbAuth"]["description"]
    # passthrough (the default) has neither: PocketBase's tokens are the credential
    assert "/api/hapta/logout" not in postly["paths"]
    assert "sessions" not in {t["name"] for t in postly["tags"]}
    assert "PocketBase auth token" in postly["components"]["securitySchemes"]["pbAuth"]["description"]


def test_header_stays_in_the_first_bytes(postly: Doc) -> None:
    text = openapi_text(build(POSTLY_SCHEMA_PATH))
    assert list(postly)[:2] == ["openapi", MARKER_KEY]
    assert postly["openapi"] == "3.1.0" and postly[MARKER_KEY] == HEADER
    assert HEADER in text[:600]
    assert text.endswith("}\n")
    assert postly["servers"] == [{"url": "/"}]
    assert postly["info"]["title"] == Config().title


# --- operations -----------------------------------------------------------------------------


def test_operation_ids_and_paths(postly: Doc) -> None:
    ids = {op["operationId"]: (method, path) for path, method, op in operations(postly)}
    posts = "/api/collections/posts/records"
    assert ids["listPosts"] == ("get", posts)
    assert ids["createPosts"] == ("post", posts)
    assert ids["viewPosts"] == ("get", posts + "/{id}")
    assert ids["updatePosts"] == ("patch", posts + "/{id}")
    assert ids["deletePosts"] == ("delete", posts + "/{id}")
    for verb in (
        "authMethods",
        "authWithPassword",
        "authRefresh",
        "requestOtp",
        "authWithOtp",
        "authWithOAuth2",
        "requestPasswordReset",
        "confirmPasswordReset",
        "requestVerification",
        "confirmVerification",
        "requestEmailChange",
        "confirmEmailChange",
    ):
        assert verb + "Users" in ids
        assert verb + "Posts" not in ids
    # a view is read-only
    assert {k for k in ids if k.endswith("PostStats")} == {"listPostStats", "viewPostStats"}
    for shared in (
        "healthCheck",
        "batch",
        "getFile",
        "fileToken",
        "realtimeConnect",
        "realtimeSubscribe",
    ):
        assert shared in ids
    assert ids["getFile"] == ("get", "/api/files/{collection}/{recordId}/{filename}")
    download = postly["paths"]["/api/files/{collection}/{recordId}/{filename}"]["get"]
    # a concrete media type first (generators read it as bytes), then any type: PocketBase
    # answers with the file's own
    assert list(download["responses"]["200"]["content"]) == ["application/octet-stream", "*/*"]


def test_list_parameters(postly: Doc) -> None:
    op = postly["paths"]["/api/collections/posts/records"]["get"]
    params = [resolve(postly, p) for p in op["parameters"]]
    assert [p["name"] for p in params] == [
        "page",
        "perPage",
        "sort",
        "filter",
        "expand",
        "fields",
        "skipTotal",
    ]
    per_page = next(p for p in params if p["name"] == "perPage")["schema"]
    assert (per_page["minimum"], per_page["maximum"]) == (1, 1000)
    expand = next(p for p in params if p["name"] == "expand")
    assert "`comments_via_post`" in expand["description"]


def test_security_and_rules_in_words(postly: Doc) -> None:
    optional = [{}, {"pbAuth": []}]
    for path, _, op in operations(postly):
        if path.startswith("/api/collections/") and "/records" in path:
            assert op["security"] == optional
    users = "/api/collections/users"
    assert postly["paths"][f"{users}/auth-refresh"]["post"]["security"] == [{"pbAuth": []}]
    assert postly["paths"]["/api/files/token"]["post"]["security"] == [{"pbAuth": []}]
    scheme = postly["components"]["securitySchemes"]["pbAuth"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "Authorization")
    assert "Bearer" in scheme["description"]
    posts = postly["paths"]["/api/collections/posts/records"]
    assert "public" in posts["get"]["description"]
    assert '`@request.auth.id != "" && author = @request.auth.id`' in posts["post"]["description"]
    audit = postly["paths"]["/api/collections/audit_log/records"]
    assert "superusers only" in audit["get"]["description"]


def test_every_error_response_carries_the_error_envelope(postly: Doc) -> None:
    statuses: set[str] = set()
    for _, _, op in operations(postly):
        for status, response in op["responses"].items():
            if int(status) >= 400:
                statuses.add(status)
                schema = resolve(postly, response)["content"]["application/json"]["schema"]
                assert "Error" in set(refs_in(schema)), (op["operationId"], status)
    assert statuses == {"400", "401", "403", "404", "429", "502", "504"}
    error = postly["components"]["schemas"]["Error"]
    assert error["required"] == ["status", "message", "data"]
    envelope = {
        "status": 400,
        "message": "Failed to create record.",
        "data": {
            "email": {"code": "validation_is_email", "message": "Must be a valid email address."}
        },
    }
    validator(postly, "Error").validate(envelope)


def test_answers_shaped_by_fields_can_be_400_and_require_no_key(postly: Doc) -> None:
    """Every operation taking `fields` / `expand` documents a 400 (PocketBase refuses a malformed
    `fields`, the gateway an unknown `expand`), and `fields` picks from its whole 200 answer, so
    no object in it requires a key, except the list envelope (PocketBase picks inside `items`)."""
    shaped = 0
    for _, _, op in operations(postly):
        names = {resolve(postly, p)["name"] for p in op.get("parameters", [])}
        if not names & {"fields", "expand"}:
            continue
        shaped += 1
        assert "400" in op["responses"], op["operationId"]
        content = op["responses"]["200"]["content"]
        # a stream's events: `fields` picks inside `record`, `action` and `record` are always sent
        ok = content["application/json"]["schema"] if "application/json" in content else (
            content["text/event-stream"].get("x-event-data", {})
        )
        todo, seen = list(refs_in(ok)), set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            schema = postly["components"]["schemas"][name]
            if not name.endswith(("Page", "Event")):
                assert "required" not in schema, (op["operationId"], name)
            todo.extend(refs_in(schema))
    assert shaped >= 4 * 7 + 4  # records of every collection, four auth endpoints of users
    auth = validator(postly, "UsersAuthResponse")
    assert auth.is_valid({}) and auth.is_valid({"record": {"id": "usr000000000002"}})


def test_delete_is_204_and_uploads_are_multipart(postly: Doc) -> None:
    item = postly["paths"]["/api/collections/posts/records/{id}"]
    assert "204" in item["delete"]["responses"]
    create = postly["paths"]["/api/collections/posts/records"]["post"]["requestBody"]["content"]
    assert list(create) == ["application/json", "multipart/form-data"]
    form = postly["components"]["schemas"]["PostsCreateForm"]["properties"]
    assert (form["cover"]["type"], form["cover"]["format"]) == ("string", "binary")
    assert "image/png" in form["cover"]["description"]
    assert form["gallery"]["items"] == {"type": "string", "format": "binary"}
    comments = postly["paths"]["/api/collections/comments/records"]["post"]["requestBody"][
        "content"
    ]
    assert list(comments) == ["application/json"]  # no file fields, no form


def test_realtime_documents_its_events(postly: Doc) -> None:
    get = postly["paths"]["/api/realtime"]["get"]["responses"]["200"]["content"][
        "text/event-stream"
    ]
    assert {"$ref": "#/components/schemas/PostsEvent"} in get["x-event-data"]["oneOf"]
    event = postly["components"]["schemas"]["PostsEvent"]
    assert event["properties"]["action"]["enum"] == ["create", "update", "delete"]
    assert "PostStatsEvent" not in postly["components"]["schemas"]  # views send no events
    post = postly["paths"]["/api/realtime"]["post"]
    assert "204" in post["responses"]


# --- records ----------------------------------------------------------------------------------


def _records(key: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REFERENCE / "pb_records_sample.json").read_text("utf-8"))
    page: dict[str, Any] = data[key]
    return page


@pytest.mark.parametrize(
    ("key", "prefix"),
    [
        ("posts_list_expand", "Posts"),
        ("users_list_as_superuser", "Users"),
        ("post_stats_list", "PostStats"),
    ],
)
def test_pocketbase_records_validate(sample: Doc, key: str, prefix: str) -> None:
    page = _records(key)
    assert page["items"]
    for record in page["items"]:
        validator(sample, prefix + "Record").validate(record)
    validator(sample, prefix + "Page").validate(page)


def test_expanded_records_are_typed(sample: Doc) -> None:
    record = _records("posts_list_expand")["items"][0]
    assert record["expand"]["author"]
    bad = {**record, "expand": {"author": {**record["expand"]["author"], "verified": "yes"}}}
    assert not validator(sample, "PostsRecord").is_valid(bad)
    assert not validator(sample, "PostsRecord").is_valid(
        {**record, "created": "2026-11-21T22:15:17Z"}
    )
    assert validator(sample, "PostsRecord").is_valid({**record, "publishAt": ""})


def test_hidden_fields_and_secrets_never_in_responses(postly: Doc, sample: Doc) -> None:
    for doc, hidden in ((postly, "moderationNote"), (sample, "secretNote")):
        schemas = doc["components"]["schemas"]
        names = response_schema_names(doc)
        assert {"PostsRecord", "UsersRecord", "UsersAuthResponse"} <= names
        # AuthMethods' `password` key says whether password sign-in is enabled: not a secret.
        keys = set(property_names([schemas[n] for n in names if n != "AuthMethods"]))
        assert '"writeOnly"' not in json.dumps([schemas[n] for n in names])
        for secret in (hidden, "password", "tokenKey", "passwordConfirm", "oldPassword"):
            assert secret not in keys
        # and never writable either, except the passwords
        inputs = set(
            property_names([schemas[n] for n in schemas if n.endswith(("Create", "Update"))])
        )
        assert hidden not in inputs and "tokenKey" not in inputs
        assert schemas["UsersCreate"]["properties"]["password"]["writeOnly"] is True


# --- request bodies -------------------------------------------------------------------------


VALID_POST = {"title": "Hello", "status": "draft", "author": "u00000000000001"}


def test_create_body_required_fields(postly: Doc) -> None:
    create = validator(postly, "PostsCreate")
    create.validate(VALID_POST)
    assert postly["components"]["schemas"]["PostsCreate"]["required"] == [
        "title",
        "status",
        "author",
    ]
    for key in VALID_POST:
        missing = {k: v for k, v in VALID_POST.items() if k != key}
        assert not create.is_valid(missing), key
    users = postly["components"]["schemas"]["UsersCreate"]
    assert users["required"] == ["password", "passwordConfirm", "email"]
    assert "created" not in users["properties"] and "tokenKey" not in users["properties"]
    assert "oldPassword" in postly["components"]["schemas"]["UsersUpdate"]["properties"]


def modifiers(schema: Doc) -> dict[str, Doc]:
    """An Update schema's modifiers by key (``patternProperties``, one exact key each)."""
    out: dict[str, Doc] = {}
    for pattern, sub in schema.get("patternProperties", {}).items():
        key = sub["x-pb-modifier"]["key"]
        assert re.fullmatch(pattern, key) and not re.search(pattern, key + "x"), pattern
        out[key] = sub
    return out


def test_update_takes_modifiers(postly: Doc) -> None:
    """Plain fields are properties; `field+`/`+field`/`field-` are exact `patternProperties`
    (property names that client generators would all call `field`)."""
    update = postly["components"]["schemas"]["PostsUpdate"]
    assert "required" not in update
    keys = modifiers(update)
    for key in ("views+", "views-", "tags+", "+tags", "tags-", "coauthors-", "gallery-"):
        assert key in keys and key not in update["properties"], key
    assert keys["tags+"]["x-pb-modifier"] == {"key": "tags+", "field": "tags", "op": "append"}
    assert keys["+tags"]["x-pb-modifier"]["op"] == "prepend"
    assert keys["views-"]["x-pb-modifier"]["op"] == "subtract"
    assert keys["gallery-"]["description"] == "Filenames to remove from `gallery`."
    form = postly["components"]["schemas"]["PostsUpdateForm"]
    assert modifiers(form)["gallery+"]["items"] == {"type": "string", "format": "binary"}
    assert "id" not in update["properties"]
    body = postly["paths"]["/api/collections/posts/records/{id}"]["patch"]["requestBody"]
    assert "gallery+" in body["content"]["multipart/form-data"]["encoding"]


def test_property_names_are_distinct_as_identifiers(postly: Doc, sample: Doc) -> None:
    """What client generators do to a property name (letters and digits, snake_case) leaves
    every property of every schema distinct."""
    for doc in (postly, sample):
        for name, schema in doc["components"]["schemas"].items():
            props = schema.get("properties", {})
            idents = {re.sub(r"[^a-z0-9]", "", key.lower()) for key in props}
            assert len(idents) == len(props), name


def test_patterns_mirror_the_models() -> None:
    base = (REPO_ROOT / "templates" / "service" / "package" / "models" / "base.py").read_text(
        "utf-8"
    )
    assert f'r"{DATE_INPUT_PATTERN}"' in base
    assert f'r"{EMAIL_PATTERN}"' in base


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The generated pydantic models for postly, under a package name no other test uses."""
    root = tmp_path_factory.mktemp("oas_models")
    config = Config(package="oas_check_gateway")
    for rel, text in render(analyze(load_file(POSTLY_SCHEMA_PATH), config)).items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module("oas_check_gateway.models")
    finally:
        sys.path.remove(str(root))


BODIES: list[tuple[str, dict[str, Any]]] = [
    ("PostsCreate", VALID_POST),
    ("PostsCreate", {**VALID_POST, "title": "Hi"}),
    ("PostsCreate", {**VALID_POST, "title": "x" * 201}),
    ("PostsCreate", {**VALID_POST, "status": "gone"}),
    ("PostsCreate", {**VALID_POST, "status": ""}),
    ("PostsCreate", {**VALID_POST, "author": ""}),
    ("PostsCreate", {**VALID_POST, "slug": ""}),
    ("PostsCreate", {**VALID_POST, "slug": "Not A Slug"}),
    ("PostsCreate", {**VALID_POST, "slug": None, "body": None, "meta": None}),
    ("PostsCreate", {**VALID_POST, "views": -1}),
    ("PostsCreate", {**VALID_POST, "views": 7, "rating": 4.5}),
    ("PostsCreate", {**VALID_POST, "rating": 6}),
    ("PostsCreate", {**VALID_POST, "tags": ["go", "python"]}),
    ("PostsCreate", {**VALID_POST, "tags": "go"}),
    ("PostsCreate", {**VALID_POST, "tags": ["go", "python", "news", "1"]}),
    ("PostsCreate", {**VALID_POST, "tags": ["cobol"]}),
    ("PostsCreate", {**VALID_POST, "publishAt": "2026-01-02 03:04:05.678Z"}),
    ("PostsCreate", {**VALID_POST, "publishAt": "2026-01-02T03:04:05+02:00"}),
    ("PostsCreate", {**VALID_POST, "publishAt": ""}),
    ("PostsCreate", {**VALID_POST, "publishAt": "yesterday"}),
    ("PostsCreate", {**VALID_POST, "contact": ""}),
    ("PostsCreate", {**VALID_POST, "contact": "not-an-email"}),
    ("PostsCreate", {**VALID_POST, "contact": "a@b.test"}),
    ("PostsCreate", {**VALID_POST, "location": {"lon": 10, "lat": 20}}),
    ("PostsCreate", {**VALID_POST, "location": {"lon": 10, "lat": 100}}),
    ("PostsCreate", {**VALID_POST, "location": {"lon": 10}}),
    ("PostsCreate", {**VALID_POST, "coauthors": ["a", "b"], "gallery": []}),
    ("PostsCreate", {**VALID_POST, "meta": {"any": ["json", 1]}, "unknown": 1}),
    ("PostsUpdate", {}),
    ("PostsUpdate", {"title": None, "views+": 1, "tags-": "go"}),
    ("PostsUpdate", {"views+": "many"}),
    ("PostsUpdate", {"+tags": ["cobol"]}),
    ("PostsUpdate", {"status": None}),
    ("PostsUpdate", {"status": ""}),
    ("UsersCreate", {"email": "a@b.test", "password": "12345678", "passwordConfirm": "12345678"}),
    ("UsersCreate", {"email": "a@b.test", "password": "1234567", "passwordConfirm": "1234567"}),
    ("UsersCreate", {"email": "a@b.test", "password": "12345678"}),
    ("UsersCreate", {"email": "", "password": "12345678", "passwordConfirm": "12345678"}),
    (
        "UsersCreate",
        {"email": "a@b.test", "password": "12345678", "passwordConfirm": "12345678", "role": ""},
    ),
    (
        "UsersCreate",
        {"email": "a@b.test", "password": "12345678", "passwordConfirm": "1", "role": "king"},
    ),
    ("UsersUpdate", {"oldPassword": "x", "password": "12345678", "passwordConfirm": "12345678"}),
    ("CommentsCreate", {"post": "p", "author": "a", "text": ""}),
    ("CommentsCreate", {"post": "p", "author": "a", "text": "nice"}),
]


@pytest.mark.parametrize(
    ("schema", "body"), BODIES, ids=[f"{s}-{i}" for i, (s, _) in enumerate(BODIES)]
)
def test_document_and_models_agree_on_bodies(
    postly: Doc, models: ModuleType, schema: str, body: dict[str, Any]
) -> None:
    model: type[BaseModel] = getattr(models, schema)
    try:
        model.model_validate_json(json.dumps(body))
        accepted = True
    except ValidationError:
        accepted = False
    assert validator(postly, schema).is_valid(body) == accepted, (schema, body, accepted)


def test_collections_named_like_shared_parts() -> None:
    """Collections called `files`, `realtime`, `error`... keep their names; shared tags step aside."""

    def collection(name: str, ctype: str = "base") -> dict[str, Any]:
        fields: list[dict[str, Any]] = [{"name": "title", "type": "text"}]
        if ctype == "auth":
            fields += [{"name": "email", "type": "email", "required": True, "system": True}]
        return {"id": f"pbc_{name}", "name": name, "type": ctype, "listRule": "", "fields": fields}

    raw = [
        collection("files"),
        collection("realtime", "auth"),
        collection("error"),
        collection("posts"),
        collection("posts_create"),
        collection("health_response"),
    ]
    ir = analyze(parse(normalize(raw)), Config())
    doc = openapi_document(ir)
    validate(doc)
    tags = [t["name"] for t in doc["tags"]]
    assert len(tags) == len(set(tags))
    assert {"files", "realtime", "files (api)", "realtime (api)", "health"} <= set(tags)
    assert doc["paths"]["/api/realtime"]["get"]["tags"] == ["realtime (api)"]
    assert {
        "Error",
        "ErrorRecord",
        "RealtimeEvent",
        "RealtimeConnect",
        "PostsCreate",
        "PostsCreateCreate",
        "HealthResponse",
        "HealthResponseRecord",
    } <= set(doc["components"]["schemas"])
