"""Shared building blocks of the generated models: PocketBase's dates, geo points, zero values.

Response models (``RecordBase``) accept what PocketBase returns, with every field present and
zero-valued when unset, and tolerate keys added to the server later. Input models
(``InputBase``) check bodies before PocketBase is touched and keep PocketBase's semantics:
``required`` means non-zero, text constraints do not apply to ``""``, unknown keys are ignored.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

#: PocketBase's date format: a space, not ``T``, milliseconds, UTC (``2026-01-02 03:04:05.678Z``).
PB_DATE_FORMAT = "%Y-%m-%d %H:%M:%S.%fZ"
_DATE_INPUT = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
)
_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def parse_pb_date(value: Any) -> datetime | None:
    """``""`` (unset) → ``None``; PocketBase's format or ISO 8601 → an aware datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        text = value.replace(" ", "T", 1).replace("Z", "+00:00")
        parsed = datetime.fromisoformat(text)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError("expected a date string")


def format_pb_date(value: datetime | None) -> str:
    """The inverse of ``parse_pb_date``: ``None`` → ``""``."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime(PB_DATE_FORMAT)[:-4] + "Z"


PBDateTime = Annotated[
    datetime | None,
    BeforeValidator(parse_pb_date),
    PlainSerializer(format_pb_date, return_type=str),
]
Blank = Literal[""]


def _check_date_input(value: str) -> str:
    if value and not _DATE_INPUT.match(value):
        raise ValueError("Must be a valid date (YYYY-MM-DD HH:MM:SS.sssZ or ISO 8601).")
    return value


def _non_blank(value: Any) -> Any:
    if value in (None, "", 0, False) or value == [] or value == {}:
        raise ValueError("Cannot be blank.")
    return value


def _non_zero_point(value: GeoPointInput) -> GeoPointInput:
    if value.lon == 0 and value.lat == 0:
        raise ValueError("Cannot be blank.")
    return value


DateInput = Annotated[str, AfterValidator(_check_date_input)]
NonBlank = AfterValidator(_non_blank)
NonZero = NonBlank
RequiredDateInput = Annotated[str, AfterValidator(_check_date_input), NonBlank]
Email = Annotated[str, Field(pattern=_EMAIL, max_length=255)]
#: File fields in a JSON body: kept filenames, or ``""``/``[]`` to clear. Uploads are multipart.
FileNames = str | list[str]


class GeoPoint(BaseModel):
    """A ``geoPoint`` value; ``(0, 0)`` is PocketBase's zero value."""

    model_config = ConfigDict(extra="ignore")

    lon: float = 0
    lat: float = 0


class GeoPointInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)


NonZeroPoint = AfterValidator(_non_zero_point)


class RecordBase(BaseModel):
    """What every record response carries besides its collection's fields."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=())

    collectionId: str = ""
    collectionName: str = ""


class ExpandBase(BaseModel):
    """Expanded relations: every key optional, since rules may leave any of them out."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=())


class InputBase(BaseModel):
    """Create and update bodies. Unknown keys are ignored, as PocketBase ignores them."""

    model_config = ConfigDict(
        extra="ignore",
        populate_by_name=True,
        protected_namespaces=(),
        regex_engine="python-re",
    )


class PageBase(BaseModel):
    """PocketBase's list envelope (``totalItems``/``totalPages`` are -1 with ``skipTotal``)."""

    model_config = ConfigDict(extra="allow")

    page: int
    perPage: int
    totalItems: int
    totalPages: int
