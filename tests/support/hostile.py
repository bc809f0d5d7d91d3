"""Hostile payloads for the fuzz suites: the values issue #21 found (integers at and past 64 bits,
times at the calendar's edges with odd offsets, huge lists, deep nesting, invalid UTF-8, wrong
types), each built to be invalid by construction, so a test can count rejections exactly.

`hostile_alert(valid)` returns payload bytes that the contract must refuse; `valid_alert_json`
renders a valid alert with its times in an odd (but legal) offset, which must be stored."""

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from matthan_wire import Alert, encode

# Integers no INTEGER column holds, or that a count may not be.
BAD_INTS = st.one_of(
    st.sampled_from([2**31, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 2**64 + 1, -1, 10**30, 10**400]),
    st.integers(min_value=2**31),
    st.integers(max_value=-1),
)
# Offsets from -23:59 to +23:59, minutes included: -05:00, +14:00, +05:45 and odder.
OFFSETS = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(lambda m: timedelta(minutes=m))


@st.composite
def bad_time(draw: st.DrawFn) -> Any:
    """A timestamp the contract refuses: outside 2000..2100 UTC whatever its offset, naive, or no time."""
    how = draw(st.sampled_from(["far", "edge", "naive", "garbage"]))
    if how == "far":
        year = draw(st.one_of(st.integers(1, 1998), st.integers(2101, 9999)))
        moment = datetime(
            year, draw(st.integers(1, 12)), draw(st.integers(1, 28)), tzinfo=timezone(draw(OFFSETS))
        )
        return moment.isoformat()
    if how == "edge":
        return draw(
            st.sampled_from(
                [
                    "9999-12-31T23:59:59-05:00",
                    "9999-12-31T23:59:59.999999+14:00",
                    "0001-01-01T00:00:00+01:00",
                    "0001-01-01T00:00:00-12:00",
                    "1999-12-31T23:59:59.999Z",
                    "2100-01-01T00:00:00Z",
                    "2100-01-01T09:59:00-14:00",
                ]
            )
        )
    if how == "naive":
        return datetime(2026, 11, 24, 8, 30).isoformat()
    return draw(
        st.sampled_from(["", "yesterday", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", 1732435200, None])
    )


WRONG_TYPES = st.sampled_from([{"a": 1}, [1, 2], "x", True, 1.5, {"$gt": ""}])

# (field, strategy of a refused value): each value is out of bounds or of the wrong type.
_ALERT_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "seq": st.one_of(BAD_INTS, WRONG_TYPES),
    "object_count": st.one_of(BAD_INTS, WRONG_TYPES),
    "score": st.one_of(
        st.floats(min_value=1.0001, allow_infinity=False), st.floats(max_value=-0.0001), WRONG_TYPES
    ),
    "started_at": bad_time(),
    "labels": st.one_of(
        st.integers(33, 5000).map(lambda n: ["person"] * n),
        st.just(["x" * 65]),
        st.just([1, 2]),
        WRONG_TYPES,
    ),
    # Not WRONG_TYPES' "x": that is a valid rule name.
    "rule": st.one_of(
        st.just(""),
        st.integers(129, 5000).map(lambda n: "r" * n),
        WRONG_TYPES.filter(lambda v: not isinstance(v, str)),
    ),
    "snapshot": st.integers(301, 100_000).map(lambda n: "s" * n),
    "bbox": st.one_of(st.just([0.5, 0.5, 0.1, 0.1]), st.just([0, 0, 2, 2]), st.just([0.1] * 5)),
    "event_id": st.sampled_from(["../etc", "UPPER", "", "a/b", "#", "x" * 64]),
}


_BAD_TITLES: list[object] = ["", "x" * 201, 5, ["a"], {"vi": "a"}]
_BAD_ADDITIONS: dict[str, list[object]] = {
    "site": ["Bến Thành", 7, {"name": ""}, {"name": "a", "lat": 91, "lon": 0}, {"name": "a", "lat": 10},
             {"name": "x" * 201}, {"name": "a", "street": "b"}, {"name": "a", "address": "y" * 501}],
    "zone_title": _BAD_TITLES,
    "rule_title": _BAD_TITLES,
}  # fmt: skip


@st.composite
def hostile_alert(draw: st.DrawFn, valid: Alert) -> bytes:
    body = json.loads(encode(valid))
    how = draw(st.sampled_from(["field", "field", "field", "nest", "utf8", "infinity", "extra", "binary"]))
    if how == "field":
        name = draw(st.sampled_from(sorted(_ALERT_FIELDS)))
        body[name] = draw(_ALERT_FIELDS[name])
        return json.dumps(body).encode()
    if how == "nest":
        depth = draw(st.sampled_from([100, 1000, 50_000]))
        body[draw(st.sampled_from(["labels", "bbox", "clip", "seq"]))] = None
        text = json.dumps(body)
        return text.replace("null", "[" * depth + "]" * depth, 1).encode()
    if how == "utf8":
        bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]))
        return json.dumps(body).encode().replace(b'"plaza.crowd"', b'"plaza' + bad + b'"')
    if how == "infinity":
        return json.dumps(body).replace('"score": 0.81', '"score": 1e400', 1).encode()
    if how == "extra":
        # An unknown top-level field is ignored (the tolerant reader, tests/wire/test_compat.py); a
        # field added within v1 that is malformed is refused like any known field.
        name = draw(st.sampled_from(["site", "zone_title", "rule_title"]))
        body[name] = draw(st.sampled_from(_BAD_ADDITIONS[name]))
        return json.dumps(body).encode()
    return draw(st.binary(max_size=300).filter(lambda b: not b.strip().startswith(b"{")))


def valid_alert_json(alert: Alert, offset: timedelta) -> bytes:
    """The alert with its start written in another (legal) offset: the same moment, still valid."""
    body = json.loads(encode(alert))
    body["started_at"] = alert.started_at.astimezone(timezone(offset)).isoformat(timespec="milliseconds")
    return json.dumps(body).encode()
