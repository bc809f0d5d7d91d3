"""The alert lifecycle: new → delivered → acknowledged → resolved | false_alarm.

Forward only; a step may be skipped (an operator can resolve without acknowledging first); the
two end states are final. Doing the same action again changes nothing (stations retry). Shared
by the HTTP API and the MQTT alert-action path so both follow exactly the same rules.
"""

from datetime import datetime

from cloud.models import AlertRow
from cloud.mqtt import MqttLink
from matthan.i18n import Msg
from matthan_wire import AlertState, Kind, encode
from matthan_wire.topics import ward_topic

ACTIONS = {
    "deliver": "delivered",
    "acknowledge": "acknowledged",
    "resolve": "resolved",
    "false_alarm": "false_alarm",
}
_RANK = {"new": 0, "delivered": 1, "acknowledged": 2, "resolved": 3, "false_alarm": 3}
FINAL = ("resolved", "false_alarm")


class TransitionError(ValueError):
    """An action the alert's state does not allow (HTTP 409)."""


def apply(alert: AlertRow, action: str, by: str, at: datetime, note: str | None = None) -> bool:
    """Apply an action; True when the alert changed, False when it already was in that state."""
    target = ACTIONS.get(action)
    if target is None:
        raise TransitionError(
            Msg("unknown action %(action)r: one of %(actions)s", action=action, actions=", ".join(ACTIONS))
        )
    if alert.state == target:
        return False
    if alert.state in FINAL:
        raise TransitionError(
            Msg("alert %(event)s is already %(state)s", event=alert.event_id, state=alert.state)
        )
    if _RANK[target] < _RANK[alert.state]:
        raise TransitionError(
            Msg(
                "alert %(event)s is %(state)s; it cannot go back to %(target)s",
                event=alert.event_id,
                state=alert.state,
                target=target,
            )
        )
    alert.delivered_at = alert.delivered_at or at
    if target == "acknowledged":
        alert.acknowledged_at, alert.acknowledged_by = at, by
    if target in FINAL:
        alert.resolved_at, alert.resolved_by = at, by
    alert.state, alert.state_by, alert.state_at = target, by, at
    if note:
        alert.note = note[:2000]
    alert.updated_at = at
    return True


def state_message(alert: AlertRow) -> AlertState:
    return AlertState(
        event_id=alert.event_id,
        ward=alert.ward,
        device_id=alert.device_id,
        state=alert.state,
        by=alert.state_by,
        note=alert.note,
        at=alert.state_at or alert.updated_at,
    )


def publish_state(link: MqttLink | None, alert: AlertRow) -> None:
    if link is None:
        return
    link.publish(ward_topic(Kind.ALERT_STATE, alert.ward), encode(state_message(alert)), qos=1)
