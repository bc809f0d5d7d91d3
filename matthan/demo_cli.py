"""`matthan demo`: a whole site on this machine."""

import argparse
from pathlib import Path


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "demo",
        help="a whole site on this machine: broker, cloud, devices on sample clips, ward station, console",
        description="Starts a TLS broker, the cloud service (SQLite), device agents enrolled by claim token "
        "on the sample clips, and a ward station subscriber; prints the console URL and login. "
        "Ctrl-C, SIGTERM or SIGHUP stops everything; no part outlives it.",
    )
    p.add_argument("--workdir", type=Path, default=Path(".matthan-demo"), help="state folder (recreated)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--cloud-port", type=int, default=8000, help="console/API port (a free one if taken)")
    p.add_argument("--broker-port", type=int, default=8883, help="MQTT TLS port (a free one if taken)")
    p.add_argument("--devices", type=int, default=2, choices=[1, 2], help="how many device agents")
    p.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from matthan.demo import run_demo

    return run_demo(args.workdir.resolve(), args.duration, args.broker_port, args.cloud_port, args.devices)
