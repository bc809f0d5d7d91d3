"""`matthan demo`: a whole site on this machine."""

import argparse

from matthan.errors import NotBuiltError


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("demo", help="a whole site on this machine: broker, cloud, a device on a sample clip")
    p.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    raise NotBuiltError("demo: not built yet (issue #9)")
