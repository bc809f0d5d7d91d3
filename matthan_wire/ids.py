"""Identifier shapes shared by topics, payloads and configuration."""

import re
from typing import Annotated

from pydantic import Field, StringConstraints

ID_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62})$"
ID_RE = re.compile(ID_PATTERN)

# Device, ward, camera, zone, line and event ids: they appear inside MQTT topics and file
# names, so nothing that could be a wildcard, a separator or a path component.
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]

# Rule names read like "plaza.crowd"; they never appear in topics.
RuleName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,127}$")]

Label = Annotated[str, StringConstraints(min_length=1, max_length=64)]


def is_id(text: str) -> bool:
    return bool(ID_RE.match(text))


# Numbers the databases must store. An integer column is 32-bit on PostgreSQL (INTEGER) and 64-bit
# on SQLite; Python's are unbounded, so a bigger one fails only at the INSERT. Each integer on the
# wire is bounded here to its column's type, or to signed 64 bits when it is only kept as JSON.
INT32_MAX = 2**31 - 1
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
# Counts and sequence numbers kept in INTEGER columns (seq, object_count, outbox depth, versions).
Count = Annotated[int, Field(ge=0, le=INT32_MAX)]
# Byte sizes: a clip or an upload backlog may pass 2 GiB.
ByteCount = Annotated[int, Field(ge=0, le=INT64_MAX)]
# A finite non-negative measurement (rates, seconds, megabytes, percent); JSON has no inf or NaN but
# 1e400 parses as inf, which no column or chart wants.
Amount = Annotated[float, Field(ge=0.0, le=1e15, allow_inf_nan=False)]

# Free text on the wire: short names, and the longer reasons people read.
ShortText = Annotated[str, StringConstraints(max_length=200)]
LongText = Annotated[str, StringConstraints(max_length=2000)]
MAX_LABELS = 32
# Free text a user filters by (HTTP query values): no control characters (PostgreSQL text cannot
# hold NUL, and no rule or name has a newline).
QUERY_TEXT = r"^[^\x00-\x1f\x7f]*$"
