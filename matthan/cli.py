"""The `matthan` command: one sub-command per part, each part registering its own."""

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from pydantic import ValidationError

from matthan import __version__, logs
from matthan.errors import UserError
from matthan_wire import WireError
from matthan_wire.codec import describe

Handler = Callable[[argparse.Namespace], int]


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake in one line and points to --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    from cloud import cli as cloud_cli
    from cloud.registry import cli as registry_cli
    from device import cli as device_cli
    from matthan import assets_cli, demo_cli, evidence_cli
    from provisioning import cli as provision_cli
    from ward import cli as ward_cli

    parser = Parser(prog="matthan", description="Street-camera network: edge agent, cloud service, tools.")
    parser.add_argument("--version", action="version", version=f"matthan {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    # Parser for every sub-command too, so their usage errors are one line as well.
    sub: argparse._SubParsersAction[argparse.ArgumentParser] = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=Parser
    )
    sub.required = True
    demo_cli.register(sub)
    device_cli.register(sub)
    cloud_cli.register(sub)
    ward_cli.register(sub)
    registry_cli.register_deprecated(provision_cli.register(sub))
    assets_cli.register(sub)
    evidence_cli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.setup(args.verbose)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "--help"])
        return 2
    try:
        return handler(args)
    except UserError as exc:
        print(f"matthan: {exc}", file=sys.stderr)
        return exc.exit_code
    except (WireError, FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        print(f"matthan: {exc}", file=sys.stderr)
        return 1
    except ValidationError as exc:
        print(f"matthan: {describe(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        logging.getLogger("matthan").info("interrupted")
        return 130
