"""Identifier shapes shared by topics, payloads and configuration."""

import re
from typing import Annotated

from pydantic import StringConstraints

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
