"""The shift handover page and its CSV over HTTP, without a browser: both take the same query (ward,
a range in local time or the last hours), the CSV holds each section's rows, an officer sees only
their ward. (The browser test with screenshots is in test_attention_browser.py.)"""

import csv
import io
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from cloud import audit, auth
from cloud.app import create_app
from cloud.models import AlertRow, Device
from cloud.settings import Settings
from matthan_wire.timeutil import utc_now
from tests.cloud.console.test_pages import PASSWORD, _login

SAIGON = ZoneInfo("Asia/Ho_Chi_Minh")


def _alert(event_id: str, ward: str, started: datetime, type: str = "intrusion", **kw: Any) -> AlertRow:
    return AlertRow(
        event_id=event_id, device_id=f"dev-{ward}", camera_id="cam-a", ward=ward, zone="plaza",
        rule=f"plaza.{type}", type=type, category="security_order",
        started_at=started, received_at=started, updated_at=started, **kw,
    )  # fmt: skip


@pytest.fixture
def app(tmp_path: Path, sqlite_url: str) -> Iterator[TestClient]:
    settings = Settings(
        db_url=sqlite_url, broker_url=None, clips=str(tmp_path / "clips"),
        secret_key="handover-test-secret-key-0123456789", language="en",
    )  # fmt: skip
    now = utc_now()
    with TestClient(create_app(settings)) as client:
        with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
            for ward in ("ben-nghe", "da-kao"):
                s.add(Device(id=f"dev-{ward}", ward=ward))
                s.add(_alert(f"open-{ward}", ward, now - timedelta(hours=1)))
            auth.create_user(s, "lan", "operator", PASSWORD)
            auth.create_user(s, "officer", "ward_officer", PASSWORD, ward="da-kao")  # a known ward
            s.add(_alert("old-open", "ben-nghe", now - timedelta(hours=30)))
            s.add(
                _alert(
                    "outage-1",
                    "ben-nghe",
                    now - timedelta(hours=2),
                    "camera_offline",
                    ended_at=now - timedelta(hours=1),
                )
            )
            s.add(
                _alert(
                    "fa-1", "ben-nghe", now - timedelta(hours=3), state="false_alarm", resolved_at=now,
                    resolved_by="user:lan", note="a queue",
                )
            )  # fmt: skip
            audit.record(
                s, "attention", "alert.escalate", "open-ben-nghe",
                level=1, notified=[{"name": "Duty officer", "kind": "zalo"}],
            )  # fmt: skip
            s.commit()
        yield client


def _rows(client: TestClient, query: str = "") -> list[list[str]]:
    r = client.get("/console/handover.csv" + query)
    assert r.status_code == 200 and r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(r.text.lstrip("\ufeff"))))


def test_the_csv_holds_every_section_of_the_last_hours(app: TestClient) -> None:
    _login(app, "lan")
    rows = _rows(app)
    assert rows[0] == [
        "section", "event_id", "ward", "device", "camera", "rule", "type", "started", "ended", "state", "by",
        "detail",
    ]  # fmt: skip
    got = {(r[0], r[1]) for r in rows[1:]}
    assert got == {
        ("open", "old-open"),
        ("open", "open-ben-nghe"),
        ("open", "open-da-kao"),
        ("escalation", "open-ben-nghe"),
        ("outage", "outage-1"),
        ("false_alarm", "fa-1"),
    }
    (escalation,) = [r for r in rows if r[0] == "escalation"]
    assert escalation[-1] == "level 1: Duty officer (zalo)" and escalation[8] == ""
    (false_alarm,) = [r for r in rows if r[0] == "false_alarm"]
    assert false_alarm[-2:] == ["user:lan", "a queue"]
    assert false_alarm[7].endswith("+07:00")  # in the display time zone


def test_page_and_csv_take_the_same_query(app: TestClient) -> None:
    _login(app, "lan")
    since = (utc_now() - timedelta(hours=2, minutes=30)).astimezone(SAIGON).strftime("%Y-%m-%dT%H:%M")
    query = f"?ward=ben-nghe&since={since}"
    rows = _rows(app, query)
    # The escalation was audited just now, the false alarm resolved now: both inside since..now.
    assert {(r[0], r[1]) for r in rows[1:] if r[0] != "open"} == {
        ("escalation", "open-ben-nghe"),
        ("outage", "outage-1"),
        ("false_alarm", "fa-1"),
    }
    assert all(r[2] == "ben-nghe" for r in rows[1:])
    page = app.get("/console/handover" + query)
    assert page.status_code == 200
    assert f'value="{since}"' in page.text
    assert "/console/handover.csv" + query.replace("&", "&amp;") in page.text
    r = app.get("/console/handover.csv?ward=ben-nghe&since=" + since)
    name = r.headers["content-disposition"]
    assert name.startswith(f'attachment; filename="handover-{since[:10].replace("-", "")}-')
    for bad in ("?hours=0", "?hours=745"):
        assert app.get("/console/handover" + bad).status_code == 422
        assert app.get("/console/handover.csv" + bad).status_code == 422


def test_an_officer_sees_only_their_ward(app: TestClient) -> None:
    _login(app, "officer")
    rows = _rows(app)
    assert {(r[0], r[1]) for r in rows[1:]} == {("open", "open-da-kao")}
    assert app.get("/console/handover.csv?ward=ben-nghe").status_code == 403
