"""The `matthan` command: one sub-command per part, each part registering its own."""

import argparse
import difflib
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from pydantic import ValidationError

from matthan import __version__, argparse_texts, i18n, logs
from matthan.errors import UserError
from matthan_wire import WireError
from matthan_wire.codec import describe

Handler = Callable[[argparse.Namespace], int]


def _invalid_choice() -> re.Pattern[str]:
    """argparse's "invalid choice" message, as the process's language writes it."""
    pattern = re.escape(i18n._(argparse_texts.INVALID_CHOICE))
    for placeholder, group in (("%(value)r", "'([^']*)'"), ("%(choices)s", "(.*)")):
        pattern = pattern.replace(re.escape(placeholder), group)
    return re.compile(pattern)


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake in one line and points to --help.

    A mistyped flag is the mistake named first, with the closest real one: argparse itself
    reports a missing required argument before it looks at unknown ones, so `--tokn x` would
    otherwise read as "--token is required".
    """

    _argv: list[str] = []

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        # Every (sub-)parser sees exactly its own arguments here; kept for error().
        self._argv = list(sys.argv[1:] if args is None else args)
        ns, extras = super().parse_known_args(args, namespace)
        if any(self._is_option(a) for a in extras):
            self.error(i18n._("unrecognized arguments: %s") % " ".join(extras))
        return ns, extras

    def error(self, message: str) -> NoReturn:
        unknown = self.unknown_option()
        if unknown is not None:
            message = i18n._("unknown option %(option)s", option=unknown)
            close = difflib.get_close_matches(unknown, self._long_options(), n=1, cutoff=0.5)
            if close:
                message += i18n._(" (did you mean %(option)s?)", option=close[0])
        elif (choice := _invalid_choice().search(message)) is not None:
            options = re.findall(r"'([^']*)'", choice.group(2))
            close = difflib.get_close_matches(choice.group(1), options, n=1, cutoff=0.5)
            if close:
                message += i18n._("; did you mean %(choice)r?", choice=close[0])
        self.exit(
            2,
            i18n._("%(prog)s: error: %(message)s (see '%(prog)s --help')", prog=self.prog, message=message)
            + "\n",
        )

    def unknown_option(self) -> str | None:
        known = self._option_string_actions
        for arg in self._argv:
            if arg == "--":
                break
            if not self._is_option(arg):
                continue
            flag = arg.split("=", 1)[0]
            if flag in known or (not flag.startswith("--") and flag[:2] in known):
                continue  # a known flag, or short flags run together (-vv)
            if flag.startswith("--") and any(o.startswith(flag) for o in self._long_options()):
                continue  # an abbreviation argparse accepts
            return flag
        return None

    def _long_options(self) -> list[str]:
        return [o for o in self._option_string_actions if o.startswith("--")]

    def _is_option(self, arg: str) -> bool:
        return arg.startswith("-") and arg != "-" and not self._negative_number_matcher.match(arg)


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
    parser.add_argument(
        "--lang",
        choices=i18n.LANGUAGES,
        help="language of messages and output (default: the locale, LC_ALL/LC_MESSAGES/LANG; else English)",
    )
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


def _lang_flag(argv: Sequence[str]) -> str | None:
    """--lang read before parsing, so that the parser's own errors speak the language too."""
    for i, arg in enumerate(argv):
        if arg.startswith("--lang="):
            return arg.split("=", 1)[1]
        if arg == "--lang" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def main(argv: Sequence[str] | None = None) -> int:
    i18n.set_language(_lang_flag(sys.argv[1:] if argv is None else argv) or i18n.language_from_env())
    argparse_texts.speak_our_language()
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.setup(args.verbose)
    i18n.set_language(args.lang or i18n.language_from_env())
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "--help"])
        return 2
    try:
        code = handler(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return _reader_went_away()
    except UserError as exc:
        print(f"matthan: {exc.message(i18n.language())}", file=sys.stderr)
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


def _reader_went_away() -> int:
    """The reader of our output left (`matthan assets list | head -4`): stop quietly, as a
    Unix tool killed by SIGPIPE does, instead of a traceback at the final flush."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + 13  # what a shell shows for a command ended by SIGPIPE
