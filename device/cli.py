"""`matthan device …`: the edge agent's commands."""

import argparse
from pathlib import Path

from device.config_file import load_config, summary
from matthan.errors import NotBuiltError


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("device", help="the edge agent: run, detect offline, validate a config")
    dsub = p.add_subparsers(dest="device_command", metavar="ACTION", required=True)

    v = dsub.add_parser("validate", help="check a device config file; prints OK or each error with its line")
    v.add_argument("--config", type=Path, required=True, help="device YAML config")
    v.set_defaults(handler=_validate)

    r = dsub.add_parser("run", help="run the edge agent for every camera in the config")
    r.add_argument("--config", type=Path, required=True)
    r.set_defaults(handler=_not_built)

    d = dsub.add_parser("detect", help="one offline pass over a file or stream: events as JSON lines")
    d.add_argument("--config", type=Path, required=True)
    d.add_argument("--camera", required=True)
    d.add_argument("--source", required=True)
    d.add_argument("--json", action="store_true")
    d.add_argument("--annotate", type=Path)
    d.add_argument("--start-time")
    d.set_defaults(handler=_not_built)


def _validate(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(f"OK: {summary(config)}")
    return 0


def _not_built(args: argparse.Namespace) -> int:
    raise NotBuiltError(f"device {args.device_command}: not built yet")
