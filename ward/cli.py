"""`matthan ward …`: the police station's side."""

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from matthan.i18n import LANGUAGES, _, language, locale_language
from matthan_wire.codec import describe
from matthan_wire.config import BrokerConfig
from ward.errors import WardError
from ward.lines import DEFAULT_TZ


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("ward", help="a ward police station's alert subscriber")
    wsub = p.add_subparsers(dest="ward_command", metavar="ACTION", required=True)
    listen = wsub.add_parser("listen", help="print this ward's alerts, save snapshots")
    listen.add_argument("--ward", required=True, help="the ward id, e.g. ben-nghe")
    listen.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="mqtt://host[:port] or mqtts://…")
    listen.add_argument("--ca", help="CA certificate (mqtts)")
    listen.add_argument("--cert", help="client certificate (mqtts)")
    listen.add_argument("--key", help="client key (mqtts)")
    listen.add_argument("--username")
    listen.add_argument("--password")
    listen.add_argument(
        "--client-id",
        help="MQTT client id without a certificate (default ward-WARD-HOST); "
        "with one, the broker uses the certificate's name",
    )
    listen.add_argument(
        "--state",
        type=Path,
        help="SQLite file of the alerts shown, so a restart shows none twice "
        "(default $XDG_STATE_HOME/matthan/station-WARD.db, i.e. ~/.local/state/…)",
    )
    listen.add_argument("--snapshots", type=Path, help="save each alert's snapshot here as EVENT_ID.jpg")
    listen.add_argument(
        "--console-url",
        help="the console's address, e.g. https://matthan.example.vn: each line then ends with the "
        "alert's page (CONSOLE_URL/console/alerts/EVENT_ID)",
    )
    listen.add_argument(
        "--tz",
        default=DEFAULT_TZ,
        help=f"the time zone lines are printed in (default {DEFAULT_TZ}; the zone is printed too)",
    )
    listen.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per line instead of text, with the same fields (local_time, site, rule, "
        "count, url…) and the payload itself under alert / state_payload",
    )
    listen.add_argument(
        "--no-confirm",
        action="store_true",
        help="do not confirm to the cloud that alerts reached this station (a second, read-only screen)",
    )
    listen.add_argument(
        "--lang",
        choices=LANGUAGES,
        default=argparse.SUPPRESS,
        help="language of the alert lines (default: matthan's --lang, else the locale: LC_ALL, LANG)",
    )
    listen.set_defaults(handler=_listen)


def default_state(ward: str) -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "matthan" / f"station-{ward}.db"


def _listen(args: argparse.Namespace) -> int:
    from ward.lines import LineWriter
    from ward.listener import WardListener
    from ward.preflight import check_broker, check_ward

    if not args.broker.startswith(("mqtt://", "mqtts://")):
        raise WardError(
            _("--broker %(url)s: expected mqtt://host[:port] or mqtts://host[:port]", url=args.broker)
        )
    for name in ("ca", "cert", "key"):
        value = getattr(args, name)
        if value is not None and not Path(value).is_file():
            raise WardError(_("--%(flag)s %(path)s: no such file", flag=name, path=value))
    try:
        broker = BrokerConfig(
            url=args.broker,
            ca=args.ca,
            cert=args.cert,
            key=args.key,
            username=args.username,
            password=args.password,
        )
    except ValidationError as exc:
        raise WardError(_("--broker/--cert/--key: %(problem)s", problem=describe(exc))) from None
    if args.console_url and not args.console_url.startswith(("http://", "https://")):
        raise WardError(_("--console-url %(url)s: expected https://host[:port]", url=args.console_url))
    try:
        tz = ZoneInfo(args.tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise WardError(_("--tz %(tz)s: not a time zone name (e.g. Asia/Ho_Chi_Minh)", tz=args.tz)) from None
    if broker.cert:
        check_ward(args.ward, broker.cert)
    check_broker(broker)
    # --lang (the station's or matthan's), else the locale's; none of ours (C): both languages.
    lang = getattr(args, "lang", None) or locale_language()
    listener = WardListener(
        args.ward,
        broker,
        out=sys.stdout,
        client_id=args.client_id,
        snapshots=args.snapshots,
        as_json=args.json,
        confirm_delivery=not args.no_confirm,
        state=args.state or default_state(args.ward),
        lang=lang or language(),
        lines=LineWriter(tz=tz, console_url=args.console_url, lang=lang),
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    listener.start()
    try:
        listener.run(stop)
    finally:
        listener.stop()
    return 0
