import pytest

from matthan_wire import Kind, WireError, parse_topic
from matthan_wire.topics import device_filter, device_topic, ward_filter, ward_topic


@pytest.mark.parametrize("kind", [k for k in Kind if not k.ward_level])
def test_every_device_topic_round_trips(kind: Kind) -> None:
    event = "e-1" if kind is Kind.SNAPSHOT else None
    topic = device_topic(kind, "ben-nghe", "q1-rex-01", event)
    parsed = parse_topic(topic)
    assert (parsed.kind, parsed.ward, parsed.device, parsed.event_id) == (
        kind,
        "ben-nghe",
        "q1-rex-01",
        event,
    )


@pytest.mark.parametrize("kind", [k for k in Kind if k.ward_level])
def test_every_ward_topic_round_trips(kind: Kind) -> None:
    parsed = parse_topic(ward_topic(kind, "ben-nghe"))
    assert (parsed.kind, parsed.ward, parsed.device) == (kind, "ben-nghe", None)


def test_topics_follow_design() -> None:
    assert device_topic(Kind.ALERT, "w", "d") == "matthan/v1/w/d/alert"
    assert device_topic(Kind.CONFIG_DESIRED, "w", "d") == "matthan/v1/w/d/config/desired"
    assert device_topic(Kind.SNAPSHOT, "w", "d", "e") == "matthan/v1/w/d/snapshot/e"
    assert ward_topic(Kind.ALERT_STATE, "w") == "matthan/v1/w/alert-state"
    assert device_filter(Kind.ALERT) == "matthan/v1/+/+/alert"
    assert device_filter(Kind.SNAPSHOT, "w") == "matthan/v1/w/+/snapshot/+"
    assert ward_filter(Kind.ALERT_STATE) == "matthan/v1/+/alert-state"
    assert parse_topic("matthan/v1/w/d/health").qos == 0
    assert parse_topic("matthan/v1/w/d/status").retain is True


@pytest.mark.parametrize(
    "topic",
    [
        "matthan/v2/w/d/alert",
        "matthan/v1/w/d/unknown",
        "matthan/v1/W/d/alert",
        "matthan/v1/w/d/snapshot",
        "matthan/v1/w/d/alert/extra",
        "matthan/v1/w",
        "other/v1/w/d/alert",
    ],
)
def test_bad_topics_are_refused(topic: str) -> None:
    with pytest.raises(WireError):
        parse_topic(topic)


def test_builders_refuse_wildcards() -> None:
    with pytest.raises(WireError):
        device_topic(Kind.ALERT, "+", "d")
    with pytest.raises(WireError):
        device_topic(Kind.ALERT, "w", "d/#")
