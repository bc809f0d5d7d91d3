"""UTC timestamps as they travel: ISO-8601 with milliseconds and a trailing Z.

Every timestamp the contract accepts lies in [TS_MIN, TS_MAX): a wider one is a broken clock or a
hostile sender, and its UTC value may not even exist (9999-12-31T23:59:59-05:00 is past year 9999
in UTC), which Python answers with OverflowError, not ValueError.
"""

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, PlainSerializer

TS_MIN = datetime(2000, 1, 1, tzinfo=UTC)
TS_MAX = datetime(2100, 1, 1, tzinfo=UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_ts(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every timestamp on the wire is UTC")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_ts(text: str) -> datetime:
    return _require_utc(datetime.fromisoformat(text))


def bounded_utc(moment: datetime) -> datetime:
    """The moment in UTC, or ValueError when it has no offset or lies outside [TS_MIN, TS_MAX)."""
    # A timestamp without an offset is ambiguous evidence; refuse it rather than guess the zone.
    if moment.tzinfo is None:
        raise ValueError("timestamp needs a UTC offset, e.g. 2026-11-24T08:30:00.000Z")
    # Judge the local year first: converting year 1 or 9999 with an offset can overflow.
    if not TS_MIN.year - 1 <= moment.year <= TS_MAX.year:
        raise ValueError(f"timestamp outside {TS_MIN.year}..{TS_MAX.year} (UTC)")
    try:
        utc = moment.astimezone(UTC)
    except (OverflowError, ValueError) as exc:  # e.g. a tzinfo whose offset is not a timedelta
        raise ValueError(f"timestamp cannot be read as UTC: {exc}") from None
    if not TS_MIN <= utc < TS_MAX:
        raise ValueError(f"timestamp outside {TS_MIN.year}..{TS_MAX.year} (UTC)")
    return utc


def _require_utc(moment: datetime) -> datetime:
    utc = bounded_utc(moment)
    # The wire carries milliseconds; hold no more, so a decoded payload equals the encoded one.
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


UtcDateTime = Annotated[
    datetime,
    AfterValidator(_require_utc),
    PlainSerializer(format_ts, return_type=str, when_used="always"),
]

# A time a user or a query gives (API filters): the same bounds, kept to the microsecond.
BoundedDateTime = Annotated[datetime, AfterValidator(bounded_utc)]
