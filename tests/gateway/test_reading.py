"""One request, one reading: for every way a request can be read twice (key case, duplicate keys
and parts, content type versus body, encoded separators, repeated parameters, the query string
PocketBase merges into form bodies), the same request goes to PocketBase directly and through
the gateway. Either the gateway refuses it (a 4xx in PocketBase's envelope, PocketBase never
asked) or what PocketBase reads is what the gateway checked.

The exclusion cases run a gateway built from the postly schema with ``exclude: [likes,
audit_log]`` (the committed example excludes nothing), in front of the session's PocketBase.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from gateway_support import USER_IDS, EventStream, GatewayProcess, auth, same

from hapta_gen import generate
from hapta_gen.dev.pbserver import PocketBaseServer
from hapta_gen.emit.writer import write
from hapta_gen.ir.config import config_from_dict
from hapta_gen.schema.loader import load_file

SCHEMA = Path(__file__).resolve().parents[2] / "examples" / "postly" / "pb_schema.json"
EXCLUDED = ["likes", "audit_log"]
POSTS = "/api/collections/posts/records"
LIKES = "/api/collections/likes/records"
FORM = "application/x-www-form-urlencoded"
BACK_FILTER = 'likes_via_post.user ?= "usr000000000001"'


def excluding(gw_pb: PocketBaseServer, out: Path, names: list[str]) -> GatewayProcess:
    """A gateway built from the postly schema with ``names`` excluded, started in ``out``."""
    result = generate(load_file(SCHEMA), config_from_dict({"exclude": names}))
    assert result.ok, result.errors
    write(result.files, out)
    return GatewayProcess(gw_pb.url, tmp=out, cwd=out).start()


@pytest.fixture(scope="module")
def xgw_process(gw_pb: PocketBaseServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """The gateway built with ``likes`` and ``audit_log`` excluded."""
    process = excluding(gw_pb, tmp_path_factory.mktemp("excluded"), EXCLUDED)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def xgw(xgw_process: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=xgw_process.url, timeout=30) as client:
        yield client


def refused(process: GatewayProcess, client: httpx.Client, method: str, url: str, **kw: Any) -> httpx.Response:
    """The gateway answers a 4xx in PocketBase's envelope without asking PocketBase."""
    before = process.upstream_calls()
    resp = client.request(method, url, **kw)
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
    body = resp.json()
    assert set(body) == {"data", "message", "status"} and body["status"] == resp.status_code
    assert process.upstream_calls() == before, "a refused request reached PocketBase"
    return resp


def multipart(parts: list[tuple[str, str]], boundary: str = "RdBoundary") -> tuple[bytes, str]:
    out = b""
    for name, value in parts:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    return out + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


# ----------------------------------------------------------------------------- realtime


def like_event_after(pb_url: str, su: str, subscribe: Any) -> str | None:
    """Open a stream on PocketBase, ``subscribe(client_id)``, create and delete a like: the
    first event's name (``likes/*`` when PocketBase read the subscription as one to likes)."""
    with EventStream(pb_url) as stream, httpx.Client(base_url=pb_url, timeout=10) as pb:
        resp = subscribe(pb, stream.client_id)
        assert resp.status_code == 204, resp.text
        made = pb.post(LIKES, json={"post": "pst000000000004", "user": USER_IDS["carol"]}, headers=auth(su))
        assert made.status_code == 200, made.text
        pb.delete(f"{LIKES}/{made.json()['id']}", headers=auth(su))
        return stream.next_event()["event"]


JSON_SUBSCRIBE_TRICKS = {
    "key case": '{"clientId": "CID", "Subscriptions": ["likes/*"]}',
    "unicode fold": '{"clientId": "CID", "\u017fubscriptions": ["likes/*"]}',
    "duplicate key": '{"clientId": "CID", "subscriptions": ["posts/*"], "subscriptions": ["likes/*"]}',
    "both cases": '{"clientId": "CID", "subscriptions": ["posts/*"], "Subscriptions": ["likes/*"]}',
}


@pytest.mark.parametrize("name", ["key case", "unicode fold"])
def test_pocketbase_binds_subscribe_keys_case_insensitively(gw_pb: PocketBaseServer, tokens: dict[str, str], name: str) -> None:
    body = JSON_SUBSCRIBE_TRICKS[name]
    event = like_event_after(
        gw_pb.url, tokens["superuser"],
        lambda pb, cid: pb.post("/api/realtime", content=body.replace("CID", cid).encode(), headers={"Content-Type": "application/json"}),
    )
    assert event == "likes/*"


@pytest.mark.parametrize("name", sorted(JSON_SUBSCRIBE_TRICKS))
def test_subscribe_json_read_twice_is_refused(xgw_process: GatewayProcess, xgw: httpx.Client, name: str) -> None:
    body = JSON_SUBSCRIBE_TRICKS[name].replace("CID", "x" * 20).encode()
    refused(xgw_process, xgw, "POST", "/api/realtime", content=body, headers={"Content-Type": "application/json"})


def test_subscribe_form_with_two_payloads_is_refused(gw_pb: PocketBaseServer, tokens: dict[str, str], xgw_process: GatewayProcess, xgw: httpx.Client) -> None:
    def body(cid: str) -> str:
        return urlencode([("clientId", cid), ("@jsonPayload", json.dumps({"subscriptions": ["posts/*"]})),
                          ("@jsonPayload", json.dumps({"subscriptions": ["likes/*"]}))])
    event = like_event_after(gw_pb.url, tokens["superuser"], lambda pb, cid: pb.post("/api/realtime", content=body(cid), headers={"Content-Type": FORM}))
    assert event == "likes/*"  # PocketBase applies every payload: the last one stands
    refused(xgw_process, xgw, "POST", "/api/realtime", content=body("x" * 20), headers={"Content-Type": FORM})


def test_subscribe_form_reads_the_query_string_too(gw_pb: PocketBaseServer, tokens: dict[str, str], xgw_process: GatewayProcess, xgw: httpx.Client) -> None:
    """A form body's fields include the URL's query parameters (Go's ``Request.Form``)."""
    query = "?" + urlencode({"subscriptions": "likes/*"})
    event = like_event_after(
        gw_pb.url, tokens["superuser"],
        lambda pb, cid: pb.post("/api/realtime" + query, content=urlencode({"clientId": cid}), headers={"Content-Type": FORM}),
    )
    assert event == "likes/*"
    refused(xgw_process, xgw, "POST", "/api/realtime" + query, content=urlencode({"clientId": "x" * 20}), headers={"Content-Type": FORM})


def test_subscribe_xml_is_refused(gw_pb: PocketBaseServer, tokens: dict[str, str], xgw_process: GatewayProcess, xgw: httpx.Client) -> None:
    def body(cid: str) -> str:
        return f"<x><ClientId>{cid}</ClientId><Subscriptions>likes/*</Subscriptions></x>"
    event = like_event_after(gw_pb.url, tokens["superuser"], lambda pb, cid: pb.post("/api/realtime", content=body(cid), headers={"Content-Type": "text/xml"}))
    assert event == "likes/*"
    refused(xgw_process, xgw, "POST", "/api/realtime", content=body("x" * 20), headers={"Content-Type": "text/xml"})


TOPIC_TRICKS = {
    "filter through a back-relation": "posts/*?options=" + quote(json.dumps({"query": {"filter": BACK_FILTER}})),
    "expand through a back-relation": "posts/*?options=" + quote(json.dumps({"query": {"expand": "likes_via_post"}})),
    "options key case": "posts/*?options=" + quote(json.dumps({"Query": {"expand": "likes_via_post"}})),
    "duplicate options key": "posts/*?options="
    + quote('{{"query": {{"filter": "{}"}}, "query": {{}}}}'.format(BACK_FILTER.replace('"', '\\"'))),
    "fragment after the options": "posts/*?options=" + quote(json.dumps({"query": {"expand": "likes_via_post"}})) + "#x",
    "first options unreadable by Go": "posts/*?options=%zz&options="
    + quote(json.dumps({"query": {"expand": "likes_via_post"}})),
    "collection in @collection": "posts/*?options=" + quote(json.dumps({"query": {"filter": '@collection.likes.user ?= "x"'}})),
}


@pytest.mark.parametrize("name", sorted(TOPIC_TRICKS))
def test_topic_options_reaching_an_excluded_collection_are_refused(xgw_process: GatewayProcess, xgw: httpx.Client, name: str) -> None:
    body = {"clientId": "x" * 20, "subscriptions": [TOPIC_TRICKS[name]]}
    refused(xgw_process, xgw, "POST", "/api/realtime", json=body)


# ----------------------------------------------------------------------------- batch


def like_item() -> dict[str, Any]:
    return {"method": "POST", "url": LIKES, "body": {}}


def post_item() -> dict[str, Any]:
    return {"method": "POST", "url": POSTS, "body": {}}


def pb_batch_reached_likes(resp: httpx.Response) -> bool:
    """PocketBase ran the like creation (its validation names the likes fields; as superuser)."""
    assert resp.status_code == 400, resp.text
    data = resp.json()["data"]["requests"]["0"]["response"]["data"]
    return set(data) == {"post", "user"}


def test_batch_with_two_payload_parts_is_refused(pb: httpx.Client, tokens: dict[str, str], xgw_process: GatewayProcess, xgw: httpx.Client) -> None:
    body, ctype = multipart([("@jsonPayload", json.dumps({"requests": [post_item()]})),
                             ("@jsonPayload", json.dumps({"requests": [like_item()]}))])
    assert pb_batch_reached_likes(pb.post("/api/batch", content=body, headers={"Content-Type": ctype, **auth(tokens["superuser"])}))
    refused(xgw_process, xgw, "POST", "/api/batch", content=body, headers={"Content-Type": ctype})


def test_batch_form_payload_in_the_query_is_read(pb: httpx.Client, tokens: dict[str, str], xgw_process: GatewayProcess, xgw: httpx.Client) -> None:
    """Declared a form, the body is read as one (not as the JSON it also is) plus the query."""
    url = "/api/batch?" + urlencode({"@jsonPayload": json.dumps({"requests": [like_item()]})})
    body = json.dumps({"requests": [post_item()]})
    assert pb_batch_reached_likes(pb.post(url, content=body, headers={"Content-Type": FORM, **auth(tokens["superuser"])}))
    refused(xgw_process, xgw, "POST", url, content=body, headers={"Content-Type": FORM})


def test_batch_form_body_that_is_json_is_read_as_a_form(pb: httpx.Client, tokens: dict[str, str], xgw_process: GatewayProcess, xgw: httpx.Client) -> None:
    body = json.dumps({"requests": [post_item()]})
    resp = pb.post("/api/batch", content=body, headers={"Content-Type": FORM, **auth(tokens["alice"])})
    assert resp.status_code == 400 and "requests" in resp.json()["data"]  # PocketBase saw no requests
    gw_resp = xgw.post("/api/batch", content=body, headers={"Content-Type": FORM, **auth(tokens["alice"])})
    same(resp, gw_resp)


BATCH_ITEM_TRICKS: dict[str, str] = {
    "url key case": f'{{"requests": [{{"method": "POST", "URL": "{LIKES}", "body": {{}}}}]}}',
    "duplicate url": f'{{"requests": [{{"method": "POST", "url": "{POSTS}", "url": "{LIKES}", "body": {{}}}}]}}',
    "requests key case": f'{{"Requests": [{{"method": "POST", "url": "{LIKES}", "body": {{}}}}]}}',
    "encoded slash in the url": '{"requests": [{"method": "POST", "url": "/api/collections/posts/..%%2Flikes/records", "body": {}}]}',
    "encoded dots in the url": '{"requests": [{"method": "POST", "url": "/api/collections/posts/%%2e%%2e/likes/records", "body": {}}]}',
    "back-relation filter in the url": f'{{"requests": [{{"method": "PATCH", "url": "{POSTS}/pst000000000001?expand=likes_via_post", "body": {{}}}}]}}',
}


@pytest.mark.parametrize("name", sorted(BATCH_ITEM_TRICKS))
def test_batch_items_read_twice_are_refused(xgw_process: GatewayProcess, xgw: httpx.Client, name: str) -> None:
    refused(xgw_process, xgw, "POST", "/api/batch", content=BATCH_ITEM_TRICKS[name].encode(), headers={"Content-Type": "application/json"})


def test_batch_body_key_case_is_validated(pb: httpx.Client, gw: httpx.Client, gateway: GatewayProcess, tokens: dict[str, str]) -> None:
    """PocketBase binds ``Body`` as ``body``: the gateway refuses rather than skip the check."""
    body = {"requests": [{"method": "POST", "url": POSTS, "Body": {"title": "x", "author": USER_IDS["alice"]}}]}
    resp = pb.post("/api/batch", json=body, headers=auth(tokens["alice"]))
    failed = resp.json()["data"]["requests"]["0"]["response"]["data"]
    assert resp.status_code == 400 and failed["title"]["code"] == "validation_min_text_constraint"  # it read Body
    refused(gateway, gw, "POST", "/api/batch", json=body, headers=auth(tokens["alice"]))


# ----------------------------------------------------------------------------- query


LIST_TRICKS = {
    "back-relation in filter": {"filter": BACK_FILTER},
    "back-relation under @collection": {"filter": '@collection.posts.likes_via_post.user ?= "x"'},
    "back-relation from the auth record": {"filter": '@request.auth.likes_via_user.post ?= "x"'},
    "back-relation in sort": {"sort": "likes_via_post.created"},
    "back-relation in expand": {"expand": "likes_via_post"},
    "excluded collection": {"filter": '@collection.likes.user ?= "x"'},
    "excluded collection, other case": {"filter": '@collection.LIKES.user ?= "x"'},
}


@pytest.mark.parametrize("name", sorted(LIST_TRICKS))
def test_list_query_through_an_excluded_collection_is_refused(xgw_process: GatewayProcess, xgw: httpx.Client, name: str) -> None:
    refused(xgw_process, xgw, "GET", POSTS, params=LIST_TRICKS[name])


def test_pocketbase_filters_by_the_back_relation(pb: httpx.Client) -> None:
    """What the refusal protects: PocketBase answers such a filter with likes' data."""
    everyone = pb.get(POSTS).json()["totalItems"]
    liked = pb.get(POSTS, params={"filter": BACK_FILTER})
    assert liked.status_code == 200 and 0 < liked.json()["totalItems"] <= everyone


def test_paths_through_a_relation_to_an_excluded_collection_are_refused(
    gw_pb: PocketBaseServer, pb: httpx.Client, tmp_path: Path
) -> None:
    """With ``posts`` excluded, ``comments.post`` leads out of the exposed collections."""
    comments = "/api/collections/comments/records"
    through = {"filter": 'post.title != ""'}
    resp = pb.get(comments, params=through)
    assert resp.status_code == 200 and resp.json()["totalItems"] > 0  # PocketBase reads posts
    process = excluding(gw_pb, tmp_path, ["posts"])
    try:
        with httpx.Client(base_url=process.url, timeout=30) as client:
            for params in (through, {"filter": '@request.auth.id != "" && post.author.name ?= "x"'},
                           {"sort": "post.title"}, {"expand": "post"}):
                refused(process, client, "GET", comments, params=params)
            kept = client.get(comments, params={"filter": 'post != ""'})  # the id alone stays readable
            assert kept.status_code == 200 and kept.json()["totalItems"] > 0
    finally:
        process.stop()


@pytest.mark.parametrize(
    "query",
    [
        "filter=title%21%3D%22%22&filter=" + quote(BACK_FILTER),  # PocketBase uses the first
        "filter=%zz&filter=" + quote(BACK_FILTER),  # Go drops the unreadable first pair
        "filter=a;b&filter=" + quote(BACK_FILTER),
        "expand=author&expand=likes_via_post",
    ],
)
def test_repeated_query_parameters_are_all_checked(xgw_process: GatewayProcess, xgw: httpx.Client, query: str) -> None:
    refused(xgw_process, xgw, "GET", f"{POSTS}?{query}")


@pytest.mark.parametrize("path", ["/api/collections/posts%2Frecords", "/api/collections/posts/records%2f", "/api/collections/posts/%2e%2e/likes/records"])
def test_encoded_separators_in_the_path_are_refused(xgw_process: GatewayProcess, xgw: httpx.Client, path: str) -> None:
    refused(xgw_process, xgw, "GET", path)


# ----------------------------------------------------------------------------- record bodies


@pytest.fixture
def cleanup(pb: httpx.Client, tokens: dict[str, str]) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for record_id in made:
        pb.delete(f"{POSTS}/{record_id}", headers=auth(tokens["superuser"]))


def _create_both(pb: httpx.Client, gw: httpx.Client, tokens: dict[str, str], cleanup: list[str], url: str, body: bytes | str, ctype: str) -> tuple[httpx.Response, httpx.Response]:
    headers = {"Content-Type": ctype, **auth(tokens["alice"])}
    pb_resp = pb.post(url, content=body, headers=headers)
    gw_resp = gw.post(url, content=body, headers=headers)
    for resp in (pb_resp, gw_resp):
        if resp.status_code == 200:
            cleanup.append(resp.json()["id"])
    return pb_resp, gw_resp


def _same_record(pb_resp: httpx.Response, gw_resp: httpx.Response) -> None:
    assert pb_resp.status_code == gw_resp.status_code == 200, (pb_resp.text, gw_resp.text)
    volatile = ("id", "created", "updated", "slug")
    assert {k: v for k, v in gw_resp.json().items() if k not in volatile} == {
        k: v for k, v in pb_resp.json().items() if k not in volatile
    }


@pytest.mark.parametrize("payload_first", [False, True])
def test_multipart_payload_and_field_of_the_same_name(pb: httpx.Client, gw: httpx.Client, tokens: dict[str, str], cleanup: list[str], payload_first: bool) -> None:
    """@jsonPayload is merged over the plain fields, whatever the part order (was a 500)."""
    payload = ("@jsonPayload", json.dumps({"title": "from the payload"}))
    parts = [("title", "plain title"), ("author", USER_IDS["alice"]), ("status", "draft")]
    body, ctype = multipart([payload, *parts] if payload_first else [*parts, payload])
    pb_resp, gw_resp = _create_both(pb, gw, tokens, cleanup, POSTS, body, ctype)
    _same_record(pb_resp, gw_resp)
    assert gw_resp.json()["title"] == "from the payload"


def test_urlencoded_payload_and_field_of_the_same_name(pb: httpx.Client, gw: httpx.Client, tokens: dict[str, str], cleanup: list[str]) -> None:
    body = urlencode([("@jsonPayload", json.dumps({"title": "from the payload"})), ("title", "plain title"),
                      ("author", USER_IDS["alice"]), ("status", "draft")])
    pb_resp, gw_resp = _create_both(pb, gw, tokens, cleanup, POSTS, body, FORM)
    _same_record(pb_resp, gw_resp)


def test_payload_over_an_invalid_plain_value(pb: httpx.Client, gw: httpx.Client, tokens: dict[str, str], cleanup: list[str]) -> None:
    """The plain ``status`` is overridden by the payload's: both read it as valid."""
    body, ctype = multipart([("status", "bogus"), ("title", "plain title"), ("author", USER_IDS["alice"]),
                             ("@jsonPayload", json.dumps({"status": "draft"}))])
    pb_resp, gw_resp = _create_both(pb, gw, tokens, cleanup, POSTS, body, ctype)
    _same_record(pb_resp, gw_resp)


def test_payload_invalid_over_a_valid_plain_value(pb: httpx.Client, gw: httpx.Client, gateway: GatewayProcess, tokens: dict[str, str], cleanup: list[str]) -> None:
    body, ctype = multipart([("status", "draft"), ("title", "plain title"), ("author", USER_IDS["alice"]),
                             ("@jsonPayload", json.dumps({"status": "bogus"}))])
    before = gateway.upstream_calls()
    pb_resp, gw_resp = _create_both(pb, gw, tokens, cleanup, POSTS, body, ctype)
    same(pb_resp, gw_resp)
    assert gw_resp.status_code == 400 and "status" in gw_resp.json()["data"]
    assert gateway.upstream_calls() == before


def test_two_record_payloads_are_refused(gw: httpx.Client, gateway: GatewayProcess, tokens: dict[str, str]) -> None:
    body, ctype = multipart([("author", USER_IDS["alice"]), ("@jsonPayload", json.dumps({"status": "draft"})),
                             ("@jsonPayload", json.dumps({"status": "bogus"}))])
    refused(gateway, gw, "POST", POSTS, content=body, headers={"Content-Type": ctype, **auth(tokens["alice"])})


@pytest.mark.parametrize("kind", ["multipart", "form"])
def test_form_body_includes_the_query_string(pb: httpx.Client, gw: httpx.Client, gateway: GatewayProcess, tokens: dict[str, str], cleanup: list[str], kind: str) -> None:
    """PocketBase reads ``?status=bogus`` as a body field of a form: the gateway checks it too."""
    fields = [("title", "plain title"), ("author", USER_IDS["alice"])]
    body, ctype = multipart(fields) if kind == "multipart" else (urlencode(fields).encode(), FORM)
    before = gateway.upstream_calls()
    pb_resp, gw_resp = _create_both(pb, gw, tokens, cleanup, POSTS + "?status=bogus", body, ctype)
    same(pb_resp, gw_resp)
    assert gw_resp.json()["data"]["status"]["code"] == "validation_invalid_value"
    assert gateway.upstream_calls() == before


def test_json_body_ignores_the_query_string(pb: httpx.Client, gw: httpx.Client, tokens: dict[str, str], cleanup: list[str]) -> None:
    body = json.dumps({"title": "json title", "author": USER_IDS["alice"], "status": "draft"})
    pb_resp, gw_resp = _create_both(pb, gw, tokens, cleanup, POSTS + "?status=bogus", body, "application/json")
    _same_record(pb_resp, gw_resp)


def test_json_duplicate_keys_are_refused(pb: httpx.Client, gw: httpx.Client, tokens: dict[str, str], cleanup: list[str]) -> None:
    body = '{{"title": "a fine title", "title": 5, "author": "{}", "status": "draft"}}'.format(USER_IDS["alice"])
    pb_resp, gw_resp = _create_both(pb, gw, tokens, cleanup, POSTS, body, "application/json")
    assert pb_resp.status_code == 400
    assert 400 <= gw_resp.status_code < 500


def test_json_record_keys_are_case_sensitive(pb: httpx.Client, gw: httpx.Client, tokens: dict[str, str], cleanup: list[str]) -> None:
    body = json.dumps({"Title": "title by another case", "title": "the title", "author": USER_IDS["alice"], "Status": "bogus", "status": "draft"})
    pb_resp, gw_resp = _create_both(pb, gw, tokens, cleanup, POSTS, body, "application/json")
    _same_record(pb_resp, gw_resp)
    assert gw_resp.json()["title"] == "the title"


@pytest.mark.parametrize(
    "ctype", ["Application/JSON", "application/jsonx", "text/plain", "", "text/xml", "application/json; charset=utf-8"]
)
def test_record_body_is_read_by_its_declared_type(pb: httpx.Client, gw: httpx.Client, tokens: dict[str, str], cleanup: list[str], ctype: str) -> None:
    body = json.dumps({"title": "typed title", "author": USER_IDS["alice"], "status": "draft"})
    pb_resp, gw_resp = _create_both(pb, gw, tokens, cleanup, POSTS, body, ctype)
    if pb_resp.status_code == 200:
        _same_record(pb_resp, gw_resp)
    else:
        same(pb_resp, gw_resp)


@pytest.mark.parametrize("body", ["title=ab;cd&status=draft", "title=ab%zz&status=draft"])
def test_form_body_go_cannot_parse(pb: httpx.Client, gw: httpx.Client, tokens: dict[str, str], cleanup: list[str], body: str) -> None:
    pb_resp, gw_resp = _create_both(pb, gw, tokens, cleanup, POSTS, body + "&author=" + USER_IDS["alice"], FORM)
    same(pb_resp, gw_resp)


def test_batch_payload_named_the_rfc2231_way_is_refused(pb: httpx.Client, tokens: dict[str, str], xgw_process: GatewayProcess, xgw: httpx.Client) -> None:
    """Go decodes ``name*=UTF-8''%40jsonPayload`` into a second payload; the gateway's parser
    would not see it, so such a part is refused."""
    valid = {"title": "a valid title", "author": USER_IDS["alice"], "status": "draft"}
    safe = json.dumps({"requests": [{"method": "POST", "url": POSTS, "body": valid}]})
    hidden = json.dumps({"requests": [like_item()]})
    body = (
        f'--RdB\r\nContent-Disposition: form-data; name="@jsonPayload"\r\n\r\n{safe}\r\n'
        f"--RdB\r\nContent-Disposition: form-data; name*=UTF-8''%40jsonPayload\r\n\r\n{hidden}\r\n--RdB--\r\n"
    ).encode()
    headers = {"Content-Type": "multipart/form-data; boundary=RdB"}
    assert pb_batch_reached_likes(pb.post("/api/batch", content=body, headers={**headers, **auth(tokens["superuser"])}))
    refused(xgw_process, xgw, "POST", "/api/batch", content=body, headers=headers)


def test_record_field_named_the_rfc2231_way_is_refused(pb: httpx.Client, gw: httpx.Client, gateway: GatewayProcess, tokens: dict[str, str]) -> None:
    """PocketBase reads ``name*=UTF-8''rating`` as ``rating`` (here out of bounds)."""
    visible, ctype = multipart([("title", "a valid title"), ("author", USER_IDS["alice"]), ("status", "draft")], "RdB")
    body = visible.replace(b"--RdB--", b"--RdB\r\nContent-Disposition: form-data; name*=UTF-8''rating\r\n\r\n99\r\n--RdB--")
    headers = {"Content-Type": ctype, **auth(tokens["alice"])}
    resp = pb.post(POSTS, content=body, headers=headers)
    assert resp.status_code == 400 and resp.json()["data"]["rating"]["code"] == "validation_max_number_constraint"
    refused(gateway, gw, "POST", POSTS, content=body, headers=headers)


def test_pocketbase_uses_the_first_of_repeated_parameters(pb: httpx.Client, gw: httpx.Client) -> None:
    """Go's ``Values.Get``: the first ``filter`` (the gateway checks every one, forwards all)."""
    query = 'filter=title%3D%22none%20such%22&filter=title%21%3D%22%22'
    pb_resp = pb.get(f"{POSTS}?{query}")
    assert pb_resp.status_code == 200 and pb_resp.json()["totalItems"] == 0
    same(pb_resp, gw.get(f"{POSTS}?{query}"))


def test_empty_batch_is_read_alike(pb: httpx.Client, gw: httpx.Client, tokens: dict[str, str]) -> None:
    for body in ({"requests": []}, {}):
        same(pb.post("/api/batch", json=body, headers=auth(tokens["alice"])), gw.post("/api/batch", json=body, headers=auth(tokens["alice"])))


def test_batch_url_query_is_part_of_the_item_body(pb: httpx.Client, gw: httpx.Client, gateway: GatewayProcess, tokens: dict[str, str]) -> None:
    """PocketBase runs each item as a multipart request: ``?status=bogus`` is a body field."""
    item = {"method": "POST", "url": POSTS + "?status=bogus", "body": {"title": "a valid title", "author": USER_IDS["alice"]}}
    body = {"requests": [item]}
    pb_resp = pb.post("/api/batch", json=body, headers=auth(tokens["alice"]))
    assert pb_resp.json()["data"]["requests"]["0"]["response"]["data"]["status"]["code"] == "validation_invalid_value"
    before = gateway.upstream_calls()
    same(pb_resp, gw.post("/api/batch", json=body, headers=auth(tokens["alice"])))
    assert gateway.upstream_calls() == before


PART_TRICKS = {
    "empty file name": ['Content-Disposition: form-data; name="@jsonPayload"; filename=""'],
    "two dispositions": ['Content-Disposition: form-data; name="@jsonPayload"', 'Content-Disposition: form-data; name="x"'],
    "quoted-printable": ['Content-Disposition: form-data; name="@jsonPayload"', "Content-Transfer-Encoding: quoted-printable"],
}


@pytest.mark.parametrize("name", sorted(PART_TRICKS))
def test_batch_payload_part_headers_read_as_go_reads_them(pb: httpx.Client, tokens: dict[str, str], xgw_process: GatewayProcess, xgw: httpx.Client, name: str) -> None:
    """Go reads each of these parts as a second ``@jsonPayload`` (a plain value despite the
    empty file name; the first disposition; the quoted-printable text decoded)."""
    valid = {"title": "a valid title", "author": USER_IDS["alice"], "status": "draft"}
    safe = json.dumps({"requests": [{"method": "POST", "url": POSTS, "body": valid}]})
    hidden = json.dumps({"requests": [like_item()]})
    if name == "quoted-printable":
        hidden = hidden.replace("{", "=7B")
    headers_lines = "".join(line + "\r\n" for line in PART_TRICKS[name])
    body = (
        f'--RdB\r\nContent-Disposition: form-data; name="@jsonPayload"\r\n\r\n{safe}\r\n'
        f"--RdB\r\n{headers_lines}\r\n{hidden}\r\n--RdB--\r\n"
    ).encode()
    headers = {"Content-Type": "multipart/form-data; boundary=RdB"}
    assert pb_batch_reached_likes(pb.post("/api/batch", content=body, headers={**headers, **auth(tokens["superuser"])}))
    refused(xgw_process, xgw, "POST", "/api/batch", content=body, headers=headers)


def test_binary_transfer_encoding_is_still_read(pb: httpx.Client, gw: httpx.Client, tokens: dict[str, str], cleanup: list[str]) -> None:
    """Only quoted-printable changes Go's reading: other declared encodings pass as before."""
    fields = [("title", "a valid title"), ("author", USER_IDS["alice"]), ("status", "draft")]
    body = b"".join(
        f'--RdB\r\nContent-Disposition: form-data; name="{k}"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{v}\r\n'.encode()
        for k, v in fields
    ) + b"--RdB--\r\n"
    pb_resp, gw_resp = _create_both(pb, gw, tokens, cleanup, POSTS, body, "multipart/form-data; boundary=RdB")
    _same_record(pb_resp, gw_resp)


@pytest.mark.parametrize(
    "body",
    [
        b'preamble\r\n--RdB\r\nContent-Disposition: form-data; name="title"\r\n\r\na valid title\r\n--RdB--\r\n',
        b'--RdB\r\nContent-Disposition: form-data;\r\n name="title"\r\n\r\na valid title\r\n--RdB--\r\n',
    ],
    ids=["preamble", "folded header"],
)
def test_multipart_this_parser_cannot_read_is_refused(gw: httpx.Client, gateway: GatewayProcess, tokens: dict[str, str], body: bytes) -> None:
    """Go reads these; python-multipart does not: a 400, never a 500 nor a guess."""
    headers = {"Content-Type": "multipart/form-data; boundary=RdB", **auth(tokens["alice"])}
    refused(gateway, gw, "POST", POSTS, content=body, headers=headers)
