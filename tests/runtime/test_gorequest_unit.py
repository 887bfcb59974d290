"""``gorequest.json_field_value``: a json field's value as PocketBase 0.40 stores it, read the way
Go reads JSON (observed: ``"123"`` is 123, ``" 123"`` stays a string)."""

from __future__ import annotations

from typing import Any

import pytest
from gateway.gorequest import json_field_value


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("123", 123),
        ('{"a": 1}', {"a": 1}),
        (" 123", " 123"),  # white space first: a string
        ("", ""),
        ("just text", "just text"),
        # Python's json takes these, Go's does not: PocketBase keeps the string
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("-Infinity", "-Infinity"),
        ("[1, NaN]", "[1, NaN]"),
        (5, 5),
    ],
)
def test_json_field_values_read_as_go_reads_them(sent: Any, stored: Any) -> None:
    assert json_field_value(sent) == stored
