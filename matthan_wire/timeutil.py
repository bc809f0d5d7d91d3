"""UTC timestamps as they travel: ISO-8601 with milliseconds and a trailing Z."""

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, PlainSerializer


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_ts(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every timestamp on the wire is UTC")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_ts(text: str) -> datetime:
    return _require_utc(datetime.fromisoformat(text))


def _require_utc(moment: datetime) -> datetime:
    # A timestamp without an offset is ambiguous evidence; refuse it rather than guess the zone.
    if moment.tzinfo is None:
        raise ValueError("timestamp needs a UTC offset, e.g. 2026-11-24T08:30:00.000Z")
    # The wire carries milliseconds; hold no more, so a decoded payload equals the encoded one.
    return moment.astimezone(UTC).replace(microsecond=moment.microsecond // 1000 * 1000)


UtcDateTime = Annotated[
    datetime,
    AfterValidator(_require_utc),
    PlainSerializer(format_ts, return_type=str, when_used="always"),
]
