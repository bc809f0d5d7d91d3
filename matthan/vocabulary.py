"""The names users read for the contract's codes: rule types, categories, alert states, actions.

The codes (`illegal_parking`, `false_alarm`) stay on the wire and in the database; these are the
English source texts of their names, marked for the catalogue and translated where they are shown
(docs/glossary-vi.md lists the Vietnamese terms chosen).
"""

from matthan.i18n import N_, translate

RULE_TYPES: dict[str, str] = {
    "crowd": N_("Crowd gathering"),
    "illegal_parking": N_("Illegal parking"),
    "encroachment": N_("Sidewalk encroachment"),
    "wrong_way": N_("Wrong-way traffic"),
    "intrusion": N_("Intrusion into a restricted area"),
    "loitering": N_("Loitering"),
    "camera_tamper": N_("Camera covered or damaged"),
    "camera_offline": N_("Camera connection lost"),
    "device_offline": N_("Device connection lost"),
}
CATEGORIES: dict[str, str] = {
    "security_order": N_("Security and order"),
    "urban_order": N_("Urban order"),
    "outage": N_("Outage"),
}
ALERT_STATES: dict[str, str] = {
    "open": N_("open"),
    "unacknowledged": N_("not yet acknowledged"),
    "new": N_("new"),
    "delivered": N_("received by the station"),
    "acknowledged": N_("acknowledged"),
    "resolved": N_("handled"),
    "false_alarm": N_("false alarm"),
}
ACTIONS: dict[str, str] = {
    "deliver": N_("Confirm receipt"),
    "acknowledge": N_("Acknowledge"),
    "resolve": N_("Mark handled"),
    "false_alarm": N_("False alarm"),
}
DEVICE_STATES: dict[str, str] = {
    "online": N_("online"),
    "offline": N_("offline"),
    "never": N_("never reported"),
    "revoked": N_("revoked"),
    "up": N_("up"),
    "down": N_("down"),
    "applied": N_("applied"),
    "pending": N_("pending"),
    "rejected": N_("rejected"),
}
# What a camera's tamper check found (CameraHealth.tamper.kind).
TAMPER_KINDS: dict[str, str] = {
    "covered": N_("covered"),
    "blinded": N_("blinded"),
    "defocused": N_("defocused"),
    "moved": N_("moved"),
    "changed": N_("changed"),
}
ROLES: dict[str, str] = {
    "admin": N_("administrator"),
    "operator": N_("operator"),
    "ward_officer": N_("ward officer"),
}
# What the detector counts (its model's label names) in the words an officer uses.
LABELS: dict[str, str] = {
    "person": N_("person"),
    "car": N_("car"),
    "truck": N_("truck"),
    "bus": N_("bus"),
    "motorcycle": N_("motorcycle"),
    "bicycle": N_("bicycle"),
}
# Codes that name one thing each; ACTIONS is apart (its false_alarm is a button, not a state).
_ALL = {**RULE_TYPES, **CATEGORIES, **DEVICE_STATES, **ALERT_STATES, **ROLES, **TAMPER_KINDS, **LABELS}


def labels(lang: str, codes: list[str]) -> str:
    return ", ".join(name(lang, c, LABELS) for c in codes)


def name(lang: str, code: str | None, table: dict[str, str] | None = None) -> str:
    """The translated name of a code; an unknown code (a newer peer's) is shown as it is."""
    if code is None:
        return ""
    text = (table if table is not None else _ALL).get(code)
    return translate(lang, text) if text is not None else code.replace("_", " ")
