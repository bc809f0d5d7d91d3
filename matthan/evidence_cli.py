"""`matthan evidence verify FILE.zip --ca ca.pem`: check an exported evidence bundle offline.

Needs nothing but the zip and the project's CA certificate (from a source the investigator
trusts, not the copy inside the zip). Exit 0 when valid, 1 with every reason when not.
"""

import argparse
from pathlib import Path

from matthan.errors import UserError
from matthan.i18n import Msg, _


class VerifyFailed(UserError):
    exit_code = 1


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("evidence", help="check an exported evidence bundle (offline)")
    esub = p.add_subparsers(dest="evidence_command", metavar="ACTION", required=True)
    v = esub.add_parser("verify", help="verify FILE.zip against the project's CA certificate")
    v.add_argument("file", type=Path, help="the evidence zip exported by the cloud")
    v.add_argument("--ca", type=Path, required=True, help="the project's CA certificate (PEM)")
    v.set_defaults(handler=_verify)


def _verify(args: argparse.Namespace) -> int:
    from cryptography import x509

    from matthan.evidence import verify_bundle

    try:
        ca = x509.load_pem_x509_certificate(args.ca.read_bytes())
    except ValueError:
        raise UserError(Msg("%(file)s: not a PEM certificate", file=str(args.ca))) from None
    verdict = verify_bundle(args.file.read_bytes(), ca)
    m = verdict.manifest
    if m is not None:
        print(
            _(
                "event %(event)s  device %(device)s  camera %(camera)s  ward %(ward)s",
                event=m.event_id,
                device=m.device_id,
                camera=m.camera_id,
                ward=m.ward,
            )
        )
        print(
            _(
                "rule %(rule)s  started %(started)s UTC  signed %(signed)s UTC",
                rule=m.rule.rule,
                started=f"{m.started_at:%Y-%m-%d %H:%M:%S}",
                signed=f"{m.signed_at:%Y-%m-%d %H:%M:%S}",
            )
        )
        for kind, d in m.files.items():
            print(f"  {kind:9} sha256 {d.sha256}  {d.size} bytes")
    for note in verdict.notes:
        print(_("note: %(note)s", note=note))
    if not verdict.valid:
        for problem in verdict.problems:
            print(_("INVALID: %(problem)s", problem=problem))
        raise VerifyFailed(
            Msg(
                "%(file)s: NOT valid evidence (%(count)d problem(s))",
                file=str(args.file),
                count=len(verdict.problems),
            )
        )
    print(
        _(
            "%(file)s: valid (signed by %(signer)s, certificate serial %(serial)s)",
            file=str(args.file),
            signer=verdict.signer,
            serial=verdict.serial,
        )
    )
    return 0
