"""Every decoder of the contract, fed arbitrary and hostile bytes, raises WireError and nothing else
(issue #21: OverflowError, RecursionError and friends killed the consumers), and a valid message in
any legal offset still decodes to the same moment."""

import contextlib
import json
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from matthan_wire import Alert, WireError, decode, encode
from matthan_wire.config import SiteConfig
from matthan_wire.payloads import _Payload
from tests.cloud.devicesim import make_alert
from tests.support.hostile import BAD_INTS, OFFSETS, bad_time, hostile_alert, valid_alert_json

# Every message of the contract, so that a new one is fuzzed without being listed here; and the
# configuration a desired config carries.
MODELS: list[type[BaseModel]] = [*_Payload.__subclasses__(), SiteConfig]
FUZZ = settings(max_examples=50, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))

json_leaf = st.one_of(
    st.none(), st.booleans(), BAD_INTS, st.integers(), st.floats(), st.text(max_size=20), bad_time()
)
json_values = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)


def _only_wire_errors(model: type[BaseModel], data: bytes | str) -> None:
    # WireError is the one error a consumer has to expect; anything else fails the test.
    with contextlib.suppress(WireError):
        decode(model, data)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
@FUZZ
@given(data=st.one_of(st.binary(max_size=400), st.text(max_size=200)))
def test_arbitrary_bytes_raise_only_wire_errors(model: type[BaseModel], data: bytes | str) -> None:
    _only_wire_errors(model, data)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
@FUZZ
@given(
    value=json_values, key=st.sampled_from(["v", "at", "seq", "version", "cameras", "config", "args", "x"])
)
def test_hostile_values_in_any_field_raise_only_wire_errors(
    model: type[BaseModel], value: Any, key: str
) -> None:
    _only_wire_errors(model, json.dumps({"v": 1, key: value}, allow_nan=True))


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("depth", [10, 200, 1000, 100_000])
def test_deep_nesting_is_refused_as_a_wire_error(model: type[BaseModel], depth: int) -> None:
    with pytest.raises(WireError):
        decode(model, b'{"v": 1, "config": ' + b"[" * depth + b"]" * depth + b"}")


@FUZZ
@given(data=st.data())
def test_hostile_alerts_are_refused(data: st.DataObject) -> None:
    payload = data.draw(hostile_alert(make_alert("q1-rex-01", "ben-nghe", seq=1)))
    with pytest.raises(WireError):
        decode(Alert, payload)


@FUZZ
@given(offset=OFFSETS, seq=st.integers(0, 2**31 - 1), count=st.integers(0, 2**31 - 1))
def test_valid_alerts_in_any_offset_decode_to_the_same_moment(
    offset: timedelta, seq: int, count: int
) -> None:
    alert = make_alert("q1-rex-01", "ben-nghe", seq=seq).model_copy(update={"object_count": count})
    got = decode(Alert, valid_alert_json(alert, offset))
    assert got == alert and got.started_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "moment",
    [
        "9999-12-31T23:59:59-05:00",
        "0001-01-01T00:00:00+01:00",
        "2100-01-01T00:00:00Z",
        "1999-12-31T23:59:59Z",
    ],
)
def test_times_past_the_bounds_name_the_range(moment: str) -> None:
    body = json.loads(encode(make_alert("q1-rex-01", "ben-nghe", seq=1)))
    body["started_at"] = moment
    with pytest.raises(WireError, match="outside 2000..2100"):
        decode(Alert, json.dumps(body))
