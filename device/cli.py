"""`matthan device …`: the edge agent's commands."""

import argparse
from pathlib import Path

from device.config_file import load_config, summary
from matthan.i18n import Msg, _, language


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("device", help="the edge agent: run, detect offline, validate a config")
    dsub = p.add_subparsers(dest="device_command", metavar="ACTION", required=True)

    v = dsub.add_parser("validate", help="check a device config file; prints OK or each error with its line")
    v.add_argument("--config", type=Path, required=True, help="device YAML config")
    v.set_defaults(handler=_validate)

    r = dsub.add_parser("run", help="run the edge agent for every camera in the config")
    r.add_argument("--config", type=Path, required=True)
    r.set_defaults(handler=_run)

    h = dsub.add_parser("healthcheck", help="exit 0 if the agent for this config is alive (container checks)")
    h.add_argument("--config", type=Path, required=True)
    h.set_defaults(handler=_healthcheck)

    d = dsub.add_parser("detect", help="one offline pass over a file or stream: events as JSON lines")
    d.add_argument("--config", type=Path, required=True, help="device YAML config (zones, rules, model)")
    d.add_argument("--camera", required=True, help="camera id in the config whose zones and rules apply")
    d.add_argument("--source", required=True, help="video file, rtsp:// or http:// URL, /dev/videoN")
    d.add_argument("--json", action="store_true", help="one JSON Alert per line on stdout")
    d.add_argument("--annotate", type=Path, help="write a video with boxes, ids, zones and violations")
    d.add_argument("--start-time", help="UTC time of the file's first frame (default: now), ISO-8601")
    d.set_defaults(handler=_detect)


def _validate(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(Msg("OK: %(summary)s", summary=summary(config)).translated(language()))
    return 0


def _detect(args: argparse.Namespace) -> int:
    from device.detect_command import run_detect

    return run_detect(args.config, args.camera, args.source, args.json, args.annotate, args.start_time)


def _run(args: argparse.Namespace) -> int:
    from device.agent import run_agent

    return run_agent(args.config)


def _healthcheck(args: argparse.Namespace) -> int:
    from device import heartbeat

    config = load_config(args.config)
    age = heartbeat.check(Path(config.storage.path))
    print(_("OK: agent %(device)s alive (heartbeat %(age)d s ago)", device=config.device.id, age=round(age)))
    return 0
