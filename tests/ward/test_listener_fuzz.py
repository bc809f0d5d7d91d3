"""The station's message handling under hostile input (hypothesis): nothing stops it.

Hostile messages (numbers at and past 64 bits, times at the calendar's edges with odd offsets,
huge lists, deep nesting, invalid UTF-8, wrong types, odd topics) are interleaved with valid
alerts and fed to `WardListener.handle` as the network thread would queue them: no exception
escapes, every valid alert is printed exactly once, and each message is counted at most once.
"""

import io
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matthan_wire import Alert, Kind, decode, encode
from matthan_wire.config import BrokerConfig
from matthan_wire.topics import device_topic, ward_topic
from ward.listener import WardListener

GOLDEN = Path(__file__).parent.parent / "wire" / "golden"
BASE = decode(Alert, (GOLDEN / "alert_start.json").read_bytes().strip())
WARD, DEVICE = BASE.ward, BASE.device_id
BASE_JSON: dict[str, Any] = json.loads(encode(BASE))

EDGE_TIMES = [
    "9999-12-31T23:59:59-05:00",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59.999999+00:00",
    "0001-01-01T00:00:00Z",
    "2026-11-24T08:30:12+23:59",
    "2026-11-24T08:30:12-23:59",
    "2026-02-30T00:00:00Z",
    "2026-11-24T08:30:12",
    "",
    "now",
]
BIG_INTS = [2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, -1]
FIELDS = list(BASE_JSON)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(BIG_INTS),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(EDGE_TIMES),
    st.text(max_size=50),
)
nested = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@st.composite
def hostile(draw: st.DrawFn, n: int) -> tuple[str, bytes]:
    """One hostile message; its event id (when it has one) is never a valid alert's."""
    kind = draw(st.sampled_from(["field", "time", "bigint", "labels", "deep", "bytes", "topic", "state"]))
    body = dict(BASE_JSON, event_id=f"bad-{n}")
    topic = device_topic(Kind.ALERT, WARD, DEVICE)
    if kind == "field":
        body[draw(st.sampled_from(FIELDS))] = draw(nested)
    elif kind == "time":
        body["started_at"] = draw(st.sampled_from(EDGE_TIMES))
    elif kind == "bigint":
        body[draw(st.sampled_from(["seq", "object_count", "score", "v"]))] = draw(st.sampled_from(BIG_INTS))
    elif kind == "labels":
        body["labels"] = ["person"] * draw(st.sampled_from([1000, 30_000]))
    elif kind == "deep":
        return topic, _deep(draw(st.sampled_from([100, 5000, 100_000]))).encode()
    elif kind == "bytes":
        return topic, draw(st.binary(max_size=200)) + b"\xff\xfe\xc3("
    elif kind == "topic":
        return draw(st.sampled_from(["", "#", "matthan/v1", "matthan/v1/BEN/x/alert", "a/" * 500])), encode(
            BASE
        )
    elif kind == "state":
        topic = ward_topic(Kind.ALERT_STATE, WARD)
        body = {"v": 1, "event_id": f"bad-{n}", "ward": WARD, "device_id": DEVICE, "state": "new"}
        body["at"] = draw(st.sampled_from(EDGE_TIMES))
        body["state"] = draw(st.sampled_from(["new", "delivered", "exploded"]))
    # The station's own topic for the cloud's copies takes the same hostility.
    if kind != "state" and draw(st.booleans()):
        topic = ward_topic(Kind.STATION_ALERT, WARD)
    return topic, json.dumps(body).encode()


@st.composite
def streams(draw: st.DrawFn) -> list[tuple[str, bytes, str | None]]:
    """Hostile messages interleaved with valid alerts (each valid one maybe sent twice)."""
    out: list[tuple[str, bytes, str | None]] = []
    valid = 0
    for n in range(draw(st.integers(min_value=1, max_value=12))):
        topic, payload = draw(hostile(n))
        out.append((topic, payload, None))
        if draw(st.booleans()):
            eid = f"ok-{valid}"
            valid += 1
            alert = encode(BASE.model_copy(update={"event_id": eid}))
            via = draw(st.sampled_from([Kind.ALERT, Kind.STATION_ALERT]))
            t = device_topic(Kind.ALERT, WARD, DEVICE) if via is Kind.ALERT else ward_topic(via, WARD)
            out.append((t, alert, eid))
            if draw(st.booleans()):
                out.append((t, alert, eid))  # a resend: shown once
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_hostile_messages_between_valid_alerts_never_stop_the_station(
    stream: list[tuple[str, bytes, str | None]],
) -> None:
    out = io.StringIO()
    # Built, never started: handle() is what the station's loop calls for each queued message.
    listener = WardListener(WARD, BrokerConfig(url="mqtt://127.0.0.1:9"), out=out, confirm_delivery=False)
    try:
        for topic, payload, _ in stream:
            before = listener.malformed + listener.failed, listener.alerts
            listener.handle(topic, payload)  # must never raise
            after = listener.malformed + listener.failed, listener.alerts
            # Counted once: as a rejection or as an alert shown, never both, never twice.
            assert (after[0] - before[0]) + (after[1] - before[1]) <= 1
        listener.state.commit()
        valid = {eid for _, _, eid in stream if eid is not None}
        shown = [line for line in out.getvalue().splitlines() if "event=ok-" in line]
        for eid in valid:
            assert sum(line.endswith(f"event={eid}") for line in shown) == 1, (eid, shown)
        assert listener.alerts >= len(valid)
    finally:
        listener.state.close()
