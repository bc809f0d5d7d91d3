"""`matthan cloud evidence export EVENT_ID`, `matthan cloud audit verify`, `matthan cloud retention run`:
the evidence and custody tools, straight on the database and the clip store."""

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from cloud.errors import CloudError
from cloud.settings import Settings
from matthan.i18n import Msg, _

if TYPE_CHECKING:  # the device image has no SQLAlchemy, and `matthan --help` loads this module
    from sqlalchemy import Engine


def register(csub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    e = csub.add_parser("evidence", help="export an event's evidence bundle (zip)")
    esub = e.add_subparsers(dest="evidence_command", metavar="ACTION", required=True)
    x = esub.add_parser("export", help="write EVENT_ID's evidence zip (audited)")
    _common(x)
    x.add_argument("event_id")
    x.add_argument("-o", "--output", type=Path, help="the zip to write (default evidence-EVENT_ID.zip)")
    x.add_argument("--by", default="cli", help="who exports, for the audit log (default: cli)")
    x.set_defaults(handler=_export)

    a = csub.add_parser("audit", help="the audit log's hash chain")
    asub = a.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    v = asub.add_parser("verify", help="check the chain; names the first altered or deleted entry")
    _common(v)
    v.set_defaults(handler=_audit_verify)

    r = csub.add_parser("retention", help="retention by purpose")
    rsub = r.add_subparsers(dest="retention_command", metavar="ACTION", required=True)
    run = rsub.add_parser("run", help="apply retention once now (the service does it every hour)")
    _common(run)
    run.set_defaults(handler=_retention_run)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="database URL (default sqlite:///matthan-cloud.db)")
    p.add_argument("--clips", help="clip store: a folder, or s3://bucket/prefix")
    p.add_argument("--s3-endpoint", help="S3-compatible endpoint for --clips s3://…")


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        db_url=args.db, clips=getattr(args, "clips", None), s3_endpoint_url=getattr(args, "s3_endpoint", None)
    )


@contextmanager
def _engine(settings: Settings) -> Iterator["Engine"]:
    from cloud.db import make_engine, migrate

    engine = make_engine(settings.db_url)
    try:
        migrate(engine)
        yield engine
    finally:
        engine.dispose()


def _export(args: argparse.Namespace) -> int:
    from sqlmodel import Session

    from cloud.clipstore import open_store
    from cloud.evidence_export import write_bundle

    settings = _settings(args)
    store = open_store(settings.clips, settings.clips_dir, settings.s3_endpoint_url)
    out = args.output or Path(f"evidence-{args.event_id}.zip")
    tmp = out.with_suffix(out.suffix + ".part")
    with _engine(settings) as engine, Session(engine, expire_on_commit=False) as session:
        try:
            with tmp.open("wb") as f:
                check = write_bundle(session, settings, store, args.event_id, f"cli:{args.by}", f)
            session.commit()
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    tmp.replace(out)
    print(
        _(
            "wrote %(file)s (the cloud's check: %(status)s: %(reason)s)",
            file=str(out),
            status=check.status,
            reason=check.reason,
        )
    )
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    from sqlmodel import Session

    from cloud.custody import verify_chain

    with _engine(_settings(args)) as engine, Session(engine) as session:
        report = verify_chain(session)
    if not report.ok:
        print(
            _(
                "audit chain BROKEN after %(entries)d good entries: %(problem)s",
                entries=report.entries,
                problem=report.problem,
            ),
            file=sys.stderr,
        )
        raise CloudError(Msg("audit log tampered: %(problem)s", problem=report.problem))
    print(
        _(
            "audit chain intact: %(entries)d entries; head #%(seq)d %(hash)s",
            entries=report.entries,
            seq=report.head_seq,
            hash=report.head_hash,
        )
    )
    return 0


def _retention_run(args: argparse.Namespace) -> int:
    from cloud.clipstore import open_store
    from cloud.retention import RetentionJob

    settings = _settings(args)
    store = open_store(settings.clips, settings.clips_dir, settings.s3_endpoint_url)
    with _engine(settings) as engine:
        run = RetentionJob(engine, store, settings).run_once()
    print(
        _(
            "retention: %(alerts)d alerts purged, %(files)d files, %(bytes)d bytes; %(pinned)d pinned kept; "
            "%(errors)d errors",
            alerts=len(run.purged),
            files=run.files,
            bytes=run.bytes,
            pinned=len(run.kept_pinned),
            errors=run.errors,
        )
    )
    return 1 if run.errors else 0
