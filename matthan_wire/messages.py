"""Validation errors in words a technician can act on: what is expected, with an example.

pydantic's own message for a pattern is the regular expression ("String should match pattern
'^mqtts?://...'"), which tells a person nothing. Every pattern the contract uses has its words
here (a test fails when one is added without them); an unknown one still never shows its regex.
"""

from typing import Any

from pydantic_core import ErrorDetails

from matthan_wire.ids import ID_PATTERN

PATTERN_WORDS: dict[str, str] = {
    ID_PATTERN: "an id: 1 to 63 lower-case letters, digits or '-', starting with a letter or digit "
    "(e.g. ben-nghe, q1-rex-01)",
    r"^[a-z0-9][a-z0-9_.-]{0,127}$": "a rule name: lower-case letters, digits, '_', '.' or '-', "
    "starting with a letter or digit (e.g. plaza.crowd)",
    r"^mqtts?://[^\s/]+(:\d+)?/?$": "a broker address: mqtts:// (or mqtt://), a host, an optional "
    "port and no path (e.g. mqtts://broker.example.vn:8883)",
    r"^https?://\S+$": "a web address starting with https:// (or http://), without spaces "
    "(e.g. https://cloud.example.vn)",
    r"^[0-9a-f]{64}$": "a SHA-256 checksum: 64 lower-case hexadecimal digits",
    r"^[a-z0-9-]{1,120}\.mp4$": "a clip file name: 1 to 120 lower-case letters, digits "
    "or '-', ending in .mp4 (e.g. ev-1234.mp4)",
}


def message(err: ErrorDetails | dict[str, Any]) -> str:
    """One error's message, never quoting a regular expression."""
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    kind = err["type"]
    if kind == "string_pattern_mismatch":
        # The input is not echoed: a URL may carry a password, and a payload is hostile.
        words = PATTERN_WORDS.get(str(ctx.get("pattern")), "text of another form (see the documentation)")
        return f"should be {words}"
    if kind == "union_tag_invalid":
        return f"unknown rule type {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    if kind == "extra_forbidden":
        return "unknown field (misspelt?)"
    msg: str = err["msg"]
    return msg.removeprefix("Value error, ")
