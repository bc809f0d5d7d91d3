"""`matthan provision …`: what a field technician and the operations centre run."""

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from matthan_wire.codec import describe
from provisioning.errors import ProvisionError

if TYPE_CHECKING:
    from sqlalchemy import Engine


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("provision", help="CA, enrollment, site checks, bulk import, broker config")
    psub = p.add_subparsers(dest="provision_command", metavar="ACTION", required=True)

    ca = psub.add_parser("ca", help="create and manage the project CA")
    casub = ca.add_subparsers(dest="ca_command", metavar="ACTION", required=True)
    init = casub.add_parser("init", help="create the project CA (key 0600, certificate, empty CRL)")
    init.add_argument("--dir", type=Path, required=True, help="the CA folder (created)")
    init.add_argument("--name", default="matthan project CA", help="the CA's common name")
    init.set_defaults(handler=_ca_init)
    srv = casub.add_parser("server-cert", help="key and certificate for the broker or the cloud API")
    srv.add_argument("--dir", type=Path, required=True, help="the CA folder")
    srv.add_argument("--name", required=True, help="common name, e.g. broker")
    srv.add_argument("--san", action="append", default=[], help="DNS name or IP address (repeat)")
    srv.add_argument("--out", type=Path, required=True, help="folder for NAME.key and NAME.pem")
    srv.set_defaults(handler=_server_cert, client=False)
    cli = casub.add_parser(
        "client-cert", help="key and certificate for a ward station or the cloud's MQTT client"
    )
    cli.add_argument("--dir", type=Path, required=True, help="the CA folder")
    cli.add_argument(
        "--name", required=True, help="station:WARD (or station:WARD:SCREEN), cloud:ingest (or cloud:NAME)"
    )
    cli.add_argument("--out", type=Path, required=True, help="folder for the key and certificate")
    cli.set_defaults(handler=_server_cert, client=True, san=[])
    crl = casub.add_parser("crl", help="re-sign the CRL (the broker refuses everyone once it is stale)")
    crl.add_argument("--dir", type=Path, required=True)
    crl.set_defaults(handler=_crl)

    claim = psub.add_parser("claim", help="issue a claim token for a ward (printed with its QR code)")
    claim.add_argument("--db", required=True, help="the cloud's database URL")
    claim.add_argument("--ward", required=True)
    claim.add_argument("--device-id", help="bind the token to one device id")
    claim.add_argument("--ttl-hours", type=float, default=72.0)
    claim.set_defaults(handler=_claim)

    e = psub.add_parser("enroll", help="enroll this device with a claim token")
    e.add_argument("--cloud", required=True, help="the cloud's URL, e.g. https://cloud.q1.example")
    e.add_argument("--token", required=True, help="the claim token (from the console or its QR code)")
    e.add_argument("--device-id", required=True)
    e.add_argument("--camera", help="the camera's stream, e.g. rtsp://user:pass@10.1.2.3/stream1")
    e.add_argument("--ward", help="the ward you are in; a token for another ward is refused")
    e.add_argument(
        "--dir", type=Path, default=Path("/etc/matthan"), help="config folder (default /etc/matthan)"
    )
    e.add_argument("--storage", help="data folder for the agent (default /var/lib/matthan)")
    e.add_argument("--cloud-ca", help="CA file to verify the cloud's HTTPS certificate")
    e.add_argument("--owner", help="the user the agent runs as (e.g. matthan): the files are handed to it")
    e.set_defaults(handler=_enroll)

    r = psub.add_parser("renew", help="new key and certificate for an enrolled device")
    r.add_argument("--config", type=Path, required=True)
    r.add_argument(
        "--if-due",
        action="store_true",
        help="only when the certificate expires within 30 days (for a daily timer)",
    )
    r.set_defaults(handler=_renew)

    c = psub.add_parser("check", help="the commissioning checklist")
    c.add_argument("--config", type=Path, required=True)
    c.add_argument("--by", help="technician's name for the report (default $MATTHAN_TECHNICIAN or $USER)")
    c.add_argument("--no-report", action="store_true", help="do not send the report to the cloud")
    c.set_defaults(handler=_check)

    i = psub.add_parser("import", help="bulk import cameras from CSV (site, ward, lat, lon, source, device)")
    i.add_argument("csv", type=Path)
    i.add_argument("--db", required=True, help="the cloud's database URL")
    i.add_argument("--ttl-hours", type=float, default=72.0, help="claim tokens' lifetime")
    i.add_argument("--tokens", type=Path, help="write the claim tokens to this CSV (0600) instead of stdout")
    i.set_defaults(handler=_import)

    b = psub.add_parser("broker-config", help="write the Mosquitto configuration and ACLs")
    src = b.add_mutually_exclusive_group(required=True)
    src.add_argument("--db", help="the cloud's database URL (the registry)")
    src.add_argument("--registry", type=Path, help="a registry YAML file (devices, wards)")
    b.add_argument("--ca-dir", type=Path, required=True)
    b.add_argument("--out", type=Path, required=True, help="folder for mosquitto.conf, acl, certificates")
    b.add_argument("--port", type=int, default=8883)
    b.add_argument("--bind", default="0.0.0.0")
    b.add_argument(
        "--name", action="append", help="the broker's DNS names / IPs for its certificate (repeat)"
    )
    b.add_argument(
        "--cloud-user",
        action="append",
        help="another cloud identity besides cloud:ingest, e.g. cloud:ingest-2: one certificate per "
        "cloud process on the broker (repeat; kept for later regenerations)",
    )
    b.add_argument(
        "--station-user",
        action="append",
        help="another screen of a ward, station:WARD:NAME, with the ward station's rules "
        "(repeat; kept for later regenerations)",
    )
    b.add_argument("--reload", action="store_true", help="SIGHUP the broker running from --out")
    b.set_defaults(handler=_broker_config)

    v = psub.add_parser("revoke", help="revoke a device: CRL, broker reload, uploads refused")
    v.add_argument("device")
    v.add_argument("--db", required=True, help="the cloud's database URL")
    v.add_argument("--ca-dir", type=Path, required=True)
    v.add_argument("--broker-dir", type=Path, help="the broker-config folder to regenerate and reload")
    v.set_defaults(handler=_revoke)


def _ca_init(args: argparse.Namespace) -> int:
    from provisioning import pki

    d = pki.init_ca(args.dir, args.name)
    print(f"CA created: {d / pki.CA_CERT} (key {d / pki.CA_KEY}, mode 0600)")
    return 0


def _server_cert(args: argparse.Namespace) -> int:
    from provisioning import pki

    ca = pki.Authority(args.dir)
    if args.client:
        pair = ca.issue_keypair(args.name, server=False)
    else:
        if not args.san:
            raise ProvisionError(
                "a server certificate needs at least one --san (the name clients connect to)"
            )
        pair = ca.issue_keypair(args.name, args.san)
    stem = args.name.replace(":", "_")
    pair.write(args.out / f"{stem}.key", args.out / f"{stem}.pem")
    print(
        f"{args.out / (stem + '.pem')} for {args.name}, valid until {pair.cert.not_valid_after_utc:%Y-%m-%d}"
    )
    return 0


def _crl(args: argparse.Namespace) -> int:
    from provisioning import pki

    print(pki.Authority(args.dir).write_crl())
    return 0


def _engine(db: str) -> "Engine":
    from cloud.db import make_engine, migrate

    engine = make_engine(db)
    migrate(engine)
    return engine


def _claim(args: argparse.Namespace) -> int:
    from cloud.db import session_scope
    from cloud.enrollment import issue_claim
    from matthan_wire.ids import is_id

    for what, value in (("ward", args.ward), ("device id", args.device_id)):
        if value is not None and not is_id(value):
            raise ProvisionError(f"{what} {value!r} is not an id ([a-z0-9-])")
    if not 0 < args.ttl_hours <= 720:
        raise ProvisionError("--ttl-hours: between 0 and 720")
    engine = _engine(args.db)
    with session_scope(engine) as session:
        issued = issue_claim(session, args.ward, args.device_id, args.ttl_hours, by="cli")
    engine.dispose()
    print(issued.qr)
    print(
        f"claim token for ward {issued.ward}" + (f", device {issued.device_id}" if issued.device_id else "")
    )
    print(f"  {issued.token}")
    print(f"  expires {issued.expires_at:%Y-%m-%d %H:%M} UTC; single use")
    return 0


def _enroll(args: argparse.Namespace) -> int:
    from provisioning.enroll import enroll

    path = enroll(
        args.cloud,
        args.token,
        args.device_id,
        args.dir,
        camera=args.camera,
        ward=args.ward,
        storage=args.storage,
        verify=args.cloud_ca or True,
        owner=args.owner,
    )
    print(f"enrolled {args.device_id}: configuration {path}; next: matthan provision check --config {path}")
    return 0


def _renew(args: argparse.Namespace) -> int:
    from provisioning.enroll import due_for_renewal, renew

    if args.if_due:
        left = due_for_renewal(args.config)
        if left is not None:
            print(f"not due: the certificate is valid for {left.days} more days")
            return 0
    cert = renew(args.config)
    print(
        f"renewed: valid until {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC (serial {cert.serial_number:x})"
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    from device.config_file import load_config
    from matthan_wire.timeutil import utc_now
    from provisioning.check import Checklist, send_report, table, technician

    config = load_config(args.config)
    items = Checklist(config, progress=sys.stderr).run()
    print(table(items))
    failed = any(i.status == "fail" for i in items)
    if not args.no_report:
        try:
            send_report(config, items, by=args.by or technician(), at=utc_now())
            print("report sent to the cloud")
        except ProvisionError as exc:
            print(f"matthan: {exc}", file=sys.stderr)
            return 1
    return 1 if failed else 0


def _import(args: argparse.Namespace) -> int:
    import csv
    import io

    from cloud.db import session_scope
    from provisioning.bulk_import import import_csv
    from provisioning.files import write_file

    if not 0 < args.ttl_hours <= 720:
        raise ProvisionError("--ttl-hours: between 0 and 720")
    try:
        text = args.csv.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ProvisionError(f"{args.csv}: not UTF-8 text") from None
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
    print(f"imported {result.devices} device(s), {result.cameras} camera(s)", file=sys.stderr)
    return 0


def _broker_config(args: argparse.Namespace) -> int:
    from provisioning import broker_config as bc

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
        raise ProvisionError(f"--cloud-user/--station-user/--port: {describe(exc)}") from None
    conf = bc.write_broker_config(registry, args.ca_dir, args.out, site)
    live = sum(not d.revoked for d in registry.devices)
    print(f"{conf}: {live} device(s), {len(registry.station_wards())} ward station(s)")
    if args.reload:
        pid = bc.reload_broker(args.out)
        print(f"broker pid {pid} reloaded" if pid else "no broker running from this folder; nothing reloaded")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from cloud.db import session_scope
    from provisioning import pki
    from provisioning.revoke import revoke_device, sync_broker

    ca = pki.Authority(args.ca_dir)
    engine = _engine(args.db)
    with session_scope(engine) as session:
        _, serials = revoke_device(session, ca, args.device, by="cli")
    with session_scope(engine) as session:
        reloaded = sync_broker(session, args.ca_dir, args.broker_dir)
    engine.dispose()
    print(f"revoked {args.device}: {len(serials)} certificate(s) in the CRL; broker reloaded: {reloaded}")
    return 0
