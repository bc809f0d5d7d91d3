"""`matthan provision …`: what a field technician runs on their machine or the device: the CA,
enrollment, renewal and the commissioning check. The registry commands that work on the cloud's
database are `matthan cloud claim|import|revoke|broker-config` (cloud/registry/cli.py)."""

import argparse
import sys
from pathlib import Path

from matthan.i18n import LANGUAGES, _, language
from provisioning.errors import ProvisionError


def register(
    sub: "argparse._SubParsersAction[argparse.ArgumentParser]",
) -> "argparse._SubParsersAction[argparse.ArgumentParser]":
    """`matthan provision …`; returns its sub-commands, where the deprecated registry names go."""
    p = sub.add_parser("provision", help="on the technician's machine: CA, enrollment, renewal, site checks")
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
    c.add_argument(
        "--lang",
        choices=LANGUAGES,
        default=argparse.SUPPRESS,  # matthan's own --lang then stands (matthan/cli.py reads args.lang)
        help="language of the checklist (default: matthan's --lang, else the locale: LC_ALL, LANG)",
    )
    c.set_defaults(handler=_check)
    return psub


def _ca_init(args: argparse.Namespace) -> int:
    from provisioning import pki

    d = pki.init_ca(args.dir, args.name)
    print(
        _("CA created: %(cert)s (key %(key)s, mode 0600)", cert=str(d / pki.CA_CERT), key=str(d / pki.CA_KEY))
    )
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
        _(
            "%(cert)s for %(name)s, valid until %(day)s",
            cert=str(args.out / f"{stem}.pem"),
            name=args.name,
            day=f"{pair.cert.not_valid_after_utc:%Y-%m-%d}",
        )
    )
    return 0


def _crl(args: argparse.Namespace) -> int:
    from provisioning import pki

    print(pki.Authority(args.dir).write_crl())
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
    print(
        _(
            "enrolled %(device)s: configuration %(path)s; next: matthan provision check --config %(path)s",
            device=args.device_id,
            path=str(path),
        )
    )
    return 0


def _renew(args: argparse.Namespace) -> int:
    from provisioning.enroll import due_for_renewal, renew

    if args.if_due:
        left = due_for_renewal(args.config)
        if left is not None:
            print(_("not due: the certificate is valid for %(days)d more days", days=left.days))
            return 0
    cert = renew(args.config)
    print(
        _(
            "renewed: valid until %(at)s UTC (serial %(serial)s)",
            at=f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M}",
            serial=f"{cert.serial_number:x}",
        )
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    from device.config_file import load_config
    from matthan_wire.timeutil import utc_now
    from provisioning.check import Checklist
    from provisioning.check_report import send_report, table, technician

    config = load_config(args.config)
    items = Checklist(config, progress=sys.stderr).run()
    print(table(items))
    failed = any(i.status == "fail" for i in items)
    if not args.no_report:
        try:
            send_report(config, items, by=args.by or technician(), at=utc_now())
            print(_("report sent to the cloud"))
        except ProvisionError as exc:
            print(f"matthan: {exc.message(language())}", file=sys.stderr)
            return 1
    return 1 if failed else 0
