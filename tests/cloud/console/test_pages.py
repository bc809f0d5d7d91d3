"""The console's routes over HTTP, without a browser: sessions, CSRF, roles and wards, bad input.

The real app (cloud.app.create_app) on real SQLite and PostgreSQL databases, no broker (the API stores desired
configs without publishing them then).
"""

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from cloud import auth
from cloud.app import create_app
from cloud.models import AlertRow, AuditLog, DesiredConfigRow, Device
from cloud.session_cookie import CSRF_COOKIE, SESSION_COOKIE
from cloud.settings import Settings
from matthan_wire.timeutil import utc_now

PASSWORD = "correct horse battery"
SITE: dict[str, Any] = {
    "cameras": [{"id": "cam-a", "source": "rtsp://u:p@10.0.0.1/s", "zones": []}],
    "health": {"interval_s": 30},
}


@pytest.fixture
def app(tmp_path: Path, db_url: str) -> Iterator[TestClient]:
    """On SQLite and on PostgreSQL: the console's own queries (joins, filters) must work on both."""
    settings = Settings(
        db_url=db_url, broker_url=None, clips=str(tmp_path / "clips"),
        secret_key="pages-test-secret-key-0123456789",
        language="en",  # the English texts; the Vietnamese ones: test_i18n_pages.py
    )  # fmt: skip
    with TestClient(create_app(settings)) as client:
        with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
            auth.create_user(s, "root", "admin", PASSWORD)
            auth.create_user(s, "lan", "operator", PASSWORD)
            s.add(Device(id="dev-bn", ward="ben-nghe", online=True, last_seen=utc_now()))
            s.add(Device(id="dev-dk", ward="da-kao", online=True, last_seen=utc_now()))
            auth.create_user(s, "officer", "ward_officer", PASSWORD, ward="da-kao")  # a known ward
            for dev, ward in (("dev-bn", "ben-nghe"), ("dev-dk", "da-kao")):
                s.add(
                    AlertRow(
                        event_id=f"ev-{dev}", device_id=dev, camera_id="cam-a", ward=ward, zone="plaza",
                        rule="plaza.intrusion", type="intrusion", category="security_order",
                        started_at=utc_now() - timedelta(minutes=1),
                    )
                )  # fmt: skip
            s.commit()
        yield client


def _login(client: TestClient, user: str, password: str = PASSWORD, nxt: str = "/console/fleet") -> str:
    page = client.get("/console/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    r = client.post(
        "/console/login",
        data={"username": user, "password": password, "csrf_token": token.group(1), "next": nxt},
        follow_redirects=False,
    )
    return str(r.headers.get("location", r.status_code))


def _csrf(client: TestClient, page: str = "/console/alerts") -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', client.get(page).text)
    assert m is not None
    return m.group(1)


def test_pages_need_a_session_and_come_back_after_login(app: TestClient) -> None:
    r = app.get("/console/alerts?state=open", follow_redirects=False)
    assert (
        r.status_code == 303 and r.headers["location"] == "/console/login?next=/console/alerts%3Fstate%3Dopen"
    )
    assert _login(app, "lan", nxt="/console/alerts?state=open") == "/console/alerts?state=open"
    assert app.get("/console/alerts").status_code == 200


def test_login_refuses_a_forged_form_a_wrong_password_and_a_foreign_redirect(app: TestClient) -> None:
    r = app.post("/console/login", data={"username": "lan", "password": PASSWORD, "csrf_token": "forged"})
    assert r.status_code == 403 and "expired" in r.text
    assert SESSION_COOKIE not in app.cookies
    assert _login(app, "lan", "wrong password") == "401"
    assert _login(app, "lan", nxt="https://evil.example/") == "/console/fleet"
    assert _login(app, "lan", nxt="//evil.example/") == "/console/fleet"
    with Session(app.app.state.engine) as s:  # type: ignore[attr-defined]
        rows = s.exec(select(AuditLog).order_by(col(AuditLog.id))).all()
    actions = [a.action for a in rows]
    assert actions.count("login_failed") == 1 and actions.count("login") == 2
    # Who was tried, and from where: what tells a guessing attack from a forgotten password.
    (failed,) = [a for a in rows if a.action == "login_failed"]
    assert failed.detail == {"user": "lan", "client": "testclient"}


def test_a_form_without_the_session_csrf_token_changes_nothing(app: TestClient) -> None:
    _login(app, "lan")
    r = app.post("/console/alerts/ev-dev-bn/action", data={"action": "acknowledge", "csrf_token": "nope"})
    assert r.status_code == 403
    assert app.get("/api/v1/alerts/ev-dev-bn").json()["state"] == "new"
    r = app.post(
        "/console/alerts/ev-dev-bn/action",
        data={"action": "acknowledge", "note": "on my way", "csrf_token": _csrf(app)},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/console/alerts#ev-dev-bn"
    alert = app.get("/api/v1/alerts/ev-dev-bn").json()
    assert (alert["state"], alert["acknowledged_by"], alert["note"]) == ("acknowledged", "lan", "on my way")
    # Going back is refused with the lifecycle's own reason; a made-up action is a 400.
    r = app.post(
        "/console/alerts/ev-dev-bn/action",
        data={"action": "resolve", "csrf_token": _csrf(app)},
        headers={"X-Requested-With": "fetch"},
    )
    assert r.status_code == 200 and 'data-state="resolved"' in r.text
    r = app.post("/console/alerts/ev-dev-bn/action", data={"action": "acknowledge", "csrf_token": _csrf(app)})
    assert r.status_code == 409 and "already resolved" in r.text
    r = app.post("/console/alerts/ev-dev-bn/action", data={"action": "explode", "csrf_token": _csrf(app)})
    assert r.status_code == 400


def test_a_ward_officer_acts_on_their_ward_only_and_cannot_edit_zones(app: TestClient) -> None:
    _login(app, "officer")
    page = app.get("/console/alerts").text
    assert "ev-dev-dk" in page and "ev-dev-bn" not in page
    assert app.get("/console/alerts/card/ev-dev-bn").status_code == 404
    token = _csrf(app)
    r = app.post("/console/alerts/ev-dev-bn/action", data={"action": "acknowledge", "csrf_token": token})
    assert r.status_code == 404
    r = app.post("/console/alerts/ev-dev-dk/action", data={"action": "acknowledge", "csrf_token": token})
    assert r.status_code == 200  # followed the redirect back to the feed
    assert app.get("/console/reports?ward=ben-nghe").status_code == 403
    assert app.get("/console/audit").status_code == 403
    assert app.get("/console/devices/dev-dk/cameras/cam-a/zones").status_code == 403
    assert app.get("/console/fleet/part").text.count('class="dev"') == 1


def test_zone_save_validates_like_the_device_and_refuses_a_stale_edit(app: TestClient) -> None:
    _login(app, "lan")
    csrf = app.cookies[CSRF_COOKIE]
    assert app.get("/console/devices/dev-bn/cameras/cam-a/zones").status_code == 404  # no config known yet
    two_cams = {**SITE, "cameras": [*SITE["cameras"], {"id": "cam-b", "source": "rtsp://u:p@10.0.0.2/s"}]}
    r = app.put("/api/v1/devices/dev-bn/config", json=two_cams, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200
    page = app.get("/console/devices/dev-bn/cameras/cam-a/zones")
    assert page.status_code == 200 and 'data-version="1"' in page.text
    assert "rtsp://" not in page.text  # the stream credentials never reach the browser
    zone = {"name": "plaza", "polygon": [[0.1, 0.5], [0.9, 0.5], [0.9, 0.9]], "rules": []}
    url = "/console/devices/dev-bn/cameras/cam-a/zones"
    assert app.post(url, json={"zones": [zone], "lines": [], "base_version": 1}).status_code == 403  # no CSRF
    r = app.post(url, json={"zones": [zone], "lines": [], "base_version": 1}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json() == {"version": 2}
    saved = app.get("/api/v1/devices/dev-bn/config").json()["config"]
    # Merged into the newest config: this camera's zones changed, its source and the other camera did not.
    assert [c["id"] for c in saved["cameras"]] == ["cam-a", "cam-b"]
    assert saved["cameras"][0]["zones"][0]["name"] == "plaza"
    assert saved["cameras"][0]["source"] == "rtsp://u:p@10.0.0.1/s"
    assert saved["cameras"][1]["source"] == "rtsp://u:p@10.0.0.2/s" and saved["cameras"][1]["zones"] == []
    r = app.post(url, json={"zones": [zone], "lines": [], "base_version": 1}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 409 and "version 2" in r.json()["detail"]
    flat = {**zone, "polygon": [[0.1, 0.5], [0.5, 0.5], [0.9, 0.5]]}
    r = app.post(url, json={"zones": [flat], "lines": [], "base_version": 2}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 422 and "polygon has no area" in r.json()["detail"]
    r = app.post(
        "/console/devices/dev-bn/cameras/cam-z/zones",
        json={"zones": [], "lines": []},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 404
    with Session(app.app.state.engine) as s:  # type: ignore[attr-defined]
        versions = s.exec(
            select(DesiredConfigRow.version).where(DesiredConfigRow.device_id == "dev-bn")
        ).all()
        audit = s.exec(select(AuditLog).where(AuditLog.action == "config.set")).all()
    assert sorted(versions) == [1, 2] and [a.detail["version"] for a in audit] == [1, 2]  # type: ignore[index]
    assert app.get("/console/audit").status_code == 403


def test_static_files_are_served_and_nothing_else(app: TestClient) -> None:
    r = app.get("/console/static/zones.js")
    assert r.status_code == 200 and "normalised" in r.text
    assert app.get("/console/static/..%2Fconsole%2Frouter.py").status_code == 404
    assert app.get("/console/static/.hidden").status_code == 404
    # Pages link assets by content hash and never by an outside address.
    _login(app, "root")
    page = app.get("/console/fleet").text
    assert re.search(r"/console/static/console\.css\?v=[0-9a-f]{10}", page)
    assert not re.search(r"""(src|href)=["']https?://""", page)
    assert "login" in app.get("/console/audit").text


def test_camera_position_is_set_from_the_device_page_through_the_api_rules(app: TestClient) -> None:
    _login(app, "lan")
    url = "/console/devices/dev-bn/cameras/cam-a/place"
    token = _csrf(app, "/console/devices/dev-bn")
    r = app.post(url, data={"lat": "91", "lon": "106.7", "csrf_token": token})
    assert r.status_code == 400 and "less than or equal to 90" in r.text
    r = app.post(url, data={"lat": "10.7764", "lon": "", "csrf_token": token})
    assert r.status_code == 400 and "both latitude and longitude" in r.text
    r = app.post(
        url, data={"site_name": "Rex north", "address": "Lê Lợi, Quận 1", "lat": "10,7764", "lon": "106.7012",
                   "csrf_token": token},
    )  # fmt: skip
    assert r.status_code == 200 and "10.77640, 106.70120" in r.text
    cams = app.get("/api/v1/devices/dev-bn").json()["cameras"]
    assert cams == [{"id": "cam-a", "site_name": "Rex north", "address": "Lê Lợi, Quận 1", "lat": 10.7764,
                     "lon": 106.7012, "source_redacted": None}]  # fmt: skip
    assert (
        'id="fleet-map"' in app.get("/console/fleet").text
        and '"state": "ok"' in app.get("/console/fleet").text
    )
    app.cookies.clear()
    _login(app, "officer")
    token = _csrf(app, "/console/devices/dev-dk")
    r = app.post(
        "/console/devices/dev-dk/cameras/cam-a/place", data={"lat": "1", "lon": "1", "csrf_token": token}
    )
    assert r.status_code == 403


def test_logout_needs_the_form_token_and_ends_the_session(app: TestClient) -> None:
    _login(app, "lan")
    page = app.get("/console/alerts").text
    # The live feed resumes from the page's own moment, not from whenever the stream connects.
    assert re.search(r'data-stream-url="/api/v1/alerts/stream\?since=2\d{3}-[0-9T%A.-]+Z"', page)
    assert app.post("/console/logout", data={"csrf_token": "wrong"}).status_code == 403
    r = app.post("/console/logout", data={"csrf_token": _csrf(app)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    assert app.get("/console/fleet", follow_redirects=False).status_code == 303


def test_the_feed_pages_older_alerts_keeping_the_filters(app: TestClient) -> None:
    _login(app, "lan")
    page = app.get("/console/alerts?limit=1&category=security_order").text
    assert page.count('class="alert-row') == 1
    link = re.search(r'id="feed-more" href="([^"]+)"', page)
    assert link is not None and link.group(1) == "/console/alerts?category=security_order&amp;limit=21"
    page = app.get("/console/alerts?category=security_order&limit=21").text
    assert page.count('class="alert-row') == 2 and 'id="feed-more"' not in page


def test_what_people_type_is_shown_as_text_never_run(app: TestClient) -> None:
    _login(app, "lan")
    evil = '<img src=x onerror="alert(1)">'
    r = app.post(
        "/console/alerts/ev-dev-bn/action",
        data={"action": "false_alarm", "note": evil, "csrf_token": _csrf(app)},
        headers={"X-Requested-With": "fetch"},
    )
    assert r.status_code == 200
    for text in (r.text, app.get("/console/alerts").text):
        assert evil not in text  # the feed's row does not show notes
    text = app.get("/console/alerts/ev-dev-bn").text  # the alert's page does, as text
    assert evil not in text and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in text


def test_the_sync_state_says_pending_applied_or_rejected_with_the_reason(app: TestClient) -> None:
    _login(app, "lan")
    engine = app.app.state.engine  # type: ignore[attr-defined]

    def state(**row: object) -> str:
        with Session(engine) as s:
            d = s.get(Device, "dev-bn")
            assert d is not None
            for k, val in row.items():
                setattr(d, k, val)
            s.add(d)
            s.commit()
        return str(app.get("/console/devices/dev-bn/config-state").text)

    assert 'data-sync="none"' in state()
    assert 'data-sync="pending"' in state(desired_version=2, reported_version=1, reported_status="applied")
    assert 'data-sync="applied"' in state(reported_version=2)
    text = state(desired_version=3, reported_status="rejected", reported_error="camera rex: unknown source")
    assert 'data-sync="rejected"' in text and "camera rex: unknown source" in text and "running v2" in text
    fleet = app.get("/console/fleet/part?state=trouble").text
    assert "config v3 rejected" in fleet


def test_a_revoked_device_leaves_the_fleet_but_keeps_its_page(app: TestClient) -> None:
    with Session(app.app.state.engine) as s:  # type: ignore[attr-defined]
        d = s.get(Device, "dev-dk")
        assert d is not None
        d.revoked_at = utc_now()  # as revocation leaves it (that needs the CA, not tested here)
        s.add(d)
        s.commit()
    _login(app, "root")
    assert 'data-device="dev-dk"' not in app.get("/console/fleet/part").text
    page = app.get("/console/devices/dev-dk")
    assert page.status_code == 200 and 'data-state="revoked"' in page.text


def _place(app: TestClient) -> None:
    with Session(app.app.state.engine) as s:  # type: ignore[attr-defined]
        a = s.get(AlertRow, "ev-dev-bn")
        assert a is not None
        a.site = {"name": "Ngã tư Bến Thành", "address": "Lê Lợi, Quận 1", "lat": 10.7725, "lon": 106.698}
        a.site_name, a.rule_title = "Ngã tư Bến Thành", "Xâm nhập quảng trường"
        s.add(a)
        s.commit()


def test_the_alert_page_is_the_wards_own_and_shows_place_and_history(app: TestClient) -> None:
    _place(app)
    _login(app, "officer")  # da-kao
    assert app.get("/console/alerts/ev-dev-bn").status_code == 404  # another ward's alert: "not found"
    assert app.get("/console/alerts/ev-dev-dk").status_code == 200
    app.cookies.clear()
    _login(app, "lan")
    r = app.post(
        "/console/alerts/ev-dev-bn/action",
        data={"action": "acknowledge", "note": "tổ 2 đang đến", "csrf_token": _csrf(app),
              "next": "/console/alerts/ev-dev-bn"},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 303 and r.headers["location"].startswith("/console/alerts/ev-dev-bn")
    page = app.get("/console/alerts/ev-dev-bn").text
    for part in ("Xâm nhập quảng trường", "Ngã tư Bến Thành", "Lê Lợi, Quận 1", "10.77250, 106.69800",
                 'data-step="received"', 'data-step="acknowledged"', 'by <span class="actor">user:lan</span>',
                 "tổ 2 đang đến", "data-map="):  # fmt: skip
        assert part in page, part


def test_the_feed_searches_filters_by_site_and_exports_what_it_shows(app: TestClient) -> None:
    _place(app)
    _login(app, "lan")
    feed = app.get("/console/alerts?q=bến thành").text
    assert 'id="ev-dev-bn"' in feed and 'id="ev-dev-dk"' not in feed
    feed = app.get("/console/alerts", params={"site": "Ngã tư Bến Thành"}).text
    assert 'id="ev-dev-bn"' in feed and 'id="ev-dev-dk"' not in feed
    assert app.get("/console/alerts?q=100%25").text.count('class="alert-row') == 0  # % is literal
    r = app.get("/console/alerts.csv", params={"q": "plaza"})
    assert r.headers["content-type"].startswith("text/csv")
    text = r.content.decode("utf-8-sig")
    lines = text.strip().splitlines()
    assert lines[0].startswith("event_id,started_at_local") and len(lines) == 3
    assert "Ngã tư Bến Thành" in text and "/console/alerts/ev-dev-bn" in text
    only = app.get("/console/alerts.csv", params={"site": "Ngã tư Bến Thành"}).content.decode("utf-8-sig")
    assert len(only.strip().splitlines()) == 2
    app.cookies.clear()
    _login(app, "officer")
    mine = app.get("/console/alerts.csv").content.decode("utf-8-sig")
    assert "ev-dev-dk" in mine and "ev-dev-bn" not in mine


def test_fleet_totals_count_never_reported_apart_and_filters_keep_the_totals(app: TestClient) -> None:
    with Session(app.app.state.engine) as s:  # type: ignore[attr-defined]
        s.add(Device(id="dev-new", ward="ben-nghe"))  # imported, never heard from
        quiet = s.get(Device, "dev-dk")
        assert quiet is not None
        quiet.online, quiet.last_seen = False, utc_now() - timedelta(hours=2)
        s.add(quiet)
        s.commit()
    _login(app, "lan")

    def tile(text: str, name: str) -> str:
        m = re.search(rf'data-testid="n-{name}">(\d+)<', text)
        assert m is not None, name
        return m.group(1)

    for query in ("", "?state=online", "?state=offline"):
        part = app.get(f"/console/fleet/part{query}").text
        assert (tile(part, "devices"), tile(part, "online"), tile(part, "offline"), tile(part, "never")) == (
            "3", "1", "1", "1",
        ), query  # fmt: skip
    assert 'data-testid="n-shown">1 shown' in app.get("/console/fleet/part?state=online").text
    part = app.get("/console/fleet/part").text
    assert re.search(r'<tr class="dev stale" data-device="dev-dk" data-state="offline"', part)
