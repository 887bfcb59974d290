"""Ops: /health, /metrics, /docs and /openapi.json, startup failures, graceful shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from gateway_support import GENERATED, GatewayProcess

from hapta_gen.dev.pbserver import PocketBaseServer


def test_health(gw: httpx.Client) -> None:
    resp = gw.get("/health")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ok" and body["gateway"]["status"] == "ok" and body["upstream"]["status"] == "ok"


def test_metrics(gw: httpx.Client) -> None:
    gw.get("/api/collections/posts/records")
    gw.get("/api/collections/posts/records", params={"sort": "nope"})
    text = gw.get("/metrics").text
    assert 'hapta_requests_total{method="GET",route="records.list",status="200"}' in text
    assert 'hapta_requests_total{method="GET",route="records.list",status="400"}' in text
    assert 'hapta_upstream_requests_total{outcome="200",route="records.list"}' in text
    assert "hapta_request_duration_seconds_bucket" in text


def test_openapi_is_the_built_file(gw: httpx.Client) -> None:
    resp = gw.get("/openapi.json")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    assert resp.content == (GENERATED / "openapi.json").read_bytes()


def test_docs(gw: httpx.Client) -> None:
    resp = gw.get("/docs")
    assert resp.status_code == 200 and "swagger-ui" in resp.text and "/openapi.json" in resp.text


def test_docs_need_no_cdn(gw: httpx.Client) -> None:
    """Swagger UI's own files come from the gateway: /docs works on a machine without internet."""
    html = gw.get("/docs").text
    assert "cdn." not in html and "https://" not in html.split("<body>")[0]
    for path, kind, marker in (
        ("/docs/swagger-ui-bundle.js", "application/javascript", b"SwaggerUIBundle"),
        ("/docs/swagger-ui.css", "text/css", b".swagger-ui"),
    ):
        assert path in html
        resp = gw.get(path)
        assert resp.status_code == 200 and resp.headers["content-type"].startswith(kind)
        assert marker in resp.content and "max-age" in resp.headers["cache-control"]
    assert gw.get("/docs/swagger-ui-bundle.js", params={"url": "/etc/passwd"}).content.startswith(b"/*")


def test_other_paths_are_404_in_the_envelope(gw: httpx.Client) -> None:
    for path in ("/", "/favicon.ico", "/docs/extra"):
        resp = gw.get(path)
        assert resp.status_code == 404
        assert resp.json() == {"data": {}, "message": "The requested resource wasn't found.", "status": 404}


def _start(env: dict[str, str], tmp: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HAPTA_", "PB_", "POCKETBASE_"))}
    return subprocess.run([sys.executable, "-m", "gateway", "--port", "1"], cwd=GENERATED, env=clean | env,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "error: POCKETBASE_URL is not set"),
        ({"POCKETBASE_URL": "localhost:8090"}, "error: POCKETBASE_URL must be an http(s) URL"),
        ({"POCKETBASE_URL": "http://127.0.0.1:99999"}, "error: POCKETBASE_URL has an invalid port"),
        ({"POCKETBASE_URL": "http://x", "HAPTA_TRUSTED_PROXIES": "10.0.0.0/8,nonsense"},
         "error: HAPTA_TRUSTED_PROXIES 'nonsense' is not an IP address or CIDR"),
        ({"POCKETBASE_URL": "http://x", "PB_SUPERUSER_EMAIL": "a@b.c"},
         "error: PB_SUPERUSER_EMAIL and PB_SUPERUSER_PASSWORD must be set together"),
        ({"POCKETBASE_URL": "http://x", "HAPTA_REDIS_URL": "localhost:6379"},
         "error: HAPTA_REDIS_URL must be a redis://, rediss:// or unix:// URL"),
        ({"POCKETBASE_URL": "http://x", "HAPTA_CONFIG": "/nonexistent/hapta.yaml"},
         "error: HAPTA_CONFIG /nonexistent/hapta.yaml is not a file"),
    ],
)
def test_bad_settings_fail_with_one_line(env: dict[str, str], expected: str, tmp_path: Path) -> None:
    done = _start(env, tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), done.stderr


def test_env_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("POCKETBASE_URL=not-a-url\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HAPTA_", "PB_", "POCKETBASE_"))}
    done = subprocess.run([sys.executable, "-m", "gateway"], cwd=tmp_path, timeout=60, check=False,
                          env=clean | {"PYTHONPATH": str(GENERATED)}, capture_output=True, text=True)
    assert done.returncode == 2 and "POCKETBASE_URL must be an http(s) URL" in done.stderr


def test_wrong_superuser_credentials_stop_the_start(gw_pb: PocketBaseServer, gw_tmp: Path) -> None:
    gateway = GatewayProcess(gw_pb.url, env={"PB_SUPERUSER_EMAIL": gw_pb.email,
                                             "PB_SUPERUSER_PASSWORD": "not-the-password"}, tmp=gw_tmp)
    gateway.start(wait=False)
    assert gateway.proc is not None
    try:
        assert gateway.proc.wait(timeout=30) != 0
    finally:
        gateway.stop()
    assert "were rejected by PocketBase" in gateway.log()


def test_access_log_and_graceful_shutdown(gw_pb: PocketBaseServer, gw_tmp: Path) -> None:
    gateway = GatewayProcess(gw_pb.url, env={"HAPTA_ACCESS_LOG": "true"}, tmp=gw_tmp).start()
    assert gateway.proc is not None
    with httpx.Client(base_url=gateway.url) as client:
        assert client.get("/api/collections/posts/records", params={"perPage": 1}).status_code == 200
        assert client.get("/api/collections/posts/records", params={"sort": "nope"}).status_code == 400
    gateway.proc.send_signal(signal.SIGTERM)
    # uvicorn re-raises the signal after its graceful shutdown, so the exit status names it
    assert gateway.proc.wait(timeout=20) in (0, -signal.SIGTERM)
    log = gateway.log()
    assert "Finished server process" in log and "gateway stopped" in log
    access = [json.loads(line) for line in log.splitlines() if '"hapta.access"' in line]
    assert [(a["route"], a["status"]) for a in access] == [("records.list", 200), ("records.list", 400)]
    assert access[0]["client"] == "127.0.0.1" and access[0]["upstream_ms"] is not None
    assert access[1]["upstream_ms"] is None  # refused before PocketBase
