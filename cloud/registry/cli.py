"""`matthan cloud claim|import|revoke|broker-config`: the fleet registry, straight on the cloud's
database (the operations centre's machine). The same names under `matthan provision` still work
for one release, with a one-line notice.

The handlers import the database and the CA only when they run: `matthan --help` and the device's
and ward station's commands must work on an install without the cloud's dependencies."""

import argparse
import csv
import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from cloud.errors import CloudError
from matthan.i18n import Msg, _
from matthan_wire.codec import describe
from matthan_wire.ids import is_id

if TYPE_CHECKING:
    from sqlalchemy import Engine

Handler = Callable[[argparse.Namespace], int]
COMMANDS = ("claim", "import", "revoke", "broker-config")


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """The registry commands under `matthan cloud`."""
    for name in COMMANDS:
        _add(sub, name, _HANDLERS[name])


def register_deprecated(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """The same commands under their old `matthan provision` names, for one release."""
    for name in COMMANDS:
        _add(sub, name, _deprecated(name, _HANDLERS[name]), note=f" (deprecated: use 'matthan cloud {name}')")


def _deprecated(name: str, handler: Handler) -> Handler:
    def run(args: argparse.Namespace) -> int:
        notice = _(
            "'matthan provision %(name)s' is deprecated and goes in the next release; "
            "use 'matthan cloud %(name)s'",
            name=name,
        )
        print(f"matthan: {notice}", file=sys.stderr)
        return handler(args)

    return run


def _add(
    sub: "argparse._SubParsersAction[argparse.ArgumentParser]", name: str, handler: Handler, note: str = ""
) -> None:
    if name == "claim":
        p = sub.add_parser("claim", help="issue a claim token for a ward (printed with its QR code)" + note)
        p.add_argument("--db", required=True, help="the cloud's database URL")
        p.add_argument("--ward", required=True)
        p.add_argument("--device-id", help="bind the token to one device id")
        p.add_argument("--ttl-hours", type=float, default=72.0)
    elif name == "import":
        p = sub.add_parser(
            "import", help="bulk import cameras from CSV (site, ward, lat, lon, source, device)" + note
        )
        p.add_argument("csv", type=Path)
        p.add_argument("--db", required=True, help="the cloud's database URL")
        p.add_argument("--ttl-hours", type=float, default=72.0, help="claim tokens' lifetime")
        p.add_argument(
            "--tokens", type=Path, help="write the claim tokens to this CSV (0600) instead of stdout"
        )
    elif name == "revoke":
        p = sub.add_parser("revoke", help="revoke a device: CRL, broker reload, uploads refused" + note)
        p.add_argument("device")
        p.add_argument("--db", required=True, help="the cloud's database URL")
        p.add_argument("--ca-dir", type=Path, required=True)
        p.add_argument("--broker-dir", type=Path, help="the broker-config folder to regenerate and reload")
    else:
        p = sub.add_parser("broker-config", help="write the Mosquitto configuration and ACLs" + note)
        src = p.add_mutually_exclusive_group(required=True)
        src.add_argument("--db", help="the cloud's database URL (the registry)")
        src.add_argument("--registry", type=Path, help="a registry YAML file (devices, wards)")
        p.add_argument("--ca-dir", type=Path, required=True)
        p.add_argument("--out", type=Path, required=True, help="folder for mosquitto.conf, acl, certificates")
        p.add_argument("--port", type=int, default=8883)
        p.add_argument("--bind", default="0.0.0.0")
        p.add_argument(
            "--name", action="append", help="the broker's DNS names / IPs for its certificate (repeat)"
        )
        p.add_argument(
            "--cloud-user",
            action="append",
            help="another cloud identity besides cloud:ingest, e.g. cloud:ingest-2: one certificate per "
            "cloud process on the broker (repeat; kept for later regenerations)",
        )
        p.add_argument(
            "--station-user",
            action="append",
            help="another screen of a ward, station:WARD:NAME, with the ward station's rules "
            "(repeat; kept for later regenerations)",
        )
        p.add_argument("--reload", action="store_true", help="SIGHUP the broker running from --out")
    p.set_defaults(handler=handler)


def _engine(db: str) -> "Engine":
    from cloud.db import make_engine, migrate

    engine = make_engine(db)
    migrate(engine)
    return engine


def _claim(args: argparse.Namespace) -> int:
    from cloud.db import session_scope
    from cloud.registry.claims import issue_claim

    if not is_id(args.ward):
        raise CloudError(Msg("ward %(ward)r is not an id ([a-z0-9-])", ward=args.ward))
    if args.device_id is not None and not is_id(args.device_id):
        raise CloudError(Msg("device %(device)r is not an id ([a-z0-9-])", device=args.device_id))
    if not 0 < args.ttl_hours <= 720:
        raise CloudError(Msg("--ttl-hours: between 0 and 720"))
    engine = _engine(args.db)
    with session_scope(engine) as session:
        issued = issue_claim(session, args.ward, args.device_id, args.ttl_hours, by="cli")
    engine.dispose()
    print(issued.qr)
    if issued.device_id:
        print(
            _("claim token for ward %(ward)s, device %(device)s", ward=issued.ward, device=issued.device_id)
        )
    else:
        print(_("claim token for ward %(ward)s", ward=issued.ward))
    print(f"  {issued.token}")
    print("  " + _("expires %(at)s UTC; single use", at=f"{issued.expires_at:%Y-%m-%d %H:%M}"))
    return 0


def _import(args: argparse.Namespace) -> int:
    from cloud.db import session_scope
    from cloud.registry.bulk_import import import_csv
    from provisioning.files import write_file

    if not 0 < args.ttl_hours <= 720:
        raise CloudError(Msg("--ttl-hours: between 0 and 720"))
    try:
        text = args.csv.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CloudError(Msg("%(file)s: not UTF-8 text", file=str(args.csv))) from None
    engine = _engine(args.db)
    # All or nothing: import_csv raises before anything is committed, and the scope rolls back.
    with session_scope(engine) as session:
        result = import_csv(session, text, by="cli", ttl_hours=args.ttl_hours)
    engine.dispose()
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["device", "ward", "token", "expires_at"])
    for t in result.tokens:
        w.writerow([t.device_id, t.ward, t.token, f"{t.expires_at:%Y-%m-%dT%H:%MZ}"])
    if args.tokens:
        write_file(args.tokens, out.getvalue(), mode=0o600)
    else:
        sys.stdout.write(out.getvalue())
    print(
        _(
            "imported %(devices)d device(s), %(cameras)d camera(s)",
            devices=result.devices,
            cameras=result.cameras,
        ),
        file=sys.stderr,
    )
    return 0


def _broker_config(args: argparse.Namespace) -> int:
    from cloud.registry import broker_config as bc

    registry = bc.load_registry(args.db) if args.db else bc.load_registry_file(args.registry)
    try:
        site = bc.BrokerSite(
            port=args.port,
            bind=args.bind,
            cloud_users=args.cloud_user or [],
            station_users=args.station_user or [],
            **({"names": args.name} if args.name else {}),
        )
    except ValidationError as exc:
        raise CloudError(
            Msg("--cloud-user/--station-user/--port: %(problem)s", problem=describe(exc))
        ) from None
    conf = bc.write_broker_config(registry, args.ca_dir, args.out, site)
    live = sum(not d.revoked for d in registry.devices)
    wards = len(registry.station_wards())
    print(
        _(
            "%(file)s: %(devices)d device(s), %(wards)d ward station(s)",
            file=str(conf),
            devices=live,
            wards=wards,
        )
    )
    if args.reload:
        pid = bc.reload_broker(args.out)
        if pid:
            print(_("broker pid %(pid)d reloaded", pid=pid))
        else:
            print(_("no broker running from this folder; nothing reloaded"))
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from cloud.db import session_scope
    from cloud.registry.revoke import revoke_device, sync_broker
    from provisioning import pki

    ca = pki.Authority(args.ca_dir)
    engine = _engine(args.db)
    with session_scope(engine) as session:
        serials = revoke_device(session, ca, args.device, by="cli")[1]
    with session_scope(engine) as session:
        reloaded = sync_broker(session, args.ca_dir, args.broker_dir)
    engine.dispose()
    print(
        _(
            "revoked %(device)s: %(count)d certificate(s) in the CRL; broker reloaded: %(reloaded)s",
            device=args.device,
            count=len(serials),
            reloaded=reloaded,
        )
    )
    return 0


_HANDLERS: dict[str, Handler] = {
    "claim": _claim,
    "import": _import,
    "revoke": _revoke,
    "broker-config": _broker_config,
}
