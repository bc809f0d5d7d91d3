"""The channels against real peers: a webhook receiver process that verifies the signature, an
aiosmtpd process, a templated gateway request; retries while a receiver is down; a permanent
refusal ends as `failed`."""

import email
import json
import re
from pathlib import Path
from typing import Any

from cloud.attention.channels import sign, verify
from cloud.attention.queue import claim
from cloud.attention.worker import AttentionWorker
from cloud.clipstore import open_store
from cloud.db import make_engine, migrate
from cloud.settings import AttentionSettings, Settings
from tests.cloud.attention.conftest import SECRET, Receiver, Smtp
from tests.cloud.attention.helpers import (
    JPEG,
    TestClock,
    add_alert,
    add_endpoint,
    add_snapshot,
    notifications,
    set_policy,
)
from tests.support.net import wait_until


def _worker(
    db_url: str, tmp_path: Path, language: str = "vi", **attention: Any
) -> tuple[AttentionWorker, TestClock, Any]:
    clock = TestClock(tmp_path / "clock")
    a = {
        "clock_file": clock.path,
        "retry_initial_s": 0.2,
        "retry_max_s": 1.0,
        "send_timeout_s": 3,
        **attention,
    }
    settings = Settings(
        db_url=db_url,
        broker_url=None,
        clips=str(tmp_path / "clips"),
        secret_key="s" * 32,
        public_url="https://matthan.example.vn",
        language=language,
        attention=AttentionSettings(**a),
    )
    engine = make_engine(db_url)
    migrate(engine)
    store = open_store(settings.clips, settings.clips_dir)
    return AttentionWorker(settings, engine, store), clock, engine


def test_signature_is_hmac_over_timestamp_and_body() -> None:
    header = sign("k" * 16, b'{"a":1}', 1_700_000_000)
    assert header.startswith("t=1700000000,v1=") and len(header.split("v1=")[1]) == 64
    assert verify("k" * 16, header, b'{"a":1}', now=1_700_000_010)
    assert not verify("k" * 16, header, b'{"a":2}', now=1_700_000_010)  # body changed
    assert not verify("x" * 16, header, b'{"a":1}', now=1_700_000_010)  # other secret
    assert not verify("k" * 16, header, b'{"a":1}', now=1_700_001_000)  # replayed later


def test_webhook_signed_post_verifies_and_says_site_time_rule_url(
    sqlite_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    worker, clock, engine = _worker(sqlite_url, tmp_path)
    hook = add_endpoint(engine, "ward duty officer", "webhook", {"url": receiver.url, "secret": SECRET})
    set_policy(engine, "*", "security_order", [(0, [hook])])
    add_alert(engine, "ev-1")
    worker.tick_once()
    assert worker.sender.drain() == 1
    (req,) = receiver.requests()
    assert req["verified"] is True
    body = json.loads(req["body"])
    assert body["type"] == "alert.escalated" and body["event_id"] == "ev-1"
    assert body["site"] == "Chợ Bến Thành, cổng Nam"
    assert body["started_local"].endswith("+0700 (Asia/Ho_Chi_Minh)")
    assert body["rule_words"].startswith("Tụ tập")
    assert body["url"] == "https://matthan.example.vn/console/alerts/ev-1"
    assert req["headers"]["X-Matthan-Delivery"] == str(notifications(engine)[0].id)
    engine.dispose()


def test_receiver_down_then_back_gets_it(sqlite_url: str, tmp_path: Path, receiver: Receiver) -> None:
    worker, clock, engine = _worker(sqlite_url, tmp_path)
    receiver.stop()
    hook = add_endpoint(engine, "centre", "webhook", {"url": receiver.url, "secret": SECRET})
    set_policy(engine, "*", "security_order", [(0, [hook])])
    add_alert(engine, "ev-2")
    worker.start()
    try:
        wait_until(
            lambda: notifications(engine)[0].attempts >= 3 if notifications(engine) else False,
            timeout=30,
            what="three failed attempts",
        )
        (n,) = notifications(engine)
        assert n.status == "pending" and "ConnectError" in (n.last_error or "")
        receiver.start()
        wait_until(lambda: notifications(engine)[0].status == "sent", timeout=30, what="delivered")
    finally:
        worker.stop()
    assert [b["event_id"] for b in receiver.bodies()] == ["ev-2"]
    assert all(r["verified"] for r in receiver.requests())
    engine.dispose()


def test_permanent_refusal_is_failed_and_not_retried(
    sqlite_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    worker, clock, engine = _worker(sqlite_url, tmp_path)
    # The wrong secret: the receiver answers 401, which will not mend itself.
    hook = add_endpoint(
        engine, "centre", "webhook", {"url": receiver.url, "secret": "wrong-secret-0123456789"}
    )
    set_policy(engine, "*", "security_order", [(0, [hook])])
    add_alert(engine, "ev-3")
    worker.tick_once()
    worker.sender.drain()
    (n,) = notifications(engine)
    assert n.status == "failed" and n.attempts == 1 and "HTTP 401" in (n.last_error or "")
    clock.advance(60)
    assert worker.sender.drain() == 0
    engine.dispose()


def test_email_reaches_a_real_smtp_server_with_the_snapshot(
    sqlite_url: str, tmp_path: Path, smtp: Smtp
) -> None:
    worker, clock, engine = _worker(
        sqlite_url,
        tmp_path,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_starttls=False,
        smtp_from="matthan@district1.example.vn",
    )
    mail = add_endpoint(engine, "commander", "email", {"to": ["chihuy@phuong1.example.vn"]})
    set_policy(engine, "*", "security_order", [(0, [mail])])
    add_alert(engine, "ev-4")
    add_snapshot(engine, tmp_path / "clips", "ev-4")
    worker.tick_once()
    assert worker.sender.drain() == 1
    (raw,) = smtp.messages()
    msg = email.message_from_bytes(raw)
    assert msg["To"] == "chihuy@phuong1.example.vn"
    assert "Chợ Bến Thành" in str(email.header.make_header(email.header.decode_header(msg["Subject"])))
    parts = list(msg.walk())
    payload = next(p for p in parts if p.get_content_type() == "text/plain").get_payload(decode=True)
    assert isinstance(payload, bytes)
    text = payload.decode()
    assert "https://matthan.example.vn/console/alerts/ev-4" in text and "(Asia/Ho_Chi_Minh)" in text
    # In the deployment's language (Vietnamese here), every line of it.
    lines = text.splitlines()
    assert lines[:4] == [
        "Cảnh báo: Tụ tập đông người",
        "Địa điểm: Chợ Bến Thành, cổng Nam",
        "Camera: pi-1/cam-1",
        "Phường: w1",
    ]
    assert re.fullmatch(r"Thời gian: \d\d:\d\d:\d\d \d\d/\d\d/\d{4} GMT\+7 \(Asia/Ho_Chi_Minh\)", lines[4])
    assert lines[5:] == [
        "Quy tắc: plaza.crowd",
        "Chưa được tiếp nhận — cấp 1 (level 1)",  # the level's name is the operators' own
        "Xem chi tiết: https://matthan.example.vn/console/alerts/ev-4",
    ]
    jpeg = next(p for p in parts if p.get_content_type() == "image/jpeg")
    assert jpeg.get_filename() == "ev-4.jpg" and jpeg.get_payload(decode=True) == JPEG
    engine.dispose()


def test_gateway_template_fills_placeholders(sqlite_url: str, tmp_path: Path, receiver: Receiver) -> None:
    worker, clock, engine = _worker(sqlite_url, tmp_path)
    gw = add_endpoint(
        engine,
        "sms",
        "gateway",
        {
            "method": "POST",
            "url": f"http://127.0.0.1:{receiver.port}/gateway?to=%2B84901234567",
            "headers": {"Authorization": "Bearer gw-key"},
            "body": '{"phone": "84901234567", "template_id": "248761", '
            '"template_data": {"site": "{{site}}", "time": "{{time}}", '
            '"rule": "{{rule}}", "url": "{{url}}"}}',
        },
    )
    set_policy(engine, "*", "security_order", [(0, [gw])])
    add_alert(engine, "ev-5")
    worker.tick_once()
    worker.sender.drain()
    (req,) = receiver.requests()
    assert req["path"].startswith("/gateway") and req["headers"]["Authorization"] == "Bearer gw-key"
    data = json.loads(req["body"])["template_data"]  # valid JSON: values were escaped
    assert data["site"] == "Chợ Bến Thành, cổng Nam" and data["url"].endswith("/console/alerts/ev-5")
    engine.dispose()


def test_an_english_deployment_notifies_in_english(
    sqlite_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    worker, clock, engine = _worker(sqlite_url, tmp_path, language="en")
    hook = add_endpoint(engine, "centre", "webhook", {"url": receiver.url, "secret": SECRET})
    set_policy(engine, "*", "security_order", [(0, [hook])])
    add_alert(engine, "ev-6", type="illegal_parking")
    worker.tick_once()
    assert worker.sender.drain() == 1
    body = json.loads(receiver.requests()[0]["body"])
    assert body["lang"] == "en" and body["rule_words"] == "Illegal parking"
    assert "Đỗ xe" not in json.dumps(body, ensure_ascii=False)
    engine.dispose()


def test_a_sender_that_died_holding_a_lease_lets_go_when_it_ends(
    sqlite_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    worker, clock, engine = _worker(sqlite_url, tmp_path, lease_s=60)
    hook = add_endpoint(engine, "centre", "webhook", {"url": receiver.url, "secret": SECRET})
    set_policy(engine, "*", "security_order", [(0, [hook])])
    add_alert(engine, "ev-6")
    worker.tick_once()
    # Another process claims the row and is SIGKILLed before sending: nobody else may take it...
    assert claim(engine, "dead-process", clock.now(), 60) == [notifications(engine)[0].id]
    assert claim(engine, "other", clock.now(), 60) == []
    assert worker.sender.drain() == 0 and receiver.requests() == []
    clock.advance(1.1)  # ...until its lease ends; then it is sent, once.
    assert worker.sender.drain() == 1
    assert [b["event_id"] for b in receiver.bodies()] == ["ev-6"]
    assert notifications(engine)[0].status == "sent"
    engine.dispose()
