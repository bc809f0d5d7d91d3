"""`matthan cloud …`: the operations centre's back end."""

import argparse
import getpass
import logging
import signal
import sys
import threading
from typing import Any

from cloud.errors import CloudError
from cloud.settings import Settings
from matthan.i18n import Msg, _

log = logging.getLogger("matthan.cloud")


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "cloud", help="the cloud service: API, MQTT ingest, console; the fleet registry (claim, import, …)"
    )
    csub = p.add_subparsers(dest="cloud_command", metavar="ACTION", required=True)

    s = csub.add_parser("serve", help="serve the API and console, and ingest MQTT")
    _common(s)
    s.add_argument("--clips", help="clip store: a folder, or s3://bucket/prefix (default ./clips)")
    s.add_argument("--host", help="listen address (default 127.0.0.1)")
    s.add_argument("--port", type=int, help="listen port (default 8000)")
    s.add_argument("--public-url", help="the URL users and devices reach this service at")
    s.add_argument("--no-ingest", action="store_true", help="API only; run `matthan cloud ingest` apart")
    s.set_defaults(handler=_serve)

    i = csub.add_parser("ingest", help="only the MQTT ingest worker (several may share the load)")
    _common(i)
    i.add_argument("--clips", help="where snapshots go: a folder, or s3://bucket/prefix")
    i.add_argument("--share-group", help="MQTT 5 shared-subscription group, e.g. matthan-ingest")
    i.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    i.set_defaults(handler=_ingest)

    u = csub.add_parser("user", help="manage console and API users")
    usub = u.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    a = usub.add_parser("add", help="add a user (the first admin comes from here)")
    a.add_argument("--db", help="database URL (default sqlite:///matthan-cloud.db)")
    a.add_argument("--name", required=True)
    a.add_argument("--role", required=True, choices=["admin", "operator", "ward_officer"])
    a.add_argument("--ward", help="the ward of a ward_officer")
    a.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    a.add_argument("--api-key", action="store_true", help="also issue an API key (printed once)")
    a.set_defaults(handler=_user_add)

    k = csub.add_parser(
        "endpoint-key",
        help="print a new key that seals notification endpoints' secrets in the database "
        "(set it as MATTHAN_CLOUD_ATTENTION_ENDPOINT_KEY)",
    )
    k.set_defaults(handler=_endpoint_key)

    from cloud import evidence_cli
    from cloud.registry import cli as registry_cli

    registry_cli.register(csub)
    evidence_cli.register(csub)


def _endpoint_key(args: argparse.Namespace) -> int:
    from cloud.attention.sealing import new_key

    print(new_key())  # alone on its line, for a script to take
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="database URL: sqlite:///FILE (default) or postgresql://user@host/db")
    p.add_argument("--broker", help="MQTT broker URL, e.g. mqtt://127.0.0.1:1883")
    p.add_argument("--s3-endpoint", help="S3-compatible endpoint for --clips s3://… (MinIO, Ceph, …)")


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    return Settings.from_env(
        db_url=args.db,
        broker_url=args.broker,
        clips=getattr(args, "clips", None),
        s3_endpoint_url=args.s3_endpoint,
        **extra,
    )


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from cloud.app import create_app

    settings = _settings(
        args,
        host=args.host,
        port=args.port,
        public_url=args.public_url,
        ingest=False if args.no_ingest else None,
    )
    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    # uvicorn stops gracefully on SIGTERM, then raises it again for the previous handler; a no-op
    # one makes a requested stop exit 0, as a service manager expects.
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run()
    except OSError as exc:
        raise CloudError(
            Msg(
                "cannot listen on %(host)s:%(port)s: %(error)s",
                host=settings.host,
                port=settings.port,
                error=exc.strerror,
            )
        ) from None
    if not server.started:
        raise CloudError(Msg("the cloud service did not start (see the log above)"))
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from cloud.clipstore import open_store
    from cloud.db import make_engine, migrate
    from cloud.ingest import IngestWorker
    from cloud.metrics import Metrics
    from cloud.mqtt import MqttLink

    settings = _settings(args, share_group=args.share_group)
    if settings.broker_url is None:
        raise CloudError(Msg("ingest needs --broker"))
    engine = make_engine(settings.db_url)
    migrate(engine)
    metrics = Metrics()
    if args.metrics_port:
        from prometheus_client import start_http_server

        try:
            start_http_server(args.metrics_port, addr=settings.host, registry=metrics.registry)
        except OSError as exc:
            raise CloudError(
                Msg("metrics port %(port)s: %(error)s", port=args.metrics_port, error=exc.strerror)
            ) from None
    store = open_store(settings.clips, settings.clips_dir, settings.s3_endpoint_url)
    link = MqttLink(settings, "matthan-ingest")
    worker = IngestWorker(settings, engine, link, store, metrics)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    worker.start()
    link.start()
    log.info("ingest running broker=%s share_group=%s", settings.broker_url, settings.share_group)
    # A dead writer stores nothing while the broker keeps delivering: exit, so the supervisor
    # restarts the process (the devices resend what was not receipted).
    while not done.wait(1.0):
        if worker.dead_workers():
            log.critical("ingest writer died; exiting so the supervisor restarts ingest")
            break
    dead = worker.dead_workers()
    worker.stop()
    link.stop()
    engine.dispose()
    return 1 if dead else 0


def _user_add(args: argparse.Namespace) -> int:
    from sqlmodel import Session

    from cloud import audit
    from cloud.auth import create_user, issue_api_key
    from cloud.db import make_engine, migrate

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise CloudError(Msg("the passwords differ"))
    settings = Settings.from_env(db_url=args.db)
    engine = make_engine(settings.db_url)
    try:
        migrate(engine)
        with Session(engine) as session:
            user = create_user(session, args.name, args.role, password, args.ward)
            key = issue_api_key(session, user) if args.api_key else None
            audit.record(session, "cli", "user.add", args.name, role=args.role, ward=args.ward)
            session.commit()
    finally:
        engine.dispose()
    if args.ward:
        print(_("added %(role)s %(name)s (ward %(ward)s)", role=args.role, name=args.name, ward=args.ward))
    else:
        print(_("added %(role)s %(name)s", role=args.role, name=args.name))
    if key:
        # The key stays the line's last word in every language, for a script to take.
        print(_("api key: %(key)s", key=key))
    return 0
