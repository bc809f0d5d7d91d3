"""`matthan provision …`: what a field technician runs."""

import argparse

from matthan.errors import NotBuiltError


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("provision", help="CA, enrollment, site checks, bulk import, broker config")
    psub = p.add_subparsers(dest="provision_command", metavar="ACTION", required=True)
    for name, text in [
        ("ca", "create and manage the project CA"),
        ("enroll", "enroll this device with a claim token"),
        ("check", "the commissioning checklist"),
        ("import", "bulk import cameras from CSV"),
        ("broker-config", "write the Mosquitto configuration and ACLs"),
    ]:
        psub.add_parser(name, help=text).set_defaults(handler=_not_built)


def _not_built(args: argparse.Namespace) -> int:
    raise NotBuiltError(f"provision {args.provision_command}: not built yet")
