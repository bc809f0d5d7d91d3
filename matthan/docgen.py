"""Reference pages generated from the code, so the docs cannot drift from the contract.

python -m matthan.docgen          # rewrite docs/config-reference.md and docs/mqtt-api.md
python -m matthan.docgen --check  # exit 1 if they are out of date (the tests run this)
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from matthan_wire import payloads
from matthan_wire.config import DeviceConfig, Site
from matthan_wire.topics import DELIVERY, PREFIX, Kind

DOCS = Path(__file__).resolve().parent.parent / "docs"

# Who sends each kind and what it carries; the topic, QoS and retain flag come from the code.
_ROUTES: dict[Kind, tuple[str, str]] = {
    Kind.ALERT: ("device → ward stations, cloud", "Alert (phase start)"),
    Kind.EVENT: ("device → cloud", "Alert (phase end, with clip)"),
    Kind.SNAPSHOT: ("device → ward stations, cloud", "JPEG bytes"),
    Kind.HEALTH: ("device → cloud", "Health"),
    Kind.STATUS: ("device (and its Last Will) → all", "Status"),
    Kind.CONFIG_DESIRED: ("cloud → device", "DesiredConfig"),
    Kind.CONFIG_REPORTED: ("device → cloud", "ReportedConfig"),
    Kind.CMD: ("cloud → device", "Command"),
    Kind.CMD_RESULT: ("device → cloud", "CommandResult"),
    Kind.RECEIPT: ("cloud → device", "Receipt"),
    Kind.ALERT_STATE: ("cloud → ward stations", "AlertState"),
    Kind.ALERT_ACTION: ("ward station → cloud", "AlertAction"),
    Kind.STATION_ALERT: ("cloud → ward stations (until one confirms delivery)", "Alert (phase start)"),
    Kind.STATION_SYNC: ("ward station → cloud (after each subscribe)", "StationSync"),
}

_PAYLOADS: list[type[BaseModel]] = [
    payloads.Alert,
    Site,
    payloads.ClipRef,
    payloads.TamperDetail,
    payloads.TamperScores,
    payloads.Health,
    payloads.CameraHealth,
    payloads.CameraTamper,
    payloads.Status,
    payloads.DesiredConfig,
    payloads.ReportedConfig,
    payloads.Command,
    payloads.CommandResult,
    payloads.Receipt,
    payloads.AlertState,
    payloads.AlertAction,
    payloads.StationSync,
]


def _type_of(prop: dict[str, Any] | bool, defs: dict[str, Any]) -> str:
    if isinstance(prop, bool):
        return "any"
    if "$ref" in prop:
        return str(prop["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in prop:
        return " or ".join(_type_of(p, defs) for p in prop["anyOf"])
    if "oneOf" in prop:
        return " or ".join(_type_of(p, defs) for p in prop["oneOf"])
    if "enum" in prop:
        return " / ".join(json.dumps(v) for v in prop["enum"])
    if "const" in prop:
        return json.dumps(prop["const"])
    kind = prop.get("type", "any")
    if kind == "array":
        inner = prop.get("items") or prop.get("prefixItems")
        if isinstance(inner, list):
            return "[" + ", ".join(_type_of(i, defs) for i in inner) + "]"
        return f"list of {_type_of(inner or {}, defs)}"
    if kind == "object" and "additionalProperties" in prop:
        return f"map of {_type_of(prop['additionalProperties'], defs)}"
    if kind == "string" and prop.get("format") == "date-time":
        return "UTC timestamp"
    return str(kind)


def _limits(prop: dict[str, Any]) -> str:
    keys = {
        "minimum": "≥",
        "exclusiveMinimum": ">",
        "maximum": "≤",
        "exclusiveMaximum": "<",
        "minItems": "items ≥",
        "maxItems": "items ≤",
        "pattern": "pattern",
        "minLength": "length ≥",
    }
    for alt in prop.get("anyOf", []):
        prop = {**alt, **prop}
    return ", ".join(f"{label} `{prop[k]}`" for k, label in keys.items() if k in prop)


def _table(name: str, schema: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    out = [f"### {name}", ""]
    if schema.get("description"):
        out += [" ".join(schema["description"].split()), ""]
    out += ["| field | type | required | default | limits |", "| --- | --- | --- | --- | --- |"]
    required = set(schema.get("required", []))
    for field, prop in schema.get("properties", {}).items():
        default = json.dumps(prop["default"]) if "default" in prop else ""
        req = "yes" if field in required else ""
        out.append(f"| `{field}` | {_type_of(prop, defs)} | {req} | {default} | {_limits(prop)} |")
    return [*out, ""]


def _schema_pages(root: type[BaseModel]) -> tuple[dict[str, Any], dict[str, Any]]:
    schema = root.model_json_schema(mode="serialization")
    return schema, schema.get("$defs", {})


def config_reference() -> str:
    schema, defs = _schema_pages(DeviceConfig)
    lines = [
        "# Device configuration reference",
        "",
        "Generated from `matthan_wire/config.py` by `python -m matthan.docgen`; do not edit by hand.",
        "Coordinates are normalised to the frame: x and y in [0, 1], origin top-left. Unknown fields are",
        "rejected; `matthan device validate --config FILE` names the field and the line of any mistake.",
        "",
    ]
    lines += _table("DeviceConfig (the file)", schema, defs)
    for name in sorted(defs):
        lines += _table(name, defs[name], defs)
    return "\n".join(lines)


def mqtt_reference() -> str:
    lines = [
        "# MQTT API reference",
        "",
        "Generated from `matthan_wire` by `python -m matthan.docgen`; do not edit by hand. For third-party",
        'station software: every payload is JSON (UTF-8) with `"v": 1` and rejects unknown fields (except',
        "the alert: see the compatibility rule below);",
        "timestamps are UTC ISO-8601 with milliseconds (`2026-11-24T08:30:12.345Z`). Delivery is at least",
        "once: drop duplicates by `event_id`. Use MQTT 5 (a publish refused by the broker's ACL then",
        "carries reason code 135 instead of looking successful).",
        "",
        "## Compatibility within v1",
        "",
        "A fleet upgrades one device at a time, so new fields reach readers of every age. The rule for",
        "the alert (topics `alert` and `event`):",
        "",
        "- **Additive fields only within v1.** A field added to `Alert` is optional (it has a default),",
        "  and a writer leaves it out when it has no value. An alert from an older device, without the",
        "  newer fields, is accepted.",
        "- **Tolerant reader.** A reader ignores top-level fields it does not know: an alert from a newer",
        "  device carrying a field added later is accepted by an older cloud or station (readers",
        "  from the release that introduced this rule on; earlier readers rejected unknown fields).",
        "- **Strict for what it knows.** Every known field is validated as the tables below say (type,",
        "  range, length, pattern); one malformed known field rejects the whole alert.",
        '- Anything that is not additive (a renamed, removed or retyped field) is `"v": 2`.',
        "",
        "Added within v1 so far: "
        + ", ".join(f"`{name}`" for name in payloads.ALERT_ADDITIVE_FIELDS)
        + " (the camera's site, and the display names of its zone and rule, any Unicode).",
        "",
        "| topic | from → to | QoS | retained | payload |",
        "| --- | --- | --- | --- | --- |",
    ]
    for kind, (route, payload) in _ROUTES.items():
        qos, retain = DELIVERY[kind]
        if kind.ward_level:
            topic = f"{PREFIX}/{{ward}}/{kind.value}"
        elif kind is Kind.SNAPSHOT:
            topic = f"{PREFIX}/{{ward}}/{{device}}/snapshot/{{event_id}}"
        else:
            topic = f"{PREFIX}/{{ward}}/{{device}}/{kind.value}"
        lines.append(f"| `{topic}` | {route} | {qos} | {'yes' if retain else 'no'} | {payload} |")
    lines += ["", "## Payloads", ""]
    for model in _PAYLOADS:
        schema, defs = _schema_pages(model)
        lines += _table(model.__name__, schema, defs)
    return "\n".join(lines)


PAGES = {"config-reference.md": config_reference, "mqtt-api.md": mqtt_reference}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m matthan.docgen")
    parser.add_argument("--check", action="store_true", help="fail if a generated page is out of date")
    args = parser.parse_args(argv)
    stale = []
    for name, build in PAGES.items():
        text = build() + "\n"
        target = DOCS / name
        if args.check:
            if not target.exists() or target.read_text() != text:
                stale.append(name)
        else:
            target.write_text(text)
    if stale:
        print(f"out of date: {', '.join(stale)}; run: python -m matthan.docgen", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
