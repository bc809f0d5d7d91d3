"""`matthan cloud …`: the operations centre's back end."""

import argparse

from matthan.errors import NotBuiltError


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("cloud", help="the cloud service: API, MQTT ingest, console")
    csub = p.add_subparsers(dest="cloud_command", metavar="ACTION", required=True)
    s = csub.add_parser("serve", help="serve the API and console, and ingest MQTT")
    s.add_argument("--db", default=None)
    s.add_argument("--broker", default=None)
    s.add_argument("--clips", default=None)
    s.set_defaults(handler=_not_built)


def _not_built(args: argparse.Namespace) -> int:
    raise NotBuiltError(f"cloud {args.cloud_command}: not built yet")
