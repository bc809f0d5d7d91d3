"""Retention by purpose, with a clock the test controls, on the local clip store and on S3 (moto):
a false alarm's media go after their period, a pinned alert's stay until an admin unpins it, a
resolved alert's stay longer; every deletion and every keep is in the audit log."""

import hashlib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import boto3  # type: ignore[import-untyped]
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from cloud.app import create_app
from cloud.clipstore import media_key
from cloud.custody import verify_chain
from cloud.models import AlertRow, AuditLog, MediaObject, RetentionPurge
from cloud.settings import Settings
from matthan_wire.timeutil import utc_now
from tests.cloud.conftest import add_device, add_user, bearer
from tests.cloud.test_clipstore_s3 import s3_endpoint  # noqa: F401  (a fixture)

WARD = "ben-nghe"
EVENTS = ("dev-a-fa", "dev-a-pin", "dev-a-res")


@pytest.fixture(params=["local", "s3"])
def settings(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings], sqlite_url: str, tmp_path: Path
) -> Settings:
    base = make_settings(sqlite_url)
    if request.param == "local":
        return base
    endpoint = request.getfixturevalue("s3_endpoint")
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="evidence")
    return base.model_copy(
        update={
            "clips": "s3://evidence/q1",
            "s3_endpoint_url": endpoint,
            "staging_dir": str(tmp_path / "staging"),
        }
    )


def upload(client: TestClient, token: str, event_id: str, kind: str, body: bytes) -> None:
    headers = {**bearer(token), "Upload-Offset": "0", "Upload-Length": str(len(body)),
               "Upload-Sha256": hashlib.sha256(body).hexdigest()}  # fmt: skip
    r = client.patch(f"/api/v1/media/{event_id}/{kind}", content=body, headers=headers)
    assert r.status_code == 201, r.text


def audit_of(client: TestClient, action: str) -> list[AuditLog]:
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        return list(
            s.exec(select(AuditLog).where(AuditLog.action == action).order_by(col(AuditLog.seq))).all()
        )


def test_retention_deletes_a_false_alarms_media_and_keeps_a_pinned_one(settings: Settings) -> None:
    now = [utc_now()]
    app = create_app(settings, clock=lambda: now[0])
    with TestClient(app) as client:
        device = add_device(client, "dev-a", WARD)
        admin = bearer(add_user(client, "an", "admin"))
        operator = bearer(add_user(client, "op", "operator"))
        with Session(app.state.engine) as s:
            for ev in EVENTS:
                s.add(AlertRow(event_id=ev, device_id="dev-a", camera_id="cam-1", ward=WARD, zone="plaza",
                               rule="plaza.intrusion", type="intrusion", category="security_order",
                               labels=["person"], bbox=[0.1, 0.2, 0.3, 0.6], started_at=now[0]))  # fmt: skip
            s.commit()
        for ev in EVENTS:
            upload(client, device, ev, "snapshot", b"\xff\xd8 a face " + ev.encode())
            upload(client, device, ev, "clip", b"\x00\x00\x00\x18ftypmp42" + ev.encode() * 1000)
        for ev, action in (
            ("dev-a-fa", "false_alarm"),
            ("dev-a-pin", "false_alarm"),
            ("dev-a-res", "resolve"),
        ):
            r = client.post(
                f"/api/v1/alerts/{ev}/actions",
                json={"action": action, "note": "Anh Tuấn đã tới"},
                headers=admin,
            )
            assert r.status_code == 200, r.text
        assert (
            client.post("/api/v1/alerts/dev-a-pin/pin", json={"reason": "x"}, headers=operator).status_code
            == 403
        )
        r = client.post(
            "/api/v1/alerts/dev-a-pin/pin", json={"reason": "hồ sơ vụ việc 12/2026"}, headers=admin
        )
        assert r.status_code == 200 and r.json()["pinned"] is True
        # Viewing media is custody: audited with who.
        assert client.get("/api/v1/media/dev-a-pin/snapshot", headers=admin).status_code == 200
        assert [e.who for e in audit_of(client, "media.view")] == ["user:an"]

        job = app.state.retention
        store = app.state.clip_store
        now[0] = utc_now() + timedelta(days=6)
        assert job.run_once().purged == []  # within the 7 days
        now[0] = utc_now() + timedelta(days=8)
        run = job.run_once()
        assert run.purged == ["dev-a-fa"] and run.kept_pinned == ["dev-a-pin"] and run.files == 2
        assert store.size(media_key("dev-a", "dev-a-fa", "clip")) is None
        assert store.size(media_key("dev-a", "dev-a-fa", "snapshot")) is None
        for ev in ("dev-a-pin", "dev-a-res"):
            assert store.size(media_key("dev-a", ev, "clip")) is not None
        assert client.get("/api/v1/media/dev-a-fa/clip", headers=admin).status_code == 404
        assert client.get("/api/v1/media/dev-a-pin/clip", headers=admin).status_code == 200
        with Session(app.state.engine) as s:
            fa = s.get(AlertRow, "dev-a-fa")
            assert fa is not None and fa.bbox is None and fa.note is None and fa.rule == "plaza.intrusion"
            assert s.exec(select(MediaObject).where(MediaObject.event_id == "dev-a-fa")).all() == []
            purge = s.get(RetentionPurge, "dev-a-fa")
            assert purge is not None and purge.files == 2 and purge.bytes > 0
        deleted = audit_of(client, "retention.delete")
        assert [(e.target, e.who, (e.detail or {})["files"]) for e in deleted] == [
            ("dev-a-fa", "system:retention", 2)
        ]
        assert [e.target for e in audit_of(client, "retention.keep")] == ["dev-a-pin"]

        late = b"\xff\xd8 a face again"
        headers = {**bearer(device), "Upload-Offset": "0", "Upload-Length": str(len(late)),
                   "Upload-Sha256": hashlib.sha256(late).hexdigest()}  # fmt: skip
        r = client.patch("/api/v1/media/dev-a-fa/snapshot", content=late, headers=headers)
        assert r.status_code == 410  # a late copy does not bring deleted media back
        assert store.size(media_key("dev-a", "dev-a-fa", "snapshot")) is None
        again = job.run_once()  # nothing new, and the keep is not logged twice
        assert again.purged == [] and again.kept_pinned == []
        assert len(audit_of(client, "retention.keep")) == 1

        # Unpinning needs an admin and a reason; then the period applies again.
        assert (
            client.post("/api/v1/alerts/dev-a-pin/unpin", json={"reason": ""}, headers=admin).status_code
            == 422
        )
        r = client.post(
            "/api/v1/alerts/dev-a-pin/unpin", json={"reason": "vụ việc đã kết thúc"}, headers=admin
        )
        assert r.status_code == 200 and r.json()["pinned"] is False
        assert job.run_once().purged == ["dev-a-pin"]
        assert store.size(media_key("dev-a", "dev-a-pin", "clip")) is None
        # The resolved alert waits for its 90 days.
        now[0] = utc_now() + timedelta(days=91)
        assert job.run_once().purged == ["dev-a-res"]
        assert job.totals.purged == 3 and job.totals.files == 6
        with Session(app.state.engine) as s:
            chain = verify_chain(s)
        assert chain.ok, chain.problem
        assert [e.action for e in audit_of(client, "evidence.unpin")] == ["evidence.unpin"]


def test_retention_periods_are_configurable_per_category_and_outcome() -> None:
    s = Settings.from_env(
        {"MATTHAN_CLOUD_RETENTION_DAYS_BY_CATEGORY": '{"traffic/resolved": 30}',
         "MATTHAN_CLOUD_RETENTION_FALSE_ALARM_DAYS": "3"}
    )  # fmt: skip
    assert s.retention_days("traffic", "resolved") == 30
    assert s.retention_days("security_order", "resolved") == 90
    assert s.retention_days("traffic", "false_alarm") == 3
    assert s.retention_days("traffic", "acknowledged") is None  # purpose not served yet: kept


def test_a_dead_retention_job_turns_health_red(
    make_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    with TestClient(create_app(make_settings(sqlite_url))) as client:
        assert client.get("/healthz").json()["dead_workers"] == []
        client.app.state.retention.stop()  # type: ignore[attr-defined]
        r = client.get("/healthz")
        assert r.status_code == 503 and r.json()["dead_workers"] == ["retention"]
