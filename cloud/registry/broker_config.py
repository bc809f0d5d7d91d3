"""Mosquitto configuration and ACLs generated from the device registry (`matthan cloud broker-config`,
and again by the cloud on every enrollment and revocation).

Security model (the broker enforces it, not the clients):

- Every client presents a certificate from the project CA (`require_certificate`); its common name
  becomes its MQTT user name (`use_identity_as_username`), so nobody can claim another identity by
  typing a different user name. The CRL is checked on every handshake.
- A device (CN = device id) writes only under `matthan/v1/{ward}/{device}/…` (alert, event,
  snapshot/+, health, status, config/reported, cmd/result) and reads only its own config/desired,
  cmd and receipt. The rules are explicit per device: the device's ward is not in its name, and
  Mosquitto 2.0's dynamic-security plugin does not expand %u/%c anyway (docs/lessons.md).
- The client id is bound to the same name (`use_username_as_clientid`): a client cannot take
  over another's session by connecting under its client id.
- A ward station (CN `station:{ward}`) reads only its own ward: the alerts, event ends,
  snapshots, status and health of the ward's devices, the ward's alert-state and the cloud's
  station-alert copies; it writes only its ward's `alert-action` and `station-sync`. Not the
  devices' config/desired (camera URLs carry passwords), cmd, receipts: a station has no business
  with them.
- The cloud (CN `cloud:…`) reads everything under `matthan/v1/#` (and `$SYS` for the dropped-
  message counters) and writes config/desired, cmd, receipt, alert-state and station-alert.
- A revoked device is in the CRL (cannot connect once the broker reloaded) and has no ACL rules
  (a session that was open before the revocation can no longer publish or receive anything).

Mosquitto 2.0.11 measured here: the ACL never refuses a SUBSCRIBE, it filters at delivery; under
MQTT 5 a refused publish gets PUBACK reason 135. SIGHUP reloads the ACL file and the CRL.

Names with a colon cannot be device ids (`[a-z0-9-]`), so a device can never be enrolled under a
station's or the cloud's name (matthan_wire/identities.py).

How the same model maps onto an EMQX or VerneMQ cluster: docs/security.md.
"""

import datetime as dt
import os
import shutil
import signal
from pathlib import Path
from typing import Annotated

import yaml
from cryptography import x509
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from cloud.db import make_engine
from cloud.errors import CloudError
from cloud.models import Device, Ward
from matthan.i18n import Msg
from matthan_wire.codec import describe
from matthan_wire.identities import CLOUD_USER, check_topic, station_user
from matthan_wire.ids import Id
from matthan_wire.topics import PREFIX, Kind, device_filter, device_topic, ward_topic
from provisioning import pki
from provisioning.files import group_id, user_exists, write_file

SITE_FILE = "site.json"
BROKER_USER = "mosquitto"

# Kinds a device publishes and the kinds it receives, from docs/design.md's topic table.
DEVICE_WRITES = (
    Kind.ALERT,
    Kind.EVENT,
    Kind.SNAPSHOT,
    Kind.HEALTH,
    Kind.STATUS,
    Kind.CONFIG_REPORTED,
    Kind.CMD_RESULT,
)
DEVICE_READS = (Kind.CONFIG_DESIRED, Kind.CMD, Kind.RECEIPT)
CLOUD_WRITES = (Kind.CONFIG_DESIRED, Kind.CMD, Kind.RECEIPT)
STATION_READS = (Kind.ALERT, Kind.EVENT, Kind.SNAPSHOT, Kind.STATUS, Kind.HEALTH)


class RegistryDevice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Id
    ward: Id
    revoked: bool = False


class Registry(BaseModel):
    """Who may connect: devices with their ward, the wards that have a station, the cloud users."""

    model_config = ConfigDict(extra="forbid")

    devices: list[RegistryDevice] = Field(default_factory=list)
    # Wards with a police station subscriber; every device's ward gets one too.
    wards: list[Id] = Field(default_factory=list)
    cloud_users: list[str] = Field(default_factory=lambda: [CLOUD_USER])

    def station_wards(self) -> list[str]:
        return sorted({*self.wards, *(d.ward for d in self.devices)})


class Limits(BaseModel):
    """Queue limits, set on purpose (docs/lessons.md: past the default 1000, QoS 1 is silently dropped).

    Per client. The cloud's ingest is the biggest consumer: after a broker or network outage every
    device replays its outbox at once (1,115 devices × a few alerts, events and snapshots each),
    so 100,000 messages leaves ample room; a ward station offline overnight at ~30 alerts a day
    needs far less. The byte cap bounds the broker's memory when snapshots (JPEG, ~50–300 KB)
    pile up for an offline station: 256 MiB per client.
    """

    max_queued_messages: int = Field(default=100_000, ge=1000)
    max_queued_bytes: int = Field(default=256 * 1024 * 1024, ge=1024 * 1024)
    max_inflight_messages: int = Field(default=20, ge=1)
    # A snapshot JPEG travels as one message; the JSON payloads are capped at 256 KiB by the codec.
    max_packet_size: int = Field(default=2 * 1024 * 1024, ge=512 * 1024)
    # A station or device that never returns must not hold a queue forever.
    persistent_client_expiration: str = "14d"


class BrokerSite(BaseModel):
    """Where the broker listens and which names its server certificate carries."""

    port: int = Field(default=8883, ge=1, le=65535)
    bind: str = "0.0.0.0"
    names: list[str] = Field(default_factory=lambda: ["localhost", "127.0.0.1"])
    limits: Limits = Field(default_factory=Limits)
    # More cloud identities besides the registry's: the client id is the certificate's name, so
    # every cloud process on the broker (`cloud serve`, each `cloud ingest`) needs its own.
    cloud_users: list[Annotated[str, Field(pattern=r"^cloud:[a-z0-9-]{1,63}$")]] = Field(default_factory=list)
    # More screens of a ward (`station:{ward}:{name}`), each with the ward station's rules.
    station_users: list[Annotated[str, Field(pattern=r"^station:[a-z0-9-]{1,63}:[a-z0-9-]{1,63}$")]] = Field(
        default_factory=list
    )


def load_registry_file(path: Path) -> Registry:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise CloudError(Msg("%(file)s: no such registry file", file=str(path))) from None
    except yaml.YAMLError as exc:
        raise CloudError(
            Msg("%(file)s: invalid YAML (%(error)s)", file=str(path), error=str(exc).splitlines()[0])
        ) from None
    try:
        return Registry.model_validate(data)
    except ValidationError as exc:
        raise CloudError(f"{path}: {describe(exc)}") from None


def acl_text(registry: Registry, extra_stations: list[str] | None = None) -> str:
    """The ACL file: explicit rules per user, nothing for revoked devices, deny for everyone else."""
    out = [
        "# Generated by `matthan cloud broker-config`; edits are overwritten.",
        "# No anonymous section: a client without rules here may do nothing.",
        "",
    ]
    for user in registry.cloud_users:
        out += [f"user {user}", f"topic read {PREFIX}/#", "topic read $SYS/#"]
        out += [f"topic write {device_filter(k)}" for k in CLOUD_WRITES]
        out += [f"topic write {PREFIX}/+/{k.value}" for k in (Kind.ALERT_STATE, Kind.STATION_ALERT)]
        out.append("")
    extra = extra_stations or []
    for ward in registry.station_wards():
        for user in [station_user(ward), *(u for u in extra if u.startswith(f"{station_user(ward)}:"))]:
            out.append(f"user {user}")
            out += [f"topic read {device_filter(k, ward)}" for k in STATION_READS]
            out += [
                f"topic read {ward_topic(Kind.ALERT_STATE, ward)}",
                f"topic read {ward_topic(Kind.STATION_ALERT, ward)}",
                f"topic write {ward_topic(Kind.ALERT_ACTION, ward)}",
                f"topic write {ward_topic(Kind.STATION_SYNC, ward)}",
                "",
            ]
    for dev in sorted(registry.devices, key=lambda d: d.id):
        if dev.revoked:
            out += [f"# {dev.id}: revoked", ""]
            continue
        out.append(f"user {dev.id}")
        for kind in DEVICE_WRITES:
            topic = device_filter(kind, dev.ward, dev.id) if kind is Kind.SNAPSHOT else None
            out.append(f"topic write {topic or device_topic(kind, dev.ward, dev.id)}")
        out += [f"topic read {device_topic(k, dev.ward, dev.id)}" for k in DEVICE_READS]
        out += [f"topic readwrite {check_topic(dev.ward, dev.id)}", ""]
    return "\n".join(out)


def mosquitto_conf(out_dir: Path, site: BrokerSite) -> str:
    lim = site.limits
    return "\n".join(
        [
            "# Generated by `matthan cloud broker-config`; edits are overwritten.",
            "per_listener_settings false",
            "allow_anonymous false",
            f"acl_file {out_dir / 'acl'}",
            "",
            "persistence true",
            f"persistence_location {out_dir / 'data'}/",
            "autosave_interval 60",
            f"persistent_client_expiration {lim.persistent_client_expiration}",
            "",
            f"max_queued_messages {lim.max_queued_messages}",
            f"max_queued_bytes {lim.max_queued_bytes}",
            f"max_inflight_messages {lim.max_inflight_messages}",
            f"max_packet_size {lim.max_packet_size}",
            "set_tcp_nodelay true",
            "",
            f"pid_file {out_dir / 'data' / 'mosquitto.pid'}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "",
            f"listener {site.port} {site.bind}",
            f"cafile {out_dir / 'ca.pem'}",
            f"certfile {out_dir / 'broker.pem'}",
            f"keyfile {out_dir / 'broker.key'}",
            f"crlfile {out_dir / 'crl.pem'}",
            "require_certificate true",
            "use_identity_as_username true",
            # The client id is the certificate's name too, whatever the client asks for: nobody
            # can take over (and end) another client's session by connecting under its id.
            "use_username_as_clientid true",
            "tls_version tlsv1.2",
            "",
        ]
    )


def write_broker_config(registry: Registry, ca_dir: Path, out_dir: Path, site: BrokerSite) -> Path:
    """Write mosquitto.conf, acl, ca.pem, crl.pem and (when missing or due) the broker's key pair.

    Files are group-readable by the `mosquitto` user when it exists: the broker drops to it before
    reading them, and again on every SIGHUP reload.
    """
    ca = pki.Authority(ca_dir)
    ca.write_crl()
    group = BROKER_USER if user_exists(BROKER_USER) else None
    out_dir.mkdir(parents=True, exist_ok=True)
    _share_dir(out_dir, group)
    data = out_dir / "data"
    data.mkdir(exist_ok=True)
    _own_data_dir(data, group)
    if _needs_server_cert(out_dir, ca, site.names):
        ca.issue_keypair("broker", site.names).write(out_dir / "broker.key", out_dir / "broker.pem", group)
    write_file(out_dir / "ca.pem", ca.cert_path.read_bytes(), mode=0o644, group=group)
    write_file(out_dir / "crl.pem", ca.crl_path.read_bytes(), mode=0o644, group=group)
    users = list(dict.fromkeys([*registry.cloud_users, *site.cloud_users]))
    acl = acl_text(registry.model_copy(update={"cloud_users": users}), site.station_users)
    write_file(out_dir / "acl", acl, mode=0o640, group=group)
    # Kept so that a regeneration on enrol/revoke (by the cloud) writes the same listener.
    write_file(out_dir / SITE_FILE, site.model_dump_json(indent=1), mode=0o640, group=group)
    return write_file(out_dir / "mosquitto.conf", mosquitto_conf(out_dir, site), mode=0o640, group=group)


def regenerate(registry: Registry, ca_dir: Path, out_dir: Path) -> Path:
    """Rewrite an existing broker folder for a changed registry, with the listener it was made with."""
    try:
        site = BrokerSite.model_validate_json((out_dir / SITE_FILE).read_bytes())
    except FileNotFoundError:
        raise CloudError(
            Msg(
                "%(folder)s: no broker configuration here; run 'matthan cloud broker-config'",
                folder=str(out_dir),
            )
        ) from None
    return write_broker_config(registry, ca_dir, out_dir, site)


def registry_from_session(session: Session) -> Registry:
    """The registry as the cloud's database holds it: every device with its ward, every ward."""
    devices = [
        RegistryDevice(id=d.id, ward=d.ward, revoked=d.revoked_at is not None)
        for d in session.exec(select(Device))
    ]
    return Registry(devices=devices, wards=[w.id for w in session.exec(select(Ward))])


def registry_from_db(url: str) -> Registry:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return registry_from_session(session)
    except SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise CloudError(Msg("registry database: %(error)s", error=first)) from None
    finally:
        engine.dispose()


def load_registry(source: str) -> Registry:
    """A database URL (the cloud's registry) or a YAML registry file."""
    if "://" in source:
        return registry_from_db(source)
    return load_registry_file(Path(source))


def _share_dir(path: Path, group: str | None) -> None:
    gid = group_id(group) if group else None
    if gid is not None:
        os.chown(path, -1, gid)
        path.chmod(0o750)


def _own_data_dir(path: Path, group: str | None) -> None:
    # The broker writes its persistence file here as the unprivileged user.
    if group and os.geteuid() == 0:
        shutil.chown(path, user=BROKER_USER, group=group)
        path.chmod(0o750)


def _needs_server_cert(out_dir: Path, ca: pki.Authority, names: list[str]) -> bool:
    cert_path = out_dir / "broker.pem"
    if not cert_path.exists() or not (out_dir / "broker.key").exists():
        return True
    cert = pki.load_cert(cert_path)
    if pki.verify_chain(cert, ca.cert) is not None:
        return True
    if cert.not_valid_after_utc - dt.datetime.now(dt.UTC) < dt.timedelta(days=pki.RENEW_BEFORE_DAYS):
        return True
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return True
    have = {str(v) for v in sans.get_values_for_type(x509.DNSName)} | {
        str(v) for v in sans.get_values_for_type(x509.IPAddress)
    }
    return have != set(names)


def reload_broker(out_dir: Path) -> int | None:
    """SIGHUP the broker whose pid file is in `out_dir`: it re-reads the ACL and the CRL.

    Returns the pid signalled, or None when no broker runs from this folder (nothing to reload).
    """
    pid_file = out_dir / "data" / "mosquitto.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return None
    except PermissionError:
        raise CloudError(
            Msg("broker pid %(pid)d: not allowed to signal it (run as root or its user)", pid=pid)
        ) from None
    return pid
