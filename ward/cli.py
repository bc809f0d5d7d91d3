"""`matthan ward …`: the police station's side."""

import argparse

from matthan.errors import NotBuiltError


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("ward", help="a ward police station's alert subscriber")
    wsub = p.add_subparsers(dest="ward_command", metavar="ACTION", required=True)
    listen = wsub.add_parser("listen", help="print this ward's alerts, save snapshots")
    listen.add_argument("--ward", required=True)
    listen.set_defaults(handler=_not_built)


def _not_built(args: argparse.Namespace) -> int:
    raise NotBuiltError(f"ward {args.ward_command}: not built yet")
