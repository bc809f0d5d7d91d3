"""The operator's commands on the registry database: broker-config --db, revoke, broker-config --registry."""

from pathlib import Path

import pytest
from sqlmodel import Session

from cloud.db import make_engine, migrate, session_scope
from cloud.models import Device, Ward
from cloud.registry import broker_config as bc
from matthan.cli import main
from matthan_wire import Kind
from matthan_wire.topics import device_topic
from tests.provisioning.conftest import SecureBroker, connect, issue


def test_revoke_cli_cuts_the_device_off(
    ca_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'cloud.db'}"
    engine = make_engine(db)
    migrate(engine)
    with session_scope(engine) as s:
        s.add(Ward(id="ward-x"))
        s.add(Device(id="cam-a", ward="ward-x"))
        s.add(Device(id="cam-b", ward="ward-x"))
    broker = SecureBroker(ca_dir, bc.Registry())
    try:
        args = [
            "--ca-dir",
            str(ca_dir),
            "--out",
            str(broker.dir),
            "--port",
            str(broker.port),
            "--bind",
            "127.0.0.1",
        ]
        assert main(["--lang", "en", "cloud", "broker-config", "--db", db, *args]) == 0
        assert "2 device(s), 1 ward station(s)" in capsys.readouterr().out
        broker.start()
        cam_a = issue(ca_dir, "cam-a", tmp_path / "ids")
        client = connect(broker, cam_a)
        # 16: accepted, no matching subscribers (nobody listens in this test).
        assert client.publish(device_topic(Kind.HEALTH, "ward-x", "cam-a"), b"{}") in (0, 16)
        client.close()

        cmd = [
            "--lang",
            "en",
            "cloud",
            "revoke",
            "cam-a",
            "--db",
            db,
            "--ca-dir",
            str(ca_dir),
            "--broker-dir",
            str(broker.dir),
        ]
        assert main(cmd) == 0
        assert "revoked cam-a: 1 certificate(s) in the CRL; broker reloaded: True" in capsys.readouterr().out
        broker.wait_reloads(1)
        with pytest.raises(OSError):
            connect(broker, cam_a)
        assert "user cam-a" not in (broker.dir / "acl").read_text()
        with Session(engine) as s:
            device = s.get(Device, "cam-a")
            assert device is not None and device.revoked_at is not None
        # cam-b is untouched.
        connect(broker, issue(ca_dir, "cam-b", tmp_path / "ids")).close()

        assert main(["cloud", "revoke", "nobody", "--db", db, "--ca-dir", str(ca_dir)]) == 1
        assert "no device 'nobody' in the registry" in capsys.readouterr().err
    finally:
        broker.cleanup()
        engine.dispose()


def test_broker_config_from_a_registry_file(
    ca_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = tmp_path / "registry.yaml"
    reg.write_text(
        "devices:\n  - {id: cam-a, ward: ward-x}\n  - {id: old, ward: ward-x, revoked: true}\n"
        "wards: [ward-z]\n"
    )
    out = tmp_path / "broker"
    assert (
        main(["cloud", "broker-config", "--registry", str(reg), "--ca-dir", str(ca_dir), "--out", str(out)])
        == 0
    )
    acl = (out / "acl").read_text()
    assert "user cam-a" in acl and "user old" not in acl and "user station:ward-z" in acl
    reg.write_text("devices:\n  - {id: Cam A, ward: ward-x}\n")
    assert (
        main(["cloud", "broker-config", "--registry", str(reg), "--ca-dir", str(ca_dir), "--out", str(out)])
        == 1
    )
    err = capsys.readouterr().err
    assert "registry.yaml" in err and "devices" in err and err.count("\n") == 1
    assert "user cam-a" in (out / "acl").read_text()  # the bad registry changed nothing
