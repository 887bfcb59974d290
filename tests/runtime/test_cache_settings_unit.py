"""The cache's run-time settings: ``hapta.yaml``'s ``cache`` as generated (the catalog's
``CACHE_*``), each ``HAPTA_CACHE*`` variable winning when set, and the per-collection ttls."""

from __future__ import annotations

import pytest
from gateway import catalog
from gateway.settings import NO_LISTENER_TTL, Settings

URL = "http://127.0.0.1:8090"
ADMIN = {"superuser_email": "a@b.c", "superuser_password": "secret-pass"}


def test_unset_variables_take_hapta_yaml() -> None:
    settings = Settings(pocketbase_url=URL, **ADMIN)
    assert settings.cache_on is catalog.CACHE_ENABLED is True
    assert settings.cache_bytes == catalog.CACHE_MAX_BYTES
    assert settings.lifetime(None) == catalog.CACHE_TTL == 300
    assert (settings.lifetime(30), settings.lifetime(1000)) == (30, 1000)  # a collection's own


def test_yaml_off_and_the_variable_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog, "CACHE_ENABLED", False)
    assert Settings(pocketbase_url=URL).cache_on is False
    assert Settings(pocketbase_url=URL, HAPTA_CACHE="on").cache_on is True
    monkeypatch.setattr(catalog, "CACHE_ENABLED", True)
    assert Settings(pocketbase_url=URL, HAPTA_CACHE="off").cache_on is False
    assert Settings(pocketbase_url=URL, HAPTA_CACHE_MAX_BYTES=8192).cache_bytes == 8192


def test_hapta_cache_ttl_decides_the_default_and_caps_the_rest() -> None:
    settings = Settings(pocketbase_url=URL, HAPTA_CACHE_TTL=10, **ADMIN)
    assert (settings.lifetime(None), settings.lifetime(30), settings.lifetime(3)) == (10, 10, 3)


def test_without_the_listener_entries_stay_short() -> None:
    settings = Settings(pocketbase_url=URL)
    assert settings.cache_lifetime == NO_LISTENER_TTL
    assert (settings.lifetime(2), settings.lifetime(100)) == (2, NO_LISTENER_TTL)
