"""The generated Mosquitto configuration enforces identity and per-ward ACLs on a real broker.

The ACL file never refuses a SUBSCRIBE (it filters at delivery), so every test checks what a
subscriber actually receives: a forbidden message sent before an allowed marker from the same
connection would arrive before the marker, so when the marker arrives the question is settled.
"""

import grp
import os
import threading
from pathlib import Path

import pytest

from cloud.registry import broker_config as bc
from matthan_wire import Kind
from matthan_wire.identities import CLOUD_USER, station_user
from matthan_wire.topics import device_filter, device_topic, ward_topic
from provisioning import pki
from provisioning.files import user_exists
from tests.provisioning.conftest import MakeBroker, connect, issue

REGISTRY = bc.Registry(
    devices=[
        bc.RegistryDevice(id="cam-a", ward="ward-x"),
        bc.RegistryDevice(id="cam-b", ward="ward-x"),
        bc.RegistryDevice(id="cam-y", ward="ward-y"),
    ]
)
NOT_AUTHORIZED = 135


def test_acl_is_explicit_per_device_and_empty_for_revoked() -> None:
    reg = REGISTRY.model_copy(
        update={"devices": [*REGISTRY.devices, bc.RegistryDevice(id="gone", ward="ward-y", revoked=True)]}
    )
    text = bc.acl_text(reg)
    assert "%u" not in text and "%c" not in text and "pattern" not in text
    assert "topic write matthan/v1/ward-x/cam-a/snapshot/+" in text
    assert "topic read matthan/v1/ward-x/cam-a/receipt" in text
    assert "user gone" not in text
    assert "user station:ward-y" in text
    blocks = {b.splitlines()[0]: b for b in text.split("\n\n") if b.startswith("user ")}
    # A device never reads what it writes (except its commissioning echo) nor anything of another device.
    assert all("cam-b" not in line for line in blocks["user cam-a"].splitlines())


def test_files_are_readable_by_the_broker_user_and_the_key_by_nobody_else(
    ca_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "broker"
    bc.write_broker_config(REGISTRY, ca_dir, out, bc.BrokerSite())
    assert (ca_dir / pki.CA_KEY).stat().st_mode & 0o777 == 0o600
    key = (out / "broker.key").stat()
    assert key.st_mode & 0o007 == 0
    if user_exists("mosquitto") and os.geteuid() == 0:
        gid = grp.getgrnam("mosquitto").gr_gid
        for name in ("broker.key", "acl", "crl.pem", "ca.pem", "mosquitto.conf"):
            st = (out / name).stat()
            assert st.st_gid == gid and st.st_mode & 0o040, name
    conf = (out / "mosquitto.conf").read_text()
    for line in (
        "require_certificate true",
        "use_identity_as_username true",
        "use_username_as_clientid true",
        "persistence true",
    ):
        assert line in conf
    assert "max_queued_messages 100000" in conf and "max_queued_bytes 268435456" in conf
    assert f"crlfile {out / 'crl.pem'}" in conf


def test_device_cannot_publish_as_another_device(
    secure_broker: MakeBroker, ca_dir: Path, tmp_path: Path
) -> None:
    broker = secure_broker(REGISTRY)
    cloud = connect(broker, issue(ca_dir, CLOUD_USER, tmp_path / "id", device=False))
    cam_a = connect(broker, issue(ca_dir, "cam-a", tmp_path / "id"))
    try:
        cloud.subscribe("matthan/v1/#")
        forged = device_topic(Kind.ALERT, "ward-x", "cam-b")
        forged_other_ward = device_topic(Kind.ALERT, "ward-y", "cam-y")
        own = device_topic(Kind.ALERT, "ward-x", "cam-a")
        assert cam_a.publish(forged, b"{}") == NOT_AUTHORIZED
        assert cam_a.publish(forged_other_ward, b"{}") == NOT_AUTHORIZED
        # Not even a command to itself: only the cloud writes cmd.
        assert cam_a.publish(device_topic(Kind.CMD, "ward-x", "cam-a"), b"{}") == NOT_AUTHORIZED
        assert cam_a.publish(own, b"{}") == 0
        assert cloud.topics_until(own) == [own]
    finally:
        cam_a.close()
        cloud.close()


def test_device_reads_only_its_own_commands(secure_broker: MakeBroker, ca_dir: Path, tmp_path: Path) -> None:
    broker = secure_broker(REGISTRY)
    cloud = connect(broker, issue(ca_dir, CLOUD_USER, tmp_path / "id", device=False))
    cam_a = connect(broker, issue(ca_dir, "cam-a", tmp_path / "id"))
    try:
        cam_a.subscribe("matthan/v1/#")  # granted in the SUBACK, filtered at delivery
        for_b = device_topic(Kind.CMD, "ward-x", "cam-b")
        b_alert_state = ward_topic(Kind.ALERT_STATE, "ward-x")
        for_a = device_topic(Kind.CMD, "ward-x", "cam-a")
        assert cloud.publish(for_b, b"{}") == 0
        assert cloud.publish(b_alert_state, b"{}") == 0
        assert cloud.publish(for_a, b"{}") == 0
        assert cam_a.topics_until(for_a) == [for_a]
    finally:
        cam_a.close()
        cloud.close()


def test_ward_station_receives_only_its_ward(secure_broker: MakeBroker, ca_dir: Path, tmp_path: Path) -> None:
    broker = secure_broker(REGISTRY)
    station_x = connect(broker, issue(ca_dir, station_user("ward-x"), tmp_path / "id", device=False))
    cam_y = connect(broker, issue(ca_dir, "cam-y", tmp_path / "id"))
    cam_a = connect(broker, issue(ca_dir, "cam-a", tmp_path / "id"))
    cloud = connect(broker, issue(ca_dir, CLOUD_USER, tmp_path / "id", device=False))
    try:
        station_x.subscribe("matthan/v1/#")
        # Its own ward's device config carries camera passwords: not for the station either.
        assert cloud.publish(device_topic(Kind.CONFIG_DESIRED, "ward-x", "cam-a"), b"{}") in (0, 16)
        assert cloud.publish(device_topic(Kind.CMD, "ward-x", "cam-a"), b"{}") in (0, 16)
        y_alert = device_topic(Kind.ALERT, "ward-y", "cam-y")
        y_snapshot = device_topic(Kind.SNAPSHOT, "ward-y", "cam-y", "ev-1")
        x_alert = device_topic(Kind.ALERT, "ward-x", "cam-a")
        assert cam_y.publish(y_alert, b"{}") == 0
        assert cam_y.publish(y_snapshot, b"\xff\xd8") == 0
        assert cam_a.publish(x_alert, b"{}") == 0
        x_state = ward_topic(Kind.ALERT_STATE, "ward-x")
        assert cloud.publish(ward_topic(Kind.ALERT_STATE, "ward-y"), b"{}") in (0, 16)
        assert cloud.publish(x_state, b"{}") == 0
        assert station_x.topics_until(x_state) == [x_alert, x_state]
        # A station acts on its own ward's alerts only.
        assert station_x.publish(ward_topic(Kind.ALERT_ACTION, "ward-y"), b"{}") == NOT_AUTHORIZED
        assert station_x.publish(ward_topic(Kind.ALERT_ACTION, "ward-x"), b"{}") == 0
    finally:
        for c in (station_x, cam_y, cam_a, cloud):
            c.close()


def test_client_without_certificate_cannot_connect(secure_broker: MakeBroker) -> None:
    broker = secure_broker(REGISTRY)
    with pytest.raises(OSError):
        connect(broker, None)


def test_certificate_from_another_ca_cannot_connect(secure_broker: MakeBroker, tmp_path: Path) -> None:
    broker = secure_broker(REGISTRY)
    rogue_ca = pki.init_ca(tmp_path / "rogue")
    with pytest.raises(OSError):
        connect(broker, issue(rogue_ca, "cam-a", tmp_path / "rogue-id"))


def test_revoked_device_cannot_connect_after_reload(
    secure_broker: MakeBroker, ca_dir: Path, tmp_path: Path
) -> None:
    broker = secure_broker(REGISTRY)
    cam_a_id = issue(ca_dir, "cam-a", tmp_path / "id")
    cloud = connect(broker, issue(ca_dir, CLOUD_USER, tmp_path / "id", device=False))
    assert pki.Authority(ca_dir).revoke("cam-a")
    revoked = [d.model_copy(update={"revoked": d.id == "cam-a"}) for d in REGISTRY.devices]
    broker.regenerate(REGISTRY.model_copy(update={"devices": revoked}))
    # Until the broker reloads, it still trusts the certificate: the reload is what matters. (This
    # session is the one that stays open: its client id is its certificate's name, so a second
    # connection of cam-a would take it over.)
    still_open = connect(broker, cam_a_id)
    try:
        cloud.subscribe("matthan/v1/#")
        broker.reload()
        with pytest.raises(OSError):
            connect(broker, cam_a_id, client_id="cam-a-second")
        # A session opened before the revocation lost its ACL rules: it can no longer publish.
        own = device_topic(Kind.ALERT, "ward-x", "cam-a")
        assert still_open.publish(own, b"{}") == NOT_AUTHORIZED
        # Other devices are untouched.
        cam_b = connect(broker, issue(ca_dir, "cam-b", tmp_path / "id"))
        b_alert = device_topic(Kind.ALERT, "ward-x", "cam-b")
        assert cam_b.publish(b_alert, b"{}") == 0
        assert cloud.topics_until(b_alert) == [b_alert]
        cam_b.close()
    finally:
        still_open.close()
        cloud.close()


@pytest.mark.parametrize("victim", [station_user("ward-x"), "cam-b"])
def test_a_client_id_cannot_take_over_another_clients_session(
    victim: str, secure_broker: MakeBroker, ca_dir: Path, tmp_path: Path
) -> None:
    """The client id is the certificate's name: cam-a asking for the station's (or cam-b's) client
    id gets its own, and the victim stays connected and keeps receiving."""
    broker = secure_broker(REGISTRY)
    cloud = connect(broker, issue(ca_dir, CLOUD_USER, tmp_path / "id", device=False))
    target = connect(broker, issue(ca_dir, victim, tmp_path / "id", device=victim == "cam-b"))
    dropped = threading.Event()
    target.client.on_disconnect = lambda *a: dropped.set()
    try:
        if victim == "cam-b":
            marker = device_topic(Kind.CMD, "ward-x", "cam-b")
            target.subscribe(marker)
        else:
            marker = device_topic(Kind.ALERT, "ward-x", "cam-a")
            target.subscribe(device_filter(Kind.ALERT, "ward-x"))
        intruder = connect(broker, issue(ca_dir, "cam-a", tmp_path / "id"), client_id=victim)
        try:
            # Published while the intruder is connected under the victim's client id.
            sender = intruder if victim != "cam-b" else cloud
            assert sender.publish(marker, b"{}") == 0
            assert target.topics_until(marker) == [marker]
            assert not dropped.is_set()
        finally:
            intruder.close()
    finally:
        target.close()
        cloud.close()


def test_every_cloud_process_and_screen_gets_its_own_identity_kept_across_regenerations(
    ca_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "broker"
    site = bc.BrokerSite(cloud_users=["cloud:ingest-2"], station_users=["station:ward-x:screen-2"])
    bc.write_broker_config(REGISTRY, ca_dir, out, site)
    bc.regenerate(REGISTRY, ca_dir, out)  # as the cloud does on an enrollment
    acl = (out / "acl").read_text()
    for user in (CLOUD_USER, "cloud:ingest-2"):
        block = acl.split(f"user {user}\n", 1)[1].split("\n\n", 1)[0]
        assert "topic read matthan/v1/#" in block and "station-alert" in block
    screen = acl.split("user station:ward-x:screen-2\n", 1)[1].split("\n\n", 1)[0]
    station = acl.split("user station:ward-x\n", 1)[1].split("\n\n", 1)[0]
    assert screen == station  # a second screen of ward-x: the station's rules, nothing more
    assert "user station:ward-y:" not in acl
    with pytest.raises(ValueError):
        bc.BrokerSite(cloud_users=["cam-a"])  # a device id never gets the cloud's rights
    with pytest.raises(ValueError):
        bc.BrokerSite(station_users=["station:ward-x"])  # the station itself needs no extra
