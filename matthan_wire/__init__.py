"""The wire contract of matthan: MQTT topics, payload models and the device configuration.

Imported by the device agent, the cloud service and ward station subscribers alike, so that
there is one definition of every shape on the wire. Depends on nothing but pydantic.
"""

from matthan_wire.codec import MAX_PAYLOAD_BYTES, WireError, decode, encode
from matthan_wire.config import Site
from matthan_wire.payloads import (
    SCHEMA_VERSION,
    Alert,
    AlertAction,
    AlertState,
    CameraHealth,
    CameraTamper,
    ClipRef,
    Command,
    CommandResult,
    DesiredConfig,
    Health,
    Receipt,
    ReportedConfig,
    StationSync,
    Status,
    TamperDetail,
    TamperScores,
)
from matthan_wire.timeutil import format_ts, parse_ts, utc_now
from matthan_wire.topics import PREFIX, Kind, Topic, parse_topic

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "PREFIX",
    "SCHEMA_VERSION",
    "Alert",
    "AlertAction",
    "AlertState",
    "CameraHealth",
    "CameraTamper",
    "ClipRef",
    "Command",
    "CommandResult",
    "DesiredConfig",
    "Health",
    "Kind",
    "Receipt",
    "ReportedConfig",
    "Site",
    "StationSync",
    "Status",
    "TamperDetail",
    "TamperScores",
    "Topic",
    "WireError",
    "decode",
    "encode",
    "format_ts",
    "parse_topic",
    "parse_ts",
    "utc_now",
]
