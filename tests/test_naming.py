"""Python names for PocketBase names (pure: no servers)."""

from __future__ import annotations

import keyword

import pytest

from hapta_gen.ir.naming import class_name, identifier, import_order, module_name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("title", "title"),
        ("publishAt", "publishAt"),
        ("for", "for_"),
        ("class", "class_"),
        ("type", "type_"),  # soft keyword
        ("match", "match_"),
        ("object", "object_"),  # builtin: would shadow annotations in the class body
        ("str", "str_"),
        ("2_player", "f_2_player"),
        ("_private", "f_private"),
        ("model_dump", "model_dump_"),  # a BaseModel method
        ("json", "json_"),
        ("model_url", "model_url"),  # not a BaseModel attribute: kept
        ("Literal", "Literal_"),  # a name the model modules import
        ("id", "id"),
        ("with-dash", "with_dash"),
        ("", "field"),
    ],
)
def test_identifier(name: str, expected: str) -> None:
    assert identifier(name) == expected
    assert identifier(name).isidentifier()
    assert not keyword.iskeyword(identifier(name))


def test_identifier_is_unique_among_taken() -> None:
    assert identifier("a_b", taken={"a_b"}) == "a_b2"
    assert identifier("a-b", taken={"a_b", "a_b2"}) == "a_b3"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("posts", "Posts"),
        ("habit_logs", "HabitLogs"),
        ("journalEntries", "JournalEntries"),
        ("Posts", "Posts"),
        ("metadata", "Metadata"),  # no inflection
        ("news", "News"),
        ("status", "Status"),
        ("2players", "C2players"),
        ("_superusers", "Superusers"),
        ("4K", "C4K"),
    ],
)
def test_class_name(name: str, expected: str) -> None:
    assert class_name(name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [("posts", "posts"), ("habitLogs", "habit_logs"), ("Posts", "posts"), ("for", "for_"),
     ("base", "base_"), ("2players", "c_2players"), ("type", "type_")],
)
def test_module_name(name: str, expected: str) -> None:
    assert module_name(name) == expected


def test_import_order_matches_isort() -> None:
    assert import_order(["RecordBase", "PBDateTime", "PageBase", "TYPE_CHECKING", "Annotated"]) == (
        "TYPE_CHECKING", "Annotated", "PageBase", "PBDateTime", "RecordBase",
    )
