"""Errors the generator reports to its callers.

Every error carries a one-line message that says what is wrong and, where it helps, what to do
next. The CLI prints the message and exits with code 2; nothing else ever reaches the user.
"""

from __future__ import annotations


class HaptaError(Exception):
    """Base of every error hapta-gen reports as a one-line message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class SchemaError(HaptaError):
    """The schema file (or server response) cannot be accepted."""

    def __init__(self, message: str, *, collection: str | None = None, field: str | None = None) -> None:
        where = ""
        if collection is not None and field is not None:
            where = f"collection {collection!r}, field {field!r}: "
        elif collection is not None:
            where = f"collection {collection!r}: "
        super().__init__(where + message)
        self.collection = collection
        self.field = field


class ConfigError(HaptaError):
    """The hapta.yaml configuration cannot be accepted."""


class PullError(HaptaError):
    """Talking to the PocketBase server failed."""


class WriteError(HaptaError):
    """Writing the generated files failed or was refused."""
