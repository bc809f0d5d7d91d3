"""MQTT topic names: builders for every topic of the contract and one parser for all of them.

Device topics:  matthan/v1/{ward}/{device}/{kind}[/{event_id}]
Ward topics:    matthan/v1/{ward}/{kind}
"""

from dataclasses import dataclass
from enum import StrEnum

from matthan_wire.codec import WireError
from matthan_wire.ids import is_id

PREFIX = "matthan/v1"


class Kind(StrEnum):
    ALERT = "alert"
    EVENT = "event"
    SNAPSHOT = "snapshot"
    HEALTH = "health"
    STATUS = "status"
    CONFIG_DESIRED = "config/desired"
    CONFIG_REPORTED = "config/reported"
    CMD = "cmd"
    CMD_RESULT = "cmd/result"
    RECEIPT = "receipt"
    ALERT_STATE = "alert-state"
    ALERT_ACTION = "alert-action"
    # The cloud's copy of an alert for the ward's stations, resent until a station confirms it.
    STATION_ALERT = "station-alert"
    # A station that has (re)subscribed asks the cloud for what it has not confirmed yet.
    STATION_SYNC = "station-sync"

    @property
    def ward_level(self) -> bool:
        return self in (Kind.ALERT_STATE, Kind.ALERT_ACTION, Kind.STATION_ALERT, Kind.STATION_SYNC)


# (qos, retain) per kind, as docs/design.md fixes them.
DELIVERY: dict[Kind, tuple[int, bool]] = {
    Kind.ALERT: (1, False),
    Kind.EVENT: (1, False),
    Kind.SNAPSHOT: (1, False),
    Kind.HEALTH: (0, False),
    Kind.STATUS: (1, True),
    Kind.CONFIG_DESIRED: (1, True),
    Kind.CONFIG_REPORTED: (1, True),
    Kind.CMD: (1, False),
    Kind.CMD_RESULT: (1, False),
    Kind.RECEIPT: (1, False),
    Kind.ALERT_STATE: (1, False),
    Kind.ALERT_ACTION: (1, False),
    Kind.STATION_ALERT: (1, False),
    Kind.STATION_SYNC: (1, False),
}

_DEVICE_KINDS = {k.value: k for k in Kind if not k.ward_level}
_WARD_KINDS = {k.value: k for k in Kind if k.ward_level}


@dataclass(frozen=True)
class Topic:
    kind: Kind
    ward: str
    device: str | None = None
    event_id: str | None = None

    def __str__(self) -> str:
        if self.kind.ward_level:
            return f"{PREFIX}/{self.ward}/{self.kind.value}"
        base = f"{PREFIX}/{self.ward}/{self.device}/{self.kind.value}"
        return f"{base}/{self.event_id}" if self.kind is Kind.SNAPSHOT else base

    @property
    def qos(self) -> int:
        return DELIVERY[self.kind][0]

    @property
    def retain(self) -> bool:
        return DELIVERY[self.kind][1]


def device_topic(kind: Kind, ward: str, device: str, event_id: str | None = None) -> str:
    """The topic of one device's message; validates the ids so no wildcard slips in."""
    if kind.ward_level:
        raise WireError(f"{kind.value} is a ward topic, not a device topic")
    _check_id("ward", ward)
    _check_id("device", device)
    if kind is Kind.SNAPSHOT:
        if event_id is None:
            raise WireError("a snapshot topic needs the event id")
        _check_id("event id", event_id)
    elif event_id is not None:
        raise WireError(f"{kind.value} topics carry no event id")
    return str(Topic(kind, ward, device, event_id))


def ward_topic(kind: Kind, ward: str) -> str:
    if not kind.ward_level:
        raise WireError(f"{kind.value} is a device topic, not a ward topic")
    _check_id("ward", ward)
    return str(Topic(kind, ward))


def device_filter(kind: Kind, ward: str = "+", device: str = "+") -> str:
    """A subscription filter for one kind of device topic; '+' matches every ward or device."""
    if kind.ward_level:
        raise WireError(f"{kind.value} is a ward topic")
    tail = f"{kind.value}/+" if kind is Kind.SNAPSHOT else kind.value
    return f"{PREFIX}/{ward}/{device}/{tail}"


def ward_filter(kind: Kind, ward: str = "+") -> str:
    if not kind.ward_level:
        raise WireError(f"{kind.value} is a device topic")
    return f"{PREFIX}/{ward}/{kind.value}"


def parse_topic(topic: str) -> Topic:
    """Parse any contract topic; raises WireError for anything else."""
    parts = topic.split("/")
    if len(parts) < 4 or "/".join(parts[:2]) != PREFIX:
        raise WireError(f"not a {PREFIX} topic: {topic!r}")
    ward, rest = parts[2], parts[3:]
    _check_id("ward", ward)
    if len(rest) == 1 and rest[0] in _WARD_KINDS:
        return Topic(_WARD_KINDS[rest[0]], ward)
    device, tail = rest[0], rest[1:]
    _check_id("device", device)
    if len(tail) == 2 and tail[0] == Kind.SNAPSHOT.value:
        _check_id("event id", tail[1])
        return Topic(Kind.SNAPSHOT, ward, device, tail[1])
    kind = _DEVICE_KINDS.get("/".join(tail))
    if kind is None or kind is Kind.SNAPSHOT:
        raise WireError(f"unknown topic kind in {topic!r}")
    return Topic(kind, ward, device)


def _check_id(what: str, value: str) -> None:
    if not is_id(value):
        raise WireError(f"{what} {value!r} is not an id ([a-z0-9-], at most 63 characters)")
